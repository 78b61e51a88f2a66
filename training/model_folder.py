"""The model folder a training run writes: checked before any work, and held by one run at a time."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.errors import TrainingError, os_problem

log = logging.getLogger(__name__)

LOCK_FILE = ".train.lock"  # flock()ed by the run that holds the folder; removed as it ends
LOCK_ATTEMPTS = 5  # a lock file replaced under us this often means something else is at work
# Free space a run needs before it starts: a model pair is about 1 MB, but a disk this full is
# about to fail something. The variable overrides it in MB (0: no check).
MIN_FREE_MB = 64
MIN_FREE_VARIABLE = "MODEL_DIR_MIN_FREE_MB"


@contextmanager
def model_folder(folder: Path) -> Iterator[None]:
    """Check the folder (created if missing) and hold its lock for the block; TrainingError if not."""
    free_mb = check_folder(folder)
    with folder_lock(folder):
        log.info("model folder %s: writable, %d MB free, held by this run", folder, free_mb)
        yield


def check_folder(folder: Path) -> int:
    """Create the folder if missing; check it is a folder, writable, with room. Returns its free MB."""
    in_the_way = next((path for path in (folder, *folder.parents) if path.is_file()), None)
    if in_the_way == folder:
        raise TrainingError(f"model folder {folder} is a file, not a folder")
    if in_the_way is not None:
        raise TrainingError(f"model folder {folder} cannot be created: {in_the_way} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrainingError(f"model folder {folder} cannot be created: {os_problem(error)}") from error
    if not folder.is_dir():
        raise TrainingError(f"model folder {folder} is not a folder")
    # Really write: root ignores permission bits, a read-only mount does not, and os.access guesses.
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".train-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise TrainingError(f"model folder {folder} is not writable: {os_problem(error)}") from error
    free_mb = shutil.disk_usage(folder).free // 2**20
    needed = min_free_mb()
    if free_mb < needed:
        raise TrainingError(
            f"model folder {folder} has {free_mb} MB free; a training run needs {needed} MB "
            f"({MIN_FREE_VARIABLE} sets this)"
        )
    return free_mb


def min_free_mb() -> int:
    """MIN_FREE_MB, or the variable's value when set."""
    text = os.environ.get(MIN_FREE_VARIABLE)
    if text is None:
        return MIN_FREE_MB
    if not text.strip().isdigit():
        raise TrainingError(f"{MIN_FREE_VARIABLE} must be a whole number of MB (0: no check); got {text!r}")
    return int(text)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """flock() the folder's lock file for the block, without waiting: a second run fails at once."""
    path = folder / LOCK_FILE
    for _ in range(LOCK_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise TrainingError(f"model folder {folder} cannot be locked: {os_problem(error)}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if isinstance(error, BlockingIOError):
                raise TrainingError(
                    f"model folder {folder} is in use: another train.py run holds its lock ({path}); "
                    "this run wrote nothing"
                ) from None
            raise TrainingError(f"model folder {folder} cannot be locked: {os_problem(error)}") from error
        # The holder before us removed the file as it ended: a lock on a removed file locks nothing.
        if same_file(fd, path):
            break
        os.close(fd)
    else:
        raise TrainingError(f"model folder {folder} cannot be locked: {path} keeps being replaced")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked, so that no run ever locks a removed file
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether the open file is the one at `path` now."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
