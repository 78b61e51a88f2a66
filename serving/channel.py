"""One client connection of the guarded server (serving/guarded.py): its deadlines, a bound on the
requests it may pipeline, and a close that does not wait for the client.

Waitress 3.0.2's HTTPChannel, changed in what one client can hold (docs/operations.md, "Limits"):

* pipelined requests: Waitress parses every request of a read (8 KiB: about a hundred short GETs)
  into queued work and answers them all, read or not; here at most PIPELINE_DEPTH wait parsed,
  and the rest stays unparsed, the socket unread, until the answers before have gone
  (backpressure);
* answers nobody reads: a connection whose pending output makes no progress for the request
  timeout is closed, requests queued or not (Waitress's channel_timeout skips a connection with
  queued requests, so the worker thread filling its output could wait without end);
* closing: a connection marked to close is closed at its next loop turn; Waitress closes it when
  its socket is next writable, which for a client that stopped reading is never.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from serving.protocol import CheckedRequest

# Requests of one connection parsed before the answers ahead of them have gone to the client.
# Each answer waiting to go holds memory, or a file (a static file sent as it is, or an answer past
# Waitress's outbuf_overflow spilled to a temporary file), which the descriptor budget counts.
# One: a pipelining client gets its answers one after another, and one that does not read gets
# one answer, not a hundred. With 2, under bench/hostile.py's H2 (1,150 clients asking for
# plotly.js 3 times, never reading) the server did twice the work per client, and a normal
# client's slowest answers took 0.85 s instead of 0.5 s.
PIPELINE_DEPTH = 1
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


class GuardedTask(WSGITask):
    """A WSGI task that, once the server drains, tells its client the connection ends here."""

    channel: GuardedChannel

    def build_response_header(self) -> bytes:
        if self.channel.server.draining:
            self.set_close_on_finish()  # "Connection: close": the client will not send another request
        return super().build_response_header()


class GuardedChannel(HTTPChannel):
    """An HTTP connection that knows since when it has been waiting on its client."""

    task_class = GuardedTask
    parser_class = CheckedRequest
    server: Any  # serving.guarded.GuardedServer (which imports this module): its limits, draining
    kept_alive = False  # True once it took a request: then it waits for a *next* one
    request_started: float | None = None  # when the request being received began; None: none yet
    unparsed = b""  # bytes read past PIPELINE_DEPTH requests: parsed once their answers have gone

    def received(self, data: bytes) -> bool:
        """Parse requests from what was kept and `data`, at most PIPELINE_DEPTH waiting; keep the rest.

        Waitress 3.0.2's HTTPChannel.received, but for the bound and the request clock.
        """
        data, self.unparsed = self.unparsed + data, b""
        if not data:
            return False
        with self.requests_lock:
            if self.will_close or self.close_when_flushed:
                return False  # closing: what the client sent after is dropped, as Waitress does
            while data:
                if self.request is None:
                    if len(self.requests) >= PIPELINE_DEPTH:
                        self.unparsed = data  # readable() stays False until the queue drains
                        break
                    self.request = self.parser_class(self.adj)
                    self.request_started = time.time()  # the clock of Waitress's last_activity
                consumed = self.request.received(data)
                request = self.request
                if (
                    request.expect_continue
                    and request.headers_finished
                    and not self.requests
                    and not self.sent_continue
                ):
                    self.send_continue()
                if request.completed:
                    self.sent_continue = False
                    if not request.empty:
                        self.requests.append(request)
                        if len(self.requests) == 1:
                            self.server.add_task(self)  # else service() queues it after the one before
                    self.request = None
                if consumed >= len(data):
                    break
                data = data[consumed:]
        return True

    def readable(self) -> bool:
        """Whether to read from the socket; first, close the connection if marked, or parse what
        was kept once the answers before it have gone."""
        if self.will_close:
            if self.socket is not None:
                self.close_now()
            return False
        if self.unparsed and not self.total_outbufs_len and len(self.requests) < PIPELINE_DEPTH:
            self.received(b"")
        return not self.unparsed and super().readable()

    def close_now(self) -> None:
        """Close it now, before poll() sees its descriptor (so no new socket reuses it mid-turn)."""
        if self.total_outbufs_len:
            # Its answer can no longer arrive whole: a reset frees the kernel's buffers at once,
            # where a FIN would wait behind the unsent bytes for as long as the client does not read.
            with contextlib.suppress(OSError):  # already reset by the client
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        self.handle_close()

    def writable(self) -> bool:
        return self.socket is not None and bool(super().writable())

    def service(self) -> None:
        self.kept_alive = True  # before the request is served: afterwards the idle clock applies
        super().service()

    def done(self) -> bool:
        """Whether it is answered and closes once its answer is out, which it is."""
        return self.close_when_flushed and not self.total_outbufs_len

    def waiting_since(self) -> float | None:
        """When it began waiting on its client; None while the server owes it something."""
        if self.will_close:
            return None  # closing at its next turn
        if self.total_outbufs_len:  # an answer is going out: waiting since the client last took some
            return self.last_activity
        if self.requests or self.close_when_flushed or self.unparsed:
            return None  # a request is queued or running, or it is closing once its answer is out
        if self.request is not None or not self.kept_alive:
            return self.request_started or self.creation_time  # a request arriving, or the first awaited
        return self.last_activity  # idle between requests

    def deadline(self) -> float | None:
        """When to close it unless it makes progress; None while a request is queued or running."""
        limits = self.server.limits
        if self.will_close:
            return None
        if self.total_outbufs_len:  # an answer not taken: Waitress's last_activity is its last send
            return self.last_activity + limits.request_timeout
        since = self.waiting_since()
        if since is None:
            return None
        idle = self.request is None and self.kept_alive
        return since + (limits.idle_timeout if idle else limits.request_timeout)
