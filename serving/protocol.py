"""The request checks RFC 9112 asks for and Waitress 3.0.2's parser leaves out.

* an HTTP/1.1 request without `Host` is refused with 400 (RFC 9112 3.2): Waitress serves it;
* a version other than 1.x (`GET / HTTP/9.9`) is refused with 505 (RFC 9110 15.6.6): Waitress
  answers it as HTTP/1.0;
* `Transfer-Encoding` with `Content-Length`, or in an HTTP/1.0 request, is refused with 400
  (RFC 9112 6.1, 6.3): Waitress lets chunked win, or ignores Transfer-Encoding in HTTP/1.0, while
  a proxy in front may frame the body the other way, which is how requests are smuggled.

A refused request ends at its headers (no body is read) and the connection closes after the
answer, Waitress's plain-text error, as for every request it refuses itself.
"""

from __future__ import annotations

from waitress.parser import HTTPRequestParser
from waitress.utilities import BadRequest, Error


class VersionNotSupported(Error):
    code = 505
    reason = "HTTP Version Not Supported"


class CheckedRequest(HTTPRequestParser):
    """Waitress's request parser, refusing what a proxy and this server could read two ways."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)  # raises ParsingError for what Waitress itself refuses
        if self.version and not self.version.startswith("1."):
            self.refuse(VersionNotSupported(f"HTTP/{self.version} is not supported: send HTTP/1.1"))
        elif self.version == "1.1" and "HOST" not in self.headers:
            self.refuse(BadRequest("an HTTP/1.1 request needs a Host header"))
        elif "TRANSFER_ENCODING" in self.headers:  # Waitress removes it from HTTP/1.1 requests only
            self.refuse(BadRequest("Transfer-Encoding is not allowed in an HTTP/1.0 request"))
        elif self.chunked and "CONTENT_LENGTH" in self.headers:
            self.refuse(BadRequest("send Content-Length or Transfer-Encoding, not both"))

    def refuse(self, error: Error) -> None:
        """Answer `error`; the request ends at its headers, so no body is read as a next request."""
        self.error = error
        self.body_rcv = None
        self.chunked = False
        self.content_length = 0
