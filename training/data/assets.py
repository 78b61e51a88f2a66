"""The assets the pipeline trains and the API serves: assets.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
ASSETS_FILE = PROJECT_DIR / "assets.toml"


@dataclass(frozen=True)
class Asset:
    """One entry of assets.toml."""

    key: str  # URL and file name: btc
    name: str  # Bitcoin
    symbol: str  # Alpaca symbol: BTC/USD
    snapshot: Path  # bundled CSV for offline training


def load_assets(path: Path = ASSETS_FILE) -> dict[str, Asset]:
    """The configured assets, keyed by their URL name."""
    with path.open("rb") as handle:
        tables = tomllib.load(handle)
    return {
        key: Asset(key, table["name"], table["symbol"], PROJECT_DIR / table["snapshot"])
        for key, table in tables.items()
    }
