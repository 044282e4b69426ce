"""The shortcut effect of a shortcut model and of one that follows the finding, on a small phantom world.

    python benchmarks/shortcut_effect.py --work DIR [--cases 40] [--steps 10] [--model tiny]

The documentation's commands (docs/stress-tests.md) in ``DIR``: ``radedit
phantom`` (``--cases`` cases, seed 0), ``radedit stress build`` with the
phantom world's manifestation recipes (remove the pneumothorax, keep the
drain; six edits and six shams for 40 cases), then ``radedit stress
evaluate`` of two predictors from ``tests/stress_phantom_predictors.py``:
``drain_detector`` (trained to see the drain, saved as a pneumothorax
classifier: a pure shortcut) and a small model trained on a world whose
drains are independent of the pneumothorax (``UNBIASED``).  Prints each
one's shortcut effect in points with its interval and verdict (the figures
of docs/stress-tests.md, "The shortcut effect").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from stress_phantom_predictors import UNBIASED, drain_detector, save, train, world_images  # noqa: E402

RECIPES = REPO / "radedit_core" / "data" / "recipes" / "phantom_world" / "manifestation.yaml"


def radedit(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "radedit_core.cli", "-q", *args], cwd=cwd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the world, set and results")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True)
    radedit("phantom", "--out", "phantom", "--n", str(args.cases), "--seed", "0", cwd=work)
    (work / "predictors").mkdir()
    predictors = {
        "drain detector": drain_detector(work / "predictors", n=300),
        "unbiased model": save(train(*world_images(150, seed=2, **UNBIASED)), work / "predictors" / "unbiased.ts",
                               "unbiased"),  # fmt: skip
    }
    radedit("stress", "build", "--datalist", "phantom/datalist.json", "--recipes", str(RECIPES), "--output",
            "stress_set", "--steps", str(args.steps), "--model", args.model, cwd=work)  # fmt: skip
    print(f"{args.cases}-case phantom world (seed 0), {args.steps} steps, model {args.model}")
    for k, (name, predictor) in enumerate(predictors.items()):
        radedit("stress", "evaluate", "--set", "stress_set", "--predictor", str(predictor), "--output", f"results-{k}",
                "--resamples", str(args.resamples), cwd=work)  # fmt: skip
        for entry in json.loads((work / f"results-{k}" / "results.json").read_text())["shortcut"]:
            effect = entry["effect"]
            lo, hi = (100 * x for x in effect["ci"])
            print(f"{name:15} {entry['recipe']}: shortcut effect {100 * effect['value']:+.1f} [{lo:+.1f}, {hi:+.1f}] "
                  f"points ({effect['method']}); {entry['verdict']}")  # fmt: skip


if __name__ == "__main__":
    main()
