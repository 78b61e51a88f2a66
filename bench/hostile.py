"""Hostile clients against `python api.py`: made-up methods, hoarded connections, clients that never read.

Trains the models on the bundled snapshot (or uses MODEL_DIR), starts `python api.py` on
loopback with its default limits, then measures and prints (--attacks picks some; all by default):

1. methods, metrics cardinality: two batches of --methods requests (10,000), each with a method
   name never sent before; the `http_request*` lines of /metrics and the server's RSS, before
   and after each batch (--same-method: the same requests all with PUT, for the RSS to compare);
2. hoard: another process holds --idle keep-alive connections (one request, then silence)
   and --slow connections sending one header line every --slow-interval seconds, reopening any
   the server closes, while a normal client sends --requests paced requests, each on a fresh
   connection. It prints the normal client's p50/p99/max and how many were answered; the
   target is p99 under 1 s (a failure counts as slower than any answer);
3. h1, h2, h3: clients that never read their answers, each against a server of its own
   (bench/nonreading.py): pipelining ones, more than the connection limit, and under
   `ulimit -Sn 1024`. Targets: the normal client gets at least 95% of its answers, p99 under
   1 s, and the server's RSS stays under 300 MB.

    python bench/hostile.py [--attacks methods,hoard,h1,h2,h3] [--methods 10000] [--idle 500]
                            [--slow 500] [--slow-interval 20] [--requests 200]

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import multiprocessing as mp
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import HOST, PATH, ms, normal_client, one_request, percentile
from common import ROOT, Server, rss_mb, start_server, stop_process, train_models
from nonreading import ATTACKS, run_attack

ATTACK_NAMES = ["methods", "hoard", *ATTACKS]
IDLE_REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()  # keep-alive, then silence
SLOW_REQUEST_LINE = f"GET {PATH} HTTP/1.1\r\n".encode()  # then a header line now and then, never the end
MAX_REOPENS = 50_000  # hoarder reconnects per run, at the most
METHOD_THREADS = 4


# ---------------------------------------------------------------- 1. made-up methods


def port_of(server: Server) -> int:
    return urlsplit(server.url).port


def series_lines(port: int) -> int:
    """How many samples of the request metrics /metrics shows (one line each)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    return sum(1 for line in text.splitlines() if line.startswith("http_request"))


def send_methods(port: int, first: int, count: int, same: bool = False) -> None:
    """`count` requests with the methods BREW<first> ... (or all PUT) on one kept-alive connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    for number in range(first, first + count):
        connection.request("PUT" if same else f"BREW{number:06d}", "/bitcoin")
        connection.getresponse().read()  # a 405: the connection stays open
    connection.close()


def made_up_methods(server: Server, methods: int, same: bool) -> dict[str, list[float]]:
    """Series lines and RSS (MB) before and after each of two batches of `methods` requests, every
    one with a method name never sent before (with `same`, all PUT: the control)."""
    port = port_of(server)
    send_methods(port, 0, 10)  # the first made-up methods, PUTs and scrape create their series once
    send_methods(port, 0, 10, same=True)
    series_lines(port)
    figures: dict[str, list[float]] = {"series": [series_lines(port)], "rss": [rss_mb(server.process.pid)]}
    share = methods // METHOD_THREADS
    for batch in range(2):
        first = 100 + batch * methods
        threads = [
            threading.Thread(target=send_methods, args=(port, first + n * share, share, same))
            for n in range(METHOD_THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        figures["series"].append(series_lines(port))
        figures["rss"].append(rss_mb(server.process.pid))
    return figures


# ---------------------------------------------------------------- 2. hoarding, in its own process


def hoard(
    port: int, idle: int, slow: int, interval: float, stop: Event, ready: Event, out: Connection
) -> None:
    """Hold `idle` + `slow` connections, reopening what the server closes, until `stop`; counts to `out`."""
    selector = selectors.DefaultSelector()  # epoll: no descriptor cap on this side
    held: dict[socket.socket, dict] = {}
    stats = {"closed_idle": 0, "closed_slow": 0, "connect_errors": 0, "reopens": 0}
    slow_ages: list[float] = []

    def open_one(kind: str) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        if sock.connect_ex((HOST, port)) not in (0, errno.EINPROGRESS):
            stats["connect_errors"] += 1
            sock.close()
            return
        held[sock] = {"kind": kind, "up": False, "opened": time.monotonic(), "next": 0.0}
        selector.register(sock, selectors.EVENT_WRITE)

    def closed(sock: socket.socket) -> None:
        """The server closed it (or it never connected): count it, and take its place again."""
        info = held.pop(sock)
        selector.unregister(sock)
        sock.close()
        stats[f"closed_{info['kind']}"] += 1
        if info["kind"] == "slow":
            slow_ages.append(time.monotonic() - info["opened"])
        if stats["reopens"] < MAX_REOPENS and not stop.is_set():
            stats["reopens"] += 1
            open_one(info["kind"])

    for number in range(idle + slow):
        open_one("idle" if number < idle else "slow")
    ready.set()
    while not stop.is_set():
        now = time.monotonic()
        for key, _ in selector.select(timeout=0.2):
            sock, info = key.fileobj, held.get(key.fileobj)
            if info is None:
                continue
            if not info["up"]:  # connected (or failed): send the request or its first line
                info["up"] = True
                info["next"] = now + interval
                try:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        raise ConnectionRefusedError
                    sock.send(IDLE_REQUEST if info["kind"] == "idle" else SLOW_REQUEST_LINE)
                except OSError:
                    closed(sock)
                    continue
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed(sock)
        for sock, info in list(held.items()):
            if info["kind"] == "slow" and info["up"] and now >= info["next"]:
                info["next"] = now + interval
                try:
                    sock.send(b"X-Slow: %d\r\n" % int(now))
                except OSError:
                    closed(sock)
    stats["open_at_end"] = sum(1 for info in held.values() if info["up"])
    stats["slow_closed_at_median_age_s"] = round(statistics.median(slow_ages), 1) if slow_ages else None
    for sock in held:
        sock.close()
    out.send(stats)


def hoarded(server: Server, args: argparse.Namespace) -> dict:
    """The normal client's latencies while the hoard is held, and the hoarder's own counts."""
    port = port_of(server)
    stop, ready = mp.Event(), mp.Event()
    receive, send = mp.Pipe(duplex=False)
    hoarder = mp.Process(
        target=hoard, args=(port, args.idle, args.slow, args.slow_interval, stop, ready, send), daemon=True
    )
    hoarder.start()
    try:
        ready.wait(30)
        time.sleep(args.settle)
        cpu_before, started = cpu_seconds(server.process.pid), time.monotonic()
        latencies = normal_client(port, args.requests, args.interval, args.parallel, args.timeout)
        cpu = (cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - started)
        alive = server.process.poll() is None
        stop.set()
        if not receive.poll(10):
            raise RuntimeError("the hoarding process sent no figures")
        stats = receive.recv()
    finally:
        stop.set()
        hoarder.join(10)
        if hoarder.is_alive():
            hoarder.kill()
    return {"latencies": latencies, "hoarder": stats, "server_cpu": cpu, "alive": alive}


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the run


def run(model_dir: Path, args: argparse.Namespace) -> bool:
    """Every attack asked for, in order; True if each met its targets."""
    met = True
    if "methods" in args.attacks or "hoard" in args.attacks:
        met = methods_and_hoard(model_dir, args)
    for key, attack in ATTACKS.items():
        if key in args.attacks:
            met = run_attack(model_dir, attack, args, sys.executable) and met
    return met


def methods_and_hoard(model_dir: Path, args: argparse.Namespace) -> bool:
    """The made-up methods and the hoard (those asked for), against one server; True if they met
    their targets."""
    server = start_server("api", [sys.executable, "api.py"], PATH, {"MODEL_DIR": str(model_dir)})
    try:
        methods = (
            made_up_methods(server, args.methods, args.same_method) if "methods" in args.attacks else None
        )
        quiet = [one_request(port_of(server), args.timeout) for _ in range(20)]
        load = hoarded(server, args) if "hoard" in args.attacks else None
    finally:
        code = stop_process(server.process)
    met = True
    if methods is not None:
        series, rss = methods["series"], methods["rss"]
        flat = len(set(series)) == 1
        kind = "all PUT (the control)" if args.same_method else "every method name new"
        print(f"two batches of {args.methods} requests, {kind}:")
        print("  http_request* lines in /metrics: " + " -> ".join(str(n) for n in series))
        print("  RSS (MB): " + " -> ".join(f"{mb:.1f}" for mb in rss))
        print(f"{'metrics series flat':24} {'met' if flat else 'MISSED'}")
        met = flat
    if load is not None:
        met = print_hoard(load, quiet, code, args) and met
    return met


def print_hoard(load: dict, quiet: list, code: int, args: argparse.Namespace) -> bool:
    answered = [latency for latency in load["latencies"] if latency is not None]
    everything = answered + [float("inf")] * (len(load["latencies"]) - len(answered))
    p50, p99, slowest = percentile(everything, 0.5), percentile(everything, 0.99), max(everything)
    quiet_ok = [latency for latency in quiet if latency is not None]
    held = p99 < 1.0
    hoard_size = f"{args.idle} idle + {args.slow} slow-header connections"
    print(f"{hoard_size}, a header line every {args.slow_interval:g} s:")
    print(f"  quiet before: {len(quiet_ok)}/{len(quiet)} answered, p50 {ms(statistics.median(quiet_ok))}")
    hoarder = load["hoarder"]
    print(
        f"  hoarder: {hoarder['closed_slow']} slow-header connections cut by the server (median age "
        f"{hoarder['slow_closed_at_median_age_s']} s), {hoarder['closed_idle']} idle ones closed, "
        f"{hoarder['connect_errors']} connects failed, {hoarder['open_at_end']} held at the end"
    )
    cpu = round(100 * load["server_cpu"])
    print(f"  server: {cpu}% CPU under the hoard, alive {load['alive']}, exit {code}")
    print(
        f"  normal client: p50 {ms(p50)}, p99 {ms(p99)}, max {ms(slowest)}, "
        f"{len(answered)}/{len(everything)} answered"
    )
    print(f"{'p99 under the hoard':24} {ms(p99)}   target < 1 s   {'met' if held else 'MISSED'}")
    return held


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attacks",
        type=lambda text: set(text.lower().split(",")),
        default=set(ATTACK_NAMES),
        help="comma-separated, of " + ",".join(ATTACK_NAMES),
    )
    parser.add_argument("--methods", type=int, default=10_000, help="requests with made-up methods")
    parser.add_argument(
        "--same-method", action="store_true", help="the control: the same requests, all with PUT"
    )
    parser.add_argument("--idle", type=int, default=500, help="idle keep-alive connections held")
    parser.add_argument("--slow", type=int, default=500, help="slow-header connections held")
    parser.add_argument("--slow-interval", type=float, default=20.0, help="seconds between header lines")
    parser.add_argument("--requests", type=int, default=200, help="the normal client's requests")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between normal requests")
    parser.add_argument("--parallel", type=int, default=4, help="the normal client's threads")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds until a request fails")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the hoard and the client")
    args = parser.parse_args()
    if args.attacks - set(ATTACK_NAMES):
        parser.error(
            f"unknown attacks {sorted(args.attacks - set(ATTACK_NAMES))}: choose from {ATTACK_NAMES}"
        )
    return args


def main() -> int:
    args = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the hoard takes a descriptor a connection
    wanted = 2 * max(args.idle + args.slow, *(a.connections for a in ATTACKS.values())) + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if os.environ.get("MODEL_DIR"):
        return 0 if run(Path(os.environ["MODEL_DIR"]), args) else 1
    with tempfile.TemporaryDirectory() as folder:
        print(f"training on the snapshot: {train_models(Path(folder)):.0f} s", flush=True)
        return 0 if run(Path(folder), args) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
