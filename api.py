"""Crypto Predict API: Prophet forecasts of the daily BTC/USD close over HTTP.

``create_app(model_path)`` builds the Flask app; ``python api.py`` serves it with Waitress.
At startup the model is checked against its metadata (see README, "Model artifact") and
every answer of the served date range is computed once, so a request is a lookup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path

import numpy as np
import pandas as pd
from flask import Response, redirect, request
from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI, Tag
from flask_openapi3_swagger.plugins import RegisterPlugin as SwaggerPlugin
from pydantic import BaseModel, Field
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

log = logging.getLogger("api")

DEFAULT_MODEL_PATH = "models/btc_usd.pkl"
# Prophet draws its intervals at random; a fixed seed makes every start give the same answers.
FORECAST_SEED = 0
DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only
ECHO_LIMIT = 40  # characters of a bad value quoted back in an error message


class ModelError(Exception):
    """The model file or its metadata cannot be served; the message says which and why."""


# ---------------------------------------------------------------- model loading


@dataclass(frozen=True)
class ServedModel:
    """A checked model: its metadata and the precomputed answer for every servable day."""

    metadata: dict
    first_day: date
    last_day: date
    answers: dict[str, bytes]  # "YYYY-MM-DD" -> the JSON body of GET /bitcoin


def metadata_path(model_path: Path) -> Path:
    """Where the metadata of a model file lives: the same name with a .json suffix."""
    return model_path.with_suffix(".json")


def read_metadata(model_path: Path) -> dict:
    """The metadata written beside the model by train.py, with the fields the API needs."""
    path = metadata_path(model_path)
    try:
        metadata = json.loads(path.read_text())
        metadata["serve"]["first_day"] = date.fromisoformat(metadata["serve"]["first_day"])
        metadata["serve"]["last_day"] = date.fromisoformat(metadata["serve"]["last_day"])
        if not isinstance(metadata["model_sha256"], str):
            raise TypeError("model_sha256 is not a string")
    except FileNotFoundError as error:
        raise ModelError(f"model metadata {path} not found (run train.py)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model metadata {path} is unreadable: {error!r}") from error
    return metadata


def load_model(model_path: Path, expected_sha256: str):
    """Unpickle the model, but only once its bytes match the sha256 its metadata names."""
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
    return model.predict(grid)[["ds", "yhat", "yhat_lower", "yhat_upper"]]


def answer_bodies(table: pd.DataFrame) -> dict[str, bytes]:
    """The JSON body of every answer, keyed by ISO day, serialized once."""
    answers = {}
    for row in table.itertuples(index=False):
        body = {
            "date": http_date(row.ds.to_pydatetime().replace(tzinfo=UTC)),
            "prediction": round(float(row.yhat), 2),
            "prediction_low": round(float(row.yhat_lower), 2),
            "prediction_high": round(float(row.yhat_upper), 2),
        }
        answers[row.ds.date().isoformat()] = compact_json(body)
    return answers


def serve_model(model_path: Path) -> ServedModel:
    """Check and load the model, then precompute all its answers."""
    metadata = read_metadata(model_path)
    model = load_model(model_path, metadata["model_sha256"])
    first_day, last_day = metadata["serve"]["first_day"], metadata["serve"]["last_day"]
    if first_day > last_day:
        raise ModelError(f"model metadata serves an empty range {first_day} to {last_day}")
    answers = answer_bodies(forecast_table(model, first_day, last_day))
    return ServedModel(metadata, first_day, last_day, answers)


# ---------------------------------------------------------------- request parsing


class BadRequest(ValueError):
    """A client error; the message tells the client what is accepted."""


def requested_day(args, served: ServedModel) -> str:
    """The single valid, servable day in the query string, as the ISO key of its answer."""
    values = args.getlist("date")
    if not values:
        raise BadRequest("missing query parameter 'date': give one day as YYYY-MM-DD, e.g. ?date=2024-06-01")
    if len(values) > 1:
        raise BadRequest(f"give 'date' once; got it {len(values)} times")
    text = values[0]
    if text in served.answers:
        return text
    if not DAY_PATTERN.fullmatch(text):
        raise BadRequest(f"'date' must be a day as YYYY-MM-DD, e.g. 2024-06-01; got {_quote(text)}")
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise BadRequest(f"{text} is not a calendar day ({error})") from error
    raise BadRequest(f"no forecast for {day}: this model serves {served.first_day} to {served.last_day}")


def _quote(text: str) -> str:
    """A user's value, shortened, for an error message (JSON escapes the rest)."""
    return repr(text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "...")


# ---------------------------------------------------------------- OpenAPI models


class DayQuery(BaseModel):
    date: str = Field(
        description="The UTC day to forecast, YYYY-MM-DD, within the range that /health reports.",
        json_schema_extra={"format": "date", "example": "2024-06-01"},
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


class ErrorBody(BaseModel):
    """What was wrong with the request and what is accepted."""

    error: str


class ServedRange(BaseModel):
    first_day: str = Field(description="First day /bitcoin answers, YYYY-MM-DD.")
    last_day: str = Field(description="Last day /bitcoin answers, YYYY-MM-DD.")


class Health(BaseModel):
    status: str = Field(description="'ok' once the model is loaded and its answers are ready.")
    trained_at: str = Field(description="When the model was trained (UTC, ISO 8601).")
    data_last_day: str = Field(description="Newest day of the training data, YYYY-MM-DD.")
    serves: ServedRange


# ---------------------------------------------------------------- app


def create_app(model_path: str | Path | None = None) -> OpenAPI:
    """Build the app around one model file; raises ModelError when it cannot be served."""
    model_path = Path(model_path or os.environ.get("MODEL_PATH", DEFAULT_MODEL_PATH))
    served = serve_model(model_path)
    app = OpenAPI(
        __name__,
        info=Info(
            title="Crypto Predict API",
            version="1.0.0",
            description="Forecasts of the daily BTC/USD close from a Prophet model.",
        ),
        doc_ui=False,  # Swagger UI is mounted at /docs below, reading /openapi.json
        security_schemes={},  # public API; flask-openapi3 would otherwise emit an invalid null
    )
    # Public, read-only data: any origin may call it, and "*" keeps responses cacheable (no Vary).
    CORS(app, send_wildcard=True)
    app.extensions["served_model"] = served
    register_docs(app)
    register_routes(app, served)
    register_error_handlers(app)
    log.info(
        "model %s ready: %d answers, %s to %s",
        model_path,
        len(served.answers),
        served.first_day,
        served.last_day,
    )
    return app


def register_routes(app: OpenAPI, served: ServedModel) -> None:
    forecasts = Tag(name="forecasts", description="Forecast BTC/USD prices")
    service = Tag(name="service", description="Service status and documentation")
    health_body = compact_json(
        {
            "status": "ok",
            "trained_at": served.metadata["trained_at"],
            "data_last_day": served.metadata["last_day"],
            "serves": {"first_day": served.first_day.isoformat(), "last_day": served.last_day.isoformat()},
        }
    )

    @app.get(
        "/bitcoin",
        tags=[forecasts],
        summary="Forecast the BTC/USD close for one day",
        responses={200: Forecast, 400: ErrorBody},
    )
    @parses_own_query
    def bitcoin(query: DayQuery = None):
        """The forecast close and its 80% interval for the given UTC day."""
        try:
            day = requested_day(request.args, served)
        except BadRequest as error:
            return error_response(400, str(error))
        return Response(served.answers[day], mimetype="application/json")

    @app.get("/health", tags=[service], summary="Readiness", responses={200: Health})
    def health():
        """Answers 200 once the model is loaded and every answer is precomputed."""
        return Response(health_body, mimetype="application/json")

    @app.get("/", tags=[service], summary="Start page", responses={302: None})
    def index():
        """Redirects to the interactive documentation."""
        return redirect("/docs", code=302)


def parses_own_query(view):
    """Let flask-openapi3 document the view's query model while the view parses the query itself.

    Its own validation reads only the first of repeated parameters, answers 422 in another
    shape, and rebuilds a JSON schema on every request: too loose and too slow for /bitcoin.
    """
    view.__delay_validate_request__ = True
    return view


def register_docs(app: OpenAPI) -> None:
    """Serve the OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""
    app.register_blueprint(SwaggerPlugin.register(doc_url="/openapi.json"), url_prefix="/docs")

    @app.get(
        "/openapi.json",
        tags=[Tag(name="service")],
        summary="OpenAPI document",
        responses={200: {"description": "This document (OpenAPI 3.1, JSON)"}},
    )
    def openapi_document():
        """This API described as OpenAPI 3.1."""
        return documented_spec(app)

    @app.get(
        "/docs",
        tags=[Tag(name="service")],
        summary="Swagger UI",
        responses={302: {"description": "Redirect to Swagger UI"}},
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


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def error_response(status: int, message: str) -> Response:
    return Response(compact_json({"error": message}), status=status, mimetype="application/json")


def register_error_handlers(app: OpenAPI) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = error.get_response()  # keeps headers such as Allow on 405
        response.set_data(compact_json({"error": f"{error.code} {error.name}: {error.description}"}))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error; the request was not understood")


# ---------------------------------------------------------------- serving


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # plotly is not needed to serve


def main() -> int:
    from waitress import serve

    configure_logging()
    try:
        app = create_app()
    except ModelError as error:
        log.error("cannot start: %s", error)
        return 2
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104  # nosec B104: containers must listen on all interfaces
    port = int(os.environ.get("PORT", "8080"))
    threads = int(os.environ.get("THREADS", "8"))
    # SIGTERM (docker stop, Render deploys) ends the serve loop like Ctrl-C: sockets close cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving on http://%s:%d with %d threads", host, port, threads)
    serve(app, host=host, port=port, threads=threads, ident="")
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
