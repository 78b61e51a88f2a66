"""The HTTP details of `python api.py` over real sockets: request framing and versions, byte ranges
and their conditions, and Swagger UI's policy, framing and delivery.

Requests are written byte for byte where a client library would fix them (tests/test_hostile.py's
helpers); RFC 9110 and 9112 say what each answer must be.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from werkzeug.http import http_date

from serving.swagger_ui import YEAR_SECONDS
from tests.test_hostile import assert_still_serving, exchange, request

PLOTLY = "/web/vendor/plotly-basic-4.1.1.min.js"
PLOTLY_SIZE = 1_191_749


# ---------------------------------------------------------------- framing and versions

REFUSED = [
    # (name, raw request, status, what the plain-text answer says)
    ("HTTP/1.1 without Host", b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", 400, b"a Host header"),
    ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n", 505, b"Version Not Supported"),
    ("HTTP/2.0 as text", b"GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n", 505, b"Version Not Supported"),
    (
        "Transfer-Encoding with Content-Length",
        request(
            b"/bitcoin",
            b"POST",
            b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
            b"0\r\n\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        400,
        b"not both",
    ),
    (
        "Transfer-Encoding in HTTP/1.0",
        b"POST /bitcoin HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        b"Transfer-Encoding is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("raw", "status", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_requests_a_proxy_could_read_otherwise_are_refused(live_server, raw, status, reason):
    response = exchange(live_server.url, raw)
    assert response.status == status, response.body
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert reason in response.body
    assert response.body.count(b"HTTP/1.1 200") == 0  # a smuggled request behind it is never answered
    assert_still_serving(live_server)


def test_http_1_0_needs_no_host_and_http_1_1_with_one_is_answered(live_server):
    for raw in (b"GET /health HTTP/1.0\r\n\r\n", request(b"/health")):
        assert exchange(live_server.url, raw).status == 200


# ---------------------------------------------------------------- byte ranges


def plotly(live_server, **headers) -> requests.Response:
    return requests.get(f"{live_server.url}{PLOTLY}", headers=headers, timeout=10)


def test_a_range_with_a_matching_strong_validator_is_served(live_server):
    etag = plotly(live_server, **{"Accept-Encoding": "identity"}).headers["ETag"]
    part = plotly(live_server, Range="bytes=0-9", **{"If-Range": etag})
    assert (part.status_code, len(part.content), part.headers["Content-Range"]) == (
        206,
        10,
        f"bytes 0-9/{PLOTLY_SIZE}",
    )


@pytest.mark.parametrize(
    "if_range",
    [
        "garbage",  # neither an entity tag nor a date: Werkzeug dropped it and served the range
        'W/"weak"',  # a weak tag never validates a range
        '"another-version"',
        http_date(datetime.now(UTC) + timedelta(days=3650)),  # a date from the future
        "Sun, 06 Nov 1994 08:49:37 GMT",  # before the file was written: it changed since
    ],
    # Fixed names: every pytest-xdist worker must collect the same tests, whatever the clock says.
    ids=["garbage", "weak-tag", "other-tag", "future-date", "past-date"],
)
def test_a_range_whose_if_range_fails_gets_the_whole_file(live_server, if_range):
    response = plotly(live_server, Range="bytes=0-9", **{"If-Range": if_range})
    assert response.status_code == 200 and len(response.content) == PLOTLY_SIZE
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize("ranges", ["lines=1-2", "bytes=0-1,5-6", "bytes=5-1", "bytes=abc", "bytes"])
def test_a_range_it_does_not_serve_is_ignored(live_server, ranges):
    response = plotly(live_server, Range=ranges)
    assert response.status_code == 200 and len(response.content) == PLOTLY_SIZE


def test_a_range_past_the_end_is_still_unsatisfiable(live_server):
    response = plotly(live_server, Range=f"bytes={PLOTLY_SIZE}-")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{PLOTLY_SIZE}"


# ---------------------------------------------------------------- Swagger UI


def swagger_page(live_server) -> requests.Response:
    return requests.get(f"{live_server.url}/docs/swagger", timeout=10)


def test_swagger_ui_runs_no_inline_script_under_a_strict_policy_and_is_never_framed(live_server):
    page = swagger_page(live_server)
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and page.headers["X-Frame-Options"] == "DENY"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script would be blocked"
    assert not re.search(r"<style|\sstyle=|\son\w+=", page.text)


def test_swagger_ui_files_come_gzip_encoded_and_cached_under_versioned_urls(live_server):
    urls = re.findall(r"(?:src|href)=\"(swagger/[^\"]+)\"", swagger_page(live_server).text)
    bundle = next(url for url in urls if "swagger-ui-bundle.js?v=" in url)
    for url in urls:
        compressed = requests.get(f"{live_server.url}/docs/{url}", timeout=10, stream=True)
        raw = compressed.raw.read(decode_content=False)
        identity = requests.get(
            f"{live_server.url}/docs/{url}", headers={"Accept-Encoding": "identity"}, timeout=10
        )
        assert compressed.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw) == identity.content
        assert "Content-Encoding" not in identity.headers
        for answer in (compressed, identity):
            assert answer.headers["Cache-Control"] == f"public, max-age={YEAR_SECONDS}, immutable", url
            assert "Accept-Encoding" in answer.headers["Vary"]
        if url == bundle:
            assert len(identity.content) > 1_400_000 and len(raw) < len(identity.content) / 3
    unversioned = requests.get(f"{live_server.url}/docs/{bundle.split('?')[0]}", timeout=10)
    assert unversioned.headers["Cache-Control"] == "no-cache"
    again = requests.get(
        f"{live_server.url}/docs/{bundle}", headers={"If-None-Match": unversioned.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304 and again.content == b""


def test_swagger_ui_starts_on_this_apis_document_without_the_online_validator(live_server):
    urls = re.findall(r"src=\"(swagger/js/start\.js\?v=[^\"]+)\"", swagger_page(live_server).text)
    script = requests.get(f"{live_server.url}/docs/{urls[0]}", timeout=10).text
    assert '"/openapi.json"' in script and '"validatorUrl": "none"' in script
