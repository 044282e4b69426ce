"""Keep the device, not its neighbourhood: the ring figure with each keep scope, keep mode and keep mask.

    python benchmarks/keep_device.py [--cases 3] [--steps 200] [--scopes device mask] [--model tiny]

Edits phantom cases whose drain crosses a pneumothorax ("No pneumothorax"
inside the pneumothorax mask, the drain kept) with the CLI defaults (T=200,
skip 0.3, guidance 15, dilation 5 px, pixel keep) and in latent keep mode,
with the exact drain mask, one that misses its border and one drawn much
larger, and prints per setting the mean over cases of the share of the
finding's darkness removed in the ring 2-12 px beside the drain, over the
whole finding, their ratio (the goal: >= 0.8), whether the drain's pixels
stayed bit for bit and how much of its contrast is left
(:mod:`radedit_core.replication.keep_ring`).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from radedit_core.phantom_world import WorldConfig  # noqa: E402
from radedit_core.replication.keep_ring import KEEP_MASKS, crossing_cases, run_cases  # noqa: E402
from radedit_core.settings import KEEP_SCOPES, PAPER_PROMPTS, EditSettings  # noqa: E402
from radedit_core.workflow import RadEditor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--start", type=int, default=0, help="first case seed searched")
    parser.add_argument("--steps", type=int, default=EditSettings(["-"]).steps)
    parser.add_argument("--scopes", nargs="+", default=list(KEEP_SCOPES), choices=KEEP_SCOPES)
    parser.add_argument("--modes", nargs="+", default=["pixel", "latent"], choices=["pixel", "latent"])
    parser.add_argument("--masks", nargs="+", default=list(KEEP_MASKS), choices=list(KEEP_MASKS))
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    parser.add_argument("--json", help="write every case's figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    editor = RadEditor.load(args.model, device="cpu", dtype="float32")
    editor.set_progress(False)
    cases = crossing_cases(WorldConfig(), args.cases, args.start)
    print(f"cases (seeds): {[c.seed for c in cases]}; T={args.steps}, dilation 5 px, guidance 15")
    print(f"{'scope':7} {'mode':6} {'keep mask':14} {'ring':>6} {'whole':>6} {'ratio':>6} {'exact':>6} "
          f"{'contrast':>8} {'s/edit':>6}")  # fmt: skip
    rows = {}
    for scope in args.scopes:
        for mode in args.modes:
            settings = EditSettings([PAPER_PROMPTS["no-pneumothorax"]], steps=args.steps, keep_mode=mode,
                                    keep_scope=scope)  # fmt: skip
            started = time.perf_counter()
            out = run_cases(lambda im, e, k: editor.edit(im, e, k, settings).image.array, cases, tuple(args.masks))
            per_edit = (time.perf_counter() - started) / (len(cases) * len(args.masks))
            for name, figures in out.items():
                mean = {k: float(np.mean([f[k] for f in figures])) for k in
                        ("ring_share", "whole_share", "ring_ratio", "device_contrast_kept")}  # fmt: skip
                exact = sum(f["device_exact"] for f in figures)
                print(f"{scope:7} {mode:6} {name:14} {mean['ring_share']:6.2f} {mean['whole_share']:6.2f} "
                      f"{mean['ring_ratio']:6.2f} {exact:>3}/{len(figures):<2} {mean['device_contrast_kept']:8.2f} "
                      f"{per_edit:6.1f}", flush=True)  # fmt: skip
                rows[f"{scope}/{mode}/{name}"] = figures
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
