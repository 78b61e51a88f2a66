#!/usr/bin/env python3
"""Ask Render to deploy one exact image through the service's deploy hook (standard library only).

    RENDER_DEPLOY_HOOK_URL=https://api.render.com/deploy/srv-...?key=... \\
        python scripts/render_deploy.py ghcr.io/owner/repo@sha256:<64 hex digits>

Render deploys an image-backed service when its secret deploy hook URL receives a POST. The
``imgURL`` query parameter names the image to deploy; everything in it but the tag or digest
must match the image URL in the service's settings, or Render refuses the request. The image is
named by digest, never by tag: a tag can be moved to another image, a digest names exactly the
bytes this pipeline run checked, scanned, signed and published. Anything else is refused (exit 2)
before the hook is called.

Without RENDER_DEPLOY_HOOK_URL (a fork, or a repository that does not deploy) it prints a
GitHub Actions notice and exits 0: nothing to deploy is not a failure. Exits 1 when Render
does not accept the request after a few attempts. The hook URL is a secret: it is never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HOOK_VARIABLE = "RENDER_DEPLOY_HOOK_URL"
ATTEMPTS = 3
TIMEOUT = 30  # seconds per request
RETRY_STATUSES = {429, 500, 502, 503, 504}
# registry[:port]/path@sha256:<digest>, lower case as registries require (no tag: the digest decides).
IMAGE_BY_DIGEST = re.compile(
    r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?"  # registry host, e.g. ghcr.io
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"  # repository path, e.g. /owner/repo
    r"@sha256:[0-9a-f]{64}"
)


class DeployError(Exception):
    """Render did not accept the deploy; the message never contains the hook URL."""


def image_by_digest(reference: str) -> str:
    """The reference itself when it names an image by digest; argparse reports anything else."""
    if not IMAGE_BY_DIGEST.fullmatch(reference):
        raise argparse.ArgumentTypeError(
            f"{reference!r} is not an image named by digest, e.g. ghcr.io/owner/repo@sha256:<64 hex digits>"
            " (a tag can move; the digest names the image that was checked)"
        )
    return reference


def deploy_url(hook_url: str, image: str) -> str:
    """The hook URL with imgURL=<image> added to its query (the hook already carries its key)."""
    parts = urllib.parse.urlsplit(hook_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(name, value) for name, value in query if name != "imgURL"] + [("imgURL", image)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def post_once(url: str) -> tuple[int, str]:
    """POST with an empty body; the status and the start of the answer."""
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310  # https hook (tests: http on loopback)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310  # nosec B310  # the hook
            return response.status, response.read(500).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(500).decode(errors="replace")


def trigger(hook_url: str, image: str, retry_delay: float) -> str:
    """Deploy `image`; retry connection failures and busy answers; return Render's answer."""
    url = deploy_url(hook_url, image)
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            status, body = post_once(url)
        except (urllib.error.URLError, OSError) as error:
            problem = f"cannot reach the deploy hook ({getattr(error, 'reason', error)})"
        else:
            if 200 <= status < 300:
                return body
            problem = f"the deploy hook answered {status}: {body.strip()}"
            if status not in RETRY_STATUSES:
                break
        if attempt < ATTEMPTS:
            time.sleep(retry_delay * attempt)
    raise DeployError(problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy one exact image on Render through its deploy hook.")
    parser.add_argument(
        "image", type=image_by_digest, help="the image to deploy, by digest: ghcr.io/owner/repo@sha256:..."
    )
    parser.add_argument("--retry-delay", type=float, default=5.0, help="seconds before the first retry")
    args = parser.parse_args(argv)

    hook_url = os.environ.get(HOOK_VARIABLE, "").strip()
    if not hook_url:
        print(
            f"::notice title=Deploy skipped::{HOOK_VARIABLE} is not set, so nothing was deployed. "
            f"The image {args.image} is published; set the secret to deploy it on Render."
        )
        return 0
    try:
        answer = trigger(hook_url, args.image, args.retry_delay)
    except DeployError as error:
        print(f"::error title=Deploy failed::{error}", file=sys.stderr)
        return 1
    print(f"Render accepted the deploy of {args.image}: {answer.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
