"""Building an image for the container test: the build arguments, the version it states, the build.

Standard library only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from container_engine import ARTIFACTS, ROOT, Engine, run, run_merged, tail
from version import Version

BUILD_TIMEOUT = 3600  # seconds; a cold build downloads every wheel


@dataclass(frozen=True)
class BuildArgs:
    """The Dockerfile's build arguments, as this build sets them."""

    source: str
    build_time: str
    version: str
    revision: str

    def flags(self) -> list[str]:
        """The --build-arg flags that pass these values."""
        values = {
            "SOURCE": self.source,
            "BUILD_TIME": self.build_time,
            "VERSION": self.version,
            "REVISION": self.revision,
        }
        return [flag for key, value in values.items() for flag in ("--build-arg", f"{key}={value}")]


def git_output(*args: str, default: str) -> str:
    """What a git command prints in this repository, or `default` when git fails or prints nothing."""
    try:
        result = run(["git", "-C", str(ROOT), *args], timeout=30)
    except FileNotFoundError:
        return default
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else default


def build_version() -> str:
    """X.Y.Z when HEAD carries the tag vX.Y.Z, else 0.0.0+g<commit> (.dirty with changes not committed)."""
    # The image states it in /openapi.json, where generated clients take it as their package version:
    # PEP 440 and semver both accept these (`git describe` output, such as v1.2.3-4-gabc, they do not).
    tags = git_output("tag", "--points-at", "HEAD", default="").split()
    released = sorted(version for version in map(Version.from_tag, tags) if version)
    if released:
        return str(released[-1])
    commit = git_output("rev-parse", "--short", "HEAD", default="")
    if not commit:
        return "0.0.0+dev"
    dirty = ".dirty" if git_output("status", "--porcelain", default="") else ""
    return f"0.0.0+g{commit}{dirty}"


def build_args(source: str) -> BuildArgs:
    """The build arguments for a build now, of this checkout, on `source` data."""
    return BuildArgs(
        source=source,
        build_time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        version=build_version(),
        revision=git_output("rev-parse", "HEAD", default="unknown"),
    )


def build(engine: Engine, image: str, dockerfile: Path, args: BuildArgs, log_name: str) -> float | None:
    """Build an image; return the seconds it took, or None (with the log's tail shown) on failure."""
    command = [engine.name, "build", *engine.build_flags(), "-f", str(dockerfile), "-t", image]
    started = time.monotonic()
    code, output = run_merged([*command, *args.flags(), str(ROOT)], timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - started
    log = ARTIFACTS / log_name
    log.write_text(output)
    if code != 0:
        print(f"{' '.join(command)} failed (full log: {log}):\n{tail(output)}")
        return None
    return seconds
