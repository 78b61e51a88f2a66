"""Prometheus metrics at /metrics: requests and latency by route and status, each model's age and
the age of its data."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Response, g, request
from flask_openapi3 import OpenAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from artifact import trained_at
from serving.answers import ServedModel
from serving.freshness import data_age_seconds
from serving.http import EXAMPLE_REQUEST, SERVICE

# Labels come from closed sets, so that no client can create series: a method or route outside
# them counts as OTHER (a made-up method name would otherwise add a series per name).
KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT"})
OTHER = "other"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else OTHER


@dataclass(frozen=True)
class Metrics:
    requests_total: Counter
    latency: Histogram


def register_metrics(app: OpenAPI, models: dict[str, ServedModel]) -> Metrics:
    """Count and time every answer, and serve the figures at /metrics."""
    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests_total", "HTTP requests answered", ["route", "method", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "Time spent answering, by route",
        ["route", "method"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        registry=registry,
    )
    model_age = Gauge(
        "model_age_seconds", "Seconds since the model was trained", ["asset"], registry=registry
    )
    data_age = Gauge(
        "data_age_seconds",
        "Seconds since the start (00:00 UTC) of the newest day of data the model was trained on",
        ["asset"],
        registry=registry,
    )
    for key, served in models.items():
        trained = trained_at(served.metadata).timestamp()
        model_age.labels(asset=key).set_function(lambda trained=trained: time.time() - trained)
        data_age.labels(asset=key).set_function(lambda served=served: data_age_seconds(served))

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        if request.environ.get(EXAMPLE_REQUEST):  # the document's examples, asked at startup
            return response
        # The route's rule, not the raw path: unknown paths must not create new series.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        method = method_label(request.method)
        requests_total.labels(route, method, status_label(response.status_code)).inc()
        latency.labels(route, method).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.get(
        "/metrics",
        tags=[SERVICE],
        summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}},
    )
    def metrics():
        """Request counts and latency histograms by route and status, each model's age and its data's."""
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)  # it names its charset

    return Metrics(requests_total, latency)
