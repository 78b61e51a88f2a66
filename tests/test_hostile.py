"""Hostile requests against the real server (`python api.py` under Waitress), byte for byte.

Requests are written to the socket by hand: HTTP client libraries would clean up exactly the
malformed URLs, headers and bodies these tests are about. What the app answers is JSON; what
Waitress refuses before the app sees it (too large, not HTTP) gets Waitress's own plain-text
error, as docs/api.md says.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from serving.server import SERVER_LIMITS

MAX_HEADER = SERVER_LIMITS["max_request_header_size"]
MAX_BODY = SERVER_LIMITS["max_request_body_size"]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def exchange(url: str, data: bytes, timeout: float = 10) -> RawResponse:
    """Send raw bytes to the server, read until it closes, and parse the one response."""
    address = urlsplit(url)
    received = b""
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading it all: its answer is still there
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # Waitress resets a connection it refused mid-request, after its answer
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


def request(target: bytes, method: bytes = b"GET", headers: bytes = b"", body: bytes = b"") -> bytes:
    return (
        method
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        + headers
        + b"\r\n"
        + body
    )


# ---------------------------------------------------------------- answered by the app: JSON


APP_ANSWERS = [
    # (name, raw request, status, part of the error)
    ("long query value", request(b"/bitcoin?date=" + b"9" * 12_000), 400, "must be a day as YYYY-MM-DD"),
    ("long unknown path", request(b"/" + b"a" * 12_000), 404, "404 Not Found"),
    ("percent-encoded non-UTF-8", request(b"/bitcoin?date=%ff%fe%fd"), 400, "must be a day"),
    ("percent-encoded garbage", request(b"/bitcoin?date=%zz%%%25%"), 400, "must be a day"),
    ("percent-encoded NUL", request(b"/bitcoin?date=2024%00-06-01"), 400, "must be a day"),
    ("raw NUL in the query", request(b"/bitcoin?date=2024\x00-06-01"), 400, "must be a day"),
    ("overlong UTF-8 digits", request(b"/bitcoin?date=%c0%b2024-06-01"), 400, "must be a day"),
    (
        "full-width digits",
        request(b"/bitcoin?date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94-06-01"),
        400,
        "must be",
    ),
    ("non-UTF-8 asset", request(b"/forecast/%ff?date=2024-06-01"), 404, "unknown asset"),
    ("array parameter", request(b"/bitcoin?date[]=2024-06-01"), 400, "unknown query parameter 'date[]'"),
    ("repeated parameter", request(b"/bitcoin?date=2024-06-01&date=2024-06-01"), 400, "give 'date' once"),
    (
        "repeated range end",
        request(b"/forecast/eth?start=2024-06-01&end=2024-06-02&end=x"),
        400,
        "give 'end' once",
    ),
    ("empty parameter name", request(b"/bitcoin?=2024-06-01&&=&"), 400, "unknown query parameter ''"),
    (
        "a thousand unknown parameters",
        request(b"/bitcoin?date=2024-06-01&" + b"&".join(b"x%d=1" % i for i in range(1000))),
        400,
        "unknown query parameters 'x0', 'x1', 'x2' and 997 more",
    ),
    ("path traversal", request(b"/docs/../../etc/passwd"), 404, "404 Not Found"),
    (
        "encoded path traversal",
        request(b"/forecast/..%2f..%2fetc%2fpasswd?date=2024-06-01"),
        404,
        "Not Found",
    ),
    ("POST", request(b"/bitcoin?date=2024-06-01", b"POST", b"Content-Length: 0\r\n"), 405, "405 Method"),
    ("PUT with a small body", request(b"/bitcoin", b"PUT", b"Content-Length: 5\r\n", b"hello"), 405, "405"),
    ("DELETE", request(b"/forecast/btc", b"DELETE"), 405, "405 Method Not Allowed"),
    ("PATCH", request(b"/models/btc", b"PATCH"), 405, "405 Method Not Allowed"),
    ("TRACE", request(b"/health", b"TRACE"), 405, "405 Method Not Allowed"),
    ("made-up method", request(b"/bitcoin", b"BREW"), 405, "405 Method Not Allowed"),
    ("POST to an unknown path", request(b"/admin", b"POST", b"Content-Length: 0\r\n"), 404, "404"),
]


@pytest.mark.parametrize(
    ("raw", "status", "message"), [case[1:] for case in APP_ANSWERS], ids=[case[0] for case in APP_ANSWERS]
)
def test_hostile_requests_get_a_json_error(live_server, raw, status, message):
    response = exchange(live_server.url, raw)
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and message in body["error"]
    assert len(body["error"]) < 300  # long input is quoted short
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    if status == 405:
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert_still_serving(live_server)


def test_odd_but_harmless_requests_are_answered(live_server):
    forecast = exchange(live_server.url, request(b"/bitcoin?date=2024-06-01")).body
    harmless = [
        request(b"/bitcoin?date=2024-06-01&" + b"&".join(b"_=%d" % i for i in range(1000))),  # cache-busters
        request(b"/bitcoin?date=2024-06-01", headers=b"X-Junk: \xff\xfe\x80\r\n"),
        request(b"/bitcoin?date=2024-06-01", headers=b"Content-Length: 5\r\n", body=b"ignored"[:5]),
        request(b"//bitcoin?date=2024-06-01"),
        b"GET /bitcoin?date=2024-06-01 HTTP/1.0\r\n\r\n",
    ]
    for raw in harmless:
        response = exchange(live_server.url, raw)
        assert (response.status, response.body) == (200, forecast), raw[:80]
    head = exchange(live_server.url, request(b"/bitcoin?date=2024-06-01", b"HEAD"))
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(forecast)))


# ---------------------------------------------------------------- refused by Waitress: plain text


WAITRESS_ANSWERS = [
    # (name, raw request, status, Waitress's reason)
    (
        "query string past the header limit",
        request(b"/bitcoin?date=" + b"9" * MAX_HEADER),
        431,
        b"Request Header Fields Too Large",
    ),
    (
        "one header past the limit",
        request(b"/health", headers=b"X-Big: " + b"a" * MAX_HEADER + b"\r\n"),
        431,
        b"Request Header Fields Too Large",
    ),
    (
        "many headers past the limit",
        request(b"/health", headers=b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))),
        431,
        b"Request Header Fields Too Large",
    ),
    (
        "declared body past the limit",
        request(b"/bitcoin", b"POST", b"Content-Length: %d\r\n" % (10 * MAX_BODY), b"x" * 1000),
        413,
        b"Request Entity Too Large",
    ),
    (
        "chunked body past the limit",
        request(
            b"/bitcoin",
            b"POST",
            b"Transfer-Encoding: chunked\r\n",
            b"".join(b"1000\r\n" + b"x" * 0x1000 + b"\r\n" for _ in range(MAX_BODY // 0x1000 + 2))
            + b"0\r\n\r\n",
        ),
        413,
        b"Request Entity Too Large",
    ),
    ("raw non-UTF-8 byte in the URL", request(b"/bitcoin?date=\xff\xfe"), 400, b"Bad URI"),
    (
        "raw UTF-8 in the URL (not percent-encoded)",
        request(b"/bitcoin?date=\xef\xbc\x92024-06-01"),
        400,
        b"Bad",
    ),
    ("NUL in a header", request(b"/health", headers=b"X-A: a\x00b\r\n"), 400, b"Invalid header"),
    ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, b"Bad Request"),
]


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [case[1:] for case in WAITRESS_ANSWERS],
    ids=[case[0] for case in WAITRESS_ANSWERS],
)
def test_what_waitress_refuses_it_refuses_plainly(live_server, raw, status, reason):
    response = exchange(live_server.url, raw)
    assert response.status == status, response.body
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert reason in response.body
    assert b"waitress" not in response.body.lower() and "server" not in response.headers  # no version
    assert_still_serving(live_server)


def test_a_url_just_under_the_limit_reaches_the_app(live_server):
    padding = MAX_HEADER - 200  # room for the request line's other words and the headers
    response = exchange(live_server.url, request(b"/bitcoin?date=2024-06-01&_=" + b"p" * padding))
    assert response.status == 200


def assert_still_serving(live_server) -> None:
    health = exchange(live_server.url, request(b"/health"))
    assert health.status == 200 and health.json()["status"] in ("ok", "stale")  # stale: old snapshot data
