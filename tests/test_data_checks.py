"""The data checks on the real snapshots: every kind of corruption a feed or a hand produces is refused
with a line naming the day and the values, and the model the API serves stays as it was.

Each case corrupts a copy of a bundled snapshot and trains on it (training.pipeline.train_asset,
--no-backtest: every check runs before any fit) into a folder holding a previous model whose
metadata came from that same file, so that the history check runs too. The clean snapshots pass.
tests/test_train_faults.py sends corruptions through the Alpaca path (the same checks).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifact import read_pair
from tests.conftest import ROOT
from tests.golden import GOLDEN_MODELS
from training import errors, pipeline
from training.data import anomalies, validation
from training.data.assets import Asset, load_panel
from training.data.history import previous_closes
from training.data.sources import load_snapshot

NOW = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)  # the day after the snapshots' newest bar
ASSETS = {
    "btc": Asset("btc", "Bitcoin", "BTC/USD", ROOT / "data" / "btc_usd_1d.csv"),
    "eth": Asset("eth", "Ethereum", "ETH/USD", ROOT / "data" / "eth_usd_1d.csv"),
}
DAY = "2025-06-10"  # a day well inside both histories
PRICES = ["open", "high", "low", "close"]


# ---------------------------------------------------------------- corruptions, on the CSV's text


def times(factor: float, columns=PRICES, day: str = DAY):
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        at = rows.timestamp == day
        for column in columns:
            rows.loc[at, column] = repr(float(rows.loc[at, column].iloc[0]) * factor)
        return rows

    return change


def newest(factor: float):
    return lambda rows: times(factor, day=rows.timestamp.iloc[-1])(rows)


def put(column: str, text: str, day: str = DAY):
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        rows.loc[rows.timestamp == day, column] = text
        return rows

    return change


def swap_first_digits(rows: pd.DataFrame) -> pd.DataFrame:
    """63801.199219 -> 36801.199219: the two leading digits typed the wrong way round."""
    at = rows.timestamp == "2024-03-05"
    close = rows.loc[at, "close"].iloc[0]
    rows.loc[at, "close"] = close[1] + close[0] + close[2:]
    return rows


def swap_columns(first: str, second: str):
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        at = rows.timestamp == DAY
        rows.loc[at, [first, second]] = rows.loc[at, [second, first]].to_numpy()
        return rows

    return change


def position(rows: pd.DataFrame, day: str = DAY) -> int:
    return int(np.flatnonzero(rows.timestamp == day)[0])


def repeat_week(rows: pd.DataFrame) -> pd.DataFrame:
    """The week from DAY again over the next week's dates: a feed replaying old bars."""
    i = position(rows)
    rows.iloc[i + 7 : i + 14, 1:] = rows.iloc[i : i + 7, 1:].to_numpy()
    return rows


def drop_day(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(rows.index[position(rows)])


def duplicate_day(rows: pd.DataFrame) -> pd.DataFrame:
    i = position(rows)
    return pd.concat([rows.iloc[: i + 1], rows.iloc[i : i + 1], rows.iloc[i + 1 :]])


def shift_date(rows: pd.DataFrame) -> pd.DataFrame:
    rows.loc[rows.timestamp == DAY, "timestamp"] = "2025-06-11"
    return rows


def swap_rows(rows: pd.DataFrame) -> pd.DataFrame:
    i = position(rows)
    return pd.concat([rows.iloc[:i], rows.iloc[[i + 1, i]], rows.iloc[i + 2 :]])


def freeze(days: int):
    """`days` bars from DAY, each the bar before them flattened at its close: a feed that stopped."""

    def change(rows: pd.DataFrame) -> pd.DataFrame:
        i = position(rows)
        for column in PRICES:
            rows.iloc[i : i + days, rows.columns.get_loc(column)] = rows.close.iloc[i - 1]
        rows.iloc[i - 1, [rows.columns.get_loc(c) for c in PRICES]] = rows.close.iloc[i - 1]
        return rows

    return change


def zero_volume(days: int):
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        i = position(rows)
        rows.iloc[i : i + days, rows.columns.get_loc("volume")] = "0"
        return rows

    return change


def future_day(rows: pd.DataFrame) -> pd.DataFrame:
    last = rows.iloc[[-1]].copy()
    last["timestamp"] = (NOW.date() + timedelta(days=3)).isoformat()
    return pd.concat([rows, last])


def rewrite_close(rows: pd.DataFrame) -> pd.DataFrame:
    """DAY's close moved to the middle of its range: consistent, but not what the feed said before."""
    at = rows.timestamp == DAY
    rows.loc[at, "close"] = repr(
        (float(rows.loc[at, "high"].iloc[0]) + float(rows.loc[at, "low"].iloc[0])) / 2
    )
    return rows


def shift_all_dates(rows: pd.DataFrame) -> pd.DataFrame:
    rows["timestamp"] = (pd.to_datetime(rows.timestamp) + timedelta(days=1)).dt.strftime("%Y-%m-%d")
    return rows


@dataclass(frozen=True)
class Corruption:
    name: str
    change: Callable[[pd.DataFrame], pd.DataFrame]
    message: str  # a regular expression the error line must contain
    asset: str = "btc"
    operator_mistake: bool = False  # ConfigError (train.py exits 2), else DataError (exit 1)


IMPOSSIBLE = r"the bar of {} is impossible: its {} is outside the day's low to high \(open [\d.e+]+ high"
BAD_PRINT = r"bad print on {}: close {} between"
FROZEN = r"frozen feed: the close is [\d.]+ on {} days running, {} to"
REWRITTEN = (
    r"the feed rewrote history: the close of {} is {} now, {} in the model it would replace "
    r"\(.*btc.json\); {} of {} shared days differ"
)
CORRUPTIONS = [
    Corruption("close x1000", times(1000, ["close"]), IMPOSSIBLE.format(DAY, "close")),
    Corruption("close x0.001", times(0.001, ["close"]), IMPOSSIBLE.format(DAY, "close")),
    Corruption("whole bar x1000", times(1000), BAD_PRINT.format(DAY, "110257234.4")),
    Corruption("whole bar x0.001", times(0.001), BAD_PRINT.format(DAY, "110.2572344")),
    Corruption("eth whole bar x0.001", times(0.001), BAD_PRINT.format(DAY, "2.813517578"), "eth"),
    Corruption(
        "newest bar x1000",
        newest(1000),
        r"the newest close, 73032757.81 on 2026-08-20, is \d+ times the asset's daily volatility",
    ),
    Corruption(
        "the close of the issue, 69,268,250, on the newest day",
        put("close", "69268250", "2026-08-20"),
        IMPOSSIBLE.format("2026-08-20", "close") + r" 73369.80469 low 68867.53125 close 69268250",
    ),
    Corruption("close 1e300", put("close", "1e300"), IMPOSSIBLE.format(DAY, "close")),
    Corruption(
        "swapped digits", swap_first_digits, IMPOSSIBLE.format("2024-03-05", "close") + r".* close 36801.1992"
    ),
    Corruption("a lone zero", put("close", "0"), rf"non-positive prices, first on {DAY}: .* close 0$"),
    Corruption("a negative close", put("close", "-110257.234375"), rf"non-positive prices, first on {DAY}"),
    Corruption("an empty close", put("close", ""), rf"missing \(NaN\) prices, first on {DAY}: .* close nan"),
    Corruption("a NaN close", put("close", "NaN"), rf"missing \(NaN\) prices, first on {DAY}"),
    Corruption("an infinite close", put("close", "inf"), rf"infinite prices, first on {DAY}: .* close inf"),
    Corruption(
        "high below low", swap_columns("high", "low"), rf"the bar of {DAY} is impossible: its low is above"
    ),
    Corruption("open above high", put("open", "120000"), IMPOSSIBLE.format(DAY, "open")),
    Corruption("eth open above high", put("open", "3000"), IMPOSSIBLE.format(DAY, "open"), "eth"),
    Corruption(
        "a repeated week",
        repeat_week,
        r"replayed bars: the closes of 2025-06-17 to 2025-06-21 repeat those of 2025-06-10 to 2025-06-14",
    ),
    Corruption("a gap", drop_day, rf"1 day\(s\) missing from the bars, first {DAY} \(between 2025-06-09 and"),
    Corruption("a duplicated day", duplicate_day, rf"1 day\(s\) appear twice, first {DAY} \(open"),
    Corruption("a shifted date", shift_date, r"1 day\(s\) appear twice, first 2025-06-11"),
    Corruption(
        "two days swapped", swap_rows, r"bars are not sorted by day: 2025-06-10 comes after 2025-06-11"
    ),
    Corruption("frozen closes", freeze(10), FROZEN.format(11, "2025-06-09")),
    Corruption("eth frozen closes", freeze(6), FROZEN.format(7, "2025-06-09"), "eth"),
    Corruption("zero volume for 5 days", zero_volume(5), rf"no trades: volume 0 on 5 days running, {DAY} to"),
    Corruption("a negative volume", put("volume", "-5"), rf"the volume of {DAY} is -5: not a finite"),
    Corruption("a day in the future", future_day, r"a bar is dated 2026-08-24, after today \(2026-08-21 UTC"),
    Corruption(
        "rewritten history", rewrite_close, REWRITTEN.format(DAY, r"109373.9\d*", "110257.2344", 1, 4356)
    ),
    Corruption(
        "all dates shifted a day", shift_all_dates, r"the feed rewrote history: the close of 2014-09-18"
    ),
    Corruption(
        "the newest days lost",
        lambda rows: rows.iloc[:-3],
        r"the feed lost days: its newest bar is 2026-08-17",
    ),
    Corruption("too few rows", lambda rows: rows.iloc[-100:], r"only 100 complete daily bars; at least 365"),
    Corruption(
        "a close that is not a number",
        put("close", "110,257.23"),
        rf"snapshot .* is malformed: close on data row 3920 \({DAY}\) is '110,257.23', not a number",
        operator_mistake=True,
    ),
    Corruption(
        "a date that is not a date",
        put("timestamp", "10/06/2025"),
        r"bad timestamp in bars: .10/06/2025. \(data row 3920\) is not an ISO 8601 date",
        operator_mistake=True,
    ),
]


# ---------------------------------------------------------------- the run


def snapshot_rows(asset: str) -> pd.DataFrame:
    return pd.read_csv(ASSETS[asset].snapshot, dtype=str, keep_default_na=False)


def previous_model(folder: Path, asset: str, snapshot: Path) -> Path:
    """The golden pair of `asset`, its metadata saying it was trained on `snapshot` (the clean closes)."""
    folder.mkdir()
    metadata = json.loads((GOLDEN_MODELS / f"{asset}.json").read_text())
    metadata["origin"] = str(snapshot)
    (folder / f"{asset}.json").write_text(json.dumps(metadata))
    shutil.copy2(GOLDEN_MODELS / f"{asset}.pkl", folder / f"{asset}.pkl")
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def options(folder: Path, repair: bool = False) -> pipeline.Options:
    return pipeline.Options("snapshot", date(2015, 1, 1), folder, 365, 365, 3, backtest=False, repair=repair)


def corrupted(tmp_path: Path, asset: str, change) -> tuple[Asset, Path]:
    """The asset trained from a corrupted copy of its snapshot, into a folder holding its previous model."""
    snapshot = tmp_path / ASSETS[asset].snapshot.name
    change(snapshot_rows(asset)).to_csv(snapshot, index=False)
    folder = previous_model(tmp_path / "models", asset, snapshot)
    source = ASSETS[asset]
    return Asset(source.key, source.name, source.symbol, snapshot), folder


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c.name for c in CORRUPTIONS])
def test_each_corruption_is_refused_and_the_previous_model_kept(corruption: Corruption, tmp_path):
    asset, folder = corrupted(tmp_path, corruption.asset, corruption.change)
    before = contents(folder)
    expected = errors.ConfigError if corruption.operator_mistake else errors.DataError
    with pytest.raises(expected) as refused:
        pipeline.train_asset(asset, options(folder), NOW)
    line = str(refused.value)
    print(f"\n{corruption.name}: {type(refused.value).__name__}: {line}")
    assert "\n" not in line and re.search(corruption.message, line), line
    assert contents(folder) == before  # nothing written: the API serves the previous model
    metadata, _ = read_pair(folder / f"{asset.key}.json")
    assert metadata["model_sha256"] == json.loads(before[f"{asset.key}.json"])["model_sha256"]


def test_there_are_at_least_twenty_kinds_of_corruption():
    kinds = {c.name.removeprefix("eth ") for c in CORRUPTIONS}
    assert len(kinds) >= 20


@pytest.mark.parametrize(
    "snapshot",
    [ASSETS["btc"].snapshot, ASSETS["eth"].snapshot, *(a.snapshot for a in load_panel().values())],
    ids=lambda path: path.name,
)
def test_the_clean_snapshots_pass(snapshot):
    bars = load_snapshot(snapshot).frame
    checked = validation.checked_closes(bars, min_rows=365, max_stale_days=None, now=NOW)
    assert len(checked.frame) == len(bars) and checked.repairs == []
    assert (checked.frame.y.to_numpy() == bars.close.to_numpy()).all()


def test_a_clean_snapshot_retrains_over_a_model_of_the_same_history(tmp_path):
    asset, folder = corrupted(tmp_path, "eth", lambda rows: rows)
    metadata = pipeline.train_asset(asset, options(folder), NOW)
    assert metadata["repairs"] == {"allowed": False, "made": []}
    assert read_pair(folder / "eth.json")[0]["model_sha256"] == metadata["model_sha256"]


# ---------------------------------------------------------------- repairs, only when asked


def checked(asset: str, change, repair: bool = True, previous=None) -> validation.Checked:
    rows = change(snapshot_rows(asset))
    frame = rows.assign(**{c: rows[c].astype(float) for c in [*PRICES, "volume"]})
    bars = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.timestamp), name="day"))[[*PRICES, "volume"]]
    return validation.checked_closes(
        bars, min_rows=365, max_stale_days=None, now=NOW, previous=previous, repair=repair
    )


def test_a_bad_print_is_repaired_with_its_neighbours_geometric_mean():
    result = checked("btc", times(1000))
    clean = load_snapshot(ASSETS["btc"].snapshot).frame.close
    day = pd.Timestamp(DAY)
    neighbours = clean[day - pd.Timedelta(days=1)] * clean[day + pd.Timedelta(days=1)]
    assert result.repairs == [
        {"kind": "bad print", "day": DAY, "was": clean[day] * 1000, "now": float(np.sqrt(neighbours))}
    ]
    assert result.frame.set_index("ds").y[day] == pytest.approx(np.sqrt(neighbours))


def test_a_close_outside_its_range_is_clipped_to_it():
    result = checked("btc", times(1000, ["close"]))
    assert [(r["kind"], r["day"], r["now"]) for r in result.repairs] == [
        ("close outside the day's range", DAY, 110380.125)  # the day's high
    ]


def test_an_exact_duplicate_is_dropped_and_a_different_one_refused():
    assert checked("btc", duplicate_day).repairs == [{"kind": "duplicate bar dropped", "day": DAY}]

    def different(rows: pd.DataFrame) -> pd.DataFrame:
        rows = duplicate_day(rows).reset_index(drop=True)
        rows.loc[position(rows) + 1, "close"] = "110000"  # the second copy only
        return rows

    with pytest.raises(errors.DataError, match=r"appear twice, first 2025-06-10 \(open"):
        checked("btc", different)


def test_a_frozen_feed_is_refused_even_when_repairing():
    with pytest.raises(errors.DataError, match="frozen feed") as refused:
        checked("btc", freeze(10))
    assert "--repair" not in str(refused.value)


def test_without_repair_the_refusal_says_it_exists():
    with pytest.raises(errors.DataError, match=r"bad print on .* \(train.py --repair would repair it"):
        checked("btc", times(1000), repair=False)


def test_more_than_five_repairs_are_refused():
    def six_prints(rows):
        for day in ("2024-01-10", "2024-02-10", "2024-03-10", "2024-04-10", "2024-05-10", "2024-06-10"):
            rows = times(1000, day=day)(rows)
        return rows

    with pytest.raises(
        errors.DataError, match=r"more than 5 bars need repair \(the last: bad print on 2024-06-10"
    ):
        checked("btc", six_prints)


def test_a_rewritten_history_is_accepted_only_with_repair_and_recorded(tmp_path):
    snapshot = tmp_path / "btc_usd_1d.csv"
    shutil.copy2(ASSETS["btc"].snapshot, snapshot)
    folder = previous_model(tmp_path / "models", "btc", snapshot)
    previous = previous_closes(folder / "btc.json", "snapshot", str(snapshot), "BTC/USD")
    with pytest.raises(errors.DataError, match=r"rewrote history.*--repair would accept it"):
        checked("btc", rewrite_close, repair=False, previous=previous)
    result = checked("btc", rewrite_close, previous=previous)
    assert [(r["kind"], r["day"], r["was"], r["days"]) for r in result.repairs] == [
        ("rewritten history accepted", DAY, 110257.234375, 1)
    ]


def test_a_repair_is_recorded_in_the_model_card(tmp_path):
    asset, folder = corrupted(tmp_path, "btc", times(0.001))
    metadata = pipeline.train_asset(asset, options(folder, repair=True), NOW)
    card = json.loads((folder / "btc.json").read_text())
    assert card["repairs"] == metadata["repairs"]
    assert card["repairs"]["allowed"] is True
    assert [(r["kind"], r["day"]) for r in card["repairs"]["made"]] == [("bad print", DAY)]
    closes = pd.Series(
        card["closes"]["values"], index=pd.date_range(card["closes"]["first_day"], periods=4356)
    )
    assert closes[DAY] == card["repairs"]["made"][0]["now"]


# ---------------------------------------------------------------- the thresholds


def test_the_thresholds_are_the_documented_ones():
    """docs/operations.md explains each; a change of one is a change of the documentation."""
    assert (anomalies.SPIKE_SIGMAS, anomalies.REVERSION, anomalies.JUMP_SIGMAS) == (20.0, 0.75, 10.0)
    assert (anomalies.VOLATILITY_DAYS, anomalies.MIN_VOLATILITY) == (60, 0.001)
    assert (anomalies.FROZEN_DAYS, anomalies.ZERO_VOLUME_DAYS, anomalies.REPEAT_DAYS) == (5, 3, 5)
    assert validation.MAX_REPAIRS == 5
