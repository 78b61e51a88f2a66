#!/usr/bin/env python3
"""The semantic version of the commit the pipeline releases, and its git tag (standard library only).

Rules, in order:

1. HEAD already carries a version tag ``vX.Y.Z``: that version is reused and nothing is tagged.
   This is the scheduled (or manual, or re-run) build of a commit that was released before: it
   retrains on new data but is the same code, so it keeps its version. Several tags: the highest.
2. No version tag exists anywhere before HEAD: HEAD gets the initial version (``--initial``,
   default 1.0.0, the version the project already states).
3. Otherwise HEAD gets the next version after the highest ``vX.Y.Z`` tag reachable from it. The
   commit messages since that tag choose the part to raise (the strongest wins):

   - major: ``#major`` anywhere in a message, a ``BREAKING CHANGE:`` (or ``BREAKING-CHANGE:``)
     footer, or a Conventional Commits subject with ``!`` before the colon (``feat!: ...``,
     ``fix(api)!: ...``);
   - minor: ``#minor`` anywhere in a message;
   - patch: anything else, so every push that reaches main is at least a patch release.

Tags that are not exactly ``v`` + three numbers (``v1.2``, ``v1.2.3-rc1``, ``nightly``) are ignored.

Usage::

    python scripts/version.py                        # print the version; change nothing
    python scripts/version.py --tag                  # also tag HEAD (annotated) when the version is new
    python scripts/version.py --tag --push origin    # and push that tag
    python scripts/version.py --github-output "$GITHUB_OUTPUT"   # append version=, tag=, new=
    python scripts/version.py --expect 1.4.3 --tag --push origin  # tag only if the version is still 1.4.3

The pipeline decides the version before the build (the image states it) and tags the commit only
after the image is published and signed; ``--expect`` makes sure the tag it then writes is the
version that image carries, and not another one that tags pushed in between would give.

Run it in a clone with the full history and tags (``actions/checkout`` with ``fetch-depth: 0``).
Exits 1 with one line on stderr when git fails (not a repository, no commit, push refused) or the
version is not the one ``--expect`` names (then nothing is tagged).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VERSION_TAG = re.compile(r"v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
MAJOR_MARKERS = (
    re.compile(r"#major\b", re.IGNORECASE),
    re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE),
    re.compile(r"\A[A-Za-z]+(\([^)]*\))?!:"),  # Conventional Commits: "feat!:", "fix(api)!:"
)
MINOR_MARKER = re.compile(r"#minor\b", re.IGNORECASE)
KINDS = ("patch", "minor", "major")  # weakest first
MESSAGE_END = "\x00"  # ends each message in git log output (%x00): messages hold any printable text


class GitError(Exception):
    """A git command failed; the message is its command and error."""


class UnexpectedVersion(Exception):
    """The version decided now is not the one the caller expected (``--expect``)."""


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def from_tag(cls, tag: str) -> Version | None:
        """The version a tag names, or None for tags that are not vX.Y.Z."""
        match = VERSION_TAG.fullmatch(tag.strip())
        return cls(*map(int, match.groups())) if match else None

    def bump(self, kind: str) -> Version:
        if kind == "major":
            return Version(self.major + 1, 0, 0)
        if kind == "minor":
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)

    @property
    def tag(self) -> str:
        return f"v{self}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Release:
    version: Version
    new: bool  # True: HEAD needs the tag; False: HEAD already has it
    reason: str


# ---------------------------------------------------------------- reading the repository


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its output; raise GitError when it fails."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout


def versions_in(tags: str) -> list[Version]:
    """The versions among `git tag` output lines, highest first."""
    found = (Version.from_tag(tag) for tag in tags.splitlines())
    return sorted((version for version in found if version), reverse=True)


def head_versions(repo: Path) -> list[Version]:
    return versions_in(git(repo, "tag", "--list", "v*", "--points-at", "HEAD"))


def reachable_versions(repo: Path) -> list[Version]:
    """Version tags on HEAD's history (tags of other branches do not count)."""
    return versions_in(git(repo, "tag", "--list", "v*", "--merged", "HEAD"))


def messages_since(repo: Path, version: Version) -> list[str]:
    log = git(repo, "log", "--format=%B%x00", f"refs/tags/{version.tag}..HEAD")
    return [message.strip() for message in log.split(MESSAGE_END) if message.strip()]


# ---------------------------------------------------------------- deciding


def bump_kind(messages: list[str]) -> str:
    """The part of the version to raise for these commit messages: major, minor or patch."""
    kind = "patch"
    for message in messages:
        if any(marker.search(message) for marker in MAJOR_MARKERS):
            return "major"
        if MINOR_MARKER.search(message):
            kind = "minor"
    return kind


def decide(repo: Path, initial: Version) -> Release:
    """The release of HEAD, following the rules in this module's docstring."""
    tagged = head_versions(repo)
    if tagged:
        return Release(tagged[0], new=False, reason=f"HEAD is already tagged {tagged[0].tag}")
    previous = reachable_versions(repo)
    if not previous:
        return Release(initial, new=True, reason="first version tag of the repository")
    kind = bump_kind(messages_since(repo, previous[0]))
    return Release(previous[0].bump(kind), new=True, reason=f"{kind} release after {previous[0].tag}")


# ---------------------------------------------------------------- writing


def create_tag(repo: Path, release: Release) -> None:
    """An annotated tag, so that `git describe` and the tag list show who released it and when."""
    git(repo, "tag", "--annotate", release.version.tag, "--message", f"Release {release.version}")


def push_tag(repo: Path, remote: str, release: Release) -> None:
    git(repo, "push", remote, f"refs/tags/{release.version.tag}")


def write_github_output(path: Path, release: Release) -> None:
    """Step outputs for GitHub Actions: appended key=value lines."""
    with path.open("a") as output:
        output.write(
            f"version={release.version}\ntag={release.version.tag}\nnew={str(release.new).lower()}\n"
        )


def version_argument(text: str) -> Version:
    version = Version.from_tag("v" + text)
    if version is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version X.Y.Z")
    return version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print the semantic version of HEAD and optionally tag it (rules: see the source).",
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: here)")
    parser.add_argument(
        "--initial",
        type=version_argument,
        default=Version(1, 0, 0),
        help="version of the first tag, when none exists yet (default 1.0.0)",
    )
    parser.add_argument(
        "--expect",
        type=version_argument,
        metavar="X.Y.Z",
        help="fail, tagging nothing, unless the version is X.Y.Z (the version the build was given)",
    )
    parser.add_argument("--tag", action="store_true", help="create the tag on HEAD when the version is new")
    parser.add_argument("--push", metavar="REMOTE", help="push the new tag to REMOTE (needs --tag)")
    parser.add_argument(
        "--github-output", type=Path, metavar="FILE", help="append version=, tag=, new= to FILE"
    )
    args = parser.parse_args(argv)
    if args.push and not args.tag:
        parser.error("--push needs --tag")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        release = decide(args.repo, args.initial)
        if args.expect is not None and release.version != args.expect:
            raise UnexpectedVersion(
                f"HEAD's version is now {release.version} ({release.reason}), not {args.expect};"
                " nothing was tagged"
            )
        if release.new and args.tag:
            create_tag(args.repo, release)
            if args.push:
                push_tag(args.repo, args.push, release)
    except (GitError, UnexpectedVersion) as error:
        print(f"version: {error}", file=sys.stderr)
        return 1
    if args.github_output:
        write_github_output(args.github_output, release)
    print(f"{release.version} ({release.reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
