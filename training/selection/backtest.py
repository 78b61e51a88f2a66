"""Rolling-origin backtest: every forecaster (the served configurations and the baselines, through
one API: training/models/forecasters.py) at every cutoff, from the closes up to it only."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from artifact import Interval
from training.errors import QualityError
from training.models.configs import Config
from training.models.forecasters import BASELINES, Forecast, Forecaster, ProphetForecaster
from training.models.intervals import NO_POOL, Pool
from training.workers import Task, map_with_progress, process_count, worker_pool

log = logging.getLogger(__name__)

HORIZONS = (1, 7, 30, 90)  # days ahead the backtest reports and gates on
FORECAST_DAYS = 365  # days ahead every cutoff forecasts
SPACING_DAYS = 30  # days between cutoffs
EVAL_CUTOFFS = 40  # cutoffs the metrics are measured on: the last ~3.3 years of the data
MIN_EVAL_CUTOFFS = 8  # fewer say too little to judge a model on
MIN_TRAIN_DAYS = 365  # history every cutoff trains on, at least
# Consecutive cutoffs one task fits in turn, each fit warm-started from the one before: longer
# chains start cold less often, shorter ones spread over more workers. Fixed, so that the results
# never depend on how many workers there are.
CHAIN_CUTOFFS = 5


def rolling_cutoffs(days: pd.Series, eval_cutoffs: int = EVAL_CUTOFFS) -> tuple[pd.DatetimeIndex, int]:
    """Cutoffs every SPACING_DAYS, the newest max(HORIZONS) days before the data ends, oldest first.

    At most `eval_cutoffs`, each with MIN_TRAIN_DAYS of history. Returns (cutoffs, evaluated):
    every cutoff is evaluated (the intervals need no warm-up: they come from the closes alone).
    """
    newest = days.iloc[-1] - pd.Timedelta(days=max(HORIZONS))
    oldest_allowed = days.iloc[0] + pd.Timedelta(days=MIN_TRAIN_DAYS - 1)
    cutoffs = [newest - pd.Timedelta(days=SPACING_DAYS * i) for i in range(eval_cutoffs)]
    cutoffs = sorted(c for c in cutoffs if c >= oldest_allowed)
    return pd.DatetimeIndex(cutoffs), len(cutoffs)


@dataclass
class Paths:
    """One forecaster's forecasts in USD at every cutoff: arrays of shape (cutoffs, days ahead)."""

    prediction: np.ndarray
    lower: dict[int, np.ndarray] = field(default_factory=dict)  # level -> bounds; empty: none served
    upper: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def stacked(cls, forecasts: list[Forecast]) -> Paths:
        """One forecaster's forecasts at each cutoff, stacked by cutoff."""
        levels = forecasts[0].lower
        return cls(
            np.vstack([f.prediction for f in forecasts]),
            {level: np.vstack([f.lower[level] for f in forecasts]) for level in levels},
            {level: np.vstack([f.upper[level] for f in forecasts]) for level in levels},
        )


@dataclass
class Backtest:
    """Every forecaster's forecasts at every cutoff, and what happened."""

    cutoffs: pd.DatetimeIndex
    evaluated: int  # metrics are measured on the last `evaluated` cutoffs
    actual: np.ndarray  # USD close at cutoff + h, shape (cutoffs, days ahead); NaN past the data
    paths: dict[str, Paths]
    configs: dict[str, Config]
    seconds: float
    last_close: np.ndarray = field(default_factory=lambda: np.array([]))  # at each cutoff
    data_end: pd.Timestamp | None = None  # the last day with a close

    @property
    def rows(self) -> range:
        """Indices of the evaluated cutoffs."""
        return range(len(self.cutoffs) - self.evaluated, len(self.cutoffs))


def daily_closes(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(frame.y.to_numpy(), index=pd.DatetimeIndex(frame.ds))


def actual_closes(closes: pd.Series, cutoffs: pd.DatetimeIndex, days_ahead: int) -> np.ndarray:
    """The close on cutoff + h for h = 1..days_ahead, NaN where the data ends first."""
    targets = cutoffs.to_numpy()[:, None] + np.arange(1, days_ahead + 1) * np.timedelta64(1, "D")
    return closes.reindex(targets.ravel()).to_numpy().reshape(targets.shape)


def quiet_libraries() -> None:
    """Silence cmdstanpy's line per fit and Prophet's notices, even where logging is not configured."""
    for name, level in (("cmdstanpy", logging.WARNING), ("prophet", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.hasHandlers():  # else cmdstanpy installs its own handler at DEBUG level
            logger.addHandler(logging.NullHandler())


def forecasts_at_cutoffs(
    forecaster: Forecaster, closes: pd.Series, cutoffs, days_ahead: int
) -> list[Forecast]:
    """What the forecaster says from the closes up to each cutoff (run on a worker). A Prophet
    configuration's fits are chained (warm starts) and its calibrated interval is left to the
    backtest, which computes it once per cutoff for every configuration (intervals_at_cutoffs)."""
    quiet_libraries()
    if isinstance(forecaster, ProphetForecaster):
        return forecaster.point_forecasts(closes, cutoffs, days_ahead)
    return [forecaster.forecast(closes[closes.index <= cutoff], days_ahead) for cutoff in cutoffs]


def intervals_at_cutoffs(forecaster: ProphetForecaster, closes: pd.Series, cutoffs) -> list[Interval | None]:
    """The calibrated interval the forecaster serves after each cutoff (run on a worker)."""
    return [forecaster.interval(closes[closes.index <= cutoff]) for cutoff in cutoffs]


def upto(closes: pd.Series, cutoffs) -> pd.Series:
    """The closes up to the last of the cutoffs: all that a task about them is sent."""
    return closes[closes.index <= cutoffs[-1]]


def chains(cutoffs: pd.DatetimeIndex) -> list[pd.DatetimeIndex]:
    """The cutoffs in runs of CHAIN_CUTOFFS, oldest first."""
    return [cutoffs[start : start + CHAIN_CUTOFFS] for start in range(0, len(cutoffs), CHAIN_CUTOFFS)]


def too_few_cutoffs(frame: pd.DataFrame, evaluated: int) -> QualityError:
    return QualityError(
        f"{len(frame)} days of data are too few for a backtest: {evaluated} cutoffs fit in them, "
        f"{MIN_EVAL_CUTOFFS} at least are needed"
    )


def run_backtest(
    frame: pd.DataFrame,
    configs: list[Config],
    jobs: int | None = None,
    eval_cutoffs: int = EVAL_CUTOFFS,
    pool: Pool = NO_POOL,
    cutoffs: pd.DatetimeIndex | None = None,
    days_ahead: int = FORECAST_DAYS,
    executor: Executor | None = None,
) -> Backtest:
    """Every configuration, as served (ProphetForecaster), and every baseline at every cutoff.

    The cutoffs are rolling_cutoffs' unless given; the fits run on `executor` (training/executor.py),
    or on a local pool of `jobs` processes.
    """
    if cutoffs is None:
        cutoffs, evaluated = rolling_cutoffs(frame.ds, eval_cutoffs)
        if evaluated < MIN_EVAL_CUTOFFS:
            raise too_few_cutoffs(frame, evaluated)
    log.info(
        "backtesting %d configuration(s) at %d cutoffs (%s to %s)",
        len(configs), len(cutoffs), cutoffs[0].date(), cutoffs[-1].date(),
    )  # fmt: skip
    bt = backtest_forecasters(
        daily_closes(frame),
        [ProphetForecaster(config, pool) for config in configs],
        cutoffs,
        days_ahead,
        jobs,
        executor,
    )
    bt.configs = {c.name: c for c in configs}
    return bt


def backtest_forecasters(
    closes: pd.Series,
    forecasters: list[Forecaster],
    cutoffs: pd.DatetimeIndex,
    days_ahead: int,
    jobs: int | None = None,
    executor: Executor | None = None,
) -> Backtest:
    """`forecasters` at every cutoff on the executor's workers (a local pool of `jobs` processes
    unless given), the (cheap) baselines here."""
    started = time.monotonic()
    runs = chains(cutoffs)
    # The calibrated interval depends on the closes and the pool only: once per pool and cutoff.
    pools = {id(f.pool): f for f in forecasters if isinstance(f, ProphetForecaster) and f.config.calibrate}
    tasks = [
        Task(forecasts_at_cutoffs, (f, upto(closes, run), run, days_ahead), len(run))
        for f in forecasters
        for run in runs
    ]
    tasks += [
        Task(intervals_at_cutoffs, (f, upto(closes, run), run), 0) for f in pools.values() for run in runs
    ]
    results = []
    if forecasters:
        fits = len(forecasters) * len(cutoffs)
        log.info("%d fits in %d tasks", fits, len(tasks))
        if executor is None:
            with worker_pool(process_count(jobs, fits), quiet_libraries) as workers:
                results = map_with_progress(workers, tasks, "backtest")
        else:
            results = map_with_progress(executor, tasks, "backtest")
    per_task = [results[i * len(runs) : (i + 1) * len(runs)] for i in range(len(forecasters) + len(pools))]
    per_cutoff = [[item for result in parts for item in result] for parts in per_task]
    intervals = dict(zip(pools, per_cutoff[len(forecasters) :], strict=True))
    paths = {
        baseline.name: Paths.stacked([baseline.forecast(upto(closes, [c]), days_ahead) for c in cutoffs])
        for baseline in BASELINES
    }
    for forecaster, forecasts in zip(forecasters, per_cutoff, strict=False):
        if isinstance(forecaster, ProphetForecaster) and forecaster.config.calibrate:
            served = zip(forecasts, intervals[id(forecaster.pool)], strict=True)
            forecasts = [forecaster.served(point, interval) for point, interval in served]
        paths[forecaster.name] = Paths.stacked(forecasts)
    seconds = time.monotonic() - started
    log.info("backtest took %.1f s", seconds)
    return Backtest(
        cutoffs=cutoffs,
        evaluated=len(cutoffs),
        actual=actual_closes(closes, cutoffs, days_ahead),
        paths=paths,
        configs={},
        seconds=seconds,
        last_close=closes.reindex(cutoffs).to_numpy(),
        data_end=closes.index[-1],
    )
