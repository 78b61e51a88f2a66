"""Checks on daily bars before anything is fitted on them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from training.data.sources import PRICE_COLUMNS
from training.errors import TrainingError

log = logging.getLogger(__name__)

DEFAULT_MIN_ROWS = 365  # fewer daily bars are refused: a year at least


def drop_open_day(bars: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Drop bars whose day has not ended yet at `now` (UTC): their close is not final."""
    today = pd.Timestamp(now.astimezone(UTC).date())
    open_rows = bars.index >= today
    if open_rows.any():
        log.info("dropping %d bar(s) of days not yet closed (%s)", open_rows.sum(), today.date())
    return bars[~open_rows]


def validate_bars(
    bars: pd.DataFrame, *, min_rows: int, max_stale_days: int | None, now: datetime | None
) -> pd.DataFrame:
    """Check the bars and return Prophet's (ds, y) frame of daily closes, or raise TrainingError."""
    if len(bars) < min_rows:
        raise TrainingError(f"only {len(bars)} complete daily bars; at least {min_rows} are needed")
    if not bars.index.is_monotonic_increasing:
        raise TrainingError("bars are not sorted by day")
    duplicated = bars.index[bars.index.duplicated()]
    if len(duplicated):
        raise TrainingError(f"{len(duplicated)} day(s) appear twice, first {duplicated[0].date()}")
    missing = pd.date_range(bars.index[0], bars.index[-1], freq="D").difference(bars.index)
    if len(missing):
        raise TrainingError(f"{len(missing)} day(s) missing from the bars, first {missing[0].date()}")
    prices = bars[PRICE_COLUMNS]
    if prices.isna().any().any():
        first = prices.index[prices.isna().any(axis=1)][0]
        raise TrainingError(f"missing (NaN) prices, first on {first.date()}")
    if (prices <= 0).any().any():
        first = prices.index[(prices <= 0).any(axis=1)][0]
        raise TrainingError(f"non-positive prices, first on {first.date()}")
    if not np.isfinite(prices.to_numpy()).all():
        raise TrainingError("infinite prices in the bars")
    if max_stale_days is not None:
        age = (pd.Timestamp(now.astimezone(UTC).date()) - bars.index[-1]).days
        if age > max_stale_days:
            raise TrainingError(
                f"newest bar is {bars.index[-1].date()}, {age} days old (limit {max_stale_days}): "
                "the feed looks stale"
            )
    return pd.DataFrame({"ds": bars.index, "y": bars["close"].to_numpy()})
