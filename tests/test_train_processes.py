"""train.py's backtest processes: a progress line as their fits finish, and none outliving the run."""

from __future__ import annotations

import os
import re
import select
import signal
import time
from pathlib import Path

from tests.conftest import run_train, start_train
from training.selection import backtest
from training.workers import usable_cores

# The quickest real backtest: one configuration, one asset, on the bundled snapshot.
BACKTEST = ("--source", "snapshot", "--asset", "btc", "--candidate", "held-trend")
QUICK_BACKTEST = ("--source", "snapshot", "--asset", "btc", "--candidate", "flat")  # the same 40 cutoffs
PROGRESS = r"backtest (\d+)/(\d+) fits \((\d+)%\), (\d+) s"
WORKERS_GONE_TIMEOUT = 30  # seconds for every worker to end once the run is killed


def test_the_backtest_logs_its_progress_with_jobs_capped_at_the_cores(tmp_path):
    result = run_train(*QUICK_BACKTEST, "--jobs", "100", "--model-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    cores, fits = usable_cores(), backtest.EVAL_CUTOFFS + 1  # the backtest's, and the served model's
    assert f"--jobs 100 capped at {min(cores, fits)} ({fits} fits, {cores} cores)" in result.stderr
    progress = [tuple(map(int, found)) for found in re.findall(PROGRESS, result.stderr)]
    assert 5 <= len(progress) <= 12, result.stderr  # never silent for long, never a flood
    done, total, percent, seconds = zip(*progress, strict=True)
    cutoffs = backtest.EVAL_CUTOFFS  # of one configuration
    assert set(total) == {cutoffs}
    assert list(done) == sorted(set(done)) and done[-1] == cutoffs and percent[-1] == 100
    assert all(p == 100 * d // cutoffs for d, p in zip(done, percent, strict=True))
    assert list(seconds) == sorted(seconds)


def children(pid: int) -> list[int]:
    """The processes `pid` started and that still run, from every one of its threads."""
    pids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def test_killing_the_run_by_its_pid_ends_its_workers(tmp_path):
    run, output = start_train(*BACKTEST, "--jobs", "2", "--model-dir", str(tmp_path))
    ends: dict[int, int] = {}  # worker PID -> a pidfd, readable once the worker has ended
    try:
        assert output.wait_for(PROGRESS, timeout=180), "".join(output.lines)  # the workers are at work
        for pid in children(run.pid):
            ends[pid] = os.pidfd_open(pid)
        assert len(ends) == 2, "".join(output.lines)
        run.kill()  # SIGKILL to train.py's PID only, as `kill -9 PID` does
        run.wait(timeout=30)
        deadline = time.monotonic() + WORKERS_GONE_TIMEOUT
        alive = set(ends)
        while alive and (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([ends[pid] for pid in alive], [], [], remaining)
            alive -= {pid for pid in alive if ends[pid] in ready}
        assert not alive, f"workers {sorted(alive)} outlived the run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for end in ends.values():
            if not select.select([end], [], [], 0)[0]:
                signal.pidfd_send_signal(end, signal.SIGKILL)  # a test that failed leaves no orphan
            os.close(end)


def test_a_killed_worker_fails_the_run_in_one_line(tmp_path):
    run, output = start_train(*BACKTEST, "--jobs", "2", "--model-dir", str(tmp_path))
    try:
        assert output.wait_for(PROGRESS, timeout=180), "".join(output.lines)
        os.kill(children(run.pid)[0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
        assert run.wait(timeout=120) == 1
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    output.reader.join(timeout=10)
    errors = [line.split(" ERROR ")[-1] for line in output.lines if " ERROR " in line]
    assert errors == [
        "train: training btc failed: a backtest worker process died: A process in the process pool was "
        "terminated abruptly while the future was running or pending.\n"
    ], "".join(output.lines)
    assert "Traceback" not in "".join(output.lines)
    assert list(tmp_path.iterdir()) == []  # nothing written, the lock file removed
