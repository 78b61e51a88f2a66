"""The forecast contract and the served forecast: how a fitted model's output becomes USD prices."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from artifact.metadata import FORECAST_SEED, LEVELS, SERVED_INTERVAL_WIDTH, SERVED_LEVEL, Metadata, ModelError

# ---------------------------------------------------------------- the forecast contract


@dataclass(frozen=True)
class Interval:
    """Calibrated intervals: log(bound / prediction) at each knot horizon, for each served level.

    Between knots the bounds are linear in the horizon; past the last knot they grow like
    sqrt(h), as a random walk's do. A level's bounds never narrow with the horizon, and a wider
    level's interval holds a narrower one's.
    """

    horizon_days: list[int]
    lower: dict[int, list[float]]  # level (percent) -> log(low / prediction) at each knot
    upper: dict[int, list[float]]

    @property
    def levels(self) -> list[int]:
        return sorted(self.lower)

    def bounds(self, days_ahead, level: int = SERVED_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Log bounds of `level` at any horizon (days ahead, 1 or more)."""
        days_ahead = np.asarray(days_ahead, dtype=float)
        growth = np.sqrt(np.maximum(days_ahead / self.horizon_days[-1], 1.0))
        return (
            np.interp(days_ahead, self.horizon_days, self.lower[level]) * growth,
            np.interp(days_ahead, self.horizon_days, self.upper[level]) * growth,
        )

    def to_json(self) -> dict:
        return {
            "levels": self.levels,
            "horizon_days": list(self.horizon_days),
            "lower": {str(level): list(self.lower[level]) for level in self.levels},
            "upper": {str(level): list(self.upper[level]) for level in self.levels},
        }

    @classmethod
    def from_json(cls, spec) -> Interval:
        """The intervals of the metadata, once checked; format 2's single 80% interval is read too."""
        if not isinstance(spec, dict):
            raise ModelError(f"forecast interval must be an object, got {type(spec).__name__}")
        try:
            if "levels" in spec:
                levels = [int(level) for level in spec["levels"]]
                lower = {level: spec["lower"][str(level)] for level in levels}
                upper = {level: spec["upper"][str(level)] for level in levels}
            else:  # format 2: one interval, whose width must be the served one
                if spec.get("width") != SERVED_INTERVAL_WIDTH:
                    raise ModelError(
                        f"forecast interval is malformed: width must be {SERVED_INTERVAL_WIDTH}: "
                        "the API serves 80% intervals"
                    )
                lower, upper = {SERVED_LEVEL: spec["lower"]}, {SERVED_LEVEL: spec["upper"]}
            interval = cls(list(spec["horizon_days"]), lower, upper)
            check_interval(interval)
        except (TypeError, KeyError, ValueError) as error:
            raise ModelError(f"forecast interval is malformed: {error!r}") from error
        return interval


def check_interval(interval: Interval) -> None:
    """Raise ModelError unless every level's bounds are well formed, widen with h and nest."""
    problem = interval_problem(interval)
    if problem:
        raise ModelError(f"forecast interval is malformed: {problem}")


def interval_problem(interval: Interval) -> str | None:
    """What is wrong with the intervals, or None."""
    days = np.asarray(interval.horizon_days, dtype=float)
    if SERVED_LEVEL not in interval.lower or not set(interval.levels) <= set(LEVELS):
        return f"levels must include {SERVED_LEVEL} and be among {list(LEVELS)}"
    if not (days.ndim == 1 and len(days)) or days[0] < 1 or (np.diff(days) <= 0).any():
        return "horizon_days must increase from at least 1"
    sides = {
        level: (np.asarray(interval.lower[level]), np.asarray(interval.upper[level]))
        for level in interval.levels
    }
    for lower, upper in sides.values():
        if not (days.shape == lower.shape == upper.shape):
            return "horizon_days, lower and upper must be lists of the same, non-zero length"
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            return "bounds must be finite"
        if (lower > 0).any() or (upper < 0).any() or (np.diff(lower) > 0).any() or (np.diff(upper) < 0).any():
            return "bounds must contain the prediction and widen with the horizon"
    for narrow, wide in itertools.pairwise(interval.levels):
        if (sides[wide][0] > sides[narrow][0]).any() or (sides[wide][1] < sides[narrow][1]).any():
            return f"the {wide}% interval must hold the {narrow}% one"
    return None


@dataclass(frozen=True)
class ForecastContract:
    """How the model's output becomes served USD prices: the metadata's "forecast"."""

    log_target: bool  # the model predicts log(close)
    level_offset: float  # added to the model's output on days after the last training day
    hold_trend: bool  # after the last training day, the trend stays at its value on that day
    interval: Interval | None  # calibrated bounds by days ahead, replacing the model's own after the last day
    past_days: str = "fit"  # "close": a day with data answers its close; "fit": the model's fit (format 2)

    @property
    def levels(self) -> list[int]:
        return self.interval.levels if self.interval else [SERVED_LEVEL]

    def to_json(self) -> dict:
        return {
            "target": "log_close" if self.log_target else "close",
            "level_offset": round(self.level_offset, 8),
            "hold_trend": self.hold_trend,
            "interval": self.interval.to_json() if self.interval else None,
            "past_days": self.past_days,
        }

    @classmethod
    def from_metadata(cls, metadata: Metadata) -> ForecastContract:
        """The metadata's contract, checked; metadata without one means Prophet on the close, as is."""
        spec = metadata.get("forecast") or {}
        target = spec.get("target", "close")
        if target not in ("close", "log_close"):
            raise ModelError(f"unknown forecast target {target!r}: expected 'close' or 'log_close'")
        offset = spec.get("level_offset", 0.0)
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not np.isfinite(offset):
            raise ModelError(f"forecast level_offset must be a finite number, got {offset!r}")
        interval = spec.get("interval")
        past_days = spec.get("past_days", "fit")
        if past_days not in ("fit", "close") or (past_days == "close" and "closes" not in metadata):
            raise ModelError(
                f"forecast past_days must be 'fit', or 'close' with the closes; got {past_days!r}"
            )
        return cls(
            target == "log_close",
            float(offset),
            spec.get("hold_trend") is True,
            None if interval is None else Interval.from_json(interval),
            past_days,
        )


# ---------------------------------------------------------------- the forecast


def interval_bounds(prediction, interval: Interval, days_ahead, level: int = SERVED_LEVEL):
    """The USD bounds of `level` around predictions `days_ahead` days ahead: the one place an
    interval is applied, for the API, the backtest, the gate and the reports alike."""
    lower, upper = interval.bounds(days_ahead, level)
    prediction = np.asarray(prediction, dtype=float)
    return prediction * np.exp(lower), prediction * np.exp(upper)


def forecast_table(model, first_day: date, last_day: date) -> pd.DataFrame:
    """The model's output for every day of the range, on one dense daily grid with a fixed seed.

    Prophet simulates future trend changes only at the rows it is asked about, so a lone far
    date gets a band that is much too narrow; a daily grid simulates them all. A model fitted
    without uncertainty samples gives no bounds (yhat only).
    """
    grid = pd.DataFrame({"ds": pd.date_range(first_day, last_day, freq="D")})
    np.random.seed(FORECAST_SEED)
    forecast = model.predict(grid)
    return forecast[[c for c in ("ds", "yhat", "yhat_lower", "yhat_upper", "trend") if c in forecast]]


def served_forecast(
    table: pd.DataFrame, contract: ForecastContract, last_day: date, closes: pd.Series | None = None
) -> pd.DataFrame:
    """The model's forecast table in USD, as the contract says: ds, yhat and low_L, high_L per level.

    After `last_day` it is the forecast: anchored, the trend held if asked, the calibrated
    intervals. Up to `last_day` it is the model's fit with Prophet's own band ("fit"), or, with
    past_days "close", the close itself with a zero-width interval: a known price has no
    uncertainty, and the chart and the forecast join at the last close. yhat_lower and yhat_upper
    are the 80% bounds. Without bounds in the table (a model fitted without uncertainty samples)
    and without a calibrated interval, the bounds are NaN.
    """
    ahead = (table.ds - pd.Timestamp(last_day)).dt.days.to_numpy()
    future = ahead > 0
    shift = np.where(future, contract.level_offset, 0.0)
    if contract.hold_trend:
        last_trend = table.trend.to_numpy()[ahead == 0]
        if len(last_trend) != 1:
            raise ModelError(f"the served range does not hold the last training day {last_day}")
        shift = shift + np.where(future, last_trend[0] - table.trend.to_numpy(), 0.0)
    inverse = np.exp if contract.log_target else np.asarray
    prediction, low, high = (
        inverse(table[c].to_numpy() + shift) if c in table else np.full(len(table), np.nan)
        for c in ("yhat", "yhat_lower", "yhat_upper")
    )
    served = pd.DataFrame({"ds": table.ds, "yhat": prediction})
    for level in contract.levels:
        served[f"low_{level}"], served[f"high_{level}"] = low.copy(), high.copy()
        if contract.interval is not None:
            low_served, high_served = interval_bounds(
                prediction[future], contract.interval, ahead[future], level
            )
            served.loc[future, f"low_{level}"], served.loc[future, f"high_{level}"] = low_served, high_served
    if contract.past_days == "close":
        served = pd.concat([known_days(closes, last_day, contract.levels), served[future]], ignore_index=True)
    served["yhat_lower"], served["yhat_upper"] = served[f"low_{SERVED_LEVEL}"], served[f"high_{SERVED_LEVEL}"]
    return served


def known_days(closes: pd.Series, last_day: date, levels: list[int]) -> pd.DataFrame:
    """Days with data as served with past_days "close": the close, and every bound equal to it."""
    known = closes[closes.index <= pd.Timestamp(last_day)]
    rows = pd.DataFrame({"ds": known.index, "yhat": known.to_numpy()})
    for level in levels:
        rows[f"low_{level}"] = rows[f"high_{level}"] = known.to_numpy()
    return rows
