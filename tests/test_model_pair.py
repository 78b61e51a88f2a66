"""The model pair (artifact/): a reader sees the old pair or the new one, never a mix, and a
writer killed at any step leaves a pair the API reads (artifact.read_pair).

The pairs are the golden models (tests/golden/models, format 2): the BTC pair is the previous
model, and ETH's fitted Prophet, under BTC's metadata, is the new one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import artifact
import artifact.pair
from tests.conftest import ROOT
from tests.golden import GOLDEN_MODELS

OLD_MODEL = (GOLDEN_MODELS / "btc.pkl").read_bytes()
NEW_MODEL = (GOLDEN_MODELS / "eth.pkl").read_bytes()  # another fitted Prophet: different bytes


def metadata_for(model_bytes: bytes) -> dict:
    """BTC's golden metadata in the current format, naming `model_bytes` by their content."""
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    golden = json.loads((GOLDEN_MODELS / "btc.json").read_text())
    return {
        **golden,
        "format": artifact.METADATA_FORMAT,
        "model_sha256": sha256,
        "model_file": artifact.model_file_name("btc", sha256),
    }


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture(params=["format 2", "format 3"])
def previous(request, tmp_path) -> Path:
    """A folder holding the previous BTC pair, as an older train.py wrote it or as this one does,
    and ETH's golden pair beside it."""
    folder = tmp_path / "previous"
    folder.mkdir()
    for name in ("btc.json", "btc.pkl", "eth.json", "eth.pkl"):
        shutil.copy2(GOLDEN_MODELS / name, folder / name)
    if request.param == "format 3":
        (folder / "btc.pkl").unlink()
        artifact.write_pair(folder / "btc.json", OLD_MODEL, metadata_for(OLD_MODEL))
    return folder


def test_the_model_file_is_named_by_its_content_and_replaced_with_it(tmp_path):
    artifact.write_pair(tmp_path / "btc.json", OLD_MODEL, metadata_for(OLD_MODEL))
    old_name = metadata_for(OLD_MODEL)["model_file"]
    assert old_name == f"btc.{hashlib.sha256(OLD_MODEL).hexdigest()[:16]}.pkl"
    assert names(tmp_path) == {"btc.json", old_name}
    artifact.write_pair(tmp_path / "btc.json", NEW_MODEL, metadata_for(NEW_MODEL))
    new_name = metadata_for(NEW_MODEL)["model_file"]
    assert names(tmp_path) == {"btc.json", new_name}  # the old model removed once nothing names it
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o644"}  # readable by the API
    metadata, model = artifact.read_pair(tmp_path / "btc.json")
    assert metadata == metadata_for(NEW_MODEL) and model.history is not None


def test_writing_over_a_format_2_pair_removes_its_model_and_nothing_else(previous):
    eth = {name: data for name, data in contents(previous).items() if name.startswith("eth.")}
    artifact.write_pair(previous / "btc.json", NEW_MODEL, metadata_for(NEW_MODEL))
    assert names(previous) == {"btc.json", metadata_for(NEW_MODEL)["model_file"], *eth}
    assert {name: data for name, data in contents(previous).items() if name.startswith("eth.")} == eth


def test_the_metadata_must_name_its_model_by_content(tmp_path):
    for wrong in ({"model_file": "btc.pkl"}, {"model_sha256": "0" * 64}):
        with pytest.raises(ValueError, match="must name the model's sha256"):
            artifact.write_pair(tmp_path / "btc.json", NEW_MODEL, {**metadata_for(NEW_MODEL), **wrong})
    assert names(tmp_path) == set()


@pytest.mark.parametrize("failing", ["model", "metadata"])
def test_a_failed_write_leaves_the_previous_pair_and_nothing_else(previous, monkeypatch, failing):
    """A full disk, simulated in this process (tests/test_train_folder.py fills a real one)."""
    before = contents(previous)
    real_replace = artifact.pair._replace

    def replace_or_fail(final, content):
        if (final.suffix == ".json") == (failing == "metadata"):
            raise OSError(28, "No space left on device")
        real_replace(final, content)

    monkeypatch.setattr(artifact.pair, "_replace", replace_or_fail)
    with pytest.raises(OSError, match="No space left"):
        artifact.write_pair(previous / "btc.json", NEW_MODEL, metadata_for(NEW_MODEL))
    assert contents(previous) == before  # byte-identical, no new model, no temp file


def write_and_die(folder: Path, sources: Path, kill_at: int) -> subprocess.CompletedProcess:
    """tests/crash_writer.py: write the new pair into `folder`, SIGKILLed before call `kill_at`."""
    return subprocess.run(
        [sys.executable, "-m", "tests.crash_writer", str(folder / "btc.json"),
         str(sources / "model.pkl"), str(sources / "metadata.json"), str(kill_at)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_a_writer_killed_at_any_step_leaves_a_pair_the_api_reads(previous, tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "model.pkl").write_bytes(NEW_MODEL)
    (sources / "metadata.json").write_text(json.dumps(metadata_for(NEW_MODEL)))
    dry_run = shutil.copytree(previous, tmp_path / "dry-run")
    completed = write_and_die(dry_run, sources, 0)
    assert completed.returncode == 0, completed.stderr
    calls = int(completed.stdout)
    assert calls >= 9  # temp files, syncs and renames of both files, the old model's removal

    served = []
    for kill_at in range(1, calls + 1):
        folder = shutil.copytree(previous, tmp_path / f"killed-at-{kill_at}")
        result = write_and_die(folder, sources, kill_at)
        assert result.returncode == -signal.SIGKILL, (kill_at, result.stderr)
        # The API's reader: the metadata, the model file it names, its sha256, the unpickled model.
        # (Precomputing every answer from it is the API's own tests' business, not the pair's.)
        metadata, model = artifact.read_pair(folder / "btc.json")
        assert model.history is not None
        served.append(metadata["model_sha256"])
        # The next write finishes the job and leaves no orphan or temp file behind.
        artifact.write_pair(folder / "btc.json", NEW_MODEL, metadata_for(NEW_MODEL))
        assert names(folder) == {"btc.json", metadata_for(NEW_MODEL)["model_file"], "eth.json", "eth.pkl"}
    old, new = hashlib.sha256(OLD_MODEL).hexdigest(), hashlib.sha256(NEW_MODEL).hexdigest()
    commit = served.index(new)  # the old pair up to the metadata's rename, the new one from there
    assert served == [old] * commit + [new] * (calls - commit) and commit > 0


def test_a_reader_racing_a_writer_reads_the_new_pair(previous, monkeypatch):
    """The writer commits and removes the old model between the reader's two reads."""
    real_read_model = artifact.read_model

    def read_model_after_a_commit(path, sha256):
        monkeypatch.setattr(artifact.pair, "read_model", real_read_model)
        artifact.write_pair(previous / "btc.json", NEW_MODEL, metadata_for(NEW_MODEL))
        return real_read_model(path, sha256)

    monkeypatch.setattr(artifact.pair, "read_model", read_model_after_a_commit)
    metadata, model = artifact.read_pair(previous / "btc.json")
    assert metadata["model_sha256"] == hashlib.sha256(NEW_MODEL).hexdigest()
    assert model.history is not None


def test_a_pair_replaced_under_every_read_is_refused(previous, monkeypatch):
    versions = iter([metadata_for(NEW_MODEL), metadata_for(OLD_MODEL)] * artifact.READ_ATTEMPTS)

    def read_model_while_replaced(path, sha256):
        (previous / "btc.json").write_text(json.dumps(next(versions)))
        raise artifact.ModelError(f"model {path} cannot be read")

    monkeypatch.setattr(artifact.pair, "read_model", read_model_while_replaced)
    with pytest.raises(artifact.ModelError, match="changed 3 times while it was read"):
        artifact.read_pair(previous / "btc.json")


NOT_PLAIN = ["../btc.pkl", "/etc/btc.pkl", "sub/btc.pkl", "sub\\btc.pkl", ".btc.pkl", "btc.json", 7, None]


@pytest.mark.parametrize("model_file", NOT_PLAIN)
def test_the_model_file_must_be_a_plain_pkl_name_in_the_folder(tmp_path, model_file):
    (tmp_path / "btc.json").write_text(json.dumps({**metadata_for(NEW_MODEL), "model_file": model_file}))
    with pytest.raises(artifact.ModelError, match=r"is not a plain \.pkl file name in the model folder"):
        artifact.read_pair(tmp_path / "btc.json")


def test_metadata_without_a_model_file_names_the_assets_pkl(tmp_path):
    """Formats 1 and 2 name no file: their model is <asset>.pkl (tests/test_golden.py serves them)."""
    metadata = metadata_for(NEW_MODEL)
    metadata.pop("model_file")
    (tmp_path / "btc.json").write_text(json.dumps(metadata))
    (tmp_path / "btc.pkl").write_bytes(NEW_MODEL)
    assert artifact.read_pair(tmp_path / "btc.json")[1].history is not None
