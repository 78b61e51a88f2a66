"""api.py through Flask's test client: answers, intervals, bad input, docs, startup checks."""

from __future__ import annotations

import hashlib
import json
import pickle  # nosec B403  # tests read the models train.py just wrote
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from openapi_spec_validator import validate

import api
import artifact
from artifact import Interval
from serving.answers import price
from tests.conftest import model_file

FORECAST_KEYS = ["date", "prediction", "prediction_low", "prediction_high"]


def get_forecast(client, day: str) -> dict:
    response = client.get(f"/bitcoin?date={day}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# ---------------------------------------------------------------- answers


def test_answers_in_the_documented_shape(client):
    response = client.get("/bitcoin?date=2027-06-01")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == FORECAST_KEYS
    assert body["date"] == "Tue, 01 Jun 2027 00:00:00 GMT"
    assert all(isinstance(body[key], float) for key in FORECAST_KEYS[1:])
    assert body["prediction_low"] < body["prediction"] < body["prediction_high"]


def test_a_day_with_data_answers_its_close_and_the_forecast_joins_it(client, served):
    """The chart and /forecast are continuous at the last training day: its band holds the close."""
    last_day = date.fromisoformat(served.metadata["last_day"])
    close = client.get(f"/history/btc?start={last_day}&end={last_day}").get_json()["closes"][0]["close"]
    on_the_day = get_forecast(client, last_day.isoformat())
    assert on_the_day["prediction"] == on_the_day["prediction_low"] == on_the_day["prediction_high"] == close
    next_day = get_forecast(client, (last_day + timedelta(days=1)).isoformat())
    assert next_day["prediction_low"] < close < next_day["prediction_high"]
    assert abs(next_day["prediction"] / close - 1) < 0.02  # the last close, adjusted by the weekly pattern


def test_same_request_same_answer_across_restarts(model_dir, client):
    first = client.get("/bitcoin?date=2027-01-15").get_data()
    assert client.get("/bitcoin?date=2027-01-15").get_data() == first
    restarted = api.create_app(model_dir).test_client()
    assert restarted.get("/bitcoin?date=2027-01-15").get_data() == first


def load_pickle(path):
    return pickle.loads(path.read_bytes())  # noqa: S301  # nosec B301  # our own test artifact


def test_answers_follow_the_forecast_contract(model_dir, served, client):
    """artifact/: days with data answer their close; later ones hold the trend, anchor, calibrate."""
    model = load_pickle(model_file(model_dir))
    contract = served.metadata["forecast"]
    last_day = pd.Timestamp(served.metadata["last_day"])
    days = [pd.Timestamp("2024-06-01"), last_day] + [
        last_day + pd.Timedelta(days=n) for n in (1, 30, 200, 365)
    ]
    fit = model.predict(pd.DataFrame({"ds": days}))  # yhat and trend are deterministic
    last_trend = fit.trend.iloc[1]
    interval = contract["interval"]
    closes = served.metadata["closes"]
    for day, yhat, trend in zip(days, fit.yhat, fit.trend, strict=True):
        answer = get_forecast(client, day.date().isoformat())
        ahead = (day - last_day).days
        if ahead <= 0:  # a day with data: its close, with a zero-width interval
            close = closes["values"][(day - pd.Timestamp(closes["first_day"])).days]
            assert answer["prediction"] == answer["prediction_low"] == answer["prediction_high"]
            assert answer["prediction"] == pytest.approx(close, rel=1e-5)
            continue
        expected = np.exp(yhat - trend + last_trend + contract["level_offset"])
        assert answer["prediction"] == pytest.approx(expected, abs=0.01)
        low = np.interp(ahead, interval["horizon_days"], interval["lower"]["80"])
        high = np.interp(ahead, interval["horizon_days"], interval["upper"]["80"])
        assert answer["prediction_low"] == pytest.approx(expected * np.exp(low), abs=0.01)
        assert answer["prediction_high"] == pytest.approx(expected * np.exp(high), abs=0.01)
    # Anchored with the trend held: the forecast starts from the last close (weekly pattern aside).
    last_close = client.get(f"/history/btc?start={last_day.date()}&end={last_day.date()}").get_json()
    next_day = get_forecast(client, (last_day + pd.Timedelta(days=1)).date().isoformat())
    assert next_day["prediction"] == pytest.approx(last_close["closes"][0]["close"], rel=0.01)


def test_interval_bounds_interpolate_between_knots_and_grow_past_the_last():
    rng = np.random.default_rng(0)
    knots = [1, 5, 30, 90, 365]
    lower = np.minimum.accumulate(-rng.uniform(0.01, 0.3, 5)).tolist()
    upper = np.maximum.accumulate(rng.uniform(0.01, 0.3, 5)).tolist()
    low, high = Interval(knots, {80: lower}, {80: upper}).bounds([1, 3, 365, 1460])
    assert (low[0], high[0]) == (lower[0], upper[0])
    assert low[1] == pytest.approx(lower[1] / 2 + lower[0] / 2)  # halfway between the knots 1 and 5
    assert (low[3], high[3]) == pytest.approx((2 * lower[-1], 2 * upper[-1]))  # sqrt(4) past the last knot


def test_far_band_of_prophets_own_interval_is_the_dense_grid_band(uncalibrated_model_dir):
    """Without a calibrated interval the API serves Prophet's: for a far day, the dense grid's band."""
    served = api.create_app(uncalibrated_model_dir).extensions["served_models"]["btc"]
    assert served.metadata["forecast"]["interval"] is None
    model = load_pickle(model_file(uncalibrated_model_dir))
    grid = pd.DataFrame({"ds": pd.date_range(served.first_day, served.last_day)})
    widths = []  # in log price: the contract's shifts move both bounds alike
    for seed in (1, 2):
        np.random.seed(seed)
        row = model.predict(grid).iloc[-1]
        widths.append(row.yhat_upper - row.yhat_lower)
    np.random.seed(3)
    one_row = model.predict(grid.tail(1)).iloc[0]

    answer = json.loads(served.answers[served.last_day.isoformat()])
    served_width = np.log(answer["prediction_high"] / answer["prediction_low"])
    assert served_width == pytest.approx(np.mean(widths), rel=0.1)
    assert one_row.yhat_upper - one_row.yhat_lower < 0.8 * served_width


def test_interval_widens_with_the_horizon(served, client):
    last_data_day = date.fromisoformat(served.metadata["last_day"])
    widths = []
    for days_ahead in (7, 90, 365):
        answer = get_forecast(client, (last_data_day + timedelta(days=days_ahead)).isoformat())
        widths.append(answer["prediction_high"] - answer["prediction_low"])
    assert widths[0] < widths[1] < widths[2]


def test_serves_exactly_the_metadata_range(served, client):
    assert get_forecast(client, served.first_day.isoformat())
    assert get_forecast(client, served.last_day.isoformat())
    assert len(served.answers) == (served.last_day - served.first_day).days + 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "missing query parameter 'date'"),
        ("?day=2024-06-01", "unknown query parameter 'day' (did you mean 'date'?)"),
        ("?date[]=2024-06-01", "unknown query parameter 'date[]' (did you mean 'date'?)"),
        ("?date=", "must be a day as YYYY-MM-DD"),
        ("?date=2024-6-1", "must be a day as YYYY-MM-DD"),
        ("?date=01/06/2024", "must be a day as YYYY-MM-DD"),
        ("?date=2024-06-01T00:00:00", "must be a day as YYYY-MM-DD"),
        (
            "?date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94-06-01",
            "must be a day as YYYY-MM-DD",
        ),  # full-width digits
        ("?date=tomorrow", "must be a day as YYYY-MM-DD"),
        ("?date=" + "9" * 5000, "must be a day as YYYY-MM-DD"),
        ("?date=%00", "must be a day as YYYY-MM-DD"),
        ("?date=2024-02-30", "2024-02-30 is not a calendar day"),
        ("?date=2023-02-29", "2023-02-29 is not a calendar day"),
        ("?date=0000-01-01", "0000-01-01 is not a calendar day"),
        ("?date=2024-06-01&date=2024-06-02", "give 'date' once; got it 2 times"),
        ("?date=2024-06-01&date=2024-06-01", "give 'date' once; got it 2 times"),
    ],
)
def test_bad_dates_get_a_400_saying_what_is_accepted(client, query, message):
    response = client.get("/bitcoin" + query)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert message in response.get_json()["error"]


@pytest.mark.parametrize("day", ["1999-12-31", "2014-09-16", "2027-08-21", "9999-12-31"])
def test_days_outside_the_range_name_the_range(client, served, day):
    response = client.get(f"/bitcoin?date={day}")
    assert response.status_code == 400
    expected = f"no forecast for {day}: this model serves {served.first_day} to {served.last_day}"
    assert response.get_json() == {"error": expected}


def test_long_bad_values_are_quoted_short(client):
    error = client.get("/bitcoin?date=" + "x" * 10_000).get_json()["error"]
    assert len(error) < 200


def test_unknown_routes_and_methods_answer_json(client):
    missing = client.get("/ethereum")
    assert missing.status_code == 404 and "404 Not Found" in missing.get_json()["error"]
    wrong_method = client.post("/bitcoin?date=2024-06-01")
    assert wrong_method.status_code == 405 and "405 Method Not Allowed" in wrong_method.get_json()["error"]
    assert "GET" in wrong_method.headers["Allow"]


# ---------------------------------------------------------------- headers, health, docs


@pytest.mark.parametrize("path", ["/bitcoin?date=2024-06-01", "/bitcoin?date=nope", "/health"])
def test_cors_allows_any_origin(client, path):
    response = client.get(path, headers={"Origin": "https://example.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight(client):
    response = client.options(
        "/bitcoin", headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


def test_health_reports_every_model(client, served):
    body = client.get("/health").get_json()
    age = (datetime.now(UTC).date() - date(2026, 8, 20)).days
    assert body["status"] == ("stale" if age > 3 else "ok")  # the bundled snapshot ends 2026-08-20
    assert set(body["models"]) == {"btc", "eth"}
    assert body["models"]["btc"] == {
        "trained_at": served.metadata["trained_at"],
        "data_last_day": "2026-08-20",
        "data_age_days": age,
        "source": "snapshot",
        "serves": {"first_day": "2014-09-17", "last_day": "2027-08-20"},
    }


def test_openapi_document_is_valid_and_complete(client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    assert set(spec["paths"]) == {
        "/bitcoin", "/forecast/{asset}", "/history/{asset}", "/models", "/models/{asset}",
        "/health", "/metrics", "/", "/docs", "/openapi.json",
    }  # fmt: skip
    forecast = spec["paths"]["/forecast/{asset}"]["get"]
    parameters = {p["name"]: (p["in"], p["required"]) for p in forecast["parameters"]}
    assert parameters == {"asset": ("path", True), "date": ("query", False), "start": ("query", False),
                          "end": ("query", False), "level": ("query", False),
                          "format": ("query", False)}  # fmt: skip
    assert forecast["parameters"][0]["schema"]["enum"] == ["btc", "eth"]
    assert set(forecast["responses"]) == {"200", "301", "304", "400", "404"}
    assert set(forecast["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert set(forecast["responses"]["200"]["headers"]) == {
        "Cache-Control", "ETag", "Last-Modified", "Vary",
        "Forecast-As-Of", "Forecast-Horizon-Days", "Forecast-Source",
    }  # fmt: skip
    bitcoin = spec["paths"]["/bitcoin"]["get"]["responses"]
    assert set(bitcoin) == set(forecast["responses"]) - {"301", "404"}  # no asset to name or miss
    schemas = spec["components"]["schemas"]
    assert schemas["ShortForecast"]["required"] == FORECAST_KEYS  # /bitcoin: the seed's four keys
    assert not [op for path in spec["paths"].values() for op in path.values() if "422" in op["responses"]]


def test_docs_lead_to_swagger_ui(client):
    assert client.get("/docs").headers["Location"] == "/docs/swagger"
    page = client.get("/docs/swagger")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "Swagger UI must not load from a CDN"
    scripts = ""
    for asset in re.findall(r"(?:src|href)=\"(swagger/[^\"]+)\"", html):
        answer = client.get(f"/docs/{asset}")
        assert answer.status_code == 200, asset
        scripts += answer.get_data(as_text=True) if asset.startswith("swagger/js/") else ""
    assert "SwaggerUIBundle(" in scripts and '"/openapi.json"' in scripts


# ---------------------------------------------------------------- startup checks


def test_refuses_an_empty_model_folder(tmp_path):
    with pytest.raises(api.ModelError, match=r"no model metadata \(\*\.json\) in"):
        api.create_app(tmp_path)


def test_refuses_metadata_without_its_model(model_dir_copy):
    model_file(model_dir_copy).unlink()
    with pytest.raises(api.ModelError, match=r"btc\.[0-9a-f]{16}\.pkl cannot be read"):
        api.create_app(model_dir_copy)


def test_refuses_a_truncated_model(model_dir_copy):
    path = model_file(model_dir_copy)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(api.ModelError, match=r"sha256 .* but its metadata expects"):
        api.create_app(model_dir_copy)


def rewrite_with_matching_sha(model_dir, asset: str, content: bytes) -> None:
    model_file(model_dir, asset).write_bytes(content)
    metadata_path = artifact.metadata_path(model_dir, asset)
    metadata = json.loads(metadata_path.read_text())
    metadata["model_sha256"] = hashlib.sha256(content).hexdigest()
    metadata_path.write_text(json.dumps(metadata))


def test_refuses_a_file_that_is_not_a_pickle(model_dir_copy):
    rewrite_with_matching_sha(model_dir_copy, "btc", b"not a pickle at all")
    with pytest.raises(api.ModelError, match="not a readable pickle"):
        api.create_app(model_dir_copy)


def test_refuses_a_pickle_of_the_wrong_thing(model_dir_copy):
    rewrite_with_matching_sha(model_dir_copy, "eth", pickle.dumps({"model": "no"}))
    with pytest.raises(api.ModelError, match="holds a dict, not a fitted Prophet model"):
        api.create_app(model_dir_copy)


def test_refuses_unreadable_metadata(model_dir_copy):
    (model_dir_copy / "btc.json").write_text("{")
    with pytest.raises(api.ModelError, match=r"metadata .* is unreadable"):
        api.create_app(model_dir_copy)


def rewrite_metadata(model_dir, change) -> None:
    path = model_dir / "btc.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["forecast"].update(target="price"), "unknown forecast target 'price'"),
        (lambda m: m["forecast"].update(level_offset="0.1"), "level_offset must be a finite number"),
        (lambda m: m["forecast"].update(level_offset=float("nan")), "NaN is not a JSON number"),
        (lambda m: m["forecast"]["interval"].pop("upper"), "forecast interval is malformed"),
        (lambda m: m["forecast"]["interval"]["lower"]["80"].pop(), "lists of the same, non-zero length"),
        (lambda m: m["forecast"]["interval"]["upper"]["50"].reverse(), "widen with the horizon"),
        (
            lambda m: m["forecast"]["interval"]["upper"].update({"95": [0.01] * 365}),
            "the 95% interval must hold",
        ),
        (
            lambda m: m["forecast"].update(past_days="tomorrow"),
            "forecast past_days must be 'fit', or 'close'",
        ),
        (lambda m: m.pop("closes"), "forecast past_days must be 'fit', or 'close' with the closes"),
        (lambda m: m["forecast"]["interval"]["horizon_days"].reverse(), "horizon_days must increase"),
    ],
)
def test_refuses_a_broken_forecast_contract(model_dir_copy, change, message):
    rewrite_metadata(model_dir_copy, change)
    with pytest.raises(api.ModelError, match=re.escape(message)):
        api.create_app(model_dir_copy)


def test_metadata_without_a_contract_serves_prophets_output_as_it_is(model_dir_copy):
    """Format-1 metadata had no "forecast": the model predicted the close itself."""
    rewrite_metadata(model_dir_copy, lambda m: m.pop("forecast"))
    served = api.create_app(model_dir_copy).extensions["served_models"]["btc"]
    model = load_pickle(model_file(model_dir_copy))
    yhat = model.predict(pd.DataFrame({"ds": pd.to_datetime(["2024-06-01", "2027-06-01"])})).yhat
    for day, expected in zip(["2024-06-01", "2027-06-01"], yhat, strict=True):
        assert json.loads(served.answers[day])["prediction"] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("first_day"), "KeyError('first_day')"),
        (lambda m: m.update(trained_at="27 Nov 2026"), "Invalid isoformat string"),
        (lambda m: m.update(trained_at="2026-11-27T12:00:00"), "has no time zone"),
        (lambda m: m.update(format=5), "metadata format 5 is not one of (1, 2, 3, 4)"),
        (lambda m: m.update(forecast="log_close"), "forecast is not an object"),
        (lambda m: m["forecast"].update(interval=[0.1]), "forecast interval must be an object, got list"),
        (lambda m: m["forecast"]["interval"].update(levels=[80, 99]), "forecast interval is malformed"),
        (lambda m: m["forecast"]["interval"].update(levels=[50]), "levels must include 80 and be among"),
        (lambda m: m.update(closes={"first_day": "2014-09-17", "values": [-1.0]}), "closes must be positive"),
    ],
)
def test_refuses_metadata_the_api_cannot_rely_on(model_dir_copy, change, message):
    rewrite_metadata(model_dir_copy, change)
    with pytest.raises(api.ModelError, match=re.escape(message)):
        api.create_app(model_dir_copy)


@pytest.mark.parametrize(
    ("value", "served"),
    [
        (71989.944, 71989.94),  # BTC keeps its cents
        (3116.004, 3116.0),
        (145.12345, 145.123),
        (1.4512345, 1.45123),  # a $1.45 coin: 6 significant digits, not [1.4, 1.5]
        (1.005, 1.005),
        (0.07123456, 0.0712346),
        (0.0000123456789, 1.23457e-05),
        (0.0, 0.0),
    ],
)
def test_prices_keep_six_significant_digits_and_the_cent(value, served):
    assert price(value) == served
