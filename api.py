"""Crypto Predict API: Prophet forecasts of daily crypto closes over HTTP.

``create_app(model_dir)`` builds the Flask app around every model in a folder; ``python
api.py`` serves it with Waitress. At startup each model is checked against its metadata
(see README, "Model artifact") and every answer of its served date range is computed once,
so a request is a lookup.
"""

import functools
import hashlib
import json
import logging
import os
import pickle  # nosec B403  # only the checked local model file is unpickled; see load_model
import re
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from flask import Response, current_app, g, redirect, request, send_from_directory
from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI, Tag
from flask_openapi3_swagger.plugins import RegisterPlugin as SwaggerPlugin
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date, is_resource_modified

log = logging.getLogger("api")

DEFAULT_MODEL_DIR = "models"
METADATA_FORMATS = (1, 2)  # the metadata formats this API reads (README, "Model artifact")
SERVED_INTERVAL_WIDTH = 0.8  # the documented answers are 80% intervals
# Containers must listen on all interfaces; `make run` passes HOST=127.0.0.1.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # nosec B104
# Prophet draws its intervals at random; a fixed seed makes every start give the same answers.
FORECAST_SEED = 0
DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only
MAX_RANGE_DAYS = 1500  # days in one range request: about four years of daily points
ECHO_LIMIT = 40  # characters of a bad value quoted back in an error message
JSON = "application/json"
CSV = "text/csv"
FORECAST_CSV_HEADER = b"date,prediction,prediction_low,prediction_high\n"
HISTORY_CSV_HEADER = b"date,close\n"
# Forecasts change only when a model does (retrained every 6 hours): caches may reuse an answer
# for an hour, then revalidate it cheaply with its ETag.
CACHE_MAX_AGE = 3600
# The API only answers GETs: no request needs a body, so a big one is refused unread.
MAX_BODY_BYTES = 16 * 1024
WEB_DIR = Path(__file__).resolve().parent / "web"  # the page at /; ships beside api.py
# The page may talk to this API only: scripts, styles and requests from its own origin.
# Plotly sets inline styles, hence 'unsafe-inline' for styles (never for scripts).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
YEAR_SECONDS = 365 * 24 * 3600


class ModelError(Exception):
    """A model file or its metadata cannot be served; the message says which and why."""


class ClientError(ValueError):
    """A client error (400); the message tells the client what is accepted."""


class UnknownAsset(LookupError):
    """A path names no served asset (404)."""


# ---------------------------------------------------------------- model loading


@dataclass(frozen=True)
class ServedModel:
    """One checked model: its metadata and every answer it gives, precomputed."""

    key: str  # "btc": the asset's name in URLs
    metadata: dict
    first_day: date  # first and last day with a forecast
    last_day: date
    answers: dict[str, bytes]  # "YYYY-MM-DD" -> the JSON body of a one-day answer
    csv_rows: dict[str, bytes]  # "YYYY-MM-DD" -> the same answer as a CSV line
    closes: dict[str, bytes]  # "YYYY-MM-DD" -> {"date","close"} JSON of the training data
    close_rows: dict[str, bytes]  # the same as CSV lines


def metadata_path(model_path: Path) -> Path:
    """Where the metadata of a model file lives: the same name with a .json suffix."""
    return model_path.with_suffix(".json")


def read_metadata(model_path: Path) -> dict:
    """The metadata written beside the model by train.py, with every field the API relies on checked."""
    path = metadata_path(model_path)
    try:
        metadata = json.loads(path.read_text())
        if metadata["format"] not in METADATA_FORMATS:
            raise ValueError(f"metadata format {metadata['format']!r} is not one of {METADATA_FORMATS}")
        for field in ("first_day", "last_day"):
            date.fromisoformat(metadata["serve"][field])
            date.fromisoformat(metadata[field])
        for field in ("model_sha256", "trained_at", "symbol", "name"):
            if not isinstance(metadata[field], str):
                raise TypeError(f"{field} is not a string")
        if trained_at(metadata).tzinfo is None:
            raise ValueError(f"trained_at {metadata['trained_at']!r} has no time zone")
        if not isinstance(metadata.get("forecast") or {}, dict):
            raise TypeError("forecast is not an object")
    except FileNotFoundError as error:
        raise ModelError(f"model metadata {path} not found (run train.py)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model metadata {path} is unreadable: {error!r}") from error
    return metadata


def trained_at(metadata: dict) -> datetime:
    """When the model was trained (ISO 8601; a trailing Z means UTC)."""
    return datetime.fromisoformat(metadata["trained_at"].replace("Z", "+00:00"))


def load_model(model_path: Path, expected_sha256: str):
    """Unpickle the model, but only once its bytes match the sha256 its metadata names."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # plotly is not needed to serve
    from prophet import Prophet

    try:
        content = model_path.read_bytes()
    except OSError as error:
        raise ModelError(f"model {model_path} cannot be read: {error.strerror or error}") from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"model {model_path} has sha256 {actual}, but its metadata expects {expected_sha256}: "
            "the file was changed or truncated after training"
        )
    try:
        # Trusted input: a local file, written by train.py and matched to its metadata above.
        model = pickle.loads(content)  # noqa: S301  # nosec B301
    except Exception as error:
        raise ModelError(f"model {model_path} is not a readable pickle: {error!r}") from error
    if not isinstance(model, Prophet) or getattr(model, "history", None) is None:
        raise ModelError(f"model {model_path} holds a {type(model).__name__}, not a fitted Prophet model")
    return model


def forecast_table(model, first_day: date, last_day: date) -> pd.DataFrame:
    """Forecast every day of the range in one dense grid: the only way to get honest far-future bands.

    Prophet simulates future trend changes only at the rows it is asked about, so a lone far
    date gets a band that is much too narrow; a daily grid simulates them all.
    """
    grid = pd.DataFrame({"ds": pd.date_range(first_day, last_day, freq="D")})
    np.random.seed(FORECAST_SEED)
    return model.predict(grid)[["ds", "yhat", "yhat_lower", "yhat_upper", "trend"]]


@dataclass(frozen=True)
class ForecastContract:
    """How the model's output becomes served USD prices: metadata "forecast" (README, "Model artifact")."""

    log_target: bool  # the model predicts log(close)
    level_offset: float  # added to the model's output on days after the last training day
    hold_trend: bool  # after the last training day, the trend stays at its value on that day
    interval: dict | None  # calibrated bounds by days ahead, replacing the model's own after the last day


def forecast_contract(metadata: dict) -> ForecastContract:
    """The metadata's forecast contract, checked; metadata without one means Prophet on the close, as is."""
    spec = metadata.get("forecast") or {}
    target = spec.get("target", "close")
    if target not in ("close", "log_close"):
        raise ModelError(f"unknown forecast target {target!r}: expected 'close' or 'log_close'")
    offset = spec.get("level_offset", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, int | float) or not np.isfinite(offset):
        raise ModelError(f"forecast level_offset must be a finite number, got {offset!r}")
    interval = spec.get("interval")
    if interval is not None:
        check_interval(interval)
    return ForecastContract(target == "log_close", float(offset), spec.get("hold_trend") is True, interval)


def check_interval(interval) -> None:
    """Raise ModelError unless the calibrated interval is well formed and widens with the horizon."""
    if not isinstance(interval, dict):
        raise ModelError(f"forecast interval must be an object, got {type(interval).__name__}")
    try:
        days, lower, upper = (
            np.asarray(interval[k], dtype=float) for k in ("horizon_days", "lower", "upper")
        )
    except (TypeError, KeyError, ValueError) as error:
        raise ModelError(f"forecast interval is malformed: {error!r}") from error
    problem = None
    if interval.get("width") != SERVED_INTERVAL_WIDTH:
        problem = f"width must be {SERVED_INTERVAL_WIDTH}: the API serves 80% intervals"
    elif not (days.ndim == 1 and len(days) and days.shape == lower.shape == upper.shape):
        problem = "horizon_days, lower and upper must be lists of the same, non-zero length"
    elif not (np.isfinite(lower).all() and np.isfinite(upper).all()):
        problem = "bounds must be finite"
    elif days[0] < 1 or (np.diff(days) <= 0).any():
        problem = "horizon_days must increase from at least 1"
    elif (lower > 0).any() or (upper < 0).any() or (np.diff(lower) > 0).any() or (np.diff(upper) < 0).any():
        problem = "bounds must contain the prediction and widen with the horizon"
    if problem:
        raise ModelError(f"forecast interval is malformed: {problem}")


def interval_bounds(days_ahead, horizon_days, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """Log bounds relative to the prediction: linear between knots, growing like sqrt(h) past the last."""
    days_ahead = np.asarray(days_ahead, dtype=float)
    growth = np.sqrt(np.maximum(days_ahead / horizon_days[-1], 1.0))
    return (
        np.interp(days_ahead, horizon_days, lower) * growth,
        np.interp(days_ahead, horizon_days, upper) * growth,
    )


def served_forecast(table: pd.DataFrame, contract: ForecastContract, last_day: date) -> pd.DataFrame:
    """The model's forecast table in USD, as the contract says; days up to `last_day` are the fit."""
    ahead = (table.ds - pd.Timestamp(last_day)).dt.days.to_numpy()
    future = ahead > 0
    shift = np.where(future, contract.level_offset, 0.0)
    if contract.hold_trend:
        last_trend = table.trend.to_numpy()[ahead == 0]
        if len(last_trend) != 1:
            raise ModelError(f"the served range does not hold the last training day {last_day}")
        shift = shift + np.where(future, last_trend[0] - table.trend.to_numpy(), 0.0)
    inverse = np.exp if contract.log_target else np.asarray
    prediction, low, high = (
        inverse(table[c].to_numpy() + shift) for c in ("yhat", "yhat_lower", "yhat_upper")
    )
    if contract.interval is not None:
        bounds = interval_bounds(
            ahead[future], *(contract.interval[k] for k in ("horizon_days", "lower", "upper"))
        )
        low[future] = prediction[future] * np.exp(bounds[0])
        high[future] = prediction[future] * np.exp(bounds[1])
    return pd.DataFrame({"ds": table.ds, "yhat": prediction, "yhat_lower": low, "yhat_upper": high})


def forecast_answers(table: pd.DataFrame) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Every day's answer as a JSON body and as a CSV line, keyed by ISO day, serialized once."""
    answers, csv_rows = {}, {}
    for row in table.itertuples(index=False):
        day = row.ds.date().isoformat()
        values = [price(v) for v in (row.yhat, row.yhat_lower, row.yhat_upper)]
        answers[day] = compact_json(
            {
                "date": http_date(row.ds.to_pydatetime().replace(tzinfo=UTC)),
                "prediction": values[0],
                "prediction_low": values[1],
                "prediction_high": values[2],
            }
        )
        csv_rows[day] = ",".join([day, *map(str, values)]).encode() + b"\n"
    return answers, csv_rows


def price(value) -> float:
    """A USD price as served: to the cent, or to 6 significant digits below a dollar (cheap coins)."""
    value = float(value)
    return round(value, 2) if abs(value) >= 1 else float(f"{value:.6g}")


def close_answers(history: pd.DataFrame) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The training data's daily closes as JSON objects and CSV lines, keyed by ISO day."""
    closes, rows = {}, {}
    for ds, y in zip(history.ds, history.y, strict=True):
        day, close = ds.date().isoformat(), price(y)
        closes[day] = compact_json({"date": day, "close": close})
        rows[day] = f"{day},{close}\n".encode()
    return closes, rows


def serve_model(model_path: Path) -> ServedModel:
    """Check and load one model, then precompute all its answers."""
    metadata = read_metadata(model_path)
    model = load_model(model_path, metadata["model_sha256"])
    first_day = date.fromisoformat(metadata["serve"]["first_day"])
    last_day = date.fromisoformat(metadata["serve"]["last_day"])
    if first_day > last_day:
        raise ModelError(f"model metadata serves an empty range {first_day} to {last_day}")
    contract = forecast_contract(metadata)
    table = served_forecast(
        forecast_table(model, first_day, last_day), contract, date.fromisoformat(metadata["last_day"])
    )
    answers, csv_rows = forecast_answers(table)
    history = model.history.assign(y=np.exp(model.history.y)) if contract.log_target else model.history
    closes, close_rows = close_answers(history)
    return ServedModel(model_path.stem, metadata, first_day, last_day, answers, csv_rows, closes, close_rows)


def serve_models(model_dir: Path) -> dict[str, ServedModel]:
    """Every model in the folder, keyed by asset: each <asset>.json names its <asset>.pkl."""
    paths = sorted(path.with_suffix(".pkl") for path in model_dir.glob("*.json"))
    if not paths:
        raise ModelError(f"no model metadata (*.json) in {model_dir}: run train.py first")
    return {path.stem: serve_model(path) for path in paths}


# ---------------------------------------------------------------- request parsing


def one_value(args, name: str) -> str | None:
    """The single value of query parameter `name`, or None when absent."""
    values = args.getlist(name)
    if len(values) > 1:
        raise ClientError(f"give '{name}' once; got it {len(values)} times")
    return values[0] if values else None


def servable_day(text: str, name: str, first: date, last: date, what: str = "forecast") -> date:
    """The day `text` names, if it is a well-formed calendar day between first and last."""
    if not DAY_PATTERN.fullmatch(text):
        raise ClientError(f"'{name}' must be a day as YYYY-MM-DD, e.g. 2024-06-01; got {_quote(text)}")
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise ClientError(f"{text} is not a calendar day ({error})") from error
    if not first <= day <= last:
        raise ClientError(f"no {what} for {day}: this model serves {first} to {last}")
    return day


def requested_day(args, served: ServedModel) -> str:
    """The single valid, servable `date` in the query string, as the ISO key of its answer."""
    text = one_value(args, "date")
    if text is None:
        raise ClientError("missing query parameter 'date': give one day as YYYY-MM-DD, e.g. ?date=2024-06-01")
    if text in served.answers:  # the common case, decided by one lookup
        return text
    return servable_day(text, "date", served.first_day, served.last_day).isoformat()


def requested_range(args, first: date, last: date, what: str = "forecast") -> list[str]:
    """The ISO days from `start` to `end` (inclusive), both required, at most MAX_RANGE_DAYS."""
    start_text, end_text = one_value(args, "start"), one_value(args, "end")
    if start_text is None or end_text is None:
        raise ClientError(
            "a range needs both 'start' and 'end' as YYYY-MM-DD, e.g. ?start=2024-06-01&end=2024-06-30"
        )
    start = servable_day(start_text, "start", first, last, what)
    end = servable_day(end_text, "end", first, last, what)
    if start > end:
        raise ClientError(f"'start' ({start}) is after 'end' ({end})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ClientError(
            f"at most {MAX_RANGE_DAYS} days per request; {start} to {end} is {(end - start).days + 1}"
        )
    return [day.date().isoformat() for day in pd.date_range(start, end, freq="D")]


def wants_csv() -> bool:
    """True when the client prefers CSV to JSON (Accept: text/csv)."""
    return request.accept_mimetypes.best_match([JSON, CSV], default=JSON) == CSV


def _quote(text: str) -> str:
    """A user's value, shortened, for an error message (JSON escapes the rest)."""
    return repr(text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "...")


# ---------------------------------------------------------------- responses


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def error_response(status: int, message: str) -> Response:
    return Response(compact_json({"error": message}), status=status, mimetype=JSON)


def range_response(served: ServedModel, days: list[str], items: str, json_rows: dict, csv_rows: dict, header):
    """A list of daily items as JSON (an object with metadata) or CSV, from precomputed pieces."""
    if wants_csv():
        return Response(header + b"".join(csv_rows[day] for day in days if day in csv_rows), mimetype=CSV)
    # Splice the precomputed items into the envelope instead of re-serializing them.
    prefix = compact_json(
        {"asset": served.key, "symbol": served.metadata["symbol"], "start": days[0], "end": days[-1]}
    )
    body = (
        prefix[:-1]
        + f',"{items}":['.encode()
        + b",".join(json_rows[d] for d in days if d in json_rows)
        + b"]}"
    )
    return Response(body, mimetype=JSON)


def model_card(served: ServedModel) -> dict:
    """What a user needs to judge a model: provenance, span, versions, servable range, backtest."""
    keys = ("name", "symbol", "trained_at", "source", "origin", "first_day", "last_day", "rows", "versions")
    card = {"asset": served.key, **{key: served.metadata.get(key) for key in keys}}
    card["model_sha256"] = served.metadata["model_sha256"]
    card["serves"] = {"first_day": served.first_day.isoformat(), "last_day": served.last_day.isoformat()}
    card["backtest"] = served.metadata.get("backtest")
    return card


# ---------------------------------------------------------------- caching


@dataclass(frozen=True)
class CacheValidators:
    """The cache headers of every data answer, per media type, fixed for the life of the process."""

    etags: dict[str, str]  # media type -> ETag value (unquoted)
    last_modified: datetime  # when the newest model was trained
    headers: dict[str, list[tuple[str, str]]]  # media type -> headers of its 200 and 304 answers


def cache_validators(models: dict[str, ServedModel]) -> CacheValidators:
    """ETags that change whenever any served byte does (a retrained model, a new format), computed once."""
    digest = hashlib.sha256()
    for _, served in sorted(models.items()):
        digest.update(compact_json(served.metadata))
        for table in (served.answers, served.csv_rows, served.closes, served.close_rows):
            digest.update(b"".join(table.values()))
    version = digest.hexdigest()[:20]
    newest = max(trained_at(served.metadata) for served in models.values())
    etags = {JSON: f"{version}-json", CSV: f"{version}-csv"}
    headers = {
        mimetype: [
            ("Cache-Control", f"public, max-age={CACHE_MAX_AGE}"),
            ("ETag", f'"{etag}"'),
            ("Last-Modified", http_date(newest)),
            ("Vary", "Accept"),  # JSON or CSV at the same URL
        ]
        for mimetype, etag in etags.items()
    }
    return CacheValidators(etags, newest, headers)


def cacheable(validators: CacheValidators):
    """Decorate a view: its 200 answers get cache headers, or become an empty 304 when the client's
    copy is current (If-None-Match, or else If-Modified-Since)."""

    def decorate(view):
        @functools.wraps(view)
        def answer(*args, **kwargs):
            response = view(*args, **kwargs)
            response = current_app.make_response(response)  # a dict becomes Flask's JSON answer
            if response.status_code != 200 or response.mimetype not in validators.headers:
                return response
            headers = validators.headers[response.mimetype]
            etag = validators.etags[response.mimetype]
            if not is_resource_modified(request.environ, etag=etag, last_modified=validators.last_modified):
                return Response(status=304, headers=headers)
            response.headers.extend(headers)
            return response

        return answer

    return decorate


# ---------------------------------------------------------------- OpenAPI models


def optional_day(description: str, example: str | None = None) -> Any:
    """A documented optional day parameter: a plain date string, without pydantic's null default."""

    def shape(schema: dict) -> None:
        schema.pop("default", None)
        schema.update(format="date", **({"example": example} if example else {}))

    return Field(None, description=description, json_schema_extra=shape)


class ForecastQuery(BaseModel):
    # Documentation only: the view parses the query itself (see parses_own_query).
    date: str = optional_day(
        "One UTC day to forecast, YYYY-MM-DD, within the model's servable range (see /models).", "2024-06-01"
    )
    # No examples for start and end: Swagger UI fills examples in, and a date with a range is a 400.
    start: str = optional_day(
        f"First day of a range (with 'end'; at most {MAX_RANGE_DAYS} days), YYYY-MM-DD, e.g. 2024-06-01."
    )
    end: str = optional_day("Last day of a range (with 'start'), YYYY-MM-DD, e.g. 2024-06-30.")


class HistoryQuery(BaseModel):
    start: str = Field(
        description=f"First day (at most {MAX_RANGE_DAYS} days with 'end'), YYYY-MM-DD.",
        json_schema_extra={"format": "date", "example": "2024-06-01"},
    )
    end: str = Field(
        description="Last day, YYYY-MM-DD.", json_schema_extra={"format": "date", "example": "2024-06-30"}
    )


class Forecast(BaseModel):
    """The forecast close for one day, with its 80% interval."""

    date: str = Field(
        description="The day forecast, as an HTTP date (00:00:00 GMT).",
        json_schema_extra={"example": "Sat, 01 Jun 2024 00:00:00 GMT"},
    )
    prediction: float = Field(description="Forecast close in USD.")
    prediction_low: float = Field(description="Lower bound of the 80% interval, USD.")
    prediction_high: float = Field(description="Upper bound of the 80% interval, USD.")


class ForecastRange(BaseModel):
    """Daily forecasts from start to end."""

    asset: str
    symbol: str
    start: str = Field(description="First day, YYYY-MM-DD.")
    end: str = Field(description="Last day, YYYY-MM-DD.")
    forecasts: list[Forecast]


CSV_CONTENT = {CSV: {"schema": {"type": "string"}}}


def header_doc(description: str) -> dict:
    return {"description": description, "required": True, "schema": {"type": "string"}}


CACHE_HEADERS = {
    "Cache-Control": header_doc(f"public, max-age={CACHE_MAX_AGE}: reuse for an hour, then revalidate."),
    "ETag": header_doc("Changes whenever the models or their answers do; send it back in If-None-Match."),
    "Last-Modified": header_doc("When the newest model was trained."),
    "Vary": header_doc("Accept: JSON and CSV share a URL."),
}
NOT_MODIFIED = {
    "description": "Not Modified: the ETag in If-None-Match is current; no body.",
    "headers": {name: CACHE_HEADERS[name] for name in ("Cache-Control", "ETag", "Vary")},
}


def redirect_doc(description: str) -> dict:
    return {"description": description, "headers": {"Location": header_doc("Where to go.")}}


class ForecastAnswer(RootModel[Forecast | ForecastRange]):
    """One day (with 'date') or a range (with 'start' and 'end'); CSV on Accept: text/csv."""

    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT, "headers": CACHE_HEADERS})


class Close(BaseModel):
    date: str = Field(description="The day, YYYY-MM-DD.")
    close: float = Field(description="Actual close in USD, from the model's training data.")


class History(BaseModel):
    """Actual daily closes the model was trained on; CSV on Accept: text/csv."""

    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT, "headers": CACHE_HEADERS})

    asset: str
    symbol: str
    start: str
    end: str
    closes: list[Close]


class ErrorBody(BaseModel):
    """What was wrong with the request and what is accepted."""

    error: str


class ServedRange(BaseModel):
    first_day: str = Field(description="First day with a forecast, YYYY-MM-DD.")
    last_day: str = Field(description="Last day with a forecast, YYYY-MM-DD.")


class ModelCard(BaseModel):
    model_config = ConfigDict(openapi_extra={"headers": CACHE_HEADERS})

    asset: str = Field(description="The asset's name in URLs.")
    name: str
    symbol: str = Field(description="Alpaca's symbol, e.g. BTC/USD.")
    trained_at: str = Field(description="When the model was trained (UTC, ISO 8601).")
    source: str = Field(description="'alpaca' (live data) or 'snapshot' (the bundled offline data).")
    origin: str = Field(description="The API URL or file the data came from.")
    first_day: str = Field(description="First day of the training data.")
    last_day: str = Field(description="Last day of the training data.")
    rows: int = Field(description="Days of training data.")
    versions: dict[str, str] = Field(description="Library versions used for training.")
    model_sha256: str
    serves: ServedRange
    backtest: dict[str, Any] | None = Field(description="Backtest summary, when training ran one.")


class ModelCards(RootModel[dict[str, ModelCard]]):
    """Every served model's card, keyed by asset."""

    model_config = ConfigDict(openapi_extra={"headers": CACHE_HEADERS})


class AssetHealth(BaseModel):
    trained_at: str
    data_last_day: str
    serves: ServedRange


class Health(BaseModel):
    status: Literal["ok"] = Field(description="'ok' once every model is loaded and its answers are ready.")
    models: dict[str, AssetHealth]


# ---------------------------------------------------------------- app


def create_app(model_dir: str | Path | None = None) -> OpenAPI:
    """Build the app around every model in `model_dir`; raises ModelError if one cannot be served."""
    model_dir = Path(model_dir or os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))
    models = serve_models(model_dir)
    app = OpenAPI(
        __name__,
        info=Info(
            title="Crypto Predict API",
            version=os.environ.get("APP_VERSION", "dev"),  # the release, set by the image build
            description="Forecasts of daily crypto closes ("
            + ", ".join(m.metadata["symbol"] for m in models.values())
            + ") from Prophet models retrained on fresh data.",
        ),
        doc_ui=False,  # Swagger UI is mounted at /docs below, reading /openapi.json
        security_schemes={},  # public API; flask-openapi3 would otherwise emit an invalid null
    )
    app.debug = False  # whatever FLASK_DEBUG says: debug pages would show code to anyone
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # a body that is read at all gets a 413 past this
    # Public, read-only data: any origin may call it, and "*" keeps responses cacheable (no Vary).
    # Preflights name only the methods the API answers and may be reused for 2 hours (Chromium's cap).
    CORS(app, send_wildcard=True, methods=["GET", "HEAD", "OPTIONS"], max_age=7200)
    app.after_request(add_default_headers)
    app.extensions["served_models"] = models
    metrics = register_metrics(app, models)
    register_docs(app)
    register_forecast_routes(app, models)
    register_service_routes(app, models)
    register_page(app)
    register_error_handlers(app)
    # Built once, now that every route is registered, so no request ever builds it.
    app.extensions["openapi"] = documented_spec(app)
    app.wsgi_app = PrecomputedAnswers(app, models, metrics)
    for served in models.values():
        log.info(
            "%s model ready: %d answers, %s to %s",
            served.key,
            len(served.answers),
            served.first_day,
            served.last_day,
        )
    return app


def asset_path_model(models: dict[str, ServedModel]) -> type[BaseModel]:
    """The documented `asset` path parameter: one of the served assets."""
    return create_model(
        "AssetPath",
        asset=(Literal[tuple(models)], Field(description="The asset: " + ", ".join(models) + ".")),
    )


def register_forecast_routes(app: OpenAPI, models: dict[str, ServedModel]) -> None:
    forecasts = Tag(name="forecasts", description="Forecasts and the data behind them")
    answer_docs = {200: ForecastAnswer, 304: NOT_MODIFIED, 400: ErrorBody, 404: ErrorBody}
    AssetPath = asset_path_model(models)  # a class, so named like one
    cached = cacheable(cache_validators(models))

    def find(asset: str) -> ServedModel:
        served = models.get(asset)
        if served is None:
            raise UnknownAsset(asset)
        return served

    def forecast_for(served: ServedModel) -> Response:
        args = request.args
        if "start" in args or "end" in args:
            if "date" in args:
                raise ClientError("give either 'date', or 'start' and 'end', not both")
            days = requested_range(args, served.first_day, served.last_day)
            return range_response(
                served, days, "forecasts", served.answers, served.csv_rows, FORECAST_CSV_HEADER
            )
        day = requested_day(args, served)
        if wants_csv():
            return Response(FORECAST_CSV_HEADER + served.csv_rows[day], mimetype=CSV)
        return Response(served.answers[day], mimetype=JSON)

    @app.get(
        "/forecast/<asset>", tags=[forecasts], summary="Forecast one day or a range", responses=answer_docs
    )
    @parses_own_query
    @cached
    def forecast(asset: str, path: AssetPath = None, query: ForecastQuery = None):
        """The forecast close and its 80% interval for one day (`date`) or a range (`start`, `end`)."""
        return forecast_for(find(asset))

    if "btc" in models:
        btc = models["btc"]

        @app.get(
            "/bitcoin",
            tags=[forecasts],
            summary="Forecast BTC/USD (alias of /forecast/btc)",
            responses={code: doc for code, doc in answer_docs.items() if code != 404},  # no asset to miss
        )
        @parses_own_query
        @cached
        def bitcoin(query: ForecastQuery = None):
            """Exactly /forecast/btc: the forecast close of BTC/USD for a UTC day, or a range."""
            return forecast_for(btc)

    @app.get(
        "/history/<asset>",
        tags=[forecasts],
        summary="Actual daily closes",
        responses=answer_docs | {200: History},
    )
    @parses_own_query
    @cached
    def history(asset: str, path: AssetPath = None, query: HistoryQuery = None):
        """The daily closes the model was trained on, from `start` to `end`."""
        served = find(asset)
        first, last = (
            date.fromisoformat(served.metadata["first_day"]),
            date.fromisoformat(served.metadata["last_day"]),
        )
        days = requested_range(request.args, first, last, what="data")
        return range_response(served, days, "closes", served.closes, served.close_rows, HISTORY_CSV_HEADER)

    @app.get(
        "/models", tags=[forecasts], summary="Model cards", responses={200: ModelCards, 304: NOT_MODIFIED}
    )
    @cached
    def model_cards():
        """Every model's card: training time, data source and span, versions, servable range, backtest."""
        return {key: model_card(served) for key, served in models.items()}

    @app.get(
        "/models/<asset>",
        tags=[forecasts],
        summary="One model card",
        responses={200: ModelCard, 304: NOT_MODIFIED, 404: ErrorBody},
    )
    @parses_own_query
    @cached
    def one_model_card(asset: str, path: AssetPath = None):
        """The card of one asset's model."""
        return model_card(find(asset))


def register_service_routes(app: OpenAPI, models: dict[str, ServedModel]) -> None:
    service = Tag(name="service", description="Service status and documentation")
    health_body = compact_json(
        {
            "status": "ok",
            "models": {
                key: {
                    "trained_at": served.metadata["trained_at"],
                    "data_last_day": served.metadata["last_day"],
                    "serves": {
                        "first_day": served.first_day.isoformat(),
                        "last_day": served.last_day.isoformat(),
                    },
                }
                for key, served in models.items()
            },
        }
    )

    @app.get("/health", tags=[service], summary="Readiness", responses={200: Health})
    def health():
        """Answers 200 once every model is loaded and its answers are precomputed."""
        return Response(health_body, mimetype=JSON)


def register_page(app: OpenAPI) -> None:
    """The chart page at / and its files under /web/ (the folder web/ beside api.py)."""
    if not (WEB_DIR / "index.html").is_file():
        log.warning("%s/index.html not found: / will answer 404", WEB_DIR)
    page_doc = {"description": "The page (HTML)", "content": {"text/html": {"schema": {"type": "string"}}}}

    @app.get("/", tags=[Tag(name="service")], summary="Forecast chart page", responses={200: page_doc})
    def index():
        """A page that charts each asset's history and forecast and answers a date (uses this API)."""
        response = send_from_directory(WEB_DIR, "index.html")  # no-cache: revalidated by ETag
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    # Flask's own route, so not in the OpenAPI document: the page's files are not part of the API.
    @app.route("/web/<path:filename>", methods=["GET"])
    def web_file(filename: str):
        response = send_from_directory(WEB_DIR, filename)
        if filename.startswith("vendor/"):  # vendored files carry their version in their names
            response.cache_control.no_cache = None
            response.cache_control.public = True
            response.cache_control.max_age = YEAR_SECONDS
            response.cache_control.immutable = True
        return response


def parses_own_query(view):
    """Let flask-openapi3 document the view's query and path models while the view parses them.

    Its own validation reads only the first of repeated parameters, answers 422 in another
    shape, and rebuilds a JSON schema on every request: too loose and too slow for /bitcoin.
    """
    view.__delay_validate_request__ = True
    return view


def register_docs(app: OpenAPI) -> None:
    """Serve the OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""
    service = Tag(name="service")
    app.register_blueprint(SwaggerPlugin.register(doc_url="/openapi.json"), url_prefix="/docs")
    # Swagger UI would otherwise send the document's URL to validator.swagger.io (on any host but localhost).
    app.config["SWAGGER_CONFIG"] = {"validatorUrl": "none"}

    @app.get(
        "/openapi.json",
        tags=[service],
        summary="OpenAPI document",
        responses={200: {"description": "This document (OpenAPI 3.1, JSON)", "content": {JSON: {}}}},
    )
    def openapi_document():
        """This API described as OpenAPI 3.1."""
        return app.extensions["openapi"]

    @app.get(
        "/docs",
        tags=[service],
        summary="Swagger UI",
        responses={302: redirect_doc("Redirect to Swagger UI")},
    )
    def docs():
        """Interactive documentation (Swagger UI, served locally)."""
        return redirect("/docs/swagger", code=302)


def documented_spec(app: OpenAPI) -> dict:
    """app.api_doc without the 422 answers flask-openapi3 adds to every route: we never send them."""
    spec = app.api_doc
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop(app.validation_error_status, None)
    return spec


@dataclass(frozen=True)
class Metrics:
    requests_total: Counter
    latency: Histogram


def register_metrics(app: OpenAPI, models: dict[str, ServedModel]) -> Metrics:
    """Prometheus metrics at /metrics: requests and latency by route and status, model age."""
    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests_total", "HTTP requests answered", ["route", "method", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "Time spent answering, by route",
        ["route", "method"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        registry=registry,
    )
    model_age = Gauge(
        "model_age_seconds", "Seconds since the model was trained", ["asset"], registry=registry
    )
    for key, served in models.items():
        trained = trained_at(served.metadata).timestamp()
        model_age.labels(asset=key).set_function(lambda trained=trained: time.time() - trained)

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        # The route's rule, not the raw path: unknown paths must not create new series.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        requests_total.labels(route, request.method, response.status_code).inc()
        latency.labels(route, request.method).observe(
            time.perf_counter() - g.get("started", time.perf_counter())
        )
        return response

    @app.get(
        "/metrics",
        tags=[Tag(name="service")],
        summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}},
    )
    def metrics():
        """Request counts and latency histograms by route and status, and each model's age."""
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return Metrics(requests_total, latency)


class PrecomputedAnswers:
    """WSGI middleware: answers plain one-day forecasts before Flask, from precomputed responses.

    It takes only GET /bitcoin?date=D and GET /forecast/<asset>?date=D with a servable D and
    no content negotiation or conditional headers; everything else, errors included, goes to
    Flask. Each route's status and headers are captured from the app's own answer at startup,
    so both paths answer byte for byte alike, and metrics count both.
    """

    PLAIN_ACCEPT = (None, "*/*", JSON)

    def __init__(self, app: OpenAPI, models: dict[str, ServedModel], metrics: Metrics):
        self.flask = app.wsgi_app
        self.routes = {f"/forecast/{key}": served for key, served in models.items()}
        if "btc" in models:
            self.routes["/bitcoin"] = models["btc"]
        rules = {path: "/bitcoin" if path == "/bitcoin" else "/forecast/<asset>" for path in self.routes}
        self.headers = {
            path: self.captured_headers(app, f"{path}?date={served.first_day}", rules[path], metrics)
            for path, served in self.routes.items()
        }
        self.counted = {path: metrics.requests_total.labels(rules[path], "GET", 200) for path in self.routes}
        self.timed = {path: metrics.latency.labels(rules[path], "GET") for path in self.routes}

    @staticmethod
    def captured_headers(app: OpenAPI, url: str, rule: str, metrics: Metrics) -> list:
        """The headers Flask sends with its 200 answer to `url`, but Content-Length."""
        response = app.test_client().get(url)
        if response.status_code != 200:
            raise ModelError(f"{url} did not answer at startup: {response.get_data(as_text=True)}")
        # The capture is not traffic: forget its samples.
        metrics.requests_total.remove(rule, "GET", "200")
        metrics.latency.remove(rule, "GET")
        return [(name, value) for name, value in response.headers.items() if name != "Content-Length"]

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        path = environ.get("PATH_INFO")
        served = self.routes.get(path)
        query = environ.get("QUERY_STRING", "")
        if (
            served is not None
            and environ["REQUEST_METHOD"] == "GET"
            and query.startswith("date=")
            and environ.get("HTTP_ACCEPT") in self.PLAIN_ACCEPT
            and "HTTP_IF_NONE_MATCH" not in environ
            and "HTTP_IF_MODIFIED_SINCE" not in environ
        ):
            body = served.answers.get(query[5:])  # a miss (bad or unknown day, more parameters) goes to Flask
            if body is not None:
                start_response("200 OK", [*self.headers[path], ("Content-Length", str(len(body)))])
                self.counted[path].inc()
                self.timed[path].observe(time.perf_counter() - started)
                return [body]
        return self.flask(environ, start_response)


def add_default_headers(response: Response) -> Response:
    """Every answer: no MIME sniffing, and nothing cached unless the view says how (forecasts do)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def register_error_handlers(app: OpenAPI) -> None:
    @app.errorhandler(ClientError)
    def bad_request(error: ClientError):
        return error_response(400, str(error))

    @app.errorhandler(UnknownAsset)
    def unknown_asset(error: UnknownAsset):
        known = ", ".join(app.extensions["served_models"])
        return error_response(404, f"unknown asset {_quote(str(error))}; known assets: {known}")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = error.get_response()  # keeps headers such as Allow on 405
        response.set_data(compact_json({"error": f"{error.code} {error.name}: {error.description}"}))
        response.mimetype = JSON
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error; it has been logged")


# ---------------------------------------------------------------- serving


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# Waitress's limits for a GET-only API whose longest honest URL is under 100 bytes (README, "Limits").
SERVER_LIMITS = {
    "max_request_header_size": 16 * 1024,  # request line (with the URL) plus headers; past it: 431
    "max_request_body_size": MAX_BODY_BYTES,  # past it: 413 before the body is read or the app runs
    "connection_limit": 256,  # open connections at once; far below select()'s 1024 descriptors
    "channel_timeout": 75,  # seconds an idle connection is kept: longer than proxies' usual 60 s
    "expose_tracebacks": False,  # an error never shows code to the client
}


def main() -> int:
    from waitress import serve

    configure_logging()
    # The server never plots, yet importing prophet imports matplotlib when it is installed (it is
    # a prophet dependency): about 0.7 s of every start, plus a font cache to rebuild in a
    # read-only container. A None entry makes that import fail, which prophet.plot allows for.
    sys.modules.setdefault("matplotlib", None)
    try:
        app = create_app()
    except ModelError as error:
        log.error("cannot start: %s", error)
        return 2
    host = os.environ.get("HOST", ALL_INTERFACES)
    port = int(os.environ.get("PORT", "8080"))
    # 16 threads: at 32 connections on 2 cores this gave the best throughput and p99 (bench/bench.py);
    # with fewer, requests wait for a free thread while the lookups themselves take microseconds.
    threads = int(os.environ.get("THREADS", "16"))
    # Waitress warns "Task queue depth" on every backlog: under load that is a log flood, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # SIGTERM (docker stop, Render deploys) ends the serve loop like Ctrl-C: sockets close cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving on http://%s:%d with %d threads", host, port, threads)
    serve(app, host=host, port=port, threads=threads, ident="", **SERVER_LIMITS)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
