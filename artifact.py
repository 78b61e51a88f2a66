"""The model artifact and the forecast it serves: the one definition that training, the backtest,
the API and the notebook share. Pure: numpy and pandas (and pickle) only.

The artifact is a pair of files per asset in the model folder (default ``models/``):

``<asset>.pkl``
    A pickled, fitted ``prophet.Prophet``. It is unpickled only after its sha256 matches the one
    its metadata names.
``<asset>.json``
    The metadata (:class:`Metadata`), format :data:`METADATA_FORMAT`; the API reads the formats
    in :data:`READABLE_FORMATS`. ``serve`` is the range of days the API answers. ``forecast``
    (:class:`ForecastContract`) says how the model's output becomes served USD prices:

    - ``target``: ``"close"`` (Prophet models the close) or ``"log_close"`` (it models the log
      close; outputs are exponentiated);
    - ``level_offset``: added to the model's output on days after the last training day, so that
      the forecast starts from the last close;
    - ``hold_trend``: after the last training day the trend stays at its value on that day;
    - ``interval``: ``null`` (serve Prophet's own 80% interval) or the calibrated interval
      (:class:`Interval`): at each ``horizon_days`` knot, ``lower`` and ``upper`` are
      log(bound / prediction); between knots they are interpolated linearly, past the last knot
      they grow like sqrt(h). ``width`` is :data:`SERVED_INTERVAL_WIDTH`.

    Metadata without ``forecast`` (format 1) means Prophet on the close, as it is.

Every day of the served range is forecast on one dense daily grid with a fixed seed
(:func:`forecast_table`): Prophet simulates future trend changes only at the rows it is asked
about, so this is the only way to honest far-future bands, and the same request always gets the
same answer. :func:`served_forecast` applies the contract. :func:`write_pair` replaces both files
atomically; :func:`read_metadata` and :func:`read_model` check them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pickle  # nosec B403  # only a model whose sha256 matches its metadata is unpickled
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

METADATA_FORMAT = 3  # 2 added "forecast", "config", "backtest"; 3 adds levels, "closes" and past_days
READABLE_FORMATS = (1, 2, 3)
SERVED_INTERVAL_WIDTH = 0.8  # the answers without a `level` are 80% intervals
SERVED_LEVEL = 80  # the same, in percent
LEVELS = (50, 80, 90, 95)  # the interval levels a client may ask for, each calibrated
FORECAST_SEED = 0  # Prophet draws its intervals at random; a fixed seed makes them reproducible
DEFAULT_MODEL_DIR = "models"
# Days one model may serve: the API holds every answer in memory, and Prophet simulates the whole
# range at once (1,000 samples a day). 10,000 days is over 27 years of history and forecast.
MAX_SERVED_DAYS = 10_000


class ModelError(Exception):
    """A model file or its metadata cannot be served; the message says which and why."""


class ServedRange(TypedDict):
    first_day: str  # YYYY-MM-DD
    last_day: str


class Closes(TypedDict):
    first_day: str  # the day of values[0]; one value per day after it
    values: list[float]  # USD


class Metadata(TypedDict):
    """``<asset>.json``: the model card the API checks and shows."""

    format: int
    asset: NotRequired[str]  # the asset's name in URLs and file names: btc
    name: str  # Bitcoin
    symbol: str  # Alpaca's symbol: BTC/USD
    trained_at: str  # ISO 8601 with a time zone; Z for UTC
    source: NotRequired[str]  # "alpaca" or "snapshot"
    origin: NotRequired[str]  # the URL or file the data came from
    first_day: str  # first and last day of the training data
    last_day: str
    rows: NotRequired[int]
    versions: NotRequired[dict[str, str]]  # library versions used for training
    model_sha256: str
    serve: ServedRange
    forecast: NotRequired[dict[str, Any]]  # ForecastContract.to_json()
    config: NotRequired[dict[str, Any]]  # the training configuration
    backtest: NotRequired[dict[str, Any] | None]  # the backtest summary
    closes: NotRequired[Closes]  # format 3: every validated close, whatever window the model was fitted on


# ---------------------------------------------------------------- the pair of files


def metadata_path(model_path: Path) -> Path:
    """Where the metadata of a model file lives: the same name with a .json suffix."""
    return model_path.with_suffix(".json")


def trained_at(metadata: Metadata) -> datetime:
    """When the model was trained (ISO 8601; a trailing Z means UTC)."""
    return datetime.fromisoformat(metadata["trained_at"].replace("Z", "+00:00"))


def check_metadata(metadata: dict) -> Metadata:
    """The metadata, once every field the API relies on is checked; raises ValueError, KeyError, TypeError."""
    if metadata["format"] not in READABLE_FORMATS:
        raise ValueError(f"metadata format {metadata['format']!r} is not one of {READABLE_FORMATS}")
    for field in ("first_day", "last_day"):
        date.fromisoformat(metadata["serve"][field])
        date.fromisoformat(metadata[field])
    for field in ("model_sha256", "trained_at", "symbol", "name"):
        if not isinstance(metadata[field], str):
            raise TypeError(f"{field} is not a string")
    if trained_at(metadata).tzinfo is None:
        raise ValueError(f"trained_at {metadata['trained_at']!r} has no time zone")
    if not isinstance(metadata.get("forecast") or {}, dict):
        raise TypeError("forecast is not an object")
    return metadata


def read_metadata(model_path: Path) -> Metadata:
    """The metadata written beside the model, checked; ModelError says what is wrong."""
    path = metadata_path(model_path)
    try:
        return check_metadata(json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise ModelError(f"model metadata {path} not found (run train.py)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model metadata {path} is unreadable: {error!r}") from error


def read_model(model_path: Path, expected_sha256: str):
    """Unpickle the model, but only once its bytes match the sha256 its metadata names."""
    try:
        content = model_path.read_bytes()
    except OSError as error:
        raise ModelError(f"model {model_path} cannot be read: {error.strerror or error}") from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"model {model_path} has sha256 {actual}, but its metadata expects {expected_sha256}: "
            "the file was changed or truncated after training"
        )
    try:
        # Trusted input: a local file, written by train.py and matched to its metadata above.
        model = pickle.loads(content)  # noqa: S301  # nosec B301
    except Exception as error:
        raise ModelError(f"model {model_path} is not a readable pickle: {error!r}") from error
    fitted_prophet = type(model).__module__.startswith("prophet.") and type(model).__name__ == "Prophet"
    if not fitted_prophet or getattr(model, "history", None) is None:
        raise ModelError(f"model {model_path} holds a {type(model).__name__}, not a fitted Prophet model")
    return model


def write_pair(model_path: Path, model_bytes: bytes, metadata: Metadata) -> None:
    """Write model and metadata atomically: each to a temp file in the same folder, then rename."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    metadata_bytes = (json.dumps(metadata, indent=2) + "\n").encode()
    staged = [(_stage(model_path, model_bytes), model_path)]
    try:
        staged.append((_stage(metadata_path(model_path), metadata_bytes), metadata_path(model_path)))
    except BaseException:
        staged[0][0].unlink()  # the staged model alone must not stay behind
        raise
    # The model goes first: if the process dies in between, the sha256 in the old metadata no
    # longer matches and the API refuses the pair instead of serving it.
    for temp, final in staged:
        os.replace(temp, final)


def _stage(final: Path, content: bytes) -> Path:
    """Write `content` to a synced temp file next to `final` and return its path."""
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); a model must be readable by the user serving it.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temp)
        raise
    return Path(temp)


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


def closes_of(metadata: Metadata) -> pd.Series | None:
    """The metadata's daily closes (USD) indexed by day, or None (format 2 and older)."""
    closes = metadata.get("closes")
    if closes is None:
        return None
    values = np.asarray(closes["values"], dtype=float)
    days = pd.date_range(closes["first_day"], periods=len(values), freq="D")
    if not len(values) or not np.isfinite(values).all() or (values <= 0).any():
        raise ModelError("metadata closes must be positive, finite numbers")
    return pd.Series(values, index=days)


# ---------------------------------------------------------------- the forecast


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
            lower, upper = contract.interval.bounds(ahead[future], level)
            served.loc[future, f"low_{level}"] = prediction[future] * np.exp(lower)
            served.loc[future, f"high_{level}"] = prediction[future] * np.exp(upper)
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
