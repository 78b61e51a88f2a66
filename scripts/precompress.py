#!/usr/bin/env python3
"""Write a gzip copy beside each of the page's files, `<file>.gz`, for the server to send as it is.

    python scripts/precompress.py web        # every .html, .js, .css and .svg under web/

The Makefile runs it before serving and testing, the Dockerfile in its `web` stage, so no request
ever compresses anything (serving/page.py sends a copy only while it is not older than its file).
A copy already at least as new as its file is left alone. The bytes are the same on every run
(no file name or time in the gzip header), so images stay reproducible. Standard library only.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
from pathlib import Path

COMPRESSIBLE = (".html", ".js", ".css", ".svg")  # text; the page has no other kind of file
SUFFIX = ".gz"


def gzip_bytes(data: bytes) -> bytes:
    """`data` gzip-compressed at the highest level, with no name and a zero time in the header."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def up_to_date(path: Path, copy: Path) -> bool:
    return copy.exists() and copy.stat().st_mtime_ns >= path.stat().st_mtime_ns


def precompress(path: Path) -> Path | None:
    """Write path's gzip copy unless it is up to date; the copy's path when written, else None."""
    copy = path.with_name(path.name + SUFFIX)
    if up_to_date(path, copy):
        return None
    # Written aside, then renamed: a server never reads half a copy.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(gzip_bytes(path.read_bytes()))
        os.chmod(temporary, 0o644)  # as readable as the file itself: the image's server is not root
        os.replace(temporary, copy)
    except BaseException:
        os.unlink(temporary)
        raise
    return copy


def page_files(folder: Path) -> list[Path]:
    """The files under `folder` worth compressing, in a stable order."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in COMPRESSIBLE)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for argument in argv:
        root = Path(argument)
        for path in page_files(root) if root.is_dir() else [root]:
            copy = precompress(path)
            if copy is not None:
                print(f"{copy}: {path.stat().st_size} -> {copy.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
