"""The backtest report: every candidate and reference on the bundled snapshots, with its plots.

``python -m training.report`` (``make report``) writes reports/backtest.md and its PNG files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from artifact import SERVED_INTERVAL_WIDTH as INTERVAL_WIDTH
from training.data.assets import PROJECT_DIR, load_assets
from training.data.sources import load_snapshot
from training.data.validation import DEFAULT_MIN_ROWS, validate_bars
from training.models.configs import CANDIDATES, REFERENCES, Config
from training.models.intervals import reference_pool
from training.pipeline import reference_closes
from training.selection.backtest import (
    HORIZONS,
    MIN_EVAL_CUTOFFS,
    SPACING_DAYS,
    Backtest,
    quiet_libraries,
    rolling_cutoffs,
    run_backtest,
)
from training.selection.evaluation import (
    GATE_MAX_MAPE_RATIO,
    SELECTION_TOLERANCE,
    Scores,
    choose,
    gate_failures,
    score,
    selection_score,
    served_bounds,
)
from training.selection.interval_checks import FINAL_STRETCH_DAYS, interval_gate_failures, score_intervals

log = logging.getLogger(__name__)


def snapshot_frame(asset_key: str):
    """An asset of assets.toml and its bundled snapshot as a validated (ds, y) frame."""
    asset = load_assets()[asset_key]
    bars = load_snapshot(asset.snapshot)
    frame = validate_bars(bars.frame, min_rows=DEFAULT_MIN_ROWS, max_stale_days=None, now=None)
    return asset, frame


def markdown_table(scores: dict[str, Scores], notes: dict[str, str]) -> str:
    """All models at all reported horizons, as a Markdown table."""
    lines = [
        "| model | days ahead | MAE (USD) | MAPE | median APE | 80% interval coverage | interval width |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in scores.items():
        for h in HORIZONS:
            m = s.at(h)
            cells = [f"{name}{notes.get(name, '')}", str(h), f"{m['mae']:,.0f}", f"{m['mape']:.2f}%"]
            cells += [f"{m['mdape']:.2f}%", f"{m['coverage']:.1%}", f"{m['width']:.1f}%"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_report(bt: Backtest, scores: dict[str, Scores], chosen: str, asset_key: str, out) -> list[str]:
    """Forecast vs actual, error by horizon and coverage by horizon, as PNG files; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    h = 30
    days = bt.cutoffs[list(bt.rows)] + pd.Timedelta(days=h)
    low, high = served_bounds(bt, chosen, h)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(days, bt.actual[bt.rows, h - 1], "k.-", lw=1, label="actual close")
    prediction = bt.paths[chosen].prediction[bt.rows, h - 1]
    ax.errorbar(
        days, prediction, yerr=[prediction - low[:, -1], high[:, -1] - prediction],
        fmt="o", ms=4, capsize=2, label=f"{chosen}: forecast made {h} days before, 80% interval",
    )  # fmt: skip
    ax.plot(days, bt.paths["naive"].prediction[bt.rows, h - 1], "x", color="grey", label="naive (last close)")
    ax.set(
        ylabel="USD", title=f"{asset_key.upper()}: {h}-day-ahead forecasts at each cutoff vs the actual close"
    )
    ax.legend(loc="upper left", fontsize=8)
    names.append(_save(fig, out, f"{asset_key}_forecast_vs_actual.png"))

    ahead = np.arange(1, max(HORIZONS) + 1)
    for metric, label in (("mape", "MAPE (%)"), ("coverage", "coverage of the 80% interval")):
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for name, s in scores.items():
            style = {"lw": 1}
            if name == chosen:
                style = {"lw": 3, "alpha": 0.6}
            elif name in ("naive", "drift"):  # drawn over the served model, which often matches naive
                style = {
                    "lw": 1.2,
                    "ls": "--",
                    "zorder": 3,
                    "color": "black" if name == "naive" else "orange",
                }
            ax.plot(ahead, getattr(s, metric), label=name, **style)
        if metric == "coverage":
            ax.axhspan(0.75, 0.85, color="green", alpha=0.1, label="target 75-85%")
            ax.axhline(INTERVAL_WIDTH, color="green", lw=1)
            ax.set_ylim(0, 1.02)
        ax.set(xlabel="days ahead", ylabel=label, title=f"{asset_key.upper()}: {label} by horizon")
        ax.legend(fontsize=8, ncol=2)
        names.append(
            _save(fig, out, f"{asset_key}_{'error' if metric == 'mape' else 'coverage'}_by_horizon.png")
        )
    return names


def _save(fig, out, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def asset_report(asset_key: str, out, jobs: int | None) -> str:
    """Backtest one asset's candidates and references on its snapshot; its Markdown section."""
    asset, frame = snapshot_frame(asset_key)
    cutoffs, _ = rolling_cutoffs(frame.ds)
    pool = reference_pool(reference_closes(asset), {cutoff.year for cutoff in cutoffs})
    bt = run_backtest(frame, [*CANDIDATES, *REFERENCES], jobs=jobs, pool=pool)
    scores = {name: score(bt, name) for name in bt.paths}
    chosen, _ = choose(scores, list(CANDIDATES))
    interval_scores, coverage = score_intervals(bt, chosen.name, SPACING_DAYS)
    failures = gate_failures(bt, scores[chosen.name], scores["naive"])
    failures += interval_gate_failures(interval_scores, coverage)
    ranked = {c.name: selection_score(scores[c.name], scores["naive"]) for c in CANDIDATES}
    evaluated = bt.cutoffs[list(bt.rows)]
    notes = {chosen.name: " (served)", **{r.name: " (reference)" for r in REFERENCES}}
    plots = plot_report(bt, scores, chosen.name, asset_key, out)
    return "\n".join(
        [
            f"## {asset.name} ({asset.symbol})",
            "",
            f"Data: `{asset.snapshot.relative_to(asset.snapshot.parents[1])}`, {len(frame)} days, "
            f"{frame.ds.iloc[0].date()} to {frame.ds.iloc[-1].date()}. {bt.evaluated} evaluated cutoffs "
            f"from {evaluated[0].date()} to {evaluated[-1].date()} (every {SPACING_DAYS} days). "
            f"Backtest of {len(bt.configs)} configurations: {bt.seconds:.0f} s.",
            "",
            f"**Served: `{chosen.name}`** ({_describe(chosen)}). Selection scores (mean over 1/7/30/90 days "
            "of MAPE / naive MAPE; lower is better): "
            + ", ".join(f"{name} {value:.3f}" for name, value in ranked.items())
            + ". Quality gate: "
            + ("passed." if not failures else "FAILED: " + "; ".join(failures)),
            "",
            target_line(scores[chosen.name], scores["naive"]),
            "",
            markdown_table(scores, notes),
            "",
            "The served configuration's bands at the same cutoffs, exactly as the API would have "
            f"served them ('final': the cutoffs in the last {FINAL_STRETCH_DAYS} days of the data, "
            "reported on their own; reports/panel.md judges them at far more origins and assets). "
            "Coverage with its Wilson 95% interval on the "
            "non-overlapping windows; Winkler and pinball as a ratio to the trivial interval's (below 1 "
            "is better):",
            "",
            interval_table(interval_scores),
            "",
            *[f"![{name}]({name})" for name in plots],
            "",
        ]
    )


def interval_table(scores: pd.DataFrame) -> str:
    """Coverage, Winkler and pinball ratios by stretch, horizon and level, as a Markdown table."""
    columns = ["stretch", "days ahead", "level", "origins", "windows", "coverage [95% CI]"]
    columns += ["trivial coverage", "Winkler / trivial", "pinball / trivial"]
    lines = ["| " + " | ".join(columns) + " |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for row in scores.sort_values(["stretch", "h", "level"]).itertuples():
        if row.note:  # a horizon with fewer than two scored cutoffs
            lines.append(f"| {row.stretch} | {row.h} | {row.level}% | {row.origins} | | {row.note} | | | |")
            continue
        ci = f"{row.coverage:.1%} [{row.coverage_ci[0]:.0%}-{row.coverage_ci[1]:.0%}]"
        cells = [
            row.stretch,
            row.h,
            f"{row.level}%",
            row.origins,
            row.windows,
            ci,
            f"{row.trivial_coverage:.1%}",
        ]
        cells += [f"{row.winkler_ratio:.3f}", f"{row.pinball_ratio:.3f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def target_line(model: Scores, naive: Scores) -> str:
    """The issue's targets, measured: coverage at 7 and 30 days in 75-85%, 30-day MAPE vs naive."""
    coverage = [model.coverage[h - 1] for h in (7, 30)]
    within = all(0.75 <= c <= 0.85 for c in coverage)
    mape, naive_mape = model.mape[29], naive.mape[29]
    change = 100 * (mape / naive_mape - 1)
    return (
        f"Targets: coverage of the 80% interval {coverage[0]:.1%} at 7 days and {coverage[1]:.1%} at 30 days "
        f"(target 75-85%: {'met' if within else 'missed'}); MAPE at 30 days {mape:.2f}% against the naive "
        f"{naive_mape:.2f}% ({change:+.1f}%; target no worse: {'met' if mape <= naive_mape else 'missed'})."
    )


def _describe(config: Config) -> str:
    parts = [
        "log price" if config.log_target else "price",
        f"last {config.window_days} days" if config.window_days else "all history",
        "flat trend" if config.growth == "flat" else f"changepoint prior {config.changepoint_prior_scale}",
        f"changepoint range {config.changepoint_range}",
        "yearly + weekly seasonality" if config.yearly_seasonality else "weekly seasonality",
    ]
    if config.hold_trend:
        parts.append("trend held after the last day")
    if config.anchor:
        parts.append("anchored to the last close")
    parts.append("calibrated interval" if config.calibrate else "Prophet's own interval")
    return ", ".join(parts)


REPORT_HEADER = """# Backtest: forecast quality against naive baselines

Generated by `make report` (`python -m training.report`) from the bundled snapshots; the
6-hourly training job runs the same backtest on live data, serves the configuration it chooses
and writes its summary into the model metadata (`backtest` in `/models/<asset>`).

**Point forecasts.** Rolling origin: at each cutoff every model is fitted on the data up to that
day only and forecasts the next 365 days. Metrics are over the evaluated cutoffs, for 1, 7, 30
and 90 days ahead: MAE, MAPE, median APE, and the share of actual closes inside the 80% interval
the model would have served at that cutoff, with its mean width. Baselines on the same cutoffs:
**naive** (every future day = the last close) and **drift** (the last close grown at the average
daily log change of all the history so far).

**Intervals** (training/models/intervals.py): a volatility term structure (recent volatility for days,
the three-year level for months) times the quantiles of the asset's own past standardized
returns, built at each origin from the closes up to it only, at 50, 80, 90 and 95%.
A young asset's quantiles are shrunk towards those of the other bundled assets (before the
origin's year only). The bands are judged as served, at the backtest's cutoffs, against the
**trivial interval** (the last close times the quantiles of all h-day log returns of the three
years before); `make panel` (reports/panel.md) judges them on many assets at far more origins.

**Choice.** The candidates are ranked by their mean, over the four horizons, of MAPE divided by
the naive MAPE; the first in order of preference ({order}) within {tolerance:.1%} of the best is
served, and a retrain keeps the configuration it had unless another is better beyond that and
significantly (Diebold-Mariano). **Quality gate** (training refuses the model, keeping the
previous one): MAPE above {ratio} x the naive MAPE at any horizon, fewer than {min_cutoffs}
evaluated cutoffs, an 80% coverage whose 95% interval lies wholly outside 75-85% at any horizon
up to 180 days, or a Winkler score significantly worse than the trivial interval's at 1, 7, 30 or
90 days. "(reference)" rows are never served; they show what the choices improve on, e.g.
`prophet-defaults` is Prophet's defaults on the whole price history with Prophet's own interval.

"""


def write_report(out, assets: list[str], jobs: int | None = None) -> None:
    """Backtest every asset's snapshot and write out/backtest.md with its plots."""
    out.mkdir(parents=True, exist_ok=True)
    header = REPORT_HEADER.format(
        order=", ".join(c.name for c in CANDIDATES),
        tolerance=SELECTION_TOLERANCE,
        ratio=GATE_MAX_MAPE_RATIO,
        min_cutoffs=MIN_EVAL_CUTOFFS,
    )
    sections = [asset_report(key, out, jobs) for key in assets]
    (out / "backtest.md").write_text(header + "\n".join(sections))
    log.info("wrote %s", out / "backtest.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Backtest the candidate configurations on the bundled snapshots."
    )
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "reports")
    parser.add_argument("--asset", action="append", help="only this asset (repeatable; default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    write_report(args.out, args.asset or list(load_assets()), args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
