"""scripts/version.py on real, temporary git repositories: what each pipeline run gets as its version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

VERSION_SCRIPT = ROOT / "scripts" / "version.py"
# Tests must not depend on the developer's git configuration, and annotated tags need an identity.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Release Bot",
    "GIT_AUTHOR_EMAIL": "release@example.org",
    "GIT_COMMITTER_NAME": "Release Bot",
    "GIT_COMMITTER_EMAIL": "release@example.org",
}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],  # noqa: S607  # git from PATH, as the script under test uses it
        cwd=repo,
        env=GIT_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "commit", "--allow-empty", "--quiet", "--message", message)
    return git(repo, "rev-parse", "HEAD")


def version(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the script as the pipeline does."""
    return subprocess.run(
        [sys.executable, str(VERSION_SCRIPT), "--repo", str(repo), *args],
        # git must not find a repository above the temporary folders.
        env={**GIT_ENV, "GIT_CEILING_DIRECTORIES": str(repo.parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


def tags_at_head(repo: Path) -> list[str]:
    return git(repo, "tag", "--points-at", "HEAD").split()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A new repository on branch main with one commit and no tag."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch", "main")
    commit(path, "Initial commit")
    return path


def released(repo: Path, tag: str) -> Path:
    git(repo, "tag", "--annotate", tag, "--message", tag)
    return repo


# ---------------------------------------------------------------- the first tag


def test_the_first_push_gets_the_initial_version_as_an_annotated_tag(repo):
    result = version(repo, "--tag")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1.0.0 (first version tag of the repository)\n"
    assert tags_at_head(repo) == ["v1.0.0"]
    assert git(repo, "cat-file", "-t", "v1.0.0") == "tag"


def test_the_initial_version_can_be_chosen(repo):
    assert version(repo, "--tag", "--initial", "0.1.0").stdout.startswith("0.1.0 ")
    assert tags(repo) == ["v0.1.0"]


def test_a_malformed_initial_version_is_refused(repo):
    result = version(repo, "--initial", "1.0")
    assert result.returncode == 2 and "not a version" in result.stderr


# ---------------------------------------------------------------- pushes: the next version


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Fix the error message for bad dates", "1.4.3"),
        ("Serve ETH as well #minor", "1.5.0"),
        ("#MINOR: new query parameter", "1.5.0"),
        ("Drop the old route #major", "2.0.0"),
        ("Rename /bitcoin\n\nBREAKING CHANGE: clients must call /btc", "2.0.0"),
        ("Rename /bitcoin\n\nBREAKING-CHANGE: clients must call /btc", "2.0.0"),
        ("feat(api)!: answer in cents", "2.0.0"),
        ("feat!: answer in cents", "2.0.0"),
        # Near misses stay patch releases: the conventions are exact.
        ("Mention BREAKING CHANGE: in the docs", "1.4.3"),
        ("Explain the #minority of rows dropped", "1.4.3"),
        ("feat: not breaking!", "1.4.3"),
    ],
)
def test_a_push_raises_the_part_its_message_asks_for(repo, message, expected):
    released(repo, "v1.4.2")
    commit(repo, message)
    result = version(repo, "--tag")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{expected} ")
    assert tags_at_head(repo) == [f"v{expected}"]


def test_the_strongest_request_since_the_last_release_wins(repo):
    released(repo, "v1.0.0")
    commit(repo, "Add a route #minor")
    commit(repo, "Fix a typo")
    assert version(repo).stdout == "1.1.0 (minor release after v1.0.0)\n"


def test_requests_before_the_last_release_do_not_count_again(repo):
    commit(repo, "Rework everything #major")
    released(repo, "v2.0.0")
    commit(repo, "Fix a typo")
    assert version(repo).stdout.startswith("2.0.1 ")


def test_the_highest_reachable_release_is_the_base(repo):
    released(repo, "v1.9.0")
    commit(repo, "Hotfix")
    released(repo, "v1.10.0")  # 1.10 > 1.9: compared as numbers, not text
    commit(repo, "Next")
    assert version(repo).stdout.startswith("1.10.1 ")


def test_tags_that_are_not_plain_versions_are_ignored(repo):
    released(repo, "v1.0.0")
    commit(repo, "Next")
    for tag in ("v7.0", "v8.0.0-rc1", "v09.0.0", "nightly", "9.0.0"):
        git(repo, "tag", tag)
    assert version(repo).stdout.startswith("1.0.1 ")


def test_releases_of_other_branches_do_not_count(repo):
    released(repo, "v1.0.0")
    git(repo, "checkout", "--quiet", "-b", "experiment")
    commit(repo, "Experiment")
    released(repo, "v5.0.0")
    git(repo, "checkout", "--quiet", "main")
    commit(repo, "Main goes on")
    assert version(repo).stdout.startswith("1.0.1 ")


# ---------------------------------------------------------------- schedules: a released commit


def test_a_scheduled_run_on_a_released_commit_reuses_its_version(repo, tmp_path):
    released(repo, "v1.2.3")
    output = tmp_path / "github-output"
    result = version(repo, "--tag", "--github-output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1.2.3 (HEAD is already tagged v1.2.3)\n"
    assert tags(repo) == ["v1.2.3"]
    assert output.read_text() == "version=1.2.3\ntag=v1.2.3\nnew=false\n"


def test_of_several_tags_on_the_commit_the_highest_is_its_version(repo):
    released(repo, "v1.2.3")
    released(repo, "v1.3.0")
    assert version(repo, "--tag").stdout.startswith("1.3.0 ")
    assert sorted(tags(repo)) == ["v1.2.3", "v1.3.0"]


def test_the_pipeline_sequence_push_schedule_push_schedule(repo, tmp_path):
    """What a run of each trigger gets, in the order they happen on main."""
    seen = []
    for trigger in ("push", "schedule", "push", "schedule", "schedule"):
        if trigger == "push":
            commit(repo, f"Change {len(seen)}")
        output = tmp_path / f"output-{len(seen)}"
        assert version(repo, "--tag", "--github-output", str(output)).returncode == 0
        seen.append(output.read_text().splitlines())
    assert [lines[0] for lines in seen] == [
        "version=1.0.0",
        "version=1.0.0",
        "version=1.0.1",
        "version=1.0.1",
        "version=1.0.1",
    ]
    assert [lines[2] for lines in seen] == ["new=true", "new=false", "new=true", "new=false", "new=false"]
    assert sorted(tags(repo)) == ["v1.0.0", "v1.0.1"]


# ---------------------------------------------------------------- writing: tags, remote, outputs


def test_without_tag_nothing_is_written(repo):
    released(repo, "v1.0.0")
    commit(repo, "Next")
    assert version(repo).returncode == 0
    assert tags(repo) == ["v1.0.0"]


def test_push_sends_the_new_tag_to_the_remote(tmp_path, repo):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    released(repo, "v1.0.0")
    git(repo, "push", "--quiet", "origin", "main", "v1.0.0")
    commit(repo, "Next")
    result = version(repo, "--tag", "--push", "origin")
    assert result.returncode == 0, result.stderr
    assert "refs/tags/v1.0.1" in git(remote, "tag", "--list", "--format=%(refname)").split()


def test_a_refused_push_fails_the_run(repo):
    result = version(repo, "--tag", "--push", "nowhere")
    assert result.returncode == 1
    assert result.stderr.startswith("version: git push nowhere refs/tags/v1.0.0:")


def test_push_needs_tag(repo):
    result = version(repo, "--push", "origin")
    assert result.returncode == 2 and "--push needs --tag" in result.stderr


def test_fails_with_one_line_outside_a_repository(tmp_path):
    result = version(tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("version: git tag")


# ---------------------------------------------------------------- --expect: tag the version the image carries


def test_expect_tags_when_the_version_is_still_the_one_the_build_was_given(tmp_path, repo):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    released(repo, "v1.0.0")
    commit(repo, "Next")
    result = version(repo, "--expect", "1.0.1", "--tag", "--push", "origin")
    assert result.returncode == 0, result.stderr
    assert "refs/tags/v1.0.1" in git(remote, "tag", "--list", "--format=%(refname)").split()


def test_expect_refuses_another_version_and_tags_nothing(repo):
    """A tag pushed between the version job and the release: the image says 1.0.1, HEAD would get 1.1.0."""
    released(repo, "v1.0.0")
    commit(repo, "Next")
    git(repo, "tag", "v1.0.1", "HEAD~1")  # someone tagged the previous commit in between
    result = version(repo, "--expect", "1.0.1", "--tag")
    assert result.returncode == 1
    assert result.stderr == (
        "version: HEAD's version is now 1.0.2 (patch release after v1.0.1), not 1.0.1; nothing was tagged\n"
    )
    assert tags_at_head(repo) == []


def test_expect_on_a_released_commit_tags_nothing_and_succeeds(repo):
    released(repo, "v1.2.3")
    result = version(repo, "--expect", "1.2.3", "--tag")
    assert result.returncode == 0, result.stderr
    assert tags(repo) == ["v1.2.3"]


def test_a_malformed_expected_version_is_refused(repo):
    result = version(repo, "--expect", "v1.2.3")
    assert result.returncode == 2 and "not a version" in result.stderr
