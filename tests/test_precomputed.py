"""The precomputed fast path answers exactly as Flask does, and is counted in the metrics."""

from __future__ import annotations

import pytest
import requests
from werkzeug.test import Client

import api
from tests.test_routes import metric

HEADER_VARIANTS = [{}, {"Origin": "https://example.org"}, {"Accept": "*/*"}, {"Accept": "application/json"}]


@pytest.mark.parametrize("path", ["/bitcoin", "/forecast/btc", "/forecast/eth"])
@pytest.mark.parametrize("headers", HEADER_VARIANTS)
def test_fast_path_equals_flask(app, path, headers):
    fast = app.test_client().get(f"{path}?date=2025-01-01", headers=headers)
    flask_only = Client(app.wsgi_app.flask).get(f"{path}?date=2025-01-01", headers=headers)
    assert fast.status_code == flask_only.status_code == 200
    assert fast.get_data() == flask_only.get_data()
    assert sorted(fast.headers.items()) == sorted(flask_only.headers.items())


def test_fast_path_is_taken_and_counted(app):
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    flask_calls = []
    real_flask = app.wsgi_app.flask
    app.wsgi_app.flask = lambda environ, start_response: (
        flask_calls.append(1) or real_flask(environ, start_response)
    )
    try:
        assert client.get("/forecast/eth?date=2025-01-01").status_code == 200
        assert flask_calls == []  # answered before Flask
        assert (
            client.get("/forecast/eth?date=2025-01-01", headers={"Accept": "text/csv"}).mimetype == "text/csv"
        )
        assert client.get("/forecast/eth?date=2025-02-30").status_code == 400
        assert len(flask_calls) == 2  # negotiation and errors are Flask's
    finally:
        app.wsgi_app.flask = real_flask
    after = client.get("/metrics").get_data(as_text=True)
    labels = {"route": "/forecast/<asset>", "method": "GET"}
    assert (
        metric(after, "http_requests_total", status="200", **labels)
        - metric(before, "http_requests_total", status="200", **labels)
        == 2
    )  # the fast answer and the CSV one (the /metrics scrape is its own route)
    assert (
        metric(after, "http_request_duration_seconds_count", **labels)
        - metric(before, "http_request_duration_seconds_count", **labels)
        == 3
    )


def test_startup_capture_is_not_counted(model_dir):
    text = api.create_app(model_dir).test_client().get("/metrics").get_data(as_text=True)
    for route in ("/bitcoin", "/forecast/<asset>"):
        # The fast path's series exist from the start (as Prometheus advises), at zero.
        assert f'http_requests_total{{method="GET",route="{route}",status="200"}} 0.0' in text
        assert metric(text, "http_request_duration_seconds_count", route=route) == 0


def test_both_paths_agree_over_real_http(live_server):
    fast = requests.get(f"{live_server.url}/bitcoin?date=2026-12-01", timeout=10)
    # An extra parameter (the ignored cache-buster) sends the same request through Flask.
    slow = requests.get(f"{live_server.url}/bitcoin?date=2026-12-01&_=flask", timeout=10)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    ignore = {"Date"}
    assert {k: v for k, v in fast.headers.items() if k not in ignore} == {
        k: v for k, v in slow.headers.items() if k not in ignore
    }
