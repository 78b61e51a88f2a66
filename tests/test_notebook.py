"""train.ipynb runs top to bottom, offline, and is stored without outputs."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOK = ROOT / "train.ipynb"


def stream_text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")


def test_notebook_runs_top_to_bottom_against_fake_alpaca(fake_alpaca, monkeypatch):
    # The kernel inherits this environment: alpaca-py talks to the local fake, and QUICK=1
    # backtests fewer cutoffs with the same code.
    monkeypatch.setenv("ALPACA_DATA_URL", fake_alpaca.url)
    monkeypatch.setenv("SOURCE", "alpaca")
    monkeypatch.setenv("QUICK", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    printed = "\n".join(stream_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "BTC/USD: " in printed and f"days from alpaca ({fake_alpaca.url})" in printed
    assert "10 evaluated cutoffs" in printed
    assert "chosen: " in printed and "quality gate: " in printed
    assert {r["query"]["symbols"] for r in fake_alpaca.state.requests} == {"BTC/USD"}
    figures = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in out.get("data", {})
    ]
    assert (
        len(figures) >= 9
    )  # price, returns, decomposition, autocorrelation, forecasts, components, backtest


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
