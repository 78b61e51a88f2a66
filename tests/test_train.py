"""train.py: the real alpaca-py client against the fake Alpaca server, validation, atomic artifacts."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import api
import artifact
from artifact import LEVELS
from scripts.processes import free_port
from tests.conftest import model_file, run_train
from training import errors, pipeline
from training.data import validation
from training.data.assets import load_assets
from training.models import configs

NOW = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def model_files(model_dir, asset: str = "btc") -> dict[str, bytes]:
    """The asset's metadata and the model file it names."""
    return {p.name: p.read_bytes() for p in (model_file(model_dir, asset), model_dir / f"{asset}.json")}


def read_metadata(model_dir, asset: str = "btc") -> dict:
    return json.loads((model_dir / f"{asset}.json").read_text())


# ---------------------------------------------------------------- end to end


# Tests of the data path skip the backtest (--no-backtest): it is source-independent, and the
# fake server's data moves with today's date. The backtest is tested on the fixed snapshot below.


def test_trains_every_asset_from_alpaca_through_the_sdk(fake_alpaca, tmp_path):
    result = run_train(
        "--source", "alpaca", "--start", "2023-01-01", "--model-dir", str(tmp_path), "--no-backtest",
        env={"ALPACA_DATA_URL": fake_alpaca.url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    for asset, symbol in (("btc", "BTC/USD"), ("eth", "ETH/USD")):
        # The fake's newest bar is today's, still open: the newest training row is the one before.
        last_closed = date.fromisoformat(fake_alpaca.state.bars[symbol][-2]["t"][:10])
        metadata = read_metadata(tmp_path, asset)
        assert (metadata["asset"], metadata["symbol"]) == (asset, symbol)
        assert metadata["source"] == "alpaca"
        assert metadata["origin"] == fake_alpaca.url
        assert metadata["first_day"] == "2023-01-01"
        assert metadata["last_day"] == last_closed.isoformat()
        assert metadata["rows"] == (last_closed - date(2023, 1, 1)).days + 1
        model_bytes = model_file(tmp_path, asset).read_bytes()
        assert metadata["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
        assert metadata["format"] == 4
        assert metadata["model_file"] == f"{asset}.{metadata['model_sha256'][:16]}.pkl"
        assert metadata["serve"] == {
            "first_day": "2023-01-01",
            "last_day": (last_closed + timedelta(days=365)).isoformat(),
        }
        assert set(metadata["versions"]) >= {"python", "prophet", "pandas", "numpy", "alpaca-py"}
        assert metadata["trained_at"].endswith("Z")
        assert metadata["backtest"] is None and metadata["forecast"]["interval"] is None
        assert metadata["config"]["name"] == configs.DEFAULT_CONFIG.name
    assert {r["query"]["symbols"] for r in fake_alpaca.state.requests} == {"BTC/USD", "ETH/USD"}


def test_follows_pagination_and_sends_keys_when_set(fake_alpaca, tmp_path):
    fake_alpaca.state.page_size = 200
    secret = "fake-secret"  # noqa: S105  # nosec B105  # sent to the fake server only
    keys = {"ALPACA_API_KEY": "key-id", "ALPACA_SECRET_KEY": secret}
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--start", "2024-01-01", "--model-dir", str(tmp_path),
        "--no-backtest", env={"ALPACA_DATA_URL": fake_alpaca.url, **keys},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    requests = fake_alpaca.state.requests
    assert len(requests) >= 5  # > 1,000 days at 200 a page
    assert [r["query"].get("page_token") for r in requests[:3]] == [None, "200", "400"]
    assert all(r["headers"].get("APCA-API-KEY-ID") == "key-id" for r in requests)
    assert all(r["headers"].get("APCA-API-SECRET-KEY") == secret for r in requests)
    assert read_metadata(tmp_path)["rows"] > 1000


def test_trains_every_asset_on_the_snapshot(trained_model_dir):
    btc, eth = read_metadata(trained_model_dir, "btc"), read_metadata(trained_model_dir, "eth")
    assert (btc["source"], btc["origin"]) == ("snapshot", "data/btc_usd_1d.csv")
    assert (btc["first_day"], btc["last_day"], btc["rows"]) == ("2014-09-17", "2026-08-20", 4356)
    assert btc["serve"] == {"first_day": "2014-09-17", "last_day": "2027-08-20"}
    assert (eth["name"], eth["symbol"], eth["first_day"], eth["rows"]) == (
        "Ethereum",
        "ETH/USD",
        "2017-11-09",
        3207,
    )


def test_the_backtest_chooses_and_calibrates_the_served_configuration(trained_model_dir):
    for asset in ("btc", "eth"):
        metadata = read_metadata(trained_model_dir, asset)
        summary, config = metadata["backtest"], metadata["config"]
        # The bundled snapshot is fixed data: on it the backtest chooses the held trend for both.
        assert summary["chosen"] == config["name"] == "held-trend"
        assert config == configs.CANDIDATES[0].params()
        assert (summary["cutoffs"], summary["horizons"]) == (40, [1, 7, 30, 90])
        assert (summary["first_cutoff"], summary["last_cutoff"]) == ("2023-03-09", "2026-05-22")
        assert set(summary["candidates"]) == {c.name for c in configs.CANDIDATES}
        assert summary["candidates"]["held-trend"] == min(summary["candidates"].values())
        models = summary["models"]
        assert set(models) == {"held-trend", "naive", "drift"}
        assert all(len(values) == 4 for model in models.values() for values in model.values())
        assert set(models["naive"]) == {"mae", "mape", "mdape", "coverage", "width"}
        # What the quality gate vouched for.
        for model, naive in zip(models["held-trend"]["mape"], models["naive"]["mape"], strict=True):
            assert model <= summary["gate"]["max_mape_ratio"] * naive
        assert summary["seconds"] > 0
        assert summary["choice"] == {
            "previous": None,
            "chosen": "held-trend",
            "why": "first candidate within the tolerance of the best score",
        }
        assert set(summary["diebold_mariano"]) == {"1", "7", "30", "90"}
        rows = summary[
            "intervals"
        ]  # every level and reported horizon, over all origins and the final stretch
        assert {(r["stretch"], r["h"], r["level"]) for r in rows} >= {
            (stretch, h, level)
            for stretch in ("all", "final")
            for h in (1, 7, 30, 90, 180)
            for level in LEVELS
        }
        for row in rows:
            assert row["coverage_ci"][0] <= row["coverage"] <= row["coverage_ci"][1]
        served = {r["h"]: r for r in rows if r["stretch"] == "all" and r["level"] == 80}
        assert all(0.7 <= served[h]["coverage"] <= 0.9 for h in (1, 7, 30))
        assert all(served[h]["winkler_ratio"] < 1.0 for h in (1, 30, 90))
        contract = metadata["forecast"]
        assert (contract["target"], contract["hold_trend"], contract["past_days"]) == (
            "log_close",
            True,
            "close",
        )
        interval = contract["interval"]
        assert interval["levels"] == list(LEVELS) and interval["horizon_days"] == list(range(1, 366))
        for level in LEVELS:
            lower, upper = interval["lower"][str(level)], interval["upper"][str(level)]
            assert all(lo < 0 < hi for lo, hi in zip(lower, upper, strict=True))
        # Every validated close travels with the model, whatever window it was fitted on.
        assert len(metadata["closes"]["values"]) == metadata["rows"]


def test_the_quality_gate_refuses_a_model_and_keeps_the_previous_one(model_dir_copy):
    before = model_files(model_dir_copy)
    # A real backtest, held to an impossible standard: half the naive forecast's error.
    result = run_train(
        "--source", "snapshot", "--asset", "btc", "--candidate", "flat", "--max-mape-ratio", "0.5",
        "--model-dir", str(model_dir_copy),
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "training btc failed: the backtest of 'flat' fails the quality gate: MAPE at 1 d is" in errors[0]
    assert "above 0.5 x naive" in errors[0]
    assert "Traceback" not in result.stderr
    assert model_files(model_dir_copy) == before
    assert len(list(model_dir_copy.iterdir())) == 4  # no temp files left


def train_young_eth(fake_alpaca, tmp_path, days: int) -> subprocess.CompletedProcess:
    """ETH as if it had been listed `days` days ago: Alpaca serves only its last `days` days."""
    start = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
    return run_train(
        "--source", "alpaca", "--asset", "eth", "--start", start, "--candidate", "held-trend",
        "--model-dir", str(tmp_path), env={"ALPACA_DATA_URL": fake_alpaca.url},
    )  # fmt: skip


def serves_a_year_ahead(model_dir, metadata) -> bool:
    """create_app serves the model's whole next year, with bounds around every prediction."""
    first = date.fromisoformat(metadata["last_day"]) + timedelta(days=1)
    query = f"start={first}&end={first + timedelta(days=364)}"
    response = api.create_app(model_dir).test_client().get(f"/forecast/eth?{query}")
    days = response.get_json()["forecasts"]
    return (
        response.status_code == 200
        and len(days) == 365
        and all(0 < day["prediction_low"] < day["prediction"] < day["prediction_high"] for day in days)
    )


def test_an_asset_of_400_days_trains_and_serves_with_the_pooled_interval(fake_alpaca, tmp_path):
    result = train_young_eth(fake_alpaca, tmp_path, 400)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "too few for a backtest" in result.stderr
    metadata = read_metadata(tmp_path, "eth")
    assert metadata["rows"] == 400 and metadata["backtest"] is None
    calibration = metadata["calibration"]
    assert "btc" in calibration["pool"]
    assert calibration["horizons"]["1"] == {
        "own_share": 0.0,
        "calibration": "pooled assets only: too few of its own h-day windows",
    }
    assert serves_a_year_ahead(tmp_path, metadata)


def test_an_asset_of_three_years_is_backtested_gated_and_served(fake_alpaca, tmp_path):
    result = train_young_eth(fake_alpaca, tmp_path, 1148)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metadata = read_metadata(tmp_path, "eth")
    assert metadata["rows"] == 1148 and metadata["backtest"]["cutoffs"] == 24
    shares = {h: row["own_share"] for h, row in metadata["calibration"]["horizons"].items()}
    assert 0 < shares["1"] < 1 and shares["365"] == 0  # its own 1-day windows count; its own years do not
    rows = {(r["stretch"], r["h"]) for r in metadata["backtest"]["intervals"] if r["level"] == 80}
    assert rows == {(stretch, h) for stretch in ("all", "final") for h in (1, 7, 30, 90, 180, 365)}
    assert serves_a_year_ahead(tmp_path, metadata)


def test_unreachable_alpaca_fails_with_one_line_and_keeps_the_old_model(model_dir_copy):
    before = model_files(model_dir_copy)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--model-dir", str(model_dir_copy),
        env={"ALPACA_DATA_URL": url},
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert f"training btc failed: could not fetch bars from {url}: connection refused" in errors[0]
    assert "Traceback" not in result.stderr
    assert model_files(model_dir_copy) == before
    assert len(list(model_dir_copy.iterdir())) == 4  # no temp files left


def test_one_failing_asset_does_not_stop_the_others(fake_alpaca, model_dir_copy):
    fake_alpaca.state.bars["ETH/USD"][-10]["c"] = -5.0
    eth_before, btc_before = model_files(model_dir_copy, "eth"), model_files(model_dir_copy, "btc")
    result = run_train(
        "--source", "alpaca", "--start", "2024-01-01", "--model-dir", str(model_dir_copy), "--no-backtest",
        env={"ALPACA_DATA_URL": fake_alpaca.url},
    )  # fmt: skip
    assert result.returncode == 1
    assert "training eth failed: non-positive prices" in result.stderr
    assert model_files(model_dir_copy, "eth") == eth_before
    assert model_files(model_dir_copy, "btc") != btc_before
    assert read_metadata(model_dir_copy, "btc")["source"] == "alpaca"


def test_auto_falls_back_to_the_snapshot_loudly(tmp_path):
    result = run_train(
        "--source", "auto", "--asset", "eth", "--model-dir", str(tmp_path), "--no-backtest",
        env={"ALPACA_DATA_URL": f"http://127.0.0.1:{free_port()}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "TRAINING ETH/USD ON THE BUNDLED SNAPSHOT" in result.stderr
    assert read_metadata(tmp_path, "eth")["source"] == "snapshot"


def test_help_describes_the_options():
    result = run_train("--help")
    assert result.returncode == 0
    options = ["--source", "--asset", "--start", "--model-dir", "--horizon-days", "ALPACA_DATA_URL"]
    options += ["--candidate", "--max-mape-ratio", "--jobs", "--no-backtest"]
    for option in options:
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--start", "2024-13-01"], "--start"),
        (["--asset", "doge"], "--asset"),
        (["--candidate", "prophet-defaults"], "--candidate"),
        (["--max-mape-ratio", "0"], "--max-mape-ratio"),
        (["--horizon-days", "0"], "--horizon-days: must be from 1 to 3650 days; got 0"),
        (["--horizon-days", "3000000"], "--horizon-days: must be from 1 to 3650 days; got 3000000"),
        (["--horizon-days", "1e3"], "--horizon-days: invalid horizon_days value: '1e3'"),
    ],
)
def test_rejects_bad_arguments(args, complaint):
    result = run_train(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_a_served_range_larger_than_the_api_holds_is_refused_before_the_backtest(monkeypatch, caplog):
    """Ten years of horizon fit beside 17 years of history; past that, training refuses up front."""
    options = pipeline.Options("snapshot", date(2015, 1, 1), Path("unused"), 3650, 365, 3)
    frame = validate(daily_bars(days=artifact.MAX_SERVED_DAYS - 3650), max_stale_days=None)
    pipeline.check_served_range(frame, 3650)  # exactly the limit
    with pytest.raises(errors.TrainingError, match=r"would serve 10001 days .* more than the 10000"):
        pipeline.check_served_range(frame, 3651)
    # In a run: the snapshot's 4,356 days and 3,650 more, held to a lower limit, stop before any fit.
    monkeypatch.setattr(pipeline, "MAX_SERVED_DAYS", 8000)
    with caplog.at_level("INFO"), pytest.raises(errors.TrainingError, match="would serve 8006 days"):
        pipeline.train_asset(load_assets()["btc"], options, NOW)
    assert not [r for r in caplog.records if "backtest" in r.getMessage() or "fitting" in r.getMessage()]


def test_assets_come_from_the_configuration():
    assets = load_assets()
    assert {key: a.symbol for key, a in assets.items()} == {"btc": "BTC/USD", "eth": "ETH/USD"}
    assert all(a.snapshot.is_file() for a in assets.values())


# ---------------------------------------------------------------- validation


def daily_bars(days: int = 400, end: str = "2026-08-20") -> pd.DataFrame:
    index = pd.date_range(end=end, periods=days, freq="D", name="day")
    prices = pd.Series(range(100, 100 + days), index=index, dtype=float)
    return pd.DataFrame(
        {"open": prices, "high": prices + 1, "low": prices - 1, "close": prices, "volume": 1.0}
    )


def validate(bars: pd.DataFrame, max_stale_days: int | None = 3) -> pd.DataFrame:
    return validation.validate_bars(bars, min_rows=365, max_stale_days=max_stale_days, now=NOW)


def test_valid_bars_become_prophet_input():
    frame = validate(daily_bars())
    assert list(frame.columns) == ["ds", "y"]
    assert len(frame) == 400 and frame.ds.iloc[-1] == pd.Timestamp("2026-08-20")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b.iloc[:100], "only 100 complete daily bars"),
        (lambda b: b.iloc[::-1], "not sorted"),
        (lambda b: pd.concat([b.iloc[:200], b.iloc[199:]]), "appear twice, first 2026-02-01"),
        (lambda b: b.drop(b.index[150]), "1 day(s) missing from the bars, first 2025-12-14"),
        (
            lambda b: b.assign(close=b.close.where(b.index != "2026-03-01")),
            "NaN) prices, first on 2026-03-01",
        ),
        (
            lambda b: b.assign(low=b.low.where(b.index != "2026-04-01", 0.0)),
            "non-positive prices, first on 2026-04-01",
        ),
        (lambda b: b.iloc[:-5], "newest bar is 2026-08-15, 6 days old"),
    ],
)
def test_refuses_bad_bars(damage, message):
    with pytest.raises(errors.TrainingError, match=re.escape(message)):
        validate(damage(daily_bars()))


def test_the_snapshot_is_exempt_from_staleness():
    assert len(validate(daily_bars().iloc[:-30], max_stale_days=None)) == 370


def test_drops_the_still_open_day():
    bars = daily_bars(end="2026-08-21")
    assert validation.drop_open_day(bars, NOW).index[-1] == pd.Timestamp("2026-08-20")
    assert len(validation.drop_open_day(bars, NOW + timedelta(days=1))) == 400
