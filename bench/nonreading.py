"""Clients that never read their answers (H1, H2, H3), each against a fresh `python api.py`.

H1  16 connections, each with a 4 KiB receive buffer, send 115 pipelined requests for a
    four-year forecast range at once and never read;
H2  1,150 connections (past the 1,000 limit) each ask for the 1.19 MB plotly file 3 times and
    never read;
H3  the same with 900 connections, the server started under `ulimit -Sn 1024`.

Another process holds the connections and reopens each one the server closes (at most
MAX_REOPENS), while a normal client sends paced requests, each on a fresh connection. For each
attack: the normal client's answered share and p50/p99, the server's peak RSS and the lines it
logged during the attack, and how long the server let the attacking connections live.
Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing as mp
import select
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from client import HOST, ms, normal_client, summary
from common import Server, log_lines, rss_mb, start_server, stop_process

MAX_REOPENS = 100_000  # attacking connections reopened per attack, at the most
RSS_SAMPLE_SECONDS = 0.5
RANGE = "/forecast/btc?start=2023-01-01&end=2027-02-08"  # 1,500 days: the largest range, ~170 kB
PLOTLY = "/web/vendor/plotly-basic-4.1.1.min.js"  # 1.19 MB; no Accept-Encoding: the file as it is
TARGET_SHARE, TARGET_P99, TARGET_RSS_MB = 0.95, 1.0, 300.0


@dataclass(frozen=True)
class Attack:
    key: str
    what: str
    connections: int
    path: str
    repeat: int  # requests each connection pipelines
    receive_buffer: int | None = None  # SO_RCVBUF of each attacking socket
    soft_files: int | None = None  # the server's soft open-files limit, as `ulimit -Sn` sets it

    def payload(self) -> bytes:
        return f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode() * self.repeat


ATTACKS = {
    "h1": Attack(
        "H1", "16 connections pipelining 115 range requests, 4 KiB receive buffer", 16, RANGE, 115, 4096
    ),
    "h2": Attack("H2", "1,150 connections asking the plotly file 3 times", 1150, PLOTLY, 3),
    "h3": Attack(
        "H3", "ulimit -Sn 1024, 900 connections asking the plotly file 3 times", 900, PLOTLY, 3, None, 1024
    ),
}


def hold(port: int, attack: Attack, stop: Event, ready: Event, out: Connection) -> None:
    """Keep `attack.connections` open, each sending its requests and never reading, reopening
    what the server closes, until `stop`; sends its counts to `out`."""
    poller = select.poll()
    held: dict[int, dict] = {}  # fd -> socket, when it opened, what is left to send
    stats = {"closed": 0, "connect_errors": 0, "reopens": 0}
    ages: list[float] = []
    payload = attack.payload()
    gone = select.POLLERR | select.POLLHUP | select.POLLRDHUP

    def open_one() -> None:
        sock = socket.socket()
        if attack.receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, attack.receive_buffer)
        sock.setblocking(False)
        if sock.connect_ex((HOST, port)) not in (0, errno.EINPROGRESS):
            stats["connect_errors"] += 1
            sock.close()
            return
        held[sock.fileno()] = {"sock": sock, "opened": time.monotonic(), "unsent": payload, "up": False}
        poller.register(sock, select.POLLOUT)

    def drop(fd: int, by_server: bool) -> None:
        info = held.pop(fd)
        poller.unregister(fd)
        info["sock"].close()
        if by_server:
            stats["closed"] += 1
            ages.append(time.monotonic() - info["opened"])
        else:
            stats["connect_errors"] += 1
        if stats["reopens"] < MAX_REOPENS and not stop.is_set():
            stats["reopens"] += 1
            open_one()

    for _ in range(attack.connections):
        open_one()
    ready.set()
    while not stop.is_set():
        for fd, events in poller.poll(200):
            info = held.get(fd)
            if info is None:
                continue
            if events & gone:
                drop(fd, by_server=info["up"])
                continue
            info["up"] = True  # connected: send what is left, then wait only for the server to close
            try:
                sent = info["sock"].send(info["unsent"])
            except BlockingIOError:
                continue
            except OSError:
                drop(fd, by_server=True)
                continue
            info["unsent"] = info["unsent"][sent:]
            if not info["unsent"]:
                poller.modify(fd, select.POLLRDHUP)  # never POLLIN: nothing is ever read
    stats["open_at_end"] = len(held)
    stats["median_age_s"] = round(statistics.median(ages), 1) if ages else None
    for info in held.values():
        info["sock"].close()
    out.send(stats)


def sample_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.wait(RSS_SAMPLE_SECONDS):
        try:
            peak[0] = max(peak[0], rss_mb(pid))
        except (FileNotFoundError, ProcessLookupError):
            return


def under_attack(server: Server, attack: Attack, args: argparse.Namespace) -> dict:
    """The normal client's latencies, peak RSS and log lines while `attack` holds its connections."""
    port = server.port
    stop, ready = mp.Event(), mp.Event()
    receive, send = mp.Pipe(duplex=False)
    holder = mp.Process(target=hold, args=(port, attack, stop, ready, send), daemon=True)
    rss_before, lines_before = rss_mb(server.process.pid), log_lines(server)
    peak, sampling = [rss_before], threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(server.process.pid, sampling, peak), daemon=True)
    sampler.start()
    holder.start()
    try:
        ready.wait(60)
        time.sleep(args.settle)
        latencies = normal_client(port, args.requests, args.interval, args.parallel, args.timeout)
        alive = server.process.poll() is None
        stop.set()
        stats = receive.recv() if receive.poll(20) else {}
    finally:
        stop.set()
        sampling.set()
        holder.join(10)
        if holder.is_alive():
            holder.kill()
    sampler.join(5)
    return {
        "latencies": latencies,
        "holder": stats,
        "alive": alive,
        "rss_before": rss_before,
        "rss_peak": peak[0],
        "log_lines": log_lines(server) - lines_before,
        "log_sample": server_log_tail(server, lines_before),
    }


def server_log_tail(server: Server, skip: int, count: int = 3) -> list[str]:
    """Up to `count` distinct lines the server logged after its first `skip` lines (without times)."""
    lines = server.log_text().splitlines()[skip:]
    distinct = dict.fromkeys(line.split(" ", 2)[-1][:160] for line in lines)
    return list(distinct)[:count]


def run_attack(model_dir: Path, attack: Attack, args: argparse.Namespace, python: str) -> bool:
    """Start a server for `attack`, run it, print its figures; True if every target was met."""
    env = {"MODEL_DIR": str(model_dir)}
    server = start_server(attack.key, [python, "api.py"], "/health", env, soft_files=attack.soft_files)
    try:
        figures = under_attack(server, attack, args)
    finally:
        code = stop_process(server.process)
    seen = summary(figures["latencies"])
    holder = figures["holder"]
    met = {
        f"answered >= {TARGET_SHARE:.0%}": seen["share"] >= TARGET_SHARE,
        f"p99 < {TARGET_P99:g} s": seen["p99"] < TARGET_P99,
        f"RSS < {TARGET_RSS_MB:.0f} MB": figures["rss_peak"] < TARGET_RSS_MB,
    }
    print(f"{attack.key}: {attack.what}, never reading")
    print(
        f"  normal client: {seen['answered']}/{seen['total']} answered ({seen['share']:.0%}), "
        f"p50 {ms(seen['p50'])}, p99 {ms(seen['p99'])}"
    )
    print(
        f"  server: RSS {figures['rss_before']:.0f} MB -> peak {figures['rss_peak']:.0f} MB, "
        f"{figures['log_lines']} log lines during the attack, alive {figures['alive']}, exit {code}"
    )
    for line in figures["log_sample"]:
        print(f"    log: {line}")
    print(
        f"  attacker: {holder.get('closed')} connections closed by the server (median age "
        f"{holder.get('median_age_s')} s), {holder.get('connect_errors')} connects failed, "
        f"{holder.get('open_at_end')} open at the end"
    )
    print("  targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in met.items()))
    return all(met.values())
