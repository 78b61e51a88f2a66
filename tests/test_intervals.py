"""The served intervals (training/models/intervals.py) and how they are judged (training/selection/)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from artifact import LEVELS
from training.models import intervals
from training.selection import interval_checks


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


def test_the_served_interval_uses_only_the_closes_up_to_the_last_day(walk):
    cut = walk.index[1800]
    alone = intervals.served_interval(walk.loc[:cut])
    logp = intervals.log_prices(walk)  # with the future in the array, the origin sees only its past
    rolled = intervals.rolling_half_widths(logp, [1800], [1, 30, 365], LEVELS, refit_every=1)[0]
    for k, level in enumerate(LEVELS):
        assert rolled[:, k] == pytest.approx([alone.upper[level][h - 1] for h in (1, 30, 365)], abs=1e-5)


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


def test_too_little_history_is_refused():
    with pytest.raises(ValueError, match="too little history"):
        intervals.served_interval(volatile_walk(400, seed=1))


def test_on_random_walks_every_level_covers_about_its_share():
    """Out of sample on synthetic random walks with volatility regimes: calibrated at every level."""
    shares = {level: [] for level in LEVELS}
    for seed in (21, 22, 23):
        scores, coverage = interval_checks.score_intervals(volatile_walk(2400, seed))
        rows = scores[(scores.stretch == "all") & scores.h.isin([1, 7, 30])]
        for level in LEVELS:
            shares[level] += list(rows[rows.level == level].coverage)
        assert interval_checks.interval_gate_failures(scores, coverage) == []
    for level in LEVELS:
        assert abs(np.mean(shares[level]) - level / 100) < 0.05, (level, shares[level])


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
    assert interval_checks.significantly_worse(np.full(50, 2.0) + np.arange(50) * 0.01, np.ones(50), 1)
    assert not interval_checks.significantly_worse(np.ones(50), np.ones(50), 1)
