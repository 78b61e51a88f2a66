"""Judging backtested models: the calibrated interval, scores against naive, the choice and the gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from artifact import SERVED_INTERVAL_WIDTH, Interval
from training.backtest import (
    HORIZONS,
    KNOTS,
    MIN_CALIBRATION,
    MIN_EVAL_CUTOFFS,
    SPACING_DAYS,
    Backtest,
    run_backtest,
)
from training.configs import CANDIDATES, Config
from training.errors import QualityError

log = logging.getLogger(__name__)

SELECTION_TOLERANCE = 0.005  # a later candidate must beat an earlier one by more than this
# The quality gate: a model is refused unless its backtest stays within these bounds.
GATE_MAX_MAPE_RATIO = 1.25  # MAPE at every horizon at most this times the naive forecast's
GATE_COVERAGE = (0.6, 0.95)  # coverage of the 80% interval at 7 and 30 days
GATE_COVERAGE_HORIZONS = (7, 30)
METRICS = ("mae", "mape", "mdape", "coverage", "width")


# ---------------------------------------------------------------- calibration


def calibrate(bt: Backtest, name: str, known_by: pd.Timestamp, scale_now: float) -> Interval | None:
    """The interval calibrated on the residuals known by `known_by`, scaled to today's volatility.

    At each knot: the 10% and 90% empirical quantiles of log(actual / prediction) divided by the
    volatility before each cutoff (a split-conformal interval without the small-sample
    inflation, which with tens of residuals would push the bounds out to the extreme residual).
    None when not even the first knot has MIN_CALIBRATION residuals.
    """
    prediction, tail = bt.paths[name].prediction, (1 - SERVED_INTERVAL_WIDTH) / 2
    horizons, lower, upper = [], [], []
    for h in KNOTS:
        known = (bt.cutoffs + pd.Timedelta(days=h)) <= known_by
        scores = np.log(bt.actual[known, h - 1] / prediction[known, h - 1]) / bt.scale[known]
        scores = scores[np.isfinite(scores)]
        if len(scores) < MIN_CALIBRATION:
            break
        low, high = np.quantile(scores, [tail, 1 - tail]) * scale_now
        horizons.append(h)
        lower.append(min(low, 0.0))  # the prediction stays inside its own interval
        upper.append(max(high, 0.0))
    if not horizons:
        return None
    # Uncertainty does not shrink with the horizon: keep the widest bound so far.
    lower = [round(float(v), 5) for v in np.minimum.accumulate(lower)]
    upper = [round(float(v), 5) for v in np.maximum.accumulate(upper)]
    return Interval(horizons, lower, upper)


def served_calibration(bt: Backtest, name: str, last_day: pd.Timestamp) -> Interval:
    """The interval to serve: every residual known at the end of the data, today's volatility."""
    interval = calibrate(bt, name, last_day, bt.scale_now)
    if interval is None:
        raise QualityError("too few backtest residuals to calibrate the interval")
    return interval


# ---------------------------------------------------------------- scores


def served_bounds(bt: Backtest, name: str, days_ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """The USD interval each evaluated cutoff would have served, shape (evaluated, days_ahead).

    Calibrated models use only the residuals known at that cutoff, as in production.
    """
    paths, ahead = bt.paths[name], np.arange(1, days_ahead + 1)
    config = bt.configs.get(name)
    if config is not None and not config.calibrate:
        return paths.lower[bt.rows, :days_ahead], paths.upper[bt.rows, :days_ahead]
    lows, highs = [], []
    for k in bt.rows:
        low, high = calibrate(bt, name, bt.cutoffs[k], bt.scale[k]).bounds(ahead)
        lows.append(paths.prediction[k, :days_ahead] * np.exp(low))
        highs.append(paths.prediction[k, :days_ahead] * np.exp(high))
    return np.vstack(lows), np.vstack(highs)


@dataclass
class Scores:
    """One model's metrics over the evaluated cutoffs, by days ahead (index 0: one day)."""

    mae: np.ndarray  # mean absolute error, USD
    mape: np.ndarray  # mean absolute percentage error, %
    mdape: np.ndarray  # median absolute percentage error, %
    coverage: np.ndarray  # share of actual closes inside the served interval, 0..1
    width: np.ndarray  # mean width of the interval relative to the prediction, %

    def at(self, h: int) -> dict[str, float]:
        return {metric: float(getattr(self, metric)[h - 1]) for metric in METRICS}


def score(bt: Backtest, name: str, days_ahead: int = max(HORIZONS)) -> Scores:
    """Point and interval metrics of one model for 1..days_ahead days ahead."""
    actual = bt.actual[bt.rows, :days_ahead]
    prediction = bt.paths[name].prediction[bt.rows, :days_ahead]
    low, high = served_bounds(bt, name, days_ahead)
    error = np.abs(prediction - actual)
    ape = 100 * error / actual
    return Scores(
        mae=error.mean(axis=0),
        mape=ape.mean(axis=0),
        mdape=np.median(ape, axis=0),
        coverage=((low <= actual) & (actual <= high)).mean(axis=0),
        width=(100 * (high - low) / prediction).mean(axis=0),
    )


def metrics_table(scores: dict[str, Scores]) -> pd.DataFrame:
    """One row per (model, days ahead) at the reported horizons."""
    rows = [{"model": name, "h": h, **s.at(h)} for name, s in scores.items() for h in HORIZONS]
    return pd.DataFrame(rows)


def selection_score(model: Scores, naive: Scores) -> float:
    """How the candidates are ranked: MAPE relative to the naive forecast's, averaged over HORIZONS."""
    return float(np.mean([model.mape[h - 1] / naive.mape[h - 1] for h in HORIZONS]))


# ---------------------------------------------------------------- choice and gate


def choose(scores: dict[str, Scores], candidates: list[Config]) -> Config:
    """The first candidate (in order of preference) within SELECTION_TOLERANCE of the best score.

    The tolerance keeps a 6-hourly retrain from switching configurations on noise.
    """
    ranked = {c.name: selection_score(scores[c.name], scores["naive"]) for c in candidates}
    best = min(ranked.values())
    return next(c for c in candidates if ranked[c.name] <= best * (1 + SELECTION_TOLERANCE))


def gate_failures(
    bt: Backtest, model: Scores, naive: Scores, max_mape_ratio: float = GATE_MAX_MAPE_RATIO
) -> list[str]:
    """Why the backtest cannot vouch for the model; empty when it passes the quality gate."""
    failures = []
    if bt.evaluated < MIN_EVAL_CUTOFFS:
        failures.append(f"only {bt.evaluated} evaluated cutoffs, at least {MIN_EVAL_CUTOFFS} needed")
    for h in HORIZONS:
        mape, limit = model.mape[h - 1], max_mape_ratio * naive.mape[h - 1]
        if not mape <= limit:  # also catches NaN
            failures.append(f"MAPE at {h} d is {mape:.2f}%, above {max_mape_ratio:g} x naive ({limit:.2f}%)")
    low, high = GATE_COVERAGE
    for h in GATE_COVERAGE_HORIZONS:
        coverage = model.coverage[h - 1]
        if not low <= coverage <= high:
            failures.append(f"80% interval covers {coverage:.0%} at {h} d, outside {low:.0%}-{high:.0%}")
    return failures


@dataclass
class Choice:
    """What training serves: the chosen configuration, its calibrated interval and the evidence."""

    config: Config
    interval: Interval
    summary: dict  # the compact backtest summary for the metadata


def choose_and_check(
    frame: pd.DataFrame,
    candidates: list[Config] = CANDIDATES,
    jobs: int | None = None,
    max_mape_ratio: float = GATE_MAX_MAPE_RATIO,
) -> Choice:
    """Backtest the candidates, choose one, calibrate its interval; QualityError if the gate refuses it."""
    bt = run_backtest(frame, list(candidates), jobs=jobs)
    scores = {name: score(bt, name) for name in bt.paths}
    config = choose(scores, list(candidates))
    failures = gate_failures(bt, scores[config.name], scores["naive"], max_mape_ratio)
    if failures:
        raise QualityError(f"the backtest of '{config.name}' fails the quality gate: " + "; ".join(failures))
    interval = served_calibration(bt, config.name, frame.ds.iloc[-1])
    summary = backtest_summary(bt, scores, config, candidates, max_mape_ratio)
    log.info(
        "chose %s: MAPE %s%% (naive %s%%) at %s days; 80%% interval covers %s",
        config.name,
        "/".join(f"{v:.1f}" for v in summary["models"][config.name]["mape"]),
        "/".join(f"{v:.1f}" for v in summary["models"]["naive"]["mape"]),
        "/".join(map(str, HORIZONS)),
        "/".join(f"{v:.0%}" for v in summary["models"][config.name]["coverage"]),
    )
    return Choice(config, interval, summary)


def backtest_summary(
    bt: Backtest, scores: dict[str, Scores], chosen: Config, candidates, max_mape_ratio: float
) -> dict:
    """The compact, JSON-ready backtest summary for the model's metadata and card."""
    shown = [chosen.name, "naive", "drift"]
    evaluated = bt.cutoffs[list(bt.rows)]
    return {
        "chosen": chosen.name,
        "cutoffs": bt.evaluated,
        "first_cutoff": evaluated[0].date().isoformat(),
        "last_cutoff": evaluated[-1].date().isoformat(),
        "spacing_days": SPACING_DAYS,
        "horizons": list(HORIZONS),
        "interval_width": SERVED_INTERVAL_WIDTH,
        "models": {
            name: {m: [round(scores[name].at(h)[m], 4) for h in HORIZONS] for m in METRICS} for name in shown
        },
        "candidates": {
            c.name: round(selection_score(scores[c.name], scores["naive"]), 4) for c in candidates
        },
        "gate": {
            "max_mape_ratio": max_mape_ratio,
            "coverage": list(GATE_COVERAGE),
            "coverage_horizons": list(GATE_COVERAGE_HORIZONS),
        },
        "seconds": round(bt.seconds, 1),
    }
