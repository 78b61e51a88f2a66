"""The page at / and its files, through Flask's test client: served, cached, local only, and documented."""

from __future__ import annotations

import hashlib
import re

import pytest

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
    assert '"validatorUrl": "none"' in html
