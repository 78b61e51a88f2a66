"""Response headers (security, caching, CORS), no debug mode, and refusing bad model files at startup."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle  # nosec B403  # tests write deliberately wrong pickles
from datetime import datetime

import pytest
import requests
from werkzeug.http import http_date

import api
import serving.routes
from serving.caching import CACHE_MAX_AGE, cache_validators
from tests.conftest import model_file, refused_start

FORECAST = "/bitcoin?date=2024-06-01"


# ---------------------------------------------------------------- security headers


@pytest.mark.parametrize(
    "path",
    [FORECAST, "/bitcoin?date=nope", "/nowhere", "/health", "/metrics", "/openapi.json", "/docs/swagger"],
)
def test_every_answer_forbids_mime_sniffing(client, path):
    assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_no_server_version_and_no_debug_over_http(live_server):
    response = requests.get(live_server.url + "/nowhere", timeout=10)
    assert "Server" not in response.headers and "X-Powered-By" not in response.headers
    assert response.json()["error"].startswith("404 Not Found")


def test_debug_mode_stays_off_whatever_the_environment_says(model_dir, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = api.create_app(model_dir)
    assert app.debug is False

    def explode(served):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(serving.routes, "model_card", explode)  # a bug in a view
    response = app.test_client().get("/models/btc")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error; it has been logged"}
    assert b"secret internals" not in response.data and b"Traceback" not in response.data


# ---------------------------------------------------------------- caching


def test_forecasts_are_cacheable_with_validators(client, served):
    response = client.get(FORECAST)
    assert response.headers["Cache-Control"] == f"public, max-age={CACHE_MAX_AGE}"
    assert response.headers["Vary"] == "Accept"
    trained = datetime.fromisoformat(served.metadata["trained_at"])
    assert response.headers["Last-Modified"] == http_date(trained)
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('-json"')
    csv = client.get(FORECAST, headers={"Accept": "text/csv"})
    assert csv.headers["ETag"] != etag and csv.headers["ETag"].endswith('-csv"')
    for path in (
        "/forecast/eth?start=2024-06-01&end=2024-06-03",
        "/history/btc?start=2024-06-01&end=2024-06-02",
    ):
        assert client.get(path).headers["ETag"] == etag  # one version for everything the models serve
    assert client.get("/models").headers["ETag"] == etag


def test_over_http_the_fast_path_sends_the_same_headers(live_server, client):
    fast = requests.get(live_server.url + FORECAST, timeout=10)  # answered before Flask
    for name in ("X-Content-Type-Options", "Cache-Control", "ETag", "Last-Modified", "Vary"):
        assert fast.headers[name] == client.get(FORECAST).headers[name], name
    again = requests.get(
        live_server.url + FORECAST, headers={"If-None-Match": fast.headers["ETag"]}, timeout=10
    )
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_current_etag_gets_an_empty_304(client, if_none_match):
    etag = client.get(FORECAST).headers["ETag"]
    response = client.get(
        "/bitcoin?date=2025-01-01", headers={"If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == f"public, max-age={CACHE_MAX_AGE}"


def test_if_modified_since_is_honoured_when_no_etag_is_sent(client):
    last_modified = client.get(FORECAST).headers["Last-Modified"]
    current = client.get(FORECAST, headers={"If-Modified-Since": last_modified})
    assert (current.status_code, current.data) == (304, b"")
    older = client.get(FORECAST, headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert older.status_code == 200 and older.get_json()["prediction"] > 0
    # An ETag, when sent, decides: a stale one gets the answer whatever the date says.
    both = client.get(FORECAST, headers={"If-Modified-Since": last_modified, "If-None-Match": '"old-json"'})
    assert both.status_code == 200


def test_a_stale_etag_or_a_bad_request_gets_no_304(client):
    assert client.get(FORECAST, headers={"If-None-Match": '"old-json"'}).status_code == 200
    etag = client.get(FORECAST).headers["ETag"]
    csv = client.get(FORECAST, headers={"If-None-Match": etag, "Accept": "text/csv"})
    assert csv.status_code == 200  # the JSON tag does not validate the CSV answer
    bad = client.get("/bitcoin?date=2024-02-30", headers={"If-None-Match": etag})
    assert bad.status_code == 400


@pytest.mark.parametrize("path", ["/bitcoin?date=nope", "/nowhere", "/health", "/metrics"])
def test_errors_and_live_status_are_never_stored(client, path):
    response = client.get(path)
    assert response.headers["Cache-Control"] == "no-store"
    assert "ETag" not in response.headers


def test_the_etag_changes_with_any_served_answer_and_only_then(app, live_server):
    models = app.extensions["served_models"]
    validators = cache_validators(models)
    assert cache_validators(models) == validators  # the same models give the same tag...
    over_http = requests.get(live_server.url + FORECAST, timeout=10).headers["ETag"]
    assert over_http == f'"{validators.etags["application/json"]}"'  # ...in another process too
    btc = models["btc"]
    day = "2024-06-01"
    changed = dataclasses.replace(btc, answers={**btc.answers, day: btc.answers[day].replace(b"7", b"8", 1)})
    assert cache_validators({**models, "btc": changed}).etags != validators.etags


# ---------------------------------------------------------------- CORS


def test_simple_cors_request(live_server):
    response = requests.get(live_server.url + FORECAST, headers={"Origin": "https://app.example"}, timeout=10)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers  # public data, no cookies
    assert "Origin" not in response.headers.get("Vary", "")  # "*" keeps one cached copy for all


def test_cors_preflight_allows_reads_only(live_server):
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "If-None-Match, Accept",
    }
    response = requests.options(live_server.url + "/forecast/btc", headers=preflight, timeout=10)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert set(response.headers["Access-Control-Allow-Headers"].split(", ")) == {"If-None-Match", "Accept"}
    assert response.headers["Access-Control-Max-Age"] == "7200"

    post = requests.options(
        live_server.url + "/forecast/btc",
        headers={**preflight, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "Access-Control-Allow-Methods" not in post.headers  # the browser will not send the POST


def test_cors_on_errors_too(live_server):
    for path in ("/bitcoin?date=nope", "/nowhere"):
        response = requests.get(live_server.url + path, headers={"Origin": "https://app.example"}, timeout=10)
        assert response.headers["Access-Control-Allow-Origin"] == "*", path  # so the page can read the error


# ---------------------------------------------------------------- startup refuses bad model files


def replace_model(model_dir, content: bytes, update_sha: bool) -> None:
    model_file(model_dir).write_bytes(content)
    if update_sha:
        metadata = json.loads((model_dir / "btc.json").read_text())
        metadata["model_sha256"] = hashlib.sha256(content).hexdigest()
        (model_dir / "btc.json").write_text(json.dumps(metadata))


def flip_one_byte(content: bytes) -> bytes:
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 1]) + content[middle + 1 :]


DAMAGES = {
    "missing": (lambda d: model_file(d).unlink(), ".pkl cannot be read"),
    "truncated": (
        lambda d: replace_model(d, model_file(d).read_bytes()[:4096], update_sha=False),
        "the file was changed or truncated after training",
    ),
    "one byte changed": (
        lambda d: replace_model(d, flip_one_byte(model_file(d).read_bytes()), update_sha=False),
        "the file was changed or truncated after training",
    ),
    "not a pickle": (
        lambda d: replace_model(d, b"PK\x03\x04 a zip file", update_sha=True),
        "not a readable pickle",
    ),
    "a pickle of the wrong thing": (
        lambda d: replace_model(d, pickle.dumps([1, 2, 3]), update_sha=True),
        "holds a list, not a fitted Prophet model",
    ),
    "metadata not JSON": (lambda d: (d / "btc.json").write_text("{"), "is unreadable"),
    "no model at all": (lambda d: [path.unlink() for path in d.iterdir()], "no model metadata (*.json) in"),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_the_server_refuses_to_start_on_a_bad_model(model_dir_copy, damage):
    change, message = damage
    change(model_dir_copy)
    error = refused_start(model_dir_copy)
    assert "cannot start: " in error and message in error
