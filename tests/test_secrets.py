"""Alpaca's key and secret never reach train.py's output: not in a log line, an error, a traceback.

The cases that printed them: a key with a newline in it (requests quotes the refused header
value in its exception), an unreachable ALPACA_DATA_URL with --source alpaca (the ERROR line)
and --source auto (the WARNING line before the fallback), and an error page that echoes the
request's headers. The real alpaca-py client; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from scripts.processes import free_port
from tests import fake_alpaca as fa
from tests.conftest import ROOT, run_train
from training import redaction

KEY = "PKFAKE7Q2W9E4R1T6Y3U"
SECRETS = {
    "a secret with a newline": "first-half-5b8d3f\nsecond-half-a91c07",
    "a secret ending in a newline": "aQ3v9Lz2Kx7Pw1Rt8Ys4Nm6Bc0Dj5Fh2Gk\n",
    "a plain secret": "aQ3v9Lz2Kx7Pw1Rt8Ys4Nm6Bc0Dj5Fh2Gk",
}
FAST_LIMITS = {"ALPACA_CONNECT_TIMEOUT": "2", "ALPACA_READ_TIMEOUT": "1", "ALPACA_FETCH_DEADLINE": "20"}


def fragments(secret: str) -> list[str]:
    """What must not appear: each value, its repr, and every part of it of 4 characters or more."""
    values = [KEY, secret]
    return [*values, *(repr(v)[1:-1] for v in values), *(p for v in values for p in v.split() if len(p) >= 4)]


def keys(secret: str) -> dict[str, str]:
    return {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": secret, **FAST_LIMITS}


def assert_no_secret(result: subprocess.CompletedProcess, secret: str) -> None:
    output = result.stdout + result.stderr
    leaked = [fragment for fragment in fragments(secret) if fragment in output]
    assert not leaked, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_an_unreachable_alpaca_fails_without_the_keys(secret, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--no-backtest", "--model-dir", str(tmp_path),
        env={"ALPACA_DATA_URL": url, **keys(secret)},
    )  # fmt: skip
    assert_no_secret(result, secret)
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert f"training btc failed: could not fetch bars from {url}: " in errors[0]
    if secret.split() == [secret]:  # a clean secret reaches the connection, which is refused
        assert "connection refused" in errors[0]
    else:  # requests refuses the header before any connection: said without the value
        assert "ALPACA_API_KEY or ALPACA_SECRET_KEY is not a valid HTTP header value" in errors[0]


@pytest.mark.parametrize("secret", [SECRETS["a secret with a newline"], SECRETS["a plain secret"]])
def test_the_fallback_to_the_snapshot_says_why_without_the_keys(secret, tmp_path):
    result = run_train(
        "--source", "auto", "--asset", "btc", "--no-backtest", "--model-dir", str(tmp_path),
        env={"ALPACA_DATA_URL": f"http://127.0.0.1:{free_port()}", **keys(secret)},
    )  # fmt: skip
    assert_no_secret(result, secret)
    assert result.returncode == 0, result.stderr
    assert "WARNING training.pipeline: ALPACA UNAVAILABLE (could not fetch bars from" in result.stderr


def test_an_error_page_that_echoes_the_keys_is_redacted(fake_alpaca, tmp_path):
    fake_alpaca.state.fault_forever = fa.echo_headers
    secret = SECRETS["a plain secret"]
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--no-backtest", "--model-dir", str(tmp_path),
        env={"ALPACA_DATA_URL": fake_alpaca.url, **keys(secret)},
    )  # fmt: skip
    assert fake_alpaca.state.requests[0]["headers"]["APCA-API-SECRET-KEY"] == secret  # it was sent
    assert_no_secret(result, secret)
    assert "HTTP 403: " in result.stderr and "[redacted]" in result.stderr


def test_a_traceback_is_redacted(monkeypatch):
    secret = SECRETS["a secret with a newline"]
    monkeypatch.setenv("ALPACA_SECRET_KEY", secret)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s", (secret,), None)
    try:
        raise RuntimeError(f"header {secret!r} refused")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert redaction.RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "failed with [redacted]" in text and "header '[redacted]' refused" in text
    assert not [fragment for fragment in fragments(secret)[1:] if fragment in text]


def test_an_uncaught_exception_is_printed_redacted():
    secret = SECRETS["a secret with a newline"]
    program = (
        "import logging, os; from training import redaction; logging.basicConfig(); redaction.install(); "
        "raise RuntimeError('key ' + os.environ['ALPACA_SECRET_KEY'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "ALPACA_SECRET_KEY": secret},
        timeout=60,
    )
    assert result.returncode == 1 and "RuntimeError: key [redacted]" in result.stderr, result.stderr
    assert not [fragment for fragment in fragments(secret)[1:] if fragment in result.stderr]
