"""The forms an answer takes for its users: ISO days beside HTTP dates, the seed's shape on /bitcoin.

On the golden models (tests/golden/models): their answers are fixed, and no training is needed.
"""

from __future__ import annotations

from datetime import date

import pytest

from api import create_app
from tests import golden

SEED_KEYS = ["date", "prediction", "prediction_low", "prediction_high"]
FORECAST_KEYS = ["date", "day", "prediction", "prediction_low", "prediction_high"]
DAY = "2026-09-19"  # 30 days after the golden models' last day with data


def test_forecast_answers_carry_the_iso_day_beside_the_http_date(golden_client):
    body = golden_client.get(f"/forecast/btc?date={DAY}").get_json()
    assert body["date"] == "Sat, 19 Sep 2026 00:00:00 GMT"
    assert body["day"] == DAY and date.fromisoformat(body["day"]) == date(2026, 9, 19)
    assert list(body)[:5] == FORECAST_KEYS
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


# ---------------------------------------------------------------- when and where the data is from

FACT_HEADERS = ("Forecast-As-Of", "Forecast-Horizon-Days", "Forecast-Source")


def test_every_forecast_says_its_as_of_day_horizon_and_source(golden_client):
    ahead = golden_client.get(f"/forecast/btc?date={DAY}").get_json()
    assert list(ahead) == [*FORECAST_KEYS, "horizon_days", "as_of", "source"]
    assert (ahead["horizon_days"], ahead["as_of"], ahead["source"]) == (30, "2026-08-20", "snapshot")
    assert ahead["prediction_low"] < ahead["prediction"] < ahead["prediction_high"]
    known = golden_client.get("/forecast/btc?date=2026-08-19").get_json()
    # A day with data: its close, a zero-width interval, and a horizon that says so.
    assert known["horizon_days"] == -1
    assert known["prediction"] == known["prediction_low"] == known["prediction_high"]
    assert golden_client.get("/forecast/btc?date=2026-08-20").get_json()["horizon_days"] == 0
    leveled = golden_client.get(f"/forecast/eth?date={DAY}&level=50").get_json()
    assert (leveled["horizon_days"], leveled["as_of"], leveled["source"]) == (30, "2026-08-20", "snapshot")


def test_ranges_and_csv_carry_the_same_facts(golden_client):
    ranged = golden_client.get("/forecast/btc?start=2026-08-19&end=2026-08-21").get_json()
    assert (ranged["as_of"], ranged["source"]) == ("2026-08-20", "snapshot")
    assert [item["horizon_days"] for item in ranged["forecasts"]] == [-1, 0, 1]
    text = golden_client.get(
        "/forecast/btc?start=2026-08-20&end=2026-08-21", headers={"Accept": "text/csv"}
    ).get_data(as_text=True)
    header, first, second = text.splitlines()
    assert header == "date,prediction,prediction_low,prediction_high,horizon_days,as_of,source"
    assert first.endswith(",0,2026-08-20,snapshot") and second.endswith(",1,2026-08-20,snapshot")
    leveled = golden_client.get(f"/forecast/btc?date={DAY}&level=95", headers={"Accept": "text/csv"})
    assert leveled.get_data(as_text=True).splitlines()[1].endswith(",30,2026-08-20,snapshot")


def test_bitcoin_says_them_in_headers_that_any_origin_may_read(golden_client, golden_app):
    fast = golden_client.get(f"/bitcoin?date={DAY}", headers={"Origin": "https://example.org"})
    assert list(fast.get_json()) == SEED_KEYS
    assert [fast.headers[name] for name in FACT_HEADERS] == ["2026-08-20", "30", "snapshot"]
    exposed = {name.strip() for name in fast.headers["Access-Control-Expose-Headers"].split(",")}
    assert set(FACT_HEADERS) <= exposed
    # Answered before Flask for another day: the horizon is that day's, not the captured one's.
    other = golden_client.get("/bitcoin?date=2026-08-10")
    assert other.headers["Forecast-Horizon-Days"] == "-10"
    ranged = golden_client.get(f"/bitcoin?start={DAY}&end=2026-09-20")
    assert "Forecast-Horizon-Days" not in ranged.headers
    assert ranged.headers["Forecast-As-Of"] == "2026-08-20"
    spec = golden_client.get("/openapi.json").get_json()
    documented = spec["paths"]["/bitcoin"]["get"]["responses"]["200"]["headers"]
    assert set(FACT_HEADERS) <= set(documented)


def test_the_document_says_days_with_data_answer_their_close(golden_client):
    spec = golden_client.get("/openapi.json").get_json()
    forecast = spec["components"]["schemas"]["Forecast"]["properties"]
    assert "observed close" in forecast["prediction"]["description"]
    assert "zero-width" in forecast["prediction_low"]["description"]
    assert {"as_of", "horizon_days", "source"} <= set(spec["components"]["schemas"]["Forecast"]["required"])
    assert "fresh data" not in spec["info"]["description"]


# ---------------------------------------------------------------- ?format=


def test_format_in_the_query_gives_csv_to_links_and_spreadsheets(golden_client):
    by_header = golden_client.get(f"/forecast/btc?date={DAY}", headers={"Accept": "text/csv"})
    by_query = golden_client.get(f"/forecast/btc?date={DAY}&format=csv")
    assert (by_query.status_code, by_query.mimetype) == (200, "text/csv")
    assert by_query.get_data() == by_header.get_data()
    history = golden_client.get("/history/eth?start=2024-01-01&end=2024-01-01&format=csv")
    assert history.get_data(as_text=True) == "date,close\n2024-01-01,2352.33\n"
    ranged = golden_client.get(f"/bitcoin?start={DAY}&end=2026-09-20&format=CSV")  # any case
    assert ranged.mimetype == "text/csv" and len(ranged.get_data(as_text=True).splitlines()) == 3


def test_the_query_wins_over_accept_and_vary_says_what_the_answer_depends_on(golden_client):
    answer = golden_client.get(f"/forecast/btc?date={DAY}&format=json", headers={"Accept": "text/csv"})
    assert answer.mimetype == "application/json" and answer.get_json()["day"] == DAY
    assert "Vary" not in answer.headers  # the query alone chose the format
    negotiated = golden_client.get(f"/forecast/btc?date={DAY}", headers={"Accept": "text/csv"})
    assert negotiated.headers["Vary"] == "Accept"
    etag = golden_client.get(f"/forecast/btc?date={DAY}&format=csv").headers["ETag"]
    current = golden_client.get(f"/forecast/btc?date={DAY}&format=csv", headers={"If-None-Match": etag})
    assert current.status_code == 304 and "Vary" not in current.headers


def test_a_format_that_is_neither_json_nor_csv_is_refused(golden_client):
    response = golden_client.get(f"/forecast/btc?date={DAY}&format=xlsx")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "'format' takes json or csv (or send Accept: text/csv); got 'xlsx'"
    }
    twice = golden_client.get(f"/forecast/btc?date={DAY}&format=csv&format=json")
    assert twice.status_code == 400 and "give 'format' once" in twice.get_json()["error"]


# ---------------------------------------------------------------- query parameters


def test_a_typo_in_a_parameter_is_refused_naming_the_accepted_ones(golden_client):
    response = golden_client.get(f"/forecast/btc?date={DAY}&levels=50")  # not level: no silent 80%
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "unknown query parameter 'levels' (did you mean 'level'?): this route takes date, start, "
        "end, level, format (and _, ignored)"
    }
    history = golden_client.get("/history/btc?start=2024-06-01&end=2024-06-02&date=2024-06-01")
    assert history.get_json()["error"] == (
        "unknown query parameter 'date': this route takes start, end, format (and _, ignored)"
    )
    cards = golden_client.get("/models?asset=btc")
    assert cards.status_code == 400
    assert cards.get_json()["error"].endswith("this route takes none (and _, ignored)")


def test_many_unknown_parameters_are_named_a_few_and_counted(golden_client):
    query = "&".join(f"x{i}=1" for i in range(50))
    error = golden_client.get(f"/bitcoin?date={DAY}&{query}").get_json()["error"]
    assert error.startswith("unknown query parameters 'x0', 'x1', 'x2' and 47 more: this route takes")


def test_the_cache_buster_is_ignored(golden_client):
    plain = golden_client.get(f"/bitcoin?date={DAY}")
    busted = golden_client.get(f"/bitcoin?date={DAY}&_=1733328000000")  # jQuery's cache: false
    assert (busted.status_code, busted.get_data()) == (200, plain.get_data())
    twice = golden_client.get("/models?_=1&_=2")
    assert twice.status_code == 200


def test_a_repeated_level_is_read_as_a_list(golden_client):
    comma = golden_client.get(f"/forecast/btc?date={DAY}&level=50,95")
    repeated = golden_client.get(f"/forecast/btc?date={DAY}&level=50&level=95")  # what requests sends
    assert (repeated.status_code, repeated.get_data()) == (200, comma.get_data())
    mixed = golden_client.get(f"/forecast/btc?date={DAY}&level=95&level=50,80")
    assert [i["level"] for i in mixed.get_json()["intervals"]] == [50, 80, 95]
    bad = golden_client.get(f"/forecast/btc?date={DAY}&level=50&level=99")
    assert bad.get_json()["error"].endswith("e.g. 50,95; got '99'")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            f"date={DAY}&date=2026-09-20",
            "give 'date' once; got it 2 times: for several days give a range, "
            "e.g. ?start=2024-06-01&end=2024-06-30",
        ),
        (
            "start=2026-09-01&start=2026-09-02&end=2026-09-30",
            "give 'start' once; got it 2 times: one range per request, e.g. ?start=2024-06-01&end=2024-06-30",
        ),
    ],
)
def test_other_repeated_parameters_keep_a_400_that_says_what_to_give(golden_client, query, error):
    response = golden_client.get(f"/forecast/btc?{query}")
    assert (response.status_code, response.get_json()) == (400, {"error": error})


# ---------------------------------------------------------------- asset names


@pytest.mark.parametrize("named", ["BTC", "bitcoin", "Bitcoin", "Btc"])
def test_an_asset_named_by_its_symbol_or_name_in_any_case_redirects_to_its_id(golden_client, named):
    response = golden_client.get(f"/forecast/{named}?date={DAY}&level=50")
    assert response.status_code == 301 and response.mimetype == "application/json"
    location = f"/forecast/btc?date={DAY}&level=50"  # a path on this server, the query kept
    assert response.headers["Location"] == location
    assert response.get_json() == {"asset": "btc", "location": location}
    followed = golden_client.get(f"/forecast/{named}?date={DAY}&level=50", follow_redirects=True)
    assert followed.get_data() == golden_client.get(location).get_data()


def test_history_and_model_cards_take_names_too(golden_client):
    assert golden_client.get("/models/ETH").headers["Location"] == "/models/eth"
    history = golden_client.get("/history/Ethereum?start=2024-01-01&end=2024-01-01")
    assert history.headers["Location"] == "/history/eth?start=2024-01-01&end=2024-01-01"


def test_a_redirect_never_names_the_clients_host(golden_client):
    response = golden_client.get("/forecast/ETH", headers={"Host": "evil.example"})
    assert response.headers["Location"] == "/forecast/eth"


def test_an_unknown_asset_lists_the_ids_and_names(golden_client):
    response = golden_client.get(f"/forecast/doge?date={DAY}")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "unknown asset 'doge'; known assets: btc (Bitcoin, BTC), eth (Ethereum, ETH)"
    }
    assert golden_client.get("/models/dogecoin").status_code == 404


def test_the_document_says_which_names_are_accepted(golden_client):
    spec = golden_client.get("/openapi.json").get_json()
    operation = spec["paths"]["/forecast/{asset}"]["get"]
    asset = operation["parameters"][0]
    assert asset["schema"]["enum"] == ["btc", "eth"]  # the ids; names redirect to them
    assert "btc (Bitcoin, BTC), eth (Ethereum, ETH)" in asset["description"]
    assert set(operation["responses"]["301"]["headers"]) == {"Location"}


# ---------------------------------------------------------------- the document's examples


def documented_examples(spec: dict):
    """(path, status, media type, name, example) for every example of every answer in the document."""
    for path, operations in spec["paths"].items():
        for status, answer in operations["get"]["responses"].items():
            for media_type, content in answer.get("content", {}).items():
                for name, example in content.get("examples", {}).items():
                    yield path, status, media_type, name, example


def test_every_example_in_the_document_is_a_real_answer(golden_client):
    spec = golden_client.get("/openapi.json").get_json()
    examples = list(documented_examples(spec))
    shapes = {(path, status, media_type, name) for path, status, media_type, name, _ in examples}
    assert {
        ("/forecast/{asset}", "200", "application/json", "day"),
        ("/forecast/{asset}", "200", "application/json", "known"),
        ("/forecast/{asset}", "200", "application/json", "range"),
        ("/forecast/{asset}", "200", "application/json", "levels"),
        ("/forecast/{asset}", "200", "text/csv", "csv"),
        ("/forecast/{asset}", "400", "application/json", "typo"),
        ("/forecast/{asset}", "404", "application/json", "unknown"),
        ("/forecast/{asset}", "301", "application/json", "name"),
        ("/bitcoin", "200", "application/json", "day"),
        ("/bitcoin", "200", "text/csv", "csv_levels"),
        ("/models/{asset}", "200", "application/json", "card"),
    } <= shapes
    for _, status, media_type, _, example in examples:
        url = example["summary"].split(": GET ")[-1]
        if url == "/health":
            continue  # its body says how old the data is at the moment asked
        response = golden_client.get(url, headers={"Accept": media_type})
        assert str(response.status_code) == status, url
        body = response.get_json() if media_type == "application/json" else response.get_data(as_text=True)
        assert body == example["value"], url
    day = spec["paths"]["/bitcoin"]["get"]["parameters"][0]
    assert (day["name"], day["example"]) == ("date", "2026-09-19")  # a forecast, not a day with data
    bitcoin = next(e for p, s, m, n, e in examples if (p, m, n) == ("/bitcoin", "application/json", "day"))
    assert list(bitcoin["value"]) == sorted(SEED_KEYS)  # the seed's four keys, as JSON sorts them
    assert bitcoin["value"]["prediction"] > 0  # no made-up zeros


def test_the_examples_are_not_counted_as_traffic():
    text = create_app(golden.GOLDEN_MODELS).test_client().get("/metrics").get_data(as_text=True)
    assert 'route="/forecast/<asset>",status="400"' not in text
    assert 'route="/models/<asset>"' not in text
