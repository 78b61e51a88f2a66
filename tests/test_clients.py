"""Clients generated from the live /openapi.json of a real server work as its users would make them.

Python: openapi-python-client generates a package from the document `python api.py` serves, pip
installs it (built by poetry-core, as its generated pyproject asks; no index, no network), and its
calls get what the server answers to the same requests made directly.

TypeScript: openapi-typescript generates types from the same live document, and tsc --strict
checks tests/typescript/page-calls.ts, which reads the answers as web/app.js does, against them.
Its tools come from npm (tests/typescript/package-lock.json), installed by `make test`; without
them these tests are skipped with the reason, except in CI (CI set), where they fail.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from packaging.version import Version

from tests.conftest import ROOT

CLIENT_PACKAGE = "crypto_predict_api_client"  # openapi-python-client's name for the document's title
TOOLS = Path(sys.executable).parent  # the generator formats its output with ruff, found on PATH
COMMAND_TIMEOUT = 120
TYPESCRIPT = ROOT / "tests" / "typescript"
NODE_TOOLS = TYPESCRIPT / "node_modules" / ".bin"


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )


def direct(live_server, path: str, **params) -> requests.Response:
    return requests.get(f"{live_server.url}{path}", params=params, timeout=30)


@pytest.fixture(scope="module")
def installed_client(live_server, tmp_path_factory):
    """The generated package, pip-installed into a folder of its own and importable from there."""
    work = tmp_path_factory.mktemp("python-client")
    generated = run(
        sys.executable, "-m", "openapi_python_client", "generate",
        "--url", f"{live_server.url}/openapi.json", "--output-path", str(work / "client"),
        cwd=work,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    site = work / "site"
    installed = run(
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
        "--no-deps", "--no-build-isolation", "--target", str(site), str(work / "client"),
        cwd=work,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [name for name in sys.modules if name.partition(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def client(installed_client, live_server):
    package = importlib.import_module(CLIENT_PACKAGE)
    with package.Client(base_url=live_server.url, raise_on_unexpected_status=True) as client:
        yield client


def operation(module: str):
    """A generated operation module, e.g. 'forecasts.bitcoin_bitcoin_get'."""
    return importlib.import_module(f"{CLIENT_PACKAGE}.api.{module}")


def test_the_client_installs_with_the_version_the_document_states(installed_client, live_server):
    stated = direct(live_server, "/openapi.json").json()["info"]["version"]
    assert str(Version(stated)) == stated  # a valid PEP 440 version, in its normal form
    (distribution,) = importlib.metadata.distributions(path=[str(installed_client)])
    assert distribution.metadata["Name"] == CLIENT_PACKAGE.replace("_", "-")
    assert distribution.version == stated


def test_a_day_through_the_client_is_the_servers_answer(client, live_server):
    bitcoin = operation("forecasts.bitcoin_bitcoin_get").sync_detailed(client=client, date=date(2024, 6, 1))
    assert bitcoin.status_code == 200
    assert bitcoin.parsed.to_dict() == direct(live_server, "/bitcoin", date="2024-06-01").json()
    asset = importlib.import_module(f"{CLIENT_PACKAGE}.models").ForecastForecastAssetGetAsset.ETH
    eth = operation("forecasts.forecast_forecast_asset_get").sync_detailed(
        client=client, asset=asset, date=date(2024, 6, 1)
    )
    assert eth.status_code == 200
    assert eth.parsed.to_dict() == direct(live_server, "/forecast/eth", date="2024-06-01").json()


def test_a_range_through_the_client_is_the_servers_answer(client, live_server):
    models = importlib.import_module(f"{CLIENT_PACKAGE}.models")
    btc = models.ForecastForecastAssetGetAsset.BTC
    answer = operation("forecasts.forecast_forecast_asset_get").sync_detailed(
        client=client, asset=btc, start=date(2024, 6, 1), end=date(2024, 6, 30)
    )
    assert answer.status_code == 200
    assert isinstance(answer.parsed, models.ForecastRange)
    assert len(answer.parsed.forecasts) == 30
    expected = direct(live_server, "/forecast/btc", start="2024-06-01", end="2024-06-30").json()
    assert answer.parsed.to_dict() == expected


def test_model_cards_through_the_client_are_the_servers(client, live_server):
    cards = operation("forecasts.model_cards_models_get").sync_detailed(client=client)
    assert cards.status_code == 200
    assert cards.parsed.to_dict() == direct(live_server, "/models").json()


def test_a_refused_request_through_the_client_carries_the_servers_error(client, live_server):
    last_day = date.fromisoformat(direct(live_server, "/models/btc").json()["serves"]["last_day"])
    too_late = last_day + timedelta(days=1)
    refused = operation("forecasts.bitcoin_bitcoin_get").sync_detailed(client=client, date=too_late)
    assert refused.status_code == 400
    models = importlib.import_module(f"{CLIENT_PACKAGE}.models")
    assert isinstance(refused.parsed, models.ErrorBody)
    expected = direct(live_server, "/bitcoin", date=too_late.isoformat())
    assert expected.status_code == 400
    assert refused.parsed.error == expected.json()["error"]
    assert refused.parsed.error.startswith(f"no forecast for {too_late}")


# ---------------------------------------------------------------- TypeScript


@pytest.fixture(scope="module")
def node_tools() -> Path:
    """openapi-typescript and tsc, as `make test` installs them (npm ci in tests/typescript)."""
    missing = [name for name in ("openapi-typescript", "tsc") if not (NODE_TOOLS / name).exists()]
    if missing or not shutil.which("node"):
        reason = f"no Node.js or no {', '.join(missing)} in {NODE_TOOLS}: `make test` installs them with npm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the TypeScript check)")
        pytest.skip(reason)
    return NODE_TOOLS


def test_the_pages_calls_type_check_against_types_generated_from_the_document(
    live_server, node_tools, tmp_path
):
    for name in ("page-calls.ts", "tsconfig.json"):
        shutil.copy(TYPESCRIPT / name, tmp_path)
    document, types = f"{live_server.url}/openapi.json", tmp_path / "api.d.ts"
    generated = run(str(node_tools / "openapi-typescript"), document, "-o", str(types), cwd=tmp_path)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    checked = run(str(node_tools / "tsc"), "-p", str(tmp_path / "tsconfig.json"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The check has teeth: a field the API does not give fails it.
    calls = tmp_path / "page-calls.ts"
    calls.write_text(calls.read_text().replace("body.prediction_low", "body.prediction_lower"))
    broken = run(str(node_tools / "tsc"), "-p", str(tmp_path / "tsconfig.json"), cwd=tmp_path)
    assert broken.returncode != 0 and "prediction_lower" in broken.stdout, broken.stdout
