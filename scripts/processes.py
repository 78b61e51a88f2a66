"""What the tests, the benchmarks and the delivery scripts share: a free loopback port, stopping a process.

Standard library only: scripts/container_test.py runs before, and apart from, the project's
virtual environment.
"""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens on it now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM a process we started, SIGKILL it if it lingers past `timeout` s; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
