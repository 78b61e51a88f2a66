"""The served intervals (training/models/intervals.py) and how they are judged (training/selection/)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from artifact import LEVELS
from training.models import intervals
from training.models.forecasters import Forecast, with_interval
from training.selection import backtest, interval_checks


def volatile_walk(days: int, seed: int) -> pd.Series:
    """A random walk whose volatility switches between calm and wild regimes, with fat tails."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.choice([0.015, 0.03, 0.05], size=days // 90 + 1), 90)[:days]
    shocks = rng.standard_t(5, days) / np.sqrt(5 / 3)
    return pd.Series(
        100 * np.exp(np.cumsum(regime * shocks)), index=pd.date_range("2015-01-01", periods=days)
    )


@pytest.fixture(scope="module")
def walk() -> pd.Series:
    return volatile_walk(2600, seed=11)


def test_the_pool_borrows_only_from_the_references_before_the_year(walk):
    """A forecast in 2021 may borrow what the other assets did up to 2020, never after."""
    other = volatile_walk(2600, seed=12)
    garbled = other.where(other.index < "2021-01-01", other * np.exp(np.sin(np.arange(len(other)))))
    honest, future = (intervals.reference_pool({"other": o}, [2021]) for o in (other, garbled))
    np.testing.assert_array_equal(honest.quantiles[2021], future.quantiles[2021])
    assert honest.at(pd.Timestamp("2021-06-30")) is not None and honest.at(pd.Timestamp("2022-01-01")) is None


def test_a_young_assets_own_share_grows_with_its_history():
    others = {f"walk{seed}": volatile_walk(2600, seed) for seed in (31, 32, 33)}
    young = volatile_walk(2000, seed=34)
    young.index = pd.date_range("2018-01-01", periods=len(young))
    pool = intervals.reference_pool(others, range(2018, 2024))
    shares = []
    for days in (400, 800, 1500):
        widths, share = intervals.calibrated_half_widths(young.iloc[:days], pool=pool)
        assert np.isfinite(widths).all()
        shares.append(share[[0, 29, 89]])
    assert (shares[0] == 0).all()  # a year of bars: the pool's quantiles alone
    assert (shares[0] < shares[1])[:2].all() and (shares[1] < shares[2]).all() and (shares[2] < 1).all()
    assert shares[1][2] == 0  # 800 days hold too few 90-day windows of their own: the pool's alone


def test_bounds_contain_the_prediction_widen_with_the_horizon_and_nest(walk):
    interval = intervals.served_interval(walk)
    assert interval.levels == list(LEVELS) and interval.horizon_days == list(range(1, 366))
    for level in LEVELS:
        lower, upper = np.array(interval.lower[level]), np.array(interval.upper[level])
        assert (lower < 0).all() and (upper > 0).all()
        assert (np.diff(upper) >= 0).all() and (np.diff(lower) <= 0).all()
        np.testing.assert_allclose(lower, -upper)  # symmetric in log price: no drift is assumed
    for narrow, wide in itertools.pairwise(LEVELS):
        assert (np.array(interval.upper[wide]) >= np.array(interval.upper[narrow])).all()


def test_recent_volatility_widens_short_horizons_more_than_long_ones():
    calm_then_wild = volatile_walk(2000, seed=5)
    logp = np.log(calm_then_wild.to_numpy())
    logp[-60:] = logp[-61] + np.cumsum(np.random.default_rng(2).normal(0, 0.08, 60))  # a wild last two months
    wild = intervals.served_interval(pd.Series(np.exp(logp), index=calm_then_wild.index))
    calm = intervals.served_interval(calm_then_wild.iloc[:-60])
    short = wild.upper[80][0] / calm.upper[80][0]
    long = wild.upper[80][364] / calm.upper[80][364]
    assert short > 1.5 and short > long


def test_too_little_history_is_refused_and_a_year_is_enough():
    with pytest.raises(ValueError, match="too little history"):
        intervals.served_interval(volatile_walk(60, seed=1))
    interval = intervals.served_interval(volatile_walk(365, seed=1))  # alone: its own first year
    assert np.isfinite(interval.upper[95]).all()


@dataclass(frozen=True)
class CalibratedLastClose:
    """The last close with the served interval: the interval method alone, without Prophet."""

    name: str = "calibrated"

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast:
        prediction = np.full(days_ahead, closes.iloc[-1])
        return with_interval(prediction, intervals.served_interval(closes))


def test_on_random_walks_every_level_covers_about_its_share():
    """Out of sample on synthetic random walks with volatility regimes: calibrated at every level."""
    shares = {level: [] for level in LEVELS}
    for seed in (21, 22, 23):
        closes = volatile_walk(2400, seed)
        cutoffs = pd.date_range(closes.index[1095], closes.index[-2], freq="9D")
        bt = backtest.backtest_forecasters(closes, [CalibratedLastClose()], cutoffs, 30, jobs=2)
        scores, coverage = interval_checks.score_intervals(bt, "calibrated", 9, horizons=(1, 7, 30))
        rows = scores[scores.stretch == "all"]
        for level in LEVELS:
            shares[level] += list(rows[rows.level == level].coverage)
        assert interval_checks.interval_gate_failures(scores, coverage) == []
    for level in LEVELS:
        assert abs(np.mean(shares[level]) - level / 100) < 0.05, (level, shares[level])


def test_a_horizon_without_scored_origins_says_not_enough_data():
    closes = volatile_walk(500, seed=3)
    cutoffs = pd.DatetimeIndex([closes.index[400], closes.index[450]])
    bt = backtest.backtest_forecasters(closes, [CalibratedLastClose()], cutoffs, 180, jobs=1)
    scores, coverage = interval_checks.score_intervals(bt, "calibrated", 50)
    long = scores[scores.h >= 90]
    assert (long.note == "not enough data").all() and long.coverage.isna().all()
    assert coverage.h.max() < 90  # gated only where there is something to judge


def test_the_gate_refuses_coverage_the_data_rule_out_and_a_worse_winkler():
    coverage = pd.DataFrame(
        {"h": [1, 30], "coverage": [0.80, 0.55], "coverage_ci": [(0.76, 0.84), (0.45, 0.65)]}
    )
    scores = pd.DataFrame({"stretch": "all", "h": [1, 7], "level": 80, "winkler_worse": [False, True]})
    assert interval_checks.interval_gate_failures(scores, coverage) == [
        "80% interval covers 55% at 30 d (95% CI 45%-65%, outside 75%-85%)",
        "80% interval's Winkler score at 7 d is significantly worse than the trivial interval's",
    ]
    noisy = coverage.assign(coverage_ci=[(0.76, 0.84), (0.5, 0.8)])  # 55% on few windows: not ruled out
    assert interval_checks.interval_gate_failures(scores.assign(winkler_worse=False), noisy) == []


def test_scores_wilson_and_winkler():
    assert interval_checks.wilson(0.8, 100) == pytest.approx((0.711, 0.867), abs=0.001)
    outcome = np.array([1.0, 1.2, 0.7])
    scores = interval_checks.winkler(np.full(3, 0.9), np.full(3, 1.1), outcome, 80)
    np.testing.assert_allclose(scores, [0.2, 0.2 + 10 * 0.1, 0.2 + 10 * 0.2])
    assert interval_checks.significantly_worse(np.full(50, 2.0) + np.arange(50) * 0.01, np.ones(50), 1, 9)
    assert not interval_checks.significantly_worse(np.ones(50), np.ones(50), 1, 9)
