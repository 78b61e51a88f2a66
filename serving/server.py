"""Serving the app: the server's settings from the environment, checked, and a guarded Waitress.

`settings_from_env()` reads and checks every setting before the models load, so a typo fails in
a second with one line; `serve()` listens, says where, and serves until SIGTERM or Ctrl-C, then
drains (serving/guarded.py). Limits and what happens past each: docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from serving.guarded import GuardedServer, Limits, descriptor_budget
from serving.http import MAX_BODY_BYTES

log = logging.getLogger(__name__)

# Containers must listen on all interfaces; `make run` passes HOST=127.0.0.1.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # nosec B104
# Waitress's request limits for a GET-only API whose longest honest URL is under 100 bytes.
SERVER_LIMITS = {
    "max_request_header_size": 16 * 1024,  # request line (with the URL) plus headers; past it: 431
    "max_request_body_size": MAX_BODY_BYTES,  # past it: 413 before the body is read or the app runs
    "expose_tracebacks": False,  # an error never shows code to the client
}
DEFAULTS = Limits()
Number = TypeVar("Number", int, float)


class SettingError(ValueError):
    """A server setting that cannot be used; its message names the setting and what is accepted."""


@dataclass(frozen=True)
class Settings:
    """Where to listen, with how many worker threads, and the connection limits."""

    host: str = ALL_INTERFACES
    port: int = 8080
    # 16 threads: at 32 connections on 2 cores this gave the best throughput and p99 (bench/bench.py);
    # with fewer, requests wait for a free thread while the lookups themselves take microseconds.
    threads: int = 16
    limits: Limits = DEFAULTS


def settings_from_env(environ: Mapping[str, str] = os.environ) -> Settings:
    """The settings of HOST, PORT, THREADS and the limits; raises SettingError on the first bad one."""
    port = number(environ, "PORT", Settings.port, 0, 65535)
    host = environ.get("HOST", Settings.host)
    check_host(host, port)
    return Settings(
        host=host,
        port=port,
        threads=number(environ, "THREADS", Settings.threads, 1, 256),
        limits=Limits(
            connections=number(environ, "MAX_CONNECTIONS", DEFAULTS.connections, 1, 100_000),
            request_timeout=number(environ, "REQUEST_TIMEOUT", DEFAULTS.request_timeout, 0.1, 3600.0),
            idle_timeout=number(environ, "IDLE_TIMEOUT", DEFAULTS.idle_timeout, 0.1, 3600.0),
            grace_period=number(environ, "GRACE_PERIOD", DEFAULTS.grace_period, 0.0, 3600.0),
        ),
    )


def number(environ: Mapping[str, str], name: str, default: Number, low: Number, high: Number) -> Number:
    """The number `name` holds (its default when unset) within [low, high]: an integer, or seconds
    (decimals allowed) when the default is a float."""
    text = environ.get(name, str(default))
    kind, what = (float, "seconds") if isinstance(default, float) else (int, "an integer")
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # NaN fails both comparisons: refused too
        raise SettingError(f"{name}={text!r} is not usable: give {what} from {low:g} to {high:g}")
    return value


def check_host(host: str, port: int) -> None:
    """Refuse a HOST that is no address of any kind (binding it is checked when the server starts)."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else str(error)
        raise SettingError(f"HOST={host!r} is not an address to listen on ({reason})") from None


def url(host: str, port: int | str) -> str:
    """The base URL of an address; an IPv6 one in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app: Any, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return; SettingError if it cannot listen."""
    # Waitress warns "Task queue depth" on every backlog: under load that is a log flood, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    limits = replace(settings.limits, connections=descriptor_budget(settings.limits.connections))
    try:
        server = GuardedServer(
            app, limits, host=settings.host, port=settings.port, threads=settings.threads, ident="",
            **SERVER_LIMITS,
        )  # fmt: skip
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        address = url(settings.host, settings.port).removeprefix("http://")
        raise SettingError(f"cannot listen on {address}: {reason[0].lower()}{reason[1:]}") from None
    # SIGTERM (docker stop, Render deploys) and Ctrl-C drain: answer what was accepted, then exit.
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    base = url(server.effective_host, server.effective_port)
    # One line with every address to open; tests/conftest.py reads the first URL from it.
    log.info("Serving on %s (page %s/, docs %s/docs, health %s/health)", base, base, base, base)
    log.info(
        "%d threads; up to %d connections, each request within %g s, idle %g s; stop grace %g s",
        settings.threads, limits.connections, limits.request_timeout, limits.idle_timeout,
        limits.grace_period,
    )  # fmt: skip
    server.run()
    log.info("stopped")
