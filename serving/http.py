"""The HTTP facts that several serving modules share: media types, limits, cache lifetime, aliases, a tag.

Constants only, importing nothing from serving/: a module that needs one of them does not pull in
the logic of the module that used to define it.
"""

from __future__ import annotations

from flask_openapi3 import Tag

JSON = "application/json"
CSV = "text/csv"

# The API only answers GETs: no request needs a body, so a big one is refused unread.
MAX_BODY_BYTES = 16 * 1024
MAX_RANGE_DAYS = 1500  # days in one range request: about four years of daily points

# Forecasts change only when a model does (retrained every 6 hours): caches may reuse an answer
# for an hour, then revalidate it cheaply with its ETag.
CACHE_MAX_AGE = 3600

# Every forecast answer says, in these headers too, what its body may not (/bitcoin keeps the seed's
# four keys): the newest day of the data, days from it to the day answered, and where the data came from.
AS_OF_HEADER = "Forecast-As-Of"
HORIZON_HEADER = "Forecast-Horizon-Days"
SOURCE_HEADER = "Forecast-Source"

# Short paths that answer as /forecast/<asset>, but for one day in JSON: the seed's four keys.
ALIASES = {"/bitcoin": "btc"}

# The WSGI environ key of the requests the app makes of itself at startup (examples): not traffic.
EXAMPLE_REQUEST = "crypto_predict.example"

SERVICE = Tag(name="service")  # OpenAPI tag of the routes about the service, not its data
