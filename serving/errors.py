"""Error handlers: every error is a JSON body {"error": "..."} that says what was wrong."""

from __future__ import annotations

import logging

from flask import request
from flask_openapi3 import OpenAPI
from werkzeug.exceptions import HTTPException

from serving.answers import ServedModel, compact_json
from serving.http import JSON
from serving.queries import AssetNamedOtherwise, ClientError, UnknownAsset, known_assets, quote
from serving.responses import error_response, redirect_response

log = logging.getLogger(__name__)


def register_error_handlers(app: OpenAPI, models: dict[str, ServedModel]) -> None:
    known = known_assets(models)

    @app.errorhandler(ClientError)
    def bad_request(error: ClientError):
        return error_response(400, str(error))

    @app.errorhandler(UnknownAsset)
    def unknown_asset(error: UnknownAsset):
        return error_response(404, f"unknown asset {quote(str(error))}; known assets: {known}")

    @app.errorhandler(AssetNamedOtherwise)
    def asset_named_otherwise(error: AssetNamedOtherwise):
        # A path on this server, never an absolute URL built from the client's Host header.
        query = request.query_string.decode("latin-1")
        location = request.path.rsplit("/", 1)[0] + f"/{error.key}" + (f"?{query}" if query else "")
        response = redirect_response(location, status=301)
        response.set_data(compact_json({"asset": error.key, "location": location}))
        return response

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
