"""Serving the app with Waitress: the server's settings and limits, read from the environment."""

from __future__ import annotations

import logging
import signal
import sys

from serving import MAX_BODY_BYTES

log = logging.getLogger(__name__)

# Containers must listen on all interfaces; `make run` passes HOST=127.0.0.1.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # nosec B104
# Waitress's limits for a GET-only API whose longest honest URL is under 100 bytes (docs/operations.md).
SERVER_LIMITS = {
    "max_request_header_size": 16 * 1024,  # request line (with the URL) plus headers; past it: 431
    "max_request_body_size": MAX_BODY_BYTES,  # past it: 413 before the body is read or the app runs
    "connection_limit": 256,  # open connections at once; far below select()'s 1024 descriptors
    "channel_timeout": 75,  # seconds an idle connection is kept: longer than proxies' usual 60 s
    "expose_tracebacks": False,  # an error never shows code to the client
}


def serve(app, host: str, port: int, threads: int) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    from waitress import serve as waitress_serve

    # Waitress warns "Task queue depth" on every backlog: under load that is a log flood, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # SIGTERM (docker stop, Render deploys) ends the serve loop like Ctrl-C: sockets close cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving on http://%s:%d with %d threads", host, port, threads)
    waitress_serve(app, host=host, port=port, threads=threads, ident="", **SERVER_LIMITS)
    log.info("stopped")
