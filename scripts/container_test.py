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
Standard library only: it runs before, and apart from, the project's virtual environment.
Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from lock_requirements import read_pins
from processes import free_port
from version import Version

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
IMAGE = "crypto-predict:container-test"
SINGLE_STAGE_IMAGE = "crypto-predict:single-stage"
SINGLE_STAGE_DOCKERFILE = ROOT / "scripts" / "single-stage.Dockerfile"
# Unique per run: two runs on one machine (shared podman storage) must never touch each other's container.
CONTAINER_NAME = f"crypto-predict-test-{os.getpid()}"
CONTAINER_PORT = 8080
CONTAINER_TMP = "/tmp"  # noqa: S108  # nosec B108  # the container's own /tmp, a tmpfs, not the host's
BUILD_TIMEOUT = 3600  # seconds; a cold build downloads every wheel
COMMAND_TIMEOUT = 120
HEALTHY_TIMEOUT = 180  # loading the model and precomputing every answer takes seconds, not minutes
STOP_TIMEOUT = 20
POLL_INTERVAL = 0.2
# Where the api-deps stage writes the CycloneDX SBOM of the server's environment (see the Dockerfile).
SBOM_PATH = "/opt/venv/sbom.cdx.json"
# The final image may weigh at most this share of the single-stage one built on the same base.
MAX_SIZE_RATIO = 0.6
# python:3.11-slim as published, for the estimate on a machine whose base is a stand-in: its
# on-disk size (all layers, linux/amd64) in docker-library/repo-info, repos/python/local/3.11-slim.md
# (python:3.11.15-slim-trixie, 2026-08-05).
PUBLISHED_BASE = ("python:3.11-slim", 124.84e6, "docker-library/repo-info, python:3.11.15-slim-trixie")

# Runs inside the image, as root so that nothing is hidden by permissions, with its own Python:
# reports what the final image must not hold. Sent on stdin, so it never becomes part of the image.
IMAGE_PROBE = r"""
import importlib.metadata, importlib.util, json, os, re, shutil
SKIP = {"/proc", "/sys", "/dev"}
found = {"train.py": [], "training": [], "notebooks": [], "snapshots": [], "pip_caches": [], "alpaca": []}
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
    for name in dirs:
        path = os.path.join(root, name)
        if name == "pip" and os.path.basename(root) == ".cache":
            found["pip_caches"].append(path)
        if name == "training" and os.path.isfile(os.path.join(path, "pipeline.py")):
            found["training"].append(path)
        if name == "alpaca" or name.startswith("alpaca_py-"):
            found["alpaca"].append(path)
    for name in files:
        path = os.path.join(root, name)
        if name == "train.py":
            found["train.py"].append(path)
        elif name.endswith(".ipynb"):
            found["notebooks"].append(path)
        elif name.endswith("_1d.csv") or name == "PROVENANCE.md":
            found["snapshots"].append(path)
found["alpaca_importable"] = importlib.util.find_spec("alpaca") is not None
found["matplotlib_importable"] = importlib.util.find_spec("matplotlib") is not None
def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()
# What the server's interpreter can import, as installed distributions: {name: version}.
found["distributions"] = {
    normalized(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
}
try:
    with open(SBOM_PATH) as sbom_file:
        sbom = json.load(sbom_file)
    found["sbom"] = {
        "format": f"{sbom.get('bomFormat')} {sbom.get('specVersion')}",
        "components": {normalized(c["name"]): c.get("version") for c in sbom.get("components", [])},
    }
except (OSError, ValueError, KeyError, TypeError) as error:
    found["sbom"] = {"error": f"{type(error).__name__}: {error}"}
found["compilers"] = [c for c in ("gcc", "cc", "c++", "g++", "clang", "make") if shutil.which(c)]
found["app"] = sorted(os.listdir("/app"))
found["models"] = sorted(os.listdir("/app/models"))
print(json.dumps(found))
"""


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
        if self.name == "podman":
            # Podman writes OCI images by default, and OCI images drop HEALTHCHECK. The host's
            # network is how ../shared/tools/container-env.sh (machines without Docker) builds.
            return ["--format", "docker", "--network", "host"]
        return []

    def run_flags(self) -> list[str]:
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


# ---------------------------------------------------------------- results


@dataclass
class Results:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "", *, on_failure: str = "") -> bool:
        """Record and print one check; `detail` is always shown, `on_failure` only when it failed."""
        (self.passed if ok else self.failed).append(name)
        shown = detail if ok else " ".join(part for part in (detail, on_failure) if part)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + shown if shown else ''}", flush=True)
        return ok

    def closing_line(self) -> str:
        return f"container-test: {len(self.passed)} passed, {len(self.failed)} failed"


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildArgs:
    source: str
    build_time: str
    version: str
    revision: str

    def flags(self) -> list[str]:
        values = {
            "SOURCE": self.source,
            "BUILD_TIME": self.build_time,
            "VERSION": self.version,
            "REVISION": self.revision,
        }
        return [flag for key, value in values.items() for flag in ("--build-arg", f"{key}={value}")]


def git_output(*args: str, default: str) -> str:
    try:
        result = run(["git", "-C", str(ROOT), *args], timeout=30)
    except FileNotFoundError:
        return default
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else default


def build_version() -> str:
    """X.Y.Z when HEAD carries the tag vX.Y.Z, else 0.0.0+g<commit> (.dirty with changes not committed).

    The image states it in /openapi.json, where generated clients take it as their package version:
    PEP 440 and semver both accept these (`git describe` output, such as v1.2.3-4-gabc, they do not).
    """
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


def image_size(engine: Engine, image: str) -> int:
    return int(run([engine.name, "image", "inspect", "-f", "{{.Size}}", image]).stdout.strip())


def base_image_size(engine: Engine) -> int | None:
    """The size of the image the Dockerfile's stages start FROM, as this engine has it."""
    match = re.search(r"^FROM\s+(\S+)\s+AS\s+base\s*$", (ROOT / "Dockerfile").read_text(), re.M | re.I)
    result = run([engine.name, "image", "inspect", "-f", "{{.Size}}", match.group(1)]) if match else None
    return int(result.stdout.strip()) if result and result.returncode == 0 else None


def image_config(engine: Engine, image: str) -> dict:
    result = run([engine.name, "image", "inspect", "-f", "{{json .Config}}", image])
    return json.loads(result.stdout)


# ---------------------------------------------------------------- running the image


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


def is_running(engine: Engine) -> bool:
    result = run([engine.name, "inspect", "-f", "{{.State.Running}}", CONTAINER_NAME])
    return result.stdout.strip() == "true"


def container_logs(engine: Engine) -> str:
    result = run([engine.name, "logs", CONTAINER_NAME])
    return result.stdout + result.stderr


def get(url: str) -> tuple[int, dict]:
    """GET a URL on 127.0.0.1; the status and the JSON object it answered ({} for anything else)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # nosec B310  # 127.0.0.1 only
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        parsed = json.loads(body)
    except ValueError:
        return status, {}
    return status, parsed if isinstance(parsed, dict) else {}


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


def stop_container(engine: Engine) -> tuple[int | None, float]:
    """SIGTERM the container (engine stop) and return its exit code and how long stopping took."""
    started = time.monotonic()
    run([engine.name, "stop", "-t", str(STOP_TIMEOUT), CONTAINER_NAME], timeout=STOP_TIMEOUT + 30)
    seconds = time.monotonic() - started
    code = run([engine.name, "inspect", "-f", "{{.State.ExitCode}}", CONTAINER_NAME]).stdout.strip()
    return (int(code) if code.lstrip("-").isdigit() else None), seconds


def remove_container(engine: Engine) -> None:
    run([engine.name, "rm", "--force", CONTAINER_NAME])


# ---------------------------------------------------------------- checks


def check_answers(results: Results, base_url: str) -> None:
    status, body = get(f"{base_url}/health")
    results.check("GET /health is 200 with status ok", status == 200 and body.get("status") == "ok")
    # The days to ask about come from the model itself: the range it serves depends on the data
    # and on the configuration the backtest chose. Its first day, and the first day it forecasts.
    btc = body.get("models", {}).get("btc", {})
    if not btc:
        results.check("/health describes the BTC model", False, json.dumps(body))
        return
    first_forecast = date.fromisoformat(btc["data_last_day"]) + timedelta(days=1)
    for day in (date.fromisoformat(btc["serves"]["first_day"]), first_forecast):
        check_forecast(results, base_url, day)

    for query in ("date=2024-13-45", ""):
        status, body = get(f"{base_url}/bitcoin?{query}")
        results.check(
            f"GET /bitcoin?{query} is 400 with an error",
            status == 400 and isinstance(body.get("error"), str),
            json.dumps(body),
        )


def check_models_loaded(results: Results, base_url: str, model_files: list[str]) -> None:
    """Every model of /app/models is served: /models has a card for each .json and its .pkl model."""
    assets = sorted(name.removesuffix(".json") for name in model_files if name.endswith(".json"))
    # A metadata names its model: <asset>.<sha256[:16]>.pkl since format 3 (artifact/), <asset>.pkl before.
    model_name = re.compile(r"(.+?)(\.[0-9a-f]{16})?\.pkl")
    pairs = set(assets) <= {found[1] for name in model_files if (found := model_name.fullmatch(name))}
    status, cards = get(f"{base_url}/models")
    results.check(
        "every model file loads (a card in /models for each)",
        status == 200 and bool(assets) and pairs and sorted(cards) == assets,
        ", ".join(assets),
        on_failure=f"files {model_files}, cards {sorted(cards)}",
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the answer it is (e.g. /docs is a 302), rather than following it."""

    def redirect_request(self, *args, **kwargs):
        return None


def exchange(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """The status, headers and body a GET of a 127.0.0.1 URL answers, redirects not followed."""
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # nosec B310  # 127.0.0.1 only
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def answer(url: str) -> tuple[int, bytes]:
    """The status and body a GET of a 127.0.0.1 URL answers, redirects not followed."""
    status, _, body = exchange(url)
    return status, body


def route_queries(parameters: set[str], served: dict) -> str:
    """A query that the route accepts for one model: a day it forecasts, or its last week of data."""
    if "date" in parameters:
        return f"?date={date.fromisoformat(served['data_last_day']) + timedelta(days=1)}"
    if {"start", "end"} <= parameters:
        end = date.fromisoformat(served["data_last_day"])
        return f"?start={end - timedelta(days=6)}&end={end}"
    return ""


def check_routes(results: Results, base_url: str) -> None:
    """Every GET route of the server's own OpenAPI document answers as documented, for every
    asset, with no 4xx or 5xx; and so do the files the page loads."""
    _, health = get(f"{base_url}/health")
    status, document = get(f"{base_url}/openapi.json")
    models = health.get("models", {})
    if not results.check("/openapi.json and /health answer", status == 200 and bool(models)):
        return
    failures, asked = [], 0
    for path, operations in document.get("paths", {}).items():
        operation = operations.get("get")
        if operation is None:
            continue
        parameters = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        # A route per asset, or one (/bitcoin, /models) asked with BTC's days.
        assets = list(models) if "{asset}" in path else ["btc" if "btc" in models else next(iter(models))]
        for asset in assets:
            url = path.replace("{asset}", asset) + route_queries(parameters, models[asset])
            asked += 1
            code = answer(base_url + url)[0]
            if code >= 400 or str(code) not in operation.get("responses", {}):
                failures.append(f"{url} {code}")
    page = answer(f"{base_url}/")[1].decode(errors="replace")
    for name in re.findall(r'(?:href|src)="(web/[^"]+)"', page):
        asked += 1
        if (code := answer(f"{base_url}/{name}")[0]) != 200:
            failures.append(f"/{name} {code}")
    results.check(
        "every documented route and the page's files answer",
        asked > 0 and not failures,
        f"{asked} requests",
        on_failure="; ".join(failures),
    )


def check_page_compression(results: Results, base_url: str) -> None:
    """The image made the gzip copies of the page's files: each is sent gzip-encoded when asked,
    and decodes to the file itself."""
    page = answer(f"{base_url}/")[1].decode(errors="replace")
    failures, sizes = [], {}
    for name in re.findall(r'(?:href|src)="(web/[^"]+)"', page):
        identity = answer(f"{base_url}/{name}")[1]
        _, headers, body = exchange(f"{base_url}/{name}", {"Accept-Encoding": "gzip"})
        encoding = headers.get("Content-Encoding")
        if encoding != "gzip" or gzip.decompress(body) != identity:
            failures.append(f"/{name} {encoding}")
        sizes[name] = (len(identity), len(body))
    largest = max(sizes, key=lambda name: sizes[name][0], default=None)
    results.check(
        "the page's files are sent gzip-encoded to clients that accept gzip",
        bool(sizes) and not failures,
        f"{largest}: {sizes[largest][0]} -> {sizes[largest][1]} bytes" if largest else "no files",
        on_failure="; ".join(failures),
    )


def check_forecast(results: Results, base_url: str, day: date) -> None:
    status, body = get(f"{base_url}/bitcoin?date={day}")
    numbers = [body.get(key) for key in ("prediction_low", "prediction", "prediction_high")]
    sane = all(isinstance(n, float) and math.isfinite(n) for n in numbers) and numbers == sorted(numbers)
    http_day = format_datetime(datetime.combine(day, datetime.min.time(), UTC), usegmt=True)
    results.check(
        f"GET /bitcoin?date={day} is a forecast",
        status == 200 and body.get("date") == http_day and sane,
        json.dumps(body),
    )


def declared_healthcheck(engine: Engine, image: str) -> list[str]:
    """The image's HEALTHCHECK test, e.g. ["CMD", "python", ...] ([] when it has none)."""
    # One template for both engines: podman keeps the health check beside the OCI config.
    result = run([engine.name, "image", "inspect", "-f", "{{json .Config.Healthcheck}}", image])
    return (json.loads(result.stdout or "null") or {}).get("Test") or []


def check_healthcheck(results: Results, engine: Engine, image: str) -> None:
    """The image's own HEALTHCHECK command, run inside the container, passes."""
    test = declared_healthcheck(engine, image)
    if test[:1] == ["CMD"]:
        command = test[1:]
    elif test[:1] == ["CMD-SHELL"]:
        command = ["/bin/sh", "-c", test[1]]
    else:
        results.check("the image declares a HEALTHCHECK", False, f"found {test!r}")
        return
    result = run([engine.name, "exec", CONTAINER_NAME, *command])
    results.check("the image's HEALTHCHECK passes", result.returncode == 0, on_failure=tail(result.stderr, 3))


def check_locked_down(results: Results, engine: Engine, config: dict) -> None:
    uid = run([engine.name, "exec", CONTAINER_NAME, "id", "-u"]).stdout.strip()
    results.check(
        "runs as a non-root user", uid.isdigit() and uid != "0", f"uid {uid}, USER {config.get('User')!r}"
    )
    # /var/tmp is writable by every user on a normal root filesystem: only --read-only stops this.
    write = run([engine.name, "exec", CONTAINER_NAME, "python", "-c", "open('/var/tmp/probe', 'w')"])
    results.check(
        "root filesystem is read-only",
        write.returncode != 0 and "Read-only file system" in write.stderr,
        tail(write.stderr, 1),
    )


def check_contents(results: Results, engine: Engine, image: str) -> dict | None:
    """What the final image holds: the serving code, the models, the page, and no build leftovers.

    Returns what the probe found (None when the image could not be inspected).
    """
    probe = run(
        [engine.name, "run", "--rm", "-i", "--network", "none", "--user", "0", image, "python", "-"],
        stdin=f"SBOM_PATH = {SBOM_PATH!r}\n{IMAGE_PROBE}",
    )
    if not results.check(
        "the image can be inspected", probe.returncode == 0, on_failure=tail(probe.stderr, 3)
    ):
        return None
    found = json.loads(probe.stdout)
    results.check(
        "/app holds api.py, artifact/, serving/, models/ and web/ only",
        found["app"] == ["api.py", "artifact", "models", "serving", "web"],
        str(found["app"]),
    )
    models_ok = bool(found["models"]) and all(name.endswith((".pkl", ".json")) for name in found["models"])
    results.check("/app/models holds model files only", models_ok, str(found["models"]))
    results.check("no train.py", not found["train.py"], str(found["train.py"]))
    results.check("no training package", not found["training"], str(found["training"]))
    alpaca = found["alpaca"] + (["importable"] if found["alpaca_importable"] else [])
    results.check("no alpaca-py", not alpaca, str(alpaca))
    results.check("no notebook", not found["notebooks"], str(found["notebooks"]))
    results.check("no data snapshot", not found["snapshots"], str(found["snapshots"]))
    results.check("no pip cache", not found["pip_caches"], str(found["pip_caches"]))
    results.check("no compilers", not found["compilers"], str(found["compilers"]))
    check_packages(results, found)
    return found


def difference(expected: dict[str, str], found: dict[str, str]) -> str:
    """What differs between two {name: version} sets, in words ("" when nothing does)."""
    parts = [
        ("missing", sorted(f"{name}=={expected[name]}" for name in expected.keys() - found.keys())),
        ("unexpected", sorted(f"{name}=={found[name]}" for name in found.keys() - expected.keys())),
        (
            "other versions",
            sorted(
                f"{name} {found[name]} (not {expected[name]})"
                for name in expected.keys() & found.keys()
                if expected[name] != found[name]
            ),
        ),
    ]
    return "; ".join(f"{label}: {', '.join(names)}" for label, names in parts if names)


def check_packages(results: Results, found: dict) -> None:
    """The server's environment is exactly requirements-image.txt, and the SBOM says exactly that."""
    image = read_pins(ROOT / "requirements-image.txt")
    installed = found["distributions"]
    results.check(
        "Python packages are exactly requirements-image.txt's",
        installed == image,
        f"{len(installed)} distributions",
        on_failure=difference(image, installed),
    )
    # What requirements-api.txt has and the image leaves out: prophet's plotting stack.
    left_out = sorted(read_pins(ROOT / "requirements-api.txt").keys() - image.keys())
    present = sorted(name for name in left_out if name in installed)
    if found["matplotlib_importable"]:
        present.append("matplotlib (importable)")
    results.check(f"no plotting stack ({', '.join(left_out)})", bool(left_out) and not present, str(present))
    sbom = found["sbom"]
    if "error" in sbom:
        results.check(f"an SBOM at {SBOM_PATH}", False, sbom["error"])
        return
    listed = sbom["components"]
    results.check(
        "the SBOM lists exactly the installed packages",
        sbom["format"].startswith("CycloneDX ") and listed == installed,
        f"{sbom['format']}, {len(listed)} components",
        on_failure=difference(installed, listed),
    )


def check_labels(results: Results, config: dict, args: BuildArgs | None) -> None:
    """The OCI labels hold the build's values (or, for an image built elsewhere, real values)."""
    labels = config.get("Labels") or {}
    keys = ("version", "revision", "created")
    found = {key: labels.get(f"org.opencontainers.image.{key}") for key in keys}
    if args is not None:
        expected = {"version": args.version, "revision": args.revision, "created": args.build_time}
        ok = found == expected
    else:
        ok = all(value and value not in ("0.0.0+dev", "unknown") for value in found.values())
    results.check("OCI labels carry version, revision and created", ok, str(found))


def check_document_version(results: Results, base_url: str, config: dict) -> None:
    """/openapi.json states the version the image is labelled with (generated clients take it)."""
    label = (config.get("Labels") or {}).get("org.opencontainers.image.version")
    stated = get(f"{base_url}/openapi.json")[1].get("info", {}).get("version")
    results.check("/openapi.json states the image's version", bool(label) and stated == label, str(stated))


# ---------------------------------------------------------------- the whole test


@dataclass
class Figures:
    label: str = "multi-stage"  # what the image is: the Dockerfile's, or one built elsewhere
    build_seconds: float | None = None
    single_stage_build_seconds: float | None = None
    size: int | None = None
    base_size: int | None = None  # the base image's, as the engine has it (maybe a stand-in)
    single_stage_size: int | None = None
    healthy_seconds: float | None = None
    stop_seconds: float | None = None


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


def megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"


def size_ratio(figures: Figures) -> float | None:
    """The final image's size as a share of the single-stage one's (same base, same engine)."""
    if not (figures.size and figures.single_stage_size):
        return None
    return figures.size / figures.single_stage_size


def print_figures(figures: Figures) -> None:
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
    if figures.size and figures.base_size:
        name, published, source = PUBLISHED_BASE
        added = figures.size - figures.base_size
        print(
            f"  published base   about {megabytes(added + published)} on {name} as published"
            f" ({megabytes(published)}, {source}): the stages add {megabytes(added)} to the base"
            f" here ({megabytes(figures.base_size)})"
        )
    print(f"  build time       {build_time}")
    print(f"  time to healthy  {seconds(figures.healthy_seconds)} (from run to the first 200 from /health)")
    print(f"  stop on SIGTERM  {seconds(figures.stop_seconds)}")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    engine = choose_engine(options.engine)
    ARTIFACTS.mkdir(exist_ok=True)
    image = options.image or IMAGE
    args = None if options.image else build_args(options.source)
    results, figures = Results(), Figures(label="multi-stage" if args else "image")
    source = f"data source {args.source}" if args else "built elsewhere"
    print(f"container-test with {engine.name}: image {image}, {source}", flush=True)

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
    if options.compare and args is not None:
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
    print_figures(figures)
    print(results.closing_line())
    return 0 if not results.failed else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
