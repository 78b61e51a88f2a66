"""Judging backtested models: scores against naive, the served intervals, the choice and the gates."""

from __future__ import annotations

import logging
import math
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from artifact import SERVED_INTERVAL_WIDTH, SERVED_LEVEL, Interval
from training.errors import QualityError
from training.models.configs import CANDIDATES, Config
from training.models.forecasters import ProphetForecaster
from training.models.intervals import NO_POOL, Pool, calibrated_half_widths
from training.selection.backtest import (
    HORIZONS,
    MIN_EVAL_CUTOFFS,
    SPACING_DAYS,
    Backtest,
    daily_closes,
    run_backtest,
)
from training.selection.interval_checks import (
    COVERAGE_TARGET,
    GATE_HORIZONS,
    WINKLER_HORIZONS,
    interval_gate_failures,
    loss_difference_statistic,
    score_intervals,
)

log = logging.getLogger(__name__)

SELECTION_TOLERANCE = 0.005  # a later candidate must beat an earlier one by more than this
# The quality gate: a model is refused unless its backtest stays within these bounds.
GATE_MAX_MAPE_RATIO = 1.25  # MAPE at every horizon at most this times the naive forecast's
METRICS = ("mae", "mape", "mdape", "coverage", "width")


# ---------------------------------------------------------------- scores


def served_bounds(bt: Backtest, name: str, days_ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """The USD 80% interval each evaluated cutoff would have served, shape (evaluated, days_ahead):
    the forecaster's own bounds, as the API serves them (NaN where it serves none)."""
    paths, rows = bt.paths[name], list(bt.rows)
    if SERVED_LEVEL not in paths.lower:
        nothing = np.full((len(rows), days_ahead), np.nan)
        return nothing, nothing
    return paths.lower[SERVED_LEVEL][rows, :days_ahead], paths.upper[SERVED_LEVEL][rows, :days_ahead]


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
    """Point and interval metrics of one forecaster for 1..days_ahead days ahead."""
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


def dm_test(errors: np.ndarray, baseline: np.ndarray) -> dict:
    """Diebold-Mariano test of absolute errors against a baseline's on the same cutoffs.

    The cutoffs are SPACING_DAYS apart, so errors at up to that horizon do not overlap; the
    statistic is the mean loss difference over its standard error, two-sided, normal p-value.
    """
    difference = np.abs(errors) - np.abs(baseline)
    difference = difference[np.isfinite(difference)]
    statistic = loss_difference_statistic(difference, len(difference))
    return {
        "statistic": round(statistic, 3),
        "p_value": round(math.erfc(abs(statistic) / math.sqrt(2)), 4),
        "n": len(difference),
    }


def choose(
    scores: dict[str, Scores],
    candidates: list[Config],
    bt: Backtest | None = None,
    incumbent: str | None = None,
) -> tuple[Config, str]:
    """The configuration to serve and why.

    Without an incumbent (the model trained before on this folder), the first candidate in order
    of preference within SELECTION_TOLERANCE of the best score. With one, it stays unless another
    is better by more than the tolerance and significantly so (Diebold-Mariano at 5% on the
    30-day errors): retraining on data that only grew must not flip between near-equals.
    """
    ranked = {c.name: selection_score(scores[c.name], scores["naive"]) for c in candidates}
    best = min(ranked.values())
    preferred = next(c for c in candidates if ranked[c.name] <= best * (1 + SELECTION_TOLERANCE))
    kept = next((c for c in candidates if c.name == incumbent), None)
    if kept is None or bt is None:
        return preferred, "first candidate within the tolerance of the best score"
    if preferred.name == kept.name or ranked[preferred.name] > ranked[kept.name] * (1 - SELECTION_TOLERANCE):
        return kept, f"kept {kept.name}: no candidate is clearly better"
    test = dm_test(
        *(
            bt.paths[name].prediction[bt.rows, 29] - bt.actual[bt.rows, 29]
            for name in (preferred.name, kept.name)
        )
    )
    if test["p_value"] < 0.05 and test["statistic"] < 0:
        return (
            preferred,
            f"{preferred.name} replaces {kept.name}: significantly lower 30-day errors (p={test['p_value']})",
        )
    return (
        kept,
        f"kept {kept.name}: {preferred.name} scores better but not significantly (p={test['p_value']})",
    )


def gate_failures(
    bt: Backtest, model: Scores, naive: Scores, max_mape_ratio: float = GATE_MAX_MAPE_RATIO
) -> list[str]:
    """Why the point forecast's backtest cannot vouch for the model; empty when it passes."""
    failures = []
    if bt.evaluated < MIN_EVAL_CUTOFFS:
        failures.append(f"only {bt.evaluated} evaluated cutoffs, at least {MIN_EVAL_CUTOFFS} needed")
    for h in HORIZONS:
        mape, limit = model.mape[h - 1], max_mape_ratio * naive.mape[h - 1]
        if not mape <= limit:  # also catches NaN
            failures.append(f"MAPE at {h} d is {mape:.2f}%, above {max_mape_ratio:g} x naive ({limit:.2f}%)")
    return failures


@dataclass
class Choice:
    """What training serves: the chosen configuration, its calibrated intervals and the evidence."""

    config: Config
    interval: Interval
    summary: dict | None  # the compact backtest summary for the metadata; None: no backtest
    calibration: dict  # how each horizon's interval was calibrated, for the model card
    backtest: Backtest | None = None  # what the gate judged


def choose_and_check(
    frame: pd.DataFrame,
    candidates: list[Config] = CANDIDATES,
    jobs: int | None = None,
    max_mape_ratio: float = GATE_MAX_MAPE_RATIO,
    incumbent: str | None = None,
    pool: Pool = NO_POOL,
    executor: Executor | None = None,
) -> Choice:
    """Backtest the candidates, choose one and judge its served bands; QualityError if a gate refuses."""
    closes = daily_closes(frame)
    bt = run_backtest(frame, list(candidates), jobs=jobs, pool=pool, executor=executor)
    scores = {name: score(bt, name) for name in bt.paths}
    config, why = choose(scores, list(candidates), bt, incumbent)
    interval_scores, coverage = score_intervals(bt, config.name, SPACING_DAYS)
    failures = gate_failures(bt, scores[config.name], scores["naive"], max_mape_ratio)
    failures += interval_gate_failures(interval_scores, coverage)
    if failures:
        raise QualityError(f"the backtest of '{config.name}' fails the quality gate: " + "; ".join(failures))
    summary = backtest_summary(bt, scores, config, candidates, max_mape_ratio)
    summary["choice"] = {"previous": incumbent, "chosen": config.name, "why": why}
    summary["intervals"] = json_ready(interval_scores.drop(columns="winkler_worse").to_dict(orient="records"))
    summary["diebold_mariano"] = {
        str(h): dm_test(
            *(
                bt.paths[name].prediction[bt.rows, h - 1] - bt.actual[bt.rows, h - 1]
                for name in (config.name, "naive")
            )
        )
        for h in HORIZONS
    }
    served = interval_scores[(interval_scores.stretch == "all") & (interval_scores.level == SERVED_LEVEL)]
    log.info(
        "chose %s (%s): MAPE %s%% (naive %s%%) at %s days; 80%% interval covers %s at %s days",
        config.name, why,
        "/".join(f"{v:.1f}" for v in summary["models"][config.name]["mape"]),
        "/".join(f"{v:.1f}" for v in summary["models"]["naive"]["mape"]),
        "/".join(map(str, HORIZONS)),
        "/".join(f"{v:.0%}" for v in served.coverage), "/".join(map(str, served.h)),
    )  # fmt: skip
    choice = unjudged_choice(config, closes, pool, summary)
    choice.backtest = bt
    return choice


def json_ready(value):
    """The value with every NaN ("not enough data") as None: metadata is strict JSON."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def unjudged_choice(config: Config, closes: pd.Series, pool: Pool, summary: dict | None = None) -> Choice:
    """The configuration with the interval it serves after the closes, and how that was calibrated."""
    forecaster = ProphetForecaster(config, pool)
    return Choice(config, forecaster.interval(closes), summary, calibration_card(closes, pool))


def calibration_card(closes: pd.Series, pool: Pool) -> dict:
    """Which calibration each reported horizon's interval used, and why, for the model card."""
    _, own_share = calibrated_half_widths(closes, pool=pool)
    card = {"pool": list(pool.names) if pool.at(closes.index[-1]) else [], "horizons": {}}
    for h in (1, 7, 30, 90, 180, 365):
        share = float(own_share[h - 1])
        if share >= 1:
            how = "own history"
        elif share > 0:
            how = f"own history ({share:.0%}) shrunk towards the pooled assets ({1 - share:.0%})"
        else:
            how = "pooled assets only: too few of its own h-day windows"
        card["horizons"][str(h)] = {"own_share": round(share, 3), "calibration": how}
    return card


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
            "coverage_80": list(COVERAGE_TARGET),
            "coverage_horizons": [1, max(GATE_HORIZONS)],
            "winkler_horizons": list(WINKLER_HORIZONS),
        },
        "seconds": round(bt.seconds, 1),
    }
