"""reports/panel.md: the evaluation panel's tables, per asset and pooled, and the targets measured.

``python -m training.selection.panel_report`` (``make panel``) runs the panel and writes it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from artifact import LEVELS, SERVED_LEVEL
from training.data.assets import PROJECT_DIR
from training.models.configs import DEFAULT_CONFIG
from training.selection.backtest import Backtest, quiet_libraries
from training.selection.interval_checks import (
    FINAL_STRETCH_DAYS,
    independent_windows,
    pinball,
    wilson,
    winkler,
)
from training.selection.panel import LR_CRITICAL, PANEL_HORIZONS, PANEL_SPACING, AssetRun, run_panel

log = logging.getLogger(__name__)

TARGET_HORIZONS = (1, 7, 30, 90)


def origin_scores(bt: Backtest, h: int, level: int, final_only: bool = False) -> pd.DataFrame:
    """Per scored origin at h days: covered, and the served and trivial Winkler and pinball losses
    relative to the last close (origins where the trivial interval has no bounds are left out)."""
    name, trivial = DEFAULT_CONFIG.name, bt.paths["trivial"]
    rows = np.isfinite(bt.actual[:, h - 1]) & np.isfinite(trivial.lower[level][:, h - 1])
    if final_only:
        rows &= bt.cutoffs >= bt.data_end - pd.Timedelta(days=FINAL_STRETCH_DAYS)
    rows = np.flatnonzero(rows)
    last = bt.last_close[rows]
    outcome = bt.actual[rows, h - 1] / last
    low, high = (side[level][rows, h - 1] / last for side in (bt.paths[name].lower, bt.paths[name].upper))
    base_low, base_high = (side[level][rows, h - 1] / last for side in (trivial.lower, trivial.upper))
    return pd.DataFrame(
        {
            "origin": bt.cutoffs[rows],
            "covered": (low <= outcome) & (outcome <= high),
            "winkler": winkler(low, high, outcome, level),
            "winkler_trivial": winkler(base_low, base_high, outcome, level),
            "pinball": pinball(low, high, outcome, level),
            "pinball_trivial": pinball(base_low, base_high, outcome, level),
        }
    )


def summary(frames: list[pd.DataFrame], h: int) -> dict:
    """Coverage with its Wilson CI (on the non-overlapping windows), Winkler and pinball ratios."""
    frames = [frame for frame in frames if len(frame) >= 2]
    if not frames:
        return {"origins": 0}
    joined = pd.concat(frames)
    windows = sum(independent_windows(pd.DatetimeIndex(frame.origin), h) for frame in frames)
    share = float(joined.covered.mean())
    return {
        "origins": len(joined),
        "coverage": share,
        "ci": wilson(share, windows),
        "winkler": float(joined.winkler.mean() / joined.winkler_trivial.mean()),
        "pinball": float(joined.pinball.mean() / joined.pinball_trivial.mean()),
    }


def cell(result: dict) -> str:
    if not result["origins"]:
        return "not enough data"
    low, high = result["ci"]
    return (
        f"{result['coverage']:.0%} [{low:.0%}-{high:.0%}] W {result['winkler']:.2f} P {result['pinball']:.2f}"
    )


def results(runs: list[AssetRun], level: int, final_only: bool = False) -> dict:
    """{asset key or "pooled": {h: summary}} at one level."""
    table = {}
    for h in PANEL_HORIZONS:
        frames = {run.asset.key: origin_scores(run.backtest, h, level, final_only) for run in runs}
        for key, frame in frames.items():
            table.setdefault(key, {})[h] = summary([frame], h)
        table.setdefault("pooled", {})[h] = summary(list(frames.values()), h)
    return table


def asset_table(runs: list[AssetRun], table: dict) -> list[str]:
    lines = ["| asset | category | days | " + " | ".join(f"{h} d" for h in PANEL_HORIZONS) + " |"]
    lines.append("|---|---|---:|" + "---|" * len(PANEL_HORIZONS))
    for run in runs:
        cells = [run.asset.symbol, run.asset.category or "bundled", str(run.days)]
        lines.append(
            "| " + " | ".join(cells + [cell(table[run.asset.key][h]) for h in PANEL_HORIZONS]) + " |"
        )
    lines.append("| **pooled** | | | " + " | ".join(cell(table["pooled"][h]) for h in PANEL_HORIZONS) + " |")
    return lines


def levels_table(by_level: dict) -> list[str]:
    lines = ["| level | " + " | ".join(f"{h} d" for h in PANEL_HORIZONS) + " |"]
    lines.append("|---:|" + "---:|" * len(PANEL_HORIZONS))
    for level, table in by_level.items():
        row = table["pooled"]
        values = [f"{row[h]['coverage']:.1%}" if row[h]["origins"] else "-" for h in PANEL_HORIZONS]
        lines.append(f"| {level}% | " + " | ".join(values) + " |")
    return lines


def tests_table(runs: list[AssetRun]) -> list[str]:
    lines = [
        "| asset | origins | "
        + " | ".join(f"{lv}%: misses, Kupiec LR, Christoffersen LR" for lv in LEVELS)
        + " |"
    ]
    lines.append("|---|---:|" + "---|" * len(LEVELS))
    for run in runs:
        cells = []
        for level in LEVELS:
            test = run.tests[level]
            flags = "".join(
                mark
                for mark, value in (("K", test["kupiec"]), ("C", test["christoffersen"]))
                if value > LR_CRITICAL
            )
            cells.append(
                f"{test['misses']} ({test['misses'] / test['n']:.0%}), {test['kupiec']:.2f}, "
                f"{test['christoffersen']:.2f}{' **rejects ' + flags + '**' if flags else ''}"
            )
        lines.append(f"| {run.asset.symbol} | {run.tests[SERVED_LEVEL]['n']} | " + " | ".join(cells) + " |")
    return lines


def targets(runs: list[AssetRun], by_level: dict) -> list[str]:
    """The issue's targets, each measured, met or missed and by how much."""
    served = by_level[SERVED_LEVEL]
    lines = []
    pooled = [served["pooled"][h]["coverage"] for h in TARGET_HORIZONS]
    missed = [f"{h} d {c:.1%}" for h, c in zip(TARGET_HORIZONS, pooled, strict=True) if not 0.75 <= c <= 0.85]
    lines.append(
        "- Pooled 80% coverage in 75-85% at 1/7/30/90 d: "
        + "/".join(f"{c:.1%}" for c in pooled)
        + (" — met." if not missed else f" — missed at {', '.join(missed)}.")
    )
    worst = []
    for run in runs:
        ratios = [served[run.asset.key][h].get("winkler", np.nan) for h in TARGET_HORIZONS]
        known = [r for r in ratios if np.isfinite(r)]
        over = [f"{h} d {r:.2f}" for h, r in zip(TARGET_HORIZONS, ratios, strict=True) if r > 1.05]
        if over or (known and np.mean(known) > 0.95):
            worst.append(
                f"{run.asset.symbol} (mean {np.mean(known):.2f}; above 1.05: {', '.join(over) or 'none'})"
            )
    lines.append(
        "- Every asset's Winkler <= 1.05x trivial at 1/7/30/90 d and <= 0.95x on average: "
        + ("met." if not worst else "missed by " + "; ".join(worst) + ".")
    )
    off = []
    for level in (50, 90, 95):
        for h in TARGET_HORIZONS:
            coverage = by_level[level]["pooled"][h]["coverage"]
            if abs(coverage - level / 100) > 0.05:
                off.append(f"{level}% at {h} d: {coverage:.1%}")
    lines.append(
        "- 50/90/95% levels within +-5 points pooled: "
        + ("met." if not off else "missed: " + ", ".join(off) + ".")
    )
    kept = [run for run in runs if run.tests[SERVED_LEVEL]["kupiec"] <= LR_CRITICAL]
    share = len(kept) / len(runs)
    lines.append(
        f"- 1-day Kupiec (80%) not rejected for {len(kept)} of {len(runs)} assets ({share:.0%}; target 80%): "
        + ("met." if share >= 0.8 else "missed.")
    )
    return lines


def write_panel_report(runs: list[AssetRun], out: Path, spacing: int) -> None:
    """Write the panel's report to `out`."""
    by_level = {level: results(runs, level) for level in LEVELS}
    holdout = results(runs, SERVED_LEVEL, final_only=True)
    text = [
        "# The evaluation panel: the served interval on many assets",
        "",
        f"Generated by `make panel` (`python -m training.selection.panel`). The served configuration "
        f"(`{DEFAULT_CONFIG.name}` with its calibrated interval, through the same forecaster the API serves) "
        f"is fitted at rolling origins every {spacing} days, from the first day training accepts (a year of "
        "bars) on, on the closes up to each origin only; its interval borrows only from the *other* assets, "
        "and only from their closes before the origin's year. Data: the bundled snapshots and data/panel/ "
        "(data/panel/PROVENANCE.md).",
        "",
        "Each cell: 80% coverage [Wilson 95% CI on the non-overlapping windows], W = Winkler score and "
        "P = pinball loss as ratios to the trivial interval's (the last close times the quantiles of the "
        "h-day log returns of up to three years before; below 1 is better). Origins where the trivial "
        "interval has too little history for a horizon are left out at that horizon.",
        "",
        "## Targets",
        "",
        *targets(runs, by_level),
        "",
        "## 80% interval, every origin",
        "",
        *asset_table(runs, by_level[SERVED_LEVEL]),
        "",
        f"## 80% interval, holdout: origins in the last {FINAL_STRETCH_DAYS} days of each asset's data",
        "",
        *asset_table(runs, holdout),
        "",
        "## Every served level, pooled coverage",
        "",
        *levels_table(by_level),
        "",
        "## 1 day: Kupiec (proportion of misses) and Christoffersen (independence of consecutive misses)",
        "",
        f"Likelihood ratios, chi-square with one degree of freedom: above {LR_CRITICAL} rejects at 5%. "
        f"Consecutive misses are {spacing} days apart (the origins' spacing).",
        "",
        *tests_table(runs),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text))
    log.info("wrote %s", out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Judge the served forecaster on the evaluation panel.")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "reports" / "panel.md")
    parser.add_argument("--asset", action="append", help="only this asset (repeatable; default: all)")
    parser.add_argument("--spacing", type=int, default=PANEL_SPACING, help="days between origins")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    runs = run_panel(args.asset, args.spacing, args.jobs)
    write_panel_report(runs, args.out, args.spacing)
    return 0 if runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
