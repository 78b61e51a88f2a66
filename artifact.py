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
import json
import os
import pickle  # nosec B403  # only a model whose sha256 matches its metadata is unpickled
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

METADATA_FORMAT = 2  # 2 adds "forecast" (how to serve the output), "config" and "backtest"
READABLE_FORMATS = (1, 2)
SERVED_INTERVAL_WIDTH = 0.8  # the served answers are 80% intervals
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
    """The calibrated interval: log(bound / prediction) at each knot horizon, widening with it."""

    horizon_days: list[int]
    lower: list[float]
    upper: list[float]

    def bounds(self, days_ahead) -> tuple[np.ndarray, np.ndarray]:
        """Log bounds at any horizon: linear between knots, growing like sqrt(h) past the last."""
        days_ahead = np.asarray(days_ahead, dtype=float)
        growth = np.sqrt(np.maximum(days_ahead / self.horizon_days[-1], 1.0))
        return (
            np.interp(days_ahead, self.horizon_days, self.lower) * growth,
            np.interp(days_ahead, self.horizon_days, self.upper) * growth,
        )

    def to_json(self) -> dict:
        return {"width": SERVED_INTERVAL_WIDTH, **asdict(self)}

    @classmethod
    def from_json(cls, spec) -> Interval:
        """The interval of the metadata, once checked to be well formed and to widen with the horizon."""
        if not isinstance(spec, dict):
            raise ModelError(f"forecast interval must be an object, got {type(spec).__name__}")
        try:
            days, lower, upper = (
                np.asarray(spec[k], dtype=float) for k in ("horizon_days", "lower", "upper")
            )
        except (TypeError, KeyError, ValueError) as error:
            raise ModelError(f"forecast interval is malformed: {error!r}") from error
        problem = None
        if spec.get("width") != SERVED_INTERVAL_WIDTH:
            problem = f"width must be {SERVED_INTERVAL_WIDTH}: the API serves 80% intervals"
        elif not (days.ndim == 1 and len(days) and days.shape == lower.shape == upper.shape):
            problem = "horizon_days, lower and upper must be lists of the same, non-zero length"
        elif not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            problem = "bounds must be finite"
        elif days[0] < 1 or (np.diff(days) <= 0).any():
            problem = "horizon_days must increase from at least 1"
        elif (
            (lower > 0).any() or (upper < 0).any() or (np.diff(lower) > 0).any() or (np.diff(upper) < 0).any()
        ):
            problem = "bounds must contain the prediction and widen with the horizon"
        if problem:
            raise ModelError(f"forecast interval is malformed: {problem}")
        return cls(list(spec["horizon_days"]), list(spec["lower"]), list(spec["upper"]))


@dataclass(frozen=True)
class ForecastContract:
    """How the model's output becomes served USD prices: the metadata's "forecast"."""

    log_target: bool  # the model predicts log(close)
    level_offset: float  # added to the model's output on days after the last training day
    hold_trend: bool  # after the last training day, the trend stays at its value on that day
    interval: Interval | None  # calibrated bounds by days ahead, replacing the model's own after the last day

    def to_json(self) -> dict:
        return {
            "target": "log_close" if self.log_target else "close",
            "level_offset": round(self.level_offset, 8),
            "hold_trend": self.hold_trend,
            "interval": self.interval.to_json() if self.interval else None,
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
        return cls(
            target == "log_close",
            float(offset),
            spec.get("hold_trend") is True,
            None if interval is None else Interval.from_json(interval),
        )


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


def served_forecast(table: pd.DataFrame, contract: ForecastContract, last_day: date) -> pd.DataFrame:
    """The model's forecast table in USD, as the contract says; days up to `last_day` are the fit.

    Without bounds in the table (a model fitted without uncertainty samples) and without a
    calibrated interval, the bounds are NaN.
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
    if contract.interval is not None:
        lower, upper = contract.interval.bounds(ahead[future])
        low[future] = prediction[future] * np.exp(lower)
        high[future] = prediction[future] * np.exp(upper)
    return pd.DataFrame({"ds": table.ds, "yhat": prediction, "yhat_lower": low, "yhat_upper": high})
