"""scripts/render_deploy.py against a local stand-in for Render's deploy hook (127.0.0.1 only)."""

from __future__ import annotations

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


@dataclass
class Hook:
    """What the fake deploy hook answers, and the requests it received."""

    statuses: list[int] = field(default_factory=lambda: [202])
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)
    url: str = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            state.requests.append(("POST", self.path))
            status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            body = b'{"deploy":{"id":"dep-1"}}' if status < 300 else b'{"message":"no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/deploy/srv-abc123?key={HOOK_KEY}"
    yield state
    server.shutdown()
    server.server_close()


def deploy(hook_url: str | None, *args: str, image: str = IMAGE) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "RENDER_DEPLOY_HOOK_URL"}
    if hook_url is not None:
        env["RENDER_DEPLOY_HOOK_URL"] = hook_url
    return subprocess.run(
        [sys.executable, str(DEPLOY_SCRIPT), image, "--retry-delay", "0", *args],
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
