"""Invalid conditional dates are ignored, as RFC 9110 says, instead of failing the request."""

from __future__ import annotations

from werkzeug.http import parse_date

DATE_HEADERS = ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE", "HTTP_IF_RANGE")


def is_valid_date(value: str) -> bool:
    """True when Werkzeug can read the HTTP date; a year past 9999 makes it raise, not return None."""
    try:
        return parse_date(value) is not None
    except (OverflowError, ValueError):
        return False


class IgnoreInvalidDates:
    """WSGI middleware: drops an If-Modified-Since, If-Unmodified-Since or date If-Range it cannot read.

    RFC 9110 (13.1.3, 13.1.4, 13.1.5): a recipient ignores a conditional date that is not a valid
    HTTP-date. An If-Range that holds an entity tag is left alone.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        for name in DATE_HEADERS:
            value = environ.get(name)
            if value is None or (name == "HTTP_IF_RANGE" and value.lstrip().startswith(('"', "W/"))):
                continue
            if not is_valid_date(value):
                del environ[name]
        return self.app(environ, start_response)
