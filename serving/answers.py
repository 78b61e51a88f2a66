"""Every answer a model gives, precomputed once at startup, so that a request is a lookup."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path

import numpy as np
import pandas as pd
from werkzeug.http import http_date

from artifact import (
    MAX_SERVED_DAYS,
    ForecastContract,
    Metadata,
    ModelError,
    closes_of,
    forecast_table,
    read_pair,
    served_forecast,
)
from serving.http import ALIASES


@dataclass(frozen=True)
class ServedModel:
    """One checked model: its metadata and every answer it gives, precomputed."""

    key: str  # "btc": the asset's name in URLs
    metadata: Metadata
    first_day: date  # first and last day with a forecast
    last_day: date
    answers: dict[str, bytes]  # "YYYY-MM-DD" -> the JSON body of a one-day answer
    csv_rows: dict[str, bytes]  # "YYYY-MM-DD" -> the same answer as a CSV line
    closes: dict[str, bytes]  # "YYYY-MM-DD" -> {"date","close"} JSON of the training data
    close_rows: dict[str, bytes]  # the same as CSV lines
    levels: tuple[int, ...] = (80,)  # the interval levels a client may ask for
    heads: dict[str, bytes] = field(default_factory=dict)  # day -> '{"date":...,"prediction":...' (open)
    csv_heads: dict[str, bytes] = field(default_factory=dict)  # day -> 'day,prediction'
    level_parts: dict[int, dict[str, bytes]] = field(default_factory=dict)  # level -> day -> its JSON object
    level_csv: dict[int, dict[str, bytes]] = field(default_factory=dict)  # level -> day -> ",low,high"


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


SIGNIFICANT_DIGITS = 6


def price(value) -> float:
    """A USD price as served: at least 6 significant digits, and never less precise than the cent.

    BTC keeps its cents (73041.83); a $1.45 coin is served as 1.45123, not rounded to 1.45.
    """
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    digits = math.floor(math.log10(abs(value))) + 1  # before the decimal point
    return round(value, max(2, SIGNIFICANT_DIGITS - digits))


def number(value: float) -> str:
    """A price as compact_json writes it (float repr; NaN as NaN), without building an object:
    startup formats some 30,000 answers per asset."""
    return repr(value) if math.isfinite(value) else json.dumps(value)


@dataclass
class ForecastAnswers:
    """Every day's forecast, serialized once: the plain answer, and the pieces `level` answers splice."""

    answers: dict[str, bytes] = field(default_factory=dict)  # day -> JSON body
    csv_rows: dict[str, bytes] = field(default_factory=dict)  # day -> CSV line
    heads: dict[str, bytes] = field(default_factory=dict)  # day -> '{"date":...,"prediction":...' (open)
    csv_heads: dict[str, bytes] = field(default_factory=dict)  # day -> 'day,prediction'
    level_parts: dict[int, dict[str, bytes]] = field(default_factory=dict)  # level -> day -> JSON object
    level_csv: dict[int, dict[str, bytes]] = field(default_factory=dict)  # level -> day -> ",low,high"


def forecast_answers(table: pd.DataFrame, levels) -> ForecastAnswers:
    """Every day's answers, keyed by ISO day: each date and price formatted once."""
    done = ForecastAnswers(
        level_parts={level: {} for level in levels}, level_csv={level: {} for level in levels}
    )
    # Byte for byte what compact_json gives for the same objects (tests/test_golden.py), written as
    # strings: json.dumps per answer was most of the startup.
    bounds = {level: (table[f"low_{level}"].tolist(), table[f"high_{level}"].tolist()) for level in levels}
    columns = (table.ds, table.yhat.tolist(), table.yhat_lower.tolist(), table.yhat_upper.tolist())
    for index, (ds, *values) in enumerate(zip(*columns, strict=True)):
        day = ds.date().isoformat()
        served_date = json.dumps(http_date(ds.to_pydatetime().replace(tzinfo=UTC)))
        prediction, low, high = (price(v) for v in values)
        head = f'{{"date":{served_date},"prediction":{number(prediction)}'
        done.answers[day] = (
            f'{head},"prediction_low":{number(low)},"prediction_high":{number(high)}}}'.encode()
        )
        done.csv_rows[day] = f"{day},{prediction},{low},{high}\n".encode()
        done.heads[day] = head.encode()
        done.csv_heads[day] = f"{day},{prediction}".encode()
        for level in levels:
            low, high = price(bounds[level][0][index]), price(bounds[level][1][index])
            done.level_parts[level][day] = (
                f'{{"level":{level},"low":{number(low)},"high":{number(high)}}}'.encode()
            )
            done.level_csv[level][day] = f",{low},{high}".encode()
    return done


def close_answers(history: pd.DataFrame) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The training data's daily closes as JSON objects and CSV lines, keyed by ISO day."""
    closes, rows = {}, {}
    for ds, y in zip(history.ds, history.y, strict=True):
        day, close = ds.date().isoformat(), price(y)
        closes[day] = f'{{"date":"{day}","close":{number(close)}}}'.encode()  # as compact_json writes it
        rows[day] = f"{day},{close}\n".encode()
    return closes, rows


def load_prophet_model(metadata_file: Path) -> tuple[Metadata, object]:
    """The checked metadata and model; prophet's notice that plotly is missing is silenced (no plots)."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    return read_pair(metadata_file)


def serve_model(metadata_file: Path) -> ServedModel:
    """Check and load one model (the metadata and the file it names), then precompute all its answers."""
    metadata, model = load_prophet_model(metadata_file)
    first_day = date.fromisoformat(metadata["serve"]["first_day"])
    last_day = date.fromisoformat(metadata["serve"]["last_day"])
    if first_day > last_day:
        raise ModelError(f"model metadata serves an empty range {first_day} to {last_day}")
    if (last_day - first_day).days + 1 > MAX_SERVED_DAYS:
        raise ModelError(
            f"model metadata {metadata_file} serves {first_day} to {last_day}, "
            f"{(last_day - first_day).days + 1} days: more than the {MAX_SERVED_DAYS} one model may serve"
        )
    named = metadata.get("asset", metadata_file.stem)
    if named != metadata_file.stem:
        raise ModelError(
            f"model metadata {metadata_file} is for asset {named!r}, not "
            f"{metadata_file.stem!r}: a pair was renamed or copied; retrain {metadata_file.stem} instead"
        )
    contract = ForecastContract.from_metadata(metadata)
    data_last_day = date.fromisoformat(metadata["last_day"])
    known = closes_of(metadata)
    # Days with data answer their close when the contract says so: Prophet need not forecast them.
    grid_first = data_last_day if contract.past_days == "close" else first_day
    if contract.interval is not None and contract.past_days == "close":
        # Prophet's own band is served on no day: skip its sampling (a pair from before train.py
        # stopped pickling models with uncertainty samples still carries them).
        model.uncertainty_samples = 0
    table = served_forecast(forecast_table(model, grid_first, last_day), contract, data_last_day, known)
    table = table[(table.ds >= pd.Timestamp(first_day)) & (table.ds <= pd.Timestamp(last_day))]
    days = forecast_answers(table, contract.levels)
    if known is not None:
        history = pd.DataFrame({"ds": known.index, "y": known.to_numpy()})
    else:
        history = model.history.assign(y=np.exp(model.history.y)) if contract.log_target else model.history
    closes, close_rows = close_answers(history)
    return ServedModel(
        metadata_file.stem, metadata, first_day, last_day, days.answers, days.csv_rows, closes, close_rows,
        tuple(contract.levels), days.heads, days.csv_heads, days.level_parts, days.level_csv,
    )  # fmt: skip


def metadata_files(model_dir: Path) -> list[Path]:
    """The metadata files of the folder, or a ModelError naming why there are none."""
    if not model_dir.exists():
        raise ModelError(f"model folder {model_dir} does not exist: set MODEL_DIR, or run train.py")
    if not model_dir.is_dir():
        raise ModelError(
            f"model folder {model_dir} is not a folder: set MODEL_DIR to the folder train.py wrote"
        )
    try:
        files = sorted(model_dir.glob("*.json"))
        next(model_dir.iterdir(), None)  # glob hides a folder it may not list; this raises
    except OSError as error:
        raise ModelError(f"model folder {model_dir} cannot be read: {error.strerror or error}") from error
    if not files:
        raise ModelError(f"no model metadata (*.json) in {model_dir}: run train.py first")
    return files


def serve_models(model_dir: Path) -> dict[str, ServedModel]:
    """Every model in the folder, keyed by asset: each <asset>.json names its model file."""
    models = {path.stem: serve_model(path) for path in metadata_files(model_dir)}
    symbols: dict[str, str] = {}
    for key, served in models.items():
        other = symbols.setdefault(served.metadata["symbol"], key)
        if other != key:
            raise ModelError(
                f"models {other} and {key} both serve {served.metadata['symbol']}: one of them was copied"
            )
    return models


def forecast_paths(models: dict[str, ServedModel]) -> dict[str, ServedModel]:
    """Every URL path that answers a forecast, aliases included, and the model behind it."""
    paths = {f"/forecast/{key}": served for key, served in models.items()}
    paths.update({alias: models[key] for alias, key in ALIASES.items() if key in models})
    return paths
