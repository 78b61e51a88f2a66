"""The OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""

from __future__ import annotations

from flask_openapi3 import OpenAPI
from flask_openapi3_swagger.plugins import RegisterPlugin as SwaggerPlugin

from serving.queries import JSON
from serving.responses import redirect_response
from serving.routes import SERVICE
from serving.schemas import redirect_doc

SWAGGER_UI = "/docs/swagger"


def register_docs(app: OpenAPI) -> None:
    """Serve the OpenAPI document at /openapi.json and the bundled Swagger UI at /docs."""
    app.register_blueprint(SwaggerPlugin.register(doc_url="/openapi.json"), url_prefix="/docs")
    # Swagger UI would otherwise send the document's URL to validator.swagger.io (on any host but localhost).
    app.config["SWAGGER_CONFIG"] = {"validatorUrl": "none"}

    @app.get(
        "/openapi.json",
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


def documented_spec(app: OpenAPI) -> dict:
    """app.api_doc without the 422 answers flask-openapi3 adds to every route: we never send them."""
    spec = app.api_doc
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop(app.validation_error_status, None)
    return spec
