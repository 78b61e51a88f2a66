#!/usr/bin/env python3
"""Copy out the CycloneDX SBOM of the image's Python environment (`make sbom`).

The image build makes it: the Dockerfile's api-deps stage runs cyclonedx-py (requirements-sbom.txt)
against the server's environment with that environment's own interpreter, offline, and the file
travels with the environment to /opt/venv/sbom.cdx.json in the final image. This script builds that
stage (or takes --image, e.g. one the container test or the pipeline built), copies the file out
of a created, never started, container and says what it lists. `make container-test` checks that
the SBOM in the final image lists exactly the packages installed there.

Docker or podman, as for the container test. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from container_engine import ARTIFACTS, ROOT, choose_engine, run, run_merged, tail
from container_image_checks import SBOM_PATH

DEPS_IMAGE = "crypto-predict:api-deps"
BUILD_TIMEOUT = 1800  # seconds; the first build downloads every wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=os.environ.get("CONTAINER") or None, help="docker or podman")
    parser.add_argument("--image", help="copy it from this image instead of building the api-deps stage")
    parser.add_argument("--output", type=Path, default=ROOT / "sbom.cdx.json", help="where to write it")
    options = parser.parse_args(argv)
    engine = choose_engine(options.engine)

    image = options.image or DEPS_IMAGE
    if not options.image:
        command = [engine.name, "build", *engine.build_flags(), "--target", "api-deps", "-t", image]
        code, output = run_merged([*command, str(ROOT)], timeout=BUILD_TIMEOUT)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "sbom-build.log").write_text(output)
        if code != 0:
            print(f"sbom: building the api-deps stage failed:\n{tail(output)}", file=sys.stderr)
            return 1

    name = f"crypto-predict-sbom-{os.getpid()}"
    created = run([engine.name, "create", "--name", name, image])
    if created.returncode != 0:
        print(f"sbom: cannot create a container of {image}: {tail(created.stderr, 3)}", file=sys.stderr)
        return 1
    try:
        copied = run([engine.name, "cp", f"{name}:{SBOM_PATH}", str(options.output)])
    finally:
        run([engine.name, "rm", "--force", name])
    if copied.returncode != 0:
        print(f"sbom: {image} has no {SBOM_PATH}: {tail(copied.stderr, 3)}", file=sys.stderr)
        return 1

    sbom = json.loads(options.output.read_text())
    components = sbom.get("components", [])
    print(
        f"sbom: {options.output} ({sbom.get('bomFormat')} {sbom.get('specVersion')}, from {image}):"
        f" {len(components)} components"
    )
    for component in sorted(components, key=lambda c: c["name"].lower()):
        print(f"  {component['name']} {component.get('version', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
