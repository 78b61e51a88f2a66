"""The OpenAPI document's examples: real answers of the served models, asked once at startup.

Swagger UI otherwise makes examples up from the schemas (a prediction of 0, a date of "string").
Each shape a route answers gets one: a day ahead, a day with data, a range, levels, CSV, the
redirect of a name, and the errors; on the bundled models they are golden answers. The requests
are marked, so that /metrics does not count them as traffic.
"""

from __future__ import annotations

import json
from datetime import timedelta

from flask_openapi3 import OpenAPI

from serving.answers import ServedModel
from serving.http import ALIASES, CSV, EXAMPLE_REQUEST, JSON


def example_day(served: ServedModel) -> str:
    """A day the model forecasts: 30 days after its data (or its last servable day, if sooner)."""
    return min(served.facts.as_of + timedelta(days=30), served.last_day).isoformat()


def documented_examples(app: OpenAPI, models: dict[str, ServedModel], spec: dict) -> None:
    """Put real answers into `spec` as the examples of each route's answers and its date parameter."""
    client = app.test_client()
    marked = {EXAMPLE_REQUEST: True}

    def example(url: str, summary: str, accept: str = JSON) -> dict:
        response = client.get(url, headers={"Accept": accept}, environ_overrides=marked)
        text = response.get_data(as_text=True)
        return {"summary": f"{summary}: GET {url}", "value": json.loads(text) if accept == JSON else text}

    key, served = next(iter(models.items()))
    day, known = example_day(served), served.facts.as_of.isoformat()
    range_end = min(served.facts.as_of + timedelta(days=33), served.last_day).isoformat()
    forecasts = {f"/forecast/{key}": "/forecast/{asset}"}
    forecasts.update({alias: alias for alias, target in ALIASES.items() if target == key})
    for path, documented in forecasts.items():
        add(spec, documented, "200", JSON, {
            "day": example(f"{path}?date={day}", "One day ahead"),
            "known": example(f"{path}?date={known}", "A day with data: its close, a zero-width interval"),
            "range": example(f"{path}?start={day}&end={range_end}", "A range"),
            "levels": example(f"{path}?date={day}&level=50,95", "Other interval levels"),
        })  # fmt: skip
        add(spec, documented, "200", CSV, {
            "csv": example(f"{path}?start={day}&end={range_end}&format=csv", "A range in CSV", CSV),
            "csv_levels": example(f"{path}?date={day}&level=50,95&format=csv", "Levels in CSV", CSV),
        })  # fmt: skip
        add(spec, documented, "400", JSON, {
            "bad_day": example(f"{path}?date=2024-02-30", "Not a calendar day"),
            "out_of_range": example(f"{path}?date={served.last_day + timedelta(days=1)}", "Past the range"),
            "typo": example(f"{path}?date={day}&levels=50", "An unknown parameter"),
        })  # fmt: skip
        set_date_example(spec, documented, day)
    named = served.metadata["symbol"].split("/")[0]
    add(
        spec,
        "/forecast/{asset}",
        "301",
        JSON,
        {"name": example(f"/forecast/{named}?date={day}", "By symbol")},
    )
    add(spec, "/forecast/{asset}", "404", JSON, {"unknown": example(f"/forecast/doge?date={day}", "Unknown")})
    first = served.metadata["last_day"]
    add(
        spec,
        "/history/{asset}",
        "200",
        JSON,
        {"range": example(f"/history/{key}?start={first}&end={first}", "A day")},
    )
    add(spec, "/history/{asset}", "200", CSV, {
        "csv": example(f"/history/{key}?start={first}&end={first}&format=csv", "In CSV", CSV)
    })  # fmt: skip
    add(spec, "/models/{asset}", "200", JSON, {"card": example(f"/models/{key}", "A model card")})
    add(spec, "/models", "200", JSON, {"cards": example("/models", "Every card")})
    add(spec, "/health", "200", JSON, {"at_startup": example("/health", "At startup")})


def add(spec: dict, path: str, status: str, media_type: str, examples: dict) -> None:
    """Set the examples of one answer of the document, if the document has that answer."""
    content = (
        spec["paths"].get(path, {}).get("get", {}).get("responses", {}).get(status, {}).get("content", {})
    )
    if media_type in content:
        content[media_type] = {**content[media_type], "examples": examples}


def set_date_example(spec: dict, path: str, day: str) -> None:
    """The date Swagger UI fills in: a forecast day, not a day with data."""
    for parameter in spec["paths"].get(path, {}).get("get", {}).get("parameters", []):
        if parameter["name"] == "date":
            parameter["example"] = day
            parameter["schema"] = {**parameter.get("schema", {}), "example": day}
