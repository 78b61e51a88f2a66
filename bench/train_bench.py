"""Training many assets: N synthetic assets served by the fake Alpaca, on the local process pool and
on a local Dask cluster (a scheduler and workers started as their own processes on 127.0.0.1).

Each run is the full job of train.py for every asset (fetch through alpaca-py, checks, backtest of
every candidate, choice, gate, fit, the pair written), through the same train_assets and executor,
in a process of its own; it prints wall time, time per asset and peak RSS (the process that writes
the pairs, and the largest worker). Usage:

    python bench/train_bench.py                       # N = 10 and 50, local and Dask
    python bench/train_bench.py --assets 10 --executors local --candidate trend --keep DIR

The synthetic assets replay stretches of the bundled BTC and ETH returns, `--days` of history each
(1095: 22 backtest cutoffs), chosen by their index, so every run trains the same data; the quality
gate refuses some of them, as it would such assets (their backtest ran: "refused"). The backtest
is of the served configuration (held-trend) unless --candidate says otherwise: all four candidates
are four times the fits, which bench the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scripts.processes import free_port, stop_process  # noqa: E402

DASK = Path(sys.executable).with_name("dask")
DASK_WORKERS = 2  # processes of one thread each: one per core of the machines this project runs on
CLUSTER_START_TIMEOUT = 90.0


def synthetic_bars(index: int, days: int, today: date) -> list[dict]:
    """`days` closed daily bars up to yesterday and today's open one, as Alpaca sends them: the
    daily log returns of a stretch of the bundled BTC or ETH history chosen by `index`, so that the
    volatility comes and goes as a crypto asset's does."""
    rng = np.random.default_rng(index)
    closes = pd.read_csv(ROOT / "data" / ("btc_usd_1d.csv", "eth_usd_1d.csv")[index % 2])["close"].to_numpy()
    start = rng.integers(0, len(closes) - days - 1)
    returns = np.diff(np.log(closes[start : start + days + 2]))
    prices = 100 * np.exp(np.cumsum(returns))
    opens = np.concatenate([[100.0], prices[:-1]])  # each day opens at the close before: it never closes
    first = today - timedelta(days=days)
    return [
        {
            **{"o": float(open_), "c": float(close), "vw": float(close), "v": 1000.0, "n": 0},
            **{"h": float(max(open_, close)) * 1.005, "l": float(min(open_, close)) * 0.995},
        }
        | {"t": f"{(first + timedelta(days=i)).isoformat()}T00:00:00Z"}
        for i, (open_, close) in enumerate(zip(opens, prices, strict=True))
    ]


def train_once(
    count: int, days: int, candidates: tuple[str, ...], address: str | None, model_dir: Path
) -> dict:
    """Train `count` synthetic assets in this process, as train.py does; what the run took."""
    from tests.fake_alpaca import FakeAlpaca, start_fake_alpaca, stop_fake_alpaca
    from train import configure_logging, planned_fits, train_assets
    from training.data.assets import Asset
    from training.data.validation import DEFAULT_MIN_ROWS
    from training.executor import training_executor
    from training.model_folder import model_folder
    from training.pipeline import Options
    from training.selection.backtest import quiet_libraries

    configure_logging()
    today = datetime.now(UTC).date()
    assets = [
        Asset(f"s{i:02d}", f"Synthetic {i}", f"S{i:02d}/USD", Path("/nonexistent")) for i in range(count)
    ]
    server = start_fake_alpaca(
        FakeAlpaca({a.symbol: synthetic_bars(i, days, today) for i, a in enumerate(assets)})
    )
    os.environ["ALPACA_DATA_URL"] = server.url
    options = Options(
        source="alpaca", start=today - timedelta(days=days + 10), model_dir=model_dir, horizon_days=365,
        min_rows=DEFAULT_MIN_ROWS, max_stale_days=3, candidates=candidates,
    )  # fmt: skip
    try:
        started = time.perf_counter()
        fits = planned_fits(assets, options)
        with model_folder(model_dir), training_executor(None, address, quiet_libraries, fits) as executor:
            failed = train_assets(assets, options, executor)
            seconds = time.perf_counter() - started
            worker_rss = worker_peak_mb(executor) if address else None
    finally:
        stop_fake_alpaca(server)
    if worker_rss is None:  # the local pool's workers, reaped: the largest of them
        worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    owner_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "assets": count, "failed": len(failed), "seconds": seconds,
        "owner_rss_mb": owner_rss, "worker_rss_mb": worker_rss,
    }  # fmt: skip


def worker_peak_mb(executor) -> float:
    """The largest peak RSS among the Dask cluster's workers, as each one's kernel counts it."""
    peaks = executor._client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return max(peaks.values()) / 1024


def start_cluster(folder: Path) -> tuple[str, list[subprocess.Popen]]:
    """`dask scheduler` and `dask worker` on 127.0.0.1, each its own process; returns once all are up."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = folder / "cluster.log"
    with log.open("ab") as output:
        scheduler = ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
        workers = [
            "worker",
            address,
            "--host",
            "127.0.0.1",
            "--nworkers",
            str(DASK_WORKERS),
            "--nthreads",
            "1",
        ]
        workers += ["--no-dashboard", "--local-directory", str(folder / "workers")]
        processes = [
            subprocess.Popen([str(DASK), *command], cwd=folder, stdout=output, stderr=subprocess.STDOUT)
            for command in (scheduler, workers)
        ]
    try:
        with Client(address, timeout=f"{CLUSTER_START_TIMEOUT:.0f}s", set_as_default=False) as client:
            client.wait_for_workers(DASK_WORKERS, timeout=CLUSTER_START_TIMEOUT)
    except Exception:
        for process in processes:
            stop_process(process)
        raise
    return address, processes


def run(count: int, days: int, candidates: list[str], executor: str, keep: Path | None) -> dict:
    """One measured run in a process of its own (so its peak RSS is its own), on a fresh cluster."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        model_dir = keep / f"{executor}-{count}" if keep else Path(folder) / "models"
        processes: list[subprocess.Popen] = []
        address = None
        if executor == "dask":
            address, processes = start_cluster(Path(folder))
        try:
            command = [
                sys.executable,
                __file__,
                "--one",
                str(count),
                "--days",
                str(days),
                "--model-dir",
                str(model_dir),
            ]
            command += [f"--candidate={name}" for name in candidates]
            if address:
                command += ["--cluster", address]
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        finally:
            for process in reversed(processes):
                stop_process(process)
        if result.returncode != 0:
            raise SystemExit(f"the {executor} run of {count} assets failed:\n{result.stderr[-3000:]}")
        return {"executor": executor, **json.loads(result.stdout.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--executors", nargs="+", choices=["local", "dask"], default=["local", "dask"])
    parser.add_argument(
        "--days", type=int, default=1095, help="history of each synthetic asset (default 1095)"
    )
    parser.add_argument(
        "--candidate",
        action="append",
        help="backtest only this configuration (repeatable; default held-trend)",
    )
    parser.add_argument("--keep", type=Path, help="write the models under this folder, one per run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single run, in this process
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cluster", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.candidate = args.candidate or ["held-trend"]
    if args.one:
        print(
            json.dumps(train_once(args.one, args.days, tuple(args.candidate), args.cluster, args.model_dir))
        )
        return
    print(
        f"{'executor':8} {'assets':>6} {'wall s':>8} {'s/asset':>8} {'owner MB':>9} {'worker MB':>9} refused"
    )
    for count in args.assets:
        for executor in args.executors:
            r = run(count, args.days, args.candidate, executor, args.keep)
            print(
                f"{r['executor']:8} {r['assets']:6d} {r['seconds']:8.1f} {r['seconds'] / r['assets']:8.2f} "
                f"{r['owner_rss_mb']:9.0f} {r['worker_rss_mb']:9.0f} {r['failed']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
