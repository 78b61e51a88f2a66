"""The container test's checks over HTTP: the running image's answers, routes, models and page files.

Standard library only. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

from container_report import Results

# ---------------------------------------------------------------- asking the server


def get(url: str) -> tuple[int, dict]:
    """GET a URL on 127.0.0.1; the status and the JSON object it answered ({} for anything else)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # nosec B310  # 127.0.0.1 only
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        parsed = json.loads(body)
    except ValueError:
        return status, {}
    return status, parsed if isinstance(parsed, dict) else {}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the answer it is (e.g. /docs is a 302), rather than following it."""

    def redirect_request(self, *args, **kwargs):
        """Follow no redirect."""
        return None


def exchange(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """The status, headers and body a GET of a 127.0.0.1 URL answers, redirects not followed."""
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # nosec B310  # 127.0.0.1 only
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def answer(url: str) -> tuple[int, bytes]:
    """The status and body a GET of a 127.0.0.1 URL answers, redirects not followed."""
    status, _, body = exchange(url)
    return status, body


def page_files(base_url: str) -> list[str]:
    """The files the page at / loads (web/...), as it names them."""
    page = answer(f"{base_url}/")[1].decode(errors="replace")
    return re.findall(r'(?:href|src)="(web/[^"]+)"', page)


# ---------------------------------------------------------------- checks


def check_answers(results: Results, base_url: str) -> None:
    """/health is ready, the first served day and first forecast day are answered, bad dates are 400."""
    status, body = get(f"{base_url}/health")
    # "stale" is ready too (a 200): an image built on the bundled snapshot serves old data, and says so.
    ready = body.get("status") == "ok" or (body.get("status") == "stale" and bool(body.get("stale_assets")))
    results.check(
        "GET /health is 200 with status ok, or stale naming its assets",
        status == 200 and ready,
        f"{body.get('status')} {body.get('stale_assets') or ''}".strip(),
    )
    # The days to ask about come from the model itself: the range it serves depends on the data
    # and on the configuration the backtest chose. Its first day, and the first day it forecasts.
    btc = body.get("models", {}).get("btc", {})
    if not btc:
        results.check("/health describes the BTC model", False, json.dumps(body))
        return
    first_forecast = date.fromisoformat(btc["data_last_day"]) + timedelta(days=1)
    for day in (date.fromisoformat(btc["serves"]["first_day"]), first_forecast):
        check_forecast(results, base_url, day)

    for query in ("date=2024-13-45", ""):
        status, body = get(f"{base_url}/bitcoin?{query}")
        results.check(
            f"GET /bitcoin?{query} is 400 with an error",
            status == 400 and isinstance(body.get("error"), str),
            json.dumps(body),
        )


def check_forecast(results: Results, base_url: str, day: date) -> None:
    """/bitcoin answers that day with finite, ordered bounds and the day as an HTTP date."""
    status, body = get(f"{base_url}/bitcoin?date={day}")
    numbers = [body.get(key) for key in ("prediction_low", "prediction", "prediction_high")]
    sane = all(isinstance(n, float) and math.isfinite(n) for n in numbers) and numbers == sorted(numbers)
    http_day = format_datetime(datetime.combine(day, datetime.min.time(), UTC), usegmt=True)
    results.check(
        f"GET /bitcoin?date={day} is a forecast",
        status == 200 and body.get("date") == http_day and sane,
        json.dumps(body),
    )


def check_models_loaded(results: Results, base_url: str, model_files: list[str]) -> None:
    """Every model of /app/models is served: /models has a card for each .json and its .pkl model."""
    assets = sorted(name.removesuffix(".json") for name in model_files if name.endswith(".json"))
    # A metadata names its model: <asset>.<sha256[:16]>.pkl since format 3 (artifact/), <asset>.pkl before.
    model_name = re.compile(r"(.+?)(\.[0-9a-f]{16})?\.pkl")
    pairs = set(assets) <= {found[1] for name in model_files if (found := model_name.fullmatch(name))}
    status, cards = get(f"{base_url}/models")
    results.check(
        "every model file loads (a card in /models for each)",
        status == 200 and bool(assets) and pairs and sorted(cards) == assets,
        ", ".join(assets),
        on_failure=f"files {model_files}, cards {sorted(cards)}",
    )


def route_queries(parameters: set[str], served: dict) -> str:
    """A query that the route accepts for one model: a day it forecasts, or its last week of data."""
    if "date" in parameters:
        return f"?date={date.fromisoformat(served['data_last_day']) + timedelta(days=1)}"
    if {"start", "end"} <= parameters:
        end = date.fromisoformat(served["data_last_day"])
        return f"?start={end - timedelta(days=6)}&end={end}"
    return ""


def documented_route_failures(base_url: str, document: dict, models: dict) -> tuple[list[str], int]:
    """Each documented GET route asked for every asset: the answers that failed, and how many were asked."""
    failures, asked = [], 0
    for path, operations in document.get("paths", {}).items():
        operation = operations.get("get")
        if operation is None:
            continue
        parameters = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        # A route per asset, or one (/bitcoin, /models) asked with BTC's days.
        assets = list(models) if "{asset}" in path else ["btc" if "btc" in models else next(iter(models))]
        for asset in assets:
            url = path.replace("{asset}", asset) + route_queries(parameters, models[asset])
            asked += 1
            code = answer(base_url + url)[0]
            if code >= 400 or str(code) not in operation.get("responses", {}):
                failures.append(f"{url} {code}")
    return failures, asked


def check_routes(results: Results, base_url: str) -> None:
    """Every GET route of the server's own OpenAPI document answers as documented, for every
    asset, with no 4xx or 5xx; and so do the files the page loads."""
    _, health = get(f"{base_url}/health")
    status, document = get(f"{base_url}/openapi.json")
    models = health.get("models", {})
    if not results.check("/openapi.json and /health answer", status == 200 and bool(models)):
        return
    failures, asked = documented_route_failures(base_url, document, models)
    for name in page_files(base_url):
        asked += 1
        if (code := answer(f"{base_url}/{name}")[0]) != 200:
            failures.append(f"/{name} {code}")
    results.check(
        "every documented route and the page's files answer",
        asked > 0 and not failures,
        f"{asked} requests",
        on_failure="; ".join(failures),
    )


def check_page_compression(results: Results, base_url: str) -> None:
    """The image made the gzip copies of the page's files: each is sent gzip-encoded when asked,
    and decodes to the file itself."""
    failures, sizes = [], {}
    for name in page_files(base_url):
        identity = answer(f"{base_url}/{name}")[1]
        _, headers, body = exchange(f"{base_url}/{name}", {"Accept-Encoding": "gzip"})
        encoding = headers.get("Content-Encoding")
        if encoding != "gzip" or gzip.decompress(body) != identity:
            failures.append(f"/{name} {encoding}")
        sizes[name] = (len(identity), len(body))
    largest = max(sizes, key=lambda name: sizes[name][0], default=None)
    results.check(
        "the page's files are sent gzip-encoded to clients that accept gzip",
        bool(sizes) and not failures,
        f"{largest}: {sizes[largest][0]} -> {sizes[largest][1]} bytes" if largest else "no files",
        on_failure="; ".join(failures),
    )


def check_document_version(results: Results, base_url: str, config: dict) -> None:
    """/openapi.json states the version the image is labelled with (generated clients take it)."""
    label = (config.get("Labels") or {}).get("org.opencontainers.image.version")
    stated = get(f"{base_url}/openapi.json")[1].get("info", {}).get("version")
    results.check("/openapi.json states the image's version", bool(label) and stated == label, str(stated))
