"""The evaluation panel: the served forecaster at rolling origins on many assets, judged as served.

``make panel`` (``python -m training.selection.panel_report``) runs it on the bundled assets and
the panel of data/panel/ and writes reports/panel.md. Each asset
is judged out of sample: at each origin the served configuration is fitted on the closes up to
it, its interval borrows only from the *other* assets, and only from their closes before the
origin's year.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from artifact import LEVELS
from training.data.assets import Asset, load_assets, load_panel
from training.data.sources import load_snapshot
from training.data.validation import DEFAULT_MIN_ROWS, validate_bars
from training.errors import TrainingError
from training.models.configs import DEFAULT_CONFIG
from training.models.intervals import reference_pool
from training.selection.backtest import Backtest, daily_closes, run_backtest
from training.selection.interval_checks import score_intervals

log = logging.getLogger(__name__)

PANEL_HORIZONS = (1, 7, 30, 90, 180)
# Days between origins: not a multiple of 7, so that the origins fall on every weekday alike.
PANEL_SPACING = 9
LR_CRITICAL = 3.841  # chi-square with one degree of freedom at 5%


@dataclass
class AssetRun:
    """One asset's panel run: the backtest of the served forecaster and its scores."""

    asset: Asset
    days: int  # of validated bars
    backtest: Backtest
    scores: pd.DataFrame  # score_intervals' rows
    tests: dict  # 1-day Kupiec and Christoffersen at every level


def panel_assets(only: list[str] | None = None) -> dict[str, Asset]:
    """The bundled assets and the panel's, by key (optionally only some)."""
    assets = {**load_assets(), **load_panel()}
    return {key: asset for key, asset in assets.items() if not only or key in only}


def asset_closes(asset: Asset) -> pd.Series:
    """The asset's validated daily closes from its bundled snapshot."""
    bars = load_snapshot(asset.snapshot)
    frame = validate_bars(bars.frame, min_rows=DEFAULT_MIN_ROWS, max_stale_days=None, now=None)
    return daily_closes(frame)


def panel_origins(closes: pd.Series, spacing: int) -> pd.DatetimeIndex:
    """Every `spacing` days from the first day training accepts (a year of bars) to the last but one."""
    first = closes.index[0] + pd.Timedelta(days=DEFAULT_MIN_ROWS - 1)
    return pd.date_range(first, closes.index[-2], freq=f"{spacing}D")


def kupiec(misses: int, n: int, level: int) -> float:
    """Kupiec's proportion-of-failures likelihood ratio: are misses as frequent as the level says?"""
    expected, observed = 1 - level / 100, misses / n
    return 2 * (xlogy(misses, observed / expected) + xlogy(n - misses, (1 - observed) / (1 - expected)))


def christoffersen(hits: np.ndarray) -> float:
    """Christoffersen's independence likelihood ratio: does a miss make the next miss likelier?"""
    before, after = hits[:-1].astype(bool), hits[1:].astype(bool)
    n00, n01 = int(np.sum(~before & ~after)), int(np.sum(~before & after))
    n10, n11 = int(np.sum(before & ~after)), int(np.sum(before & after))
    p01 = n01 / max(n00 + n01, 1)
    p11 = n11 / max(n10 + n11, 1)
    p = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    both = xlogy(n00, 1 - p01) + xlogy(n01, p01) + xlogy(n10, 1 - p11) + xlogy(n11, p11)
    one = xlogy(n00 + n10, 1 - p) + xlogy(n01 + n11, p)
    return 2 * (both - one)


def xlogy(x: float, y: float) -> float:
    """x log y, with 0 log 0 = 0."""
    return 0.0 if x == 0 else x * math.log(y)


def one_day_tests(bt: Backtest, name: str) -> dict:
    """At 1 day, per level: misses, n, Kupiec's and Christoffersen's LR (each > 3.84 rejects at 5%)."""
    scored = np.flatnonzero(np.isfinite(bt.actual[:, 0]))
    actual, paths = bt.actual[scored, 0], bt.paths[name]
    tests = {}
    for level in LEVELS:
        miss = (actual < paths.lower[level][scored, 0]) | (actual > paths.upper[level][scored, 0])
        tests[level] = {
            "n": len(miss),
            "misses": int(miss.sum()),
            "kupiec": round(kupiec(int(miss.sum()), len(miss), level), 3),
            "christoffersen": round(christoffersen(miss), 3),
        }
    return tests


def run_asset(asset: Asset, everything: dict[str, Asset], spacing: int, jobs: int | None) -> AssetRun:
    """The served forecaster at every panel origin of one asset, its interval pooled from the others."""
    closes = asset_closes(asset)
    origins = panel_origins(closes, spacing)
    references = {}
    for key, other in everything.items():
        if key != asset.key:
            references[key] = asset_closes(other)
    pool = reference_pool(references, {origin.year for origin in origins})
    frame = pd.DataFrame({"ds": closes.index, "y": closes.to_numpy()})
    bt = run_backtest(
        frame, [DEFAULT_CONFIG], jobs=jobs, pool=pool, cutoffs=origins, days_ahead=max(PANEL_HORIZONS)
    )
    scores, _ = score_intervals(bt, DEFAULT_CONFIG.name, spacing, horizons=PANEL_HORIZONS)
    return AssetRun(asset, len(closes), bt, scores, one_day_tests(bt, DEFAULT_CONFIG.name))


def run_panel(only: list[str] | None, spacing: int, jobs: int | None) -> list[AssetRun]:
    everything = panel_assets()
    runs = []
    for key, asset in panel_assets(only).items():
        try:
            runs.append(run_asset(asset, everything, spacing, jobs))
        except TrainingError as error:
            log.error("%s left out of the panel: %s", key, error)
    return runs
