"""Benchmark plumbing: start servers on loopback, load them with wrk, read their memory."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the helpers shared with the tests and the delivery scripts

from processes import free_port, stop_process  # noqa: E402

READY_TIMEOUT = 60.0  # seconds for a server to answer its first request
POLL_INTERVAL = 0.01  # seconds between readiness probes: the cold-start figure's resolution


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str  # the URL the benchmark loads
    cold_start: float  # seconds from process start to the first 200 on `url`
    log: IO[bytes] | None = None  # everything the server wrote, stdout and stderr

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def log_text(self) -> str:
        """What the server has written so far (read without moving the offset it writes at)."""
        if self.log is None:
            return ""
        size = os.fstat(self.log.fileno()).st_size
        return os.pread(self.log.fileno(), size, 0).decode(errors="replace")


def log_lines(server: Server) -> int:
    return server.log_text().count("\n")


def start_server(
    name: str, command: list[str], path: str, env: dict[str, str] | None = None, soft_files: int | None = None
) -> Server:
    """Start a server on a free port and return once `path` answers 200; the wait is its cold start.
    With `soft_files`, the server starts with that soft open-files limit (as under `ulimit -Sn`)."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **(env or {})}
    url = f"http://127.0.0.1:{port}{path}"
    # Output goes to a file, not a pipe: a full pipe nobody reads would stall the server mid-benchmark.
    log = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the server process
    started = time.perf_counter()
    limit = (lambda: lower_soft_files(soft_files)) if soft_files else None
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit
    )
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} exited with {process.returncode}: {log.read().decode()[-2000:]}")
        if answers_200(url):
            return Server(name, process, url, time.perf_counter() - started, log)
        time.sleep(POLL_INTERVAL)
    stop_process(process)
    raise RuntimeError(f"{name} did not answer {url} within {READY_TIMEOUT:.0f} s")


def lower_soft_files(soft: int) -> None:
    """In the child before it runs: `ulimit -Sn soft` (the hard limit stays)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310  # loopback URL built above
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    requests: int


def run_wrk(
    url: str, *, seconds: int, connections: int, threads: int = 2, script: Path | None = None
) -> Load:
    """Load `url` with wrk (its requests from a Lua `script` when given) and parse its --latency report."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Load:
    percentiles = {
        int(p): _milliseconds(value, unit)
        for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
    )


def _milliseconds(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def train_models(model_dir: Path) -> float:
    """Train every asset on the bundled snapshot into `model_dir`; returns the wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "train.py", "--source", "snapshot", "--model-dir", str(model_dir)],
        cwd=ROOT, check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    return time.perf_counter() - started


def serve_reference(app) -> None:
    """Serve a reference app as api.py serves its own: the same server, settings and limits from
    the environment ($PORT, $THREADS, ...), so only the request path differs."""
    import logging

    sys.path.insert(0, str(ROOT))
    from serving.server import serve, settings_from_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(app, settings_from_env())
