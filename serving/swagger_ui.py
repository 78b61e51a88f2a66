"""Swagger UI at /docs/swagger: a page with no inline script under a strict policy, and its files
served from memory, gzip-encoded for clients that accept it, cached for a year under versioned URLs.

The page is ours, not flask-openapi3-swagger's template: that one starts Swagger UI from an
inline script, which a Content-Security-Policy worth having forbids. Its files are the plugin's
(1.5 MB of swagger-ui-bundle.js), read and compressed once, on first use; an answer is a view of
those shared bytes (no copy per client, and no open file while it waits for a slow client).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import flask_openapi3_swagger
from flask import Response, abort, request, send_file
from flask_openapi3 import OpenAPI
from flask_openapi3_swagger.plugins import RegisterPlugin as SwaggerPlugin

SWAGGER_UI = "/docs/swagger"
OPENAPI_URL = "/openapi.json"
PLUGIN_FILES = Path(flask_openapi3_swagger.__file__).resolve().parent / "templates" / "swagger"
YEAR_SECONDS = 365 * 24 * 3600
# Scripts from this origin only; styles too, but Swagger UI sets inline styles, hence 'unsafe-inline'
# for styles (never for scripts); data: images are its icons; requests go to this API only; no
# page may frame it (clickjacking), and X-Frame-Options says so to browsers older than CSP 2.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# What the plugin's template did inline. "validatorUrl": "none": Swagger UI would otherwise send
# the document's URL to validator.swagger.io (on any host but localhost).
START_SCRIPT = f""""use strict";
window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: new URL("{OPENAPI_URL}", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    showExtensions: true,
    showCommonExtensions: true,
    "validatorUrl": "none"
  }});
}});
"""
PAGE_STYLE = """html { box-sizing: border-box; overflow-y: scroll; }
*, *:before, *:after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; }
"""
OWN_FILES = {"js/start.js": START_SCRIPT.encode(), "css/page.css": PAGE_STYLE.encode()}
ICON = "images/swagger.svg"
STYLES = ("css/swagger-ui.css", "css/page.css")
SCRIPTS = ("js/swagger-ui-bundle.js", "js/swagger-ui-standalone-preset.js", "js/start.js")
PLUGIN_NAMES = {ICON, *STYLES, *SCRIPTS} - set(OWN_FILES)  # the page's files the plugin ships


@dataclass(frozen=True)
class Asset:
    body: bytes
    version: str  # a digest of body: the ETag, and the ?v= of the URL the page uses
    media_type: str
    gzipped: bytes | None = None  # made on first request for it


class Assets:
    """The page's files by name (as under swagger/), read once; gzip copies made once, on demand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: dict[str, Asset] = {}

    def get(self, name: str, compressed: bool = False) -> Asset | None:
        asset = self.loaded.get(name)
        if asset is not None and (asset.gzipped is not None or not compressed):
            return asset
        with self.lock:  # one thread reads and compresses; the others wait for it, then reuse it
            asset = self.loaded.get(name) or self.read(name)
            if asset is not None and compressed and asset.gzipped is None:
                asset = Asset(asset.body, asset.version, asset.media_type, gzip.compress(asset.body, 6))
            if asset is not None:
                self.loaded[name] = asset
            return asset

    @staticmethod
    def read(name: str) -> Asset | None:
        body = OWN_FILES.get(name)
        if body is None and name in PLUGIN_NAMES:
            body = (PLUGIN_FILES / name).read_bytes()
        if body is None:
            return None
        return Asset(body, hashlib.sha256(body).hexdigest()[:20], MEDIA_TYPES[Path(name).suffix])

    def page(self) -> str:
        """The page, each file under a URL that names its version (so caches may keep it a year)."""

        def url(name: str) -> str:
            return f"swagger/{name}?v={self.get(name).version}"

        styles = "".join(f'\n<link rel="stylesheet" href="{url(name)}">' for name in STYLES)
        scripts = "".join(f'\n<script src="{url(name)}"></script>' for name in SCRIPTS)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
            "<title>Crypto Predict API: Swagger UI</title>\n"
            f'<link rel="icon" href="{url(ICON)}">{styles}\n</head>\n<body>\n'
            f'<div id="swagger-ui"></div>{scripts}\n</body>\n</html>\n'
        )


def asset_response(assets: Assets, filename: str) -> Response:
    """A file of the page: gzip-encoded when the client takes gzip and asks no byte range."""
    compressed = request.accept_encodings["gzip"] > 0 and "Range" not in request.headers
    asset = assets.get(filename, compressed)
    if asset is None:
        abort(404)
    body, etag = (asset.gzipped, f"{asset.version}-gzip") if compressed else (asset.body, asset.version)
    # A file object, not bytes: Waitress then sends these very bytes to each client, uncopied.
    response = send_file(io.BytesIO(body), mimetype=asset.media_type, etag=etag, conditional=True)
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Accept-Ranges"] = "none"  # byte ranges count the file's own bytes
    response.vary.add("Accept-Encoding")
    if request.args.get("v") == asset.version:  # the page's URL: these bytes, for as long as it lives
        response.cache_control.no_cache = None
        response.cache_control.public = True
        response.cache_control.max_age = YEAR_SECONDS
        response.cache_control.immutable = True
    else:  # another or no version: revalidated each time
        response.cache_control.no_cache = True
    return response


def register_swagger_ui(app: OpenAPI) -> None:
    """Swagger UI at /docs/swagger (its files under /docs/swagger/), reading /openapi.json."""
    app.register_blueprint(SwaggerPlugin.register(doc_url=OPENAPI_URL), url_prefix="/docs")
    assets = Assets()
    html: list[str] = []  # made on the first request: reading the files takes a moment

    def swagger_page() -> Response:
        if not html:
            html.append(assets.page())
        response = Response(html[0], mimetype="text/html")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Frame-Options"] = "DENY"
        return response

    app.view_functions["swagger.swagger"] = swagger_page
    app.view_functions["swagger.static"] = lambda filename: asset_response(assets, filename)
