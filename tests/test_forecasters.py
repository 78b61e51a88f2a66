"""One forecaster API (training/models/forecasters.py): every forecaster answers the same call, and
the bands the gate judges are, to the cent, the bands the API serves from a model trained there."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

import api
from artifact import LEVELS
from serving.answers import price
from training import pipeline
from training.data.assets import load_assets
from training.models.configs import DEFAULT_CONFIG
from training.models.forecasters import BASELINES, TRIVIAL_WINDOW, ProphetForecaster
from training.models.intervals import reference_pool
from training.selection.backtest import CHAIN_CUTOFFS, daily_closes, quiet_libraries
from training.selection.evaluation import choose_and_check
from training.selection.panel import asset_closes

quiet_libraries()


@pytest.fixture(scope="module")
def eth() -> pd.Series:
    return asset_closes(load_assets()["eth"])


@pytest.mark.parametrize("forecaster", [*BASELINES, ProphetForecaster(DEFAULT_CONFIG)], ids=lambda f: f.name)
def test_every_forecaster_answers_the_same_call(forecaster, eth):
    forecast = forecaster.forecast(eth.iloc[:1500], 90)
    assert forecast.prediction.shape == (90,) and np.isfinite(forecast.prediction).all()
    assert sorted(forecast.lower) == sorted(forecast.upper) == list(LEVELS)
    for narrow, wide in itertools.pairwise(LEVELS):
        assert (forecast.lower[wide] <= forecast.lower[narrow]).all()
        assert (forecast.upper[wide] >= forecast.upper[narrow]).all()


def test_the_trivial_interval_is_the_last_close_times_past_return_quantiles(eth):
    closes = eth.iloc[:2000]
    forecast = BASELINES[2].forecast(closes, 30)
    recent = np.log(closes.to_numpy()[-(TRIVIAL_WINDOW + 1) :])
    returns = recent[30:] - recent[:-30]
    assert forecast.lower[80][29] == pytest.approx(closes.iloc[-1] * np.exp(np.quantile(returns, 0.1)))
    assert forecast.upper[80][29] == pytest.approx(closes.iloc[-1] * np.exp(np.quantile(returns, 0.9)))
    assert (forecast.prediction == closes.iloc[-1]).all()


def to_the_cent(served: float, judged: float) -> bool:
    """The API serves cents: the judged value rounds to the served one (a value within a rounding
    error of a half cent may round either way)."""
    return served == price(judged) or abs(served - judged) <= 0.005 + 1e-9


def served_bands(model_dir, first: date, last: date) -> pd.DataFrame:
    """Every level's bounds that create_app serves for the days first..last, from /forecast/eth."""
    client = api.create_app(model_dir).test_client()
    query = f"start={first}&end={last}&level={','.join(map(str, LEVELS))}"
    response = client.get(f"/forecast/eth?{query}")
    assert response.status_code == 200, response.data
    return response.get_json()


# A backtest fold warm-started from the fold before (backtest.chains) stops where Stan's L-BFGS
# tolerance lets it, a few parts in a million from where a cold start stops: the served model is
# fitted cold, so the gate's bands at a warm-started origin agree with it to this relative error.
WARM_START_TOLERANCE = 1e-4


def test_the_gate_judges_exactly_what_the_api_serves(eth, tmp_path):
    """At sampled origins, the bands the gate scored equal what a model trained there serves: to the
    cent where the backtest's fit started cold, as the served one does, and to WARM_START_TOLERANCE
    where it was warm-started."""
    asset = load_assets()["eth"]
    frame = pd.DataFrame({"ds": eth.index, "y": eth.to_numpy()})
    references = pipeline.reference_closes(asset)
    choice = choose_and_check(frame, [DEFAULT_CONFIG], pool=reference_pool(references, range(2022, 2027)))
    gated = choice.backtest
    cold, warm = (0,), 2  # the gate's first origin, a chain's start; the third fit of that chain
    assert warm < CHAIN_CUTOFFS
    worst = {}
    for row in (*cold, warm):
        origin = gated.cutoffs[row]
        days = served_at(asset, origin, tmp_path)
        paths = gated.paths[DEFAULT_CONFIG.name]
        assert len(days) == 365
        pairs = [(day["prediction"], paths.prediction[row, h - 1]) for h, day in enumerate(days, 1)]
        for h, day in enumerate(days, 1):
            for band in day["intervals"]:
                level = band["level"]
                pairs.append((band["low"], paths.lower[level][row, h - 1]))
                pairs.append((band["high"], paths.upper[level][row, h - 1]))
        if row in cold:
            misses = [(served, judged) for served, judged in pairs if not to_the_cent(served, judged)]
            assert not misses, (origin, misses[:3])
        worst[row] = max(abs(served / judged - 1) for served, judged in pairs)
    assert worst[warm] <= WARM_START_TOLERANCE, worst
    assert worst[warm] > 0  # the warm-started origin is one, or this test checks nothing new
    assert json.dumps(choice.calibration)
    assert daily_closes(frame).index[-1] > gated.cutoffs[warm]


def served_at(asset, origin: pd.Timestamp, tmp_path) -> list[dict]:
    """The 365 days /forecast/eth serves from a model train_asset wrote on the snapshot cut at `origin`."""
    snapshot = tmp_path / f"eth_{origin.date()}.csv"
    bars = pd.read_csv(asset.snapshot)
    bars[pd.to_datetime(bars.timestamp) <= origin].to_csv(snapshot, index=False)
    model_dir = tmp_path / f"models_{origin.date()}"
    options = pipeline.Options(
        source="snapshot", start=date(2015, 1, 1), model_dir=model_dir, horizon_days=365, min_rows=365,
        max_stale_days=3, candidates=(DEFAULT_CONFIG.name,),
    )  # fmt: skip
    now = datetime.combine(origin.date(), datetime.min.time(), UTC) + pd.Timedelta(days=1)
    model_dir.mkdir()
    pipeline.train_asset(pipeline.Asset("eth", asset.name, asset.symbol, snapshot), options, now)
    first, last = (origin + pd.Timedelta(days=1)).date(), (origin + pd.Timedelta(days=365)).date()
    answer = served_bands(model_dir, first, last)
    return answer.get("forecasts", answer)
