"""What the container test reports: each check as it runs, the figures, and its closing line.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# python:3.11-slim as published, for the estimate on a machine whose base is a stand-in: its
# on-disk size (all layers, linux/amd64) in docker-library/repo-info, repos/python/local/3.11-slim.md
# (python:3.11.15-slim-trixie, 2026-08-05).
PUBLISHED_BASE = ("python:3.11-slim", 124.84e6, "docker-library/repo-info, python:3.11.15-slim-trixie")


@dataclass
class Results:
    """The names of the checks that passed and of those that failed."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "", *, on_failure: str = "") -> bool:
        """Record and print one check; `detail` is always shown, `on_failure` only when it failed."""
        (self.passed if ok else self.failed).append(name)
        shown = detail if ok else " ".join(part for part in (detail, on_failure) if part)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + shown if shown else ''}", flush=True)
        return ok

    def closing_line(self) -> str:
        """The last line of the output: "container-test: N passed, N failed"."""
        return f"container-test: {len(self.passed)} passed, {len(self.failed)} failed"


@dataclass
class Figures:
    """Sizes and timings, filled in as the test goes; None for what it did not measure."""

    label: str = "multi-stage"  # what the image is: the Dockerfile's, or one built elsewhere
    build_seconds: float | None = None
    single_stage_build_seconds: float | None = None
    size: int | None = None
    base_size: int | None = None  # the base image's, as the engine has it (maybe a stand-in)
    single_stage_size: int | None = None
    healthy_seconds: float | None = None
    stop_seconds: float | None = None


def megabytes(size: int | None) -> str:
    """A size in MB, or "?" when unknown."""
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def seconds(value: float | None) -> str:
    """A duration in seconds, or "?" when unknown."""
    return "?" if value is None else f"{value:.1f} s"


def size_ratio(figures: Figures) -> float | None:
    """The final image's size as a share of the single-stage one's (same base, same engine)."""
    if not (figures.size and figures.single_stage_size):
        return None
    return figures.size / figures.single_stage_size


def print_published_base(figures: Figures) -> None:
    """The image's size estimated on the published base, when this machine's base is a stand-in."""
    if figures.size and figures.base_size:
        name, published, source = PUBLISHED_BASE
        added = figures.size - figures.base_size
        print(
            f"  published base   about {megabytes(added + published)} on {name} as published"
            f" ({megabytes(published)}, {source}): the stages add {megabytes(added)} to the base"
            f" here ({megabytes(figures.base_size)})"
        )


def print_figures(figures: Figures) -> None:
    """Print the sizes (with the single-stage comparison when there is one) and the timings."""
    size = f"{figures.label} {megabytes(figures.size)}"
    build_time = f"{figures.label} {seconds(figures.build_seconds)}"
    ratio = size_ratio(figures)
    if figures.single_stage_size and ratio is not None:
        saved = figures.single_stage_size - (figures.size or 0)
        size += (
            f", single-stage {megabytes(figures.single_stage_size)}"
            f" (ratio {ratio:.2f}: {megabytes(saved)}, {100 * (1 - ratio):.1f}% less)"
        )
        build_time += f", single-stage {seconds(figures.single_stage_build_seconds)}"
    print("\nfigures")
    print(f"  image size       {size}")
    print_published_base(figures)
    print(f"  build time       {build_time}")
    print(f"  time to healthy  {seconds(figures.healthy_seconds)} (from run to the first 200 from /health)")
    print(f"  stop on SIGTERM  {seconds(figures.stop_seconds)}")
