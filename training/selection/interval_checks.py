"""The intervals judged out of sample: rolling origins, a final stretch reported on its own, baselines.

Origins every ORIGIN_SPACING days from the third year of the data; at each, the intervals are
built from the closes up to it only (training/models/intervals.py) and around the last close, which the
served prediction equals but for its weekly pattern. Each (origin, horizon) whose outcome is in
the data is scored: coverage per level with a Wilson 95% interval on the number of
non-overlapping windows (overlapping h-day windows are not independent), the Winkler score and
the pinball loss, each against the trivial interval (the last close times the quantiles of all
h-day log returns of the three years before). The last FINAL_STRETCH_DAYS of origins are
reported apart: the method's constants were fixed before them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from artifact import LEVELS, SERVED_LEVEL
from training.models.intervals import log_prices, rolling_half_widths, trivial_bounds

# Days between origins: not a multiple of 7, so that the origins fall on every weekday alike
# (weekend days move less); well over 150 origins in three years.
ORIGIN_SPACING = 9
FIRST_ORIGIN_DAYS = 1095  # the trivial interval needs three years before its origin
FINAL_STRETCH_DAYS = 540  # the last 18 months of origins, reported on their own
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


def significantly_worse(losses: np.ndarray, baseline: np.ndarray, h: int) -> bool:
    """True when the losses exceed the baseline's beyond noise (a one-sided Diebold-Mariano test
    at 5%, on the non-overlapping windows' worth of evidence)."""
    effective = max(len(losses) * ORIGIN_SPACING / max(h, ORIGIN_SPACING), 2)
    return loss_difference_statistic(losses - baseline, effective) > 1.645


def origins_of(logp: np.ndarray) -> np.ndarray:
    return np.arange(FIRST_ORIGIN_DAYS, len(logp) - 1, ORIGIN_SPACING)


def score_intervals(closes: pd.Series, levels=LEVELS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, coverage): one row per (stretch, reported horizon, level) with coverage and its CI,
    Winkler and pinball ratios; and the 80% coverage at every horizon up to 180 days."""
    logp = log_prices(closes)
    origins = origins_of(logp)
    if len(origins) < 2:
        raise ValueError("fewer than three years of closes: the intervals cannot be judged")
    widths = rolling_half_widths(logp, origins, range(1, max(REPORTED_HORIZONS) + 1), levels)
    final_from = len(logp) - 1 - FINAL_STRETCH_DAYS
    rows = []
    for h in REPORTED_HORIZONS:
        scored = origins + h < len(logp)
        for stretch, chosen in (("all", scored), ("final", scored & (origins >= final_from))):
            if chosen.sum() >= 2:
                rows += stretch_rows(logp, origins[chosen], widths[chosen, h - 1], h, levels, stretch)
    served = list(levels).index(SERVED_LEVEL)
    coverage = []
    for h in GATE_HORIZONS:
        scored = origins + h < len(logp)
        outcome = logp[origins[scored] + h] - logp[origins[scored]]
        share = float(np.mean(np.abs(outcome) <= widths[scored, h - 1, served]))
        windows = min(scored.sum(), (origins[scored][-1] - origins[scored][0]) / h + 1)
        coverage.append({"h": h, "coverage": share, "coverage_ci": wilson(share, windows)})
    return pd.DataFrame(rows), pd.DataFrame(coverage)


def stretch_rows(logp, origins, widths, h: int, levels, stretch: str) -> list[dict]:
    outcome = np.exp(logp[origins + h] - logp[origins])
    trivial = np.array([np.r_[trivial_bounds(logp, t, h, levels)] for t in origins])
    windows = min(len(origins), (origins[-1] - origins[0]) / h + 1)
    rows = []
    for k, level in enumerate(levels):
        low, high = np.exp(-widths[:, k]), np.exp(widths[:, k])
        base_low, base_high = np.exp(trivial[:, k]), np.exp(trivial[:, len(levels) + k])
        covered = float(np.mean((low <= outcome) & (outcome <= high)))
        score, base = winkler(low, high, outcome, level), winkler(base_low, base_high, outcome, level)
        ci = wilson(covered, windows)
        base_pinball = pinball(base_low, base_high, outcome, level).mean()
        rows.append(
            {
                "stretch": stretch, "h": h, "level": level, "origins": len(origins),
                "windows": round(float(windows), 1), "coverage": round(covered, 4),
                "coverage_ci": [round(ci[0], 4), round(ci[1], 4)],
                "trivial_coverage": round(float(np.mean((base_low <= outcome) & (outcome <= base_high))), 4),
                "winkler_ratio": round(float(score.mean() / base.mean()), 4),
                "pinball_ratio": round(float(pinball(low, high, outcome, level).mean() / base_pinball), 4),
                "winkler_worse": significantly_worse(score, base, h),
            }
        )  # fmt: skip
    return rows


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
