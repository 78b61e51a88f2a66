"""Requirement files: everything pinned, and shared packages pinned alike (the pickle must load)."""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import Requirement

from scripts.lock_requirements import normalized, read_pins, requirement_lines
from tests.conftest import ROOT

NOTEBOOK = "requirements-notebook.txt"  # train.ipynb's packages, installed by make test beside dev's
IMAGE = "requirements-image.txt"  # what the final image installs, hash-checked, without dependencies
SBOM = "requirements-sbom.txt"  # the SBOM generator the image build runs
ALL = ("requirements-train.txt", "requirements-api.txt", "requirements-dev.txt", NOTEBOOK, IMAGE, SBOM)
# prophet declares matplotlib for its plots; the server never plots, so the image leaves out
# matplotlib and what only it needs.
PLOTTING = {
    "matplotlib",
    "contourpy",
    "cycler",
    "fonttools",
    "kiwisolver",
    "pillow",
    "pyparsing",
    "packaging",
}


def pins(name: str) -> dict[str, str]:
    return read_pins(ROOT / name)


def test_all_requirements_are_pinned():
    for name in ALL:
        assert pins(name), name


def test_every_pair_of_files_pins_shared_packages_identically():
    # make test installs train, api, dev and notebook into one environment, the image build installs
    # the image's and the generator's: a disagreement anywhere would mean versions nothing else uses,
    # or a pickle made by one prophet and loaded by another.
    for index, first in enumerate(ALL):
        for second in ALL[index + 1 :]:
            a, b = pins(first), pins(second)
            assert {pkg: (a[pkg], b[pkg]) for pkg in a.keys() & b.keys() if a[pkg] != b[pkg]} == {}, (
                first,
                second,
            )
    shared = pins("requirements-train.txt").keys() & pins(IMAGE).keys()
    assert {"prophet", "pandas", "numpy", "cmdstanpy"} <= shared


def test_the_api_does_not_need_training_packages():
    for name in ("requirements-api.txt", IMAGE):
        assert "alpaca-py" not in pins(name)


def test_the_image_is_the_api_without_the_plotting_stack():
    api, image = pins("requirements-api.txt"), pins(IMAGE)
    assert api.keys() - image.keys() == PLOTTING
    assert image.keys() <= api.keys()


def test_the_image_list_is_closed_under_dependencies_but_for_matplotlib():
    # The image installs with --no-deps, so this is the resolver's job done by a test: every
    # requirement of every listed package (as installed here, at the same versions) is listed too.
    image = pins(IMAGE)
    unmet = set()
    for name, version in image.items():
        assert importlib.metadata.version(name) == version, f"{name} here is not the pinned {version}"
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
            if applies and normalized(requirement.name) not in image:
                unmet.add((name, normalized(requirement.name)))
    assert unmet == {("prophet", "matplotlib")}


def test_what_the_image_build_installs_is_hash_checked():
    for name in (IMAGE, SBOM):
        text = (ROOT / name).read_text()
        pinned = [pin for _, pin in requirement_lines(text) if pin]
        blocks = text.replace("\\\n", " ").splitlines()
        for pin in pinned:
            (line,) = [block for block in blocks if block.split("#")[0].split()[:1] == [pin]]
            assert "--hash=sha256:" in line, f"{name}: {pin} has no hash"
