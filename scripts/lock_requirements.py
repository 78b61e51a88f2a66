#!/usr/bin/env python3
"""Write into pinned requirement files the sha256 of the wheels the image build installs (`make lock`).

    python scripts/lock_requirements.py requirements-image.txt requirements-sbom.txt

Each `name==version` line keeps its pin and gets one `--hash=sha256:` per wheel that pip picks for
CPython 3.11 on glibc Linux, x86_64 and aarch64 (what `docker build` installs on either machine):
pip's own resolver chooses the files (`pip install --dry-run --report`, no dependencies), and the
hashes are those PyPI publishes with them. Comments and order are kept. PyPI only: the image build
downloads from there, so local wheel folders and extra indexes of this machine's pip set-up are
left out. Standard library and pip only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)$")
ARCHITECTURES = ("x86_64", "aarch64")
# manylinux_2_17 (CentOS 7) to manylinux_2_36 (Debian bookworm, the oldest glibc our bases have).
GLIBC_MINORS = range(17, 37)
# Settings of this machine that point pip elsewhere than the index the image build uses.
LOCAL_PIP_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(text: str) -> list[tuple[str, str | None]]:
    """The file as (line, pin) pairs: comments and blanks with None, pins as `name==version`.

    Hash options and the continuations of a pin are left out of both. Raises ValueError on any
    requirement that is not an exact pin.
    """
    entries: list[tuple[str, str | None]] = []
    for line in text.replace("\\\n", " ").splitlines():
        requirement = line.split("#")[0].strip()
        if not requirement:
            entries.append((line, None))
            continue
        pin, *options = requirement.split()
        if not PIN.match(pin) or any(not option.startswith("--hash=") for option in options):
            raise ValueError(f"{line!r} is not pinned with == (hashes aside)")
        entries.append((pin, pin))
    return entries


def read_pins(path: Path) -> dict[str, str]:
    """{normalized name: version} of a pinned requirement file, hashed or not."""
    pins = (pin.split("==") for _, pin in requirement_lines(path.read_text()) if pin)
    return {normalized(name): version for name, version in pins}


def platform_flags(architecture: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{architecture}" for minor in GLIBC_MINORS]
    tags += [f"manylinux2014_{architecture}", f"linux_{architecture}"]
    return [flag for tag in tags for flag in ("--platform", tag)]


def wheel_hashes(pins: list[str], architecture: str) -> dict[str, set[str]]:
    """The sha256 of the file pip would install for each pin on this architecture, by name."""
    env = {key: value for key, value in os.environ.items() if key not in LOCAL_PIP_SETTINGS}
    env["PIP_CONFIG_FILE"] = os.devnull
    with tempfile.TemporaryDirectory() as scratch:
        pinned, report = Path(scratch, "pins.txt"), Path(scratch, "report.json")
        pinned.write_text("\n".join(pins) + "\n")
        command = [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed"),
            *("--no-deps", "--only-binary=:all:", "--target", str(Path(scratch, "target"))),
            *("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"),
            *platform_flags(architecture),
            *("--report", str(report), "-r", str(pinned)),
        ]
        subprocess.run(command, env=env, check=True)  # pip, fixed arguments
        installs = json.loads(report.read_text())["install"]
    hashes: dict[str, set[str]] = {}
    for item in installs:
        digest = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise SystemExit(f"lock: the index gave no sha256 for {item['download_info']['url']}")
        hashes.setdefault(normalized(item["metadata"]["name"]), set()).add(digest)
    return hashes


def locked(entries: list[tuple[str, str | None]], hashes: dict[str, set[str]]) -> str:
    lines = []
    for line, pin in entries:
        if pin is None:
            lines.append(line)
            continue
        digests = sorted(hashes[normalized(pin.split("==")[0])])
        lines.append(" \\\n".join([pin, *(f"    --hash=sha256:{digest}" for digest in digests)]))
    return "\n".join(lines) + "\n"


def lock(path: Path) -> None:
    try:
        entries = requirement_lines(path.read_text())
    except ValueError as error:
        raise SystemExit(f"lock: {path.name}: {error}") from None
    pins = [pin for _, pin in entries if pin]
    hashes: dict[str, set[str]] = {}
    for architecture in ARCHITECTURES:
        for name, digests in wheel_hashes(pins, architecture).items():
            hashes.setdefault(name, set()).update(digests)
    missing = [pin for pin in pins if normalized(pin.split("==")[0]) not in hashes]
    if missing:
        raise SystemExit(f"lock: no wheel found for {', '.join(missing)}")
    path.write_text(locked(entries, hashes))
    print(f"lock: {path.name}: {len(pins)} pins, {sum(map(len, hashes.values()))} wheel hashes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="pinned requirement files to rewrite")
    for path in parser.parse_args(argv).files:
        lock(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
