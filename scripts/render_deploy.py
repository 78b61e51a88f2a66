#!/usr/bin/env python3
"""Deploy one exact image on Render, and (with an API key) wait until it is live (standard library only).

    RENDER_DEPLOY_HOOK_URL=https://api.render.com/deploy/srv-...?key=... \\
    RENDER_API_KEY=rnd_... \\
        python scripts/render_deploy.py ghcr.io/owner/repo@sha256:<64 hex digits>

Render deploys an image-backed service when its secret deploy hook URL receives a POST. The
``imgURL`` query parameter names the image to deploy; everything in it but the tag or digest
must match the image URL in the service's settings, or Render refuses the request. The image is
named by digest, never by tag: a tag can be moved to another image, a digest names exactly the
bytes this pipeline run checked, scanned, signed and published. Anything else is refused (exit 2)
before the hook is called.

The hook only says that Render accepted the deploy; pulling the image (a private GHCR package
without registry credentials fails here), starting it and its health check come later. With
RENDER_API_KEY set, the script follows the deploy the hook answered with through Render's API
(``GET /v1/services/<service>/deploys/<deploy>``, the service taken from the hook URL) until it is
``live`` (exit 0), ends in a failed or cancelled state, or is still not live after
``--deploy-timeout`` seconds (exit 1). Without the key it says, as a notice, that the deploy was
accepted and not followed.

Without RENDER_DEPLOY_HOOK_URL (a fork, or a repository that does not deploy) it prints a
GitHub Actions notice and exits 0: nothing to deploy is not a failure. Exits 1 when Render
does not accept the request after a few attempts. The hook URL and the API key are secrets: they
are never printed. RENDER_API_URL (default https://api.render.com/v1) lets tests use a local
stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HOOK_VARIABLE = "RENDER_DEPLOY_HOOK_URL"
API_KEY_VARIABLE = "RENDER_API_KEY"
API_URL_VARIABLE = "RENDER_API_URL"
API_URL = "https://api.render.com/v1"
ATTEMPTS = 3
TIMEOUT = 30  # seconds per request
ANSWER_LIMIT = 1_000_000  # bytes of a deploy read from the API: the whole object, which is a few kB
RETRY_STATUSES = {429, 500, 502, 503, 504}
# Render's deploy states (its API's deployStatus): the one that means done, and those a deploy never
# leaves without going live. Any other (created, queued, build_in_progress, update_in_progress,
# pre_deploy_in_progress) is still on its way. "deactivated" ends here too: a newer deploy replaced
# this one, so the image this run checked is not what serves.
LIVE = "live"
ENDED = {"build_failed", "update_failed", "pre_deploy_failed", "canceled", "deactivated"}
# The hook URL's path, https://api.render.com/deploy/srv-...: the service the API is asked about.
HOOK_PATH = re.compile(r".*/deploy/(?P<service>srv-[A-Za-z0-9]+)/?")
# registry[:port]/path@sha256:<digest>, lower case as registries require (no tag: the digest decides).
IMAGE_BY_DIGEST = re.compile(
    r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?"  # registry host, e.g. ghcr.io
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"  # repository path, e.g. /owner/repo
    r"@sha256:[0-9a-f]{64}"
)


class DeployError(Exception):
    """Render did not accept the deploy, or it did not go live; the message holds no secret."""


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


def send(request: urllib.request.Request, limit: int = 500) -> tuple[int, str]:
    """The status and the first `limit` bytes of the answer; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310  # nosec B310  # Render
            return response.status, response.read(limit).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(500).decode(errors="replace")


def post_once(url: str) -> tuple[int, str]:
    """POST with an empty body to the hook; the status and the start of the answer."""
    return send(urllib.request.Request(url, data=b"", method="POST"))  # noqa: S310  # https hook (tests: loopback)


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


def service_id(hook_url: str) -> str | None:
    """The service a deploy hook URL belongs to (srv-...), or None when its path is not a hook's."""
    match = HOOK_PATH.fullmatch(urllib.parse.urlsplit(hook_url).path)
    return match["service"] if match else None


def deploy_id(answer: str) -> str | None:
    """The id of the deploy the hook's JSON answer names ({"deploy": {"id": ...}}), or None."""
    try:
        body = json.loads(answer)
    except ValueError:
        return None
    deploy = body.get("deploy", body) if isinstance(body, dict) else None
    found = deploy.get("id") if isinstance(deploy, dict) else None
    return found if isinstance(found, str) and re.fullmatch(r"[A-Za-z0-9-]+", found) else None


def deploy_status(api_url: str, api_key: str, service: str, deploy: str) -> tuple[int, str | None]:
    """Ask Render's API for one deploy: the HTTP status and, when it answered 200, the deploy's state."""
    url = f"{api_url.rstrip('/')}/services/{service}/deploys/{deploy}"
    request = urllib.request.Request(  # noqa: S310  # https API (tests: http on loopback)
        url, headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    )
    status, answer = send(request, limit=ANSWER_LIMIT)
    if status != 200:
        return status, None
    try:
        state = json.loads(answer).get("status")
    except (ValueError, AttributeError):
        state = None
    return status, state if isinstance(state, str) else None


def follow(api_url: str, api_key: str, service: str, deploy: str, timeout: float, interval: float) -> None:
    """Poll the deploy until it is live; raise DeployError when it ends otherwise or time runs out.

    A busy or unreachable API is asked again until the deadline; a refused key or an unknown deploy
    is final. Each new state is printed once.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            status, state = deploy_status(api_url, api_key, service, deploy)
        except (urllib.error.URLError, OSError) as error:
            status, state = None, None
            last = f"the API was unreachable ({getattr(error, 'reason', error)})"
        if status in (401, 403):
            raise DeployError(f"Render's API refused {API_KEY_VARIABLE} ({status}) for service {service}")
        if status == 404:
            raise DeployError(f"Render's API knows no deploy {deploy} of service {service} (404)")
        if state is not None:
            if state != last:
                print(f"deploy {deploy}: {state}", flush=True)
            last = state
            if state == LIVE:
                return
            if state in ENDED:
                raise DeployError(f"deploy {deploy} of service {service} ended {state}, not live")
        elif status is not None:
            last = f"the API answered {status}" if status != 200 else "an answer without a status"
        if time.monotonic() >= deadline:
            raise DeployError(
                f"deploy {deploy} of service {service} is not live after {timeout:g} s (last: {last})"
            )
        time.sleep(interval)


def wait_until_live(hook_url: str, image: str, answer: str, api_key: str, args: argparse.Namespace) -> None:
    """Follow the deploy the hook answered with, through Render's API, until it is live."""
    service, deploy = service_id(hook_url), deploy_id(answer)
    if service is None:
        raise DeployError(
            f"{HOOK_VARIABLE} is not a deploy hook URL (.../deploy/srv-...): cannot follow the deploy"
        )
    if deploy is None:
        raise DeployError(
            f"Render accepted the deploy of {image} but named no deploy to follow: {answer.strip()[:200]}"
        )
    api_url = os.environ.get(API_URL_VARIABLE, "").strip() or API_URL
    print(f"Render accepted the deploy of {image} as {deploy}; waiting for it to go live", flush=True)
    follow(api_url, api_key, service, deploy, args.deploy_timeout, args.poll_interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy one exact image on Render through its deploy hook.")
    parser.add_argument(
        "image", type=image_by_digest, help="the image to deploy, by digest: ghcr.io/owner/repo@sha256:..."
    )
    parser.add_argument("--retry-delay", type=float, default=5.0, help="seconds before the first retry")
    parser.add_argument(
        "--deploy-timeout",
        type=float,
        default=900.0,
        help=f"with {API_KEY_VARIABLE}: seconds for the deploy to go live (default 900)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=10.0, help="seconds between two questions about the deploy"
    )
    args = parser.parse_args(argv)

    hook_url = os.environ.get(HOOK_VARIABLE, "").strip()
    if not hook_url:
        print(
            f"::notice title=Deploy skipped::{HOOK_VARIABLE} is not set, so nothing was deployed. "
            f"The image {args.image} is published; set the secret to deploy it on Render."
        )
        return 0
    api_key = os.environ.get(API_KEY_VARIABLE, "").strip()
    try:
        answer = trigger(hook_url, args.image, args.retry_delay)
        if api_key:
            wait_until_live(hook_url, args.image, answer, api_key, args)
    except DeployError as error:
        print(f"::error title=Deploy failed::{error}", file=sys.stderr)
        return 1
    if api_key:
        print(f"Render serves {args.image}: the deploy is live")
    else:
        print(
            f"::notice title=Deploy not followed::Render accepted the deploy of {args.image}"
            f" ({answer.strip()[:200]}). {API_KEY_VARIABLE} is not set,"
            " so whether it went live was not checked."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
