"""Requirement files: everything pinned, and shared packages pinned alike (the pickle must load)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

NOTEBOOK = "requirements-notebook.txt"  # train.ipynb's packages, installed by make test beside dev's
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)$")


def pins(name: str) -> dict[str, str]:
    result = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = PIN.match(line)
            assert match, f"{name}: {line!r} is not pinned with =="
            result[match.group(1).lower().replace("_", "-")] = match.group(2)
    return result


def test_all_requirements_are_pinned():
    for name in ("requirements-train.txt", "requirements-api.txt", "requirements-dev.txt", NOTEBOOK):
        assert pins(name)


def test_train_and_api_pin_shared_packages_identically():
    train, api = pins("requirements-train.txt"), pins("requirements-api.txt")
    shared = set(train) & set(api)
    assert {"prophet", "pandas", "numpy", "cmdstanpy"} <= shared
    assert {name: (train[name], api[name]) for name in shared if train[name] != api[name]} == {}


def test_the_api_does_not_need_training_packages():
    assert "alpaca-py" not in pins("requirements-api.txt")


def test_dev_tools_pin_shared_packages_like_the_runtime():
    # make test installs all three files into one environment: a disagreement would be resolved
    # by whichever file pip reads last, and the tests would run on versions nothing else uses.
    # The notebook's packages join them there too.
    for tools in ("requirements-dev.txt", NOTEBOOK):
        dev = pins(tools)
        for name in ("requirements-train.txt", "requirements-api.txt", "requirements-dev.txt"):
            runtime = pins(name)
            assert {
                pkg: (dev[pkg], runtime[pkg]) for pkg in set(dev) & set(runtime) if dev[pkg] != runtime[pkg]
            } == {}
