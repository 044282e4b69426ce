"""The phantom replication's --quick mode end to end (benchmarks/phantom_replication.py), and its pieces.

The quick run trains its judge, predictors and segmenters on small splits
(96 px inputs, a few epochs) and edits a handful of cases with T=30, so its
figures are noisy: the ranges below are what such a run measures with the
demo model, wide enough for the bootstrap noise of a few cases and narrow
enough that a broken edit path, a judge that learnt nothing or a predictor
that cannot tell the classes apart fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radedit_core.phantom_world import case_seed
from radedit_core.replication.experiments import bounding_box, border_band, erode
from radedit_core.replication.worlds import GENERATIVE_MODEL_SEED, SPLITS, check_disjoint

REPO = Path(__file__).resolve().parents[1]


def test_splits_are_disjoint_and_the_check_notices_an_overlap(monkeypatch):
    sizes = {"judge": 1200, "weak": 1000, "strong": 1000, "healthy": 500, "test": 400, "healthy_test": 16}
    check_disjoint(sizes)
    assert len({s.seed for s in SPLITS.values()} | {GENERATIVE_MODEL_SEED}) == len(SPLITS) + 1
    monkeypatch.setitem(SPLITS, "weak", SPLITS["judge"].__class__("weak", "biased", SPLITS["judge"].seed))
    with pytest.raises(AssertionError, match="is in split"):
        check_disjoint({"judge": 10, "weak": 10})
    assert case_seed(201, 0) != case_seed(301, 0)


def test_worlds_break_or_keep_the_confounders():
    biased, balanced, healthy = (SPLITS[k].config() for k in ("test", "strong", "healthy"))
    assert (biased.drain_given_pneumothorax, biased.drain_given_no_pneumothorax) == (0.9, 0.02)
    assert biased.finding_probability("consolidation", "A") == 0.0 < biased.finding_probability("consolidation", "B")
    assert balanced.drain_given_pneumothorax == balanced.drain_given_no_pneumothorax
    assert balanced.finding_probability("consolidation", "A") == balanced.finding_probability("consolidation", "B") > 0
    assert max(healthy.prevalence.values()) == 0.0 and healthy.pacemaker == 0.0


def test_mask_helpers():
    mask = np.zeros((40, 50), bool)
    mask[10:20, 15:30] = True
    box = bounding_box(mask, margin=3)
    assert box.sum() == (10 + 6) * (15 + 6) and box[7, 12] and not box[6, 12]
    assert not bounding_box(np.zeros((5, 5), bool)).any()
    band = border_band(mask, 2)
    assert band[10, 20] and band[8, 20] and not band[15, 22] and not band[5, 20]
    assert (erode(mask, 2) | band)[mask].all()


@pytest.mark.timeout(600)
def test_quick_replication_runs_and_measures_the_paper_effects(tmp_path, radedit_home):
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "phantom_replication.py"), "--quick", "--json", str(out),
         "--cache", str(tmp_path / "cache"), "--workers", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Manifestation shift" in proc.stdout and "Goals:" in proc.stdout and "paper" in proc.stdout
    r = json.loads(out.read_text())
    assert r["config"]["mode"] == "quick" and r["model"]["name"] == "radedit-demo"
    check_ranges(r)
    # The trained networks are TorchScript files with predictor sidecars that `radedit stress evaluate` loads.
    nets = sorted((tmp_path / "cache" / "nets").glob("*.ts"))
    assert len(nets) == 5 and all(p.with_suffix(".json").is_file() for p in nets)


def check_ranges(r: dict) -> None:
    """The quick run's figures (fractions) in ranges honest for a few cases and small networks."""
    real = r["networks_on_real_test"]
    assert real["judge:drain"]["accuracy"]["value"] >= 0.85
    assert real["judge:pacemaker"]["accuracy"]["value"] >= 0.85
    man = r["manifestation"]
    assert man["cases"] == 6 and set(man["methods"]) == {"radedit", "global", "edit_mask_only"}
    radedit, glob = man["methods"]["radedit"], man["methods"]["global"]
    assert radedit["drain_present"]["value"] >= 0.8
    assert radedit["lung_dice"]["value"] >= 0.85
    # The edit moves the pneumothorax region towards the true counterfactual.
    assert radedit["counterfactual_mae"]["value"] < man["real"]["counterfactual_mae"]["value"]
    assert 0.0 <= man["diffedit"]["dice"]["value"] <= 0.6
    weak = man["predictors"]["weak"]
    assert weak["real"]["accuracy"]["value"] >= 0.8
    assert weak["synthetic"]["accuracy"]["value"] <= 0.5  # the weak predictor follows the drain
    assert r["population"]["segmenters"]["strong"]["real"]["value"] >= 0.85
    for key in ("weak", "strong"):
        for recipe in ("edema", "pacemaker", "consolidation"):
            assert 0.5 <= r["population"]["segmenters"][key][recipe]["value"] <= 1.0
    assert glob["lung_dice"]["value"] <= 1.0
    assert r["timings_s"]["total"] > 0
