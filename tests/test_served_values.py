"""No wrong number is served: models whose prices are not finite or absurd are refused at load, in
one line; stray files in the model folder are ignored with a warning; malformed metadata is one line.

On copies of the golden models (tests/golden/models).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

import api
from serving.answers import compact_json
from tests import golden
from tests.conftest import refused_start


@pytest.fixture
def folder(tmp_path) -> Path:
    return Path(shutil.copytree(golden.GOLDEN_MODELS, tmp_path / "models"))


def edit(folder: Path, change, asset: str = "btc") -> None:
    path = folder / f"{asset}.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def test_a_level_offset_that_overflows_is_refused_not_served_as_infinity(folder):
    edit(folder, lambda m: m["forecast"].update(level_offset=1000.0))  # exp(1000) overflows
    line = refused_start(folder)
    assert "cannot start: model btc would serve a non-finite price for 2026-08-21" in line
    assert "check the forecast contract in" in line and "(level_offset, interval)" in line


def test_prices_absurd_against_the_models_own_closes_are_refused(folder):
    edit(folder, lambda m: m["forecast"].update(level_offset=7.0), asset="eth")  # x1097: finite, absurd
    line = refused_start(folder)
    assert "model eth would serve more than 100 times its highest close for 2026-08-21" in line


def test_no_answer_can_carry_a_non_finite_number():
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        compact_json({"prediction": float("inf")})


def test_metadata_holding_nan_or_infinity_is_refused(folder):
    path = folder / "btc.json"
    path.write_text(path.read_text().replace('"rows": 4356', '"rows": NaN', 1))
    assert "NaN is not a JSON number" in refused_start(folder)


@pytest.mark.parametrize(
    "closes",
    [{"first_day": "2014-09-17"}, {"first_day": "yesterday", "values": [1.0]}, {"values": "many"}, [1, 2]],
)
def test_malformed_closes_are_one_line(folder, closes):
    edit(folder, lambda m: m.update(closes=closes))
    assert "btc.json" in refused_start(folder)


def test_a_file_that_is_no_model_is_ignored_with_a_warning(folder, caplog):
    (folder / "notes.json").write_text('{"todo": "retrain eth"}')
    (folder / "package.json").write_text("not even JSON")
    with caplog.at_level(logging.WARNING, logger="serving.folder"):
        app = api.create_app(folder)
    assert set(app.extensions["served_models"]) == {"btc", "eth"}
    warned = sorted(record.getMessage() for record in caplog.records if record.name == "serving.folder")
    assert len(warned) == 2
    assert warned[0].startswith("ignoring ") and "notes.json: not a model's metadata" in warned[0]
    assert "package.json: not a model's metadata" in warned[1]
    assert app.test_client().get("/forecast/notes?date=2026-09-19").status_code == 404


def test_a_file_that_says_it_is_metadata_is_served_or_refused_never_skipped(folder):
    (folder / "btc.pkl").rename(folder / "elsewhere.bin")  # btc.json stays: its model is missing
    assert "btc.pkl cannot be read" in refused_start(folder)


def test_only_no_models_at_all_asks_for_training(tmp_path):
    (tmp_path / "notes.json").write_text("{}")
    assert "no model metadata (*.json) in" in refused_start(tmp_path)


def test_an_empty_model_dir_setting_is_refused(tmp_path):
    line = refused_start(tmp_path, MODEL_DIR="")
    assert "ERROR api: MODEL_DIR is set but empty: set it to a folder, or unset it for 'models'" in line
