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
from training.selection.backtest import daily_closes, quiet_libraries
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


def test_the_gate_judges_exactly_what_the_api_serves(eth, tmp_path):
    """At sampled origins, the bands the gate scored equal what a model trained there serves."""
    asset = load_assets()["eth"]
    frame = pd.DataFrame({"ds": eth.index, "y": eth.to_numpy()})
    origins = []
    choice = None
    references = pipeline.reference_closes(asset)
    choice = choose_and_check(frame, [DEFAULT_CONFIG], pool=reference_pool(references, range(2022, 2027)))
    gated = choice.backtest
    for row in (0, len(gated.cutoffs) // 2):  # the gate's first origin and a middle one
        origin = gated.cutoffs[row]
        origins.append(origin)
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
        paths = gated.paths[DEFAULT_CONFIG.name]
        days = answer.get("forecasts", answer)
        assert len(days) == 365
        for h, day in enumerate(days, 1):
            assert to_the_cent(day["prediction"], paths.prediction[row, h - 1]), (origin, h)
            for band in day["intervals"]:
                level = band["level"]
                assert to_the_cent(band["low"], paths.lower[level][row, h - 1]), (origin, h, level)
                assert to_the_cent(band["high"], paths.upper[level][row, h - 1]), (origin, h, level)
    assert len(origins) == 2 and json.dumps(choice.calibration)
    assert daily_closes(frame).index[-1] > origins[-1]
