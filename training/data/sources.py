"""Daily bars and where they came from; the bundled snapshot as a source."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.data.assets import display_path
from training.errors import ConfigError, TrainingError, short

log = logging.getLogger(__name__)

PRICE_COLUMNS = ["open", "high", "low", "close"]
MISSING = ("", "nan", "na", "n/a", "null", "none")  # cells a CSV writer puts for a missing value


@dataclass(frozen=True)
class Bars:
    """Daily bars indexed by UTC date, with where they came from."""

    frame: pd.DataFrame  # index: day (datetime64, midnight UTC, tz-naive); columns: PRICE_COLUMNS + volume
    source: str  # "alpaca" or "snapshot"
    origin: str  # URL or file the bars came from


def load_snapshot(path: Path) -> Bars:
    """Read the bundled CSV snapshot (timestamp,open,high,low,close,volume; one row per UTC day).

    A file that is missing, unreadable or malformed (a column missing, a value that is not a
    number) is the operator's to fix: ConfigError. Numbers that are wrong are for the checks.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read snapshot {path}: {short(error)}") from error
    missing = {"timestamp", *PRICE_COLUMNS} - set(frame.columns)
    if missing:
        raise ConfigError(f"snapshot {path} lacks columns {sorted(missing)}")
    for column in [*PRICE_COLUMNS, "volume"]:
        if column in frame.columns:
            frame[column] = numbers(frame, column, path)
    log.info("read %d bars from snapshot %s", len(frame), path)
    try:
        return Bars(index_by_day(frame, "timestamp"), "snapshot", display_path(path))
    except TrainingError as error:
        raise ConfigError(f"snapshot {path}: {error}") from error


def numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """The column as floats: an empty or NaN cell is a missing value, text that is not a number is refused."""
    text = frame[column].str.strip()
    missing = text.str.lower().isin(MISSING)
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ConfigError(
            f"snapshot {path} is malformed: {column} on data row {row + 1} "
            f"({frame['timestamp'].iloc[row]}) is {frame[column].iloc[row]!r}, not a number"
        )
    return values.astype(float)


def index_by_day(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Index bars by the UTC calendar day their timestamp falls on (naive timestamps are UTC)."""
    stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise TrainingError(
            f"bad timestamp in bars: {frame[column].iloc[row]!r} (data row {row + 1}) is not an ISO 8601 date"
        )
    days = stamps.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    columns = [c for c in [*PRICE_COLUMNS, "volume"] if c in frame.columns]
    return frame[columns].set_index(pd.DatetimeIndex(days.to_numpy(), name="day"))
