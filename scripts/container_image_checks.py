"""The container test's checks of the image itself: what it holds, its packages and SBOM, how it runs.

Standard library only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from container_build import BuildArgs
from container_engine import ROOT, Engine, declared_healthcheck, exec_in_container, run, tail
from container_report import Results
from lock_requirements import read_pins

# Where the api-deps stage writes the CycloneDX SBOM of the server's environment (see the Dockerfile).
SBOM_PATH = "/opt/venv/sbom.cdx.json"

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


# ---------------------------------------------------------------- what the image holds


def check_contents(results: Results, engine: Engine, image: str) -> dict | None:
    """What the final image holds: the serving code, the models, the page, and no build leftovers.
    Returns what the probe found (None when the image could not be inspected)."""
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
    check_leftovers(results, found)
    check_packages(results, found)
    return found


def check_leftovers(results: Results, found: dict) -> None:
    """None of what only the build stages need: training code, alpaca-py, data, caches, compilers."""
    results.check("no train.py", not found["train.py"], str(found["train.py"]))
    results.check("no training package", not found["training"], str(found["training"]))
    alpaca = found["alpaca"] + (["importable"] if found["alpaca_importable"] else [])
    results.check("no alpaca-py", not alpaca, str(alpaca))
    results.check("no notebook", not found["notebooks"], str(found["notebooks"]))
    results.check("no data snapshot", not found["snapshots"], str(found["snapshots"]))
    results.check("no pip cache", not found["pip_caches"], str(found["pip_caches"]))
    results.check("no compilers", not found["compilers"], str(found["compilers"]))


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
    check_sbom(results, found["sbom"], installed)


def check_sbom(results: Results, sbom: dict, installed: dict[str, str]) -> None:
    """The image's SBOM is CycloneDX and lists exactly the installed packages."""
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


# ---------------------------------------------------------------- how the running image behaves


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
    result = exec_in_container(engine, *command)
    results.check("the image's HEALTHCHECK passes", result.returncode == 0, on_failure=tail(result.stderr, 3))


def check_locked_down(results: Results, engine: Engine, config: dict) -> None:
    """The container runs as a non-root user, on a read-only root filesystem."""
    uid = exec_in_container(engine, "id", "-u").stdout.strip()
    results.check(
        "runs as a non-root user", uid.isdigit() and uid != "0", f"uid {uid}, USER {config.get('User')!r}"
    )
    # /var/tmp is writable by every user on a normal root filesystem: only --read-only stops this.
    write = exec_in_container(engine, "python", "-c", "open('/var/tmp/probe', 'w')")
    results.check(
        "root filesystem is read-only",
        write.returncode != 0 and "Read-only file system" in write.stderr,
        tail(write.stderr, 1),
    )


def dockerfile_labels(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """The labels the Dockerfile sets to fixed text (title, description); those set from ARGs are left out."""
    text = dockerfile.read_text().replace("\\\n", " ")  # continuation lines joined
    labels = {}
    for line in text.splitlines():
        if line.lstrip().startswith("LABEL "):
            labels.update(re.findall(r'([\w.-]+)="([^"$]*)"', line))
    return labels


def check_labels(results: Results, config: dict, args: BuildArgs | None) -> None:
    """The OCI labels hold the Dockerfile's own title and description (a build tool's defaults, such as
    the repository's name, must not replace them) and the build's values (or, for an image built
    elsewhere, real values)."""
    labels = config.get("Labels") or {}
    own = dockerfile_labels()
    kept = {key: labels.get(key) for key in own}
    results.check(
        "OCI labels keep the Dockerfile's title and description", bool(own) and kept == own, str(kept)
    )
    keys = ("version", "revision", "created")
    found = {key: labels.get(f"org.opencontainers.image.{key}") for key in keys}
    if args is not None:
        expected = {"version": args.version, "revision": args.revision, "created": args.build_time}
        ok = found == expected
    else:
        ok = all(value and value not in ("0.0.0+dev", "unknown") for value in found.values())
    results.check("OCI labels carry version, revision and created", ok, str(found))
