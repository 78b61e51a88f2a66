"""Train one price model per asset: daily bars -> validated frame -> backtest -> Prophet -> .pkl + .json.

The assets come from assets.toml. A rolling-origin backtest (backtest.py) chooses each asset's
configuration, calibrates its interval and refuses a model that fails the quality gate. Each
model file is a pickled ``prophet.Prophet``; beside it, ``<asset>.json`` holds the metadata the
API relies on (see README, "Model artifact"): the pickle's sha256, the range to serve and how to
turn the model's output into served prices. An asset whose run fails gets one error line and
keeps its previous files untouched; the run then exits non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle  # nosec B403  # writes the model; api.py unpickles only its checked copy
import platform
import signal
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

import backtest

log = logging.getLogger("train")

HERE = Path(__file__).resolve().parent
ASSETS_FILE = HERE / "assets.toml"
DEFAULT_MODEL_DIR = "models"
DEFAULT_START = "2015-01-01"
DEFAULT_HORIZON_DAYS = 365
DEFAULT_MIN_ROWS = 365
DEFAULT_MAX_STALE_DAYS = 3
# Seconds allowed to Alpaca, each overridable from the environment (tests shorten them): to
# connect and between two bytes of one request (the SDK's requests.Session sets no timeout), and
# for the whole download of one asset, retries and pauses included, however the server trickles.
TIME_LIMITS = {"ALPACA_CONNECT_TIMEOUT": 5.0, "ALPACA_READ_TIMEOUT": 30.0, "ALPACA_FETCH_DEADLINE": 300.0}
HTTP_RETRIES = 3
# A server may ask for a pause (Retry-After) before a retry; a longer one is cut to this.
MAX_RETRY_AFTER = 5.0
# Alpaca serves at most 10,000 bars a page; no sane daily history needs more pages than this.
MAX_PAGES = 20
PRICE_COLUMNS = ["open", "high", "low", "close"]
METADATA_FORMAT = 2  # 2 adds "forecast" (how to serve the output), "config" and "backtest"
LIBRARIES = ["prophet", "pandas", "numpy", "cmdstanpy", "alpaca-py"]


class TrainingError(Exception):
    """A run that must stop: the message is the one line the operator sees."""


class FetchError(TrainingError):
    """Alpaca could not be reached or answered with something unusable."""


@dataclass(frozen=True)
class Asset:
    """One entry of assets.toml."""

    key: str  # URL and file name: btc
    name: str  # Bitcoin
    symbol: str  # Alpaca symbol: BTC/USD
    snapshot: Path  # bundled CSV for offline training


def load_assets(path: Path = ASSETS_FILE) -> dict[str, Asset]:
    """The configured assets, keyed by their URL name."""
    with path.open("rb") as handle:
        tables = tomllib.load(handle)
    return {
        key: Asset(key, table["name"], table["symbol"], HERE / table["snapshot"])
        for key, table in tables.items()
    }


@dataclass(frozen=True)
class Bars:
    """Daily bars indexed by UTC date, with where they came from."""

    frame: pd.DataFrame  # index: day (datetime64, midnight UTC, tz-naive); columns: PRICE_COLUMNS + volume
    source: str  # "alpaca" or "snapshot"
    origin: str  # URL or file the bars came from


# ---------------------------------------------------------------- data sources


def time_limit(name: str) -> float:
    """One of TIME_LIMITS in seconds, from the environment when set there."""
    text = os.environ.get(name)
    if text is None:
        return TIME_LIMITS[name]
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise TrainingError(f"{name} must be a positive number of seconds; got {text!r}")
    return seconds


def alpaca_client(base_url: str | None, api_key: str | None, secret_key: str | None):
    """A CryptoHistoricalDataClient whose every request has a timeout, retries and a page guard."""
    from alpaca.data.historical import CryptoHistoricalDataClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    timeout = (time_limit("ALPACA_CONNECT_TIMEOUT"), time_limit("ALPACA_READ_TIMEOUT"))

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or timeout
            return super().send(request, **kwargs)

    class CappedRetry(Retry):
        def parse_retry_after(self, retry_after: str) -> float:
            # urllib3 would sleep as long as the server asks: "Retry-After: 86400" is a day.
            return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER)

    client = CryptoHistoricalDataClient(
        api_key=api_key or None, secret_key=secret_key or None, url_override=base_url or None
    )
    # The SDK itself retries 429 and 504 (3 times, 3 s apart); the transport covers the rest,
    # so the two layers never multiply each other's attempts.
    retry = CappedRetry(
        total=HTTP_RETRIES,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503),
        allowed_methods=("GET",),
        raise_on_status=False,  # the last error response reaches the SDK, which reports its status
    )
    # The SDK has no transport settings, so its (private) requests.Session is configured here;
    # alpaca-py is pinned, and the fake-server tests catch a change of this seam.
    session = client._session
    session.mount("http://", TimeoutAdapter(max_retries=retry))
    session.mount("https://", TimeoutAdapter(max_retries=retry))
    session.hooks["response"].append(_page_guard())
    return client


def _page_guard():
    """A response hook that stops pagination loops: a repeated page token or too many pages."""
    seen_tokens: set[str] = set()
    pages = 0

    def check(response, *args, **kwargs):
        nonlocal pages
        pages += 1
        if pages > MAX_PAGES:
            raise FetchError(f"Alpaca sent more than {MAX_PAGES} pages of daily bars; giving up")
        token = None
        if response.ok and response.headers.get("content-type", "").startswith("application/json"):
            try:
                token = response.json().get("next_page_token")
            except ValueError:
                return response  # malformed JSON: the SDK raises on it with the details
        if token is not None:
            if token in seen_tokens:
                raise FetchError(f"Alpaca repeated page token {token!r}: pagination would never end")
            seen_tokens.add(token)
        return response

    return check


def fetch_bars(client, symbol: str, start: date, now: datetime) -> Bars:
    """Download the daily bars of `symbol` from `start` to `now` with alpaca-py."""
    from alpaca.data.requests import CryptoBarsRequest
    from alpaca.data.timeframe import TimeFrame

    request = CryptoBarsRequest(
        symbol_or_symbols=symbol,
        timeframe=TimeFrame.Day,
        start=datetime.combine(start, datetime.min.time(), tzinfo=UTC),
        end=now,
    )
    url = client._base_url
    log.info("fetching daily %s bars from %s since %s", symbol, url, start)
    try:
        with deadline(time_limit("ALPACA_FETCH_DEADLINE"), f"fetching {symbol} bars from {url}"):
            bar_set = client.get_crypto_bars(request)
    except FetchError:
        raise
    except Exception as error:  # the SDK raises requests, pydantic and its own errors alike
        raise FetchError(f"could not fetch bars from {url}: {fetch_problem(error)}") from error
    bars = bar_set.data.get(symbol, [])
    if not bars:
        raise FetchError(f"Alpaca returned no {symbol} bars since {start} ({url})")
    frame = pd.DataFrame(
        {
            "timestamp": [bar.timestamp for bar in bars],
            **{column: [getattr(bar, column) for bar in bars] for column in PRICE_COLUMNS},
            "volume": [bar.volume for bar in bars],
        }
    )
    log.info("fetched %d bars", len(frame))
    return Bars(_index_by_day(frame, "timestamp"), "alpaca", url)


@contextmanager
def deadline(seconds: float, what: str):
    """Raise FetchError in the block if it runs longer than `seconds` (main thread only: SIGALRM)."""

    def expire(signum, frame):
        raise FetchError(f"{what} took longer than {seconds:g} s; giving up")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fetch_problem(error: Exception) -> str:
    """What went wrong talking to Alpaca, in words an operator can act on."""
    from alpaca.common.exceptions import APIError
    from requests import exceptions as http
    from urllib3.exceptions import ConnectTimeoutError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    root = _innermost(error)
    if isinstance(error, APIError):
        return f"HTTP {error.status_code}: {_short(error)}"
    if isinstance(root, ConnectTimeoutError):
        return f"could not connect within {time_limit('ALPACA_CONNECT_TIMEOUT'):g} s"
    if isinstance(root, TimeoutError | Urllib3Timeout):
        return f"no data for {time_limit('ALPACA_READ_TIMEOUT'):g} s (read timeout)"
    if isinstance(error, http.ConnectionError | http.ChunkedEncodingError):
        return f"connection failed: {_short(root)}"
    if isinstance(error, ValueError) and "JSON" in type(error).__name__:
        return f"the answer is not valid JSON: {_short(error)}"
    return _short(error)


def _innermost(error: BaseException) -> BaseException:
    """The exception at the bottom of a requests/urllib3 wrapping (`reason`, or an exception arg)."""
    for _ in range(10):  # these chains are a few levels deep; never loop forever
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in reversed(error.args) if isinstance(arg, BaseException)), None)
        if inner is None or inner is error:
            break
        error = inner
    return error


def load_snapshot(path: Path) -> Bars:
    """Read the bundled CSV snapshot (timestamp,open,high,low,close,volume; one row per UTC day)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise TrainingError(f"cannot read snapshot {path}: {_short(error)}") from error
    missing = {"timestamp", *PRICE_COLUMNS} - set(frame.columns)
    if missing:
        raise TrainingError(f"snapshot {path} lacks columns {sorted(missing)}")
    log.info("read %d bars from snapshot %s", len(frame), path)
    return Bars(_index_by_day(frame, "timestamp"), "snapshot", _display_path(path))


def _display_path(path: Path) -> str:
    """A path relative to the project when inside it: metadata should not leak build folders."""
    resolved = path.resolve()
    return str(resolved.relative_to(HERE)) if resolved.is_relative_to(HERE) else str(path)


def _index_by_day(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Index bars by the UTC calendar day their timestamp falls on (naive timestamps are UTC)."""
    try:
        stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise TrainingError(f"bad timestamp in bars: {_short(error)}") from error
    days = stamps.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    columns = [c for c in [*PRICE_COLUMNS, "volume"] if c in frame.columns]
    return frame[columns].set_index(pd.DatetimeIndex(days.to_numpy(), name="day"))


# ---------------------------------------------------------------- validation


def drop_open_day(bars: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Drop bars whose day has not ended yet at `now` (UTC): their close is not final."""
    today = pd.Timestamp(now.astimezone(UTC).date())
    open_rows = bars.index >= today
    if open_rows.any():
        log.info("dropping %d bar(s) of days not yet closed (%s)", open_rows.sum(), today.date())
    return bars[~open_rows]


def validate_bars(
    bars: pd.DataFrame, *, min_rows: int, max_stale_days: int | None, now: datetime
) -> pd.DataFrame:
    """Check the bars and return Prophet's (ds, y) frame of daily closes, or raise TrainingError."""
    if len(bars) < min_rows:
        raise TrainingError(f"only {len(bars)} complete daily bars; at least {min_rows} are needed")
    if not bars.index.is_monotonic_increasing:
        raise TrainingError("bars are not sorted by day")
    duplicated = bars.index[bars.index.duplicated()]
    if len(duplicated):
        raise TrainingError(f"{len(duplicated)} day(s) appear twice, first {duplicated[0].date()}")
    missing = pd.date_range(bars.index[0], bars.index[-1], freq="D").difference(bars.index)
    if len(missing):
        raise TrainingError(f"{len(missing)} day(s) missing from the bars, first {missing[0].date()}")
    prices = bars[PRICE_COLUMNS]
    if prices.isna().any().any():
        first = prices.index[prices.isna().any(axis=1)][0]
        raise TrainingError(f"missing (NaN) prices, first on {first.date()}")
    if (prices <= 0).any().any():
        first = prices.index[(prices <= 0).any(axis=1)][0]
        raise TrainingError(f"non-positive prices, first on {first.date()}")
    if not np.isfinite(prices.to_numpy()).all():
        raise TrainingError("infinite prices in the bars")
    if max_stale_days is not None:
        age = (pd.Timestamp(now.astimezone(UTC).date()) - bars.index[-1]).days
        if age > max_stale_days:
            raise TrainingError(
                f"newest bar is {bars.index[-1].date()}, {age} days old (limit {max_stale_days}): "
                "the feed looks stale"
            )
    return pd.DataFrame({"ds": bars.index, "y": bars["close"].to_numpy()})


# ---------------------------------------------------------------- model and artifacts


def choose_config(frame: pd.DataFrame, args: argparse.Namespace) -> backtest.Choice | None:
    """Backtest the candidate configurations and choose one; None when the backtest is skipped."""
    if args.no_backtest:
        log.warning("skipping the backtest: %s serves Prophet's own interval", backtest.DEFAULT_CONFIG.name)
        return None
    candidates = [c for c in backtest.CANDIDATES if not args.candidate or c.name in args.candidate]
    try:
        return backtest.choose_and_check(
            frame, candidates, jobs=args.jobs, max_mape_ratio=args.max_mape_ratio
        )
    except backtest.QualityError as error:
        raise TrainingError(str(error)) from error


def fit_model(config: backtest.Config, frame: pd.DataFrame) -> backtest.Fitted:
    """Fit the configuration's Prophet model on the daily closes."""
    rows = backtest.training_window(config, frame)
    log.info(
        "fitting %s on %d days (%s to %s)",
        config.name,
        len(rows),
        rows.ds.iloc[0].date(),
        rows.ds.iloc[-1].date(),
    )
    started = time.monotonic()
    fitted = backtest.fit(config, frame)
    log.info("fitted in %.1f s", time.monotonic() - started)
    return fitted


def forecast_contract(
    config: backtest.Config, fitted: backtest.Fitted, choice: backtest.Choice | None
) -> dict:
    """How the API turns the model's output into served prices (README, "Model artifact")."""
    return {
        "target": "log_close" if config.log_target else "close",
        "level_offset": round(fitted.level_offset, 8),
        "hold_trend": config.hold_trend,
        "interval": choice.interval.contract() if choice else None,
    }


def build_metadata(
    asset: Asset, frame: pd.DataFrame, bars: Bars, model_bytes: bytes, horizon_days: int, now: datetime
) -> dict:
    """The model card the API checks and shows: provenance, versions, sha256, served range."""
    first_day, last_day = frame.ds.iloc[0].date(), frame.ds.iloc[-1].date()
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
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "serve": {
            "first_day": first_day.isoformat(),
            "last_day": (last_day + timedelta(days=horizon_days)).isoformat(),
        },
    }


def metadata_path(model_path: Path) -> Path:
    """Where the metadata of a model file lives: the same name with a .json suffix."""
    return model_path.with_suffix(".json")


def write_artifacts(model_path: Path, model_bytes: bytes, metadata: dict) -> None:
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


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None, assets: dict[str, Asset]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fetch daily bars of each asset in assets.toml, fit Prophet, and write "
        "<model-dir>/<asset>.pkl with its metadata <asset>.json.",
        epilog="Environment: ALPACA_DATA_URL (default Alpaca's), ALPACA_API_KEY and ALPACA_SECRET_KEY "
        "(optional, raise the rate limit), MODEL_DIR (default --model-dir).",
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
        type=Path,
        default=Path(os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR)),
        help=f"folder for the model files (default $MODEL_DIR or {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--horizon-days",
        type=_positive_int,
        default=DEFAULT_HORIZON_DAYS,
        help=f"days past the last bar the API will serve (default {DEFAULT_HORIZON_DAYS})",
    )
    parser.add_argument(
        "--min-rows",
        type=_positive_int,
        default=DEFAULT_MIN_ROWS,
        help=f"refuse to train on fewer daily bars (default {DEFAULT_MIN_ROWS})",
    )
    parser.add_argument(
        "--max-stale-days",
        type=_positive_int,
        default=DEFAULT_MAX_STALE_DAYS,
        help="refuse Alpaca data whose newest complete bar is older than this "
        f"(default {DEFAULT_MAX_STALE_DAYS}; the snapshot is exempt)",
    )
    quality = parser.add_argument_group("backtest and quality gate (see reports/backtest.md)")
    quality.add_argument(
        "--candidate",
        action="append",
        choices=[c.name for c in backtest.CANDIDATES],
        help="backtest only this configuration (repeatable; default: all, the best is served)",
    )
    quality.add_argument(
        "--max-mape-ratio",
        type=_positive_float,
        default=backtest.GATE_MAX_MAPE_RATIO,
        help="quality gate: refuse a model whose backtest MAPE at any horizon exceeds this many times "
        f"the naive forecast's (default {backtest.GATE_MAX_MAPE_RATIO})",
    )
    quality.add_argument(
        "--jobs", type=_positive_int, default=None, help="backtest processes (default: one per core)"
    )
    quality.add_argument(
        "--no-backtest",
        action="store_true",
        help=f"skip the backtest and the quality gate: fit '{backtest.DEFAULT_CONFIG.name}' with Prophet's "
        "own interval (for development and tests of the data path; never ship such a model)",
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def load_bars(asset: Asset, args: argparse.Namespace, now: datetime) -> Bars:
    """Bars from the chosen source; `auto` falls back to the snapshot, loudly, when Alpaca fails."""
    if args.source == "snapshot":
        return load_snapshot(asset.snapshot)
    client = alpaca_client(
        os.environ.get("ALPACA_DATA_URL"),
        os.environ.get("ALPACA_API_KEY"),
        os.environ.get("ALPACA_SECRET_KEY"),
    )
    try:
        return fetch_bars(client, asset.symbol, args.start, now)
    except FetchError as error:
        if args.source != "auto":
            raise
        log.warning("!" * 72)
        log.warning("ALPACA UNAVAILABLE (%s)", error)
        log.warning(
            "TRAINING %s ON THE BUNDLED SNAPSHOT %s: ITS DATA IS NOT LIVE", asset.symbol, asset.snapshot
        )
        log.warning("!" * 72)
        return load_snapshot(asset.snapshot)


def train_asset(asset: Asset, args: argparse.Namespace, now: datetime) -> dict:
    """Train one asset and write its model and metadata; returns the metadata."""
    bars = load_bars(asset, args, now)
    closed = drop_open_day(bars.frame, now)
    stale_limit = args.max_stale_days if bars.source == "alpaca" else None
    frame = validate_bars(closed, min_rows=args.min_rows, max_stale_days=stale_limit, now=now)
    choice = choose_config(frame, args)
    config = choice.config if choice else backtest.DEFAULT_CONFIG
    fitted = fit_model(config, frame)
    model_bytes = pickle.dumps(fitted.model, protocol=pickle.HIGHEST_PROTOCOL)
    rows = backtest.training_window(config, frame)
    metadata = build_metadata(asset, rows, bars, model_bytes, args.horizon_days, now)
    metadata["forecast"] = forecast_contract(config, fitted, choice)
    metadata["config"] = config.params()
    metadata["backtest"] = choice.summary if choice else None
    model_path = args.model_dir / f"{asset.key}.pkl"
    write_artifacts(model_path, model_bytes, metadata)
    log.info(
        "wrote %s and %s (serves %s to %s)",
        model_path,
        metadata_path(model_path).name,
        metadata["serve"]["first_day"],
        metadata["serve"]["last_day"],
    )
    return metadata


def _short(error: BaseException) -> str:
    """One line describing an exception, whatever its message looks like."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # cmdstanpy logs every chain start and stop; prophet.plot complains that plotly is absent.
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    logging.getLogger("prophet").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    assets = load_assets()
    args = parse_args(argv, assets)
    configure_logging()
    now = datetime.now(UTC)
    failed = []
    for key in args.asset or list(assets):
        try:
            train_asset(assets[key], args, now)
        except TrainingError as error:
            log.error("training %s failed: %s", key, error)
            failed.append(key)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
