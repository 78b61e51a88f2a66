"""`make run` does what the README says: SOURCE=... on make's command line trains from that source
first (and a failed training serves nothing); a plain `make run` serves the models there as they
are, after one line saying their source and day, and trains first only when there are none.

make runs with the virtual environment's installs marked done (`-o .venv/.run-deps`) and without
the page's gzip copies (`-o precompress`): these tests install nothing. Each make runs in a
session of its own, stopped as a group (make and the api.py it started) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from scripts import model_summary
from scripts.processes import free_port
from tests.conftest import ROOT, SERVER_START_TIMEOUT, Output
from tests.golden import GOLDEN_MODELS

QUICK_TRAINING = "TRAIN_ARGS=--asset btc --no-backtest"
TRAINING_TIMEOUT = 300  # seconds for a --no-backtest training and the API's start after it


@pytest.fixture
def make():
    found = shutil.which("make")
    if found is None:
        pytest.skip("needs make")
    return found


def start_make(make: str, model_dir: Path, *variables: str, env: dict | None = None):
    """`make run` on `model_dir`, listening on a free loopback port; its output read as it comes."""
    command = [make, "--no-print-directory", "-o", ".venv/.run-deps", "-o", "precompress", "run"]
    command += [f"PY={sys.executable}", f"MODEL_DIR={model_dir}", "HOST=127.0.0.1", "PORT=0", *variables]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return process, Output(process.stdout)


def output_until_serving(make: str, model_dir: Path, *variables: str, timeout: float, env=None) -> str:
    """What `make run` printed up to the server's startup line, which must come within `timeout` s."""
    process, output = start_make(make, model_dir, *variables, env=env)
    try:
        serving = output.wait_for(r"Serving on http://", timeout)
    finally:
        stop(process)
    text = "".join(output.lines)
    assert serving, text
    return text


def stop(process: subprocess.Popen) -> None:
    """SIGTERM make's process group (make and the server it started), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def seeded(folder: Path) -> Path:
    folder.mkdir()
    for name in ("btc.json", "btc.pkl"):
        shutil.copy2(GOLDEN_MODELS / name, folder / name)
    return folder


def test_a_plain_make_run_serves_the_models_and_says_their_source_and_day(make, tmp_path):
    folder = seeded(tmp_path / "models")
    age = (datetime.now(UTC).date() - date(2026, 8, 20)).days
    text = output_until_serving(make, folder, timeout=SERVER_START_TIMEOUT)
    assert (
        f"make run: serving the models in {folder} as they are: btc from snapshot, data up to 2026-08-20 "
        f"({age} days ago) (make run SOURCE=alpaca or SOURCE=snapshot trains them again first)"
    ) in text
    assert "train.py" not in text
    assert json.loads((folder / "btc.json").read_text()) == json.loads(
        (GOLDEN_MODELS / "btc.json").read_text()
    )


def test_make_run_with_a_source_trains_from_it_before_serving(make, tmp_path):
    folder = seeded(tmp_path / "models")
    text = output_until_serving(make, folder, "SOURCE=snapshot", QUICK_TRAINING, timeout=TRAINING_TIMEOUT)
    assert "train.py --source snapshot" in text and "read 4356 bars from snapshot" in text
    assert text.index("wrote ") < text.index("Serving on")
    metadata = json.loads((folder / "btc.json").read_text())
    assert metadata["trained_at"] != json.loads((GOLDEN_MODELS / "btc.json").read_text())["trained_at"]
    assert "make run: serving the models" not in text


def test_make_run_source_alpaca_serves_nothing_when_alpaca_cannot_be_reached(make, tmp_path):
    folder = seeded(tmp_path / "models")
    unreachable = {"ALPACA_DATA_URL": f"http://127.0.0.1:{free_port()}"}
    process, output = start_make(make, folder, "SOURCE=alpaca", QUICK_TRAINING, env=unreachable)
    try:
        assert process.wait(timeout=TRAINING_TIMEOUT) != 0
    finally:
        stop(process)
    output.reader.join(timeout=10)
    text = "".join(output.lines)
    assert "training btc failed: could not fetch bars from" in text and "Serving on" not in text, text
    assert (folder / "btc.json").read_bytes() == (GOLDEN_MODELS / "btc.json").read_bytes()


def test_a_plain_make_run_without_models_trains_first(make, tmp_path):
    folder = tmp_path / "models"
    unreachable = {"ALPACA_DATA_URL": f"http://127.0.0.1:{free_port()}"}  # auto: the snapshot, loudly
    text = output_until_serving(make, folder, QUICK_TRAINING, timeout=TRAINING_TIMEOUT, env=unreachable)
    assert "TRAINING BTC/USD ON THE BUNDLED SNAPSHOT" in text and "make run: serving" not in text
    assert json.loads((folder / "btc.json").read_text())["source"] == "snapshot"


def test_the_summary_line_names_each_model_or_why_it_cannot(tmp_path):
    folder = seeded(tmp_path / "models")
    (folder / "eth.json").write_text("{not json")
    line = model_summary.summary(folder, date(2026, 8, 21))
    assert "btc from snapshot, data up to 2026-08-20 (1 day ago); eth.json unreadable" in line
    assert model_summary.summary(tmp_path / "nowhere", date(2026, 8, 21)) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model_summary.main([str(empty)]) == 1
