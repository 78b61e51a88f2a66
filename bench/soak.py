"""Soak: the API under steady load for a minute or more, checked for errors, memory growth and recovery.

Trains on the bundled snapshot (or uses MODEL_DIR), starts `python api.py` on loopback, warms
it up, then loads it with wrk for --seconds at --connections, cycling through every kind of
valid read (bench/soak.lua: one-day forecasts, ranges as JSON and CSV, history, model cards,
health) while sampling the server's RSS. Then it times fresh requests one by one. Exits 1 if
any request failed (a socket error or a non-2xx answer) or the server stopped answering.

    python bench/soak.py [--seconds 60] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, rss_mb, run_wrk, start_server, stop_process, train_models

SCRIPT = Path(__file__).resolve().parent / "soak.lua"
WARM_UP_SECONDS = 10
RSS_SAMPLE_SECONDS = 5
AFTER_PATHS = ["/bitcoin?date=2024-06-01", "/forecast/btc?start=2024-01-01&end=2024-12-31", "/health"]


def sample_rss(pid: int, stop_sampling: threading.Event, samples: list[float]) -> None:
    """Append the server's RSS (MB) every few seconds until told to stop."""
    while not stop_sampling.wait(RSS_SAMPLE_SECONDS):
        samples.append(rss_mb(pid))


def timed_get(url: str) -> tuple[int, float]:
    """Status and milliseconds of one fresh request (a new connection, as a new client would)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # nosec B310  # loopback URL built here
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:  # a non-2xx answer: reported as such, not a crash
        status = error.code
    return status, (time.perf_counter() - started) * 1000


def soak(model_dir: Path, seconds: int, connections: int) -> bool:
    server = start_server("api", [sys.executable, "api.py"], "/health", {"MODEL_DIR": str(model_dir)})
    base = server.url.removesuffix("/health")
    pid = server.process.pid
    try:
        ready = rss_mb(pid)
        warm = run_wrk(base, seconds=WARM_UP_SECONDS, connections=connections, script=SCRIPT)
        start = rss_mb(pid)
        samples: list[float] = []
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(pid, stop_sampling, samples), daemon=True)
        sampler.start()
        load = run_wrk(base, seconds=seconds, connections=connections, script=SCRIPT)
        stop_sampling.set()
        sampler.join()
        end = rss_mb(pid)
        after = [timed_get(base + path) for path in AFTER_PATHS for _ in range(5)]
        still_running = server.process.poll() is None
    finally:
        stop_process(server.process)

    print(
        f"soak: {seconds} s at {connections} connections, wrk -t2 -s bench/soak.lua (7 kinds of valid read)"
    )
    print(f"  warm-up ({WARM_UP_SECONDS} s): {warm.requests} requests, {warm.socket_errors} socket errors")
    print(f"  requests: {load.requests} ({load.requests_per_second:.0f}/s)")
    print(f"  latency: p50 {load.p50_ms:.2f} ms, p90 {load.p90_ms:.2f} ms, p99 {load.p99_ms:.2f} ms")
    print(f"  socket errors: {load.socket_errors}; non-2xx answers: {load.non_2xx}")
    print(f"  RSS: {ready:.1f} MB ready, {start:.1f} MB after warm-up (start), {end:.1f} MB at the end")
    print(f"  RSS growth over the soak: {end - start:+.1f} MB ({(end - start) / start:+.1%})")
    print("  RSS every 5 s: " + " ".join(f"{mb:.1f}" for mb in samples))
    statuses = {status for status, _ in after}
    times = sorted(ms for _, ms in after)
    print(
        f"  after: {len(after)} fresh requests, statuses {sorted(statuses)}, "
        f"median {times[len(times) // 2]:.1f} ms, slowest {times[-1]:.1f} ms"
    )
    healthy = load.socket_errors == 0 and load.non_2xx == 0 and statuses == {200} and still_running
    print("soak: " + ("OK" if healthy else "FAILED"))
    return healthy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="length of the soak (default 60)")
    parser.add_argument("--connections", type=int, default=64, help="open connections (default 64)")
    args = parser.parse_args()
    if os.environ.get("MODEL_DIR"):
        return 0 if soak(Path(os.environ["MODEL_DIR"]), args.seconds, args.connections) else 1
    with tempfile.TemporaryDirectory() as folder:
        print(f"training on the snapshot: {train_models(Path(folder)):.0f} s")
        return 0 if soak(Path(folder), args.seconds, args.connections) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
