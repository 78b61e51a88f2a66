"""Daily bars from Alpaca through its official SDK (alpaca-py), hardened: timeouts, retries, a deadline.

Alpaca's crypto bars need no API keys; keys only raise the rate limit. ``base_url`` (from
ALPACA_DATA_URL) points the real client at another server, such as the tests' local fake.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pandas as pd

from training.data.sources import PRICE_COLUMNS, Bars, index_by_day
from training.errors import FetchError, TrainingError, short
from training.redaction import SECRET_VARIABLES, redact

log = logging.getLogger(__name__)

# Seconds allowed to Alpaca, each overridable from the environment (tests shorten them): to
# connect and between two bytes of one request (the SDK's requests.Session sets no timeout), and
# for the whole download of one asset, retries and pauses included, however the server trickles.
TIME_LIMITS = {"ALPACA_CONNECT_TIMEOUT": 5.0, "ALPACA_READ_TIMEOUT": 30.0, "ALPACA_FETCH_DEADLINE": 300.0}
DEFAULT_START = "2015-01-01"  # the first day fetched unless told otherwise
HTTP_RETRIES = 3
# A server may ask for a pause (Retry-After) before a retry; a longer one is cut to this.
MAX_RETRY_AFTER = 5.0
# Alpaca serves at most 10,000 bars a page; no sane daily history needs more pages than this.
MAX_PAGES = 20


def time_limit(name: str) -> float:
    """One of TIME_LIMITS in seconds, from the environment when set there."""
    text = os.environ.get(name)
    if text is None:
        return TIME_LIMITS[name]
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise TrainingError(f"{name} must be a positive number of seconds; got {text!r}")
    return seconds


def alpaca_client(base_url: str | None, api_key: str | None, secret_key: str | None):
    """A CryptoHistoricalDataClient whose every request has a timeout, retries and a page guard."""
    from alpaca.data.historical import CryptoHistoricalDataClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    timeout = (time_limit("ALPACA_CONNECT_TIMEOUT"), time_limit("ALPACA_READ_TIMEOUT"))

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or timeout
            return super().send(request, **kwargs)

    class CappedRetry(Retry):
        def parse_retry_after(self, retry_after: str) -> float:
            # urllib3 would sleep as long as the server asks: "Retry-After: 86400" is a day.
            return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER)

    client = CryptoHistoricalDataClient(
        api_key=api_key or None, secret_key=secret_key or None, url_override=base_url or None
    )
    # The SDK itself retries 429 and 504 (3 times, 3 s apart); the transport covers the rest,
    # so the two layers never multiply each other's attempts.
    retry = CappedRetry(
        total=HTTP_RETRIES,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503),
        allowed_methods=("GET",),
        raise_on_status=False,  # the last error response reaches the SDK, which reports its status
    )
    # The SDK has no transport settings, so its (private) requests.Session is configured here;
    # alpaca-py is pinned, and the fake-server tests catch a change of this seam.
    session = client._session
    session.mount("http://", TimeoutAdapter(max_retries=retry))
    session.mount("https://", TimeoutAdapter(max_retries=retry))
    session.hooks["response"].append(page_guard())
    return client


def page_guard():
    """A response hook that stops pagination loops: a repeated page token or too many pages."""
    seen_tokens: set[str] = set()
    pages = 0

    def check(response, *args, **kwargs):
        nonlocal pages
        pages += 1
        if pages > MAX_PAGES:
            raise FetchError(f"Alpaca sent more than {MAX_PAGES} pages of daily bars; giving up")
        token = None
        if response.ok and response.headers.get("content-type", "").startswith("application/json"):
            try:
                token = response.json().get("next_page_token")
            except ValueError:
                return response  # malformed JSON: the SDK raises on it with the details
        if token is not None:
            if token in seen_tokens:
                raise FetchError(f"Alpaca repeated page token {token!r}: pagination would never end")
            seen_tokens.add(token)
        return response

    return check


def fetch_bars(client, symbol: str, start: date, now: datetime) -> Bars:
    """Download the daily bars of `symbol` from `start` to `now` with alpaca-py."""
    from alpaca.data.requests import CryptoBarsRequest
    from alpaca.data.timeframe import TimeFrame

    request = CryptoBarsRequest(
        symbol_or_symbols=symbol,
        timeframe=TimeFrame.Day,
        start=datetime.combine(start, datetime.min.time(), tzinfo=UTC),
        end=now,
    )
    url = base_url(client)
    log.info("fetching daily %s bars from %s since %s", symbol, url, start)
    try:
        with deadline(time_limit("ALPACA_FETCH_DEADLINE"), f"fetching {symbol} bars from {url}"):
            bar_set = client.get_crypto_bars(request)
    except FetchError:
        raise
    except Exception as error:  # the SDK raises requests, pydantic and its own errors alike
        # `from None`: the SDK's exceptions may hold the keys (a refused header value, an echoed request).
        raise FetchError(redact(f"could not fetch bars from {url}: {fetch_problem(error)}")) from None
    bars = bar_set.data.get(symbol, [])
    if not bars:
        raise FetchError(f"Alpaca returned no {symbol} bars since {start} ({url})")
    frame = pd.DataFrame(
        {
            "timestamp": [bar.timestamp for bar in bars],
            **{column: [getattr(bar, column) for bar in bars] for column in PRICE_COLUMNS},
            "volume": [bar.volume for bar in bars],
        }
    )
    log.info("fetched %d bars", len(frame))
    return Bars(index_by_day(frame, "timestamp"), "alpaca", url)


def base_url(client) -> str:
    """The URL the client asks: url_override, or the SDK's default (an enum whose value is the URL)."""
    url = client._base_url
    return str(getattr(url, "value", url))


@contextmanager
def deadline(seconds: float, what: str):
    """Raise FetchError in the block if it runs longer than `seconds` (main thread only: SIGALRM)."""

    def expire(signum, frame):
        raise FetchError(f"{what} took longer than {seconds:g} s; giving up")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fetch_problem(error: Exception) -> str:
    """What went wrong talking to Alpaca, in words an operator can act on."""
    from alpaca.common.exceptions import APIError
    from requests import exceptions as http
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    chain = causes(error)
    root = chain[-1]

    def found(kind):
        return next((cause for cause in chain if isinstance(cause, kind)), None)

    if isinstance(error, APIError):
        return f"HTTP {error.status_code}: {short(error)}"
    if isinstance(error, http.InvalidHeader):  # its message quotes the value: a key, maybe
        return (
            f"{' or '.join(SECRET_VARIABLES)} is not a valid HTTP header value (a space, a newline or "
            "another control character in it?)"
        )
    # urllib3's NameResolutionError and NewConnectionError are ConnectTimeoutErrors too: they go first.
    if resolution := found(socket.gaierror):
        return f"could not resolve the host name ({resolution.strerror or short(resolution)})"
    if found(NameResolutionError):
        return f"could not resolve the host name ({short(root)})"
    if found(ConnectionRefusedError):
        return "connection refused: nothing listens at that address and port"
    if found(NewConnectionError):
        return f"could not connect: {short(root)}"
    if found(ConnectTimeoutError):
        return f"could not connect within {time_limit('ALPACA_CONNECT_TIMEOUT'):g} s (connect timeout)"
    if found(TimeoutError | Urllib3Timeout):
        return f"no data for {time_limit('ALPACA_READ_TIMEOUT'):g} s (read timeout)"
    if isinstance(error, http.ConnectionError | http.ChunkedEncodingError):
        return f"connection failed: {short(root)}"
    if isinstance(error, ValueError) and "JSON" in type(error).__name__:
        return f"the answer is not valid JSON: {short(error)}"
    return short(error)


def causes(error: BaseException) -> list[BaseException]:
    """The error and the ones it wraps, outermost first: requests and urllib3 nest them in
    `reason`, in an exception argument, or as the exception's cause."""
    chain = [error]
    for _ in range(10):  # these chains are a few levels deep; never loop forever
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in reversed(error.args) if isinstance(arg, BaseException)), None)
        inner = inner or error.__cause__
        if inner is None or inner in chain:
            break
        chain.append(inner)
        error = inner
    return chain
