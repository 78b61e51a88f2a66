"""The served bands judged out of sample at a backtest's origins, against the trivial interval.

The bands are the forecaster's own (training/selection/backtest.py runs it as it is served).
Each (origin, horizon) whose outcome is in the data is scored: coverage per level with a Wilson
95% interval on the number of non-overlapping windows (overlapping h-day windows are not
independent), the Winkler score and the pinball loss, each relative to the last close and as a
ratio to the trivial interval's (the last close times the quantiles of all h-day log returns of
the three years before). Origins in the last FINAL_STRETCH_DAYS of the data are also reported
apart: the method's constants were fixed before them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from artifact import LEVELS, SERVED_LEVEL
from training.selection.backtest import Backtest

FINAL_STRETCH_DAYS = 540  # the last 18 months of outcomes' origins, reported on their own
REPORTED_HORIZONS = (1, 7, 30, 90, 180, 365)
GATE_HORIZONS = tuple(range(1, 181))  # coverage is gated at every served horizon up to 180 days
WINKLER_HORIZONS = (1, 7, 30, 90)
COVERAGE_TARGET = (0.75, 0.85)  # of the 80% interval
Z95 = 1.959964


def wilson(share: float, n: float) -> tuple[float, float]:
    """Wilson's 95% interval for a share observed on n independent trials."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    spread = Z95 * math.sqrt(share * (1 - share) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def winkler(low, high, outcome, level: int) -> np.ndarray:
    """The interval score: width, plus 2/alpha times the miss (relative to the last close)."""
    alpha = 1 - level / 100
    return (high - low) + (2 / alpha) * (np.maximum(low - outcome, 0) + np.maximum(outcome - high, 0))


def pinball(low, high, outcome, level: int) -> np.ndarray:
    """The mean quantile loss of the two bounds, as the (1-L)/2 and (1+L)/2 quantiles."""
    lower_share, upper_share = (1 - level / 100) / 2, (1 + level / 100) / 2
    loss_low = np.maximum(lower_share * (outcome - low), (lower_share - 1) * (outcome - low))
    loss_high = np.maximum(upper_share * (outcome - high), (upper_share - 1) * (outcome - high))
    return (loss_low + loss_high) / 2


def loss_difference_statistic(difference: np.ndarray, evidence: float) -> float:
    """The Diebold-Mariano statistic of loss differences: their mean over its standard error, with
    `evidence` independent observations (0 when the losses never differ)."""
    spread = difference.std(ddof=1) if len(difference) > 1 else 0.0
    return float(difference.mean() / (spread / math.sqrt(evidence))) if spread > 0 else 0.0


def significantly_worse(losses: np.ndarray, baseline: np.ndarray, h: int, spacing: int) -> bool:
    """True when the losses exceed the baseline's beyond noise (a one-sided Diebold-Mariano test
    at 5%, on the non-overlapping windows' worth of evidence, origins `spacing` days apart)."""
    effective = max(len(losses) * spacing / max(h, spacing), 2)
    return loss_difference_statistic(losses - baseline, effective) > 1.645


def independent_windows(origins: pd.DatetimeIndex, h: int) -> float:
    """How many non-overlapping h-day windows the origins amount to."""
    return float(min(len(origins), (origins[-1] - origins[0]).days / h + 1))


def relative(bt: Backtest, rows: np.ndarray, h: int, array: np.ndarray) -> np.ndarray:
    """A forecast quantity at h days ahead relative to the last close: scale-free across years."""
    return array[rows, h - 1] / bt.last_close[rows]


def score_intervals(
    bt: Backtest, name: str, spacing: int, levels=LEVELS, horizons=REPORTED_HORIZONS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, coverage) of forecaster `name`'s served bands, against the trivial interval.

    scores: one row per (stretch, horizon, level) with coverage and its CI, Winkler and pinball
    ratios; a horizon with fewer than two scored origins says "not enough data" (NaN). coverage:
    the 80% coverage at every horizon up to 180 days that has scored origins.
    """
    final_from = bt.data_end - pd.Timedelta(days=FINAL_STRETCH_DAYS)
    rows = []
    for h in (h for h in horizons if h <= bt.actual.shape[1]):
        scored = np.isfinite(bt.actual[:, h - 1])
        for stretch, chosen in (("all", scored), ("final", scored & (bt.cutoffs >= final_from))):
            rows += stretch_rows(bt, name, np.flatnonzero(chosen), h, levels, stretch, spacing)
    coverage = []
    for h in GATE_HORIZONS[: bt.actual.shape[1]]:
        scored = np.flatnonzero(np.isfinite(bt.actual[:, h - 1]))
        if len(scored) < 2:
            continue  # not enough data at this horizon: nothing to vouch for, nothing to refuse
        paths, actual = bt.paths[name], bt.actual[scored, h - 1]
        low, high = paths.lower[SERVED_LEVEL][scored, h - 1], paths.upper[SERVED_LEVEL][scored, h - 1]
        share = float(np.mean((low <= actual) & (actual <= high)))
        coverage.append(
            {
                "h": h,
                "coverage": share,
                "coverage_ci": wilson(share, independent_windows(bt.cutoffs[scored], h)),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(coverage, columns=["h", "coverage", "coverage_ci"])


def not_enough_data(h: int, level: int, stretch: str, origins: int) -> dict:
    return {
        "stretch": stretch, "h": h, "level": level, "origins": origins, "windows": 0.0,
        "coverage": float("nan"), "coverage_ci": [float("nan"), float("nan")],
        "trivial_coverage": float("nan"), "winkler_ratio": float("nan"), "pinball_ratio": float("nan"),
        "winkler_worse": False, "note": "not enough data",
    }  # fmt: skip


def stretch_rows(
    bt: Backtest, name: str, rows: np.ndarray, h: int, levels, stretch: str, spacing: int
) -> list:
    """One row per level: the served band's scores at h days over the origins `rows`."""
    model, trivial = bt.paths[name], bt.paths["trivial"]
    known = rows[np.isfinite(trivial.lower[levels[0]][rows, h - 1])] if len(rows) else rows
    if len(known) < 2:
        return [not_enough_data(h, level, stretch, len(known)) for level in levels]
    outcome = relative(bt, known, h, bt.actual)
    windows = independent_windows(bt.cutoffs[known], h)
    result = []
    for level in levels:
        low, high = relative(bt, known, h, model.lower[level]), relative(bt, known, h, model.upper[level])
        base_low, base_high = (
            relative(bt, known, h, trivial.lower[level]),
            relative(bt, known, h, trivial.upper[level]),
        )
        covered = float(np.mean((low <= outcome) & (outcome <= high)))
        score, base = winkler(low, high, outcome, level), winkler(base_low, base_high, outcome, level)
        ci = wilson(covered, windows)
        base_pinball = pinball(base_low, base_high, outcome, level).mean()
        result.append(
            {
                "stretch": stretch, "h": h, "level": level, "origins": len(known),
                "windows": round(windows, 1), "coverage": round(covered, 4),
                "coverage_ci": [round(ci[0], 4), round(ci[1], 4)],
                "trivial_coverage": round(float(np.mean((base_low <= outcome) & (outcome <= base_high))), 4),
                "winkler_ratio": round(float(score.mean() / base.mean()), 4),
                "pinball_ratio": round(float(pinball(low, high, outcome, level).mean() / base_pinball), 4),
                "winkler_worse": significantly_worse(score, base, h, spacing), "note": "",
            }
        )  # fmt: skip
    return result


def interval_gate_failures(scores: pd.DataFrame, coverage: pd.DataFrame) -> list[str]:
    """Why the intervals cannot be served; empty when they pass.

    Refused: an 80% coverage whose 95% interval lies wholly outside 75-85% at any horizon up to
    180 days, or a Winkler score significantly worse than the trivial interval's at 1, 7, 30 or
    90 days. With a few dozen independent windows at long horizons, a point estimate off the
    band by a few points is noise, not evidence; the interval is what the data can vouch for.
    """
    low, high = COVERAGE_TARGET
    failures = [
        f"80% interval covers {row.coverage:.0%} at {row.h} d (95% CI {row.coverage_ci[0]:.0%}-"
        f"{row.coverage_ci[1]:.0%}, outside {low:.0%}-{high:.0%})"
        for row in coverage.itertuples()
        if row.coverage_ci[1] < low or row.coverage_ci[0] > high
    ]
    served = scores[(scores.stretch == "all") & (scores.level == SERVED_LEVEL)]
    failures += [
        f"80% interval's Winkler score at {row.h} d is significantly worse than the trivial interval's"
        for row in served.itertuples()
        if row.h in WINKLER_HORIZONS and row.winkler_worse
    ]
    return failures
