"""train.py and api.py against an operator's mistakes: each is one ERROR line, exit 2, no traceback,
before any work, as a bad argument is (argparse's exit 2).

assets.toml is read from the project folder: the cases that break it run a copy of the training
code (train.py, training/, artifact/, assets.toml; data/ linked) in a temporary folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, refused_start, run_train
from tests.golden import GOLDEN_MODELS
from training import workers

QUICK = ("--source", "snapshot", "--asset", "btc", "--no-backtest")
DUPLICATE_BTC = '\n[bitcoin]\nname = "Bitcoin, again"\nsymbol = "BTC/USD"\nsnapshot = "data/btc_usd_1d.csv"\n'


def project_copy(tmp_path: Path) -> Path:
    """The training code and assets.toml in a folder of their own; the bundled data linked."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("train.py", "assets.toml"):
        shutil.copy2(ROOT / name, root / name)
    for package in ("artifact", "training"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").symlink_to(ROOT / "data")
    return root


def run_copy(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), **(env or {})},
    )


def refused(result: subprocess.CompletedProcess) -> str:
    """The one ERROR line of a run refused with exit 2 before it read a bar or fitted a model."""
    errors = [line.split(" ERROR ")[-1] for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "fitting" not in result.stderr, result.stderr
    return errors[0]


def edited_assets(tmp_path: Path, edit) -> Path:
    root = project_copy(tmp_path)
    assets = root / "assets.toml"
    assets.write_text(edit(assets.read_text()))
    return root


# ---------------------------------------------------------------- assets.toml


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            lambda text: text + DUPLICATE_BTC,
            "train: assets.toml: [btc] and [bitcoin] both have symbol 'BTC/USD'; each asset needs its own",
        ),
        (lambda text: text.replace("[eth]", "[eth"), "train: assets.toml is not valid TOML: "),
        (lambda text: text.replace("[eth]", "[btc]"), "train: assets.toml is not valid TOML: Cannot declare"),
        (
            lambda text: text.replace('symbol = "ETH/USD"', ""),
            "train: assets.toml: [eth] lacks 'symbol' (each asset needs name, symbol, snapshot)",
        ),
        (
            lambda text: text.replace('name = "Ethereum"', "name = 42"),
            "train: assets.toml: [eth] name must be a non-empty string",
        ),
        (lambda text: text.replace("[eth]", "[../eth]"), "train: assets.toml is not valid TOML"),
        (lambda text: text.replace("[eth]", '["../eth"]'), "train: assets.toml: [../eth] is not usable"),
        (lambda text: "# nothing\n", "train: assets.toml lists no asset: add a table such as [btc]"),
    ],
    ids=["duplicate symbol", "syntax error", "a table twice", "missing key", "a number as name",
         "a bare path as key", "a path as key", "no asset"],
)  # fmt: skip
def test_a_broken_assets_file_is_refused_before_any_work(tmp_path, edit, line):
    root = edited_assets(tmp_path, edit)
    result = run_copy(root, *QUICK, "--model-dir", str(tmp_path / "models"))
    assert refused(result).startswith(line), result.stderr
    assert not (tmp_path / "models").exists()  # refused before the model folder was even made


def test_duplicate_symbols_are_refused_even_for_another_asset(tmp_path):
    root = edited_assets(tmp_path, lambda text: text + DUPLICATE_BTC)
    result = run_copy(root, "--source", "snapshot", "--asset", "eth", "--model-dir", str(tmp_path / "m"))
    assert "both have symbol 'BTC/USD'" in refused(result)


def test_help_still_works_with_a_good_assets_file(tmp_path):
    result = run_copy(project_copy(tmp_path), "--help")
    assert result.returncode == 0 and "--repair" in result.stdout


# ---------------------------------------------------------------- a malformed snapshot, metadata


def test_a_snapshot_with_a_close_that_is_not_a_number_is_refused(tmp_path):
    root = project_copy(tmp_path)
    (root / "data").unlink()
    (root / "data").mkdir()
    lines = (ROOT / "data" / "btc_usd_1d.csv").read_text().splitlines()
    fields = lines[100].split(",")  # data row 100
    lines[100] = ",".join([*fields[:4], "73k", fields[5]])
    (root / "data" / "btc_usd_1d.csv").write_text("\n".join(lines) + "\n")
    result = run_copy(root, *QUICK, "--model-dir", str(tmp_path / "models"))
    assert refused(result) == (
        f"train: training btc failed: snapshot {root / 'data' / 'btc_usd_1d.csv'} is malformed: close on "
        f"data row 100 ({fields[0]}) is '73k', not a number"
    )


def golden_pair(folder: Path, edit) -> Path:
    """The golden BTC pair (trained on data/btc_usd_1d.csv), its metadata edited."""
    folder.mkdir()
    metadata = json.loads((GOLDEN_MODELS / "btc.json").read_text())
    (folder / "btc.json").write_text(edit(metadata))
    shutil.copy2(GOLDEN_MODELS / "btc.pkl", folder / "btc.pkl")
    return folder


def with_closes(values):
    def edit(metadata: dict) -> str:
        metadata["closes"]["values"] = values
        return json.dumps(metadata)

    return edit


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda metadata: json.dumps(metadata)[:-10], "JSONDecodeError"),
        (with_closes(["abc"] * 4356), "could not convert string to float: 'abc'"),
        (with_closes([-1.0] * 4356), "ModelError: metadata closes must be positive, finite numbers"),
        (with_closes({"2024-01-01": 1.0}), "float() argument must be a string or a real number"),
        (lambda metadata: json.dumps({**metadata, "closes": "all of them"}), "TypeError"),
    ],
    ids=["cut short", "text closes", "negative closes", "closes as an object", "closes as a string"],
)
def test_a_previous_model_with_malformed_metadata_is_refused(tmp_path, edit, problem):
    folder = golden_pair(tmp_path / "models", edit)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    result = run_train(*QUICK, "--model-dir", str(folder))
    line = refused(result)
    assert line.startswith(
        f"train: training btc failed: previous model metadata {folder / 'btc.json'} is malformed"
    )
    assert problem in line and "move the file away to train without that check" in line
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


# ---------------------------------------------------------------- MODEL_DIR


def test_an_empty_model_dir_is_refused_by_train(tmp_path):
    result = run_train(*QUICK, env={"MODEL_DIR": ""})
    assert (
        refused(result)
        == "train: MODEL_DIR is set but empty: set it to a folder, or unset it for the default 'models'"
    )
    assert not (ROOT / "btc.json").exists()


def test_an_empty_model_dir_option_is_refused_by_argparse():
    result = run_train(*QUICK, "--model-dir", " ")
    assert result.returncode == 2 and "--model-dir: must name a folder; got an empty string" in result.stderr


def test_an_empty_model_dir_is_refused_by_the_api(tmp_path):
    line = refused_start(tmp_path, MODEL_DIR="")
    assert line.endswith("api: MODEL_DIR is set but empty: set it to a folder, or unset it for 'models'")


# ---------------------------------------------------------------- --jobs


def test_jobs_are_capped_at_the_work_and_the_cores(caplog):
    cores = workers.usable_cores()
    with caplog.at_level(logging.INFO, logger="training.workers"):
        assert workers.process_count(100, 40) == min(40, cores)
    assert f"--jobs 100 capped at {min(40, cores)} (40 fits, {cores} cores)" in caplog.text
    assert workers.process_count(None, 40) == min(40, cores)  # one per core
    assert workers.process_count(3, 1) == 1
    assert workers.process_count(1, 40) == 1
    assert 1 <= cores <= (os.cpu_count() or 1)
