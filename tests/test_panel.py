"""The evaluation panel (training/selection/panel.py, make panel): its tests of calibration, and a
small subset of the panel run end to end as make panel runs it."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.assets import load_panel
from training.selection import panel, panel_report


def test_kupiec_is_zero_at_the_promised_rate_and_rejects_far_from_it():
    assert panel.kupiec(20, 100, 80) == pytest.approx(0.0)
    # 30 misses in 100 where 20 are promised: 2 [30 ln(0.3/0.2) + 70 ln(0.7/0.8)]
    assert panel.kupiec(30, 100, 80) == pytest.approx(5.6335, abs=1e-4)
    assert panel.kupiec(30, 100, 80) > panel.LR_CRITICAL > panel.kupiec(24, 100, 80)
    assert np.isfinite(panel.kupiec(0, 50, 80))  # no miss at all: 0 log 0 is 0


def test_christoffersen_sees_misses_that_come_in_runs():
    rng = np.random.default_rng(4)
    clustered = np.repeat(rng.random(400) < 0.2, 5)  # a share of 20% misses, in runs of five
    assert panel.christoffersen(clustered) > 100
    # Independent misses: rejected at about the test's 5% size, no more.
    rejected = [panel.christoffersen(rng.random(2000) < 0.2) > panel.LR_CRITICAL for _ in range(400)]
    assert 0.02 <= np.mean(rejected) <= 0.09


def test_the_panel_is_bundled_with_its_provenance():
    assets = load_panel()
    assert len(assets) >= 8 and not {"xrp", "sol", "ada", "btc", "eth"} & set(assets)
    assert {asset.category for asset in assets.values()} == {"old", "young", "collapsed"}
    provenance = (next(iter(assets.values())).snapshot.parent / "PROVENANCE.md").read_text()
    for key, asset in assets.items():
        assert asset.snapshot.exists() and asset.snapshot.name in provenance, key


def test_a_small_panel_runs_end_to_end(tmp_path):
    out = tmp_path / "panel.md"
    assert panel_report.main(["--asset", "sei", "--asset", "luna", "--spacing", "60", "--out", str(out)]) == 0
    report = out.read_text()
    for heading in ("## Targets", "## 80% interval, every origin", "## Every served level, pooled coverage"):
        assert heading in report
    assert "| SEI/USD | young |" in report and "| LUNC/USD | collapsed |" in report
    assert "| **pooled** |" in report and "Kupiec" in report and "Christoffersen" in report
