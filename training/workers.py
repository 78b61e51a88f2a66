"""The backtest's worker processes: they die with the run, and their progress is logged as they go."""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, as_completed
from typing import NamedTuple

from training.errors import TrainingError, short

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PROGRESS_LINES = 10  # progress lines per map at most: one each tenth of the tasks


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's cpuset), at most os.cpu_count()."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        affinity = os.cpu_count() or 1
    return max(1, min(affinity, os.cpu_count() or 1))


def process_count(requested: int | None, fits: int) -> int:
    """Worker processes for `fits` fits: as requested (default one per core), never more than the
    fits or the cores. More would only cost memory (a Prophet worker is about 65 MB) for no speed."""
    cores = usable_cores()
    count = max(1, min(requested or cores, cores, fits))
    if requested is not None and requested > count:
        log.info("--jobs %d capped at %d (%d fits, %d cores)", requested, count, fits, cores)
    return count


def worker_pool(jobs: int, initializer: Callable[[], None]) -> ProcessPoolExecutor:
    """`jobs` worker processes that Linux kills when this process dies, however it dies.

    Without that, a run killed by its PID leaves its workers blocked on their pipe forever. The
    workers are forked so that this process is their parent; ProcessPoolExecutor forks them from
    the thread that submits the first task (here the main one), and the death signal is tied to
    that thread's end.
    """
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=start_worker,
        initargs=(os.getpid(), initializer),
    )


def start_worker(parent_pid: int, initializer: Callable[[], None]) -> None:
    """A worker's first act: die with the parent, then the pool's own initializer."""
    die_with_parent(parent_pid)
    initializer()


def die_with_parent(parent_pid: int) -> None:
    """Have Linux SIGKILL this process when its parent ends; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # A parent that died between the fork and the prctl sent no signal: this process has been
    # handed to another parent already.
    if os.getppid() != parent_pid:
        os._exit(1)


class Task(NamedTuple):
    """One call for a worker: function(*args), and how many fits it makes (for the progress lines)."""

    function: Callable
    args: tuple
    fits: int = 1


def map_with_progress(pool: Executor, tasks: list[Task], what: str) -> list:
    """Each task's result, in order, from the pool's workers; an INFO line each tenth of the fits done."""
    started = time.monotonic()
    futures = {pool.submit(task.function, *task.args): task.fits for task in tasks}
    total = sum(futures.values())
    step, done, logged = max(1, math.ceil(total / PROGRESS_LINES)), 0, 0
    try:
        for future in as_completed(futures):
            future.result()  # the first task that fails stops the map
            done += futures[future]
            if done // step > logged // step or (done == total and logged < total):
                logged = done
                log.info(
                    "%s %d/%d fits (%d%%), %.0f s",
                    what, done, total, 100 * done // total, time.monotonic() - started,
                )  # fmt: skip
    except BaseException as error:
        for future in futures:
            future.cancel()
        if isinstance(error, BrokenExecutor):  # a worker was killed: by an operator, or out of memory
            raise TrainingError(f"a {what} worker process died: {short(error)}") from error
        raise
    return [future.result() for future in futures]
