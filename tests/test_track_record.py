"""The model card's evaluation under clear names, and the sentence made from its numbers."""

from __future__ import annotations

import json

from serving.track_record import held_less_well, summary, track_record
from tests import golden


def row(stretch: str, h: int, coverage: float | None, ci=None, level: int = 80, origins: int = 100) -> dict:
    made = {
        "stretch": stretch, "horizon_days": h, "level": level, "origins": origins, "windows": 10.0,
        "coverage": coverage, "coverage_ci": ci, "trivial_coverage": None, "winkler_ratio": None,
        "pinball_ratio": None, "note": None if coverage is not None else "not enough data",
    }  # fmt: skip
    return made | {"held_less_well": None if coverage is None else held_less_well(made)}


def test_the_card_has_one_coverage_table_under_clear_names(golden_client):
    card = golden_client.get("/models/btc").get_json()
    record = card["track_record"]
    assert record["level"] == 80
    rows = record["coverage"]
    assert len(rows) == 2 * 6 * 4  # stretches, horizons, levels
    assert set(rows[0]) == {
        "stretch", "horizon_days", "level", "origins", "windows", "coverage", "coverage_ci",
        "trivial_coverage", "winkler_ratio", "pinball_ratio", "note", "held_less_well",
    }  # fmt: skip
    eth = golden_client.get("/models/eth").get_json()["track_record"]["coverage"]
    short = {(r["stretch"], r["horizon_days"]) for r in eth if r["level"] == 80 and r["held_less_well"]}
    assert short == {("final", 30), ("final", 90), ("final", 180)}
    day_ahead = next(r for r in rows if (r["stretch"], r["horizon_days"], r["level"]) == ("all", 1, 80))
    assert (day_ahead["origins"], day_ahead["coverage"]) == (363, 0.7934)
    assert day_ahead["coverage_ci"] == [0.7488, 0.8319]
    backtest = card["backtest"]
    text = json.dumps(card)
    assert "interval_width" not in text  # a level, not a width: the rows say level
    assert '"coverage"' not in json.dumps(backtest)  # the track record is the one coverage table
    assert {(e["model"], e["horizon_days"]) for e in backtest["point_errors"]} == {
        (model, h) for model in ("held-trend", "naive", "drift") for h in (1, 7, 30, 90)
    }
    held_trend = [e for e in backtest["point_errors"] if e["model"] == "held-trend"]
    assert [e["horizon_days"] for e in held_trend] == [1, 7, 30, 90]
    assert held_trend[0]["mape"] == 1.4064


def test_the_sentence_is_made_from_the_golden_numbers(golden_client):
    eth = golden_client.get("/models/eth").get_json()["track_record"]["summary"]
    assert eth == (
        "The 80% band should hold the close about 8 times in 10: in 235 past tests, each forecasting "
        "from the data up to its day only, it held 76% to 96% of the time from 1 day to 365 days ahead, "
        "but less well in the most recent stretch at 30 days (68%), 90 days (66%) and 180 days (50%)."
    )
    btc = golden_client.get("/models/btc").get_json()["track_record"]["summary"]
    assert btc.endswith("it held 79% to 100% of the time from 1 day to 365 days ahead, and at no horizon "
                        "tested did it fall clearly short.")  # fmt: skip


def test_the_sentence_follows_the_numbers_not_a_script():
    fine = [row("all", 1, 0.81, [0.75, 0.86]), row("all", 30, 0.78, [0.6, 0.9])]
    assert summary(fine).endswith("it held 78% to 81% of the time from 1 day to 30 days ahead, and at no "
                                  "horizon tested did it fall clearly short.")  # fmt: skip
    below_by_chance = [*fine, row("final", 7, 0.74, [0.55, 0.86])]  # 6 points short, CI holds 80%
    assert summary(below_by_chance) == summary(fine)
    clearly_short = [*fine, row("all", 90, 0.75, [0.7, 0.79]), row("final", 7, 0.6, [0.4, 0.9])]
    assert summary(clearly_short).endswith(
        "but less well overall at 90 days (75%) and in the most recent stretch at 7 days (60%)."
    )
    other_levels_say_nothing = [*fine, row("all", 1, 0.2, [0.1, 0.3], level=50)]
    assert summary(other_levels_say_nothing) == summary(fine)


def test_too_little_data_or_no_backtest_says_so():
    assert summary([row("all", 1, None)]) == (
        "The 80% band should hold the close about 8 times in 10; there is not enough past data yet to "
        "say how often it did."
    )
    assert track_record(None) is None and track_record({"chosen": "held-trend"}) is None
    one = summary([row("all", 1, 0.8, [0.7, 0.9], origins=12)])
    assert "in 12 past tests" in one and "from 1 day ahead" in one


def test_the_metadata_keeps_what_the_card_renames():
    metadata = json.loads((golden.GOLDEN_MODELS / "btc.json").read_text())
    record = track_record(metadata["backtest"])
    assert len(record["coverage"]) == len(metadata["backtest"]["intervals"])
    assert [r["horizon_days"] for r in record["coverage"]] == [
        r["h"] for r in metadata["backtest"]["intervals"]
    ]


def test_the_document_describes_the_card(golden_client):
    schemas = golden_client.get("/openapi.json").get_json()["components"]["schemas"]
    row_doc = schemas["CoverageRow"]["properties"]
    assert "95% confidence interval" in row_doc["coverage_ci"]["description"]
    assert "not enough data" in row_doc["coverage"]["description"]
    assert "promises" in row_doc["level"]["description"]
    assert "summary" in schemas["TrackRecord"]["properties"]
