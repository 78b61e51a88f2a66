"""serving.guarded.GuardedServer in-process with second-scale limits: deadlines, eviction, drain.

A real Waitress server on a loopback port serves a two-route WSGI app; the clients are raw
sockets, so a test can stall mid-header or keep a connection silent as a hoarding client does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from serving.guarded import GuardedServer, Limits

REQUEST = b"GET /%s HTTP/1.1\r\nHost: test\r\n\r\n"
SLOW_SECONDS = 0.5
LIMITS = Limits(connections=3, request_timeout=1.0, idle_timeout=1.0, grace_period=3.0)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(SLOW_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def start(limits: Limits) -> GuardedServer:
    guarded = GuardedServer(app, limits, host="127.0.0.1", port=0, threads=2, ident="")
    guarded.thread = threading.Thread(target=guarded.run, daemon=True)  # for the tests that stop it
    guarded.thread.start()
    return guarded


def stop(guarded: GuardedServer) -> None:
    guarded.request_stop()
    guarded.thread.join(guarded.limits.grace_period + 2)
    assert not guarded.thread.is_alive()


@pytest.fixture
def running() -> Iterator[GuardedServer]:
    guarded = start(LIMITS)
    yield guarded
    stop(guarded)


@pytest.fixture
def patient() -> Iterator[GuardedServer]:
    """A server whose idle timeout is far longer than any test: only the drain closes idle ones."""
    guarded = start(Limits(connections=3, request_timeout=1.0, idle_timeout=60.0, grace_period=3.0))
    yield guarded
    stop(guarded)


def connect(guarded: GuardedServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(guarded.effective_port)), timeout=5)


def response(sock: socket.socket) -> bytes:
    """One whole answer of `app` (it ends in "ok"), or what came before the server closed."""
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def served(sock: socket.socket, path: bytes = b"") -> bool:
    sock.sendall(REQUEST % path)
    return response(sock).startswith(b"HTTP/1.1 200")


def seconds_until_closed(sock: socket.socket, trickle: float | None = None, limit: float = 5.0) -> float:
    """Seconds until the server closes `sock` (at most `limit`); with `trickle`, a header line that often."""
    started = time.monotonic()
    sock.settimeout(trickle or limit)
    while time.monotonic() - started < limit:
        try:
            if not sock.recv(4096):
                break
        except TimeoutError:
            sock.sendall(b"X-Trickle: 1\r\n")
        except ConnectionResetError:
            break
    return time.monotonic() - started


def test_a_header_trickled_line_by_line_is_cut_at_the_request_deadline(running):
    with connect(running) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        # Each line restarts Waitress's own idle clock; the deadline counts from the first byte.
        assert seconds_until_closed(sock, trickle=0.2) < 2.5  # 1 s deadline + a 1 s sweep


def test_a_silent_new_connection_is_cut_at_the_request_deadline(running):
    with connect(running) as sock:
        assert seconds_until_closed(sock) < 2.5


def test_an_idle_kept_alive_connection_is_cut_at_the_idle_timeout(running):
    with connect(running) as sock:
        assert served(sock)
        assert 0.9 < seconds_until_closed(sock) < 2.5


def test_at_the_limit_a_new_client_is_served_and_the_stalest_idle_one_is_closed(running):
    idle = [connect(running) for _ in range(LIMITS.connections)]
    for sock in idle:
        assert served(sock)
        time.sleep(0.05)  # distinct idle times: the first is the stalest
    with connect(running) as newcomer:
        assert served(newcomer)
    assert seconds_until_closed(idle[0], limit=0.5) < 0.5  # the stalest went to make room
    assert all(served(sock) for sock in idle[1:])  # the others are untouched
    for sock in idle:
        sock.close()


def test_a_connection_with_a_request_in_flight_is_never_evicted(running):
    with connect(running) as busy:
        busy.sendall(REQUEST % b"slow")
        time.sleep(0.1)  # the request is with a worker thread
        waiting = [connect(running) for _ in range(LIMITS.connections)]  # one past the limit
        assert response(busy).startswith(b"HTTP/1.1 200")  # whole: its connection was kept
        assert seconds_until_closed(waiting[0], limit=0.5) < 0.5  # the stalest waiting one went
        for sock in waiting:
            sock.close()


def test_a_stop_finishes_the_request_in_flight_and_says_connection_close(running):
    with connect(running) as sock:
        sock.sendall(REQUEST % b"slow")
        time.sleep(0.1)
        running.request_stop()
        answer = response(sock)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in answer


def test_a_stop_closes_idle_connections_then_refuses_new_ones_well_within_the_grace_period(patient):
    with connect(patient) as idle:
        assert served(idle)
        stopped = time.monotonic()
        patient.request_stop()
        assert seconds_until_closed(idle, limit=3) < 2  # idle: closed after about a second
        patient.thread.join(patient.limits.grace_period)
        assert time.monotonic() - stopped < patient.limits.grace_period - 1  # nothing left: done early
    with pytest.raises(ConnectionRefusedError):
        connect(patient)
