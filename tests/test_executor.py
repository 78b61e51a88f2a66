"""train.py on a real Dask cluster: a scheduler and two workers, each its own process on 127.0.0.1,
started the way an operator starts them (`dask scheduler`, `dask worker`), then the API on what it wrote.

The workers run in a folder of their own without this project on their path: the code they run is
the zip train.py ships when it connects (training/executor.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from scripts.processes import free_port, stop_process
from tests.conftest import Output, run_train, start_api
from training.executor import CLUSTER_VARIABLE, code_zip

DASK = Path(sys.executable).with_name("dask")
CLUSTER_START_TIMEOUT = 90  # seconds for the scheduler and both workers to be up
# The quickest full training job: one asset, one configuration, on the bundled snapshot.
TRAIN = ("--source", "snapshot", "--asset", "btc", "--candidate", "flat")


def cluster_env() -> dict[str, str]:
    """The environment of the cluster's processes: this project nowhere on their path."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", CLUSTER_VARIABLE)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The address of a scheduler with two single-threaded workers, all separate processes."""
    folder = tmp_path_factory.mktemp("cluster")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = []
    try:
        scheduler = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=folder, env=cluster_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        processes.append(scheduler)
        log = Output(scheduler.stdout)
        assert log.wait_for(r"Scheduler at:", CLUSTER_START_TIMEOUT), "".join(log.lines)
        workers = subprocess.Popen(
            [
                str(DASK), "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
                "--no-dashboard", "--local-directory", str(folder / "workers"),
            ],
            cwd=folder, env=cluster_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(workers)
        for _ in range(2):
            assert log.wait_for(r"Register worker", CLUSTER_START_TIMEOUT), "".join(log.lines)
        yield address
    finally:
        for process in reversed(processes):
            stop_process(process)


def tasks_done(address: str) -> dict[str, float]:
    """Seconds of compute the scheduler recorded per kind of task (the task's function name)."""
    from distributed import Client

    def durations(dask_scheduler) -> dict[str, float]:
        return {
            name: prefix.all_durations.get("compute", 0.0)
            for name, prefix in dask_scheduler.task_prefixes.items()
        }

    with Client(address, timeout="20s", set_as_default=False) as client:
        return client.run_on_scheduler(durations)


def test_train_py_fits_on_the_cluster_and_the_api_serves_what_it_wrote(cluster, tmp_path):
    models = tmp_path / "models"
    result = run_train(*TRAIN, "--model-dir", str(models), env={CLUSTER_VARIABLE: cluster})
    assert result.returncode == 0, result.stderr
    assert f"training on the Dask cluster at {cluster}: 2 worker(s), 2 thread(s)" in result.stderr
    done = tasks_done(cluster)
    # Every fold, every interval and the served model's fit ran on the workers.
    assert {"forecasts_at_cutoffs", "intervals_at_cutoffs", "fit_quietly"} <= {
        n for n, s in done.items() if s > 0
    }
    metadata = json.loads((models / "btc.json").read_text())
    assert metadata["config"]["name"] == "flat" and metadata["backtest"]["cutoffs"] == 40
    server = start_api(models)
    try:
        day = metadata["serve"]["last_day"]
        url = f"{server.url}/bitcoin?date={day}"
        with urllib.request.urlopen(url, timeout=30) as answer:  # nosec B310  # the loopback server above
            assert answer.status == 200
            body = json.load(answer)
            assert 0 < body["prediction_low"] < body["prediction"] < body["prediction_high"]
    finally:
        stop_process(server.process)


def test_the_cluster_option_names_an_unreachable_scheduler_in_one_line(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_train(
        *TRAIN,
        "--cluster",
        address,
        "--model-dir",
        str(tmp_path),
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"cannot reach the Dask scheduler at {address}" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_workers_get_the_project_code_as_one_zip(tmp_path):
    import zipfile

    names = zipfile.ZipFile(code_zip(tmp_path)).namelist()
    assert "training/selection/backtest.py" in names and "artifact/forecast.py" in names
    assert not any(name.startswith(("serving/", "tests/")) for name in names)
