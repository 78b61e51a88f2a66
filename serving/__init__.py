"""The API as a Flask app: ``create_app(model_dir)`` wires the modules of this package together.

Each model of the folder is checked and every answer of its served range computed once at
startup (answers.py), so a request is a lookup: parsed by queries.py, answered by routes.py
through responses.py and caching.py, or before Flask by fastpath.py; schemas.py and docs.py
describe it as OpenAPI, metrics.py counts it, page.py serves the chart page; http.py holds the
constants they share (media types, limits, the cache lifetime).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI

from artifact import DEFAULT_MODEL_DIR
from serving.answers import serve_models
from serving.conditional import IgnoreUnusableHeaders
from serving.docs import documented_spec, register_docs, served_version
from serving.errors import register_error_handlers
from serving.fastpath import PrecomputedAnswers
from serving.http import MAX_BODY_BYTES
from serving.metrics import register_metrics
from serving.page import register_page
from serving.responses import add_default_headers
from serving.routes import register_forecast_routes, register_service_routes

log = logging.getLogger(__name__)


def create_app(model_dir: str | Path | None = None) -> OpenAPI:
    """Build the app around every model in `model_dir`; raises ModelError if one cannot be served."""
    model_dir = Path(model_dir or os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))
    models = serve_models(model_dir)
    app = OpenAPI(
        __name__,
        info=Info(
            title="Crypto Predict API",
            version=served_version(os.environ.get("APP_VERSION")),  # the release, set by the image build
            description="Forecasts of daily crypto closes ("
            + ", ".join(m.metadata["symbol"] for m in models.values())
            + ") from Prophet models retrained on fresh data.",
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
    CORS(app, send_wildcard=True, methods=["GET", "HEAD", "OPTIONS"], max_age=7200)
    app.after_request(add_default_headers)
    app.extensions["served_models"] = models
    metrics = register_metrics(app, models)
    register_docs(app)
    register_forecast_routes(app, models)
    register_service_routes(app, models)
    register_page(app)
    register_error_handlers(app, list(models))
    # Built once, now that every route is registered, so no request ever builds it.
    app.extensions["openapi"] = documented_spec(app)
    # Unreadable conditional dates and unservable ranges are dropped before Flask sees them; the fast
    # path never takes a conditional request, so it sits in front.
    app.wsgi_app = IgnoreUnusableHeaders(app.wsgi_app)
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
