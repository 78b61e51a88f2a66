"""The API as a Flask app: ``create_app(model_dir)`` wires the modules of this package together.

Each model of the folder (folder.py) is checked and every answer of its served range computed once
at startup (answers.py), so a request is a lookup: parsed by queries.py, answered by routes.py
through responses.py and caching.py, or before Flask by fastpath.py; schemas.py and docs.py
describe it as OpenAPI, metrics.py counts it, page.py serves the chart page; freshness.py says how
old each model's data is; http.py holds the constants they share (media types, limits, the cache
lifetime).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI

from serving.conditional import IgnoreUnusableHeaders
from serving.docs import documented_spec, register_docs, served_version
from serving.errors import register_error_handlers
from serving.fastpath import PrecomputedAnswers
from serving.folder import configured_model_dir, serve_models
from serving.freshness import data_age_days, max_data_age_days, ready_line
from serving.http import AS_OF_HEADER, HORIZON_HEADER, MAX_BODY_BYTES, SOURCE_HEADER
from serving.metrics import register_metrics
from serving.page import register_page
from serving.responses import add_default_headers
from serving.routes import register_forecast_routes, register_service_routes

log = logging.getLogger(__name__)


def create_app(model_dir: str | Path | None = None) -> OpenAPI:
    """Build the app around every model in `model_dir`; raises ModelError if one cannot be served,
    SettingError if MAX_DATA_AGE_DAYS is not a number of days."""
    model_dir = configured_model_dir(model_dir)
    max_days = max_data_age_days()
    models = serve_models(model_dir)
    app = OpenAPI(
        __name__,
        info=Info(
            title="Crypto Predict API",
            version=served_version(os.environ.get("APP_VERSION")),  # the release, set by the image build
            description="Forecasts of daily crypto closes ("
            + ", ".join(m.metadata["symbol"] for m in models.values())
            + ") from Prophet models, with calibrated intervals. Every forecast answer says the newest "
            "day of its data (as_of), how many days past it the day asked lies (horizon_days) and "
            "where the data came from (source).",
        ),
        doc_ui=False,  # Swagger UI is mounted at /docs below, reading /openapi.json
        security_schemes={},  # public API; flask-openapi3 would otherwise emit an invalid null
    )
    app.debug = False  # whatever FLASK_DEBUG says: debug pages would show code to anyone
    # Werkzeug would answer //forecast//btc with a redirect to an absolute URL built from the
    # client's Host header, in HTML; unmerged, such a path is a plain JSON 404.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # a body that is read at all gets a 413 past this
    # Public, read-only data: any origin may call it, and "*" keeps responses cacheable (no Vary).
    # Preflights name only the methods the API answers and may be reused for 2 hours (Chromium's cap).
    # Scripts of other origins may read the headers that say when a forecast's data is from.
    CORS(
        app,
        send_wildcard=True,
        methods=["GET", "HEAD", "OPTIONS"],
        max_age=7200,
        expose_headers=[AS_OF_HEADER, HORIZON_HEADER, SOURCE_HEADER],
    )
    app.after_request(add_default_headers)
    app.extensions["served_models"] = models
    metrics = register_metrics(app, models)
    register_docs(app)
    register_forecast_routes(app, models)
    register_service_routes(app, models, max_days)
    register_page(app)
    register_error_handlers(app, models)
    # Built once, now that every route is registered, so no request ever builds it.
    app.extensions["openapi"] = documented_spec(app, models)
    # Unreadable conditional dates and unservable ranges are dropped before Flask sees them; the fast
    # path never takes a conditional request, so it sits in front.
    app.wsgi_app = IgnoreUnusableHeaders(app.wsgi_app)
    app.wsgi_app = PrecomputedAnswers(app, models, metrics)
    for served in models.values():
        stale = data_age_days(served) > max_days
        log.log(logging.WARNING if stale else logging.INFO, "%s", ready_line(served, max_days))
    return app
