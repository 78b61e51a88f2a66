"""The model folder: which of its files are models, and the checks across the models it holds.

A ``*.json`` file is a model's metadata when a model file of its name lies beside it
(``<name>.pkl`` or ``<name>.<sha256[:16]>.pkl``) or when it says it is one (an object with a
``format``): such a file is served or refused, never skipped. Any other ``*.json`` (``notes.json``,
a ``package.json``) is no model: it is ignored, with a warning naming it, so that a stray file
never takes every asset down. docs/operations.md, "The model folder", says the same.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from artifact import DEFAULT_MODEL_DIR, MODEL_FILE_HASH_CHARS, ModelError
from serving.answers import ServedModel, serve_model

log = logging.getLogger(__name__)


def configured_model_dir(model_dir: str | Path | None) -> Path:
    """The model folder: `model_dir`, else $MODEL_DIR, else models/; a set but empty MODEL_DIR is refused
    (it would mean the current folder, whatever files it holds)."""
    if model_dir:
        return Path(model_dir)
    configured = os.environ.get("MODEL_DIR")
    if configured is None:
        return Path(DEFAULT_MODEL_DIR)
    if not configured.strip():
        raise ModelError(
            f"MODEL_DIR is set but empty: name the model folder, or unset it for {DEFAULT_MODEL_DIR}/"
        )
    return Path(configured)


def has_model_file(metadata_file: Path) -> bool:
    """True when a model file of the metadata's name lies beside it."""
    name = re.escape(metadata_file.stem)
    model = re.compile(rf"{name}(\.[0-9a-f]{{{MODEL_FILE_HASH_CHARS}}})?\.pkl")
    return any(model.fullmatch(path.name) for path in metadata_file.parent.glob(f"{metadata_file.stem}.*pkl"))


def says_it_is_metadata(path: Path) -> bool:
    """True when the file is a JSON object with a "format", as every model's metadata is."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and "format" in content


def is_metadata(path: Path) -> bool:
    return has_model_file(path) or says_it_is_metadata(path)


def metadata_files(model_dir: Path) -> list[Path]:
    """The metadata files of the folder, or a ModelError naming why there are none."""
    if not model_dir.exists():
        raise ModelError(f"model folder {model_dir} does not exist: set MODEL_DIR, or run train.py")
    if not model_dir.is_dir():
        raise ModelError(
            f"model folder {model_dir} is not a folder: set MODEL_DIR to the folder train.py wrote"
        )
    try:
        candidates = sorted(model_dir.glob("*.json"))
        next(model_dir.iterdir(), None)  # glob hides a folder it may not list; this raises
    except OSError as error:
        raise ModelError(f"model folder {model_dir} cannot be read: {error.strerror or error}") from error
    files = []
    for path in candidates:
        if is_metadata(path):
            files.append(path)
        else:
            log.warning(
                'ignoring %s: not a model\'s metadata (no %s.*.pkl beside it, no "format")', path, path.stem
            )
    if not files:
        raise ModelError(f"no model metadata (*.json) in {model_dir}: run train.py first")
    return files


def serve_models(model_dir: Path) -> dict[str, ServedModel]:
    """Every model in the folder, keyed by asset: each <asset>.json names its model file."""
    models = {path.stem: serve_model(path) for path in metadata_files(model_dir)}
    symbols: dict[str, str] = {}
    for key, served in models.items():
        other = symbols.setdefault(served.metadata["symbol"], key)
        if other != key:
            raise ModelError(
                f"models {other} and {key} both serve {served.metadata['symbol']}: one of them was copied"
            )
    return models
