"""Shared fixtures: a trained model, the app and its test client, a real Waitress server, fake Alpaca."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import api
from tests.fake_alpaca import FakeAlpaca, all_redated_bars, start_fake_alpaca, stop_fake_alpaca

ROOT = Path(__file__).resolve().parent.parent

SERVER_START_TIMEOUT = 60  # seconds; loading the model and precomputing answers takes a few


def run_train(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train.py as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Every asset's model, trained by train.py on the bundled snapshot (shared: do not modify)."""
    path = tmp_path_factory.mktemp("models")
    result = run_train("--source", "snapshot", "--model-dir", str(path))
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def model_dir_copy(model_dir, tmp_path) -> Path:
    """A private copy of the trained models and their metadata, for tests that damage them."""
    return Path(shutil.copytree(model_dir, tmp_path / "models"))


@pytest.fixture(scope="session")
def app(model_dir):
    return api.create_app(model_dir)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def served(app) -> api.ServedModel:
    """The BTC model as the app serves it."""
    return app.extensions["served_models"]["btc"]


@dataclass
class LiveServer:
    process: subprocess.Popen
    url: str
    log: list[str]


def start_api(model_dir: Path, extra_env: dict | None = None) -> LiveServer:
    """Start `python api.py` on a free loopback port; return once Waitress says it is listening."""
    env = {**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": "0", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "api.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = process.stdout.readline()
        if not line:  # the process exited
            break
        lines.append(line)
        listening = re.search(r"Serving on (http://\S+)", line)
        if listening:
            # Keep reading its output, so a full pipe never blocks the server.
            threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
            return LiveServer(process, listening.group(1), lines)
    stop_process(process)
    raise AssertionError("api.py did not start:\n" + "".join(lines))


def stop_process(process: subprocess.Popen) -> int:
    """SIGTERM the process we started and wait for it; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def live_server(model_dir):
    server = start_api(model_dir)
    yield server
    stop_process(server.process)


@pytest.fixture
def fake_alpaca():
    """A fake Alpaca data server on a free loopback port, serving the re-dated snapshots."""
    state = FakeAlpaca(all_redated_bars())
    server = start_fake_alpaca(state)
    yield server
    stop_fake_alpaca(server)
