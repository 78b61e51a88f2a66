"""Old data never looks fresh: /health, /metrics and the startup lines say how old each model's data is.

On the golden models, whose newest bar is 2026-08-20.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime

import pytest

import api
from serving.freshness import health
from tests import golden
from tests.conftest import refused_start
from tests.test_routes import metric

AS_OF = date(2026, 8, 20)


@pytest.fixture(scope="module")
def models(golden_app):
    return golden_app.extensions["served_models"]


def test_data_within_the_limit_is_ok_and_older_data_is_stale(models):
    fresh = health(models, 3, today=date(2026, 8, 23))
    assert (fresh["status"], fresh["stale_assets"], fresh["max_data_age_days"]) == ("ok", [], 3)
    assert fresh["models"]["btc"]["data_age_days"] == 3
    stale = health(models, 3, today=date(2026, 8, 24))
    assert (stale["status"], stale["stale_assets"]) == ("stale", ["btc", "eth"])
    assert stale["models"]["eth"] == {
        "trained_at": "2026-12-01T01:21:50Z",
        "data_last_day": "2026-08-20",
        "data_age_days": 4,
        "source": "snapshot",
        "serves": {"first_day": "2017-11-09", "last_day": "2027-08-20"},
    }


def test_health_says_stale_with_a_200_and_follows_max_data_age_days(monkeypatch, golden_client):
    age = (datetime.now(UTC).date() - AS_OF).days
    response = golden_client.get("/health")
    assert response.status_code == 200  # a platform's health check must not restart it for old data
    body = response.get_json()
    assert (body["status"], body["stale_assets"]) == ("stale", ["btc", "eth"])
    assert body["models"]["btc"]["data_age_days"] == age
    monkeypatch.setenv("MAX_DATA_AGE_DAYS", str(age))
    lenient = api.create_app(golden.GOLDEN_MODELS).test_client().get("/health").get_json()
    assert (lenient["status"], lenient["stale_assets"], lenient["max_data_age_days"]) == ("ok", [], age)


def test_metrics_give_the_age_of_the_data_not_of_the_model(golden_client):
    text = golden_client.get("/metrics").get_data(as_text=True)
    newest_bar = datetime(2026, 8, 20, tzinfo=UTC).timestamp()
    for asset in ("btc", "eth"):
        age = metric(text, "data_age_seconds", asset=asset)
        assert age == pytest.approx(time.time() - newest_bar, abs=60)
        assert age > metric(text, "model_age_seconds", asset=asset)  # trained long after its data ended


def test_each_startup_line_names_the_source_and_the_data_age(caplog):
    age = (datetime.now(UTC).date() - AS_OF).days
    with caplog.at_level(logging.INFO, logger="serving"):
        api.create_app(golden.GOLDEN_MODELS)
    lines = [record for record in caplog.records if "model ready" in record.getMessage()]
    assert [record.getMessage().split(" ")[0] for record in lines] == ["btc", "eth"]
    for record in lines:
        assert f"snapshot data up to 2026-08-20 ({age} days old)" in record.getMessage()
        assert "stale: more than MAX_DATA_AGE_DAYS=3" in record.getMessage()
        assert record.levelno == logging.WARNING


def test_a_max_data_age_that_is_no_number_of_days_is_refused(tmp_path):
    line = refused_start(golden.GOLDEN_MODELS, MAX_DATA_AGE_DAYS="three")
    assert "MAX_DATA_AGE_DAYS='three' is not usable: give an integer" in line
