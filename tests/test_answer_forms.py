"""The forms an answer takes for its users: ISO days beside HTTP dates, the seed's shape on /bitcoin.

On the golden models (tests/golden/models): their answers are fixed, and no training is needed.
"""

from __future__ import annotations

from datetime import date

SEED_KEYS = ["date", "prediction", "prediction_low", "prediction_high"]
DAY = "2026-09-19"  # 30 days after the golden models' last day with data


def test_forecast_answers_carry_the_iso_day_beside_the_http_date(golden_client):
    body = golden_client.get(f"/forecast/btc?date={DAY}").get_json()
    assert body["date"] == "Sat, 19 Sep 2026 00:00:00 GMT"
    assert body["day"] == DAY and date.fromisoformat(body["day"]) == date(2026, 9, 19)
    assert list(body)[:5] == ["date", "day", "prediction", "prediction_low", "prediction_high"]
    leveled = golden_client.get(f"/forecast/eth?date={DAY}&level=50,95").get_json()
    assert (leveled["date"], leveled["day"]) == (body["date"], DAY)
    ranged = golden_client.get(f"/forecast/btc?start={DAY}&end=2026-09-20").get_json()["forecasts"]
    assert [item["day"] for item in ranged] == [DAY, "2026-09-20"]


def test_bitcoin_keeps_the_seeds_four_keys(golden_client):
    seed = golden_client.get(f"/bitcoin?date={DAY}").get_json()
    full = golden_client.get(f"/forecast/btc?date={DAY}").get_json()
    assert list(seed) == SEED_KEYS
    assert seed == {key: full[key] for key in SEED_KEYS}
    leveled = golden_client.get(f"/bitcoin?date={DAY}&level=50").get_json()
    assert list(leveled) == ["date", "prediction", "intervals"]
    # Ranges and CSV were never the seed's: /bitcoin gives them as /forecast/btc does.
    for query, headers in ((f"?start={DAY}&end=2026-09-21", {}), (f"?date={DAY}", {"Accept": "text/csv"})):
        alias = golden_client.get("/bitcoin" + query, headers=headers)
        general = golden_client.get("/forecast/btc" + query, headers=headers)
        assert (alias.status_code, alias.get_data()) == (200, general.get_data())


def test_the_document_says_which_date_is_which(golden_client):
    spec = golden_client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert "YYYY-MM-DD" in schemas["Forecast"]["properties"]["day"]["description"]
    assert "HTTP date" in schemas["Forecast"]["properties"]["date"]["description"]
    assert schemas["ShortForecast"]["required"] == SEED_KEYS
    bitcoin = spec["paths"]["/bitcoin"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "ShortForecast" in str(bitcoin)
