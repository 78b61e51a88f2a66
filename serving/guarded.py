"""Waitress's TCP server, guarded against connection hoarding and stopped by draining.

Waitress 3.0.2 keeps its HTTP parsing and worker threads here; what changes is who may hold a
connection and for how long (docs/operations.md, "Limits"):

* a request must arrive whole within a deadline from its first byte (Waitress only closes a
  connection silent for `channel_timeout`, a clock every trickled byte restarts);
* at the connection limit the server keeps accepting and closes the connection that has waited
  longest on its client (Waitress stops accepting, so a client holding the limit locks all out);
* accepts are batched and poll() is forced (Waitress takes one connection per loop turn, and
  select() fails past descriptor 1023);
* a stop request drains: no new connections, accepted requests answered with
  `Connection: close`, idle connections closed, all within a grace period (Waitress's own
  shutdown cancels queued requests and resets kept-alive connections).
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import resource
import struct
import sys
import time
from dataclasses import dataclass
from socket import SOL_SOCKET
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

from serving.protocol import CheckedRequest

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0  # seconds between deadline sweeps: a deadline is enforced within about 1 s
ACCEPT_BATCH = 64  # accepts per wake-up: one per loop turn made reconnect bursts queue for 0.3-0.9 s
DRAIN_LINGER = 1.0  # seconds an idle kept-alive connection may still send a request while draining
FD_MARGIN = 2 * ACCEPT_BATCH + 64  # descriptors past the limit: accepts beyond it, listener, pipe, logs
SO_ATTACH_FILTER = 26  # Linux (asm-generic: x86, arm); Python's socket module does not name it


@dataclass(frozen=True)
class Limits:
    """How many connections the server holds and how long each may take (docs/operations.md)."""

    connections: int = 1000  # open client connections; past it the stalest waiting one is closed
    request_timeout: float = 10.0  # seconds for a whole request, from its first byte or the connect
    idle_timeout: float = 75.0  # seconds between requests: above a proxy's usual 60 s pool timeout
    grace_period: float = 8.0  # seconds a stop waits for accepted requests (docker stop kills at 10)


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
    parser_class = CheckedRequest  # RFC 9112's Host, version and framing checks (serving/protocol.py)
    server: GuardedServer
    kept_alive = False  # True once it took a request: then it waits for a *next* one
    request_started: float | None = None  # when the request being received began; None: none yet

    def received(self, data: bytes) -> bool:
        if self.request is None:  # the first bytes of a request: its clock starts now, not at the last
            self.request_started = time.time()  # time.time(), the clock of Waitress's last_activity
        return super().received(data)

    def service(self) -> None:
        self.kept_alive = True  # before the request is served: afterwards the idle clock applies
        super().service()

    def waiting_since(self) -> float | None:
        """When it began waiting on its client; None while the server owes it something."""
        if self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed:
            return None  # a request is queued or running, an answer is being sent, or it is closing
        if self.request is not None or not self.kept_alive:
            return self.request_started or self.creation_time  # a request arriving, or the first awaited
        return self.last_activity  # idle between requests

    def deadline(self) -> float | None:
        """When to close it unless it makes progress; None while a request is queued or running."""
        limits = self.server.limits
        if self.total_outbufs_len and not self.requests:  # a client that stopped reading its answer
            return self.last_activity + limits.idle_timeout  # as Waitress's channel_timeout would
        since = self.waiting_since()
        if since is None:
            return None
        idle = self.request is None and self.kept_alive
        return since + (limits.idle_timeout if idle else limits.request_timeout)


class GuardedServer(TcpWSGIServer):
    """Waitress's TCP server with request deadlines, eviction at the limit and a drain on stop."""

    channel_class = GuardedChannel

    def __init__(self, app: Any, limits: Limits, **adjustments: Any):
        """Bind and listen on adjustments' host and port (raises OSError if it cannot)."""
        self.limits = limits
        self.draining = self.stop_requested = self.hurry = self.paused = False
        self.timed_out = self.evicted = 0  # closed since the last log line
        # poll(): select() cannot watch a descriptor past 1023, and the limit allows more connections.
        forced = {"asyncore_use_poll": True, "connection_limit": limits.connections}
        super().__init__(app, map={}, adj=Adjustments(**(adjustments | forced)))

    def readable(self) -> bool:
        """Whether to accept: also at the limit (handle_accept makes room), unless all are busy."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + SWEEP_INTERVAL
            self.maintenance(now)
        # Far past the limit nobody was evictable (all have requests in flight): wait for answers.
        paused = len(self.active_channels) >= self.limits.connections + ACCEPT_BATCH
        if paused != self.paused:  # one line when accepting pauses, one when it resumes
            self.paused = paused
            if paused:
                log.warning("%d connections open, all busy: accepting paused", len(self.active_channels))
            else:
                log.info("accepting again: %d connections open", len(self.active_channels))
        return self.accepting and not paused

    def handle_accept(self) -> bool:
        """Accept up to a batch of waiting connections; True if the batch was full (more may wait)."""
        for _ in range(ACCEPT_BATCH):
            before = len(self.active_channels)
            super().handle_accept()
            if len(self.active_channels) == before:  # backlog empty (EAGAIN) or a failed accept
                full = False
                break
        else:
            full = True
        if len(self.active_channels) > self.limits.connections:
            self.evict()
        return full

    def evict(self) -> None:
        """Close the connections that have waited longest on their clients, down to the limit."""
        channels = self.active_channels.values()
        closing = sum(1 for channel in channels if channel.will_close or channel.close_when_flushed)
        excess = len(self.active_channels) - closing - self.limits.connections
        waiting = [(since, channel) for channel in channels if (since := channel.waiting_since())]
        for _, channel in heapq.nsmallest(max(excess, 0), waiting, key=lambda pair: pair[0]):
            channel.will_close = True  # closed at its next turn, so no new socket reuses its fd mid-turn
            self.evicted += 1

    def maintenance(self, now: float) -> None:
        """Close every connection past its deadline (replaces Waitress's channel_timeout sweep)."""
        for channel in self.active_channels.values():
            deadline = channel.deadline()
            if deadline is not None and now >= deadline:
                channel.will_close = True
                self.timed_out += 1
        if self.timed_out or self.evicted:  # at most one line per sweep, however many were closed
            log.info("closed %d connections past deadline, %d to make room", self.timed_out, self.evicted)
            self.timed_out = self.evicted = 0

    def request_stop(self, *_: object) -> None:
        """Start the drain (a signal handler: sets a flag); asked again while draining, hurry it."""
        if self.stop_requested:
            self.hurry = True  # the drain loop wakes every 0.1 s; its trigger may be closed already
            return
        self.stop_requested = True
        self.pull_trigger()  # wake poll() now rather than at its timeout

    def run(self) -> None:
        """Serve until request_stop(), then drain and return."""
        while not self.stop_requested:
            wasyncore.poll2(self.adj.asyncore_loop_timeout, self._map)
        self.drain()

    def drain(self) -> None:
        """Stop accepting, finish accepted requests within the grace period, close everything."""
        deadline = time.monotonic() + self.limits.grace_period
        self.draining = True
        # Take in the connections already in the backlog (closing the listener would reset them),
        # after telling the kernel to drop new handshakes: their clients retry, then are refused.
        refuse_handshakes(self.socket)
        for _ in range(self.adj.backlog // ACCEPT_BATCH + 1):  # bounded by the backlog's length
            if not self.handle_accept():
                break
        wasyncore.dispatcher.close(self)  # the listener only: worker threads still need the trigger
        open_now, grace = len(self.active_channels), self.limits.grace_period
        log.info("draining %d connections for up to %g s", open_now, grace)
        while self.active_channels and time.monotonic() < deadline and not self.hurry:
            now = time.time()
            for channel in self.active_channels.values():  # idle: nothing in flight, no request lately
                since = channel.waiting_since()
                if channel.request is None and since is not None and now - since >= DRAIN_LINGER:
                    channel.will_close = True
            self.maintenance(now)  # a request still arriving keeps its own deadline
            wasyncore.poll2(0.1, self._map)
        # Past the grace period: cancel what is queued, give running requests what time is left.
        done = self.task_dispatcher.shutdown(True, max(deadline - time.monotonic(), 0.1))
        log.info("drained: %d connections cut, worker threads done: %s", len(self.active_channels), done)
        wasyncore.close_all(self._map)


def refuse_handshakes(listener: Any) -> None:
    """Make Linux drop new SYNs to `listener` (a drop-all socket filter); elsewhere, nothing."""
    if sys.platform != "linux":
        return
    program = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET|BPF_K: return 0
    try:
        listener.setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HP", 1, ctypes.addressof(program)))
    except OSError as error:  # the drain goes on; a connection arriving as the listener closes is reset
        log.warning("cannot filter the listener: %s", error)


def ensure_descriptors(connections: int) -> int:
    """Raise the open-files soft limit to fit `connections` sockets; return how many fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + FD_MARGIN
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return connections
    soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < needed:
        log.warning("open-files hard limit is %d: connection limit lowered to %d", hard, soft - FD_MARGIN)
    return max(min(connections, soft - FD_MARGIN), 1)
