"""One forecaster API: the served model and every baseline answer the same call.

From the closes up to an origin, a forecaster gives the point forecast for days 1..H ahead and
the USD bounds of every served level (statsforecast's lesson: baselines are models like any
other). The bounds always come from artifact.interval_bounds, or for a configuration that serves
Prophet's own band from artifact.served_forecast, so what the backtest, the gate, the reports and
the notebook judge is what the API serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

import numpy as np
import pandas as pd

from artifact import LEVELS, Interval, forecast_table, interval_bounds, served_forecast
from training.models.configs import Config, contract, fit
from training.models.intervals import NO_POOL, Pool, log_prices, served_interval

TRIVIAL_WINDOW = 1095  # days of h-day returns behind the trivial interval: three years


@dataclass(frozen=True)
class Forecast:
    """Days 1..H after an origin: the point forecast and each level's bounds, all in USD."""

    prediction: np.ndarray  # shape (H,)
    lower: dict[int, np.ndarray]  # level (percent) -> shape (H,); NaN where not enough data
    upper: dict[int, np.ndarray]

    @property
    def days(self) -> int:
        return len(self.prediction)


class Forecaster(Protocol):
    """Anything that forecasts from the closes up to an origin (a daily pd.Series, oldest first)."""

    name: str

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast: ...


def with_interval(prediction: np.ndarray, interval: Interval, levels=LEVELS) -> Forecast:
    """A point forecast and an interval of log bounds, turned into USD bounds by artifact's one function."""
    days = np.arange(1, len(prediction) + 1)
    bounds = {level: interval_bounds(prediction, interval, days, level) for level in levels}
    return Forecast(
        prediction, {level: low for level, (low, _) in bounds.items()}, {level: high for level, (_, high) in bounds.items()}
    )


def closes_frame(closes: pd.Series) -> pd.DataFrame:
    """Prophet's (ds, y) frame of the closes."""
    return pd.DataFrame({"ds": pd.DatetimeIndex(closes.index), "y": np.asarray(closes, dtype=float)})


@dataclass(frozen=True)
class ProphetForecaster:
    """A Prophet configuration with its contract and, if it calibrates, the calibrated interval:
    exactly what training writes and the API serves."""

    config: Config
    pool: Pool = NO_POOL  # other assets' quantiles the interval may borrow from

    @property
    def name(self) -> str:
        return self.config.name

    def interval(self, closes: pd.Series) -> Interval | None:
        """The calibrated interval this configuration serves after the closes (None: Prophet's own)."""
        return served_interval(closes, pool=self.pool) if self.config.calibrate else None

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast:
        point = self.point_forecasts(closes, closes.index[-1:], days_ahead)[0]
        return self.served(point, self.interval(closes))

    def point_forecasts(self, closes: pd.Series, cutoffs, days_ahead: int) -> list[Forecast]:
        """The forecast from the closes up to each cutoff (oldest first) before its calibrated interval
        (Prophet's own band for a configuration that serves it, else none): see served().

        Each fit starts from the previous cutoff's parameters (Prophet's documented warm start:
        the optimizer has less far to go) and, where Prophet's band is not served, draws no samples.
        """
        forecasts, init = [], None
        for cutoff in cutoffs:
            frame = closes_frame(closes[closes.index <= cutoff])
            uncertainty = not self.config.calibrate
            fitted = fit(self.config, frame, uncertainty=uncertainty, init=init, days_ahead=days_ahead)
            init = warm_start(fitted.model)
            terms = contract(self.config, fitted)
            served = served_forecast(fitted.table, terms, frame.ds.iloc[-1]).iloc[1:]
            levels = [] if self.config.calibrate else terms.levels
            forecasts.append(
                Forecast(
                    served.yhat.to_numpy(),
                    {level: served[f"low_{level}"].to_numpy() for level in levels},
                    {level: served[f"high_{level}"].to_numpy() for level in levels},
                )
            )
        return forecasts

    def served(self, point: Forecast, interval: Interval | None) -> Forecast:
        """The point forecast with the bounds the API serves: the calibrated interval's, by artifact's
        one function, or Prophet's own band when the configuration serves it."""
        return with_interval(point.prediction, interval) if self.config.calibrate else point


def warm_start(model) -> dict:
    """A fitted Prophet's parameters as the init of the next fit (Prophet's docs, "Updating fitted models")."""
    params = model.params
    return {
        **{name: float(params[name][0][0]) for name in ("k", "m", "sigma_obs")},
        **{name: np.asarray(params[name][0]) for name in ("delta", "beta")},
    }


def normal_interval(sd: float, days_ahead: int, levels=LEVELS) -> Interval:
    """Log bounds of a random walk with normal steps of sd `sd`: +-z sd sqrt(h)."""
    h = np.arange(1, days_ahead + 1)
    half = {level: NormalDist().inv_cdf((1 + level / 100) / 2) * sd * np.sqrt(h) for level in levels}
    return Interval(list(h), {lv: list(-w) for lv, w in half.items()}, {lv: list(w) for lv, w in half.items()})


@dataclass(frozen=True)
class Naive:
    """Every future day is the last close; bounds of a random walk with the past year's daily sd."""

    name: str = "naive"

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast:
        logp = log_prices(closes)
        sd = float(np.std(np.diff(logp[-366:]), ddof=1))
        return with_interval(np.full(days_ahead, float(closes.iloc[-1])), normal_interval(sd, days_ahead))


@dataclass(frozen=True)
class Drift:
    """The last close grown at the mean daily log change of all the history so far."""

    name: str = "drift"

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast:
        logp = log_prices(closes)
        drift = (logp[-1] - logp[0]) / (len(logp) - 1)
        sd = float(np.std(np.diff(logp[-366:]), ddof=1))
        prediction = float(closes.iloc[-1]) * np.exp(drift * np.arange(1, days_ahead + 1))
        return with_interval(prediction, normal_interval(sd, days_ahead))


@dataclass(frozen=True)
class Trivial:
    """The baseline every served interval must beat: the last close times the quantiles of all
    h-day log returns of the three years before the origin (NaN where fewer than two are known)."""

    name: str = "trivial"

    def forecast(self, closes: pd.Series, days_ahead: int) -> Forecast:
        logp = log_prices(closes)
        return with_interval(np.full(days_ahead, float(closes.iloc[-1])), trivial_interval(logp, days_ahead))


def trivial_interval(logp: np.ndarray, days_ahead: int, levels=LEVELS) -> Interval:
    """Quantiles of the h-day log returns in the TRIVIAL_WINDOW days up to the last close."""
    recent = logp[-(TRIVIAL_WINDOW + 1) :]
    shares = np.asarray(levels, dtype=float) / 100
    lower, upper = np.full((len(levels), days_ahead), np.nan), np.full((len(levels), days_ahead), np.nan)
    for h in range(1, min(days_ahead, len(recent) - 2) + 1):
        returns = recent[h:] - recent[:-h]
        lower[:, h - 1] = np.quantile(returns, (1 - shares) / 2)
        upper[:, h - 1] = np.quantile(returns, (1 + shares) / 2)
    days = list(range(1, days_ahead + 1))
    return Interval(days, dict(zip(levels, lower.tolist(), strict=True)), dict(zip(levels, upper.tolist(), strict=True)))


BASELINES = (Naive(), Drift(), Trivial())
