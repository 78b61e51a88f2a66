"""A local stand-in for Alpaca's market data API: GET /v1beta3/crypto/us/bars, paginated.

It serves the bundled snapshot re-dated so that its newest complete bar is yesterday (UTC),
plus today's still-open bar, in Alpaca's JSON shape (`bars`, `next_page_token`, fields
t,o,h,l,c,v,n,vw). The real alpaca-py client talks to it through `url_override`.

Faults: `FakeAlpaca.faults` answers the next requests in order (an error status, a hang, a
reset, bad JSON...), then `FakeAlpaca.fault_forever`, if set, answers every later one.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

DATA = Path(__file__).resolve().parent.parent / "data"
SNAPSHOTS = {"BTC/USD": DATA / "btc_usd_1d.csv", "ETH/USD": DATA / "eth_usd_1d.csv"}
BARS_PATH = "/v1beta3/crypto/us/bars"


def redated_bars(snapshot: Path, now: datetime | None = None) -> list[dict]:
    """The snapshot as Alpaca bars, shifted so the last closed day is yesterday, plus an open today."""
    frame = pd.read_csv(snapshot)
    today = (now or datetime.now(UTC)).date()
    days = pd.to_datetime(frame["timestamp"])
    shift = pd.Timestamp(today) - timedelta(days=1) - days.iloc[-1]
    bars = [
        {
            "t": (day + shift).strftime("%Y-%m-%dT00:00:00Z"),
            "o": row.open,
            "h": row.high,
            "l": row.low,
            "c": row.close,
            "v": row.volume / row.close,  # the snapshot's volume is in USD; Alpaca's in the coin
            "n": 0,  # the snapshot has no trade counts
            "vw": round((row.high + row.low + row.close) / 3, 6),
        }
        for day, row in zip(days, frame.itertuples(index=False), strict=True)
    ]
    # Today's bar, still open: Alpaca includes it, train.py must not train on it.
    last = bars[-1]
    bars.append({**last, "t": f"{today.isoformat()}T00:00:00Z", "c": last["c"] * 1.01})
    return bars


def all_redated_bars() -> dict[str, list[dict]]:
    """Every bundled snapshot as Alpaca bars, keyed by symbol."""
    return {symbol: redated_bars(path) for symbol, path in SNAPSHOTS.items()}


# A fault writes its own answer to one request, given the handler and the page it would have sent.
Fault = Callable[["Handler", dict], None]


@dataclass
class FakeAlpaca:
    """State shared with the request handler: bars by symbol, the page size, faults and a request log."""

    bars: dict[str, list[dict]]
    page_size: int = 1000
    requests: list[dict] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)  # for the next requests, one each, in order
    fault_forever: Fault | None = None  # for every request once `faults` is used up
    released: threading.Event = field(default_factory=threading.Event)  # set: hung answers give up

    def next_fault(self) -> Fault | None:
        return self.faults.pop(0) if self.faults else self.fault_forever

    def page(self, query: dict[str, str]) -> dict:
        """One page of bars for the query, in Alpaca's response shape."""
        symbol = query["symbols"]
        start = query.get("start", "")
        end = query.get("end", "9999")
        selected = [bar for bar in self.bars[symbol] if start[:10] <= bar["t"][:10] and bar["t"] <= end]
        offset = int(query.get("page_token") or 0)  # the handler answers 400 to a token not made here
        limit = min(int(query.get("limit") or 1000), self.page_size)
        chunk = selected[offset : offset + limit]
        more = offset + limit < len(selected)
        return {
            "bars": {symbol: chunk} if chunk else {},
            "next_page_token": str(offset + limit) if more else None,
        }


class Handler(BaseHTTPRequestHandler):
    server: FakeAlpacaServer

    def do_GET(self):
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        state = self.server.state
        state.requests.append({"path": url.path, "query": query, "headers": dict(self.headers)})
        if url.path != BARS_PATH:
            self.send_json(404, {"message": "not found"})
        elif query.get("symbols") not in state.bars or query.get("timeframe") != "1Day":
            self.send_json(400, {"message": f"unexpected query {query}"})
        elif not query.get("page_token", "0").isdigit():
            self.send_json(400, {"message": "invalid page token"})
        else:
            page = state.page(query)
            fault = state.next_fault()
            if fault is None:
                self.send_json(200, page)
            else:
                fault(self, page)

    def send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        self.send_body(status, json.dumps(body).encode(), headers)

    def send_body(self, status: int, content: bytes, headers: dict | None = None) -> None:
        self.send_head(status, len(content), headers)
        self.wfile.write(content)

    def send_head(self, status: int, length: int, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format, *args):  # keep test output quiet
        pass


# ---------------------------------------------------------------- faults

LAST_PAGE = None  # the next_page_token of a last page
SAME_PAGE_AGAIN = "0"  # a next_page_token pointing back to the first page, every time


def error_status(status: int, headers: dict | None = None) -> Fault:
    """Answer with an HTTP error, in Alpaca's error shape."""

    def fault(handler: Handler, page: dict) -> None:
        handler.send_json(status, {"code": status * 1000, "message": f"fake error {status}"}, headers)

    return fault


def hang(handler: Handler, page: dict) -> None:
    """Accept the request and never answer, until the server is released (at shutdown)."""
    handler.server.state.released.wait(timeout=120)
    handler.close_connection = True


def trickle(handler: Handler, page: dict) -> None:
    """Send the headers, then the body a byte every 0.2 s: never idle long enough for a read timeout."""
    content = json.dumps(page).encode()
    handler.send_head(200, len(content))
    try:
        for byte in content:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            if handler.server.state.released.wait(timeout=0.2):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up, as it should
    handler.close_connection = True


def reset_mid_body(handler: Handler, page: dict) -> None:
    """Send the headers and half the body, then reset the connection (RST, not a clean close)."""
    content = json.dumps(page).encode()
    handler.send_head(200, len(content))
    handler.wfile.write(content[: len(content) // 2])
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


def malformed_json(handler: Handler, page: dict) -> None:
    """A 200 whose JSON body is cut off."""
    handler.send_body(200, json.dumps(page).encode()[:-40])


def empty_bars(handler: Handler, page: dict) -> None:
    """A well-formed page with no bars at all."""
    handler.send_json(200, {"bars": {}, "next_page_token": LAST_PAGE})


def repeating_token(handler: Handler, page: dict) -> None:
    """A valid page that always points to the same next page: an endless loop for a naive client."""
    handler.send_json(200, {**page, "next_page_token": SAME_PAGE_AGAIN})


def echo_headers(handler: Handler, page: dict) -> None:
    """A 403 whose message quotes the request's headers, as some gateways' error pages do: the keys too."""
    handler.send_json(
        403, {"code": 40310000, "message": f"forbidden; request headers {dict(handler.headers)}"}
    )


class FakeAlpacaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeAlpaca):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_fake_alpaca(state: FakeAlpaca) -> FakeAlpacaServer:
    """Serve `state` on a free loopback port in a background thread; call stop_fake_alpaca() after."""
    server = FakeAlpacaServer(state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_fake_alpaca(server: FakeAlpacaServer) -> None:
    """Release any hung answer, stop serving and close the socket."""
    server.state.released.set()
    server.shutdown()
    server.server_close()
