"""One line for `make run`: which models it is about to serve, from which source and up to which day.

    python scripts/model_summary.py MODEL_DIR

Exits 1, silent, when the folder holds no model metadata (`make run` then trains first). A
metadata file it cannot read is named as such; api.py says why when it refuses it. Standard
library only, like everything `make` runs before the API.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path


def describe(metadata_file: Path, today: date) -> str:
    """'btc from snapshot, data up to 2026-08-20 (106 days ago)', or why it cannot say."""
    try:
        metadata = json.loads(metadata_file.read_text())
        asset = metadata.get("asset", metadata_file.stem)
        last_day = date.fromisoformat(metadata["last_day"])
        source = metadata.get("source", "an unrecorded source")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{metadata_file.name} unreadable"
    age = (today - last_day).days
    return f"{asset} from {source}, data up to {last_day} ({age} day{'' if age == 1 else 's'} ago)"


def summary(model_dir: Path, today: date) -> str | None:
    """The line for the models in `model_dir`, or None when there is none."""
    files = sorted(model_dir.glob("*.json")) if model_dir.is_dir() else []
    if not files:
        return None
    models = "; ".join(describe(path, today) for path in files)
    return (
        f"make run: serving the models in {model_dir} as they are: {models} "
        "(make run SOURCE=alpaca or SOURCE=snapshot trains them again first)"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    line = summary(Path(argv[0]), datetime.now(UTC).date())
    if line is None:
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
