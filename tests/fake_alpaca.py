"""A local stand-in for Alpaca's market data API: GET /v1beta3/crypto/us/bars, paginated.

It serves the bundled snapshot re-dated so that its newest complete bar is yesterday (UTC),
plus today's still-open bar, in Alpaca's JSON shape (`bars`, `next_page_token`, fields
t,o,h,l,c,v,n,vw). The real alpaca-py client talks to it through `url_override`.
"""

from __future__ import annotations

import json
import threading
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


@dataclass
class FakeAlpaca:
    """State shared with the request handler: bars by symbol, the page size and a request log."""

    bars: dict[str, list[dict]]
    page_size: int = 1000
    requests: list[dict] = field(default_factory=list)

    def page(self, query: dict[str, str]) -> dict:
        """One page of bars for the query, in Alpaca's response shape."""
        symbol = query["symbols"]
        start = query.get("start", "")
        end = query.get("end", "9999")
        selected = [bar for bar in self.bars[symbol] if start[:10] <= bar["t"][:10] and bar["t"] <= end]
        offset = int(query.get("page_token") or 0)
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
        else:
            self.send_json(200, state.page(query))

    def send_json(self, status: int, body: dict) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format, *args):  # keep test output quiet
        pass


class FakeAlpacaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeAlpaca):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_fake_alpaca(state: FakeAlpaca) -> FakeAlpacaServer:
    """Serve `state` on a free loopback port in a background thread; call .shutdown() to stop."""
    server = FakeAlpacaServer(state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
