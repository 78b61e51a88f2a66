"""Property-based fuzzing of the whole API from its own OpenAPI document, with schemathesis.

`st run` (settings in schemathesis.toml) reads /openapi.json from the real server, generates
valid and invalid requests for every operation, and checks each answer: no 5xx, a documented
status code, content type, headers and body schema, 405 for undocumented methods, and invalid
input refused. A fixed seed makes the suite send the same requests every run; `make fuzz` varies it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from tests.conftest import ROOT

SEED = 20260821
MIN_REQUESTS = 1000
FUZZ_TIMEOUT = 300  # seconds for the whole run: a slow or hung answer fails the test


def test_fuzzing_the_documented_api_finds_nothing(live_server, tmp_path):
    report_path = tmp_path / "schemathesis.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{live_server.url}/openapi.json",
            "--seed", str(SEED), "--no-color",
            "--report", "json", "--report-json-path", str(report_path),
        ],
        capture_output=True, text=True, timeout=FUZZ_TIMEOUT, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5000:]
    report = json.loads(report_path.read_text())
    print(
        f"\nschemathesis: {report['test_cases']['generated']} requests generated in "
        f"{report['running_time']:.1f} s, {len(report['failures'])} failures, seed {report['seed']}"
    )
    assert report["stop_reason"] == "completed" and report["complete"]
    assert report["failures"] == [] and report["errors"] == []
    documented = requests.get(f"{live_server.url}/openapi.json", timeout=10).json()["paths"]
    operations = sum(len(methods) for path, methods in documented.items() if path != "/openapi.json")
    assert report["operations"]["tested"] == operations  # all but the document it reads them from
    assert report["test_cases"]["generated"] >= MIN_REQUESTS
    assert report["test_cases"]["errored"] == 0
