"""benchmarks/edit_speed.py runs where only torch, transformers and diffusers are (the GPU check's
environment): a CPU smoke run of every configuration, with the modules it loaded checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

RUN = """
import json, runpy, sys
sys.argv = ["edit_speed.py", "--arch", "tiny", "--device", "cpu", "--steps", "4", "--batch", "2", "--repeats", "1",
            "--json", sys.argv[1]]
runpy.run_path("benchmarks/edit_speed.py", run_name="__main__")
loaded = sorted(m for m in sys.modules if m.startswith(("radedit_core.imaging", "radedit_core.dicom", "monai")))
print("LOADED", json.dumps(loaded))
"""


@pytest.mark.slow
def test_the_benchmark_prints_every_figure_without_imaging_dicom_or_monai(tmp_path):
    figures_path = tmp_path / "figures.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", RUN, str(figures_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.split("LOADED ", 1)[1])
    assert loaded == [], f"the benchmark imported {loaded}"
    figures = json.loads(figures_path.read_text())
    configs = figures["configs"]
    assert set(configs) == {"a_reference_fp32", "b_fast_single", "c_fast_batch_2"}
    ref, one, two = configs["a_reference_fp32"], configs["b_fast_single"], configs["c_fast_batch_2"]
    # T=4, skip 1: the reference inverts all 4 steps one call each and calls the UNet twice per step
    assert (ref["unet_evaluations"], ref["unet_calls"]) == (4 + 3, 4 + 2 * 3)
    # the fast path inverts the 3 steps used in one call and makes one call per step, for 1 or 2 images
    assert one["unet_calls"] == two["unet_calls"] == 1 + 3
    for row in configs.values():
        assert row["seconds_per_edit"] > 0 and abs(row["edits_per_second"] * row["seconds_per_edit"] - 1) < 0.01
        assert 0 < row["share_of_peak"] and row["peak_memory_mb"] > 0
    assert one["psnr_vs_fp32_db"] >= 40 and two["psnr_vs_fp32_db"] >= 40
    assert figures["gflop_per_evaluation"] > 0 and figures["tensorrt"].startswith("skipped")
    assert "configuration" in proc.stdout and "c_fast_batch_2" in proc.stdout
