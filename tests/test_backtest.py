"""The backtest and its evaluation (training/) on small synthetic series with answers known in advance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artifact import Interval
from training import errors
from training.models import configs
from training.selection import backtest, evaluation


def series(log_prices: np.ndarray, start: str = "2020-01-01") -> pd.DataFrame:
    """A (ds, y=close) frame from daily log prices."""
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(log_prices)), "y": np.exp(log_prices)})


def random_walk(days: int, sigma: float, seed: int = 7) -> np.ndarray:
    return np.log(100.0) + np.cumsum(np.random.default_rng(seed).normal(0.0, sigma, days))


def test_cutoffs_every_30_days_end_90_days_before_the_data():
    frame = series(np.zeros(2500))
    cutoffs, evaluated = backtest.rolling_cutoffs(frame.ds)
    assert cutoffs[-1] == frame.ds.iloc[-1] - pd.Timedelta(days=90)
    assert set(np.diff(cutoffs).astype("timedelta64[D]").astype(int)) == {30}
    assert evaluated == len(cutoffs) == backtest.EVAL_CUTOFFS
    # Short data: fewer cutoffs, each with a year of history before it.
    cutoffs, evaluated = backtest.rolling_cutoffs(frame.ds.iloc[:1000])
    assert cutoffs[0] >= frame.ds.iloc[364]
    assert evaluated == len(cutoffs) == 19  # (1000 - 90 - 364) // 30 + 1


def test_steady_growth_drift_is_exact_and_naive_lags_by_a_known_amount():
    growth = 0.001  # per day, in log price
    frame = series(np.log(100.0) + growth * np.arange(2500))
    bt = backtest.run_backtest(frame, [])
    naive, drift = (evaluation.score(bt, name) for name in ("naive", "drift"))
    ahead = np.arange(1, 91)
    # Naive says "no change"; the price has grown by e^(gh) since: APE = 1 - e^(-gh) of the actual.
    np.testing.assert_allclose(naive.mape, 100 * (1 - np.exp(-growth * ahead)), rtol=1e-9)
    np.testing.assert_allclose(naive.mdape, naive.mape, rtol=1e-9)  # the same error at every cutoff
    closes_at_cutoffs = np.exp(np.log(100.0) + growth * (bt.cutoffs - frame.ds.iloc[0]).days.to_numpy())
    expected_mae = closes_at_cutoffs[list(bt.rows)].mean() * (np.exp(growth * ahead) - 1)
    np.testing.assert_allclose(naive.mae, expected_mae, rtol=1e-9)
    assert drift.mape.max() < 1e-9  # the mean log change of the history is the growth itself


def test_random_walk_naive_error_and_interval_match_theory():
    """On a log random walk naive misses by |e^(s sqrt(h) Z) - 1|; its 80% interval is +-1.28 s sqrt(h)."""
    sigma = 0.02
    frame = series(random_walk(3000, sigma))
    bt = backtest.run_backtest(frame, [])
    naive, drift = (evaluation.score(bt, name) for name in ("naive", "drift"))
    for h in (1, 7, 30):
        theory = 100 * sigma * np.sqrt(h) * np.sqrt(2 / np.pi)  # E|sigma sqrt(h) Z|, for small sigma
        assert naive.mape[h - 1] == pytest.approx(theory, rel=0.3)
        theory_width = 100 * 2 * 1.2816 * sigma * np.sqrt(h)  # in log terms, close to relative width
        assert naive.width[h - 1] == pytest.approx(theory_width, rel=0.3)
        assert 0.65 <= naive.coverage[h - 1] <= 0.95
    # No drift to find: estimating one only adds error at long horizons.
    assert naive.mape[89] < drift.mape[89]


def test_the_warm_started_chains_give_the_same_backtest_on_any_number_of_workers():
    """Fits are chained over CHAIN_CUTOFFS cutoffs whatever runs them: one worker or three, and
    the local pool or any other executor, give the same forecasts to the last bit."""
    frame = series(random_walk(1000, 0.02))
    flat = configs.Config("flat", growth="flat")
    cutoffs, _ = backtest.rolling_cutoffs(frame.ds, 8)
    assert [len(chain) for chain in backtest.chains(cutoffs)] == [5, 3]
    one, three = (backtest.run_backtest(frame, [flat], jobs=jobs, eval_cutoffs=8) for jobs in (1, 3))
    for name in ("flat", "naive"):
        np.testing.assert_array_equal(one.paths[name].prediction, three.paths[name].prediction)
        for level in one.paths[name].lower:
            np.testing.assert_array_equal(one.paths[name].lower[level], three.paths[name].lower[level])


def test_held_trend_equals_naive_a_week_ahead_and_beats_it_a_day_ahead():
    """A weekly pattern on a random walk: holding the trend forecasts the last close plus that pattern."""
    days = 1100
    weekly = 0.08 * np.isin(pd.date_range("2020-01-01", periods=days).day_of_week, (5, 6))  # dearer weekends
    frame = series(random_walk(days, 0.005) + weekly)
    held = configs.Config("held", window_days=None, hold_trend=True)
    bt = backtest.run_backtest(frame, [held], jobs=2, eval_cutoffs=10)
    model, naive = (evaluation.score(bt, name) for name in ("held", "naive"))
    assert bt.evaluated == 10
    # The weekly pattern is the same a week later: the forecast is exactly the last close.
    assert model.mape[6] == pytest.approx(naive.mape[6], rel=1e-6)
    # A day ahead, naive misses every weekend jump; the model knows the pattern.
    assert model.mape[0] < 0.5 * naive.mape[0]


def test_interval_bounds_interpolate_and_grow_like_a_random_walk_past_the_last_knot():
    low, high = Interval([1, 10], {80: [-0.1, -0.2]}, {80: [0.1, 0.3]}).bounds([1, 5.5, 10, 40])
    np.testing.assert_allclose(low, [-0.1, -0.15, -0.2, -0.4])
    np.testing.assert_allclose(high, [0.1, 0.2, 0.3, 0.6])


# ---------------------------------------------------------------- choice and gate


def scores(mape: list[float], coverage: float = 0.8) -> evaluation.Scores:
    """Scores with the given MAPE at 1, 7, 30 and 90 days (flat in between)."""
    by_day = np.interp(np.arange(1, 91), backtest.HORIZONS, mape)
    return evaluation.Scores(by_day, by_day, by_day, np.full(90, coverage), by_day)


def handmade(cutoffs: int, errors: dict[str, float]) -> backtest.Backtest:
    """A backtest whose models miss the actual close of 100 by about a relative error (noisy, either sign)."""
    rng = np.random.default_rng(3)
    paths = {}
    for name, error in errors.items():
        miss = error * rng.normal(1, 0.5, (cutoffs, 1)) * rng.choice([-1, 1], (cutoffs, 1))
        paths[name] = backtest.Paths(100 * (1 + miss) * np.ones((1, 365)))
    return backtest.Backtest(
        cutoffs=pd.date_range("2020-01-01", periods=cutoffs, freq="30D"),
        evaluated=cutoffs,
        actual=np.full((cutoffs, 365), 100.0),
        paths=paths,
        configs={},
        seconds=0.0,
    )


def test_choice_prefers_the_earlier_candidate_unless_a_later_one_is_clearly_better():
    first, second = configs.Config("first"), configs.Config("second")
    naive = scores([1, 4, 10, 20])
    nearly = {"naive": naive, "first": scores([1, 4, 10, 20.3]), "second": scores([1, 4, 10, 20])}
    assert evaluation.choose(nearly, [first, second])[0] is first  # 0.4% worse: within the tolerance
    clearly = {"naive": naive, "first": scores([1, 4, 10, 22]), "second": scores([1, 4, 10, 20])}
    assert evaluation.choose(clearly, [first, second])[0] is second
    assert evaluation.selection_score(clearly["first"], naive) == pytest.approx(1.025)


def test_a_retrain_keeps_its_configuration_unless_another_is_significantly_better():
    first, second = configs.Config("first"), configs.Config("second")
    naive = scores([1, 4, 10, 20])
    clearly = {"naive": naive, "first": scores([1, 4, 10, 22]), "second": scores([1, 4, 10, 20])}
    # The backtest's own 30-day errors: 10.0% against 10.1%, at 40 cutoffs: no significant gain.
    close = handmade(40, {"first": 0.101, "second": 0.100})
    chosen, why = evaluation.choose(clearly, [first, second], close, incumbent="first")
    assert chosen is first and why.startswith("kept first: second scores better but not significantly")
    # 5% against 10% at every cutoff: significant, so the better one replaces the incumbent.
    far = handmade(40, {"first": 0.10, "second": 0.05})
    chosen, why = evaluation.choose(clearly, [first, second], far, incumbent="first")
    assert chosen is second and "significantly lower 30-day errors" in why


def test_diebold_mariano_on_errors():
    rng = np.random.default_rng(1)
    same = rng.normal(0, 1, 200)
    assert evaluation.dm_test(same, same)["p_value"] == 1.0
    worse = evaluation.dm_test(2 * same, same)
    assert worse["statistic"] > 0 and worse["p_value"] < 0.001
    noise = evaluation.dm_test(rng.normal(0, 1, 200), rng.normal(0, 1, 200))
    assert noise["p_value"] > 0.01


def test_point_forecast_gate():
    bt = handmade(30, {})
    naive = scores([1, 4, 10, 20])
    assert evaluation.gate_failures(bt, scores([1, 4, 10, 20]), naive) == []
    assert evaluation.gate_failures(bt, scores([1, 4, 10, 24.9]), naive) == []
    assert evaluation.gate_failures(bt, scores([1, 4, 13, 20]), naive) == [
        "MAPE at 30 d is 13.00%, above 1.25 x naive (12.50%)"
    ]
    assert evaluation.gate_failures(bt, scores([np.nan, 4, 10, 20]), naive) == [
        "MAPE at 1 d is nan%, above 1.25 x naive (1.25%)"
    ]
    bt.evaluated = 5
    assert evaluation.gate_failures(bt, scores([1, 4, 10, 20]), naive) == [
        "only 5 evaluated cutoffs, at least 8 needed"
    ]
    assert evaluation.gate_failures(bt, scores([1, 4, 10, 20]), naive, max_mape_ratio=0.5)[1:] == [
        f"MAPE at {h} d is {m:.2f}%, above 0.5 x naive ({m / 2:.2f}%)"
        for h, m in zip((1, 7, 30, 90), (1, 4, 10, 20), strict=True)
    ]


def test_too_little_data_for_a_backtest_is_a_quality_error():
    with pytest.raises(errors.QualityError, match="500 days of data are too few for a backtest"):
        backtest.run_backtest(series(np.zeros(500)), [])
