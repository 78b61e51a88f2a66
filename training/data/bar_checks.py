"""Each bar on its own: prices that are numbers, finite and positive, a close and an open inside the
day's low and high, a volume that is a count. Each problem names the day and the values.

A bar is consistent with itself whatever the rounding of its feed: rounding to a number of
decimals or of significant digits is monotone, so low <= open, close <= high survives it exactly.
No tolerance is needed, and none is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.data.sources import PRICE_COLUMNS


@dataclass(frozen=True)
class Problem:
    """What is wrong with the bars, and, when a repair is defined, the close that repairs it."""

    kind: str  # a few words for the model card: "close outside the day's range"
    day: pd.Timestamp
    message: str  # the one line the operator sees
    repaired_close: float | None = None  # None: no repair is defined, it is always refused


def number(value: float) -> str:
    """A price as the feed wrote it, to 10 significant digits: 73369.80469, 6.9268e+07, 3.73e-06."""
    return f"{value:.10g}"


def bar_text(bars: pd.DataFrame, day: pd.Timestamp) -> str:
    """The day's bar in words: 'open 1 high 2 low 0.5 close 1.5'."""
    row = bars.loc[day]
    return " ".join(f"{column} {number(row[column])}" for column in PRICE_COLUMNS)


def first_bar_problem(bars: pd.DataFrame) -> Problem | None:
    """The first problem of the first bad bar, or None: missing, infinite, non-positive, inconsistent
    prices, then volumes."""
    prices = bars[PRICE_COLUMNS]
    values = prices.to_numpy()
    for kind, bad, says in (
        ("missing price", np.isnan(values), "missing (NaN) prices"),
        ("infinite price", np.isinf(values), "infinite prices"),
        ("non-positive price", values <= 0, "non-positive prices"),
    ):
        rows = bad.any(axis=1)
        if rows.any():
            day = prices.index[rows.argmax()]
            return Problem(kind, day, f"{says}, first on {day.date()}: {bar_text(bars, day)}")
    return inconsistent_bar(bars) or bad_volume(bars)


def inconsistent_bar(bars: pd.DataFrame) -> Problem | None:
    """The first bar whose open or close lies outside its low..high, or whose low is above its high.

    A close outside the range is repairable: clipped to the nearer bound, the day's own evidence.
    """
    low, high, opens, closes = bars["low"], bars["high"], bars["open"], bars["close"]
    checks = (
        ("low above high", low > high, "its low is above its high"),
        ("open outside the day's range", (opens < low) | (opens > high), "its open is outside"),
        ("close outside the day's range", (closes < low) | (closes > high), "its close is outside"),
    )
    found = [
        (int(mask.to_numpy().argmax()), order, kind, says)
        for order, (kind, mask, says) in enumerate(checks)
        if mask.any()
    ]
    if not found:
        return None
    position, _, kind, says = min(found)  # the earliest day; on one day, the order above
    day = bars.index[position]
    if kind == "low above high":
        return Problem(kind, day, f"the bar of {day.date()} is impossible: {says} ({bar_text(bars, day)})")
    # Only a close is repaired, and only in a bar whose other values hold together (found above).
    bound_low, bound_high = low.iloc[position], high.iloc[position]
    repaired = None
    if kind == "close outside the day's range":
        repaired = float(np.clip(closes.iloc[position], bound_low, bound_high))
    return Problem(
        kind,
        day,
        f"the bar of {day.date()} is impossible: {says} the day's low to high ({bar_text(bars, day)})",
        repaired,
    )


def bad_volume(bars: pd.DataFrame) -> Problem | None:
    """The first volume that is not a finite, non-negative number (when the bars have volumes)."""
    if "volume" not in bars.columns:
        return None
    volume = pd.to_numeric(bars["volume"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(volume) | (volume < 0)
    if not bad.any():
        return None
    day = bars.index[bad.argmax()]
    return Problem(
        "bad volume",
        day,
        f"the volume of {day.date()} is {number(volume[bad.argmax()])}: not a finite, "
        "non-negative amount traded",
    )
