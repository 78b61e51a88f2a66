"""The delivery files do what docs/delivery.md says: pull requests are checked and publish nothing;
only main releases; nothing is published, tagged or deployed unless everything before it passed, and
tags move only after the signature; the scan reports every finding and fails on fixable ones; the
image keeps its labels; the docs say what a user and a fork need. Read from the YAML, not run.
(tests/test_linters.py runs the linters.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WORKFLOW = ROOT / ".github" / "workflows" / "pipeline.yml"
PULL_REQUEST = ROOT / ".github" / "workflows" / "pull-request.yml"
DOCS = (ROOT / "docs" / "delivery.md").read_text()


# ---------------------------------------------------------------- the pipeline's shape

MAIN_ONLY = "github.ref == 'refs/heads/main'"
# What moves something public: an image tag, a git tag, a push of either.
TAGGING = ("imagetools create", "git tag", "git push", "--tag", "--push")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def jobs() -> dict:
    return load(WORKFLOW)["jobs"]


def find(steps: list[dict], prefix: str) -> int:
    """The index of the step whose name (or action) starts with `prefix`."""
    return next(
        i for i, step in enumerate(steps) if step.get("name", step.get("uses", "")).startswith(prefix)
    )


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_pipeline_runs_on_push_to_main_every_6_hours_and_by_hand():
    triggers = load(WORKFLOW)[True]  # YAML 1.1 reads the key "on" as true
    assert triggers.keys() == {"push", "schedule", "workflow_dispatch"}  # pull requests: pull-request.yml
    assert triggers["push"] == {"branches": ["main"]}
    assert [entry["cron"].split()[1] for entry in triggers["schedule"]] == ["*/6"]


def test_only_main_releases_a_run_by_hand_from_a_branch_only_tests():
    found = jobs()
    assert "if" not in found["test"]
    assert {name: job.get("if") for name, job in found.items() if name != "test"} == dict.fromkeys(
        ["version", "build", "sign", "release", "deploy"], MAIN_ONLY
    )
    assert not any("continue-on-error" in job for job in found.values())
    assert not any("continue-on-error" in step for job in found.values() for step in job["steps"])


def test_nothing_moves_unless_everything_before_passed():
    found = jobs()
    assert {name: job.get("needs") for name, job in found.items()} == {
        "test": None,
        "version": "test",
        "build": "version",
        "sign": "build",
        # The one job that moves tags needs the checked, scanned, published (build) and signed and
        # attested (sign) image, and the version it was built with.
        "release": ["version", "build", "sign"],
        "deploy": ["build", "release"],
    }
    steps = found["build"]["steps"]
    build, check = find(steps, "Build; training"), find(steps, "Check the image")
    report, gate = find(steps, "Report every vulnerability"), find(steps, "Scan the image")
    publish, verify = find(steps, "Publish the checked"), find(steps, "Verify that the pushed image")
    assert build < check < report < gate < publish < verify == len(steps) - 1

    # Only the publishing build pushes, and by digest only; nothing before the release job tags.
    def pushes(step: dict) -> bool:
        return "push" in str(step.get("with", {})) or "push" in step.get("run", "")

    assert [i for i, step in enumerate(steps) if pushes(step)] == [publish]
    assert "push-by-digest=true" in steps[publish]["with"]["outputs"]
    assert "tags" not in steps[publish]["with"]
    assert "docker push" not in str(found)
    for name in ("test", "version", "build", "sign", "deploy"):
        assert not any(word in runs(found[name]) for word in TAGGING), name


def test_the_version_is_decided_before_the_build_and_tagged_after_the_signature():
    found = jobs()
    version_run = runs(found["version"])
    assert 'python3 scripts/version.py --github-output "$GITHUB_OUTPUT"' in version_run
    assert found["version"]["permissions"] == {"contents": "read"}  # it cannot push a tag
    release = found["release"]
    assert release["env"]["VERSION"] == "${{ needs.version.outputs.version }}"
    assert release["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    steps = release["steps"]
    git_tag, image_tags = find(steps, "Tag the commit vX.Y.Z"), find(steps, "Tag the signed digest")
    assert git_tag < image_tags
    # The tag is the version the image carries, or nothing (scripts/version.py --expect).
    assert 'python3 scripts/version.py --expect "$VERSION" --tag --push origin' in steps[git_tag]["run"]
    tagging = steps[image_tags]["run"]
    for tag in ('"$IMAGE:latest"', '"$IMAGE:$VERSION"', '"$release"'):
        assert f"--tag {tag}" in tagging
    assert '"$IMAGE@$DIGEST"' in tagging and '"$tagged" != "$DIGEST"' in tagging


def test_the_published_image_is_the_checked_one_with_its_attestations():
    found = jobs()["build"]
    steps = found["steps"]
    build = next(step for step in steps if step.get("id") == "build")
    publish = next(step for step in steps if step.get("id") == "publish")
    # The same inputs, so that the layer cache gives the same image ...
    for key in ("context", "build-args", "labels"):
        assert build["with"][key] == publish["with"][key], key
    assert build["with"]["load"] is True
    assert found["env"]["SOURCE_DATE_EPOCH"] == "${{ needs.version.outputs.epoch }}"
    # ... with what `docker push` of a loaded image would lose.
    assert (publish["with"]["sbom"], publish["with"]["provenance"]) == (True, "mode=max")
    # And it is proved the same: the registry's image config digest against the checked image's ID.
    verify = steps[find(steps, "Verify that the pushed image")]
    assert verify["env"]["CHECKED"] == "${{ steps.build.outputs.imageid }}"
    assert verify["env"]["DIGEST"] == "${{ steps.publish.outputs.digest }}"
    assert '"$config" != "$CHECKED"' in verify["run"] and "exit 1" in verify["run"]


def test_scheduled_rebuilds_reuse_layers_from_the_github_actions_cache_but_never_a_model():
    steps = jobs()["build"]["steps"]
    build = next(step for step in steps if step.get("id") == "build")
    publish = next(step for step in steps if step.get("id") == "publish")
    assert build["with"]["cache-from"] == "type=gha,scope=pipeline-image"
    # mode=max: the train and api-deps stages too; a cache service failure fails nothing.
    assert build["with"]["cache-to"] == "type=gha,scope=pipeline-image,mode=max,ignore-error=true"
    # The publishing build takes every layer from the builder of the checked build, nothing else.
    assert "cache-from" not in publish["with"] and "cache-to" not in publish["with"]
    # A cached training step would serve an old model: it depends on the build time, new each run.
    assert "BUILD_TIME=${{ env.CREATED }}" in build["with"]["build-args"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    train = dockerfile[dockerfile.index("FROM base AS train") : dockerfile.index("FROM base AS api-deps")]
    assert "ARG BUILD_TIME" in train and 'echo "training for the build of ${BUILD_TIME}"' in train


def test_the_digest_is_signed_and_attested_and_render_is_told_that_digest():
    found = jobs()
    assert found["build"]["outputs"]["digest"] == "${{ steps.publish.outputs.digest }}"
    sign = found["sign"]
    assert sign["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in runs(sign)
    attest = next(step for step in sign["steps"] if "attest-build-provenance" in step.get("uses", ""))
    assert attest["with"]["subject-digest"] == "${{ needs.build.outputs.digest }}"
    (deploy,) = [step for step in found["deploy"]["steps"] if "render_deploy.py" in step.get("run", "")]
    assert deploy["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    assert deploy["run"] == 'python3 scripts/render_deploy.py "$IMAGE@$DIGEST"'
    # With an API key, the job waits until the deploy is live, and fails when it is not.
    assert deploy["env"]["RENDER_API_KEY"] == "${{ secrets.RENDER_API_KEY }}"
    assert found["deploy"]["timeout-minutes"] * 60 > 900 + 120  # render_deploy.py's wait, and the rest


def test_permissions_are_granted_per_job_and_only_where_needed():
    workflow = load(WORKFLOW)
    assert workflow["permissions"] == {}
    assert {name: job["permissions"] for name, job in workflow["jobs"].items()} == {
        "test": {"contents": "read"},
        "version": {"contents": "read"},
        "build": {"contents": "read", "packages": "write"},
        # The only job with an OIDC token: it signs and attests, and runs none of the project's code.
        "sign": {"id-token": "write", "packages": "write", "attestations": "write"},
        "release": {"contents": "write", "packages": "write"},
        "deploy": {"contents": "read"},
    }


def test_runs_of_main_wait_for_each_other_and_the_comment_says_what_github_does():
    workflow = load(WORKFLOW)
    assert workflow["concurrency"] == {"group": "pipeline-${{ github.ref }}", "cancel-in-progress": False}
    text = WORKFLOW.read_text()
    comment = text[: text.index("\nconcurrency:")].rsplit("\n\n", 1)[-1]
    # GitHub keeps one run pending per group and cancels it for a newer one: no queue.
    assert "at most one" in comment and "pending" in comment and "cancels the pending one" in comment
    assert "queue instead" not in text


def test_dependabot_watches_packages_base_images_and_actions():
    updates = load(ROOT / ".github" / "dependabot.yml")["updates"]
    assert {update["package-ecosystem"] for update in updates} == {"pip", "docker", "github-actions"}
    assert all(update["cooldown"]["default-days"] >= 7 for update in updates)


def test_render_runs_the_published_image_and_checks_its_health():
    (service,) = load(ROOT / "render.yaml")["services"]
    assert service["type"] == "web" and service["runtime"] == "image"
    assert service["image"]["url"].startswith("ghcr.io/")
    assert service["healthCheckPath"] == "/health"


# ---------------------------------------------------------------- pull requests


def test_every_pull_request_dependabots_included_gets_the_checks_under_one_stable_name():
    workflow = load(PULL_REQUEST)
    # Every pull request: no branch, path or author filter (Dependabot's are pull requests too), and
    # never pull_request_target, which would run a fork's code with this repository's secrets.
    assert workflow[True] == {"pull_request": None}
    ((name, job),) = workflow["jobs"].items()
    assert name == job["name"] == "checks"  # what branch protection requires: no matrix, no expression
    assert not {"strategy", "if", "continue-on-error"} & job.keys()
    steps = job["steps"]
    tests, container = find(steps, "Lint and test"), find(steps, "Container test on the snapshot")
    report, _, gate = scan_steps(steps)
    assert tests < container < steps.index(report) < steps.index(gate) == len(steps) - 1
    # The README's commands, as the pipeline's test job runs make test.
    (pipeline_tests,) = [step for step in jobs()["test"]["steps"] if step.get("run") == "make test"]
    assert steps[tests] == pipeline_tests
    assert steps[container]["run"] == "make container-test CONTAINER=docker"  # SOURCE: the snapshot
    # The image the container test built is the one scanned, with the pipeline's settings.
    container_image = re.search(
        r'^IMAGE = "(.+)"$', (ROOT / "scripts" / "container_test.py").read_text(), re.M
    )
    pipeline_report, _, pipeline_gate = scan_steps(jobs()["build"]["steps"])
    for scan, in_pipeline in ((report, pipeline_report), (gate, pipeline_gate)):
        assert scan["with"] == {**in_pipeline["with"], "image": container_image[1]}


def test_pull_requests_publish_nothing():
    workflow = load(PULL_REQUEST)
    (job,) = workflow["jobs"].values()
    assert workflow["permissions"] == {} and job["permissions"] == {"contents": "read"}
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    text = PULL_REQUEST.read_text()
    for word in (
        "secrets.",
        "login-action",
        "build-push-action",
        "imagetools",
        "git push",
        "cosign",
        "render_",
    ):
        assert word not in text, word
    # Nothing to lose when a newer push replaces a run.
    assert workflow["concurrency"]["cancel-in-progress"] is True


# ---------------------------------------------------------------- every workflow


def scan_steps(steps: list[dict]) -> tuple[dict, dict, dict]:
    """The Grype report, its summary and the gate, checked to come in that order."""
    scans = [i for i, step in enumerate(steps) if step.get("uses", "").startswith("anchore/scan-action@")]
    summary = find(steps, "Summary of the scan")
    assert len(scans) == 2 and scans[0] < summary < scans[1]
    return steps[scans[0]], steps[summary], steps[scans[1]]


def test_the_scan_reports_every_finding_and_fails_only_on_a_fixable_critical_or_high():
    report, summary, gate = scan_steps(jobs()["build"]["steps"])
    # The report: every finding, fixed or not, as a table, in the log and the run's summary; never fatal.
    assert report["with"]["only-fixed"] is False and report["with"]["fail-build"] is False
    assert report["with"]["output-format"] == "table"
    assert report["with"]["output-file"] == "${{ runner.temp }}/grype-report.txt"
    assert (
        'cat "$RUNNER_TEMP/grype-report.txt"' in summary["run"] and "$GITHUB_STEP_SUMMARY" in summary["run"]
    )
    # The gate: a CRITICAL or HIGH finding with a fix fails the run, and with it the release.
    gate_settings = {key: gate["with"][key] for key in ("severity-cutoff", "only-fixed", "fail-build")}
    assert gate_settings == {"severity-cutoff": "high", "only-fixed": True, "fail-build": True}
    assert report["with"]["image"] == gate["with"]["image"] == "${{ steps.names.outputs.release }}"
    assert report["with"]["grype-version"] == gate["with"]["grype-version"]


def test_the_image_keeps_the_dockerfiles_labels():
    text = "\n".join(path.read_text() for path in WORKFLOWS)
    assert "uses: docker/metadata-action" not in text and "steps.meta." not in text
    builds = [step for step in jobs()["build"]["steps"] if "build-push-action" in step.get("uses", "")]
    assert len(builds) == 2
    for build in builds:
        keys = [line.split("=", 1)[0] for line in build["with"]["labels"].splitlines()]
        # Only the source (it links the GHCR package to the repository); the Dockerfile sets the rest.
        assert keys == ["org.opencontainers.image.source"]


def test_every_action_is_pinned_to_a_commit_with_its_release_named_as_docs_delivery_lists_it():
    # jactionlint enforces the pin and the comment too (.github/jactionlint.yaml); this names the
    # rule here, and keeps the table of docs/delivery.md the truth.
    rows = re.findall(
        r"^\| ([\w.-]+/[\w.-]+) \| (v\d+\.\d+\.\d+) \| `([0-9a-f]{40})` \|$", DOCS, re.MULTILINE
    )
    table = {action: (release, sha) for action, release, sha in rows}
    used = {}
    for workflow in WORKFLOWS:
        for action, comment in re.findall(r"uses: (\S+)(.*)", workflow.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
            assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)
            name, sha = action.split("@")
            assert used.setdefault(name, (comment[3:], sha)) == (comment[3:], sha), f"{name}: two pins"
    assert used == table


# ---------------------------------------------------------------- what the docs promise


def fork_section() -> str:
    return DOCS[DOCS.index("## What a fork needs") :]


def test_the_docs_name_the_cosign_release_it_takes_to_verify():
    sign = jobs()["sign"]
    installer = next(step for step in sign["steps"] if "cosign-installer" in step.get("uses", ""))
    release = installer["with"]["cosign-release"]  # v3.0.6: signatures as Sigstore bundles
    assert release.startswith("v3.")
    assert "**It takes cosign v3** (3.0.0 or later)" in DOCS and f"cosign {release}" in DOCS
    assert "no signatures found" in DOCS  # what cosign v2 answers
    assert "(cosign v3)" in (ROOT / "README.md").read_text()


def test_the_docs_say_a_fork_edits_render_yaml_and_gives_render_pull_access():
    render = ROOT / "render.yaml"
    (service,) = load(render)["services"]
    fork = fork_section()
    # The placeholder, named as the fork will find it, and that it must be edited.
    assert f"`{service['image']['url']}`" in fork and "**`render.yaml`'s image must be edited.**" in fork
    assert "must edit image.url" in render.read_text()
    # A new GHCR package is private: public, or a Render registry credential that render.yaml names.
    assert "as **private**" in fork and "make the package public" in fork
    for needed in ("personal access token", "(classic", "`read:packages`", "Registry", "uncomment `creds`"):
        assert needed in fork, needed
    assert "# creds:" in render.read_text() and "fromRegistryCreds" in render.read_text()


def test_the_docs_name_every_secret_the_workflows_read_and_the_required_check():
    secrets = set(re.findall(r"secrets\.(\w+)", "\n".join(path.read_text() for path in WORKFLOWS)))
    assert secrets == {"GITHUB_TOKEN", "RENDER_DEPLOY_HOOK_URL", "RENDER_API_KEY"}
    fork = fork_section()
    for secret in secrets - {"GITHUB_TOKEN"}:
        assert f"**Secret `{secret}`**" in fork, secret
    assert "until it is `live`, and fails the job" in DOCS  # what RENDER_API_KEY buys
    assert f"status check `{load(PULL_REQUEST)['jobs']['checks']['name']}`" in fork


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
