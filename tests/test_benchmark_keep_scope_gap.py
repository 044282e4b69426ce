"""benchmarks/keep_scope_gap.py (the figures behind the keep-scope default) on the micro model:
the source's own gap to the true counterfactual is a fact of the sample study, whatever the model."""

from __future__ import annotations

import re
from pathlib import Path

from cli_runner import python

REPO = Path(__file__).resolve().parent.parent


def test_the_benchmark_measures_the_sample_against_its_counterfactual(micro_model_dir):
    proc = python(str(REPO / "benchmarks" / "keep_scope_gap.py"), "--model", str(micro_model_dir), "--steps", "2",
                  check=True)  # fmt: skip
    rows = {tuple(m.group(1, 2)): (int(m.group(3)), int(m.group(4)), float(m.group(5)))
            for m in re.finditer(r"^(\w+) +(\d*) +(-?\d+) +(\d+) +([\d.]+)$", proc.stdout, re.M)}  # fmt: skip
    # the pneumothorax's air, 212 stored values darker on average than the lung the world draws without it
    assert rows[("source", "")] == (-212, 222, 0.0)
    assert set(rows) == {("source", ""), ("device", "2"), ("mask", "2")}
    for scope in ("device", "mask"):
        gap, distance, far = rows[(scope, "2")]
        assert distance >= abs(gap) and far >= 0
