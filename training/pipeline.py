"""One asset end to end: bars -> validated closes -> backtest and choice -> fit -> the model pair."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle  # nosec B403  # writes the model; the API unpickles only its checked copy
import platform
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from artifact import MAX_SERVED_DAYS, METADATA_FORMAT, Metadata, metadata_path, model_file_name, write_pair
from training.data.alpaca import alpaca_client, fetch_bars
from training.data.assets import Asset, load_assets, reference_assets
from training.data.history import previous_closes
from training.data.sources import Bars, load_snapshot
from training.data.validation import checked_closes, drop_open_day
from training.errors import FetchError, TrainingError, os_problem
from training.models.configs import CANDIDATES, DEFAULT_CONFIG, Config, Fitted, contract, fit, training_window
from training.models.intervals import NO_POOL, Pool, reference_pool
from training.selection.backtest import MIN_EVAL_CUTOFFS, daily_closes, quiet_libraries, rolling_cutoffs
from training.selection.evaluation import Choice, choose_and_check, unjudged_choice

log = logging.getLogger(__name__)

LIBRARIES = ["prophet", "pandas", "numpy", "cmdstanpy", "alpaca-py"]


@dataclass(frozen=True)
class Options:
    """What one training run does: where the data comes from, what it checks, where it writes."""

    source: str  # "alpaca", "snapshot", or "auto" (Alpaca, else the snapshot)
    start: date  # first day fetched from Alpaca
    model_dir: Path
    horizon_days: int  # days past the last bar the API will serve
    min_rows: int
    max_stale_days: int
    candidates: tuple[str, ...] = ()  # backtest only these configurations (empty: all)
    max_mape_ratio: float = 1.25
    jobs: int | None = None  # backtest processes (None: one per core)
    backtest: bool = True  # False: fit DEFAULT_CONFIG with Prophet's own interval, ungated
    repair: bool = False  # repair the bars' repairable problems instead of refusing them (the card says)


def load_bars(asset: Asset, source: str, start: date, now: datetime) -> Bars:
    """Bars from the chosen source; `auto` falls back to the snapshot, loudly, when Alpaca fails."""
    if source == "snapshot":
        return load_snapshot(asset.snapshot)
    client = alpaca_client(
        os.environ.get("ALPACA_DATA_URL"),
        os.environ.get("ALPACA_API_KEY"),
        os.environ.get("ALPACA_SECRET_KEY"),
    )
    try:
        return fetch_bars(client, asset.symbol, start, now)
    except FetchError as error:
        if source != "auto":
            raise
        log.warning("!" * 72)
        log.warning("ALPACA UNAVAILABLE (%s)", error)
        log.warning(
            "TRAINING %s ON THE BUNDLED SNAPSHOT %s: ITS DATA IS NOT LIVE", asset.symbol, asset.snapshot
        )
        log.warning("!" * 72)
        return load_snapshot(asset.snapshot)


def incumbent(metadata_file: Path) -> str | None:
    """The configuration of the model this run replaces, if there is a readable one."""
    try:
        return json.loads(metadata_file.read_text())["config"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def considered_configs(options: Options) -> list[Config]:
    """The configurations the run may serve: the candidates it backtests, or the default without one."""
    if not options.backtest:
        return [DEFAULT_CONFIG]
    return [c for c in CANDIDATES if not options.candidates or c.name in options.candidates]


def check_served_range(frame: pd.DataFrame, horizon_days: int) -> None:
    """Refuse, before any fit, a run whose model would serve more days than the API holds for one.

    Every validated day is served (days with data answer their close), then the horizon.
    """
    first_day, last_day = frame.ds.iloc[0].date(), frame.ds.iloc[-1].date()
    days = (last_day - first_day).days + 1 + horizon_days
    if days > MAX_SERVED_DAYS:
        raise TrainingError(
            f"the model would serve {days} days ({first_day} to {last_day} and {horizon_days} more), "
            f"more than the {MAX_SERVED_DAYS} the API holds for one model: lower --horizon-days or "
            "fetch from a later --start"
        )


def reference_closes(asset: Asset) -> dict[str, pd.Series]:
    """The other bundled assets' closes (a young asset's interval borrows their quantiles)."""
    references = {}
    for key, other in reference_assets(asset, load_assets()).items():
        try:
            closes = load_snapshot(other.snapshot).frame["close"]
        except TrainingError as error:
            log.warning("reference asset %s left out of the pool: %s", key, error)
            continue
        references[key] = closes[np.isfinite(closes) & (closes > 0)]
    return references


def interval_pool(asset: Asset, frame: pd.DataFrame, options: Options) -> Pool:
    """The pooled quantiles for the years the backtest's cutoffs and the served model fall in."""
    years = {frame.ds.iloc[-1].year}
    if options.backtest:
        cutoffs, _ = rolling_cutoffs(frame.ds)
        years |= {cutoff.year for cutoff in cutoffs}
    started = time.monotonic()
    pool = reference_pool(reference_closes(asset), years)
    log.info(
        "pooled %d reference asset(s) for %d year(s) in %.1f s",
        len(pool.names),
        len(years),
        time.monotonic() - started,
    )
    return pool


def choose_config(
    frame: pd.DataFrame, options: Options, previous: str | None, pool: Pool, executor: Executor | None = None
) -> Choice | None:
    """Backtest the candidate configurations and choose one; None when the backtest is skipped.

    An asset too young for a backtest is served with the default configuration and its calibrated
    (pooled) interval, unjudged, and says so in its model card.
    """
    if not options.backtest:
        log.warning("skipping the backtest: %s serves Prophet's own interval", DEFAULT_CONFIG.name)
        return None
    _, evaluated = rolling_cutoffs(frame.ds)
    if evaluated < MIN_EVAL_CUTOFFS:
        log.warning(
            "%d days are too few for a backtest (%d cutoffs fit, %d needed): serving %s with its calibrated "
            "interval, unjudged", len(frame), evaluated, MIN_EVAL_CUTOFFS, DEFAULT_CONFIG.name,
        )  # fmt: skip
        return unjudged_choice(DEFAULT_CONFIG, daily_closes(frame), pool)
    return choose_and_check(
        frame, considered_configs(options), jobs=options.jobs, max_mape_ratio=options.max_mape_ratio,
        incumbent=previous, pool=pool, executor=executor,
    )  # fmt: skip


def fit_model(
    config: Config, frame: pd.DataFrame, own_band: bool = True, executor: Executor | None = None
) -> Fitted:
    """Fit the configuration's Prophet model on the daily closes (on the executor's workers if
    given); without Prophet's uncertainty samples unless its own band is served (`own_band`): a
    calibrated interval replaces it."""
    rows = training_window(config, frame)
    log.info(
        "fitting %s on %d days (%s to %s)",
        config.name,
        len(rows),
        rows.ds.iloc[0].date(),
        rows.ds.iloc[-1].date(),
    )
    started = time.monotonic()
    if executor is None:
        fitted = fit(config, frame, uncertainty=own_band)
    else:
        fitted = executor.submit(fit_quietly, config, frame, own_band).result()
    log.info("fitted in %.1f s", time.monotonic() - started)
    return fitted


def fit_quietly(config: Config, frame: pd.DataFrame, uncertainty: bool) -> Fitted:
    """fit(), on a worker: without the fitting libraries' log lines."""
    quiet_libraries()
    return fit(config, frame, uncertainty=uncertainty)


def build_metadata(
    asset: Asset, frame: pd.DataFrame, bars: Bars, model_bytes: bytes, horizon_days: int, now: datetime
) -> Metadata:
    """The model card the API checks and shows: provenance, versions, sha256, served range."""
    first_day, last_day = frame.ds.iloc[0].date(), frame.ds.iloc[-1].date()
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    return {
        "format": METADATA_FORMAT,
        "asset": asset.key,
        "name": asset.name,
        "symbol": asset.symbol,
        "trained_at": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": bars.source,
        "origin": bars.origin,
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "rows": len(frame),
        "versions": {"python": platform.python_version(), **{name: version(name) for name in LIBRARIES}},
        "model_sha256": sha256,
        "model_file": model_file_name(asset.key, sha256),
        "serve": {
            "first_day": first_day.isoformat(),
            "last_day": (last_day + timedelta(days=horizon_days)).isoformat(),
        },
    }


def train_asset(
    asset: Asset, options: Options, now: datetime, executor: Executor | None = None, bars: Bars | None = None
) -> Metadata:
    """Train one asset and write its model and metadata; returns the metadata.

    `bars`: the asset's, loaded already (else loaded here). The fits run on `executor`
    (training/executor.py; None: a local pool for the backtest, the final fit here); the pair is
    written here, by the process that holds the model folder.
    """
    bars = bars or load_bars(asset, options.source, options.start, now)
    metadata_file = metadata_path(options.model_dir, asset.key)
    checked = checked_closes(
        drop_open_day(bars.frame, now),
        min_rows=options.min_rows,
        max_stale_days=options.max_stale_days if bars.source == "alpaca" else None,
        now=now,
        previous=previous_closes(metadata_file, bars.source, bars.origin, asset.symbol),
        repair=options.repair,
    )
    frame = checked.frame
    check_served_range(frame, options.horizon_days)
    pool = interval_pool(asset, frame, options) if options.backtest else NO_POOL
    choice = choose_config(frame, options, incumbent(metadata_file), pool, executor)
    config = choice.config if choice else DEFAULT_CONFIG
    fitted = fit_model(config, frame, own_band=choice is None or choice.interval is None, executor=executor)
    model_bytes = pickle.dumps(fitted.model, protocol=pickle.HIGHEST_PROTOCOL)
    # The whole validated history is served (days with data answer their close), whatever window
    # the configuration was fitted on: retraining on data that only grew never shrinks the range.
    metadata = build_metadata(asset, frame, bars, model_bytes, options.horizon_days, now)
    served = contract(config, fitted, choice.interval if choice else None, past_days="close")
    metadata["forecast"] = served.to_json()
    metadata["config"] = config.params()
    metadata["backtest"] = choice.summary if choice else None
    metadata["calibration"] = choice.calibration if choice else None
    metadata["closes"] = {
        "first_day": frame.ds.iloc[0].date().isoformat(),
        "values": [float(v) for v in frame.y.to_numpy()],
    }
    metadata["repairs"] = {"allowed": options.repair, "made": checked.repairs}
    try:
        write_pair(metadata_file, model_bytes, metadata)
    except OSError as error:
        raise TrainingError(
            f"could not write the model to {options.model_dir}: {os_problem(error)}"
        ) from error
    log.info(
        "wrote %s and %s (serves %s to %s)",
        metadata_file.with_name(metadata["model_file"]),
        metadata_file.name,
        metadata["serve"]["first_day"],
        metadata["serve"]["last_day"],
    )
    return metadata
