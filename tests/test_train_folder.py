"""train.py and its model folder: checked before any work, held by one run at a time, and a write
that fails keeps the previous pair. Every refusal is exit 1 with one ERROR line naming its cause.

The read-only folder and the full disk are real: a tmpfs mounted in a mount namespace of the
run's own (`unshare --mount`, root only; skipped with the reason elsewhere).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from artifact import read_pair
from tests.conftest import ROOT, in_namespaces, run_train, start_train
from tests.golden import GOLDEN_MODELS
from training.model_folder import LOCK_FILE, MIN_FREE_VARIABLE

QUICK = ("--source", "snapshot", "--asset", "btc", "--no-backtest")  # the folder is the point here


def seeded(folder: Path) -> Path:
    """`folder` holding a previous BTC pair (the golden one)."""
    folder.mkdir(parents=True)
    for name in ("btc.json", "btc.pkl"):
        shutil.copy2(GOLDEN_MODELS / name, folder / name)
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def refused(result: subprocess.CompletedProcess) -> str:
    """The one ERROR line of a run that stopped before any work (no bars read, nothing fitted)."""
    errors = [line.split(" ERROR ")[-1] for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert " bars " not in result.stderr and "fitting" not in result.stderr, result.stderr
    return errors[0]


# ---------------------------------------------------------------- checked before any work


def test_a_file_as_model_folder_is_refused(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    result = run_train(*QUICK, "--model-dir", str(tmp_path / "models"))
    assert refused(result) == f"train: model folder {tmp_path / 'models'} is a file, not a folder"


def test_a_model_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_train(*QUICK, "--model-dir", str(tmp_path / "file" / "models"))
    assert refused(result) == (
        f"train: model folder {tmp_path / 'file' / 'models'} cannot be created: "
        f"{tmp_path / 'file'} is a file, not a folder"
    )


def test_a_missing_model_folder_is_created(tmp_path):
    folder = tmp_path / "new" / "models"
    result = run_train(*QUICK, "--model-dir", str(folder))
    assert result.returncode == 0, result.stderr
    metadata, _ = read_pair(folder / "btc.json")
    assert {path.name for path in folder.iterdir()} == {"btc.json", metadata["model_file"]}  # no lock left


def test_too_little_free_space_is_refused(tmp_path):
    folder = seeded(tmp_path / "models")
    needed = shutil.disk_usage(folder).free // 2**20 + 1024
    result = run_train(*QUICK, "--model-dir", str(folder), env={MIN_FREE_VARIABLE: str(needed)})
    assert re.fullmatch(
        rf"train: model folder {re.escape(str(folder))} has \d+ MB free; a training run needs {needed} MB "
        rf"\({MIN_FREE_VARIABLE} sets this\)",
        refused(result),
    )


def test_a_bad_free_space_setting_is_refused(tmp_path):
    result = run_train(*QUICK, "--model-dir", str(tmp_path), env={MIN_FREE_VARIABLE: "lots"})
    assert refused(result) == (
        f"train: {MIN_FREE_VARIABLE} must be a whole number of MB (0: no check); got 'lots'"
    )


# ---------------------------------------------------------------- a read-only folder, a full disk

# Mounts a tmpfs of $SIZE on $FOLDER, copies the previous pair in, runs $PREPARE, then train.py;
# copies what the folder holds then to $AFTER (the mount ends with the namespace) and exits as it did.
IN_A_TMPFS = r"""
mount -t tmpfs -o size="$SIZE" tmpfs "$FOLDER" && cp -p "$SEED"/* "$FOLDER"/ && eval "$PREPARE" || exit 99
"$PYTHON" "$TRAIN" "$@" --model-dir "$FOLDER"
status=$?
rm -f "$FOLDER/filler"
cp -a "$FOLDER"/. "$AFTER"/
exit $status
"""


def run_in_a_tmpfs(tmp_path: Path, size: str, prepare: str, env: dict | None = None):
    """train.py on a folder that is a tmpfs of `size`; returns its result and what the folder held."""
    folder, after = tmp_path / "models", tmp_path / "after"
    folder.mkdir()
    after.mkdir()
    seed = seeded(tmp_path / "seed")
    mount = ("mount", "-t", "tmpfs", "tmpfs", str(folder))
    unshare = in_namespaces("--mount", "--propagation", "private", probe=mount)
    result = subprocess.run(
        [*unshare, "sh", "-c", IN_A_TMPFS, "sh", *QUICK],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={
            **os.environ, **(env or {}), "SIZE": size, "FOLDER": str(folder), "SEED": str(seed),
            "AFTER": str(after), "PREPARE": prepare, "PYTHON": sys.executable,
            "TRAIN": str(ROOT / "train.py"),
        },
    )  # fmt: skip
    assert result.returncode != 99, result.stderr
    return result, folder, contents(after), contents(seed)


def test_a_read_only_model_folder_is_refused(tmp_path):
    result, folder, after, before = run_in_a_tmpfs(tmp_path, "4m", 'mount -o remount,ro "$FOLDER"')
    assert refused(result) == f"train: model folder {folder} is not writable: Read-only file system (EROFS)"
    assert after == before


def test_a_small_disk_is_refused_before_any_work(tmp_path):
    result, folder, after, before = run_in_a_tmpfs(tmp_path, "4m", "true")
    message = f"train: model folder {folder} has 3 MB free; a training run needs 64 MB"
    assert refused(result).startswith(message)
    assert after == before


def test_a_full_disk_at_write_time_keeps_the_previous_pair(tmp_path):
    """With the free-space check off, the disk fills up during the run: the write fails, cleanly."""
    fill = 'dd if=/dev/zero of="$FOLDER/filler" bs=4k 2>/dev/null; true'
    result, folder, after, before = run_in_a_tmpfs(tmp_path, "1m", fill, env={MIN_FREE_VARIABLE: "0"})
    errors = [line.split(" ERROR ")[-1] for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert errors == [
        f"train: training btc failed: could not write the model to {folder}: No space left on device (ENOSPC)"
    ]
    assert "fitted in" in result.stderr  # the failure came at write time, after the work
    assert after == before  # byte-identical: no new model, no temp file, no lock file


# ---------------------------------------------------------------- one run at a time


def test_a_run_on_a_folder_another_holds_is_refused_and_writes_nothing(tmp_path):
    folder = seeded(tmp_path / "models")
    with (folder / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running train.py holds it
        before = contents(folder)
        result = run_train(*QUICK, "--model-dir", str(folder))
        assert contents(folder) == before
    assert refused(result) == (
        f"train: model folder {folder} is in use: another train.py run holds its lock "
        f"({folder / LOCK_FILE}); this run wrote nothing"
    )


def test_two_runs_on_one_folder_take_turns(tmp_path):
    """The first run is stopped while it holds the folder: the second is refused, the first ends well."""
    folder = seeded(tmp_path / "models")
    first, output = start_train(*QUICK, "--model-dir", str(folder))
    try:
        assert output.wait_for(r"model folder .* held by this run", timeout=60), "".join(output.lines)
        first.send_signal(signal.SIGSTOP)  # mid-run, holding the folder, for as long as this takes
        second = run_train(*QUICK, "--model-dir", str(folder))
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=120) == 0, "".join(output.lines)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    output.reader.join(timeout=10)
    assert "is in use: another train.py run holds its lock" in refused(second)
    assert any(" wrote " in line for line in output.lines)
    metadata, model = read_pair(folder / "btc.json")  # the first run's pair, whole
    assert {path.name for path in folder.iterdir()} == {"btc.json", metadata["model_file"]}
    assert model.history is not None
