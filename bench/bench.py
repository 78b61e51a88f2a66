"""Throughput and latency of /bitcoin against a Flask hello world, the naive per-request predict
and a bare WSGI app on the same server.

One run trains the models on the bundled snapshot (or uses MODEL_DIR), starts the four servers on
loopback side by side, loads each with wrk at the same settings in alternating rounds, and prints medians,
ratios and the targets they are held to. Figures are relative to the references measured in
the same run, so a busy machine moves both sides alike. Every reference is served as api.py is
(serving/server.py), so the bare app's rate is the server's own limit on this machine.

    python bench/bench.py [--rounds 3] [--seconds 15] [--connections 32]
    MODEL_DIR=models python bench/bench.py   # models trained before: no training
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Load, Server, rss_mb, run_wrk, start_server, stop_process, train_models

PYTHON = sys.executable
DAY = "2024-06-01"


@dataclass
class Variant:
    name: str
    command: list[str]
    path: str
    loads: list[Load] = field(default_factory=list)

    def median(self, metric: str) -> float:
        return statistics.median(getattr(load, metric) for load in self.loads)


def variants() -> list[Variant]:
    return [
        Variant("api", [PYTHON, "api.py"], f"/bitcoin?date={DAY}"),
        Variant("hello", [PYTHON, "bench/hello_app.py"], "/hello"),
        Variant("naive", [PYTHON, "bench/naive_app.py"], f"/bitcoin?date={DAY}"),
        Variant("bare", [PYTHON, "bench/bare_app.py"], f"/bitcoin?date={DAY}"),
    ]


def measure(args: argparse.Namespace) -> None:
    if os.environ.get("MODEL_DIR"):  # models trained before: no training time to report
        load_all(os.environ["MODEL_DIR"], None, args)
        return
    with tempfile.TemporaryDirectory() as model_dir:
        train_seconds = train_models(Path(model_dir))
        print(f"train.py on the snapshot (all assets): {train_seconds:.1f} s", flush=True)
        load_all(model_dir, train_seconds, args)


def load_all(model_dir: str, train_seconds: float | None, args: argparse.Namespace) -> None:
    all_variants = variants()
    servers: dict[str, Server] = {}
    try:
        for variant in all_variants:
            servers[variant.name] = start_server(
                variant.name, variant.command, variant.path, {"MODEL_DIR": model_dir}
            )
        for round_number in range(args.rounds):
            # Rotate the order every round so no variant always runs first or last.
            turn = round_number % len(all_variants)
            for variant in all_variants[turn:] + all_variants[:turn]:
                load = run_wrk(servers[variant.name].url, seconds=args.seconds, connections=args.connections)
                variant.loads.append(load)
                rate, p99 = load.requests_per_second, load.p99_ms
                print(
                    f"round {round_number + 1} {variant.name:5}: {rate:9.1f} req/s, p99 {p99:8.2f} ms",
                    flush=True,
                )
        api_rss = rss_mb(servers["api"].process.pid)
    finally:
        for server in servers.values():
            stop_process(server.process)
    report(all_variants, servers, api_rss, train_seconds, args)


def report(
    all_variants: list[Variant], servers: dict[str, Server], api_rss: float, train_seconds: float | None, args
) -> None:
    api, hello, naive, bare = all_variants
    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s --latency, {args.rounds} rounds, medians:")
    print(
        f"{'variant':8} {'req/s':>10} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'errors':>7} {'non-2xx':>8}"
    )
    for variant in all_variants:
        errors = sum(load.socket_errors for load in variant.loads)
        non_2xx = sum(load.non_2xx for load in variant.loads)
        rate, p50, p90, p99 = (
            variant.median(m) for m in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms")
        )
        print(f"{variant.name:8} {rate:10.1f} {p50:9.2f} {p90:9.2f} {p99:9.2f} {errors:7d} {non_2xx:8d}")
    vs_hello = api.median("requests_per_second") / hello.median("requests_per_second")
    vs_naive = api.median("requests_per_second") / naive.median("requests_per_second")
    vs_bare = api.median("requests_per_second") / bare.median("requests_per_second")
    p99_ratio = api.median("p99_ms") / hello.median("p99_ms")
    cold = servers["api"].cold_start
    print()
    targets = [
        ("throughput api/hello", f"{vs_hello:.2f} x", vs_hello >= 1.5, ">= 1.5 x"),
        ("throughput api/bare", f"{vs_bare:.2f} x", vs_bare >= 0.9, ">= 0.9 x (server's limit)"),
        ("throughput api/naive", f"{vs_naive:.0f} x", vs_naive >= 50, ">= 50 x"),
        ("p99 api/hello", f"{p99_ratio:.2f} x", p99_ratio <= 1.5, "<= 1.5 x"),
        ("cold start to first 200", f"{cold:.2f} s", cold <= 3.0, "<= 3 s"),
        ("api RSS after load", f"{api_rss:.0f} MB", api_rss <= 250, "<= 250 MB"),
    ]
    for name, value, met, target in targets:
        print(f"{name:24} {value:>10}   target {target:28} {'met' if met else 'MISSED'}")
    if train_seconds is not None:
        print(f"{'train.py wall time':24} {train_seconds:8.1f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    return parser.parse_args(argv)


if __name__ == "__main__":
    measure(parse_args())
