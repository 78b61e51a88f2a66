"""The model artifact and the forecast it serves: the one definition that training, the backtest,
the API and the notebook share. Pure: numpy and pandas (and pickle) only.

The artifact is a pair of files per asset in the model folder (default ``models/``):

``<asset>.<sha256[:16]>.pkl`` (format 3; ``<asset>.pkl`` in formats 1 and 2)
    A pickled, fitted ``prophet.Prophet``, named by its content (:func:`model_file_name`). It is
    unpickled only after its sha256 matches the one its metadata names.
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
    ``model_file`` (written since format 3) names the model file: a plain ``.pkl`` file name in
    the same folder (no path separator, not hidden). Metadata without it (formats 1 and 2)
    means ``<asset>.pkl``: readers go by the field, not by the format number.

The metadata is the pair's single commit point. :func:`write_pair` writes the new model file
under its own name first, then renames the new metadata over ``<asset>.json``, and only then
removes the asset's model files that no metadata names any more: a reader sees the old pair or
the new one, and a writer killed at any step leaves a loadable pair. :func:`read_pair` reads
the metadata, then the model it names, and reads again if a writer replaced the pair meanwhile.

Every day of the served range is forecast on one dense daily grid with a fixed seed
(:func:`forecast_table`): Prophet simulates future trend changes only at the rows it is asked
about, so this is the only way to honest far-future bands, and the same request always gets the
same answer. :func:`served_forecast` applies the contract.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle  # nosec B403  # only a model whose sha256 matches its metadata is unpickled
import re
import tempfile
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

# 2 adds "forecast" (how to serve the output), "config" and "backtest"; 3 adds "model_file".
METADATA_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
MODEL_FILE_HASH_CHARS = 16  # hex digits of the model's sha256 in its file name (format 3)
READ_ATTEMPTS = 3  # reads of a pair that a writer keeps replacing before the reader gives up
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
    model_file: NotRequired[str]  # the model's file in the same folder, btc.<sha256[:16]>.pkl (else btc.pkl)
    serve: ServedRange
    forecast: NotRequired[dict[str, Any]]  # ForecastContract.to_json()
    config: NotRequired[dict[str, Any]]  # the training configuration
    backtest: NotRequired[dict[str, Any] | None]  # the backtest summary


# ---------------------------------------------------------------- the pair of files


def metadata_path(model_dir: Path, asset: str) -> Path:
    """Where the metadata of an asset's model lives: ``<asset>.json`` in the model folder."""
    return model_dir / f"{asset}.json"


def model_file_name(asset: str, sha256: str) -> str:
    """The name of a model file in format 3: the asset and the start of its content's sha256."""
    return f"{asset}.{sha256[:MODEL_FILE_HASH_CHARS]}.pkl"


def check_model_file(name) -> str:
    """A metadata's ``model_file``, once it is a plain .pkl file name in the same folder."""
    if not (
        isinstance(name, str)
        and name.endswith(".pkl")
        and not name.startswith(".")
        and not set(name) & {"/", "\\", "\0"}
    ):
        raise ValueError(f"model_file {name!r} is not a plain .pkl file name in the model folder")
    return name


def model_path(metadata_file: Path, metadata: Metadata) -> Path:
    """The model file the metadata names in ``model_file``; without one, ``<asset>.pkl`` beside it."""
    return metadata_file.parent / check_model_file(metadata.get("model_file", f"{metadata_file.stem}.pkl"))


def trained_at(metadata: Metadata) -> datetime:
    """When the model was trained (ISO 8601; a trailing Z means UTC)."""
    return datetime.fromisoformat(metadata["trained_at"].replace("Z", "+00:00"))


def check_metadata(metadata: dict) -> Metadata:
    """The metadata, once every field the API relies on is checked; raises ValueError, KeyError, TypeError."""
    if metadata["format"] not in READABLE_FORMATS:
        raise ValueError(f"metadata format {metadata['format']!r} is not one of {READABLE_FORMATS}")
    if "model_file" in metadata:
        check_model_file(metadata["model_file"])
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


def read_metadata(metadata_file: Path) -> Metadata:
    """The metadata in ``<asset>.json``, checked; ModelError says what is wrong."""
    try:
        return check_metadata(json.loads(metadata_file.read_text()))
    except FileNotFoundError as error:
        raise ModelError(f"model metadata {metadata_file} not found (run train.py)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model metadata {metadata_file} is unreadable: {error!r}") from error


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


def read_pair(metadata_file: Path) -> tuple[Metadata, Any]:
    """The checked metadata and the model it names, unpickled; ModelError says what is wrong.

    A writer may replace the pair while it is read and remove the model file the old metadata
    named: a model that fails while the metadata changed under it is read again, a few times.
    """
    for _ in range(READ_ATTEMPTS):
        metadata = read_metadata(metadata_file)
        try:
            path = model_path(metadata_file, metadata)
            return metadata, read_model(path, metadata["model_sha256"])
        except ValueError as error:
            raise ModelError(f"model metadata {metadata_file} is unreadable: {error!r}") from error
        except ModelError:
            if read_metadata(metadata_file) == metadata:  # the pair itself is bad, not replaced
                raise
    raise ModelError(
        f"model metadata {metadata_file} changed {READ_ATTEMPTS} times while it was read: "
        "is train.py writing this folder right now?"
    )


def write_pair(metadata_file: Path, model_bytes: bytes, metadata: Metadata) -> None:
    """Replace an asset's pair so that a reader sees the old pair or the new one, never a mix.

    The model goes to the file its name in ``metadata["model_file"]`` derives from its sha256
    (:func:`model_file_name`), then the metadata replaces ``<asset>.json``: that rename is the
    commit. Each is written to a synced temp file and renamed; the folder is synced after each
    rename. Only then are the asset's model files that the new metadata does not name removed,
    with any temp file a killed run left. Killed at any point, the folder holds a loadable pair:
    the previous one up to the commit, the new one after it. One writer per folder at a time
    (train.py holds the folder's lock).
    """
    asset, folder = metadata_file.stem, metadata_file.parent
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    if (metadata.get("model_sha256"), metadata.get("model_file")) != (sha256, model_file_name(asset, sha256)):
        raise ValueError("the metadata must name the model's sha256 and its file model_file_name() gives")
    model_final = folder / metadata["model_file"]
    existed = model_final.exists()  # the same content, maybe committed before: never removed below
    _replace(model_final, model_bytes)
    _sync_folder(folder)  # the model is on disk before any metadata names it
    try:
        _replace(metadata_file, (json.dumps(metadata, indent=2) + "\n").encode())
    except BaseException:
        if not existed and _named_model_file(metadata_file) != model_final.name:
            model_final.unlink(missing_ok=True)  # no metadata names it: the previous pair stands
        raise
    _sync_folder(folder)
    _remove_stale_files(folder, asset, keep=model_final.name)


def _replace(final: Path, content: bytes) -> None:
    """Write `content` to a synced temp file next to `final`, then rename it over `final`."""
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); a model must be readable by the user serving it.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """Make the folder's entries durable: a rename is only on disk once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named_model_file(metadata_file: Path) -> str | None:
    """The model file the metadata on disk names now, if it can be read."""
    try:
        return json.loads(metadata_file.read_text()).get("model_file")
    except (OSError, ValueError, AttributeError):
        return None


def _remove_stale_files(folder: Path, asset: str, keep: str) -> None:
    """Remove the asset's model files but `keep` (older models, format 2's ``<asset>.pkl``) and temp files.

    Best effort, after the commit: a file left behind harms nothing, and the next write retries.
    """
    name, digest = re.escape(asset), rf"[0-9a-f]{{{MODEL_FILE_HASH_CHARS}}}"
    stale = re.compile(rf"{name}(\.{digest})?\.pkl|\.{name}\.({digest}\.pkl|json)\.\w+\.tmp")
    with suppress(OSError):
        for path in folder.iterdir():
            if path.name != keep and stale.fullmatch(path.name):
                path.unlink(missing_ok=True)


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
