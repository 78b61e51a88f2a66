"""The delivery files pass their linters (hadolint, jactionlint with shellcheck, shellcheck), and the
linters as configured do catch mistakes. tests/test_delivery.py checks what the workflows do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# hadolint, jactionlint and shellcheck come as wheels in the virtual environment (requirements-dev.txt).
TOOLS = Path(sys.executable).parent
DOCKERFILES = ["Dockerfile", "scripts/single-stage.Dockerfile"]
SHELL_SCRIPTS = [".ci/run"]


def lint(tool: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # PATH first holds the tools: jactionlint runs shellcheck on the workflow's run steps.
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(TOOLS / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def jactionlint(cwd: Path) -> subprocess.CompletedProcess:
    """The workflow check: no network, and warnings fail it too."""
    return lint("jactionlint", "--no-online", "--strict-exit", "--no-color", cwd=cwd)


# ---------------------------------------------------------------- the linters pass


def test_dockerfiles_pass_hadolint():
    result = lint("hadolint", *DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_jactionlint_with_shellcheck():
    result = jactionlint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shellcheck was not found" not in result.stderr


def test_shell_scripts_pass_shellcheck():
    result = lint("shellcheck", *SHELL_SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- and they catch mistakes


def test_hadolint_fails_on_a_careless_dockerfile(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install flask\nRUN cd /app && make\n")
    result = lint("hadolint", str(dockerfile))
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3003"):  # latest tag, unpinned, pip cache, cd
        assert rule in result.stdout


def test_jactionlint_fails_on_a_broken_workflow(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "jactionlint.yaml", tmp_path / ".github")
    (workflows / "broken.yml").write_text(
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  deploy:\n"
        "    needs: tset\n"  # a typo: no such job
        "    runs-on: ubuntu-24.04\n"
        "    timeout-minutes: 5\n"
        "    steps:\n"
        "      - uses: someone/action@v1\n"  # a third-party action by a movable tag
        "      - run: echo ${{ github.event.head_commit.message }} $HOME/x\n"  # injection, no quotes
    )
    subprocess.run(["git", "init", "--quiet"], cwd=tmp_path, check=True)  # noqa: S607
    result = jactionlint(tmp_path)
    assert result.returncode != 0
    for rule in ("[undefined-job-needs]", "[unpinned-uses]", "[template-injection]", "[shellcheck]"):
        assert rule in result.stdout, result.stdout


def test_shellcheck_fails_on_a_careless_script(tmp_path):
    script = tmp_path / "run"
    script.write_text('#!/usr/bin/env bash\ncd $1\nrm -rf "$DIR/"*\n')
    result = lint("shellcheck", str(script))
    assert result.returncode != 0 and "SC2086" in result.stdout
