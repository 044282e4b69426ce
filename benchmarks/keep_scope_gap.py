"""The sample study's pneumothorax removal against its true counterfactual, per keep scope.

    python benchmarks/keep_scope_gap.py [--steps 50 200] [--scopes device mask] [--model tiny] [--threads 1]

The sample (``radedit_core/data/sample``) is a phantom-world case, so the
world draws the same patient without the pneumothorax: the edit's target.
For each keep scope and step count this edits the sample as the main job
does ("No pneumothorax" inside the pneumothorax mask, the drain kept, pixel
keep mode, the other settings the CLI defaults) and prints, over the
pneumothorax region less the drain dilated by 6 px (the region
``tests/test_demo_model.py`` checks):

* ``gap``: the mean signed difference to the counterfactual, in stored
  values (negative: darker; the source's is the pneumothorax's air);
* ``distance``: the mean absolute difference (the lung markings the model
  cannot know keep it above 0);
* ``far``: the mean absolute change more than 24 px from both masks (what
  the edit should leave alone).

These are the figures behind the keep-scope default (``DEFAULT_KEEP_SCOPE``,
docs/editing.md "Settings").
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from radedit_core.demo import sample_dir, sample_phantom_case  # noqa: E402
from radedit_core.imaging.io import read_image, read_mask_array  # noqa: E402
from radedit_core.phantom_world import render_case  # noqa: E402
from radedit_core.replication.experiments import dilate  # noqa: E402
from radedit_core.settings import KEEP_SCOPES, PAPER_PROMPTS, EditSettings  # noqa: E402
from radedit_core.workflow import RadEditor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--scopes", nargs="+", default=list(KEEP_SCOPES), choices=KEEP_SCOPES)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    editor = RadEditor.load(args.model, device="cpu", dtype="float32")
    editor.set_progress(False)
    image = read_image(sample_dir() / "cxr.png")
    ptx = read_mask_array(sample_dir() / "pneumothorax_mask.png", image) > 0
    drain = read_mask_array(sample_dir() / "drain_mask.png", image) > 0
    truth = render_case(sample_phantom_case().parameters, exclude=["pneumothorax"]).stored(12, "MONOCHROME2")
    truth = truth.astype(np.float64)
    source = image.array.astype(np.float64)
    region, far = ptx & ~dilate(drain, 6), ~dilate(ptx | drain, 24)
    print(f"model {args.model}, {args.threads} thread(s); region {int(region.sum())} px")
    print(f"{'scope':7} {'steps':>5} {'gap':>7} {'distance':>8} {'far':>6}")
    print(f"{'source':7} {'':>5} {(source - truth)[region].mean():7.0f} {np.abs(source - truth)[region].mean():8.0f} "
          f"{0.0:6.1f}")  # fmt: skip
    for steps in args.steps:
        for scope in args.scopes:
            settings = EditSettings([PAPER_PROMPTS["no-pneumothorax"]], steps=steps, keep_mode="pixel", keep_scope=scope)
            edited = editor.edit(image, ptx, drain, settings).image.array.astype(np.float64)
            print(f"{scope:7} {steps:5d} {(edited - truth)[region].mean():7.0f} "
                  f"{np.abs(edited - truth)[region].mean():8.0f} {np.abs(edited - source)[far].mean():6.1f}", flush=True)


if __name__ == "__main__":
    main()
