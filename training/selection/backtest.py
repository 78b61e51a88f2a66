"""Rolling-origin backtest: every configuration fitted at every cutoff, with naive baselines beside it."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.errors import QualityError
from training.models.configs import Config, fit, forecast_prices, training_window
from training.workers import map_with_progress, worker_pool

log = logging.getLogger(__name__)

HORIZONS = (1, 7, 30, 90)  # days ahead the backtest reports and gates on
FORECAST_DAYS = 365  # days ahead every cutoff forecasts
SPACING_DAYS = 30  # days between cutoffs
EVAL_CUTOFFS = 40  # cutoffs the metrics are measured on: the last ~3.3 years of the data
MIN_EVAL_CUTOFFS = 8  # fewer say too little to judge a model on
MIN_TRAIN_DAYS = 365  # history every cutoff trains on, at least


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
    """One model's forecasts in USD: arrays of shape (cutoffs, days ahead 1..FORECAST_DAYS)."""

    prediction: np.ndarray
    lower: np.ndarray | None = None  # Prophet's own interval, for configurations that serve it
    upper: np.ndarray | None = None


@dataclass
class Backtest:
    """Every model's forecasts at every cutoff, and what happened."""

    cutoffs: pd.DatetimeIndex
    evaluated: int  # metrics are measured on the last `evaluated` cutoffs
    actual: np.ndarray  # USD close at cutoff + h, shape (cutoffs, FORECAST_DAYS); NaN past the data
    paths: dict[str, Paths]
    configs: dict[str, Config]
    seconds: float
    # The served intervals' log half-widths at the evaluated cutoffs, by days ahead: the same for
    # every calibrated model (they come from the closes alone), so computed once (evaluation.py).
    widths: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> range:
        """Indices of the evaluated cutoffs."""
        return range(len(self.cutoffs) - self.evaluated, len(self.cutoffs))


def daily_closes(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(frame.y.to_numpy(), index=pd.DatetimeIndex(frame.ds))


def actual_closes(frame: pd.DataFrame, cutoffs: pd.DatetimeIndex, days_ahead: int) -> np.ndarray:
    """The close on cutoff + h for h = 1..days_ahead, NaN where the data ends first."""
    targets = cutoffs.to_numpy()[:, None] + np.arange(1, days_ahead + 1) * np.timedelta64(1, "D")
    return daily_closes(frame).reindex(targets.ravel()).to_numpy().reshape(targets.shape)


def baseline_paths(frame: pd.DataFrame, cutoffs: pd.DatetimeIndex, days_ahead: int) -> dict[str, Paths]:
    """Naive (every future day = the last close) and naive with drift (the mean daily log change so far)."""
    closes = daily_closes(frame)
    last = closes.reindex(cutoffs).to_numpy()
    elapsed = (cutoffs - closes.index[0]).days.to_numpy()
    drift = np.log(last / closes.iloc[0]) / elapsed
    ahead = np.arange(1, days_ahead + 1)
    return {
        "naive": Paths(np.repeat(last[:, None], days_ahead, axis=1)),
        "drift": Paths(last[:, None] * np.exp(drift[:, None] * ahead)),
    }


def quiet_libraries() -> None:
    """Silence cmdstanpy's line per fit and Prophet's notices, even where logging is not configured."""
    for name, level in (("cmdstanpy", logging.WARNING), ("prophet", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.hasHandlers():  # else cmdstanpy installs its own handler at DEBUG level
            logger.addHandler(logging.NullHandler())


def forecast_at_cutoff(config: Config, history: pd.DataFrame, days_ahead: int):
    """Fit on the history up to a cutoff and forecast the days after it."""
    fitted = fit(config, history, uncertainty=not config.calibrate)
    return forecast_prices(config, fitted, history.ds.iloc[-1], days_ahead)


def run_backtest(
    frame: pd.DataFrame, configs: list[Config], jobs: int | None = None, eval_cutoffs: int = EVAL_CUTOFFS
) -> Backtest:
    """Fit every configuration at every cutoff, in parallel, and forecast FORECAST_DAYS days ahead."""
    started = time.monotonic()
    days_ahead = FORECAST_DAYS
    cutoffs, evaluated = rolling_cutoffs(frame.ds, eval_cutoffs)
    if evaluated < MIN_EVAL_CUTOFFS:
        raise QualityError(
            f"{len(frame)} days of data are too few for a backtest: {evaluated} cutoffs fit in them, "
            f"{MIN_EVAL_CUTOFFS} at least are needed"
        )
    tasks = [
        (config, training_window(config, frame[frame.ds <= cutoff]), days_ahead)
        for config in configs
        for cutoff in cutoffs
    ]
    jobs = jobs or os.cpu_count() or 1
    log.info(
        "backtesting %d configuration(s) at %d cutoffs (%s to %s, %d evaluated) with %d processes",
        len(configs), len(cutoffs), cutoffs[0].date(), cutoffs[-1].date(), evaluated, jobs,
    )  # fmt: skip
    results = []
    if tasks:
        with worker_pool(jobs, quiet_libraries) as pool:
            results = map_with_progress(pool, forecast_at_cutoff, tasks, "backtest")
    paths = baseline_paths(frame, cutoffs, days_ahead)
    for i, config in enumerate(configs):
        per_cutoff = results[i * len(cutoffs) : (i + 1) * len(cutoffs)]
        prediction, lower, upper = zip(*per_cutoff, strict=True)
        paths[config.name] = Paths(
            np.vstack(prediction),
            None if config.calibrate else np.vstack(lower),
            None if config.calibrate else np.vstack(upper),
        )
    seconds = time.monotonic() - started
    log.info("backtest took %.1f s", seconds)
    return Backtest(
        cutoffs=cutoffs,
        evaluated=evaluated,
        actual=actual_closes(frame, cutoffs, days_ahead),
        paths=paths,
        configs={c.name: c for c in configs},
        seconds=seconds,
    )
