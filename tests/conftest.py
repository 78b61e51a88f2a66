"""Shared fixtures: the golden models, a freshly trained set, the app, a real Waitress server, fake Alpaca."""

from __future__ import annotations

import hashlib
import os
import queue
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import api
import artifact
from scripts.processes import stop_process
from serving.answers import ServedModel
from tests.fake_alpaca import FakeAlpaca, all_redated_bars, start_fake_alpaca, stop_fake_alpaca

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_MODELS = ROOT / "tests" / "golden" / "models"  # tests/golden.py records them

SERVER_START_TIMEOUT = 60  # seconds; loading the model and precomputing answers takes a few


def run_train(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run train.py as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


class Output:
    """Every line a process writes, read by a thread for the process's whole life (a full pipe
    would block it); a queue hands the lines over as they come, with a deadline and no polling."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._arrived: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            self._arrived.put(line)
        self._arrived.put(None)  # the process closed its output: it has exited

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        """The next line matching `pattern`; None once the output ends or `timeout` s have passed."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._arrived.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._arrived.put(None)  # the end stays visible to the next wait
                break
            if found := re.search(pattern, line):
                return found
        return None


def start_train(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, Output]:
    """Start train.py in its own process, its output (stderr included) read line by line as it comes."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return process, Output(process.stdout)


def in_namespaces(*options: str, probe: tuple[str, ...] = ("true",)) -> list[str]:
    """The command prefix that runs a program in new namespaces (`unshare --net`, `--mount`...),
    once `probe` ran there; the test is skipped, with the reason, where that is not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux)")
    result = subprocess.run([unshare, *options, *probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"needs `unshare {' '.join(options)}` (root): {result.stderr.strip()}")
    return [unshare, *options]


def model_file(model_dir: Path, asset: str = "btc") -> Path:
    """The model file an asset's metadata names."""
    metadata_file = artifact.metadata_path(model_dir, asset)
    return artifact.model_path(metadata_file, artifact.read_metadata(metadata_file))


def refused_start(model_dir: Path, **env: str) -> str:
    """Run api.py on `model_dir` with `env`; it must exit 2 with one ERROR line, no traceback: that line."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "api.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": "0", **env},
    )
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Serving on" not in result.stderr
    return errors[0]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Both assets' committed golden models (tests/golden/models, made by the full training job on
    the bundled snapshot), written as train.py writes a pair now: what the API tests serve without
    waiting for a training (shared: do not modify)."""
    folder = tmp_path_factory.mktemp("golden") / "models"
    folder.mkdir()
    for metadata_file in sorted(GOLDEN_MODELS.glob("*.json")):
        metadata = artifact.read_metadata(metadata_file)
        model_bytes = artifact.model_path(metadata_file, metadata).read_bytes()
        sha256 = hashlib.sha256(model_bytes).hexdigest()
        current = {"format": artifact.METADATA_FORMAT, "model_sha256": sha256}
        current["model_file"] = artifact.model_file_name(metadata_file.stem, sha256)
        artifact.write_pair(folder / metadata_file.name, model_bytes, {**metadata, **current})
    return folder


FULL_JOB_TIMEOUT = 900  # seconds


@dataclass
class Training:
    """The session's full training job: train.py on the snapshot, in the background."""

    folder: Path  # models/, train.log and, once the job has ended, exit-code
    process: subprocess.Popen | None  # None: the job of another pytest-xdist worker
    shared: bool = False  # in the folder every xdist worker of the run sees

    def models(self, timeout: float = FULL_JOB_TIMEOUT) -> Path:
        """The models folder, once the job has ended well (whichever process started it)."""
        exit_code = self.folder / "exit-code"
        deadline = time.monotonic() + timeout
        while not exit_code.exists():
            assert time.monotonic() < deadline, f"the full training job took more than {timeout} s"
            time.sleep(0.5)
        assert exit_code.read_text() == "0", (self.folder / "train.log").read_text()
        return self.folder / "models"


FULL_JOB: list[Training] = []  # the session's one full training run, once started


def start_full_job(folder: Path, shared: bool = False) -> Training:
    """Start the full training job on the snapshot in the background, into `folder`; its exit code
    is written beside the models when it ends, for any process of the run to read."""
    with (folder / "train.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "train.py", "--source", "snapshot", "--model-dir", str(folder / "models")],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip

    def record_exit_code() -> None:
        written = folder / "exit-code.tmp"
        written.write_text(str(process.wait()))
        written.replace(folder / "exit-code")

    threading.Thread(target=record_exit_code, daemon=True).start()
    FULL_JOB.append(Training(folder, process, shared))
    return FULL_JOB[-1]


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected theirs
def pytest_collection_modifyitems(config, items) -> None:
    """Start the full job as the session starts when a collected test needs it: it trains on the
    core the other tests leave idle most of the time, instead of making its first test wait.

    Under pytest-xdist (make test) every worker collects every test: the first worker here starts
    the job, in a folder of the run's that every worker sees (pytest keeps it with the run's
    other temporary folders), and the job's tests wait for it on whichever worker runs them.
    """
    needing = [item for item in items if "trained_model_dir" in item.fixturenames]
    if not needing:
        return
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        start_full_job(Path(tempfile.mkdtemp(prefix="trained-models-")))
        return
    folder = config._tmp_path_factory.getbasetemp().parent / "full-training-job"
    try:
        folder.mkdir()  # atomic: one worker wins
    except FileExistsError:
        FULL_JOB.append(Training(folder, None, shared=True))
    else:
        start_full_job(folder, shared=True)


def pytest_sessionfinish(exitstatus) -> None:
    """An interrupted session stops the job; otherwise a worker waits for the job it started, which
    another worker's tests may still need. A folder of this process alone is removed."""
    for training in FULL_JOB:
        if training.process is not None:
            if exitstatus == pytest.ExitCode.INTERRUPTED:
                stop_process(training.process)
            else:
                try:
                    training.process.wait(timeout=FULL_JOB_TIMEOUT)
                except subprocess.TimeoutExpired:
                    stop_process(training.process)
        if not training.shared:
            shutil.rmtree(training.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_model_dir() -> Path:
    """Every asset's model, trained by train.py on the bundled snapshot (shared: do not modify).

    This is the full training job: backtest of every candidate, choice, calibration, quality gate,
    run once per session, in the background from its start; only the tests of that job wait for it.
    """
    training = FULL_JOB[0] if FULL_JOB else start_full_job(Path(tempfile.mkdtemp(prefix="trained-models-")))
    return training.models()


@pytest.fixture(scope="session")
def uncalibrated_model_dir(tmp_path_factory) -> Path:
    """The BTC model trained without the backtest, so it serves Prophet's own interval (shared)."""
    path = tmp_path_factory.mktemp("uncalibrated")
    result = run_train("--source", "snapshot", "--asset", "btc", "--no-backtest", "--model-dir", str(path))
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
def served(app) -> ServedModel:
    """The BTC model as the app serves it."""
    return app.extensions["served_models"]["btc"]


@pytest.fixture(scope="session")
def golden_app():
    """The app on the bundled golden models (tests/golden/models): fixed answers, no training."""
    from tests import golden

    return api.create_app(golden.GOLDEN_MODELS)


@pytest.fixture
def golden_client(golden_app):
    return golden_app.test_client()


@dataclass
class LiveServer:
    process: subprocess.Popen
    url: str
    log: list[str]  # every line of output so far
    reader: threading.Thread  # ends once the process has exited and its output is all in `log`


def start_api(
    model_dir: Path, extra_env: dict | None = None, open_files: tuple[int, int] | None = None
) -> LiveServer:
    """Start `python api.py` on a free loopback port; return once Waitress says it is listening.
    With `open_files`, it starts under that (soft, hard) open-files limit, as `ulimit -Sn/-Hn` set."""
    env = {**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": "0", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "api.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, open_files)) if open_files else None,
    )
    output = Output(process.stdout)
    listening = output.wait_for(r"Serving on (http://\S+)", SERVER_START_TIMEOUT)
    if listening:
        return LiveServer(process, listening.group(1), output.lines, output.reader)
    stop_process(process)
    raise AssertionError("api.py did not start:\n" + "".join(output.lines))


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
