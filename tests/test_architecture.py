"""The import rules of the layout, read from the code itself (ast): no module runs any of it.

artifact/ is shared and pure; serving/ never imports training/ and training/ never imports
serving/, Flask or the entry points; nothing imports in a circle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENTRY_POINTS = ("api", "train")
PACKAGES = ("artifact", "serving", "training")
MAX_MODULE_LINES = 450


def project_modules() -> dict[str, Path]:
    """Every module of the served and trained code, by dotted name."""
    modules = {name: ROOT / f"{name}.py" for name in ENTRY_POINTS}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path) -> set[str]:
    """The absolute module names a file imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def internal_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which project modules each project module imports."""
    return {name: imported_names(path) & set(modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target] if target in trail else [node, target]
            if target not in state and (cycle := visit(target, [*trail, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def third_party(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names} - set(sys.stdlib_module_names)


def test_no_import_circle():
    assert find_cycle(internal_imports(project_modules())) is None


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_each_side_imports_only_what_it_may(name):
    path = project_modules()[name]
    imported = imported_names(path)
    roots = {module.split(".")[0] for module in imported}
    if name.startswith("artifact"):
        assert third_party(imported) <= {"numpy", "pandas", "artifact"}, "artifact/ is pure: numpy and pandas"
        assert not roots & {"serving", "training", *ENTRY_POINTS}
    elif name.startswith("serving"):
        assert not roots & {"training", *ENTRY_POINTS}
    elif name.startswith("training"):
        assert not roots & {"serving", "flask", "flask_cors", "flask_openapi3", "werkzeug", *ENTRY_POINTS}


def test_modules_stay_small():
    """Every module outside tests, scripts and benchmarks included, stays readable in one sitting."""
    paths = [*project_modules().values(), *ROOT.glob("scripts/**/*.py"), *ROOT.glob("bench/**/*.py")]
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in paths}
    assert max(sizes.values()) <= MAX_MODULE_LINES, {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES}


def test_the_forecast_is_defined_once():
    """Only artifact/ defines the forecast's maths and the artifact's facts."""
    shared = {
        "forecast_table",
        "served_forecast",
        "interval_bounds",
        "write_pair",
        "read_metadata",
        "read_pair",
        "metadata_path",
        "model_path",
        "model_file_name",
        "FORECAST_SEED",
        "SERVED_INTERVAL_WIDTH",
        "METADATA_FORMAT",
        "READABLE_FORMATS",
        "DEFAULT_MODEL_DIR",
    }
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
        defined |= {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        if not name.startswith("artifact"):
            assert not defined & shared, f"{name} defines {defined & shared}"
