"""Train one price model per asset of assets.toml and write it to <model-dir> with its metadata.

The work is the ``training`` package's (training/pipeline.py); the pair of files is defined in
artifact/. The model folder is checked and locked before any work (training/model_folder.py):
one run at a time per folder. An asset whose run fails gets one error line and keeps its
previous files untouched; the run then exits 1, or 2 when an operator's mistake is the cause
(assets.toml, MODEL_DIR, a snapshot or the previous metadata malformed: training.errors.ConfigError),
as for a bad argument. Alpaca's keys are redacted from every line (training/redaction.py).
``python train.py --help`` lists the options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

from artifact import DEFAULT_MODEL_DIR
from training import redaction
from training.data.alpaca import DEFAULT_START
from training.data.assets import Asset, load_assets
from training.data.validation import DEFAULT_MIN_ROWS
from training.errors import ConfigError, TrainingError
from training.executor import CLUSTER_VARIABLE, cluster_address, training_executor
from training.model_folder import MIN_FREE_MB, MIN_FREE_VARIABLE, model_folder
from training.models.configs import CANDIDATES, DEFAULT_CONFIG
from training.pipeline import Options, considered_configs, load_bars, train_asset
from training.selection.backtest import EVAL_CUTOFFS, quiet_libraries
from training.selection.evaluation import GATE_MAX_MAPE_RATIO

log = logging.getLogger("train")

DEFAULT_HORIZON_DAYS = 365
# Ten years past the data: far beyond any honest forecast. With up to 17 years of history it fits
# the days the API holds for one model (artifact.MAX_SERVED_DAYS: each run checks its own range).
MAX_HORIZON_DAYS = 3650
DEFAULT_MAX_STALE_DAYS = 3
# Assets trained side by side: each waits on its fits most of the time, so a few keep every
# worker busy, from one asset's last fits into the next one's first.
ASSETS_AT_ONCE = 4


def parse_args(argv: list[str] | None, assets: dict[str, Asset]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fetch daily bars of each asset in assets.toml, fit Prophet, and write the model "
        "to <model-dir> with its metadata <asset>.json. One run at a time per model folder.",
        epilog="Environment: ALPACA_DATA_URL (default Alpaca's), ALPACA_API_KEY and ALPACA_SECRET_KEY "
        "(optional, raise the rate limit), MODEL_DIR (default --model-dir), "
        f"{MIN_FREE_VARIABLE} (free space the model folder needs, default {MIN_FREE_MB}).",
    )
    parser.add_argument(
        "--source",
        choices=["alpaca", "snapshot", "auto"],
        default="alpaca",
        help="alpaca: live data (default); snapshot: the bundled CSVs; "
        "auto: Alpaca, or the snapshot when Alpaca cannot be reached",
    )
    parser.add_argument(
        "--asset",
        action="append",
        choices=sorted(assets),
        help="train only this asset (repeatable; default: all of assets.toml)",
    )
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date.fromisoformat(DEFAULT_START),
        help=f"first day to fetch from Alpaca (default {DEFAULT_START})",
    )
    parser.add_argument(
        "--model-dir",
        type=model_dir,
        default=None,
        help=f"folder for the model files (default $MODEL_DIR or {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--horizon-days",
        type=horizon_days,
        default=DEFAULT_HORIZON_DAYS,
        help=f"days past the last bar the API will serve, 1 to {MAX_HORIZON_DAYS} "
        f"(default {DEFAULT_HORIZON_DAYS})",
    )
    parser.add_argument(
        "--min-rows",
        type=positive_int,
        default=DEFAULT_MIN_ROWS,
        help=f"refuse to train on fewer daily bars (default {DEFAULT_MIN_ROWS})",
    )
    parser.add_argument(
        "--max-stale-days",
        type=positive_int,
        default=DEFAULT_MAX_STALE_DAYS,
        help="refuse Alpaca data whose newest complete bar is older than this "
        f"(default {DEFAULT_MAX_STALE_DAYS}; the snapshot is exempt)",
    )
    quality = parser.add_argument_group("backtest and quality gate (see reports/backtest.md)")
    quality.add_argument(
        "--candidate",
        action="append",
        choices=[c.name for c in CANDIDATES],
        help="backtest only this configuration (repeatable; default: all, the best is served)",
    )
    quality.add_argument(
        "--max-mape-ratio",
        type=positive_float,
        default=GATE_MAX_MAPE_RATIO,
        help="quality gate: refuse a model whose backtest MAPE at any horizon exceeds this many times "
        f"the naive forecast's (default {GATE_MAX_MAPE_RATIO})",
    )
    quality.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="backtest processes (default: one per core; never more than the cores or the fits to run)",
    )
    quality.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help=f"run the fits on the Dask cluster whose scheduler is at ADDRESS (default ${CLUSTER_VARIABLE}; "
        "unset: local processes); the models are still written here",
    )
    quality.add_argument(
        "--no-backtest",
        action="store_true",
        help=f"skip the backtest and the quality gate: fit '{DEFAULT_CONFIG.name}' with Prophet's "
        "own interval (for development and tests of the data path; never ship such a model)",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="repair what the data checks can repair instead of refusing it (an exact duplicate bar, a "
        "close outside its day's range, a bad print; at most 5) and accept a feed's rewritten history; "
        "the model card lists every repair",
    )
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def model_dir(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder; got an empty string")
    return Path(text)


def default_model_dir() -> Path:
    """$MODEL_DIR, or the default folder when it is not set; ConfigError when it is set but empty.

    An empty MODEL_DIR would mean the current folder: models written among the sources.
    """
    value = os.environ.get("MODEL_DIR")
    if value is None:
        return Path(DEFAULT_MODEL_DIR)
    if not value.strip():
        raise ConfigError(
            "MODEL_DIR is set but empty: set it to a folder, or unset it for the default "
            f"{DEFAULT_MODEL_DIR!r}"
        )
    return Path(value)


def horizon_days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_HORIZON_DAYS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_HORIZON_DAYS} days; got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        source=args.source,
        start=args.start,
        model_dir=args.model_dir or default_model_dir(),
        horizon_days=args.horizon_days,
        min_rows=args.min_rows,
        max_stale_days=args.max_stale_days,
        candidates=tuple(args.candidate or ()),
        max_mape_ratio=args.max_mape_ratio,
        jobs=args.jobs,
        backtest=not args.no_backtest,
        repair=args.repair,
    )


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # cmdstanpy logs every chain start and stop; prophet.plot complains that plotly is absent.
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    redaction.install()


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    try:
        assets = load_assets()
        args = parse_args(argv, assets)
        options = options_from(args)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    try:
        address = cluster_address(args.cluster)
        chosen = [assets[key] for key in args.asset or list(assets)]
        fits = planned_fits(chosen, options)
        with (
            model_folder(options.model_dir),
            training_executor(options.jobs, address, quiet_libraries, fits) as executor,
        ):
            failed = train_assets(chosen, options, executor)
    except TrainingError as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        # The assets' threads wait on fits that will never finish: exit without joining them. The
        # folder is as a kill leaves it: each pair whole, the lock gone with this process.
        log.error("interrupted: pairs written so far stay, the others are untouched")
        os._exit(130)
    except Exception:
        # A bug, not a refusal: its traceback, then the same exit, for the same waiting threads.
        log.exception("training stopped by an unexpected error: pairs written so far stay")
        os._exit(1)
    if any(isinstance(error, ConfigError) for error in failed.values()):
        return 2
    return 1 if failed else 0


def planned_fits(chosen: list[Asset], options: Options) -> int:
    """The fits a run plans: each asset's backtest (every candidate at every cutoff) and its model."""
    backtest = len(considered_configs(options)) * EVAL_CUTOFFS if options.backtest else 0
    return len(chosen) * (backtest + 1)


def train_assets(
    chosen: list[Asset], options: Options, executor: Executor | None = None
) -> dict[str, TrainingError]:
    """Train the assets, ASSETS_AT_ONCE side by side, their fits on one executor, each as soon as its
    bars are in; returns the error of each that failed, each logged in one line."""
    now = datetime.now(UTC)
    failed, jobs = {}, {}
    threads = ThreadPoolExecutor(ASSETS_AT_ONCE, thread_name_prefix="asset")
    try:
        for asset in chosen:
            try:  # here, in the main thread: the fetch's deadline is a SIGALRM timer
                bars = load_bars(asset, options.source, options.start, now)
            except TrainingError as error:
                log.error("training %s failed: %s", asset.key, error)
                failed[asset.key] = error
                continue
            jobs[asset.key] = threads.submit(train_asset, asset, options, now, executor, bars)
        for key, job in jobs.items():
            try:
                job.result()
            except TrainingError as error:
                log.error("training %s failed: %s", key, error)
                failed[key] = error
    finally:  # interrupted (Ctrl-C): no asset waits for the others
        threads.shutdown(wait=False, cancel_futures=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
