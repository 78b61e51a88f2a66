"""The OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""

from __future__ import annotations

import copy
import json
import logging
import re

from flask_openapi3 import OpenAPI

from serving.answers import ServedModel
from serving.examples import documented_examples
from serving.http import JSON, SERVICE
from serving.responses import redirect_response
from serving.schemas import redirect_doc
from serving.swagger_ui import OPENAPI_URL, SWAGGER_UI, register_swagger_ui

log = logging.getLogger(__name__)

# The document's info.version becomes the version of the clients generated from it, so it must be
# one that package tools accept: X.Y.Z, with an optional +local part (PEP 440 and semver agree on
# these). A build that is not a release says so in the local part.
UNRELEASED_VERSION = "0.0.0+dev"
NUMBER = "(0|[1-9][0-9]*)"
RELEASE_VERSION = re.compile(rf"{NUMBER}\.{NUMBER}\.{NUMBER}(\+[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?")


def served_version(configured: str | None) -> str:
    """The version the document states: `configured` (APP_VERSION) when valid, else the unreleased one."""
    if not configured:
        return UNRELEASED_VERSION
    if RELEASE_VERSION.fullmatch(configured):
        return configured
    log.warning("APP_VERSION %r is not X.Y.Z[+local]; /openapi.json says %s", configured, UNRELEASED_VERSION)
    return UNRELEASED_VERSION


def register_docs(app: OpenAPI) -> None:
    """Serve the OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""
    register_swagger_ui(app)

    @app.get(
        OPENAPI_URL,
        tags=[SERVICE],
        summary="OpenAPI document",
        responses={200: {"description": "This document (OpenAPI 3.1, JSON)", "content": {JSON: {}}}},
    )
    def openapi_document():
        """This API described as OpenAPI 3.1."""
        return app.extensions["openapi"]

    @app.get(
        "/docs", tags=[SERVICE], summary="Swagger UI", responses={302: redirect_doc("Redirect to Swagger UI")}
    )
    def docs():
        """Interactive documentation (Swagger UI, served locally)."""
        return redirect_response(SWAGGER_UI)

    # The same with a trailing slash, as people type it; Flask's own route: not part of the API.
    app.add_url_rule("/docs/", "docs_slash", lambda: redirect_response(SWAGGER_UI), methods=["GET"])


def documented_spec(app: OpenAPI, models: dict[str, ServedModel]) -> dict:
    """app.api_doc with real answers as examples, without what flask-openapi3 adds but this API never uses.

    The 422 answers on every route and their schema: we never send them. The empty
    securitySchemes: the API has no authentication, and Swagger UI shows an "Authorize" button
    whenever the key is there.
    """
    spec = copy.deepcopy(app.api_doc)  # the examples go into this copy only, never a shared piece
    documented_examples(app, models, spec)
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop(app.validation_error_status, None)
    components = spec.get("components", {})
    if not components.get("securitySchemes"):
        components.pop("securitySchemes", None)
    unused = app.validation_error_model.__name__
    if f'/{unused}"' not in json.dumps(spec):
        components.get("schemas", {}).pop(unused, None)
    return spec
