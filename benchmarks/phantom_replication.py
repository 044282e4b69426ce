"""The paper's experiments reproduced in the phantom world: prints a table, writes ``--json``.

    python benchmarks/phantom_replication.py [--quick] [--json results.json] [--model tiny]
        [--cache DIR] [--workers 2] [--steps T] [--removals N] [--scale F] [--seed 0]

Full mode (about 30 minutes on a 2-core CPU with the demo model) renders the
splits, trains the judge, the weak and strong predictors and the two lung
segmenters on disjoint splits of the world, runs the edits of the four
experiments and the DiffEdit mask baseline, and prints each experiment's
figures beside the paper's (Tables 1-3) with the issue's goals marked
reached or not.  ``--quick`` runs the same code on small splits, shorter
network training and T=20 (about 3 minutes; CI checks its figures in
ranges).  The run computes with ``--threads`` torch threads (default 1)
and deterministic algorithms whatever ``OMP_NUM_THREADS`` says, so its
figures are the same with any thread count of the calling process.
``--cache DIR`` keeps the rendered splits and trained networks
(TorchScript with a predictor sidecar, usable by ``radedit stress
evaluate``), so a rerun only edits.  What is measured, and on which splits:
:mod:`radedit_core.replication.experiments`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from radedit_core.errors import RadEditError  # noqa: E402
from radedit_core.fileio import check_writable, write_json  # noqa: E402
from radedit_core.replication import ReplicationConfig, run_replication, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small splits, short network training, T=20 (about 3 minutes)")
    parser.add_argument("--json", help="write the results here (JSON)")
    parser.add_argument("--model", default="tiny", help="the diffusion model (default: the bundled demo model)")
    parser.add_argument("--cache", help="keep rendered splits and trained networks here (reused by later runs)")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering phantoms")
    parser.add_argument("--threads", type=int, help="torch threads the run computes with (default 1); the figures "
                        "depend on it, not on OMP_NUM_THREADS")
    parser.add_argument("--steps", type=int, help="edit steps T (full: 50, quick: 20)")
    parser.add_argument("--removals", type=int, help="pneumothorax cases edited (full: 40, quick: 6)")
    parser.add_argument("--removal-prompt", help="the removal prompt (default 'No pneumothorax')")
    parser.add_argument("--keep-mode", help="how the manifestation's RadEdit column keeps the drain: pixel (default, "
                        "the CLI's) or latent (the paper's)")
    parser.add_argument("--keep-scope", help="the RadEdit column's keep scope: mask (default) or device")
    parser.add_argument("--scale", type=float, help="run on this fraction of every split and edit list, in (0, 1] "
                        "(a smaller run of the same steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    args = parser.parse_args()
    changes = {k: v for k, v in {"steps": args.steps, "removals": args.removals, "seed": args.seed,
                                 "removal_prompt": args.removal_prompt, "threads": args.threads,
                                 "keep_mode": args.keep_mode, "keep_scope": args.keep_scope}.items()
               if v is not None}  # fmt: skip
    try:
        config = ReplicationConfig.quick(**changes) if args.quick else ReplicationConfig.full(**changes)
        if args.scale is not None:
            config = config.scaled(args.scale)
        if args.json:
            check_writable(args.json, args.overwrite)
        started = time.perf_counter()
        results = run_replication(config, model=args.model, cache=args.cache, workers=args.workers, device=args.device,
                                  progress=lambda text: print(f"[{time.perf_counter() - started:6.0f} s] {text}",
                                                              file=sys.stderr, flush=True))  # fmt: skip
    except RadEditError as exc:
        print(f"phantom_replication: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(table(results))
    if args.json:
        write_json(args.json, results, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
