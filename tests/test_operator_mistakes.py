"""What hostile clients and operator mistakes found: each defect, reproduced, and answered properly."""

from __future__ import annotations

import http.client
import json
import re

import pytest
import requests

from tests.conftest import refused_start

HUGE_YEAR = "Mon, 01 Jan 99999999999 00:00:00 GMT"
SERIES = re.compile(r"^http_request", re.MULTILINE)


def raw_get(url: str, path: str, method: str = "GET", headers: dict | None = None):
    """One request exactly as written (requests would normalize the path and the method)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": f"{host}:{port}", **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# ---------------------------------------------------------------- metrics cardinality


def test_made_up_methods_create_no_series(live_server):
    def made_up_methods(names) -> str:
        for name in names:
            status, _, _ = raw_get(live_server.url, "/bitcoin?date=2024-06-01", method=name)
            assert status in (400, 405, 501)
        return requests.get(f"{live_server.url}/metrics", timeout=10).text

    made_up_methods([])  # the scrape itself is counted: its own series exist from here on
    after_one = made_up_methods(["BREW"])
    after_fifty = made_up_methods([f"BREW{i}" for i in range(49)])
    assert "BREW" not in after_fifty and 'method="other"' in after_fifty
    assert len(SERIES.findall(after_fifty)) == len(SERIES.findall(after_one))


def test_metrics_name_their_charset_once(client):
    assert client.get("/metrics").headers["Content-Type"].count("charset") == 1


# ---------------------------------------------------------------- conditional headers


@pytest.mark.parametrize("path", ["/bitcoin?date=2024-06-01", "/models", "/", "/web/app.js", "/history/btc"])
@pytest.mark.parametrize("header", ["If-Modified-Since", "If-Unmodified-Since", "If-Range"])
def test_an_unreadable_conditional_date_is_ignored(client, path, header):
    plain = client.get(path)
    answer = client.get(path, headers={header: HUGE_YEAR, "Range": "bytes=0-1"})
    assert answer.status_code < 500
    assert answer.status_code == plain.status_code or answer.status_code == 206


# ---------------------------------------------------------------- redirects


def test_doubled_slashes_are_not_redirected_to_the_clients_host(live_server):
    status, headers, body = raw_get(
        live_server.url, "//forecast//btc?date=2024-06-01", headers={"Host": "evil.example"}
    )
    assert status == 404
    assert "evil.example" not in headers.get("Location", "")
    assert json.loads(body)["error"].startswith("404 Not Found")


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_the_docs_redirect_is_relative_and_json(live_server, path):
    status, headers, body = raw_get(live_server.url, path, headers={"Host": "evil.example"})
    assert status == 302 and headers["Location"] == "/docs/swagger"
    assert headers["Content-Type"] == "application/json" and json.loads(body) == {"location": "/docs/swagger"}


# ---------------------------------------------------------------- model folders the API refuses


def rename_pair(model_dir, old: str, new: str) -> None:
    """Give one asset's metadata another asset's name; it still names its own model file."""
    (model_dir / f"{old}.json").rename(model_dir / f"{new}.json")


def test_a_pair_renamed_to_another_asset_is_refused(model_dir_copy):
    rename_pair(model_dir_copy, "btc", "eth")
    assert "is for asset 'btc', not 'eth'" in refused_start(model_dir_copy)


def test_two_models_of_one_symbol_are_refused(model_dir_copy):
    metadata = json.loads((model_dir_copy / "eth.json").read_text())
    metadata.pop("asset")  # format 1 had no asset: the symbol still gives a copy away
    metadata["symbol"] = "BTC/USD"
    (model_dir_copy / "eth.json").write_text(json.dumps(metadata))
    assert "models btc and eth both serve BTC/USD" in refused_start(model_dir_copy)


def test_a_served_range_too_large_for_memory_is_refused(model_dir_copy):
    metadata = json.loads((model_dir_copy / "btc.json").read_text())
    metadata["serve"]["last_day"] = "9999-12-31"
    (model_dir_copy / "btc.json").write_text(json.dumps(metadata))
    assert "more than the 10000 one model may serve" in refused_start(model_dir_copy)


def test_a_missing_model_folder_is_named_as_missing(tmp_path):
    assert "does not exist" in refused_start(tmp_path / "nowhere")


def test_a_file_given_as_model_folder_is_named_as_such(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    assert "is not a folder" in refused_start(tmp_path / "models")


def test_an_empty_model_folder_asks_for_training(tmp_path):
    assert "no model metadata (*.json) in" in refused_start(tmp_path)
