"""The page at / and Swagger UI in a real headless Chromium, against `python api.py` under Waitress.

Needs Debian's chromium at /usr/bin/chromium (`apt-get install chromium`), or another Chromium-based
browser named by $CHROMIUM; without one these tests are skipped with the reason, except in CI (CI
set), where they must run and so fail instead.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scripts.precompress import page_files, precompress
from serving.page import WEB_DIR
from serving.queries import MAX_RANGE_DAYS
from tests.conftest import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # GitHub's runners have google-chrome
# The browser knows the server by a name that is not localhost, as when deployed (Swagger UI, for
# one, behaves differently on localhost); only the browser resolves it, to the loopback server.
HOST_NAME = "crypto-predict.test"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls Google's services at startup and fails noisily.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    f"--host-resolver-rules=MAP {HOST_NAME} 127.0.0.1",
]
ARTIFACTS = ROOT / "test-artifacts"
LOAD_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 900}


def skip_or_fail(reason: str):
    """Skip with the reason on a developer's machine; in CI the browser tests must run, so fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests: .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM}: install Debian's package with `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright is not installed: `make test` installs requirements-dev.txt")
    with sync_playwright() as playwright:
        # launch() gives the browser a fresh temporary user data dir, removed when it closes.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", autouse=True)
def precompressed_page_files():
    """The gzip copies of the page's files, as `make run` and `make test` make them."""
    for path in page_files(WEB_DIR):
        precompress(path)


@dataclass
class Session:
    """A page in its own browser context, with everything it asked for and complained about."""

    page: object
    base_url: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # requests to any other host: blocked
    failed: list[tuple[int, str]] = field(default_factory=list)  # responses >= 400
    errors: list[str] = field(default_factory=list)  # uncaught exceptions and console errors

    def assert_clean(self, expected_failures: tuple = ()) -> None:
        assert self.foreign == [], "the page asked another host"
        assert self.errors == []
        assert [status for status, _ in self.failed] == list(expected_failures), self.failed
        assert self.requests, "no request was recorded"


@pytest.fixture
def session(browser, live_server):
    port = urlsplit(live_server.url).port
    base_url = f"http://{HOST_NAME}:{port}"
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    result = Session(page, base_url)

    def only_the_server(route):
        url = route.request.url
        if urlsplit(url).netloc == f"{HOST_NAME}:{port}":
            route.continue_()
        else:  # recorded, and never sent
            result.foreign.append(url)
            route.abort("blockedbyclient")

    def record_failure(response):
        if response.status >= 400:
            result.failed.append((response.status, response.url))

    def console(message):
        # A 4xx the page asked for on purpose shows up as a console error too; responses are checked apart.
        if message.type == "error" and not message.text.startswith("Failed to load resource: the server"):
            result.errors.append(message.text)

    context.route("**/*", only_the_server)
    page.on("request", lambda request: result.requests.append(request.url))
    page.on("response", record_failure)
    page.on("pageerror", lambda error: result.errors.append(f"uncaught: {error}"))
    page.on("console", console)
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    yield result
    context.close()


def screenshot(session: Session, name: str, part=None) -> Path:
    """Save the whole page, or one part of it (a locator), to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    if part is None:
        session.page.screenshot(path=str(path), full_page=True)
    else:
        part.screenshot(path=str(path))
    return path


def open_page(session: Session, asset: str = "btc", query: str = "") -> float:
    """Load / and wait until the chart of `asset` is drawn; returns the seconds it took."""
    started = time.perf_counter()
    session.page.goto(f"{session.base_url}/{query}")
    session.page.wait_for_selector(f'#chart[data-asset="{asset}"][aria-busy="false"]')
    return time.perf_counter() - started


# ---------------------------------------------------------------- what the API says


def api_get(live_server, path: str, **params) -> requests.Response:
    return requests.get(f"{live_server.url}{path}", params=params, timeout=30)


def api_range(live_server, path: str, key: str, first: str, last: str) -> list[dict]:
    """All items of a range route, asked in pieces of at most MAX_RANGE_DAYS days."""
    items, start, end = [], date.fromisoformat(first), date.fromisoformat(last)
    while start <= end:
        stop = min(start + timedelta(days=MAX_RANGE_DAYS - 1), end)
        response = api_get(live_server, path, start=start.isoformat(), end=stop.isoformat())
        assert response.status_code == 200, response.text
        items += response.json()[key]
        start = stop + timedelta(days=1)
    return items


def http_day(text: str) -> str:
    return parsedate_to_datetime(text).date().isoformat()


def expected_traces(live_server, asset: str) -> dict[str, tuple[list, list]]:
    """The chart's series as the API gives them: trace name -> (x, y)."""
    card = api_get(live_server, f"/models/{asset}").json()
    first, last = card["serves"]["first_day"], card["serves"]["last_day"]
    closes = api_range(live_server, f"/history/{asset}", "closes", card["first_day"], card["last_day"])
    forecasts = api_range(live_server, f"/forecast/{asset}", "forecasts", first, last)
    days = [http_day(item["date"]) for item in forecasts]
    return {
        "Actual close": ([c["date"] for c in closes], [c["close"] for c in closes]),
        "Forecast": (days, [f["prediction"] for f in forecasts]),
        "80% interval (low)": (days, [f["prediction_low"] for f in forecasts]),
        "80% interval": (days, [f["prediction_high"] for f in forecasts]),
    }


def drawn_traces(session: Session) -> dict[str, tuple[list, list]]:
    """The data of every Plotly trace on the chart: trace name -> (x, y)."""
    traces = session.page.evaluate(
        "() => document.getElementById('chart').data.map(t => [t.name, Array.from(t.x), Array.from(t.y)])"
    )
    return {name: (x, y) for name, x, y in traces}


def usd(value: float) -> str:
    return f"${value:,.2f}"


# ---------------------------------------------------------------- the page


def test_chart_draws_the_apis_history_and_forecast(session, live_server):
    seconds = open_page(session)
    print(f"page ready with the BTC chart in {seconds:.2f} s")
    expected = expected_traces(live_server, "btc")
    drawn = drawn_traces(session)
    assert set(drawn) == set(expected)
    for name, (x, y) in expected.items():
        assert len(drawn[name][0]) == len(x), name
        assert drawn[name] == (x, y), name
    assert len(drawn["Actual close"][0]) == 4356  # every day of the bundled BTC data
    # Drawn, not only handed to Plotly: the SVG holds the lines and the filled band.
    lines = session.page.locator("#chart .scatterlayer path.js-line").evaluate_all(
        "paths => paths.map(p => (p.getAttribute('d') || '').length)"
    )
    assert len([length for length in lines if length > 1000]) >= 3, lines
    assert len(session.page.locator("#chart .scatterlayer path.js-fill").get_attribute("d")) > 1000
    tools = session.page.locator("#chart .modebar-btn").evaluate_all("bs => bs.map(b => b.dataset.title)")
    assert "Zoom" in tools and "Share chart..." not in tools  # sharing would upload the data elsewhere
    caption = session.page.locator("#chart-summary").inner_text()
    assert caption.startswith("Bitcoin (BTC/USD): daily closes from 2014-09-17 to 2026-08-20")
    assert usd(expected["Forecast"][1][-1]) in caption
    screenshot(session, "page-btc.png")
    ranges = [parse_qs(urlsplit(url).query) for url in session.requests if "start=" in url]
    assert len(ranges) >= 2
    for query in ranges:
        days = (date.fromisoformat(query["end"][0]) - date.fromisoformat(query["start"][0])).days + 1
        assert days <= MAX_RANGE_DAYS
    session.assert_clean()


def test_the_pages_files_arrive_gzip_encoded(session):
    responses = []
    session.page.on("response", lambda response: responses.append(response))
    open_page(session)
    arrived = {}  # path -> (Content-Encoding, bytes received, bytes after decoding)
    for response in responses:
        path = urlsplit(response.url).path
        if path == "/" or path.startswith("/web/"):
            received = response.request.sizes()["responseBodySize"]
            arrived[path] = (response.all_headers().get("content-encoding"), received, len(response.body()))
    plotly = next(path for path in arrived if "/vendor/plotly-" in path)
    assert {"/", "/web/app.js", "/web/style.css", plotly} <= set(arrived)  # and the icon, if asked for
    assert {path: encoding for path, (encoding, _, _) in arrived.items()} == dict.fromkeys(arrived, "gzip")
    _, received, decoded = arrived[plotly]
    print(
        f"plotly.js over the wire: {received} bytes gzip-encoded for {decoded} ({decoded - received} saved)"
    )
    assert received < decoded / 2.5
    session.assert_clean()


def test_zooming_in_fits_the_price_axis_to_what_is_shown(session):
    open_page(session)
    page = session.page
    page.get_by_role("button", name="All").click()
    page.wait_for_selector('.window button[data-years="0"][aria-pressed="true"]')
    plot = page.locator("#chart .nsewdrag").first.bounding_box()
    middle = plot["y"] + plot["height"] / 2
    page.mouse.move(plot["x"] + plot["width"] * 0.30, middle)  # a horizontal drag zooms along x only
    page.mouse.down()
    page.mouse.move(plot["x"] + plot["width"] * 0.45, middle + 2, steps=5)
    page.mouse.up()
    page.wait_for_selector('.window button[aria-pressed="true"]', state="detached")
    (x0, x1), (y0, y1) = page.evaluate(
        "() => ['xaxis', 'yaxis'].map(axis => document.getElementById('chart').layout[axis].range)"
    )
    start, end = x0[:10], x1[:10]
    assert "2017-01-01" < start < end < "2022-01-01", (start, end)
    drawn = drawn_traces(session)
    shown = [
        value
        for name in ("Actual close", "80% interval (low)", "80% interval")
        for day, value in zip(*drawn[name], strict=True)
        if start < day < end
    ]
    assert y0 <= min(shown) and max(shown) <= y1  # everything shown fits
    assert y1 - y0 <= 1.2 * (max(shown) - min(shown))  # and fills the height
    session.assert_clean()


def test_picking_a_date_shows_the_apis_answer(session, live_server):
    open_page(session)
    expected = api_get(live_server, "/forecast/btc", date="2026-09-19").json()
    picker = session.page.get_by_label("Forecast date")
    picker.fill("2026-09-19")
    picker.press("Enter")  # submits the form, as a keyboard user would
    answer = session.page.locator("#answer")
    session.page.wait_for_selector('#answer[data-question="1"]')
    assert answer.get_attribute("aria-live") == "polite"
    values = {
        name: float(answer.locator(f"data.{name}").get_attribute("value"))
        for name in ("prediction", "low", "high")
    }
    assert values == {
        "prediction": expected["prediction"],
        "low": expected["prediction_low"],
        "high": expected["prediction_high"],
    }
    text = answer.inner_text()
    for value in values.values():
        assert usd(value) in text
    assert "Bitcoin (BTC/USD), Saturday, 19 September 2026: forecast close" in text
    assert (
        f"{expected['horizon_days']} days after the last day of data ({expected['as_of']}, snapshot)" in text
    )
    assert answer.locator("time").get_attribute("datetime") == expected["day"] == "2026-09-19"
    assert drawn_traces(session)["Your date"] == (["2026-09-19"], [expected["prediction"]])
    screenshot(session, "page-answer.png")
    session.assert_clean()


def test_a_day_with_data_shows_its_observed_close_not_a_forecast(session, live_server):
    open_page(session)
    close = api_get(live_server, "/history/btc", start="2024-06-01", end="2024-06-01").json()["closes"][0]
    session.page.get_by_label("Forecast date").fill("2024-06-01")
    session.page.get_by_role("button", name="Get forecast").click()
    session.page.wait_for_selector('#answer[data-question="1"]')
    answer = session.page.locator("#answer")
    assert float(answer.locator("data.prediction").get_attribute("value")) == close["close"]
    text = answer.inner_text()
    assert f"Saturday, 1 June 2024: observed close {usd(close['close'])}" in text
    assert "no forecast, no interval" in text and "80% interval" not in text
    session.assert_clean()


@pytest.mark.parametrize(("picked", "shot"), [("2030-01-01", "page-error.png"), ("", None)])
def test_a_date_the_api_refuses_shows_its_error(session, live_server, picked, shot):
    open_page(session)
    refusal = api_get(live_server, "/forecast/btc", date=picked)
    assert refusal.status_code == 400
    session.page.get_by_label("Forecast date").fill(picked)
    session.page.get_by_role("button", name="Get forecast").click()
    session.page.wait_for_selector('#answer[data-question="1"]')
    assert session.page.locator("#answer .api-error").inner_text() == refusal.json()["error"]
    assert "No forecast:" in session.page.locator("#answer").inner_text()
    assert "Your date" not in drawn_traces(session)
    if shot:
        screenshot(session, shot)
    session.assert_clean(expected_failures=(400,))


def test_switching_assets_changes_the_chart(session, live_server):
    open_page(session)
    btc = drawn_traces(session)
    session.page.get_by_label("Asset").select_option("eth")
    session.page.wait_for_selector('#chart[data-asset="eth"][aria-busy="false"]')
    eth = drawn_traces(session)
    assert eth == expected_traces(live_server, "eth")
    assert eth["Actual close"][0][0] == "2017-11-09"  # ETH's data starts later than BTC's
    assert max(eth["Actual close"][1]) < 10_000 < min(btc["Actual close"][1][-365:])
    card = api_get(live_server, "/models/eth").json()
    picker = session.page.get_by_label("Forecast date")
    assert (picker.get_attribute("min"), picker.get_attribute("max")) == (
        card["serves"]["first_day"],
        card["serves"]["last_day"],
    )
    link = session.page.get_by_role("link", name="Ethereum model card")
    assert link.get_attribute("href") == "models/eth"
    assert session.page.url.endswith("/?asset=eth")
    screenshot(session, "page-eth.png")
    session.page.reload()  # the address keeps the choice
    session.page.wait_for_selector('#chart[data-asset="eth"][aria-busy="false"]')
    assert session.page.get_by_label("Asset").input_value() == "eth"
    session.assert_clean()


def test_links_lead_to_the_docs_and_the_model_card(session, live_server):
    open_page(session)
    session.page.get_by_role("link", name="API docs").click()
    session.page.wait_for_url(f"{session.base_url}/docs/swagger")
    session.page.wait_for_selector(".swagger-ui .info .title")
    assert "Crypto Predict API" in session.page.locator(".swagger-ui .info .title").inner_text()
    session.page.go_back()
    session.page.wait_for_selector('#chart[data-asset="btc"][aria-busy="false"]')
    session.page.get_by_role("link", name="Bitcoin model card").click()
    session.page.wait_for_url(f"{session.base_url}/models/btc")
    assert json.loads(session.page.locator("body").inner_text()) == api_get(live_server, "/models/btc").json()
    session.assert_clean()


def test_the_data_age_is_said_where_the_user_looks(session, live_server):
    open_page(session)
    card = api_get(live_server, "/models/btc").json()
    health = api_get(live_server, "/health").json()
    age = (datetime.now(UTC).date() - date.fromisoformat(card["last_day"])).days
    line = session.page.locator("#data-age")
    expected = f"Bitcoin data up to {card['last_day']} ({age} days ago, {card['source']})."
    if "btc" in health["stale_assets"]:  # the bundled snapshot is months old
        expected += f" Older than the {health['max_data_age_days']} days this service allows"
        assert "stale" in line.get_attribute("class")
    assert line.inner_text().startswith(expected)
    # Above the answer and the chart: read before any forecast is.
    assert line.bounding_box()["y"] < session.page.locator("#answer").bounding_box()["y"]
    session.assert_clean()


def test_the_track_record_shows_the_model_cards_numbers(session, live_server):
    open_page(session)
    page = session.page
    for asset in ("btc", "eth"):
        if asset == "eth":
            page.get_by_label("Asset").select_option("eth")
        page.wait_for_selector(f'#track-record[data-asset="{asset}"]')
        record = api_get(live_server, f"/models/{asset}").json()["track_record"]
        section = page.get_by_role("region", name="Track record")
        assert page.get_by_role("heading", name="Track record").is_visible()
        assert section.locator("#track-summary").inner_text() == record["summary"]
        assert record["summary"].startswith("The 80% band should hold the close about 8 times in 10")
        rows = {(r["stretch"], r["horizon_days"]): r for r in record["coverage"] if r["level"] == 80}
        horizons = sorted({h for _, h in rows})
        shown = section.locator("tbody tr")
        assert shown.count() == len(horizons) == 6
        for i, h in enumerate(horizons):
            cells = shown.nth(i).locator("td")
            assert shown.nth(i).get_attribute("data-horizon") == str(h)
            assert cells.nth(0).inner_text() == "80%"  # promised
            for column, stretch in ((1, "all"), (2, "final")):
                row, cell = rows[(stretch, h)], cells.nth(column)
                if row["coverage"] is None:
                    assert cell.inner_text() == "not enough data"
                    continue
                assert float(cell.locator("data").get_attribute("value")) == row["coverage"]
                low, high = (math.floor(share * 100 + 0.5) for share in row["coverage_ci"])  # Math.round
                assert f"({low}%\N{EN DASH}{high}%), {row['origins']:,} tests" in cell.inner_text()
                assert ("held less well" in cell.inner_text()) == row["held_less_well"]
        if asset == "eth":
            screenshot(session, "page-track-record.png", section)
    assert page.locator("#track-card-link").get_attribute("href") == "models/eth"
    session.assert_clean()


CONTRAST_SCRIPT = """selectors => {
  const rgb = text => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = [r, g, b].map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  };
  const background = node => {
    for (; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return Object.fromEntries(selectors.map(selector => {
    const node = document.querySelector(selector);
    const [a, b] = [luminance(rgb(getComputedStyle(node).color)), luminance(background(node))];
    return [selector, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  }));
}"""


def test_labels_keyboard_and_contrast(session):
    open_page(session)
    page = session.page
    # Every control is found by its accessible name, as assistive technology finds it.
    page.get_by_role("combobox", name="Asset").wait_for()
    page.get_by_role("button", name="Get forecast").wait_for()
    page.get_by_role("group", name="Time window").wait_for()
    assert page.get_by_label("Forecast date").get_attribute("aria-describedby") == "date-hint"
    # Tab walks through the links and controls in reading order.
    page.locator("body").focus()
    visited = []
    focused = "() => document.activeElement.id || document.activeElement.textContent.trim()"
    for _ in range(14):
        page.keyboard.press("Tab")
        current = page.evaluate(focused)
        if not visited or visited[-1] != current:
            visited.append(current)
    assert visited[:8] == ["API docs", "model-card-link", "asset", "date", "ask", "1 year", "3 years", "All"]
    # The time window and the asset are chosen with keys alone.
    page.get_by_role("button", name="All").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('.window button[data-years="0"][aria-pressed="true"]')
    assert page.evaluate("() => document.getElementById('chart').layout.xaxis.range") == [
        "2014-09-17",
        "2027-08-20",
    ]
    page.get_by_label("Asset").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_selector('#chart[data-asset="eth"][aria-busy="false"]')
    # WCAG AA: at least 4.5:1 for text, an error included.
    page.get_by_label("Forecast date").fill("2030-01-01")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer .api-error")
    ratios = page.evaluate(
        CONTRAST_SCRIPT,
        ["h1", "label", "#date-hint", "#ask", "nav a", ".window button[aria-pressed=true]",
         ".window button[aria-pressed=false]", "#chart-summary", "#answer .api-error", "footer p",
         "#data-age", "#track-summary", "#track-table caption", "#track-table td.held",
         ".track-record .hint"],
    )  # fmt: skip
    assert {selector: ratio for selector, ratio in ratios.items() if ratio < 4.5} == {}
    session.assert_clean(expected_failures=(400,))


# ---------------------------------------------------------------- Swagger UI


def test_swagger_ui_try_it_out_on_bitcoin(session, live_server):
    spec = api_get(live_server, "/openapi.json").json()
    day = spec["paths"]["/bitcoin"]["get"]["parameters"][0]["example"]  # a forecast: 30 days past the data
    card = api_get(live_server, "/models/btc").json()
    assert (date.fromisoformat(day) - date.fromisoformat(card["last_day"])).days == 30
    page = session.page
    page.goto(f"{session.base_url}/docs")
    operation = page.locator("#operations-forecasts-bitcoin_bitcoin_get")
    operation.wait_for()
    # The API has no authentication, so Swagger UI offers no "Authorize" button.
    assert page.locator(".swagger-ui .auth-wrapper button").count() == 0
    operation.locator(".opblock-summary").click()
    # Its documented answers are real ones, not made-up zeros.
    shown = operation.locator(".responses-table .response .microlight").first.inner_text()
    assert json.loads(shown) == api_get(live_server, "/bitcoin", date=day).json()
    operation.get_by_role("button", name="Try it out").click()
    # The documented example fills the date; a range's start and end stay empty.
    fields = {
        name: operation.locator(f'tr[data-param-name="{name}"] input').input_value()
        for name in ("date", "start", "end")
    }
    assert fields == {"date": day, "start": "", "end": ""}
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    body = operation.locator(".live-responses-table tbody .response-col_description pre").first.inner_text()
    assert json.loads(body) == api_get(live_server, "/bitcoin", date=day).json()
    assert re.search(rf"/bitcoin\?date={day}$", operation.locator(".request-url pre").inner_text())
    screenshot(session, "docs-try-it-out.png", operation)
    session.assert_clean()
