"""Waitress's TCP server, guarded against clients that hold it, and stopped by draining.

Waitress 3.0.2 keeps its HTTP parsing and worker threads here; what changes is who may hold a
connection and for how long (docs/operations.md, "Limits"; one connection: serving/channel.py):

* a request must arrive whole within a deadline from its first byte (Waitress only closes a
  connection silent for `channel_timeout`, a clock every trickled byte restarts), and an answer
  must make progress within the same deadline, requests queued behind it or not;
* at the connection limit the server keeps accepting and closes the connection that has waited
  longest on its client, idle, still sending its request or not reading its answer (Waitress
  stops accepting, so a client holding the limit locks all out);
* descriptors are budgeted: the soft open-files limit is raised to the hard one, and where
  connections and the files of their pending answers do not fit, the connection limit is lowered
  (`descriptor_budget`); a failed accept is counted and logged once per interval, never a
  traceback per attempt, and running out of descriptors pauses accepting instead of spinning;
* accepts are batched and poll() is forced (Waitress takes one connection per loop turn, and
  select() fails past descriptor 1023);
* a stop request drains: no new connections, accepted requests answered with
  `Connection: close`, idle connections closed, all within a grace period (Waitress's own
  shutdown cancels queued requests and resets kept-alive connections).
"""

from __future__ import annotations

import ctypes
import errno
import heapq
import logging
import resource
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass
from socket import SO_SNDBUF, SOL_SOCKET, SOL_TCP, TCP_NODELAY
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

from serving.channel import PIPELINE_DEPTH, GuardedChannel

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0  # seconds between deadline sweeps: a deadline is enforced within about 1 s
ACCEPT_BATCH = 64  # accepts per wake-up: one per loop turn made reconnect bursts queue for 0.3-0.9 s
DRAIN_LINGER = 1.0  # seconds an idle kept-alive connection may still send a request while draining
# A connection holds its socket and, per pending answer, at most one file (serving/channel.py).
FILES_PER_CONNECTION = 1 + PIPELINE_DEPTH
# Past the connections: those accepted beyond the limit before eviction, the listener, the trigger
# pipe, the log, what the app opens while it answers.
FD_MARGIN = ACCEPT_BATCH * FILES_PER_CONNECTION + 64
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE = 1.0  # seconds accepting pauses after an accept failed for want of descriptors
DESCRIPTORS_FREED = 16  # connections closed then, those waiting longest on their clients
EVICT_RETRY = 0.05  # seconds between two looks for a connection to close while accepting is paused
ACCEPT_LOG_INTERVAL = 10.0  # seconds between two lines about failed accepts
SEND_BUFFER = 256 * 1024  # SO_SNDBUF of a connection (Linux doubles it); see GuardedServer.__init__
SO_ATTACH_FILTER = 26  # Linux (asm-generic: x86, arm); Python's socket module does not name it


@dataclass(frozen=True)
class Limits:
    """How many connections the server holds and how long each may take (docs/operations.md)."""

    connections: int = 1000  # open client connections; past it the stalest waiting one is closed
    request_timeout: float = 10.0  # seconds for a whole request, or without progress of an answer
    idle_timeout: float = 75.0  # seconds between requests: above a proxy's usual 60 s pool timeout
    grace_period: float = 8.0  # seconds a stop waits for accepted requests (docker stop kills at 10)


class GuardedServer(TcpWSGIServer):
    """Waitress's TCP server with deadlines, eviction at the limit, counted accept errors and a drain."""

    channel_class = GuardedChannel

    def __init__(self, app: Any, limits: Limits, **adjustments: Any):
        """Bind and listen on adjustments' host and port (raises OSError if it cannot)."""
        self.limits = limits
        self.draining = self.stop_requested = self.hurry = self.paused = False
        self.timed_out = self.not_reading = self.evicted = 0  # closed since the last log line
        self.accept_errors: Counter[str] = Counter()  # failed accepts since the last line about them
        self.pauses = 0  # times accepting paused since the last line about it
        self.accept_resumes = 0.0  # time.monotonic() when accepting resumes after running out of fds
        self.accept_logged = 0.0  # time.monotonic() of the last line about failed accepts
        self.evict_retry = 0.0  # time.monotonic() when a paused server looks for one to close again
        forced = {
            # poll(): select() cannot watch a descriptor past 1023, and the limit allows more.
            "asyncore_use_poll": True,
            "connection_limit": limits.connections,
            "cleanup_interval": SWEEP_INTERVAL,  # how often readable() runs maintenance()
            # No request is read while one is queued: the pipelining bound counts on it.
            "channel_request_lookahead": 0,
        }
        adj = Adjustments(**(adjustments | forced))
        # Waitress's TCP_NODELAY, and a fixed send buffer: Linux would grow it to 4 MB, so each
        # client that does not read would hold 4 MB of kernel memory (and cost its copying), out of
        # sight of the progress deadline. 512 KiB in flight still fills 40 Mbit/s at a 100 ms
        # round trip, and far more behind a proxy nearby. (A class attribute: not a keyword.)
        adj.socket_options = [(SOL_TCP, TCP_NODELAY, 1), (SOL_SOCKET, SO_SNDBUF, SEND_BUFFER)]
        super().__init__(app, map={}, adj=adj)

    def readable(self) -> bool:
        """Whether to accept: also at the limit (handle_accept makes room), unless all are busy or
        descriptors just ran out."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        # Far past the limit nobody was evictable (all have requests in flight): wait for answers,
        # looking again for one to close every EVICT_RETRY s (an answer turns busy into waiting).
        paused = len(self.active_channels) >= self.limits.connections + ACCEPT_BATCH
        if paused and time.monotonic() >= self.evict_retry:
            self.evict_retry = time.monotonic() + EVICT_RETRY
            self.evict()
        self.pauses += paused and not self.paused  # counted for report_accepts()
        self.paused = paused
        return self.accepting and not paused and time.monotonic() >= self.accept_resumes

    def handle_accept(self) -> bool:
        """Accept up to a batch of waiting connections; True if the batch was full (more may wait)."""
        full = self.accept_batch()
        if len(self.active_channels) > self.limits.connections:
            self.evict()
        return full

    def accept_batch(self) -> bool:
        """Waitress's handle_accept up to ACCEPT_BATCH times, its errors counted, not logged each."""
        for _ in range(ACCEPT_BATCH):
            try:
                pair = self.accept()  # None once the backlog is empty
            except OSError as error:
                self.accept_failed(error)
                return False
            if pair is None:
                return False
            sock, address = pair
            try:
                self.set_socket_options(sock)
            except OSError as error:  # the client left before its socket could be set up
                sock.close()
                self.accept_failed(error)
                continue
            self.channel_class(self, sock, self.fix_addr(address), self.adj, map=self._map)
        return True

    def accept_failed(self, error: OSError) -> None:
        """Count a failed accept for the next line about them; out of descriptors, pause accepting
        (the connection stays in the backlog, so the listener would wake the loop at once, again
        and again) and close the DESCRIPTORS_FREED connections waiting longest."""
        self.accept_errors[error.strerror or type(error).__name__] += 1
        if error.errno in OUT_OF_DESCRIPTORS:
            self.accept_resumes = time.monotonic() + ACCEPT_PAUSE
            self.evict(keep=len(self.active_channels) - DESCRIPTORS_FREED)

    def evict(self, keep: int | None = None) -> None:
        """Close the connections that have waited longest on their clients, down to the limit (or
        `keep`): idle ones, ones still sending their request, ones not reading their answer."""
        channels = self.active_channels.values()
        # Going: marked to close, or answered with "Connection: close" and all sent (Waitress closes
        # it at its next turn). Counting these as open would close a waiting one for each.
        closing = sum(1 for channel in channels if channel.will_close or channel.done())
        excess = len(self.active_channels) - closing - (self.limits.connections if keep is None else keep)
        if excess <= 0:
            return
        waiting = [(since, channel) for channel in channels if (since := channel.waiting_since())]
        for _, channel in heapq.nsmallest(excess, waiting, key=lambda pair: pair[0]):
            channel.will_close = True  # closed at its next turn (serving/channel.py)
            self.evicted += 1

    def maintenance(self, now: float) -> None:
        """Close every connection past its deadline (replaces Waitress's channel_timeout sweep), and
        say what was closed and which accepts failed, in a line each at most."""
        for channel in self.active_channels.values():
            deadline = channel.deadline()
            if deadline is not None and now >= deadline:
                channel.will_close = True
                self.timed_out += 1
                self.not_reading += bool(channel.total_outbufs_len)
        if self.timed_out or self.evicted:  # at most one line per sweep, however many were closed
            log.info(
                "closed %d connections past deadline (%d not reading their answers), %d to make room",
                self.timed_out, self.not_reading, self.evicted,
            )  # fmt: skip
            self.timed_out = self.not_reading = self.evicted = 0
        self.report_accepts()

    def report_accepts(self) -> None:
        """One line, at most every ACCEPT_LOG_INTERVAL s, on the pauses and failed accepts since the last."""
        if not (self.pauses or self.accept_errors):
            return
        if time.monotonic() < self.accept_logged + ACCEPT_LOG_INTERVAL:
            return
        news = []
        if self.pauses:
            news.append(f"accepting paused {self.pauses} times, every connection busy at the limit")
        if self.accept_errors:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in self.accept_errors.most_common())
            news.append(f"{self.accept_errors.total()} accepts failed ({reasons})")
        log.warning("%s (one such line every %g s at most)", "; ".join(news), ACCEPT_LOG_INTERVAL)
        self.pauses = 0
        self.accept_errors.clear()
        self.accept_logged = time.monotonic()

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


def descriptor_budget(connections: int) -> int:
    """Raise the open-files soft limit to the hard one; return how many of `connections` fit in it,
    each with its socket and the files its pending answers may hold, past FD_MARGIN."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # an unlimited hard limit, which the kernel caps (nr_open)
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    fit = max((soft - FD_MARGIN) // FILES_PER_CONNECTION, 1)
    if fit < connections:
        log.warning(
            "open-files limit %d fits %d connections, not %d (%d descriptors each: the socket and "
            "files of pending answers, plus %d): connection limit lowered to %d",
            soft, fit, connections, FILES_PER_CONNECTION, FD_MARGIN, fit,
        )  # fmt: skip
    return min(connections, fit)
