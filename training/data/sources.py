"""Daily bars and where they came from; the bundled snapshot as a source."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.data.assets import PROJECT_DIR
from training.errors import TrainingError, short

log = logging.getLogger(__name__)

PRICE_COLUMNS = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class Bars:
    """Daily bars indexed by UTC date, with where they came from."""

    frame: pd.DataFrame  # index: day (datetime64, midnight UTC, tz-naive); columns: PRICE_COLUMNS + volume
    source: str  # "alpaca" or "snapshot"
    origin: str  # URL or file the bars came from


def load_snapshot(path: Path) -> Bars:
    """Read the bundled CSV snapshot (timestamp,open,high,low,close,volume; one row per UTC day)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise TrainingError(f"cannot read snapshot {path}: {short(error)}") from error
    missing = {"timestamp", *PRICE_COLUMNS} - set(frame.columns)
    if missing:
        raise TrainingError(f"snapshot {path} lacks columns {sorted(missing)}")
    log.info("read %d bars from snapshot %s", len(frame), path)
    return Bars(index_by_day(frame, "timestamp"), "snapshot", display_path(path))


def display_path(path: Path) -> str:
    """A path relative to the project when inside it: metadata should not leak build folders."""
    resolved = path.resolve()
    return str(resolved.relative_to(PROJECT_DIR)) if resolved.is_relative_to(PROJECT_DIR) else str(path)


def index_by_day(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Index bars by the UTC calendar day their timestamp falls on (naive timestamps are UTC)."""
    try:
        stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise TrainingError(f"bad timestamp in bars: {short(error)}") from error
    days = stamps.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    columns = [c for c in [*PRICE_COLUMNS, "volume"] if c in frame.columns]
    return frame[columns].set_index(pd.DatetimeIndex(days.to_numpy(), name="day"))
