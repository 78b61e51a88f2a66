-- Requests for the soak run: every kind of valid read the API serves, in turn on each connection.
-- Each must answer 200; wrk counts anything else as "Non-2xx or 3xx responses".
local paths = {
  {"/bitcoin?date=2024-06-01"},
  {"/forecast/eth?date=2027-01-15"},
  {"/forecast/btc?start=2024-01-01&end=2024-12-31"},
  {"/forecast/btc?start=2024-06-01&end=2024-06-30", "text/csv"},
  {"/history/eth?start=2023-01-01&end=2023-03-31"},
  {"/models/btc"},
  {"/health"},
}
local counter = 0

request = function()
  counter = counter + 1
  local entry = paths[(counter % #paths) + 1]
  local headers = {}
  if entry[2] then headers["Accept"] = entry[2] end
  return wrk.format("GET", entry[1], headers)
end
