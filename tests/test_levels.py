"""The `level` parameter: calibrated intervals at other levels, in JSON and CSV, and its errors."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from api import create_app
from tests import golden

DAY = "2027-01-15"


@pytest.fixture(scope="module")
def format2_client(tmp_path_factory):
    """The golden models with their metadata written as format 2: one calibrated level, 80%."""
    folder = Path(shutil.copytree(golden.GOLDEN_MODELS, tmp_path_factory.mktemp("format2") / "models"))
    for path in folder.glob("*.json"):
        metadata = json.loads(path.read_text())
        interval = metadata["forecast"]["interval"]
        metadata["forecast"]["interval"] = {
            "width": 0.8,
            "horizon_days": interval["horizon_days"],
            "lower": interval["lower"]["80"],
            "upper": interval["upper"]["80"],
        }
        path.write_text(json.dumps(metadata))
    return create_app(folder).test_client()


def test_without_level_the_answer_keeps_its_shape(client):
    body = client.get(f"/bitcoin?date={DAY}").get_json()
    assert set(body) == {"date", "prediction", "prediction_low", "prediction_high"}


def test_levels_give_nested_intervals_around_the_same_prediction(client):
    plain = client.get(f"/bitcoin?date={DAY}").get_json()
    body = client.get(f"/bitcoin?date={DAY}&level=95,50,80,90").get_json()
    assert body["date"] == plain["date"] and body["prediction"] == plain["prediction"]
    intervals = body["intervals"]
    assert [i["level"] for i in intervals] == [50, 80, 90, 95]  # ascending, whatever the order asked
    eighty = intervals[1]
    assert (eighty["low"], eighty["high"]) == (plain["prediction_low"], plain["prediction_high"])
    for narrow, wide in itertools.pairwise(intervals):
        assert wide["low"] <= narrow["low"] <= body["prediction"] <= narrow["high"] <= wide["high"]
    assert intervals[0]["low"] < intervals[-1]["high"]


def test_levels_in_csv_and_in_ranges(client):
    csv = client.get(
        f"/forecast/eth?start={DAY}&end=2027-01-17&level=50,95", headers={"Accept": "text/csv"}
    ).get_data(as_text=True)
    lines = csv.splitlines()
    assert lines[0] == "date,prediction,low_50,high_50,low_95,high_95,horizon_days,as_of,source"
    assert len(lines) == 4 and lines[1].startswith(f"{DAY},")
    ranged = client.get(f"/forecast/eth?start={DAY}&end=2027-01-17&level=50").get_json()
    one = client.get(f"/forecast/eth?date={DAY}&level=50").get_json()
    assert ranged["forecasts"][0] == {key: one[key] for key in ranged["forecasts"][0]}
    assert (ranged["as_of"], ranged["source"]) == (one["as_of"], one["source"])


def test_a_level_the_model_does_not_calibrate_is_refused(format2_client):
    response = format2_client.get(f"/bitcoin?date={DAY}&level=50")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "'level' takes interval levels in percent among 80, e.g. 50,95; got '50'"
    }
    assert format2_client.get(f"/bitcoin?date={DAY}&level=80").status_code == 200


@pytest.mark.parametrize("level", ["", "80%", "0.8", "99", "50,,95", "\uff18\uff10", "80 ", "-80", "1" * 50])
def test_bad_levels_get_a_400_that_says_what_is_accepted(client, level):
    response = client.get("/bitcoin", query_string={"date": DAY, "level": level})
    assert response.status_code == 400
    assert "'level' takes interval levels in percent among 50, 80, 90, 95" in response.get_json()["error"]


def test_level_given_twice_is_the_list_of_both(client):
    repeated = client.get(f"/bitcoin?date={DAY}&level=50&level=95")
    assert repeated.get_data() == client.get(f"/bitcoin?date={DAY}&level=50,95").get_data()
