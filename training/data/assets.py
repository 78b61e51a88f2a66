"""The assets the pipeline trains and the API serves: assets.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
ASSETS_FILE = PROJECT_DIR / "assets.toml"
# The evaluation panel: other assets' bundled bars (data/panel/PROVENANCE.md), the same format.
PANEL_FILE = PROJECT_DIR / "data" / "panel" / "panel.toml"


@dataclass(frozen=True)
class Asset:
    """One entry of assets.toml."""

    key: str  # URL and file name: btc
    name: str  # Bitcoin
    symbol: str  # Alpaca symbol: BTC/USD
    snapshot: Path  # bundled CSV for offline training
    category: str = ""  # panel assets: "old", "young" or "collapsed"


def load_assets(path: Path = ASSETS_FILE) -> dict[str, Asset]:
    """The configured assets, keyed by their URL name."""
    with path.open("rb") as handle:
        tables = tomllib.load(handle)
    return {
        key: Asset(key, table["name"], table["symbol"], PROJECT_DIR / table["snapshot"])
        for key, table in tables.items()
    }


def load_panel(path: Path = PANEL_FILE) -> dict[str, Asset]:
    """The evaluation panel's assets (none when the panel is not there)."""
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        tables = tomllib.load(handle)
    return {
        key: Asset(
            key, table["name"], table["symbol"], PROJECT_DIR / table["snapshot"], table.get("category", "")
        )
        for key, table in tables.items()
    }


def reference_assets(asset: Asset, assets: dict[str, Asset]) -> dict[str, Asset]:
    """Every bundled asset but `asset` (by key or symbol): whose history a young asset may borrow."""
    everything = {**load_panel(), **assets}
    return {
        key: other for key, other in everything.items() if key != asset.key and other.symbol != asset.symbol
    }
