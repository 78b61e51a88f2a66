"""The series against itself: what a broken feed does to bars that are each consistent on their own.

Every threshold here comes from what a market open every day can and cannot do, not from the
bundled data (docs/operations.md, "Data checks", says the same in prose):

- The scale of a day's move is the asset's own robust volatility: 1.4826 x the median absolute
  deviation of its last VOLATILITY_DAYS daily log returns (the standard deviation, for normal
  returns, and blind to the few wild days a mean or a standard deviation would follow). Two months
  follow a change of regime and give a median to about 15%. It is floored at MIN_VOLATILITY,
  below any traded crypto asset's, so that a series of unchanged quotes cannot make any move
  look infinite.
- A bad print is a close far from the closes on both sides of it. Real days come close: a crash
  undone the next day moved about 10 such units in the bundled history (BTC on 2026-02-05, LUNA on
  2021-05-23), and daily crypto returns have tails like a Student t with 3 degrees of freedom,
  whose chance of a move 20 units wide is about 1 in 5,000 days, before asking that the next day
  undo three quarters of it. A wrong digit or a wrong unit (x1000, x0.001, 73032 -> 37032) is 50 to
  500 units for BTC. SPIKE_SIGMAS = 20 and REVERSION = 3/4.
- The newest close has no next day to undo it: a move of SPIKE_SIGMAS there waits for the next bar
  (the next run) before it is served, since every forecast starts from it.
- The market never closes, so a day's open is the previous day's close seconds later. A difference
  of JUMP_SIGMAS = 10 whole days' volatility between the two cannot be a market move; the feeds'
  own quirks (a close stamped at the wrong time) stay under 6.
- A close repeats the day before's with a chance of about tick / (volatility x sqrt(2 pi)): 4% for
  a tick of 0.1% of the price (4 significant digits) and 1% a day, 8% at most for the bundled
  assets quoted to 3 digits (PEPE, 5% a day). FROZEN_DAYS = 5 days with one close (4 repeats
  running, under 1 in 20,000) means the feed has stopped, whatever dates it puts on its bars.
- A day without trades has no price of its own, only the last one carried over; one such day can
  be an outage, ZERO_VOLUME_DAYS = 3 running means the market or the feed has stopped.
- REPEAT_DAYS = 5 whole bars (open, high, low and close) equal one for one to 5 earlier ones: 20
  prices repeating by chance, which no quoting precision makes plausible. A replay of old bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from training.data.bar_checks import Problem, bar_text, number

VOLATILITY_DAYS = 60  # trailing daily returns behind each day's volatility
MIN_VOLATILITY_DAYS = 30  # fewer returns in the whole series: no volatility, these checks are skipped
MIN_VOLATILITY = 0.001  # 0.1% a day
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation
SPIKE_SIGMAS = 20.0
REVERSION = 0.75  # a bad print's next close undoes at least this share of its move
JUMP_SIGMAS = 10.0
FROZEN_DAYS = 5
ZERO_VOLUME_DAYS = 3
REPEAT_DAYS = 5


def first_series_problem(bars: pd.DataFrame) -> Problem | None:
    """The first problem of the series, in the order: frozen feed, days without trades, a replayed
    stretch, a bad print, an unconfirmed newest spike, a jump between a close and the next open."""
    for check in (frozen_feed, zero_volume, replayed_stretch):
        if problem := check(bars):
            return problem
    closes = bars["close"].to_numpy(dtype=float)
    if len(closes) <= MIN_VOLATILITY_DAYS:
        return None
    sigma = volatility(closes)
    return bad_print(bars, sigma) or newest_spike(bars, sigma) or jump(bars, sigma)


def first_run(flags: np.ndarray, length: int) -> tuple[int, int] | None:
    """The first run of at least `length` True values: (its start, its length), or None."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(int), [0]))))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= length:
            return int(start), int(end - start)
    return None


def frozen_feed(bars: pd.DataFrame) -> Problem | None:
    """FROZEN_DAYS or more days running with the same close."""
    closes = bars["close"].to_numpy()
    run = first_run(np.concatenate(([False], closes[1:] == closes[:-1])), FROZEN_DAYS - 1)
    if run is None:
        return None
    start, length = run
    first, last = bars.index[start - 1], bars.index[start + length - 1]
    return Problem(
        "frozen feed",
        first,
        f"frozen feed: the close is {number(closes[start])} on {length + 1} days running, {first.date()} "
        f"to {last.date()} (a market moves; {FROZEN_DAYS} days with one close are refused)",
    )


def zero_volume(bars: pd.DataFrame) -> Problem | None:
    """ZERO_VOLUME_DAYS or more days running without a trade (when the bars have volumes)."""
    if "volume" not in bars.columns:
        return None
    run = first_run(bars["volume"].to_numpy(dtype=float) == 0, ZERO_VOLUME_DAYS)
    if run is None:
        return None
    start, length = run
    first, last = bars.index[start], bars.index[start + length - 1]
    return Problem(
        "days without trades",
        first,
        f"no trades: volume 0 on {length} days running, {first.date()} to {last.date()} (their closes "
        f"are the last price carried over; {ZERO_VOLUME_DAYS} such days are refused)",
    )


def replayed_stretch(bars: pd.DataFrame) -> Problem | None:
    """REPEAT_DAYS bars running whose prices equal, one for one, those of an earlier stretch of as many."""
    closes = bars["close"].to_numpy()
    prices = [tuple(row) for row in bars[["open", "high", "low", "close"]].to_numpy()]
    seen: dict[tuple, int] = {}
    for start in range(len(prices) - REPEAT_DAYS + 1):
        earlier = seen.setdefault(tuple(prices[start : start + REPEAT_DAYS]), start)
        if earlier != start:
            days, last = bars.index, REPEAT_DAYS - 1
            replayed = ", ".join(number(close) for close in closes[start : start + REPEAT_DAYS])
            return Problem(
                "replayed bars",
                days[start],
                f"replayed bars: the closes of {days[start].date()} to {days[start + last].date()} "
                f"repeat those of {days[earlier].date()} to {days[earlier + last].date()} "
                f"one for one, open, high, low and close (closes {replayed})",
            )
    return None


def volatility(closes: np.ndarray) -> np.ndarray:
    """Each day's robust volatility of daily log returns, from the VOLATILITY_DAYS returns before it.

    sigma[t] is the scale of the return from day t-1 to day t (sigma[0] is unused). The first
    VOLATILITY_DAYS days, which have fewer returns behind them, take the first VOLATILITY_DAYS
    returns' (the earliest the asset's own volatility can be known).
    """
    returns = np.diff(np.log(closes))
    head = returns[:VOLATILITY_DAYS]
    sigma = np.full(len(closes), mad_sigma(head[None, :])[0])
    if len(returns) > VOLATILITY_DAYS:
        windows = sliding_window_view(returns, VOLATILITY_DAYS)[:-1]  # returns t-60 .. t-1 for t >= 61
        sigma[VOLATILITY_DAYS + 1 :] = mad_sigma(windows)
    return np.maximum(sigma, MIN_VOLATILITY)


def mad_sigma(windows: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute deviation of each row."""
    median = np.median(windows, axis=1, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(windows - median), axis=1)


def moves(bars: pd.DataFrame, sigma: np.ndarray) -> np.ndarray:
    """Each day's log return from the day before, in units of its volatility (0 for the first day)."""
    closes = bars["close"].to_numpy(dtype=float)
    return np.concatenate(([0.0], np.diff(np.log(closes)))) / sigma


def bad_print(bars: pd.DataFrame, sigma: np.ndarray) -> Problem | None:
    """A close SPIKE_SIGMAS away from the day before whose next close undoes REVERSION of the move.

    The repair puts the geometric mean of the two neighbouring closes in its place, as a flat bar.
    """
    closes = bars["close"].to_numpy(dtype=float)
    logs = np.log(closes)
    move = logs[1:-1] - logs[:-2]  # day t from day t-1, for t = 1 .. n-2
    left = logs[2:] - logs[:-2]  # day t+1 from day t-1: what is left of the move a day later
    spikes = (np.abs(move) > SPIKE_SIGMAS * sigma[1:-1]) & (np.abs(left) <= (1 - REVERSION) * np.abs(move))
    if not spikes.any():
        return None
    t = int(spikes.argmax()) + 1
    days = bars.index
    repaired = float(np.sqrt(closes[t - 1] * closes[t + 1]))
    return Problem(
        "bad print",
        days[t],
        f"bad print on {days[t].date()}: close {number(closes[t])} between {number(closes[t - 1])} on "
        f"{days[t - 1].date()} and {number(closes[t + 1])} on {days[t + 1].date()}, a move of "
        f"{abs(move[t - 1]) / sigma[t]:.0f} times the asset's daily volatility ({sigma[t]:.4f}) undone the "
        f"next day (limit {SPIKE_SIGMAS:g})",
        repaired,
    )


def newest_spike(bars: pd.DataFrame, sigma: np.ndarray) -> Problem | None:
    """The newest close SPIKE_SIGMAS away from the day before: no later bar can confirm it yet."""
    size = abs(moves(bars, sigma)[-1])
    if size <= SPIKE_SIGMAS:
        return None
    days, closes = bars.index, bars["close"].to_numpy(dtype=float)
    return Problem(
        "unconfirmed spike",
        days[-1],
        f"the newest close, {number(closes[-1])} on {days[-1].date()}, is {size:.0f} times the asset's daily "
        f"volatility ({sigma[-1]:.4f}) from {number(closes[-2])} the day before (limit {SPIKE_SIGMAS:g}), "
        "and no later bar confirms it: every forecast would start from it",
    )


def jump(bars: pd.DataFrame, sigma: np.ndarray) -> Problem | None:
    """A day's open JUMP_SIGMAS days of volatility away from the previous close: a market that never
    closes has no overnight gap, so one of the two bars is wrong."""
    opens, closes = bars["open"].to_numpy(dtype=float), bars["close"].to_numpy(dtype=float)
    gaps = np.abs(np.log(opens[1:] / closes[:-1])) / sigma[1:]
    if not (gaps > JUMP_SIGMAS).any():
        return None
    t = int((gaps > JUMP_SIGMAS).argmax()) + 1
    days = bars.index
    return Problem(
        "jump between bars",
        days[t],
        f"the bars of {days[t - 1].date()} and {days[t].date()} do not meet: close {number(closes[t - 1])}, "
        f"then open {number(opens[t])}, {gaps[t - 1]:.0f} times the asset's daily volatility "
        f"({sigma[t]:.4f}) apart in a market that never closes (limit {JUMP_SIGMAS:g}; "
        f"{bar_text(bars, days[t - 1])}; then {bar_text(bars, days[t])})",
    )
