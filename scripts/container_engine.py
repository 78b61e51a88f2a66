"""The container engine as the delivery scripts drive it: commands, docker or podman, one container.

Standard library only, like every script that uses it (scripts/container_test.py, scripts/sbom.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Build logs, the container's log and the SBOM's build log land here, for CI to keep.
ARTIFACTS = ROOT / "test-artifacts"
# Unique per run: two runs on one machine (shared podman storage) must never touch each other's container.
CONTAINER_NAME = f"crypto-predict-test-{os.getpid()}"
CONTAINER_PORT = 8080
CONTAINER_TMP = "/tmp"  # noqa: S108  # nosec B108  # the container's own /tmp, a tmpfs, not the host's
COMMAND_TIMEOUT = 120
STOP_TIMEOUT = 20


# ---------------------------------------------------------------- running commands


def run(command: list[str], timeout: float = COMMAND_TIMEOUT, stdin: str | None = None):
    """Run a command, capturing its output; never raises on a non-zero exit."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=stdin, check=False)


def run_merged(command: list[str], timeout: float) -> tuple[int, str]:
    """Run a command with stderr merged into stdout, in order (a build log); its exit code and output."""
    result = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False
    )
    return result.returncode, result.stdout


def tail(text: str, lines: int = 30) -> str:
    """The last `lines` lines of a command's output, for a failure message."""
    return "\n".join(text.strip().splitlines()[-lines:])


def works(command: list[str]) -> bool:
    """True when the command exists and exits 0 (a docker CLI without a daemon does not)."""
    if shutil.which(command[0]) is None:
        return False
    try:
        return run(command, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# ---------------------------------------------------------------- the container engine


@dataclass(frozen=True)
class Engine:
    """docker or podman, with the few flags in which they differ."""

    name: str

    def build_flags(self) -> list[str]:
        """The flags `build` needs on this engine."""
        if self.name == "podman":
            # Podman writes OCI images by default, and OCI images drop HEALTHCHECK. The host's
            # network is how ../shared/tools/container-env.sh (machines without Docker) builds.
            return ["--format", "docker", "--network", "host"]
        return []

    def run_flags(self) -> list[str]:
        """The flags `run` needs on this engine."""
        if self.name == "podman":
            # Docker's --read-only semantics: no tmpfs besides the one asked for. And no systemd
            # timer for the health check (machines without systemd): the test runs it itself.
            return ["--read-only-tmpfs=false", "--health-interval=disable"]
        return []


def choose_engine(requested: str | None) -> Engine:
    """The engine asked for, else docker when its daemon answers, else podman."""
    if requested:
        if requested not in ("docker", "podman"):
            raise SystemExit(f"container-test: unknown engine {requested!r} (docker or podman)")
        return Engine(requested)
    for name in ("docker", "podman"):
        if works([name, "info"]):
            return Engine(name)
    raise SystemExit(
        "container-test: neither docker nor podman is usable here. On machines without Docker, "
        'run eval "$(../shared/tools/container-env.sh)" first (see its header).'
    )


# ---------------------------------------------------------------- images


def image_size(engine: Engine, image: str) -> int:
    """The image's size in bytes, as the engine reports it."""
    return int(run([engine.name, "image", "inspect", "-f", "{{.Size}}", image]).stdout.strip())


def base_image_size(engine: Engine) -> int | None:
    """The size of the image the Dockerfile's stages start FROM, as this engine has it."""
    match = re.search(r"^FROM\s+(\S+)\s+AS\s+base\s*$", (ROOT / "Dockerfile").read_text(), re.M | re.I)
    result = run([engine.name, "image", "inspect", "-f", "{{.Size}}", match.group(1)]) if match else None
    return int(result.stdout.strip()) if result and result.returncode == 0 else None


def image_config(engine: Engine, image: str) -> dict:
    """The image's config: its user, labels, health check."""
    result = run([engine.name, "image", "inspect", "-f", "{{json .Config}}", image])
    return json.loads(result.stdout)


def declared_healthcheck(engine: Engine, image: str) -> list[str]:
    """The image's HEALTHCHECK test, e.g. ["CMD", "python", ...] ([] when it has none)."""
    # One template for both engines: podman keeps the health check beside the OCI config.
    result = run([engine.name, "image", "inspect", "-f", "{{json .Config.Healthcheck}}", image])
    return (json.loads(result.stdout or "null") or {}).get("Test") or []


# ---------------------------------------------------------------- the test's container


def start_container(engine: Engine, image: str, port: int) -> subprocess.CompletedProcess:
    """Start the image as production would, but locked down: read-only root, only /tmp writable."""
    return run(
        [
            engine.name,
            "run",
            "--detach",
            "--name",
            CONTAINER_NAME,
            "--read-only",
            "--tmpfs",
            CONTAINER_TMP,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--publish",
            f"127.0.0.1:{port}:{CONTAINER_PORT}",
            *engine.run_flags(),
            image,
        ]
    )


def exec_in_container(engine: Engine, *command: str) -> subprocess.CompletedProcess:
    """Run a command inside the running container."""
    return run([engine.name, "exec", CONTAINER_NAME, *command])


def is_running(engine: Engine) -> bool:
    """True while the container runs."""
    result = run([engine.name, "inspect", "-f", "{{.State.Running}}", CONTAINER_NAME])
    return result.stdout.strip() == "true"


def container_logs(engine: Engine) -> str:
    """Everything the container wrote, stdout then stderr."""
    result = run([engine.name, "logs", CONTAINER_NAME])
    return result.stdout + result.stderr


def stop_container(engine: Engine) -> tuple[int | None, float]:
    """SIGTERM the container (engine stop) and return its exit code and how long stopping took."""
    started = time.monotonic()
    run([engine.name, "stop", "-t", str(STOP_TIMEOUT), CONTAINER_NAME], timeout=STOP_TIMEOUT + 30)
    seconds = time.monotonic() - started
    code = run([engine.name, "inspect", "-f", "{{.State.ExitCode}}", CONTAINER_NAME]).stdout.strip()
    return (int(code) if code.lstrip("-").isdigit() else None), seconds


def remove_container(engine: Engine) -> None:
    """Remove the container, running or not."""
    run([engine.name, "rm", "--force", CONTAINER_NAME])
