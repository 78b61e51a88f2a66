"""More than /bitcoin: every asset, ranges in JSON and CSV, history, model cards, metrics."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from serving.queries import MAX_RANGE_DAYS


def test_bitcoin_answers_as_forecast_btc(client):
    for query in ("?date=2024-02-30", "?start=2024-06-01&end=2024-06-07", ""):
        alias, general = client.get("/bitcoin" + query), client.get("/forecast/btc" + query)
        assert (alias.status_code, alias.get_data()) == (general.status_code, general.get_data())
    alias, general = client.get("/bitcoin?date=2024-06-01"), client.get("/forecast/btc?date=2024-06-01")
    seed = alias.get_json()
    assert seed == {key: general.get_json()[key] for key in seed}  # the seed's keys, the same values


def test_ethereum_has_its_own_model(client):
    btc = client.get("/forecast/btc?date=2024-06-01").get_json()
    eth = client.get("/forecast/eth?date=2024-06-01").get_json()
    assert list(eth)[:5] == ["date", "day", "prediction", "prediction_low", "prediction_high"]
    assert eth["date"] == btc["date"]
    assert 1000 < eth["prediction"] < 10_000 < 30_000 < btc["prediction"]


def test_unknown_asset_lists_the_known_ones(client):
    response = client.get("/forecast/doge?date=2024-06-01")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "unknown asset 'doge'; known assets: btc (Bitcoin, BTC), eth (Ethereum, ETH)"
    }
    assert client.get("/models/doge").status_code == 404
    assert client.get("/history/doge?start=2024-06-01&end=2024-06-02").status_code == 404


# ---------------------------------------------------------------- ranges


def test_range_in_json_holds_each_days_answer(client):
    body = client.get("/forecast/eth?start=2024-02-27&end=2024-03-02").get_json()
    assert (body["asset"], body["symbol"], body["start"], body["end"]) == (
        "eth",
        "ETH/USD",
        "2024-02-27",
        "2024-03-02",
    )
    days = ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]
    answers = [client.get(f"/forecast/eth?date={day}").get_json() for day in days]
    assert {(a["as_of"], a["source"]) for a in answers} == {(body["as_of"], body["source"])}  # once, above
    assert body["forecasts"] == [
        {key: value for key, value in answer.items() if key not in ("as_of", "source")} for answer in answers
    ]


def test_range_in_csv_on_accept_text_csv(client):
    response = client.get("/forecast/btc?start=2024-06-01&end=2024-06-03", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["date"] for row in rows] == ["2024-06-01", "2024-06-02", "2024-06-03"]
    first = client.get("/forecast/btc?date=2024-06-01").get_json()
    prices = ("prediction", "prediction_low", "prediction_high")
    assert {key: float(rows[0][key]) for key in prices} == {key: first[key] for key in prices}
    assert (int(rows[0]["horizon_days"]), rows[0]["as_of"], rows[0]["source"]) == (
        first["horizon_days"], first["as_of"], first["source"],
    )  # fmt: skip


def test_one_day_in_csv_too(client):
    response = client.get(
        "/bitcoin?date=2024-06-01", headers={"Accept": "text/csv;q=1, application/json;q=0.5"}
    )
    assert response.get_data(as_text=True).splitlines()[0] == (
        "date,prediction,prediction_low,prediction_high,horizon_days,as_of,source"
    )
    assert response.get_data(as_text=True).splitlines()[1].startswith("2024-06-01,")
    assert client.get("/bitcoin?date=2024-06-01", headers={"Accept": "*/*"}).mimetype == "application/json"


def test_range_limit_is_enforced_exactly(client):
    start = date(2020, 1, 1)
    longest = start + timedelta(days=MAX_RANGE_DAYS - 1)
    ok = client.get(f"/forecast/btc?start={start}&end={longest}")
    assert ok.status_code == 200 and len(ok.get_json()["forecasts"]) == MAX_RANGE_DAYS
    too_long = client.get(f"/forecast/btc?start={start}&end={longest + timedelta(days=1)}")
    assert too_long.status_code == 400
    assert too_long.get_json()["error"] == (
        f"at most {MAX_RANGE_DAYS} days per request; {start} to {longest + timedelta(days=1)} is 1501"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?start=2024-06-01", "a range needs both 'start' and 'end'"),
        ("?end=2024-06-01", "a range needs both 'start' and 'end'"),
        (
            "?date=2024-06-01&start=2024-06-01&end=2024-06-02",
            "give either 'date', or 'start' and 'end', not both",
        ),
        ("?start=2024-06-02&end=2024-06-01", "'start' (2024-06-02) is after 'end' (2024-06-01)"),
        ("?start=2024-06-01&start=2024-06-02&end=2024-06-03", "give 'start' once; got it 2 times"),
        ("?start=June&end=2024-06-03", "'start' must be a day as YYYY-MM-DD"),
        ("?start=2024-06-01&end=2024-06-31", "2024-06-31 is not a calendar day"),
        (
            "?start=2024-06-01&end=2031-01-01",
            "no forecast for 2031-01-01: this model serves 2014-09-17 to 2027-08-20",
        ),
    ],
)
def test_bad_ranges_get_a_400(client, query, message):
    response = client.get("/forecast/btc" + query)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


# ---------------------------------------------------------------- history and model cards


def test_history_gives_the_training_closes(client):
    body = client.get("/history/btc?start=2021-01-01&end=2021-01-02").get_json()
    # data/PROVENANCE.md: BTC close on 2021-01-01 was 29,374.15
    assert body["closes"][0] == {"date": "2021-01-01", "close": 29374.15}
    assert len(body["closes"]) == 2
    text = client.get(
        "/history/eth?start=2024-01-01&end=2024-01-01", headers={"Accept": "text/csv"}
    ).get_data(True)
    assert text == "date,close\n2024-01-01,2352.33\n"  # PROVENANCE.md: ETH 2024-01-01 close 2,352.33


def test_history_takes_a_range_only(client):
    response = client.get("/history/btc?date=2024-06-01")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("unknown query parameter 'date': this route takes start")
    response = client.get("/history/btc?start=2024-06-01")
    assert response.get_json()["error"].startswith("a range needs both 'start' and 'end'")


def test_history_only_covers_the_data(client):
    response = client.get("/history/btc?start=2026-08-01&end=2026-09-01")
    assert response.status_code == 400
    assert (
        response.get_json()["error"] == "no data for 2026-09-01: this model serves 2014-09-17 to 2026-08-20"
    )


def test_model_cards(client, served):
    cards = client.get("/models").get_json()
    assert set(cards) == {"btc", "eth"}
    card = client.get("/models/btc").get_json()
    assert card == cards["btc"]
    assert card["trained_at"] == served.metadata["trained_at"]
    assert (card["source"], card["first_day"], card["last_day"], card["rows"]) == (
        "snapshot", "2014-09-17", "2026-08-20", 4356,
    )  # fmt: skip
    assert card["serves"] == {"first_day": "2014-09-17", "last_day": "2027-08-20"}
    assert card["versions"]["prophet"] == "1.5.0"


# ---------------------------------------------------------------- metrics


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    return 0.0


def test_metrics_count_requests_by_route_and_status(client):
    before = client.get("/metrics").get_data(as_text=True)
    client.get("/bitcoin?date=2024-06-01")
    client.get("/bitcoin?date=nope")
    client.get("/no/such/page")
    after = client.get("/metrics")
    assert after.mimetype == "text/plain"
    text = after.get_data(as_text=True)

    def grew(name, **labels):
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert grew("http_requests_total", route="/bitcoin", method="GET", status="200") == 1
    assert grew("http_requests_total", route="/bitcoin", method="GET", status="400") == 1
    assert grew("http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert grew("http_request_duration_seconds_count", route="/bitcoin", method="GET") == 2
    assert "/no/such/page" not in text


def test_metrics_report_model_age(client):
    text = client.get("/metrics").get_data(as_text=True)
    for asset in ("btc", "eth"):
        card = client.get(f"/models/{asset}").get_json()
        trained = datetime.fromisoformat(card["trained_at"].replace("Z", "+00:00"))
        age = (datetime.now(UTC) - trained).total_seconds()
        assert age - 3600 < metric(text, "model_age_seconds", asset=asset) <= age + 1
