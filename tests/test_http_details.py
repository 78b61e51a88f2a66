"""The HTTP details of `python api.py` over real sockets: request framing and versions.

Requests are written byte for byte where a client library would fix them (tests/test_hostile.py's
helpers); RFC 9110 and 9112 say what each answer must be.
"""

from __future__ import annotations

import pytest

from tests.test_hostile import assert_still_serving, exchange, request

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
