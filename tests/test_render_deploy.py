"""scripts/render_deploy.py against a local stand-in for Render's deploy hook and API (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.processes import free_port
from tests.conftest import ROOT

DEPLOY_SCRIPT = ROOT / "scripts" / "render_deploy.py"
IMAGE = "ghcr.io/owner/crypto-predict-api@sha256:" + "0123456789abcdef" * 4
HOOK_KEY = "k3y-that-must-stay-private"  # the part of the hook URL that must not leak
API_KEY = "rnd_api-key-that-must-stay-private"
DEPLOY = "dep-1"
DEPLOY_PATH = f"/v1/services/srv-abc123/deploys/{DEPLOY}"
# The options that keep the tests quick: no pause between retries or between polls.
QUICK = ("--retry-delay", "0", "--poll-interval", "0")


@dataclass
class Hook:
    """What the fake deploy hook and the fake API answer, and the requests they received."""

    statuses: list[int] = field(default_factory=lambda: [202])
    answer: bytes = b'{"deploy":{"id":"dep-1"}}'  # the hook's answer when it accepts
    # The API: HTTP statuses to answer first (then 200), and the deploy's states, one per 200 answer.
    api_statuses: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=lambda: ["live"])
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)
    authorizations: list[str | None] = field(default_factory=list)  # of the API requests
    url: str = ""
    api_url: str = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            state.requests.append(("POST", self.path))
            status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            self.answer(status, state.answer if status < 300 else b'{"message":"no"}')

        def do_GET(self):  # Render's API: GET /v1/services/<service>/deploys/<deploy>
            state.requests.append(("GET", self.path))
            state.authorizations.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self.answer(401, b'{"message":"unauthorized"}')
            elif self.path != DEPLOY_PATH:
                self.answer(404, b'{"message":"not found"}')
            elif state.api_statuses:
                self.answer(state.api_statuses.pop(0), b'{"message":"busy"}')
            else:
                deploy_state = state.states.pop(0) if len(state.states) > 1 else state.states[0]
                deploy = {
                    "id": DEPLOY,
                    "status": deploy_state,
                    "image": {"ref": IMAGE},
                    "trigger": "deploy_hook",
                }
                self.answer(200, json.dumps(deploy).encode())

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/deploy/srv-abc123?key={HOOK_KEY}"
    state.api_url = f"http://127.0.0.1:{server.server_port}/v1"
    yield state
    server.shutdown()
    server.server_close()


def deploy(
    hook_url: str | None, *args: str, image: str = IMAGE, api_key: str | None = None, api_url: str = ""
) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RENDER_")}
    if hook_url is not None:
        env["RENDER_DEPLOY_HOOK_URL"] = hook_url
    if api_key is not None:
        env["RENDER_API_KEY"] = api_key
        env["RENDER_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, str(DEPLOY_SCRIPT), image, *QUICK, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_posts_the_exact_image_to_the_hook_keeping_its_key(hook):
    result = deploy(hook.url)
    assert result.returncode == 0, result.stderr
    assert len(hook.requests) == 1
    method, path = hook.requests[0]
    assert method == "POST"
    assert urlsplit(path).path == "/deploy/srv-abc123"
    assert parse_qs(urlsplit(path).query) == {"key": [HOOK_KEY], "imgURL": [IMAGE]}
    assert f"accepted the deploy of {IMAGE}" in result.stdout


def test_a_hook_without_query_gets_one(hook):
    assert deploy(hook.url.split("?")[0]).returncode == 0
    assert parse_qs(urlsplit(hook.requests[0][1]).query) == {"imgURL": [IMAGE]}


def test_without_the_secret_it_skips_with_a_notice_and_succeeds(hook):
    for absent in (None, "", "  "):
        result = deploy(absent)
        assert result.returncode == 0
        assert result.stdout.startswith("::notice title=Deploy skipped::RENDER_DEPLOY_HOOK_URL is not set")
        assert IMAGE in result.stdout
    assert hook.requests == []


def test_a_refusal_fails_the_run_without_revealing_the_hook(hook):
    hook.statuses = [400]
    result = deploy(hook.url)
    assert result.returncode == 1
    assert result.stderr.startswith("::error title=Deploy failed::the deploy hook answered 400")
    assert len(hook.requests) == 1  # a refusal is final: no retry
    assert HOOK_KEY not in result.stdout + result.stderr


def test_a_busy_hook_is_retried(hook):
    hook.statuses = [503, 502, 202]
    result = deploy(hook.url)
    assert result.returncode == 0, result.stderr
    assert len(hook.requests) == 3


def test_an_unreachable_hook_fails_after_the_attempts():
    result = deploy(f"http://127.0.0.1:{free_port()}/deploy/srv-abc123?key={HOOK_KEY}")
    assert result.returncode == 1
    assert "cannot reach the deploy hook" in result.stderr
    assert HOOK_KEY not in result.stdout + result.stderr


def test_an_image_reference_on_a_registry_with_a_port_is_accepted(hook):
    image = "registry.example.com:5000/team/crypto-predict@sha256:" + "a" * 64
    assert deploy(hook.url, image=image).returncode == 0
    assert parse_qs(urlsplit(hook.requests[0][1]).query)["imgURL"] == [image]


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/owner/crypto-predict-api:1.2.3-20260827120000",  # a tag can be moved to another image
        "ghcr.io/owner/crypto-predict-api:latest",
        "ghcr.io/owner/crypto-predict-api",
        "ghcr.io/owner/crypto-predict-api@sha256:" + "0" * 63,  # a digest one digit short
        "ghcr.io/owner/crypto-predict-api@sha256:" + "A" * 64,  # digests are lower-case hex
        "ghcr.io/Owner/crypto-predict-api@sha256:" + "0" * 64,  # so are repository paths
        "ghcr.io/owner/crypto-predict-api@sha512:" + "0" * 64,
        "ghcr.io/owner/repo@sha256:" + "0" * 64 + "&key=x",  # nothing may ride along into the query
    ],
)
def test_anything_but_an_image_by_digest_is_refused_before_the_hook(hook, image):
    for hook_url in (hook.url, None):  # with and without the secret
        result = deploy(hook_url, image=image)
        assert result.returncode == 2
        assert "is not an image named by digest" in result.stderr
    assert hook.requests == []


# ---------------------------------------------------------------- following the deploy (RENDER_API_KEY)


def follow(hook: Hook, *args: str, api_key: str = API_KEY) -> subprocess.CompletedProcess:
    return deploy(hook.url, *args, api_key=api_key, api_url=hook.api_url)


def api_requests(hook: Hook) -> list[str]:
    return [path for method, path in hook.requests if method == "GET"]


def test_without_an_api_key_the_accepted_deploy_is_not_followed_and_says_so(hook):
    result = deploy(hook.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"::notice title=Deploy not followed::Render accepted the deploy of {IMAGE}"
    )
    assert "RENDER_API_KEY is not set" in result.stdout
    assert api_requests(hook) == []


def test_with_an_api_key_it_waits_until_the_deploy_is_live(hook):
    hook.states = ["created", "update_in_progress", "update_in_progress", "live"]
    result = follow(hook)
    assert result.returncode == 0, result.stderr
    assert api_requests(hook) == [DEPLOY_PATH] * 4
    assert hook.authorizations == [f"Bearer {API_KEY}"] * 4
    # Each new state once, then the closing line.
    assert result.stdout.splitlines() == [
        f"Render accepted the deploy of {IMAGE} as {DEPLOY}; waiting for it to go live",
        f"deploy {DEPLOY}: created",
        f"deploy {DEPLOY}: update_in_progress",
        f"deploy {DEPLOY}: live",
        f"Render serves {IMAGE}: the deploy is live",
    ]
    assert API_KEY not in result.stdout + result.stderr and HOOK_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "ended", ["build_failed", "update_failed", "pre_deploy_failed", "canceled", "deactivated"]
)
def test_a_deploy_that_ends_without_going_live_fails_the_run(hook, ended):
    """E.g. update_failed: Render could not pull a private image, or the health check never passed."""
    hook.states = ["update_in_progress", ended, "live"]
    result = follow(hook)
    assert result.returncode == 1
    assert result.stderr == (
        f"::error title=Deploy failed::deploy {DEPLOY} of service srv-abc123 ended {ended}, not live\n"
    )
    assert len(api_requests(hook)) == 2  # it stops at the final state


def test_a_deploy_still_not_live_at_the_deadline_fails_the_run(hook):
    hook.states = ["update_in_progress"]
    result = follow(hook, "--deploy-timeout", "0.3", "--poll-interval", "0.02")
    assert result.returncode == 1
    assert result.stderr == (
        f"::error title=Deploy failed::deploy {DEPLOY} of service srv-abc123 is not live after 0.3 s"
        " (last: update_in_progress)\n"
    )
    assert len(api_requests(hook)) >= 2


def test_a_busy_api_is_asked_again(hook):
    hook.api_statuses = [503, 429, 500]
    hook.states = ["update_in_progress", "live"]
    result = follow(hook)
    assert result.returncode == 0, result.stderr
    assert len(api_requests(hook)) == 5


def test_a_refused_api_key_fails_at_once_without_revealing_it(hook):
    result = follow(hook, api_key="rnd_wrong-key")
    assert result.returncode == 1
    assert result.stderr.startswith("::error title=Deploy failed::Render's API refused RENDER_API_KEY (401)")
    assert len(api_requests(hook)) == 1
    assert "rnd_wrong-key" not in result.stdout + result.stderr


def test_a_deploy_the_api_does_not_know_fails_at_once(hook):
    hook.answer = b'{"deploy":{"id":"dep-other"}}'
    result = follow(hook)
    assert result.returncode == 1
    assert "knows no deploy dep-other of service srv-abc123 (404)" in result.stderr
    assert api_requests(hook) == ["/v1/services/srv-abc123/deploys/dep-other"]


@pytest.mark.parametrize(
    "answer", [b"", b"accepted", b'{"deploy":{}}', b'{"deploy":{"id":"../../x"}}', b"[1]"]
)
def test_an_answer_that_names_no_deploy_cannot_be_followed(hook, answer):
    hook.answer = answer
    result = follow(hook)
    assert result.returncode == 1
    assert f"Render accepted the deploy of {IMAGE} but named no deploy to follow" in result.stderr
    assert api_requests(hook) == []
    assert deploy(hook.url).returncode == 0  # without the key, accepted is all it can say


def test_a_hook_url_without_a_service_cannot_be_followed(hook):
    result = deploy(
        hook.url.replace("/deploy/srv-abc123", "/hooks/abc"), api_key=API_KEY, api_url=hook.api_url
    )
    assert result.returncode == 1
    assert "RENDER_DEPLOY_HOOK_URL is not a deploy hook URL (.../deploy/srv-...)" in result.stderr
    assert api_requests(hook) == []


def test_an_unreachable_api_fails_at_the_deadline():
    """The hook accepted; the API never answers: not live, and the reason is named."""
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(202)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook_url = f"http://127.0.0.1:{server.server_port}/deploy/srv-abc123?key={HOOK_KEY}"
        api_url = f"http://127.0.0.1:{free_port()}/v1"
        result = deploy(hook_url, "--deploy-timeout", "0.2", api_key=API_KEY, api_url=api_url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "is not live after 0.2 s (last: the API was unreachable" in result.stderr
