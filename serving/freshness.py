"""How old each model's data is: the health check's status, the metrics' data age, the startup line.

A model's data is as old as its newest bar (metadata last_day, a UTC day): it says nothing of
when the model was trained. Past MAX_DATA_AGE_DAYS (default 3) the data is stale: /health says
so, still with a 200, so that a platform's health check does not restart a server that can do no
better (docs/operations.md, "Stale data").
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime

from serving.answers import ServedModel
from serving.server import number

DEFAULT_MAX_DATA_AGE_DAYS = 3
DAY_SECONDS = 24 * 3600


def max_data_age_days(environ: Mapping[str, str] = os.environ) -> int:
    """MAX_DATA_AGE_DAYS: days a model's newest bar may be old before its data counts as stale."""
    return number(environ, "MAX_DATA_AGE_DAYS", DEFAULT_MAX_DATA_AGE_DAYS, 0, 36500)


def data_age_seconds(served: ServedModel, now: float | None = None) -> float:
    """Seconds since the start (00:00 UTC) of the model's newest bar."""
    newest = datetime(*served.facts.as_of.timetuple()[:3], tzinfo=UTC).timestamp()
    return (time.time() if now is None else now) - newest


def data_age_days(served: ServedModel, today: date | None = None) -> int:
    """Whole days from the model's newest bar to today (UTC): 1 the day after it."""
    return ((today or datetime.now(UTC).date()) - served.facts.as_of).days


def stale_assets(models: dict[str, ServedModel], max_days: int, today: date | None = None) -> list[str]:
    """The assets whose newest bar is more than `max_days` days old."""
    return [key for key, served in models.items() if data_age_days(served, today) > max_days]


def health(models: dict[str, ServedModel], max_days: int, today: date | None = None) -> dict:
    """The health check's body: "ok", or "stale" naming the assets whose data is too old."""
    stale = stale_assets(models, max_days, today)
    return {
        "status": "stale" if stale else "ok",
        "stale_assets": stale,
        "max_data_age_days": max_days,
        "models": {
            key: {
                "trained_at": served.metadata["trained_at"],
                "data_last_day": served.facts.as_of.isoformat(),
                "data_age_days": data_age_days(served, today),
                "source": served.facts.source,
                "serves": {
                    "first_day": served.first_day.isoformat(),
                    "last_day": served.last_day.isoformat(),
                },
            }
            for key, served in models.items()
        },
    }


def ready_line(served: ServedModel, max_days: int) -> str:
    """The startup line of a model: what it serves, where its data is from and how old it is."""
    age = data_age_days(served)
    line = (
        f"{served.key} model ready: {len(served.answers)} answers, {served.first_day} to "
        f"{served.last_day}; {served.facts.source} data up to {served.facts.as_of} ({age} days old)"
    )
    if age > max_days:
        line += f", stale: more than MAX_DATA_AGE_DAYS={max_days}"
    return line
