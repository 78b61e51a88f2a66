"""Clients that never read their answers (bench/hostile.py's H1, H2, H3), against real servers.

serving.guarded.GuardedServer in-process with second-scale limits and an app with big answers for
the pipelining and eviction cases (H1, H2); `python api.py` under a low open-files limit for the
descriptor budget (H3), and tests/tiny_server.py, which skips that budget, for failing accepts.
The attacking sockets never read: a poll for the server closing them is all they do.
"""

from __future__ import annotations

import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from scripts.processes import stop_process
from serving.channel import PIPELINE_DEPTH
from serving.guarded import FD_MARGIN, FILES_PER_CONNECTION, GuardedServer, Limits
from tests.conftest import ROOT, Output, start_api

BIG = 2_000_000  # bytes: more than the kernel's buffers take for a client that does not read
LIMITS = Limits(connections=4, request_timeout=1.0, idle_timeout=30.0, grace_period=2.0)
SWEEP = 1.0  # deadlines are checked once a second
CLOSED = select.POLLERR | select.POLLHUP | select.POLLRDHUP
PLOTLY = b"/web/vendor/plotly-basic-4.1.1.min.js"


class App:
    """/big: BIG bytes; /file: the same as a file (wsgi.file_wrapper); else "ok". Counts calls."""

    def __init__(self, file: Path):
        self.file = file
        self.calls: Counter[str] = Counter()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.calls[path] += 1
        size = BIG if path in ("/big", "/file") else 2
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
        if path == "/file":
            return environ["wsgi.file_wrapper"](self.file.open("rb"))
        return [b"x" * BIG if path == "/big" else b"ok"]


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[GuardedServer, App]]:
    file = tmp_path / "big.txt"
    file.write_bytes(b"x" * BIG)
    app = App(file)
    server = GuardedServer(app, LIMITS, host="127.0.0.1", port=0, threads=2, ident="")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server, app
    server.request_stop()
    thread.join(LIMITS.grace_period + 3)
    assert not thread.is_alive()


def non_reader(port: int, request: bytes) -> socket.socket:
    """A connection with a 4 KiB receive buffer that sends `request` and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes or resets `sock` (read nothing), at most `limit`."""
    started = time.monotonic()
    poller = select.poll()
    poller.register(sock, CLOSED)
    poller.poll(limit * 1000)
    return time.monotonic() - started


def normal_request(port: int, path: str = "/") -> float:
    """Seconds for one whole answer on a fresh connection (fails the test if there is none)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok"), data[:100]
    return time.monotonic() - started


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------- H1: pipelining, never reading


def test_a_pipelining_client_that_never_reads_gets_one_answer_and_is_cut_at_the_deadline(served):
    server, app = served
    port = int(server.effective_port)
    attackers = [non_reader(port, b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n" * 100) for _ in range(3)]
    wait_for(lambda: app.calls["/big"] == 3 * PIPELINE_DEPTH)
    # Both worker threads stay free: Waitress would parse all 300 requests and block one thread
    # per connection on its 16 MiB of unread answers.
    assert max(normal_request(port) for _ in range(5)) < 0.5
    lifetimes = [seconds_until_closed(sock, LIMITS.request_timeout + SWEEP + 2) for sock in attackers]
    assert max(lifetimes) < LIMITS.request_timeout + SWEEP + 1, lifetimes
    assert app.calls["/big"] == 3 * PIPELINE_DEPTH  # the other 99 stayed unparsed
    for sock in attackers:
        sock.close()


def test_a_pipelining_client_that_reads_gets_every_answer_in_order(served):
    server, app = served
    with socket.create_connection(("127.0.0.1", int(server.effective_port)), timeout=5) as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: test\r\n\r\n" % n for n in range(50)))
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 50 and (chunk := sock.recv(65536)):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 50
    assert [app.calls[f"/{n}"] for n in range(50)] == [1] * 50


def test_a_slow_reader_is_not_cut_while_its_answer_makes_progress(served):
    server, _ = served
    started, received = time.monotonic(), 0
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)  # the kernel takes little of it
        sock.settimeout(5)
        sock.connect(("127.0.0.1", int(server.effective_port)))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        while chunk := sock.recv(128 * 1024):  # about 640 KB/s: the answer takes over 3 deadlines
            received += len(chunk)
            time.sleep(0.2)
    assert received > BIG and time.monotonic() - started > 3 * LIMITS.request_timeout


# ---------------------------------------------------------------- H2: past the limit, never reading


@pytest.mark.parametrize("path", ["/big", "/file"])
def test_at_the_limit_the_client_not_reading_longest_makes_room(served, path):
    server, app = served
    port = int(server.effective_port)
    attackers = []
    for number in range(LIMITS.connections):
        attackers.append(non_reader(port, b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode() * 3))
        wait_for(lambda number=number: app.calls[path] == number + 1)
        time.sleep(0.1)  # distinct ages: the first is the one not reading for longest
    assert normal_request(port) < 0.5  # Waitress would close the newcomer, or stop accepting
    assert seconds_until_closed(attackers[0], 0.5) < 0.5  # reset: its answer can never arrive whole
    assert all(seconds_until_closed(sock, 0.05) >= 0.05 for sock in attackers[1:])  # the others stay
    for sock in attackers:
        sock.close()


# ---------------------------------------------------------------- H3: the descriptor budget


def test_under_a_low_open_files_limit_connections_fit_and_no_answer_fails(model_dir):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = 400
    if hard != resource.RLIM_INFINITY and hard < files:
        pytest.skip(f"needs an open-files hard limit of {files}")
    server = start_api(model_dir, open_files=(files, files))
    fit = (files - FD_MARGIN) // FILES_PER_CONNECTION
    port = urlsplit(server.url).port
    attackers: list[socket.socket] = []
    try:
        budget = f"open-files limit {files} fits {fit} connections, not 1000"
        assert any(budget in line for line in server.log), server.log
        before = len(server.log)
        for _ in range(3 * fit):  # each holds its socket and a file of plotly.js, as long as allowed
            attackers.append(non_reader(port, b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % PLOTLY * 3))
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            answer = requests.get(f"{server.url}/bitcoin?date=2024-06-01", timeout=5)
            assert answer.status_code == 200
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1.0, latencies
        logged = "".join(server.log[before:])
        assert "Too many open files" not in logged and "Traceback" not in logged, logged[-2000:]
        assert len(server.log) - before < 10, logged[-2000:]
    finally:
        for sock in attackers:
            sock.close()
        assert stop_process(server.process) == 0


def test_under_the_soft_limit_the_server_raises_it_to_the_hard_one(model_dir):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("needs an open-files hard limit of 4096")
    server = start_api(model_dir, open_files=(1024, hard))
    try:
        limits = Path(f"/proc/{server.process.pid}/limits").read_text()
        soft_now = re.search(r"Max open files\s+(\S+)", limits).group(1)
        assert soft_now == ("unlimited" if hard == resource.RLIM_INFINITY else str(hard))
        assert not any("connection limit lowered" in line for line in server.log)
    finally:
        stop_process(server.process)


def test_failing_accepts_are_counted_in_one_line_and_do_not_spin(tmp_path):
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "tiny_server.py"), "1000"],  # far more than 64 descriptors
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=low_limit, cwd=ROOT,
    )  # fmt: skip
    output = Output(process.stdout)
    held: list[socket.socket] = []
    try:
        listening = output.wait_for(r"Serving on http://127\.0\.0\.1:(\d+)", 30)
        assert listening, "".join(output.lines)
        port = int(listening.group(1))
        for _ in range(70):  # silent new connections: past 64 descriptors, accepts fail
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        cpu_before, started = cpu_seconds(process.pid), time.monotonic()
        time.sleep(2.5)
        cpu = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - started)
        # Accepting pauses a second after each failure and closes the connections waiting longest.
        assert normal_request(port) < 4
        assert cpu < 0.5, cpu  # Waitress retried at once, forever: a core at 100%
        failures = [line for line in output.lines if "accepts failed" in line]
        assert len(failures) == 1 and "Too many open files" in failures[0], output.lines[-5:]
        assert not any("Traceback" in line or "accept() threw" in line for line in output.lines)
    finally:
        for sock in held:
            sock.close()
        stop_process(process)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
