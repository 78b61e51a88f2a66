"""The guarded server was written against Waitress 3.0.2's source: it fails loudly on any other.

serving/guarded.py, serving/channel.py and serving/protocol.py subclass Waitress's server, channel,
task and parser and use their private attributes, and serving/channel.py carries its own copy of
HTTPChannel.received. A Waitress upgrade can change any of these without notice, so this test
fails on every other version until someone has re-read them against the new source, as
docs/operations.md ("Waitress internals") lists, and moved PINNED (and requirements-*.txt).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import socket

import pytest
from waitress import wasyncore
from waitress.task import ThreadedTaskDispatcher

from serving.channel import GuardedChannel, GuardedTask
from serving.guarded import GuardedServer, Limits
from serving.protocol import CheckedRequest
from tests.conftest import ROOT

PINNED = "3.0.2"

# The attributes each object must still have, beyond Waitress's documented settings.
SERVER = (
    "active_channels", "next_channel_cleanup", "maintenance", "accept", "set_socket_options",
    "fix_addr", "channel_class", "task_dispatcher", "pull_trigger", "add_task", "_map", "adj",
    "accepting", "socket", "effective_host", "effective_port",
)  # fmt: skip
CHANNEL = (
    "requests", "request", "requests_lock", "outbuf_lock", "total_outbufs_len", "last_activity",
    "creation_time", "will_close", "close_when_flushed", "sent_continue", "send_continue", "server",
    "adj", "parser_class", "task_class", "received", "readable", "writable", "service",
    "handle_close", "socket", "connected",
)  # fmt: skip
PARSER = (
    "parse_header", "version", "headers", "chunked", "body_rcv", "content_length", "error",
    "completed", "empty", "expect_continue", "headers_finished", "received",
)  # fmt: skip
TASK = ("build_response_header", "set_close_on_finish", "channel")
SETTINGS = (
    "socket_options",
    "cleanup_interval",
    "channel_request_lookahead",
    "backlog",
    "asyncore_loop_timeout",
)


def test_waitress_is_the_version_the_guarded_server_was_read_against():
    installed = importlib.metadata.version("waitress")
    assert installed == PINNED, (
        f"waitress {installed} is installed, but serving/guarded.py, serving/channel.py and "
        f"serving/protocol.py were written against {PINNED}'s source: re-read what "
        'docs/operations.md ("Waitress internals") lists against the new source, then move PINNED'
    )
    for name in ("requirements-api.txt", "requirements-image.txt"):
        assert f"waitress=={PINNED}" in (ROOT / name).read_text(), name


@pytest.fixture
def server():
    guarded = GuardedServer(
        lambda environ, start: [], Limits(), host="127.0.0.1", port=0, threads=1, ident=""
    )
    yield guarded
    guarded.task_dispatcher.shutdown(True, 1)
    wasyncore.close_all(guarded._map)


def test_the_internals_it_uses_are_still_there(server):
    ours, theirs = socket.socketpair()
    channel = GuardedChannel(server, ours, ("127.0.0.1", 0), server.adj, map=server._map)
    request = CheckedRequest(server.adj)
    request.received(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    task = GuardedTask(channel, request)
    missing = [
        f"{type(thing).__name__}.{name}"
        for thing, names in ((server, SERVER), (channel, CHANNEL), (request, PARSER), (task, TASK))
        for name in names
        if not hasattr(thing, name)
    ]
    missing += [f"Adjustments.{name}" for name in SETTINGS if not hasattr(server.adj, name)]
    assert missing == []
    assert server.active_channels[ours.fileno()] is channel  # add_channel still registers channels
    assert list(inspect.signature(ThreadedTaskDispatcher.shutdown).parameters) == [
        "self",
        "cancel_pending",
        "timeout",
    ]
    assert callable(wasyncore.poll2)
    theirs.close()
