"""The real thing: `python api.py` under Waitress on a loopback port, and its startup failures."""

from __future__ import annotations

from pathlib import Path

import requests

from scripts.processes import stop_process
from tests.conftest import start_api


def test_serves_the_same_answer_as_the_app(live_server, client):
    response = requests.get(f"{live_server.url}/bitcoin", params={"date": "2024-06-01"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == client.get("/bitcoin?date=2024-06-01").get_data()


def test_bad_input_and_cors_over_http(live_server):
    response = requests.get(
        f"{live_server.url}/bitcoin?date=2024-02-30", headers={"Origin": "https://example.org"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json() == {"error": "2024-02-30 is not a calendar day (day is out of range for month)"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_health_and_no_server_banner(live_server):
    response = requests.get(f"{live_server.url}/health", timeout=10)
    # "stale" on the bundled snapshot's old data: still a 200, so that no platform restarts it.
    assert response.status_code == 200 and response.json()["status"] in ("ok", "stale")
    assert "Server" not in response.headers


def test_sigterm_stops_the_server_cleanly(model_dir):
    server = start_api(model_dir)
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    assert stop_process(server.process) == 0
    server.reader.join(timeout=10)
    assert any("stopped" in line for line in server.log)


def test_the_server_does_not_load_matplotlib(live_server):
    """Plotting code is dead weight at startup (import time, a font cache in read-only containers)."""
    assert requests.get(f"{live_server.url}/health", timeout=10).status_code == 200
    mapped = Path(f"/proc/{live_server.process.pid}/maps").read_text()
    assert "pandas" in mapped  # the check sees the server's compiled libraries
    assert "matplotlib" not in mapped
