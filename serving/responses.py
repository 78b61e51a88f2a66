"""Responses built from precomputed pieces: errors, ranges, model cards, default headers."""

from __future__ import annotations

from flask import Response

from serving.answers import ServedModel, compact_json
from serving.http import AS_OF_HEADER, CSV, HORIZON_HEADER, JSON, SOURCE_HEADER
from serving.queries import wants_csv
from serving.track_record import point_evaluation, track_record

FORECAST_CSV_HEADER = b"date,prediction,prediction_low,prediction_high,horizon_days,as_of,source\n"
HISTORY_CSV_HEADER = b"date,close\n"


def error_response(status: int, message: str) -> Response:
    return Response(compact_json({"error": message}), status=status, mimetype=JSON)


def redirect_response(location: str, status: int = 302) -> Response:
    """A redirect to a path of this server (never an absolute URL built from the client's Host), in JSON."""
    response = Response(compact_json({"location": location}), status=status, mimetype=JSON)
    response.headers["Location"] = location
    response.autocorrect_location_header = False
    return response


def range_response(
    served: ServedModel, days: list[str], items: str, json_rows: dict, csv_rows: dict, header, facts=False
):
    """A list of daily items as JSON (an object with metadata) or CSV, from precomputed pieces;
    `facts`: the envelope says the data's as-of day and source (forecasts)."""
    if wants_csv():
        return Response(header + b"".join(csv_rows[day] for day in days if day in csv_rows), mimetype=CSV)
    # Splice the precomputed items into the envelope instead of re-serializing them.
    envelope = {"asset": served.key, "symbol": served.metadata["symbol"]}
    if facts:
        envelope.update(as_of=served.facts.as_of.isoformat(), source=served.facts.source)
    prefix = compact_json(envelope | {"start": days[0], "end": days[-1]})
    body = (
        prefix[:-1]
        + f',"{items}":['.encode()
        + b",".join(json_rows[d] for d in days if d in json_rows)
        + b"]}"
    )
    return Response(body, mimetype=JSON)


def with_data_facts(response: Response, served: ServedModel, day: str | None = None) -> Response:
    """The response, with headers saying the data's as-of day and source, and a day's horizon."""
    response.headers[AS_OF_HEADER] = served.facts.as_of.isoformat()
    if day is not None:
        response.headers[HORIZON_HEADER] = str(served.days.horizons[day])
    response.headers[SOURCE_HEADER] = served.facts.source
    return response


def forecast_csv_header(levels: list[int] | None) -> bytes:
    if levels is None:
        return FORECAST_CSV_HEADER
    bounds = "".join(f",low_{level},high_{level}" for level in levels)
    return f"date,prediction{bounds},horizon_days,as_of,source\n".encode()


def levels_json(served: ServedModel, day: str, levels: list[int], shape: str) -> bytes:
    """One day's answer with the asked interval levels, spliced from precomputed pieces.

    shape: "answer" (one day of /forecast/<asset>), "item" (a day in a range) or "short" (one day
    of an alias such as /bitcoin: the seed's keys).
    """
    days = served.days
    intervals = b',"intervals":[' + b",".join(days.level_parts[level][day] for level in levels) + b"]"
    if shape == "short":
        return days.short_heads[day] + intervals + b"}"
    if shape == "item":
        return days.heads[day] + intervals + days.tails[day] + b"}"
    return days.heads[day] + intervals + days.tails[day] + b"," + days.facts + b"}"


def levels_csv(served: ServedModel, day: str, levels: list[int]) -> bytes:
    days = served.days
    bounds = b"".join(days.level_csv[level][day] for level in levels)
    return days.csv_heads[day] + bounds + days.csv_tails[day]


def model_card(served: ServedModel) -> dict:
    """What a user needs to judge a model: provenance, span, versions, servable range, and its
    evaluation under clear names: the intervals' track record and the point forecast's backtest."""
    keys = ("name", "symbol", "trained_at", "source", "origin", "first_day", "last_day", "rows", "versions")
    card = {"asset": served.key, **{key: served.metadata.get(key) for key in keys}}
    card["model_sha256"] = served.metadata["model_sha256"]
    card["serves"] = {"first_day": served.first_day.isoformat(), "last_day": served.last_day.isoformat()}
    backtest = served.metadata.get("backtest")
    card["track_record"] = track_record(backtest)
    card["backtest"] = point_evaluation(backtest)
    return card


def add_default_headers(response: Response) -> Response:
    """Every answer: no MIME sniffing, and nothing cached unless the view says how (forecasts do)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response
