"""A guarded server in a process of its own, for tests that need one: its own open-files limit.

    python tests/tiny_server.py CONNECTIONS

serves a one-route WSGI app ("ok") with serving.guarded.GuardedServer on a free loopback port,
logging as api.py does, and says "Serving on http://127.0.0.1:PORT". Unlike api.py it takes
CONNECTIONS as given, without fitting it to the open-files limit (serving.guarded.descriptor_budget):
that is how a test makes accepts fail for want of descriptors. SIGTERM drains and exits.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.guarded import GuardedServer, Limits


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = Limits(connections=int(sys.argv[1]), request_timeout=30.0, idle_timeout=30.0, grace_period=1.0)
    server = GuardedServer(app, limits, host="127.0.0.1", port=0, threads=2, ident="")
    signal.signal(signal.SIGTERM, server.request_stop)
    logging.getLogger("tiny").info("Serving on http://127.0.0.1:%s", server.effective_port)
    server.run()


if __name__ == "__main__":
    main()
