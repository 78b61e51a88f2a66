"""The chart page at / and its files under /web/ (the folder web/ beside api.py).

Each file may have a gzip copy beside it (`<file>.gz`, made by scripts/precompress.py at install
and image build time, never per request): it is sent, with `Content-Encoding: gzip`, to clients
that accept gzip, as long as it is not older than its file. Without one, the file is sent as is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import abort, request, send_file, send_from_directory
from flask_openapi3 import OpenAPI
from werkzeug.security import safe_join

from serving.http import SERVICE

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The page may talk to this API only: scripts, styles and requests from its own origin.
# Plotly sets inline styles, hence 'unsafe-inline' for styles (never for scripts).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
YEAR_SECONDS = 365 * 24 * 3600
GZIP_SUFFIX = ".gz"


def fresh_gzip(path: Path) -> Path | None:
    """path's gzip copy when there is one at least as new as path (never stale bytes), else None."""
    compressed = path.with_name(path.name + GZIP_SUFFIX)
    try:
        fresh = compressed.stat().st_mtime_ns >= path.stat().st_mtime_ns
    except OSError:
        return None
    return compressed if fresh else None


def page_file(filename: str):
    """A file of web/, gzip-encoded when the client accepts gzip and a fresh copy exists."""
    if filename.endswith(GZIP_SUFFIX):
        abort(404)  # the copies are an encoding of their files, not files of the page
    # A Range request gets the file as is: byte ranges then always count the same bytes.
    if request.accept_encodings["gzip"] > 0 and "Range" not in request.headers:
        joined = safe_join(str(WEB_DIR), filename)
        compressed = fresh_gzip(Path(joined)) if joined else None
        if compressed is not None:
            # Named as the file itself, for its media type and Content-Disposition; its ETag is the
            # copy's own, so caches never mix up the two encodings.
            response = send_file(compressed, download_name=Path(filename).name, conditional=True)
            response.headers["Content-Encoding"] = "gzip"
            response.headers["Accept-Ranges"] = "none"
            response.vary.add("Accept-Encoding")
            return response
    response = send_from_directory(WEB_DIR, filename)
    response.vary.add("Accept-Encoding")
    return response


def register_page(app: OpenAPI) -> None:
    """The chart page at / and its files under /web/."""
    if not (WEB_DIR / "index.html").is_file():
        log.warning("%s/index.html not found: / will answer 404", WEB_DIR)
    page_doc = {"description": "The page (HTML)", "content": {"text/html": {"schema": {"type": "string"}}}}

    @app.get("/", tags=[SERVICE], summary="Forecast chart page", responses={200: page_doc})
    def index():
        """A page that charts each asset's history and forecast and answers a date (uses this API)."""
        response = page_file("index.html")  # no-cache: revalidated by ETag
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    # Flask's own route, so not in the OpenAPI document: the page's files are not part of the API.
    @app.route("/web/<path:filename>", methods=["GET"])
    def web_file(filename: str):
        response = page_file(filename)
        if filename.startswith("vendor/"):  # vendored files carry their version in their names
            response.cache_control.no_cache = None
            response.cache_control.public = True
            response.cache_control.max_age = YEAR_SECONDS
            response.cache_control.immutable = True
        return response
