"""The assets the pipeline trains and the API serves: assets.toml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from training.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parents[2]
ASSETS_FILE = PROJECT_DIR / "assets.toml"
# The evaluation panel: other assets' bundled bars (data/panel/PROVENANCE.md), the same format.
PANEL_FILE = PROJECT_DIR / "data" / "panel" / "panel.toml"
ASSET_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Asset:
    """One entry of assets.toml."""

    key: str  # URL and file name: btc
    name: str  # Bitcoin
    symbol: str  # Alpaca symbol: BTC/USD
    snapshot: Path  # bundled CSV for offline training
    category: str = ""  # panel assets: "old", "young" or "collapsed"


def load_assets(path: Path = ASSETS_FILE) -> dict[str, Asset]:
    """The configured assets, keyed by their URL name; ConfigError says what is wrong with the file."""
    assets = {key: asset_from(path, key, table) for key, table in read_tables(path).items()}
    if not assets:
        raise ConfigError(f"{display_path(path)} lists no asset: add a table such as [btc]")
    by_symbol: dict[str, str] = {}
    for key, asset in assets.items():
        if (other := by_symbol.setdefault(asset.symbol.upper(), key)) != key:
            # The API refuses two models of one symbol: refused here, before any fit, so none is down.
            raise ConfigError(
                f"{display_path(path)}: [{other}] and [{key}] both have symbol {asset.symbol!r}; "
                "each asset needs its own"
            )
    return assets


def read_tables(path: Path) -> dict:
    """The TOML file's tables; ConfigError when it cannot be read or parsed."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {display_path(path)}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{display_path(path)} is not valid TOML: {error}") from error


def asset_from(path: Path, key: str, table) -> Asset:
    """One table of assets.toml as an Asset, once its name is usable in a URL and a file name and its
    name, symbol and snapshot are strings."""
    if not ASSET_KEY.fullmatch(key):
        raise ConfigError(
            f"{display_path(path)}: [{key}] is not usable as an asset name in URLs and file names "
            "(lowercase letters, digits, - and _, starting with a letter or digit)"
        )
    if not isinstance(table, dict):
        raise ConfigError(f"{display_path(path)}: {key} must be a table ([{key}]), not a value")
    for field in ("name", "symbol", "snapshot"):
        if field not in table:
            raise ConfigError(
                f"{display_path(path)}: [{key}] lacks {field!r} (each asset needs name, symbol, snapshot)"
            )
        if not isinstance(table[field], str) or not table[field].strip():
            raise ConfigError(f"{display_path(path)}: [{key}] {field} must be a non-empty string")
    return Asset(key, table["name"], table["symbol"], PROJECT_DIR / table["snapshot"])


def display_path(path: Path) -> str:
    """A path relative to the project when inside it: metadata should not leak build folders."""
    resolved = path.resolve()
    return str(resolved.relative_to(PROJECT_DIR)) if resolved.is_relative_to(PROJECT_DIR) else str(path)


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
