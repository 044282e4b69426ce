"""How much of an image an edit changes: null edits and real edits on phantom chests and the sample study.

For each image, with the demo model (``--model tiny``, CPU, float32) and the
default settings (200 steps, skip 0.3, dilation 5, keep mode pixel, the
default detail mode):

* **null edit**: ``--global-edit --prompt P --invert-prompt P --guidance 3.5
  --invert-guidance 3.5``: the fraction of pixels that change and the largest
  change (the identity would give 0 and 0);
* **real edit**: "No acute cardiopulmonary process" (guidance 15) inside the
  lungs, keeping the devices and the laterality marker: the 99th percentile
  and maximum of |change| (stored values) outside the edit and keep masks as
  applied (dilated), and the fraction of those pixels that changed; the mean
  |change| inside the edit mask shows that the edit itself is still there.

Only public API that radedit 0.1 also has is used, so the same script
measures the compositing before and after (``PYTHONPATH=<old checkout>``).

    python benchmarks/compositing_locality.py [--seeds 0 1 2] [--steps 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from radedit_core.imaging.image import SourceImage
from radedit_core.phantom_world import WorldConfig, sample_case
from radedit_core.workflow import EditSettings, RadEditor

PROMPT = "No acute cardiopulmonary process"
SAMPLE_STUDY = Path(__file__).resolve().parents[1] / "radedit_core" / "data" / "sample_study"


def cases(seeds: list[int]):
    for seed in seeds:
        case = sample_case(WorldConfig(), seed)
        image = SourceImage.from_array(case.stored(12, "MONOCHROME2"), value_range=(0, 4095))
        keep = case.mask("drain", "pacemaker", "ecg", "marker")
        yield f"phantom seed {seed} (site {case.site})", image, case.lungs, keep if keep.any() else None
    from radedit_core.dicom import read_dicom_image, read_dicom_mask  # noqa: PLC0415

    image = read_dicom_image(SAMPLE_STUDY / "cxr.dcm")
    lungs = read_dicom_mask(SAMPLE_STUDY / "seg.dcm", image, select="lungs")
    pacemaker = read_dicom_mask(SAMPLE_STUDY / "seg.dcm", image, select="pacemaker")
    yield "sample study cxr.dcm (CR, 12-bit)", image, lungs, pacemaker


def figures(source: np.ndarray, edited: np.ndarray, result) -> dict:
    change = np.abs(edited.astype(np.float64) - source.astype(np.float64))
    edit = result.masks.edit > 0
    keep = result.masks.keep > 0 if result.masks.keep is not None else np.zeros_like(edit)
    outside = ~edit & ~keep
    return {
        "changed_fraction": float(np.mean(change > 0)),
        "max_abs_change": float(change.max()),
        "outside_p99_abs_change": float(np.percentile(change[outside], 99)) if outside.any() else None,
        "outside_max_abs_change": float(change[outside].max()) if outside.any() else None,
        "outside_changed_fraction": float(np.mean(change[outside] > 0)) if outside.any() else None,
        "edit_mean_abs_change": float(change[edit & ~keep].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    editor = RadEditor.load("tiny", device="cpu", dtype="float32")
    editor.set_progress(False)
    rows = []
    for name, image, lungs, keep in cases(args.seeds):
        null = editor.edit(image, None, None, EditSettings([PROMPT], weights=[3.5], invert_prompt=PROMPT,
                                                           invert_guidance=3.5, steps=args.steps))  # fmt: skip
        real = editor.edit(image, lungs, keep, EditSettings([PROMPT], steps=args.steps))
        row = {"image": name, "shape": list(image.shape), "dtype": str(image.dtype),
               "null": figures(image.array, null.image.array, null),
               "real": figures(image.array, real.image.array, real)}  # fmt: skip
        rows.append(row)
        n, r = row["null"], row["real"]
        print(
            f"{name} {image.shape[1]}x{image.shape[0]}: null edit changes {100 * n['changed_fraction']:.2f}% of pixels "
            f"(max {n['max_abs_change']:g}); real edit outside the masks: p99 |change| {r['outside_p99_abs_change']:g}, "
            f"max {r['outside_max_abs_change']:g}, {100 * r['outside_changed_fraction']:.1f}% changed; "
            f"inside the edit mask mean |change| {r['edit_mean_abs_change']:.1f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
