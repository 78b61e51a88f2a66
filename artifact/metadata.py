"""The metadata of a model pair: its format, its fields and their checks, and the file names."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

# 2 added "forecast", "config" and "backtest"; 3 adds levels, "closes" and past_days; 4 adds
# "model_file" (readers go by its presence: a pair without it is <asset>.pkl).
METADATA_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
MODEL_FILE_HASH_CHARS = 16  # hex digits of the model's sha256 in its file name (format 4)
READ_ATTEMPTS = 3  # reads of a pair that a writer keeps replacing before the reader gives up
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
    model_file: NotRequired[str]  # the model's file in the same folder, btc.<sha256[:16]>.pkl (else btc.pkl)
    serve: ServedRange
    forecast: NotRequired[dict[str, Any]]  # ForecastContract.to_json()
    config: NotRequired[dict[str, Any]]  # the training configuration
    backtest: NotRequired[dict[str, Any] | None]  # the backtest summary
    closes: NotRequired[Closes]  # format 3: every validated close, whatever window the model was fitted on
    repairs: NotRequired[dict[str, Any]]  # train.py --repair: "allowed" and the repairs "made" to the bars


# ---------------------------------------------------------------- the pair of files


def metadata_path(model_dir: Path, asset: str) -> Path:
    """Where the metadata of an asset's model lives: ``<asset>.json`` in the model folder."""
    return model_dir / f"{asset}.json"


def model_file_name(asset: str, sha256: str) -> str:
    """The name of a model file in format 4: the asset and the start of its content's sha256."""
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


def not_json(constant: str):
    """json.loads would read NaN and Infinity, which no JSON answer may carry: refused."""
    raise ValueError(f"{constant} is not a JSON number")


def read_metadata(metadata_file: Path) -> Metadata:
    """The metadata in ``<asset>.json``, checked; ModelError says what is wrong."""
    try:
        return check_metadata(json.loads(metadata_file.read_text(), parse_constant=not_json))
    except FileNotFoundError as error:
        raise ModelError(f"model metadata {metadata_file} not found (run train.py)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model metadata {metadata_file} is unreadable: {error!r}") from error


def closes_of(metadata: Metadata) -> pd.Series | None:
    """The metadata's daily closes (USD) indexed by day, or None (format 2 and older)."""
    closes = metadata.get("closes")
    if closes is None:
        return None
    try:
        values = np.asarray(closes["values"], dtype=float)
        days = pd.date_range(date.fromisoformat(closes["first_day"]), periods=len(values), freq="D")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"metadata closes must be {{first_day, values}}: {error!r}") from error
    if values.ndim != 1 or not len(values) or not np.isfinite(values).all() or (values <= 0).any():
        raise ModelError("metadata closes must be positive, finite numbers")
    return pd.Series(values, index=days)
