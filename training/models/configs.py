"""The Prophet configurations training chooses from, and fitting and forecasting one of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from artifact import SERVED_INTERVAL_WIDTH, ForecastContract, forecast_table, served_forecast


@dataclass(frozen=True)
class Config:
    """One Prophet configuration: what it models, on how much history, and how it forecasts."""

    name: str
    log_target: bool = True  # model log(close): price moves are multiplicative
    window_days: int | None = 730  # train on the last N days only (None: all of them)
    growth: str = "linear"  # Prophet's trend: "linear" (with changepoints) or "flat"
    changepoint_prior_scale: float = 0.05
    changepoint_range: float = 0.8
    yearly_seasonality: bool = False
    anchor: bool = True  # shift the forecast so that it starts from the last close
    hold_trend: bool = False  # forecast with the trend held at its last fitted value
    calibrate: bool = True  # serve the calibrated interval instead of Prophet's own

    def prophet(self):
        """A fresh, unfitted Prophet for this configuration."""
        from prophet import Prophet

        return Prophet(
            growth=self.growth,
            changepoint_prior_scale=self.changepoint_prior_scale,
            changepoint_range=self.changepoint_range,
            yearly_seasonality=self.yearly_seasonality,
            weekly_seasonality=True,
            daily_seasonality=False,
            interval_width=SERVED_INTERVAL_WIDTH,
        )

    def params(self) -> dict:
        """The configuration as JSON-ready fields."""
        return asdict(self)


# Searched by training, in order of preference (see evaluation.choose). All model log price with
# weekly seasonality only (a yearly cycle fitted on a few years of crypto prices is noise that
# hurts every horizon: see "trend-yearly" in reports/backtest.md), anchored to the last close,
# with the calibrated interval. "held-trend" forecasts the last close plus the weekly pattern;
# its trend, fitted on all the history with changepoints in all but its last 5%, describes the past.
CANDIDATES = (
    Config("held-trend", window_days=None, changepoint_range=0.95, hold_trend=True),
    Config("trend"),
    Config("smooth-trend", changepoint_prior_scale=0.01),
    Config("flat", growth="flat"),
)
DEFAULT_CONFIG = CANDIDATES[0]
# Shown in the report beside the candidates, never served: what the choices above improve on.
REFERENCES = (
    # The original model: Prophet's defaults on the whole price history, with its own interval.
    Config(
        "prophet-defaults",
        log_target=False,
        window_days=None,
        yearly_seasonality=True,
        anchor=False,
        calibrate=False,
    ),
    Config("trend-own-interval", calibrate=False),
    Config("trend-yearly", yearly_seasonality=True, window_days=1095),
)


@dataclass
class Fitted:
    """A fitted model and the constant that anchors its forecasts to the last close."""

    model: object  # prophet.Prophet
    level_offset: float  # added to yhat (target space) on days after the last training day
    table: pd.DataFrame | None = None  # forecast_table from the last training day, if asked for


def training_window(config: Config, history: pd.DataFrame) -> pd.DataFrame:
    """The rows of `history` the configuration trains on (sent to a worker: only what it needs)."""
    return history if config.window_days is None else history.tail(config.window_days)


def training_frame(config: Config, frame: pd.DataFrame) -> pd.DataFrame:
    """The (ds, y) rows the configuration trains on: its window, in its target space."""
    rows = training_window(config, frame)
    y = np.log(rows.y.to_numpy()) if config.log_target else rows.y.to_numpy()
    return pd.DataFrame({"ds": rows.ds.to_numpy(), "y": y})


def fit(
    config: Config, frame: pd.DataFrame, uncertainty: bool = True, init: dict | None = None, days_ahead: int = 0
) -> Fitted:
    """Fit the configuration on a (ds, y=close) frame; the offset is 0 unless it anchors.

    `init`: parameters to start the optimizer from (a warm start); Prophet falls back to its own
    start for any whose shape does not fit. `days_ahead`: also predict the model's forecast_table
    from the last training day to that many days after it, and read the anchor from its first row
    (the same number as a prediction of that day alone, one Prophet predict fewer).
    """
    rows = training_frame(config, frame)
    model = config.prophet()
    if not uncertainty:
        model.uncertainty_samples = 0  # yhat only: a calibrated interval does not use Prophet's
    model.fit(rows, **({} if init is None else {"init": init}))
    table = None
    if days_ahead:
        last_day = pd.Timestamp(rows.ds.iloc[-1])
        table = forecast_table(model, last_day, last_day + pd.Timedelta(days=days_ahead))
    offset = 0.0
    if config.anchor:
        last_fit = table.yhat.iloc[0] if table is not None else model.predict(rows.tail(1)[["ds"]]).yhat.iloc[0]
        offset = float(rows.y.iloc[-1] - last_fit)
    return Fitted(model, offset, table)


def contract(config: Config, fitted: Fitted, interval=None, past_days: str = "fit") -> ForecastContract:
    """How the fitted configuration's output becomes served prices (artifact.ForecastContract)."""
    return ForecastContract(config.log_target, fitted.level_offset, config.hold_trend, interval, past_days)
