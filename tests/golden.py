"""Golden answers: every byte the API serves from the model files in tests/golden/models.

A restructure must not change one answer. ``record`` asks the app for every day of every
asset's forecast (JSON and CSV, through the fast path and through Flask), its whole history and
the model cards (not the health check, which depends on the day it is asked), and stores status,
media type, ETag and body;
tests/test_golden.py asks the current code the same questions and compares byte for byte.
A deliberate change of answers records them again (and the model files with them) in its own
commit:

    python -m tests.golden record MODEL_DIR    # copies MODEL_DIR's pairs, then records
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_MODELS = GOLDEN_DIR / "models"
GOLDEN_ANSWERS = GOLDEN_DIR / "answers.json.gz"
RANGE_DAYS = 1000  # below the API's per-request limit
CSV = {"Accept": "text/csv"}
FLASK_JSON = {"Accept": "application/json;q=1"}  # JSON, but past the fast path (it takes plain Accepts)


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def ranges(all_days: list[str]) -> list[tuple[str, str]]:
    chunks = [all_days[i : i + RANGE_DAYS] for i in range(0, len(all_days), RANGE_DAYS)]
    return [(chunk[0], chunk[-1]) for chunk in chunks]


def card_levels(card: dict) -> list[int]:
    """The levels a model calibrates, from its card's track record (80 alone for older models)."""
    rows = (card.get("track_record") or {}).get("coverage") or []
    return sorted({row["level"] for row in rows}) or [80]


def questions(cards: dict) -> list[tuple[str, dict]]:
    """Every request whose answer is recorded: (URL, headers)."""
    asked = [("/models", {})]  # not /health: it says how old the data is today
    for asset, card in sorted(cards.items()):
        served = days(card["serves"]["first_day"], card["serves"]["last_day"])
        trained = days(card["first_day"], card["last_day"])
        asked.append((f"/models/{asset}", {}))
        for day in served:
            asked.append((f"/forecast/{asset}?date={day}", {}))
            asked.append((f"/forecast/{asset}?date={day}", FLASK_JSON))
            asked.append((f"/forecast/{asset}?date={day}", CSV))
        for start, end in ranges(served):
            asked.append((f"/forecast/{asset}?start={start}&end={end}", {}))
            asked.append((f"/forecast/{asset}?start={start}&end={end}", CSV))
            every_level = ",".join(map(str, card_levels(card)))
            asked.append((f"/forecast/{asset}?start={start}&end={end}&level={every_level}", {}))
            asked.append((f"/forecast/{asset}?start={start}&end={end}&level={every_level}", CSV))
        for start, end in ranges(trained):
            asked.append((f"/history/{asset}?start={start}&end={end}", {}))
            asked.append((f"/history/{asset}?start={start}&end={end}", CSV))
        if asset == "btc":
            asked += [(f"/bitcoin?date={day}", {}) for day in served]
    return asked


def answer(client, url: str, headers: dict) -> dict:
    response = client.get(url, headers=headers)
    return {
        "url": url,
        "headers": headers,
        "status": response.status_code,
        "type": response.headers.get("Content-Type"),
        "etag": response.headers.get("ETag"),
        "body": base64.b64encode(response.get_data()).decode(),
    }


def answers(client) -> list[dict]:
    """The app's answer to every golden question, in order."""
    cards = json.loads(client.get("/models").get_data())
    return [answer(client, url, headers) for url, headers in questions(cards)]


def load() -> list[dict]:
    return json.loads(gzip.decompress(GOLDEN_ANSWERS.read_bytes()))


def record(model_dir: Path) -> None:
    from api import create_app
    from artifact import model_path, read_metadata

    if GOLDEN_MODELS.exists():
        shutil.rmtree(GOLDEN_MODELS)
    GOLDEN_MODELS.mkdir(parents=True)
    for path in sorted(model_dir.glob("*.json")):
        shutil.copy2(path, GOLDEN_MODELS / path.name)
        model = model_path(path, read_metadata(path))  # the model file the metadata names
        shutil.copy2(model, GOLDEN_MODELS / model.name)
    recorded = answers(create_app(GOLDEN_MODELS).test_client())
    GOLDEN_ANSWERS.write_bytes(gzip.compress(json.dumps(recorded).encode(), mtime=0))
    print(f"recorded {len(recorded)} answers in {GOLDEN_ANSWERS}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        sys.exit("usage: python -m tests.golden record MODEL_DIR")
    record(Path(sys.argv[2]))
