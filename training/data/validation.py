"""Checks on daily bars before anything is fitted on them: each refusal names the day and the values.

In order: the calendar (here: days not yet over, enough rows, sorted, each day once, no day
missing, fresh enough), each bar on its own (bar_checks.py), the series against itself
(anomalies.py: a frozen feed, days without trades, replayed bars, bad prints, an unconfirmed
newest spike, bars that do not meet), then the closes against the previous model's
(history.py). The Alpaca path and the snapshot path go through the same checks.

Refusing is the rule. With ``repair=True`` (train.py --repair) the problems that have a defined
repair are repaired instead, at most MAX_REPAIRS of them, and each is returned for the model
card: an exact duplicate bar is dropped, a close outside its day's range is clipped to it, a bad
print becomes the geometric mean of its neighbours, a rewritten history is accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from training.data.anomalies import first_series_problem
from training.data.bar_checks import Problem, first_bar_problem, number
from training.data.history import PreviousCloses, rewritten_history
from training.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_MIN_ROWS = 365  # fewer daily bars are refused: a year at least
# Repairs are for isolated glitches: a feed that needs more than this many is broken, not glitched.
MAX_REPAIRS = 5
REPAIR_HINT = " (train.py --repair would repair it, and the model card would say so)"


@dataclass
class Checked:
    """The bars' closes as Prophet's (ds, y) frame, and the repairs made to get them."""

    frame: pd.DataFrame
    repairs: list[dict] = field(default_factory=list)


def drop_open_day(bars: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Drop the bar of today (UTC), whose close is not final; refuse bars of days after today."""
    today = check_not_future(bars, now)
    open_rows = bars.index == today
    if open_rows.any():
        log.info("dropping %d bar(s) of days not yet closed (%s)", open_rows.sum(), today.date())
    return bars[~open_rows]


def check_not_future(bars: pd.DataFrame, now: datetime) -> pd.Timestamp:
    """Refuse bars dated after today (UTC); returns today."""
    today = pd.Timestamp(now.astimezone(UTC).date())
    future = bars.index > today
    if future.any():
        day = bars.index[future][0]
        raise DataError(
            f"a bar is dated {day.date()}, after today ({today.date()} UTC): the feed's clock or this "
            f"machine's is wrong ({future.sum()} such bar(s))"
        )
    return today


def validate_bars(
    bars: pd.DataFrame, *, min_rows: int, max_stale_days: int | None, now: datetime | None
) -> pd.DataFrame:
    """Check the bars and return Prophet's (ds, y) frame of daily closes, or raise DataError."""
    return checked_closes(bars, min_rows=min_rows, max_stale_days=max_stale_days, now=now).frame


def checked_closes(
    bars: pd.DataFrame,
    *,
    min_rows: int,
    max_stale_days: int | None,
    now: datetime | None,
    previous: PreviousCloses | None = None,
    repair: bool = False,
) -> Checked:
    """Every check in turn; the (ds, y) frame and the repairs made, or DataError naming the first problem."""
    checked = Checked(pd.DataFrame())
    if now is not None:
        check_not_future(bars, now)
    bars = check_calendar(bars, min_rows, checked.repairs if repair else None)
    if max_stale_days is not None:
        check_fresh(bars, max_stale_days, now)
    while problem := first_bar_problem(bars) or first_series_problem(bars):
        bars = repaired(bars, problem, checked.repairs if repair else None)
    closes = bars["close"].astype(float)
    repaired_now = frozenset(record["day"] for record in checked.repairs)
    if previous is not None and (rewrite := rewritten_history(closes, previous, repaired_now)):
        message, record = rewrite
        if not repair:
            raise DataError(message + REPAIR_HINT.replace("repair it", "accept it"))
        log.warning("--repair: %s; accepted", message)
        checked.repairs.append(record)
    checked.frame = pd.DataFrame({"ds": bars.index, "y": closes.to_numpy()})
    return checked


def check_calendar(bars: pd.DataFrame, min_rows: int, repairs: list[dict] | None) -> pd.DataFrame:
    """Enough rows, sorted, each day once (an exact copy dropped when repairing), no day missing."""
    if len(bars) < min_rows:
        raise DataError(f"only {len(bars)} complete daily bars; at least {min_rows} are needed")
    if not bars.index.is_monotonic_increasing:
        position = int((bars.index[1:] < bars.index[:-1]).argmax()) + 1
        raise DataError(
            f"bars are not sorted by day: {bars.index[position].date()} comes after "
            f"{bars.index[position - 1].date()}"
        )
    duplicated = bars.index.duplicated()
    if duplicated.any():
        day = bars.index[duplicated][0]
        copies = bars.loc[[day]]
        exact = len(copies.drop_duplicates()) == 1
        if repairs is None or not exact:
            values = "; ".join(
                " ".join(f"{column} {number(value)}" for column, value in row.items())
                for _, row in copies.iterrows()
            )
            raise DataError(
                f"{duplicated.sum()} day(s) appear twice, first {day.date()} ({values})"
                + (REPAIR_HINT.replace("repair it", "drop the exact copy") if exact else "")
            )
        for copy in bars.index[duplicated]:
            record_repair(repairs, {"kind": "duplicate bar dropped", "day": copy.date().isoformat()})
        bars = bars[~duplicated]
    missing = pd.date_range(bars.index[0], bars.index[-1], freq="D").difference(bars.index)
    if len(missing):
        raise DataError(
            f"{len(missing)} day(s) missing from the bars, first {missing[0].date()} "
            f"(between {bars.index[bars.index < missing[0]][-1].date()} and "
            f"{bars.index[bars.index > missing[0]][0].date()})"
        )
    return bars


def check_fresh(bars: pd.DataFrame, max_stale_days: int, now: datetime | None) -> None:
    """The newest bar at most `max_stale_days` old at `now` (the Alpaca path; a snapshot is old by design)."""
    if now is None:
        return
    age = (pd.Timestamp(now.astimezone(UTC).date()) - bars.index[-1]).days
    if age > max_stale_days:
        raise DataError(
            f"newest bar is {bars.index[-1].date()}, {age} days old (limit {max_stale_days}): "
            "the feed looks stale"
        )


def repaired(bars: pd.DataFrame, problem: Problem, repairs: list[dict] | None) -> pd.DataFrame:
    """The bars with the problem's repair made and recorded; DataError when refusing is the answer."""
    if problem.repaired_close is None:
        raise DataError(problem.message)
    if repairs is None:
        raise DataError(problem.message + REPAIR_HINT)
    was = float(bars.at[problem.day, "close"])
    now = problem.repaired_close
    record_repair(
        repairs, {"kind": problem.kind, "day": problem.day.date().isoformat(), "was": was, "now": now}
    )
    log.warning("--repair: %s; close %s -> %s", problem.message, number(was), number(now))
    bars = bars.copy()
    if problem.kind == "bad print":  # its whole bar was the print: a flat bar at the repaired close
        bars.loc[problem.day, ["open", "high", "low", "close"]] = now
    else:
        bars.loc[problem.day, "close"] = now
    return bars


def record_repair(repairs: list[dict], record: dict) -> None:
    """Add one repair to the list, or refuse when there would be more than MAX_REPAIRS."""
    if len(repairs) >= MAX_REPAIRS:
        raise DataError(
            f"more than {MAX_REPAIRS} bars need repair (the last: {record['kind']} on {record['day']}): "
            "a feed this broken is not repaired, it is refused"
        )
    repairs.append(record)
