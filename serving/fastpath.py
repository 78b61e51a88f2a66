"""The WSGI fast path: plain one-day forecasts answered before Flask, from precomputed responses."""

from __future__ import annotations

import time

from flask_openapi3 import OpenAPI

from artifact import ModelError
from serving.answers import ServedModel, forecast_paths
from serving.http import HORIZON_HEADER, JSON
from serving.metrics import Metrics


class PrecomputedAnswers:
    """WSGI middleware: answers plain one-day forecasts before Flask, from precomputed responses.

    It takes only GET /forecast/<asset>?date=D (and its aliases, such as /bitcoin) with a
    servable D and no content negotiation or conditional headers; everything else, errors
    included, goes to Flask. Each route's status and headers are captured from the app's own
    answer at startup, so both paths answer byte for byte alike, and metrics count both.
    """

    PLAIN_ACCEPT = (None, "*/*", JSON)

    def __init__(self, app: OpenAPI, models: dict[str, ServedModel], metrics: Metrics):
        self.flask = app.wsgi_app
        self.routes = forecast_paths(models)
        rules = {
            path: path if not path.startswith("/forecast/") else "/forecast/<asset>" for path in self.routes
        }
        self.headers = {
            path: self.captured_headers(app, f"{path}?date={served.first_day}", rules[path], metrics)
            for path, (served, _) in self.routes.items()
        }
        self.counted = {path: metrics.requests_total.labels(rules[path], "GET", 200) for path in self.routes}
        self.timed = {path: metrics.latency.labels(rules[path], "GET") for path in self.routes}

    @staticmethod
    def captured_headers(app: OpenAPI, url: str, rule: str, metrics: Metrics) -> list:
        """The headers Flask sends with its 200 answer to `url`, but those of the day answered."""
        response = app.test_client().get(url)
        if response.status_code != 200:
            raise ModelError(f"{url} did not answer at startup: {response.get_data(as_text=True)}")
        # The capture is not traffic: forget its samples.
        metrics.requests_total.remove(rule, "GET", "200")
        metrics.latency.remove(rule, "GET")
        per_day = ("Content-Length", HORIZON_HEADER)
        return [(name, value) for name, value in response.headers.items() if name not in per_day]

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        path = environ.get("PATH_INFO")
        route = self.routes.get(path)
        query = environ.get("QUERY_STRING", "")
        if (
            route is not None
            and environ["REQUEST_METHOD"] == "GET"
            and query.startswith("date=")
            and environ.get("HTTP_ACCEPT") in self.PLAIN_ACCEPT
            and "HTTP_IF_NONE_MATCH" not in environ
            and "HTTP_IF_MODIFIED_SINCE" not in environ
        ):
            day = query[5:]
            body = route[1].get(day)  # a miss (bad or unknown day, more parameters) goes to Flask
            if body is not None:
                horizon = (HORIZON_HEADER, str(route[0].days.horizons[day]))
                start_response("200 OK", [*self.headers[path], horizon, ("Content-Length", str(len(body)))])
                self.counted[path].inc()
                self.timed[path].observe(time.perf_counter() - started)
                return [body]
        return self.flask(environ, start_response)
