"""train.py against a misbehaving Alpaca: every fault ends in a good model or one clear error line.

Each case runs train.py in its own process with the real alpaca-py client against the fake
server in a fault mode. A failed run must exit 1 with exactly one ERROR line, leave the previous
model and metadata byte-identical and no temp files, and finish within the subprocess timeout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from artifact import read_model
from scripts.processes import free_port
from tests import fake_alpaca as fa
from tests.conftest import ROOT, in_namespaces, run_train
from training.data.alpaca import alpaca_client, base_url

# Short limits so a hung server costs seconds, not minutes; the production defaults are in train.py.
FAST_LIMITS = {"ALPACA_CONNECT_TIMEOUT": "2", "ALPACA_READ_TIMEOUT": "1", "ALPACA_FETCH_DEADLINE": "20"}
RUN_TIMEOUT = 90  # seconds: past this the run counts as hung and the test fails


@dataclass(frozen=True)
class Case:
    name: str
    setup: object  # (FakeAlpaca) -> None: puts the fake server in its fault mode
    error: str | None  # the error line's telling part, or None when training must succeed
    env: tuple = ()  # extra environment, as (name, value) pairs


def faults(*answers, forever=None):
    def setup(state: fa.FakeAlpaca) -> None:
        state.faults = list(answers)
        state.fault_forever = forever

    return setup


def damage_bars(change):
    """Edit the BTC bars the fake serves, e.g. to put a NaN or a duplicate in them."""

    def setup(state: fa.FakeAlpaca) -> None:
        state.bars["BTC/USD"] = change(state.bars["BTC/USD"])

    return setup


def with_close(index: int, value):
    def change(bars: list[dict]) -> list[dict]:
        bars[index] = {**bars[index], "c": value}
        return bars

    return change


def scaled(index: int, factor: float):
    """One bar's prices times `factor`: a unit error (x1000) or a misplaced decimal point."""

    def change(bars: list[dict]) -> list[dict]:
        bars[index] = {**bars[index], **{k: bars[index][k] * factor for k in "ohlc"}}
        return bars

    return change


def swapped_high_low(index: int):
    def change(bars: list[dict]) -> list[dict]:
        bars[index] = {**bars[index], "h": bars[index]["l"], "l": bars[index]["h"]}
        return bars

    return change


def frozen(days: int):
    """The last `days` closed bars flat at the close before them: a feed that stopped moving."""

    def change(bars: list[dict]) -> list[dict]:
        price = bars[-days - 2]["c"]
        for i in range(-days - 1, -1):
            bars[i] = {**bars[i], "o": price, "h": price, "l": price, "c": price}
        return bars

    return change


def no_trades(days: int):
    def change(bars: list[dict]) -> list[dict]:
        for i in range(-days - 10, -10):
            bars[i] = {**bars[i], "v": 0.0}
        return bars

    return change


def replayed_week(bars: list[dict]) -> list[dict]:
    """The week before last served again under last week's dates."""
    for i in range(-8, -1):
        bars[i] = {**bars[i - 7], "t": bars[i]["t"]}
    return bars


def stale(days: int):
    """Bars that stop `days` days ago, as if the feed had stopped."""

    def change(bars: list[dict]) -> list[dict]:
        newest = (datetime.now(UTC).date() - timedelta(days=days)).isoformat()
        return [bar for bar in bars if bar["t"][:10] <= newest]

    return change


CASES = [
    # Transient trouble: retried, then a good model.
    Case("429 once, then data", faults(fa.error_status(429)), None),
    Case("500 once, then data", faults(fa.error_status(500)), None),
    Case("502 once, then data", faults(fa.error_status(502)), None),
    Case("503 twice, then data", faults(fa.error_status(503), fa.error_status(503)), None),
    Case(
        "503 asking to retry in an hour, then data",
        faults(fa.error_status(503, {"Retry-After": "3600"})),
        None,
    ),
    Case("a hung connection, then data", faults(fa.hang), None),
    # Lasting trouble: one error line, the old model kept.
    Case("429 every time", faults(forever=fa.error_status(429)), "HTTP 429"),
    Case("500 every time", faults(forever=fa.error_status(500)), "HTTP 500"),
    Case("502 every time", faults(forever=fa.error_status(502)), "HTTP 502"),
    Case("503 every time", faults(forever=fa.error_status(503)), "HTTP 503"),
    Case("every connection hangs", faults(forever=fa.hang), "no data for 1 s (read timeout)"),
    Case(
        "a body trickling a byte every 0.2 s",
        faults(forever=fa.trickle),
        "took longer than 4 s",
        (("ALPACA_FETCH_DEADLINE", "4"),),
    ),
    Case("connection reset mid-body", faults(forever=fa.reset_mid_body), "Connection reset by peer"),
    Case("malformed JSON", faults(forever=fa.malformed_json), "the answer is not valid JSON"),
    Case("an empty bars object", faults(forever=fa.empty_bars), "returned no BTC/USD bars"),
    Case("a next_page_token that repeats", faults(forever=fa.repeating_token), "repeated page token"),
    # Bad data, well delivered: validation refuses it.
    Case("a NaN close", damage_bars(with_close(-20, math.nan)), "missing (NaN) prices"),
    Case("a null close", damage_bars(with_close(-20, None)), "validation error for Bar"),
    Case("a negative close", damage_bars(with_close(-20, -1.0)), "non-positive prices"),
    Case("a duplicated day", damage_bars(lambda b: [*b[:-20], b[-20], *b[-20:]]), "appear twice"),
    Case("a missing day", damage_bars(lambda b: b[:-20] + b[-19:]), "1 day(s) missing"),
    Case("no new bar for 5 days", damage_bars(stale(5)), "the feed looks stale"),
    # The checks the snapshot's bars go through (tests/test_data_checks.py), on Alpaca's.
    Case(
        "the newest close 69,268,250, above its day's high",
        damage_bars(with_close(-2, 69268250.0)),
        "its close is outside the day's low to high",
    ),
    Case("a bar x1000 (a bad print)", damage_bars(scaled(-30, 1000)), "bad print on"),
    Case("a bar x0.001 (a bad print)", damage_bars(scaled(-30, 0.001)), "bad print on"),
    Case("the newest bar x1000", damage_bars(scaled(-2, 1000)), "the newest close, "),
    Case("high below low", damage_bars(swapped_high_low(-20)), "its low is above its high"),
    Case("a frozen feed", damage_bars(frozen(6)), "frozen feed: the close is"),
    Case("no trades for 5 days", damage_bars(no_trades(5)), "no trades: volume 0 on 5 days running"),
    Case("last week replayed", damage_bars(replayed_week), "replayed bars: the closes of"),
]


def model_files(model_dir) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(model_dir.iterdir())}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault(case: Case, fake_alpaca, model_dir_copy):
    case.setup(fake_alpaca.state)
    before = model_files(model_dir_copy)
    env = {"ALPACA_DATA_URL": fake_alpaca.url, **FAST_LIMITS, **dict(case.env)}

    started = time.monotonic()
    # --no-backtest: these runs test the data path; the backtest and its gate are tested elsewhere.
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--start", "2024-01-01", "--model-dir", str(model_dir_copy),
        "--no-backtest", env=env, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    outcome = "good model" if result.returncode == 0 else errors[0].split(" ERROR ")[-1] if errors else "?"
    print(f"\n{case.name}: exit {result.returncode} in {elapsed:.1f} s: {outcome}")
    assert "Traceback" not in result.stderr, result.stderr
    if case.error is None:
        assert result.returncode == 0, result.stderr
        # The fake's newest bar is today's, still open: the newest training row is the one before.
        assert_good_model(model_dir_copy, before, fake_alpaca.state.bars["BTC/USD"][-2]["t"][:10])
    else:
        assert result.returncode == 1, result.stderr
        assert len(errors) == 1, result.stderr
        assert "training btc failed: " in errors[0] and case.error in errors[0], errors[0]
        assert model_files(model_dir_copy) == before  # byte-identical, and no temp files beside


def assert_good_model(model_dir, before: dict[str, bytes], last_closed_day: str) -> None:
    """A new BTC model, from Alpaca's data, that the API accepts; ETH untouched."""
    after = model_files(model_dir)
    metadata, old_model = json.loads(after["btc.json"]), json.loads(before["btc.json"])["model_file"]
    # The new model replaced the old one, and no temp file was left.
    assert set(after) == set(before) - {old_model} | {metadata["model_file"]}
    assert after[metadata["model_file"]] != before[old_model]
    assert {k: v for k, v in after.items() if k.startswith("eth.")} == {
        k: v for k, v in before.items() if k.startswith("eth.")
    }
    assert metadata["source"] == "alpaca"
    assert metadata["last_day"] == last_closed_day
    assert metadata["model_sha256"] == hashlib.sha256(after[metadata["model_file"]]).hexdigest()
    assert read_model(model_dir / metadata["model_file"], metadata["model_sha256"]).history is not None


def test_bad_time_limit_settings_fail_with_one_line(model_dir_copy, fake_alpaca):
    before = model_files(model_dir_copy)
    result = run_train(
        "--source", "alpaca", "--asset", "btc", "--model-dir", str(model_dir_copy),
        env={"ALPACA_DATA_URL": fake_alpaca.url, "ALPACA_READ_TIMEOUT": "soon"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "training btc failed: ALPACA_READ_TIMEOUT must be a positive number of seconds; got 'soon'" in (
        result.stderr
    )
    assert model_files(model_dir_copy) == before


# ---------------------------------------------------------------- where the connection fails


def failed_fetch(url: str, model_dir, wrapper: list[str] | tuple = ()) -> str:
    """Run train.py against `url` (under `wrapper`, if any); it must fail with one ERROR line, returned."""
    command = [*wrapper, sys.executable, str(ROOT / "train.py"), "--source", "alpaca", "--asset", "btc"]
    result = subprocess.run(
        [*command, "--model-dir", str(model_dir), "--no-backtest"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, **FAST_LIMITS, "ALPACA_DATA_URL": url},
        cwd=ROOT,
    )
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"fetching daily BTC/USD bars from {url} since" in result.stderr  # the URL, not the SDK's enum
    return errors[0].split(" ERROR ")[-1]


def test_a_refused_connection_is_named_as_such(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert failed_fetch(url, tmp_path) == (
        f"train: training btc failed: could not fetch bars from {url}: "
        "connection refused: nothing listens at that address and port"
    )


def test_a_host_name_that_does_not_resolve_is_named_as_such(tmp_path):
    # The resolver may ask a name server beyond loopback, even for a reserved .invalid name:
    # train.py runs in a network namespace of its own, where no interface is up and no query
    # can leave.
    message = failed_fetch("http://alpaca.invalid", tmp_path, in_namespaces("--net"))
    assert message.startswith(
        "train: training btc failed: could not fetch bars from http://alpaca.invalid: "
        "could not resolve the host name ("
    ), message


@pytest.fixture
def full_backlog():
    """A loopback port whose listen queue is full: a new connection there is never accepted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    queued = []
    try:
        for _ in range(16):  # a backlog of 0 holds one or two connections
            client = socket.socket()
            client.settimeout(0.5)
            queued.append(client)
            try:
                client.connect(server.getsockname())
            except TimeoutError:
                break
        else:
            pytest.fail("the listen queue never filled up")
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        for client in queued:
            client.close()
        server.close()


def test_a_connect_timeout_is_named_as_such(full_backlog, tmp_path):
    assert failed_fetch(full_backlog, tmp_path) == (
        f"train: training btc failed: could not fetch bars from {full_backlog}: "
        "could not connect within 2 s (connect timeout)"
    )


# alpaca-py imports websockets' legacy module, which warns; train.py's own processes hide it.
@pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning")
def test_without_an_override_the_url_is_alpacas():
    """The SDK keeps its default URL as an enum; the log and the errors show the URL itself."""
    assert base_url(alpaca_client(None, None, None)) == "https://data.alpaca.markets"
    assert base_url(alpaca_client("http://127.0.0.1:1", None, None)) == "http://127.0.0.1:1"


# ---------------------------------------------------------------- the feed rewrites its own past


def test_a_feed_that_rewrites_history_is_refused_unless_repair_accepts_it(fake_alpaca, tmp_path):
    run = (
        "--source", "alpaca", "--asset", "btc", "--start", "2024-01-01", "--model-dir", str(tmp_path),
        "--no-backtest",
    )  # fmt: skip
    env = {"ALPACA_DATA_URL": fake_alpaca.url, **FAST_LIMITS}
    assert run_train(*run, env=env, timeout=RUN_TIMEOUT).returncode == 0
    before = model_files(tmp_path)
    bars = fake_alpaca.state.bars["BTC/USD"]
    old = bars[-100]
    bars[-100] = {**old, "c": (old["h"] + old["l"]) / 2}  # still inside its day's range: only history tells
    day = old["t"][:10]

    result = run_train(*run, env=env, timeout=RUN_TIMEOUT)
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert f"training btc failed: the feed rewrote history: the close of {day} is " in errors[0]
    assert re.search(r"; 1 of \d+ shared days differ \(train.py --repair would accept it", errors[0])
    assert model_files(tmp_path) == before

    result = run_train(*run, "--repair", env=env, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "btc.json").read_text())
    assert card["repairs"] == {
        "allowed": True,
        "made": [
            {
                "kind": "rewritten history accepted",
                "day": day,
                "was": old["c"],
                "now": bars[-100]["c"],
                "days": 1,
            }
        ],
    }
