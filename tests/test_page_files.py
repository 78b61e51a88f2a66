"""The page at / and its files, through Flask's test client: served, cached, local only, documented,
and sent gzip-encoded from the copies scripts/precompress.py makes to clients that accept gzip."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

import serving.page
from scripts.precompress import gzip_bytes, page_files, precompress
from serving.page import YEAR_SECONDS

PLOTLY_FILE = "vendor/plotly-basic-4.1.1.min.js"
# web/vendor/README.md: the file as published in npm's plotly.js-basic-dist-min 4.1.1, unchanged.
PLOTLY_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"


def page_file_urls(html: str) -> list[str]:
    return re.findall(r"(?:src|href)=\"(web/[^\"]+)\"", html)


def test_root_serves_the_page_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"  # revalidated by its ETag
    assert response.headers["ETag"]
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    html = response.get_data(as_text=True)
    assert "<title>Crypto Predict" in html and 'aria-live="polite"' in html


def test_the_page_loads_nothing_from_elsewhere(client):
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page must not load from a CDN"
    expected = {"web/favicon.svg", "web/style.css", f"web/{PLOTLY_FILE}", "web/app.js"}
    assert set(page_file_urls(html)) == expected
    script = client.get("/web/app.js").get_data(as_text=True)
    assert not re.search(r"https?://", script), "app.js must call this API only, by relative URLs"


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_page_files_are_revalidated(client, name, mimetype):
    response = client.get(f"/web/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.headers["Cache-Control"] == "no-cache"
    again = client.get(f"/web/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""


def test_vendored_plotly_is_the_pinned_file_cached_for_a_year(client):
    response = client.get(f"/web/{PLOTLY_FILE}")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert hashlib.sha256(response.get_data()).hexdigest() == PLOTLY_SHA256
    cache = response.cache_control
    assert (cache.public, cache.max_age, cache.immutable) == (True, YEAR_SECONDS, True)
    assert not cache.no_cache


@pytest.mark.parametrize("path", ["/web/missing.js", "/web/../api.py", "/web/%2e%2e/api.py", "/web/"])
def test_only_the_pages_files_are_served(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"].startswith("404 Not Found")


def test_openapi_documents_the_page_and_hides_its_files(client):
    spec = client.get("/openapi.json").get_json()
    page = spec["paths"]["/"]["get"]
    assert set(page["responses"]) == {"200"}
    assert set(page["responses"]["200"]["content"]) == {"text/html"}
    assert not [path for path in spec["paths"] if path.startswith("/web")]


def test_swagger_ui_sends_nothing_to_the_online_validator(client):
    html = client.get("/docs/swagger").get_data(as_text=True)
    start = re.search(r"src=\"(swagger/js/start\.js[^\"]*)\"", html).group(1)
    assert '"validatorUrl": "none"' in client.get(f"/docs/{start}").get_data(as_text=True)


# ---------------------------------------------------------------- gzip-encoded copies

PAGE_URLS = ["/", "/web/app.js", "/web/style.css", "/web/favicon.svg", f"/web/{PLOTLY_FILE}"]
GZIP = {"Accept-Encoding": "gzip, deflate, br"}  # what browsers send


@pytest.fixture
def web_copy(tmp_path, monkeypatch) -> Path:
    """A copy of web/ with the gzip copies `make` and the image build make, served by the app."""
    folder = Path(
        shutil.copytree(serving.page.WEB_DIR, tmp_path / "web", ignore=shutil.ignore_patterns("*.gz"))
    )
    for path in page_files(folder):
        precompress(path)
    monkeypatch.setattr(serving.page, "WEB_DIR", folder)
    return folder


def test_precompress_copies_every_page_file_the_same_way_every_time(tmp_path):
    folder = Path(
        shutil.copytree(serving.page.WEB_DIR, tmp_path / "web", ignore=shutil.ignore_patterns("*.gz"))
    )
    names = [path.relative_to(folder).as_posix() for path in page_files(folder)]
    assert names == ["app.js", "favicon.svg", "index.html", "style.css", PLOTLY_FILE]
    written = [precompress(path) for path in page_files(folder)]
    assert all(written)
    assert [precompress(path) for path in page_files(folder)] == [None] * len(names)  # up to date: left alone
    plotly = folder / PLOTLY_FILE
    copy = Path(f"{plotly}.gz")
    assert copy.read_bytes() == gzip_bytes(plotly.read_bytes())  # no name or time in the header
    assert copy.read_bytes()[4:8] == b"\0\0\0\0"  # gzip's MTIME field
    assert gzip.decompress(copy.read_bytes()) == plotly.read_bytes()
    identity, compressed = plotly.stat().st_size, copy.stat().st_size
    print(f"\nplotly.js: {identity} bytes, {compressed} gzip-encoded ({identity - compressed} saved, "
          f"{1 - compressed / identity:.0%} less)")  # fmt: skip
    assert compressed < identity / 2.5


@pytest.mark.parametrize("url", PAGE_URLS)
def test_clients_that_accept_gzip_get_the_gzip_copy(client, web_copy, url):
    identity = client.get(url)
    response = client.get(url, headers=GZIP)
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()) == identity.get_data()
    assert int(response.headers["Content-Length"]) == len(response.get_data()) < len(identity.get_data())
    assert response.mimetype == identity.mimetype
    assert (
        response.headers["Cache-Control"] == identity.headers["Cache-Control"]
    )  # a year for vendor/, else no-cache
    assert response.headers.get("Content-Security-Policy") == identity.headers.get("Content-Security-Policy")
    for answer in (response, identity):
        assert "Accept-Encoding" in answer.headers["Vary"]
    assert response.headers["ETag"] != identity.headers["ETag"]  # caches never mix up the two encodings
    # Byte ranges always count the file's own bytes: the copy does not offer them.
    assert (response.headers["Accept-Ranges"], identity.headers["Accept-Ranges"]) == ("none", "bytes")


@pytest.mark.parametrize(
    "accept_encoding", [None, "identity", "gzip;q=0", "br, deflate", "*;q=0", "gzip;q=0, *"]
)
def test_other_clients_get_the_file_as_it_is(client, web_copy, accept_encoding):
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    response = client.get("/web/app.js", headers=headers)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers
    assert response.get_data() == (web_copy / "app.js").read_bytes()
    assert "Accept-Encoding" in response.headers["Vary"]


@pytest.mark.parametrize("accept_encoding", ["gzip", "GZIP;q=0.5", "*", "br;q=1.0, gzip;q=0.8"])
def test_any_positive_gzip_weight_gets_the_copy(client, web_copy, accept_encoding):
    response = client.get("/web/app.js", headers={"Accept-Encoding": accept_encoding})
    assert response.headers.get("Content-Encoding") == "gzip"


def test_each_encoding_is_revalidated_by_its_own_etag(client, web_copy):
    compressed = client.get("/web/app.js", headers=GZIP)
    again = client.get("/web/app.js", headers={**GZIP, "If-None-Match": compressed.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert "Accept-Encoding" in again.headers["Vary"]
    # The same validator from a client that now takes no gzip names another representation.
    identity = client.get("/web/app.js", headers={"If-None-Match": compressed.headers["ETag"]})
    assert identity.status_code == 200 and "Content-Encoding" not in identity.headers


def test_a_copy_older_than_its_file_is_never_sent(client, web_copy):
    script = web_copy / "app.js"
    changed = script.read_bytes() + b"\n// changed after the copy was made\n"
    script.write_bytes(changed)
    changed_at = script.stat().st_mtime_ns  # the copy was made a second before the change
    os.utime(f"{script}.gz", ns=(changed_at - 1_000_000_000, changed_at - 1_000_000_000))
    response = client.get("/web/app.js", headers=GZIP)
    assert "Content-Encoding" not in response.headers
    assert response.get_data() == changed
    precompress(script)  # as the next `make` or image build would
    assert gzip.decompress(client.get("/web/app.js", headers=GZIP).get_data()) == changed


def test_without_copies_every_file_is_sent_as_it_is(client, web_copy):
    for copy in web_copy.rglob("*.gz"):
        copy.unlink()
    for url in PAGE_URLS:
        response = client.get(url, headers=GZIP)
        assert response.status_code == 200 and "Content-Encoding" not in response.headers, url
        assert "Accept-Encoding" in response.headers["Vary"]


def test_a_range_request_gets_bytes_of_the_file_itself(client, web_copy):
    response = client.get(f"/web/{PLOTLY_FILE}", headers={**GZIP, "Range": "bytes=0-99"})
    assert response.status_code == 206 and "Content-Encoding" not in response.headers
    assert response.get_data() == (web_copy / PLOTLY_FILE).read_bytes()[:100]
    assert response.headers["Content-Range"].startswith("bytes 0-99/")


@pytest.mark.parametrize("path", ["/web/app.js.gz", f"/web/{PLOTLY_FILE}.gz"])
def test_the_copies_are_not_files_of_the_page(client, web_copy, path):
    assert client.get(path, headers=GZIP).status_code == 404
