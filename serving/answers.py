"""Every answer a model gives, precomputed once at startup, so that a request is a lookup."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
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
from serving.packed import DerivedBytes, PackedBytes, PackedInts, positions_of


@dataclass
class ForecastAnswers:
    """Every day's forecast, serialized once, keyed by ISO day: the answers the routes send whole,
    and the pieces that answers with `level` splice together (docs/api.md has each shape). Each
    table is packed (serving/packed.py): a model holds some twenty strings for each of its days."""

    answers: Mapping[str, bytes]  # /forecast/<asset>?date=: the JSON body
    items: Mapping[str, bytes]  # the day's object in a range
    short_answers: Mapping[str, bytes]  # /bitcoin?date=: the seed's four keys
    csv_rows: Mapping[str, bytes]  # the CSV line
    horizons: Mapping[str, int]  # days after the last day with data
    heads: Mapping[str, bytes]  # '{"date":...,"day":...,"prediction":...' (open)
    short_heads: Mapping[str, bytes]  # '{"date":...,"prediction":...' (open)
    tails: Mapping[str, bytes]  # ',"horizon_days":N' (open)
    csv_heads: Mapping[str, bytes]  # 'day,prediction'
    csv_tails: Mapping[str, bytes]  # ',horizon_days,as_of,source' and newline
    level_parts: dict[int, Mapping[str, bytes]]  # level -> day -> JSON object
    level_csv: dict[int, Mapping[str, bytes]]  # level -> day -> ",low,high"
    facts: bytes = b""  # '"as_of":...,"source":...': the same for every day


@dataclass(frozen=True)
class ServedModel:
    """One checked model: its metadata and every answer it gives, precomputed."""

    key: str  # "btc": the asset's name in URLs
    metadata: Metadata
    first_day: date  # first and last day with a forecast
    last_day: date
    answers: Mapping[str, bytes]  # "YYYY-MM-DD" -> the JSON body of a one-day answer
    days: ForecastAnswers  # every day's answers and their pieces, answers among them
    facts: DataFacts  # the as-of day and source every answer states
    closes: Mapping[str, bytes]  # "YYYY-MM-DD" -> {"date","close"} JSON of the training data
    close_rows: Mapping[str, bytes]  # the same as CSV lines
    levels: tuple[int, ...] = (80,)  # the interval levels a client may ask for


def compact_json(value) -> bytes:
    # allow_nan=False: never an Infinity or NaN, which are not JSON (serve_model refuses them first).
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


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


@dataclass(frozen=True)
class DataFacts:
    """When and where a model's data is from: what every forecast answer says alongside its numbers."""

    as_of: date  # the newest bar the model was trained on (metadata last_day)
    source: str  # "alpaca" or "snapshot"; "unknown" for metadata that does not say

    def horizon(self, day: str) -> int:
        """Days from as_of to `day`: 1 or more for a forecast, 0 or less for a day with data."""
        return (date.fromisoformat(day) - self.as_of).days


SOURCE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a plain word: it goes into CSV and headers as is


def data_facts(metadata: Metadata) -> DataFacts:
    """The metadata's as-of day and source, checked."""
    source = metadata.get("source", "unknown")
    if not (isinstance(source, str) and SOURCE_PATTERN.fullmatch(source)):
        raise ModelError(f"model metadata source {source!r} is not a plain word such as alpaca or snapshot")
    return DataFacts(date.fromisoformat(metadata["last_day"]), source)


def number(value: float) -> str:
    """A price as compact_json writes it (float repr), without building an object: startup formats
    some 30,000 answers per asset. check_served_values refused non-finite prices before."""
    return repr(value)


def forecast_answers(table: pd.DataFrame, levels, facts: DataFacts, short: bool = False) -> ForecastAnswers:
    """Every day's answers, keyed by ISO day: each date and price formatted once. `short`: the seed's
    four-key answers too, for an asset an alias (/bitcoin) serves."""
    facts_json = compact_json({"as_of": facts.as_of.isoformat(), "source": facts.source})[1:-1]
    csv_facts = f"{facts.as_of},{facts.source}"
    tables = defaultdict(list)
    # Byte for byte what compact_json gives for the same objects (tests/test_golden.py), written as
    # strings: json.dumps per answer was most of the startup.
    bounds = {level: (table[f"low_{level}"].tolist(), table[f"high_{level}"].tolist()) for level in levels}
    columns = (table.ds, table.yhat.tolist(), table.yhat_lower.tolist(), table.yhat_upper.tolist())
    for index, (ds, *values) in enumerate(zip(*columns, strict=True)):
        day = ds.date().isoformat()
        served_date = http_date(ds.to_pydatetime().replace(tzinfo=UTC))
        prediction, low, high = (price(v) for v in values)
        horizon = facts.horizon(day)
        band = f'"prediction_low":{number(low)},"prediction_high":{number(high)}'.encode()
        head = f'{{"date":"{served_date}","day":"{day}","prediction":{number(prediction)}'.encode()
        tail = f',"horizon_days":{horizon}'.encode()
        row = {
            "days": day,
            "horizons": horizon,
            "heads": head,
            "tails": tail,
            "answers": head + b"," + band + tail + b"," + facts_json + b"}",
            "csv_rows": f"{day},{prediction},{low},{high},{horizon},{csv_facts}\n".encode(),
            "csv_heads": f"{day},{prediction}".encode(),
            "csv_tails": f",{horizon},{csv_facts}\n".encode(),
        }
        if short:
            short_head = f'{{"date":"{served_date}","prediction":{number(prediction)}'.encode()
            row["short_heads"] = short_head
            row["short_answers"] = short_head + b"," + band + b"}"
        for name, value in row.items():
            tables[name].append(value)
        for level in levels:
            low, high = price(bounds[level][0][index]), price(bounds[level][1][index])
            tables[("level", level)].append(
                f'{{"level":{level},"low":{number(low)},"high":{number(high)}}}'.encode()
            )
            tables[("csv", level)].append(f",{low},{high}".encode())
    return packed_answers(tables, levels, facts_json)


SHORT_TABLES = ("short_answers", "short_heads")  # only for an asset an alias serves


def packed_answers(tables: dict, levels, facts_json: bytes) -> ForecastAnswers:
    """The lists forecast_answers built, each packed over the days' shared positions."""
    positions = positions_of(tables["days"])
    horizons = PackedInts(positions, tables["horizons"])
    level_parts = {level: PackedBytes(positions, tables["level", level]) for level in levels}
    level_csv = {level: PackedBytes(positions, tables["csv", level]) for level in levels}
    names = ("answers", "csv_rows", "heads", "tails", "csv_heads", "csv_tails")
    packed = {name: PackedBytes(positions, tables[name]) for name in names}
    short = {name: PackedBytes(positions, tables[name]) if name in tables else {} for name in SHORT_TABLES}
    # A range's item is the one-day answer without the facts it states once: '...,"as_of":..}' -> '...}'.
    cut = -len(facts_json) - 2
    items = DerivedBytes(packed["answers"], lambda answer: answer[:cut] + b"}")
    return ForecastAnswers(
        **packed, **short, items=items, horizons=horizons, level_parts=level_parts, level_csv=level_csv,
        facts=facts_json,
    )  # fmt: skip


def close_answers(history: pd.DataFrame) -> tuple[Mapping[str, bytes], Mapping[str, bytes]]:
    """The training data's daily closes as JSON objects and CSV lines, keyed by ISO day."""
    days, closes, rows = [], [], []
    for ds, y in zip(history.ds, history.y, strict=True):
        day, close = ds.date().isoformat(), price(y)
        days.append(day)
        closes.append(f'{{"date":"{day}","close":{number(close)}}}'.encode())  # as compact_json writes it
        rows.append(f"{day},{close}\n".encode())
    positions = positions_of(days)
    return PackedBytes(positions, closes), PackedBytes(positions, rows)


def load_prophet_model(metadata_file: Path) -> tuple[Metadata, object]:
    """The checked metadata and model; prophet's notice that plotly is missing is silenced (no plots)."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    return read_pair(metadata_file)


# A served price this many times the model's highest close is no forecast but a broken contract
# (an edited level_offset, a corrupt interval): at 365 days the widest band is a few times the close.
ABSURD_FACTOR = 100


def check_served_values(metadata_file: Path, table: pd.DataFrame, levels, highest_close: float) -> None:
    """Refuse a model whose served prices are not finite, or absurd against its own closes."""
    columns = ["yhat", *(f"{side}_{level}" for level in levels for side in ("low", "high"))]
    values = table[columns].to_numpy(dtype=float)
    for bad, what in (
        (~np.isfinite(values), "a non-finite price"),
        (
            np.abs(values) > ABSURD_FACTOR * highest_close,
            f"more than {ABSURD_FACTOR} times its highest close",
        ),
    ):
        if bad.any():
            row, column = np.argwhere(bad)[0]
            day = table.ds.iloc[row].date()
            raise ModelError(
                f"model {metadata_file.stem} would serve {what} for {day} ({columns[column]} = "
                f"{values[row, column]:.6g}; highest close {highest_close:.6g}): check the forecast "
                f"contract in {metadata_file} (level_offset, interval), or retrain {metadata_file.stem}"
            )


def serve_model(metadata_file: Path) -> ServedModel:
    """Check and load one model (the metadata and the file it names), then precompute all its answers."""
    try:
        return answer_model(metadata_file)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
        # Metadata that passed the format checks but still does not hold together (e.g. malformed
        # closes): one line naming the file, not a traceback.
        raise ModelError(f"model metadata {metadata_file} cannot be served: {error!r}") from error


def answer_model(metadata_file: Path) -> ServedModel:
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
    try:
        known = closes_of(metadata)
    except ModelError as error:
        raise ModelError(f"model metadata {metadata_file}: {error}") from error
    # Days with data answer their close when the contract says so: Prophet need not forecast them.
    grid_first = data_last_day if contract.past_days == "close" else first_day
    if contract.interval is not None and contract.past_days == "close":
        # Prophet's own band is served on no day: skip its sampling (a pair from before train.py
        # stopped pickling models with uncertainty samples still carries them).
        model.uncertainty_samples = 0
    with np.errstate(over="ignore", invalid="ignore"):  # a price that overflows is refused below
        table = served_forecast(forecast_table(model, grid_first, last_day), contract, data_last_day, known)
    table = table[(table.ds >= pd.Timestamp(first_day)) & (table.ds <= pd.Timestamp(last_day))]
    if known is not None:
        history = pd.DataFrame({"ds": known.index, "y": known.to_numpy()})
    else:
        history = model.history.assign(y=np.exp(model.history.y)) if contract.log_target else model.history
    check_served_values(metadata_file, table, contract.levels, float(history.y.abs().max()))
    facts = data_facts(metadata)
    days = forecast_answers(table, contract.levels, facts, short=metadata_file.stem in ALIASES.values())
    closes, close_rows = close_answers(history)
    return ServedModel(
        metadata_file.stem, metadata, first_day, last_day, days.answers, days, facts, closes,
        close_rows, tuple(contract.levels),
    )  # fmt: skip


def forecast_paths(models: dict[str, ServedModel]) -> dict[str, tuple[ServedModel, dict[str, bytes]]]:
    """Every URL path that answers a forecast, aliases included: the model behind it, and its
    one-day JSON answers by day (an alias answers the seed's four keys)."""
    paths = {f"/forecast/{key}": (served, served.answers) for key, served in models.items()}
    for alias, key in ALIASES.items():
        if key in models:
            paths[alias] = (models[key], models[key].days.short_answers)
    return paths
