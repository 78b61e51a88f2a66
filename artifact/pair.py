"""Reading and writing a model pair: the metadata is the single commit point of a replacement."""

from __future__ import annotations

import hashlib
import json
import os
import pickle  # nosec B403  # only a model whose sha256 matches its metadata is unpickled
import re
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from artifact.metadata import (
    MODEL_FILE_HASH_CHARS,
    READ_ATTEMPTS,
    Metadata,
    ModelError,
    model_file_name,
    model_path,
    read_metadata,
)


def read_model(model_path: Path, expected_sha256: str):
    """Unpickle the model, but only once its bytes match the sha256 its metadata names."""
    try:
        content = model_path.read_bytes()
    except OSError as error:
        raise ModelError(f"model {model_path} cannot be read: {error.strerror or error}") from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"model {model_path} has sha256 {actual}, but its metadata expects {expected_sha256}: "
            "the file was changed or truncated after training"
        )
    try:
        # Trusted input: a local file, written by train.py and matched to its metadata above.
        model = pickle.loads(content)  # noqa: S301  # nosec B301
    except Exception as error:
        raise ModelError(f"model {model_path} is not a readable pickle: {error!r}") from error
    fitted_prophet = type(model).__module__.startswith("prophet.") and type(model).__name__ == "Prophet"
    if not fitted_prophet or getattr(model, "history", None) is None:
        raise ModelError(f"model {model_path} holds a {type(model).__name__}, not a fitted Prophet model")
    return model


def read_pair(metadata_file: Path) -> tuple[Metadata, Any]:
    """The checked metadata and the model it names, unpickled; ModelError says what is wrong.

    A writer may replace the pair while it is read and remove the model file the old metadata
    named: a model that fails while the metadata changed under it is read again, a few times.
    """
    for _ in range(READ_ATTEMPTS):
        metadata = read_metadata(metadata_file)
        try:
            path = model_path(metadata_file, metadata)
            return metadata, read_model(path, metadata["model_sha256"])
        except ValueError as error:
            raise ModelError(f"model metadata {metadata_file} is unreadable: {error!r}") from error
        except ModelError:
            if read_metadata(metadata_file) == metadata:  # the pair itself is bad, not replaced
                raise
    raise ModelError(
        f"model metadata {metadata_file} changed {READ_ATTEMPTS} times while it was read: "
        "is train.py writing this folder right now?"
    )


def write_pair(metadata_file: Path, model_bytes: bytes, metadata: Metadata) -> None:
    """Replace an asset's pair so that a reader sees the old pair or the new one, never a mix.

    The model goes to the file its name in ``metadata["model_file"]`` derives from its sha256
    (:func:`model_file_name`), then the metadata replaces ``<asset>.json``: that rename is the
    commit. Each is written to a synced temp file and renamed; the folder is synced after each
    rename. Only then are the asset's model files that the new metadata does not name removed,
    with any temp file a killed run left. Killed at any point, the folder holds a loadable pair:
    the previous one up to the commit, the new one after it. One writer per folder at a time
    (train.py holds the folder's lock).
    """
    asset, folder = metadata_file.stem, metadata_file.parent
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    if (metadata.get("model_sha256"), metadata.get("model_file")) != (sha256, model_file_name(asset, sha256)):
        raise ValueError("the metadata must name the model's sha256 and its file model_file_name() gives")
    model_final = folder / metadata["model_file"]
    existed = model_final.exists()  # the same content, maybe committed before: never removed below
    _replace(model_final, model_bytes)
    _sync_folder(folder)  # the model is on disk before any metadata names it
    try:
        _replace(metadata_file, (json.dumps(metadata, indent=2) + "\n").encode())
    except BaseException:
        if not existed and _named_model_file(metadata_file) != model_final.name:
            model_final.unlink(missing_ok=True)  # no metadata names it: the previous pair stands
        raise
    _sync_folder(folder)
    _remove_stale_files(folder, asset, keep=model_final.name)


def _replace(final: Path, content: bytes) -> None:
    """Write `content` to a synced temp file next to `final`, then rename it over `final`."""
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); a model must be readable by the user serving it.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """Make the folder's entries durable: a rename is only on disk once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named_model_file(metadata_file: Path) -> str | None:
    """The model file the metadata on disk names now, if it can be read."""
    try:
        return json.loads(metadata_file.read_text()).get("model_file")
    except (OSError, ValueError, AttributeError):
        return None


def _remove_stale_files(folder: Path, asset: str, keep: str) -> None:
    """Remove the asset's model files but `keep` (older models, format 2's ``<asset>.pkl``) and temp files.

    Best effort, after the commit: a file left behind harms nothing, and the next write retries.
    """
    name, digest = re.escape(asset), rf"[0-9a-f]{{{MODEL_FILE_HASH_CHARS}}}"
    stale = re.compile(rf"{name}(\.{digest})?\.pkl|\.{name}\.({digest}\.pkl|json)\.\w+\.tmp")
    with suppress(OSError):
        for path in folder.iterdir():
            if path.name != keep and stale.fullmatch(path.name):
                path.unlink(missing_ok=True)
