"""Conditional and range headers the app cannot honour are ignored, as RFC 9110 says, instead of
failing the request or answering a part the client may not be able to use."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from werkzeug.http import parse_date

DATE_HEADERS = ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")
# One range of bytes (RFC 9110 14.1.2): first-last, first- or -suffix; whitespace around the parts.
ONE_BYTE_RANGE = re.compile(
    r"bytes[ \t]*=[ \t]*(?:(\d+)[ \t]*-[ \t]*(\d*)|-[ \t]*\d+)[ \t]*", re.ASCII | re.IGNORECASE
)
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')


def http_date(value: str) -> datetime | None:
    """The HTTP date Werkzeug reads in `value`, or None; a year past 9999 makes it raise, not return None."""
    try:
        return parse_date(value)
    except (OverflowError, ValueError):
        return None


def is_valid_date(value: str) -> bool:
    return http_date(value) is not None


def servable_range(value: str) -> bool:
    """Whether `value` asks for one range of bytes, first not past last: the only kind served.

    RFC 9110 14.2: a server MUST ignore a range unit it does not understand (`lines=1-2`) and MAY
    ignore a Range header; it ignores a malformed one (`bytes=5-1`) and, here, several ranges.
    """
    found = ONE_BYTE_RANGE.fullmatch(value.strip(" \t"))
    if found is None:
        return False
    first, last = found.groups()
    return not last or int(first) <= int(last)


def if_range_can_hold(value: str) -> bool:
    """Whether an If-Range may still let the range be served: a strong entity tag, or a date not in
    the future. RFC 9110 13.1.5: anything else (a weak tag, garbage) makes the condition false,
    and then the whole representation is sent."""
    value = value.strip(" \t")
    if value.startswith('"'):
        return STRONG_ETAG.fullmatch(value) is not None
    date = http_date(value)
    return date is not None and date <= datetime.now(UTC)


class IgnoreUnusableHeaders:
    """WSGI middleware: drops the conditional and range headers that cannot apply.

    * an If-Modified-Since or If-Unmodified-Since that is not a valid HTTP-date (RFC 9110
      13.1.3, 13.1.4: the recipient ignores it);
    * a Range that is not one range of bytes (14.2), and a Range whose If-Range cannot hold
      (13.1.5), so that the whole representation is sent with 200: Werkzeug would answer the
      first with 416, and the second with 206 after dropping an unreadable date as the first rule
      drops the others. An If-Range whose Range is gone goes too (a recipient ignores it).
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        for name in DATE_HEADERS:
            value = environ.get(name)
            if value is not None and not is_valid_date(value):
                del environ[name]
        requested = environ.get("HTTP_RANGE")
        if requested is not None:
            condition = environ.get("HTTP_IF_RANGE")
            if not servable_range(requested) or (condition is not None and not if_range_can_hold(condition)):
                del environ["HTTP_RANGE"]
        if "HTTP_RANGE" not in environ:
            environ.pop("HTTP_IF_RANGE", None)
        return self.app(environ, start_response)
