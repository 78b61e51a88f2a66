"""The delivery files: their linters pass, the linters as configured do catch mistakes, and the
pipeline keeps its quality gate (nothing is published or deployed unless everything before it passed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

# hadolint, jactionlint and shellcheck come as wheels in the virtual environment (requirements-dev.txt).
TOOLS = Path(sys.executable).parent
DOCKERFILES = ["Dockerfile", "scripts/single-stage.Dockerfile"]
SHELL_SCRIPTS = [".ci/run"]
WORKFLOW = ROOT / ".github" / "workflows" / "pipeline.yml"


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


# ---------------------------------------------------------------- the pipeline's shape


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_pipeline_runs_on_push_to_main_every_6_hours_and_by_hand():
    workflow = load(WORKFLOW)
    triggers = workflow[True]  # YAML 1.1 reads the key "on" as true
    assert triggers["push"] == {"branches": ["main"]}
    assert [entry["cron"].split()[1] for entry in triggers["schedule"]] == ["*/6"]
    assert "workflow_dispatch" in triggers


def test_nothing_is_published_or_deployed_unless_everything_before_passed():
    jobs = load(WORKFLOW)["jobs"]
    assert {name: job.get("needs") for name, job in jobs.items()} == {
        "test": None,
        "version": "test",
        "build": "version",
        "sign": "build",
        "deploy": ["build", "sign"],
    }
    assert not any("if" in job or "continue-on-error" in job for job in jobs.values())
    steps = jobs["build"]["steps"]
    names = [step.get("name", step.get("uses")) for step in steps]

    def index(prefix: str) -> int:
        return next(i for i, name in enumerate(names) if name.startswith(prefix))

    check, scan, publish = index("Check the image"), index("Scan the image"), index("Publish the checked")
    verify, tag = index("Verify that the pushed image"), index("Tag the published digest")
    assert check < scan < publish < verify < tag

    # Only the publishing build pushes, and by digest only: no tag moves before the verification.
    def pushes(step: dict) -> bool:
        return "push" in str(step.get("with", {})) or "push" in step.get("run", "")

    assert [i for i, step in enumerate(steps) if pushes(step)] == [publish]
    assert "push-by-digest=true" in steps[publish]["with"]["outputs"]
    assert "docker push" not in str(jobs)
    # A fixable CRITICAL or HIGH finding fails the scan, and with it the run.
    scanner = steps[scan]["with"]
    assert (scanner["severity-cutoff"], scanner["only-fixed"], scanner["fail-build"]) == ("high", True, True)


def test_the_published_image_is_the_checked_one_with_its_attestations():
    steps = load(WORKFLOW)["jobs"]["build"]["steps"]
    build = next(step for step in steps if step.get("id") == "build")
    publish = next(step for step in steps if step.get("id") == "publish")
    # The same inputs, so that the layer cache gives the same image ...
    for key in ("context", "build-args", "labels"):
        assert build["with"][key] == publish["with"][key], key
    assert build["with"]["load"] is True
    # ... with what `docker push` of a loaded image would lose.
    assert (publish["with"]["sbom"], publish["with"]["provenance"]) == (True, "mode=max")
    # And it is proved the same: the registry's image config digest against the checked image's ID.
    verify = next(step for step in steps if step.get("name", "").startswith("Verify that the pushed image"))
    assert verify["env"]["CHECKED"] == "${{ steps.build.outputs.imageid }}"
    assert verify["env"]["DIGEST"] == "${{ steps.publish.outputs.digest }}"
    assert '"$config" != "$CHECKED"' in verify["run"] and "exit 1" in verify["run"]


def test_the_digest_is_signed_and_attested_and_render_is_told_that_digest():
    jobs = load(WORKFLOW)["jobs"]
    assert jobs["build"]["outputs"]["digest"] == "${{ steps.publish.outputs.digest }}"
    sign = jobs["sign"]
    assert sign["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    runs = " ".join(step.get("run", "") for step in sign["steps"])
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in runs
    attest = next(step for step in sign["steps"] if "attest-build-provenance" in step.get("uses", ""))
    assert attest["with"]["subject-digest"] == "${{ needs.build.outputs.digest }}"
    (deploy,) = [step for step in jobs["deploy"]["steps"] if "render_deploy.py" in step.get("run", "")]
    assert deploy["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    assert deploy["run"] == 'python3 scripts/render_deploy.py "$IMAGE@$DIGEST"'


def test_every_action_is_pinned_to_a_commit_with_its_release_named():
    # jactionlint enforces it too (.github/jactionlint.yaml); this names the rule here.
    uses = re.findall(r"uses: (\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)


def test_dependabot_watches_packages_base_images_and_actions():
    updates = load(ROOT / ".github" / "dependabot.yml")["updates"]
    assert {update["package-ecosystem"] for update in updates} == {"pip", "docker", "github-actions"}
    assert all(update["cooldown"]["default-days"] >= 7 for update in updates)


def test_permissions_are_granted_per_job_and_only_where_needed():
    workflow = load(WORKFLOW)
    assert workflow["permissions"] == {}
    assert {name: job["permissions"] for name, job in workflow["jobs"].items()} == {
        "test": {"contents": "read"},
        "version": {"contents": "write"},
        "build": {"contents": "read", "packages": "write"},
        # The only job with an OIDC token: it signs and attests, and runs none of the project's code.
        "sign": {"id-token": "write", "packages": "write", "attestations": "write"},
        "deploy": {"contents": "read"},
    }
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_render_runs_the_published_image_and_checks_its_health():
    (service,) = load(ROOT / "render.yaml")["services"]
    assert service["type"] == "web" and service["runtime"] == "image"
    assert service["image"]["url"].startswith("ghcr.io/")
    assert service["healthCheckPath"] == "/health"


# ---------------------------------------------------------------- the image's labels

# Runs in scripts/ as the container test does: the check it makes of an image's labels, on a config
# with the Dockerfile's labels, and on one where a build tool's defaults replaced the title.
LABEL_PROBE = """
import json
from container_image_checks import check_labels, dockerfile_labels
from container_report import Results
own = dockerfile_labels()
built = {**own, **{f"org.opencontainers.image.{key}": "1.2.3" for key in ("version", "revision", "created")}}
kept, replaced = Results(), Results()
check_labels(kept, {"Labels": built}, None)
check_labels(replaced, {"Labels": {**built, "org.opencontainers.image.title": "crypto-predict-api"}}, None)
print(json.dumps({"own": own, "kept": kept.failed, "replaced": replaced.failed}))
"""


def test_the_container_test_insists_on_the_dockerfiles_title_and_description():
    result = subprocess.run(
        [sys.executable, "-c", LABEL_PROBE],
        cwd=ROOT / "scripts",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["own"] == {
        "org.opencontainers.image.title": "Crypto Predict API",
        "org.opencontainers.image.description": "Prophet forecasts of daily crypto closes over HTTP",
    }
    assert found["kept"] == []
    assert found["replaced"] == ["OCI labels keep the Dockerfile's title and description"]
