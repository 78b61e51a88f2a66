"""The normal client of the hostile benchmarks: paced requests, each on a fresh connection, and
what they saw (answered share, p50, p99, max; a failure counts as slower than any answer)."""

from __future__ import annotations

import socket
import threading
import time

HOST = "127.0.0.1"
PATH = "/bitcoin?date=2024-06-01"
NORMAL_REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()


def one_request(port: int, timeout: float) -> float | None:
    """Seconds for one whole 200 answer on a fresh connection; None if it failed or timed out."""
    started = time.perf_counter()
    received = b""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(NORMAL_REQUEST)
            while chunk := sock.recv(65536):
                received += chunk
                sock.settimeout(max(started + timeout - time.perf_counter(), 0.001))
    except OSError:
        return None
    return time.perf_counter() - started if received.startswith(b"HTTP/1.1 200") else None


def normal_client(port: int, requests: int, interval: float, parallel: int, timeout: float) -> list:
    """`requests` requests, the i-th due at i * interval, on `parallel` threads: their latencies."""
    start = time.monotonic()
    latencies: list[float | None] = []
    lock = threading.Lock()
    due = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                number = next(due, None)
            if number is None:
                return
            time.sleep(max(start + number * interval - time.monotonic(), 0))
            latency = one_request(port, timeout)
            with lock:
                latencies.append(latency)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(requests * interval + 2 * timeout)
    return latencies


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms" if seconds != float("inf") else "failed"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float | None]) -> dict:
    """Answered count and share, p50, p99 and max of a run; failures count as infinitely slow."""
    answered = [latency for latency in latencies if latency is not None]
    everything = answered + [float("inf")] * (len(latencies) - len(answered))
    if not everything:
        return {"answered": 0, "total": 0, "share": 0.0, "p50": float("inf"), "p99": float("inf")}
    return {
        "answered": len(answered),
        "total": len(everything),
        "share": len(answered) / len(everything),
        "p50": percentile(everything, 0.5),
        "p99": percentile(everything, 0.99),
        "max": max(everything),
    }
