#!/usr/bin/env python3
"""Build the image, run it locked down, and check it from the outside (`make container-test`).

Steps: build the multi-stage Dockerfile (snapshot data by default, so no network is needed beyond
the package registries), check what the image holds and what it must not hold (its Python
packages are exactly requirements-image.txt's, and its SBOM lists exactly those), start it with a
read-only root filesystem, no capabilities and its non-root user on a free 127.0.0.1 port, check
/health, that every model file loaded, real /bitcoin answers, every route of its OpenAPI document
and the page's files (gzip-encoded too), bad requests, the image's own HEALTHCHECK and labels (and
the version /openapi.json states), and a clean stop on SIGTERM; then build
scripts/single-stage.Dockerfile for the size comparison. Last, sizes (with their ratio, and an
estimate on the published base image) and timings, and one closing line
"container-test: N passed, N failed". Exit status 1 when any check failed.

Works with docker or podman (whichever works; CONTAINER=podman or --engine to choose).
The parts live beside it: container_build.py builds, container_image_checks.py and
container_http_checks.py check, container_report.py prints, container_engine.py drives the engine.
Standard library only: it runs before, and apart from, the project's virtual environment.
Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from container_build import BuildArgs, build, build_args
from container_engine import (
    ARTIFACTS,
    ROOT,
    Engine,
    base_image_size,
    choose_engine,
    container_logs,
    image_config,
    image_size,
    is_running,
    remove_container,
    start_container,
    stop_container,
    tail,
    works,
)
from container_http_checks import (
    check_answers,
    check_document_version,
    check_models_loaded,
    check_page_compression,
    check_routes,
    get,
)
from container_image_checks import check_contents, check_healthcheck, check_labels, check_locked_down
from container_report import Figures, Results, print_figures, size_ratio
from processes import free_port

IMAGE = "crypto-predict:container-test"
SINGLE_STAGE_IMAGE = "crypto-predict:single-stage"
SINGLE_STAGE_DOCKERFILE = ROOT / "scripts" / "single-stage.Dockerfile"
HEALTHY_TIMEOUT = 180  # loading the model and precomputing every answer takes seconds, not minutes
POLL_INTERVAL = 0.2
# The final image may weigh at most this share of the single-stage one built on the same base.
MAX_SIZE_RATIO = 0.6


def wait_until_healthy(engine: Engine, base_url: str) -> float | None:
    """Poll /health until it answers 200; None when the container exits or the time runs out."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if get(f"{base_url}/health")[0] == 200:
                return time.monotonic()
        except OSError:
            pass  # not listening yet, or the connection was reset while it starts
        if not is_running(engine):
            return None
        time.sleep(POLL_INTERVAL)
    return None


def exercise_container(
    engine: Engine,
    image: str,
    results: Results,
    figures: Figures,
    args: BuildArgs | None,
    model_files: list[str],
) -> None:
    """Run the image and check it from outside and inside; always removes the container."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    start = start_container(engine, image, port)
    try:
        if not results.check("container starts", start.returncode == 0, on_failure=tail(start.stderr, 5)):
            return
        healthy_at = wait_until_healthy(engine, base_url)
        if healthy_at is None:
            results.check("becomes healthy", False, on_failure="\n" + tail(container_logs(engine)))
            return
        figures.healthy_seconds = healthy_at - started
        results.check("becomes healthy", True, f"{figures.healthy_seconds:.1f} s after start")
        config = image_config(engine, image)
        check_answers(results, base_url)
        check_models_loaded(results, base_url, model_files)
        check_routes(results, base_url)
        check_page_compression(results, base_url)
        check_healthcheck(results, engine, image)
        check_locked_down(results, engine, config)
        check_labels(results, config, args)
        check_document_version(results, base_url, config)
        code, figures.stop_seconds = stop_container(engine)
        results.check(
            "stops cleanly on SIGTERM (exit 0)", code == 0, f"exit {code}, {figures.stop_seconds:.1f} s"
        )
    finally:
        (ARTIFACTS / "container-run.log").write_text(container_logs(engine))
        remove_container(engine)


def check_image(
    engine: Engine, image: str, results: Results, figures: Figures, args: BuildArgs | None
) -> None:
    """Build the image (or find the one named), then check what it holds and how it runs."""
    if args is not None:
        figures.build_seconds = build(engine, image, ROOT / "Dockerfile", args, "container-build.log")
        built = results.check("multi-stage image builds", figures.build_seconds is not None)
    else:
        built = results.check("image exists", works([engine.name, "image", "inspect", image]))
    if built:
        figures.size = image_size(engine, image)
        figures.base_size = base_image_size(engine)
        found = check_contents(results, engine, image)
        exercise_container(engine, image, results, figures, args, found["models"] if found else [])


def compare_single_stage(engine: Engine, results: Results, figures: Figures, args: BuildArgs) -> None:
    """Build scripts/single-stage.Dockerfile and check the image's size against it."""
    figures.single_stage_build_seconds = build(
        engine, SINGLE_STAGE_IMAGE, SINGLE_STAGE_DOCKERFILE, args, "single-stage-build.log"
    )
    if results.check("single-stage image builds", figures.single_stage_build_seconds is not None):
        figures.single_stage_size = image_size(engine, SINGLE_STAGE_IMAGE)
        ratio = size_ratio(figures)
        results.check(
            f"the image is at most {MAX_SIZE_RATIO}x the single-stage one",
            ratio is not None and ratio <= MAX_SIZE_RATIO,
            "?" if ratio is None else f"{ratio:.2f}x",
        )


def main(argv: list[str] | None = None) -> int:
    """Run the whole test; 1 when any check failed."""
    options = parse_args(argv)
    engine = choose_engine(options.engine)
    ARTIFACTS.mkdir(exist_ok=True)
    image = options.image or IMAGE
    args = None if options.image else build_args(options.source)
    results, figures = Results(), Figures(label="multi-stage" if args else "image")
    source = f"data source {args.source}" if args else "built elsewhere"
    print(f"container-test with {engine.name}: image {image}, {source}", flush=True)
    check_image(engine, image, results, figures, args)
    if options.compare and args is not None:
        compare_single_stage(engine, results, figures, args)
    print_figures(figures)
    print(results.closing_line())
    return 0 if not results.failed else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options (the engine defaults to $CONTAINER)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine",
        default=os.environ.get("CONTAINER") or None,
        help="docker or podman (default: $CONTAINER, else docker when its daemon answers, else podman)",
    )
    parser.add_argument(
        "--source",
        default="snapshot",
        choices=["snapshot", "alpaca"],
        help="training data for the build (default snapshot: offline)",
    )
    parser.add_argument(
        "--image",
        help="check this existing image instead of building one (the pipeline checks what it built)",
    )
    parser.add_argument(
        "--no-compare",
        dest="compare",
        action="store_false",
        help="skip the single-stage build that the image size is compared with",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
