"""The model card's evaluation under clear names: the track record of the served intervals and the
point forecast's errors, from the backtest summary that training writes into the metadata.

The track record is the one coverage table of the card: for each stretch of origins, horizon and
level, how often the close fell inside the interval served from that origin (with a 95% CI on
the number of independent windows), against the trivial interval. Its summary is one plain
sentence made from those numbers, so it says what the band means and where it held less well
for whatever model is served (training/selection/interval_checks.py computes the rows).
"""

from __future__ import annotations

from artifact import SERVED_LEVEL

# A horizon held "less well" when its coverage is below the promise beyond chance (the 95% CI
# lies below it) or by more than this much whatever the CI: a few windows make wide CIs.
SHORTFALL = 0.10
STRETCHES = {"all": "overall", "final": "in the most recent stretch"}


def coverage_rows(backtest: dict | None) -> list[dict] | None:
    """The backtest's interval rows, with the horizon named horizon_days; None without them."""
    rows = (backtest or {}).get("intervals")
    if not rows:
        return None
    rows = [
        {
            "stretch": row["stretch"],
            "horizon_days": row["h"],
            "level": row["level"],
            "origins": row["origins"],
            "windows": row["windows"],
            "coverage": row["coverage"],
            "coverage_ci": row["coverage_ci"] if row["coverage"] is not None else None,
            "trivial_coverage": row["trivial_coverage"],
            "winkler_ratio": row["winkler_ratio"],
            "pinball_ratio": row["pinball_ratio"],
            "note": row.get("note"),
        }
        for row in rows
    ]
    for row in rows:
        row["held_less_well"] = None if row["coverage"] is None else held_less_well(row)
    return rows


def days(h: int) -> str:
    return "1 day" if h == 1 else f"{h} days"


def percent(share: float) -> str:
    return f"{share:.0%}"


def held_less_well(row: dict) -> bool:
    """True when the interval held the close clearly less often than its level promises."""
    promised = row["level"] / 100
    return row["coverage"] < promised - SHORTFALL or row["coverage_ci"][1] < promised


def summary(rows: list[dict] | None, level: int = SERVED_LEVEL) -> str:
    """One plain sentence: what the band at `level` means, how often it held, and where less well."""
    often = f"{level // 10} times in 10" if level % 10 == 0 else f"{level} times in 100"
    promise = f"The {level}% band should hold the close about {often}"
    known = [row for row in rows or () if row["level"] == level and row["coverage"] is not None]
    overall = [row for row in known if row["stretch"] == "all"]
    if not overall:
        return f"{promise}; there is not enough past data yet to say how often it did."
    shares = [row["coverage"] for row in overall]
    low, high = percent(min(shares)), percent(max(shares))
    held = f"held {low}" if low == high else f"held {low} to {high}"
    span = days(min(row["horizon_days"] for row in overall))
    if len(overall) > 1:
        span = f"{span} to {days(max(row['horizon_days'] for row in overall))}"
    sentence = (
        f"{promise}: in {overall[0]['origins']} past tests, each forecasting from the data up to its "
        f"day only, it {held} of the time from {span} ahead"
    )
    weak = [row for row in known if row["held_less_well"]]
    if not weak:
        return sentence + ", and at no horizon tested did it fall clearly short."
    parts = []
    for stretch, words in STRETCHES.items():
        shortfalls = [row for row in weak if row["stretch"] == stretch]
        if shortfalls:
            listed = [f"{days(row['horizon_days'])} ({percent(row['coverage'])})" for row in shortfalls]
            joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
            parts.append(f"{words} at {joined}")
    return sentence + ", but less well " + " and ".join(parts) + "."


def point_errors(backtest: dict) -> list[dict]:
    """The point forecast's errors, one row per model and horizon (not positional arrays)."""
    horizons = backtest.get("horizons") or []
    rows = []
    for model, scores in (backtest.get("models") or {}).items():
        for i, h in enumerate(horizons):
            row = {"model": model, "horizon_days": h}
            row.update({metric: scores[metric][i] for metric in ("mae", "mape", "mdape") if metric in scores})
            rows.append(row)
    return rows


def point_evaluation(backtest: dict | None) -> dict | None:
    """The card's backtest: how the configuration was chosen and how its point forecast scored."""
    if not backtest:
        return None
    keys = ("chosen", "choice", "candidates", "cutoffs", "first_cutoff", "last_cutoff", "spacing_days")
    evaluation = {key: backtest[key] for key in keys if key in backtest}
    evaluation["point_errors"] = point_errors(backtest)
    evaluation.update({key: backtest[key] for key in ("diebold_mariano", "gate") if key in backtest})
    return evaluation


def track_record(backtest: dict | None) -> dict | None:
    """The card's track record: the coverage table and the sentence that sums it up."""
    rows = coverage_rows(backtest)
    if rows is None:
        return None
    return {"level": SERVED_LEVEL, "summary": summary(rows), "coverage": rows}
