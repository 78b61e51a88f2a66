"""The bars against the closes the previous model carried: a feed must not rewrite the past.

The previous model's metadata holds every close it was trained on ("closes", artifact/metadata.py).
A close is a recorded fact: the same feed asked again must give the same number. Only the
noise of storing it is forgiven (HISTORY_TOLERANCE: a feed that keeps float32 prices moves
them by 6e-8), so any real revision, however small, is seen. Compared only when the previous
model came from the same source and origin (the same CSV, the same URL) for the same symbol:
another feed has other prices. Days the previous model repaired are not compared.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artifact import ModelError, closes_of
from training.data.bar_checks import number
from training.errors import ConfigError, DataError

log = logging.getLogger(__name__)

HISTORY_TOLERANCE = 1e-6  # relative


@dataclass(frozen=True)
class PreviousCloses:
    """The closes of the model a run would replace, and where they are."""

    metadata_file: Path
    closes: pd.Series  # USD, indexed by day
    repaired_days: frozenset[str]  # ISO days whose close the previous run repaired


def previous_closes(metadata_file: Path, source: str, origin: str, symbol: str) -> PreviousCloses | None:
    """The previous model's closes when it came from the same feed; None when there is none to compare.

    Metadata that cannot be read is an operator's problem (ConfigError): the run cannot tell
    whether the feed rewrote history.
    """
    try:
        text = metadata_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(
            f"previous model metadata {metadata_file} cannot be read: {error.strerror}"
        ) from error
    try:
        metadata = json.loads(text)
        if not isinstance(metadata, dict):
            raise TypeError("it is not a JSON object")
        same_feed = (metadata.get("source"), metadata.get("origin"), metadata.get("symbol")) == (
            source,
            origin,
            symbol,
        )
        if not same_feed or "closes" not in metadata:
            log.info("history not compared: the previous model came from another feed, or has no closes")
            return None
        closes = closes_of(metadata)
        repairs = (metadata.get("repairs") or {}).get("made", [])
        repaired = frozenset(str(repair["day"]) for repair in repairs)
    except (ValueError, KeyError, TypeError, AttributeError, ModelError) as error:
        raise ConfigError(
            f"previous model metadata {metadata_file} is malformed ({type(error).__name__}: {error}): the "
            "feed's history cannot be checked against it; move the file away to train without that check"
        ) from error
    return PreviousCloses(metadata_file, closes, repaired)


def rewritten_history(
    closes: pd.Series, previous: PreviousCloses, repaired_now: frozenset[str] = frozenset()
) -> tuple[str, dict] | None:
    """Where the closes disagree with the previous model's: (the message, a record for the model card).

    Days repaired by the previous run or by this one (`repaired_now`) are not compared. A feed whose
    newest day is older than the previous model's lost days: DataError, never repaired.
    """
    old = previous.closes
    if closes.index[-1] < old.index[-1]:
        raise DataError(
            f"the feed lost days: its newest bar is {closes.index[-1].date()}, but the model it would "
            f"replace ({previous.metadata_file}) was trained up to {old.index[-1].date()}"
        )
    days = old.index.intersection(closes.index)
    days = days[~days.strftime("%Y-%m-%d").isin(list(previous.repaired_days | repaired_now))]
    before, after = old[days].to_numpy(), closes[days].to_numpy()
    differs = np.abs(after / before - 1) > HISTORY_TOLERANCE
    if not differs.any():
        return None
    first = int(differs.argmax())
    day = days[first]
    message = (
        f"the feed rewrote history: the close of {day.date()} is {number(after[first])} now, "
        f"{number(before[first])} in the model it would replace ({previous.metadata_file}); "
        f"{int(differs.sum())} of {len(days)} shared days differ"
    )
    record = {
        "kind": "rewritten history accepted",
        "day": day.date().isoformat(),
        "was": float(before[first]),
        "now": float(after[first]),
        "days": int(differs.sum()),
    }
    return message, record
