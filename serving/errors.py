"""Error handlers: every error is a JSON body {"error": "..."} that says what was wrong."""

from __future__ import annotations

import logging

from flask_openapi3 import OpenAPI
from werkzeug.exceptions import HTTPException

from serving.answers import compact_json
from serving.http import JSON
from serving.queries import ClientError, UnknownAsset, quote
from serving.responses import error_response

log = logging.getLogger(__name__)


def register_error_handlers(app: OpenAPI, assets: list[str]) -> None:
    known = ", ".join(assets)

    @app.errorhandler(ClientError)
    def bad_request(error: ClientError):
        return error_response(400, str(error))

    @app.errorhandler(UnknownAsset)
    def unknown_asset(error: UnknownAsset):
        return error_response(404, f"unknown asset {quote(str(error))}; known assets: {known}")

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
