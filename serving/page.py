"""The chart page at / and its files under /web/ (the folder web/ beside api.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import send_from_directory
from flask_openapi3 import OpenAPI

from serving.routes import SERVICE

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The page may talk to this API only: scripts, styles and requests from its own origin.
# Plotly sets inline styles, hence 'unsafe-inline' for styles (never for scripts).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
YEAR_SECONDS = 365 * 24 * 3600


def register_page(app: OpenAPI) -> None:
    """The chart page at / and its files under /web/."""
    if not (WEB_DIR / "index.html").is_file():
        log.warning("%s/index.html not found: / will answer 404", WEB_DIR)
    page_doc = {"description": "The page (HTML)", "content": {"text/html": {"schema": {"type": "string"}}}}

    @app.get("/", tags=[SERVICE], summary="Forecast chart page", responses={200: page_doc})
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
