"""Write the bundled sample image and masks (deterministic synthetic phantom).

    python scripts/make_sample_data.py [--out radedit_core/data/sample] [--study-out radedit_core/data/sample_study]

Besides the PNG sample it writes a one-image DICOM study: a 640x560 CR,
MONOCHROME1, 12 bits stored, with a rescale and a VOI LUT (``cxr.dcm``), and a
DICOM SEG with the segments "lungs" and "pacemaker" that references it
(``seg.dcm``).  UIDs and dates are derived from fixed seeds, so rerunning the
script writes the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from radedit_core.synthetic import chest_phantom, quantise

ROWS, COLS, SEED = 640, 560, 7
DATA = Path(__file__).resolve().parents[1] / "radedit_core/data"
#: Seeds the sample study's UIDs: the same files on every run.
STUDY_UID_SEED = "radedit sample study v1"


def write_sample_study(folder: Path) -> list[Path]:
    """The bundled DICOM study: one CR (MONOCHROME1, 12-bit, rescale, VOI LUT) and its SEG."""
    from radedit_core.dicom.synthetic import StudyInfo, write_study  # noqa: PLC0415

    study = StudyInfo.new(
        STUDY_UID_SEED,
        patient_id="RADEDIT-SAMPLE",
        accession_number="RESAMPLE1",
        study_description="Chest X-ray (synthetic sample)",
    )
    written = write_study(
        folder,
        kinds=("CR",),
        image_names=("cxr.dcm",),
        seg=True,
        seg_segments=("lungs", "pacemaker"),
        study=study,
        rows=ROWS,
        columns=COLS,
        seed=SEED,
        uid_seed=STUDY_UID_SEED,
        photometric="MONOCHROME1",
        bits_stored=12,
        rescale=(1.0, -1024.0),
        voi="lut",
        series_description="PA chest (synthetic sample)",
        private_tags=False,
    )
    return written.files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DATA / "sample")
    parser.add_argument("--study-out", type=Path, default=DATA / "sample_study")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    phantom = chest_phantom(ROWS, COLS, seed=SEED)
    # 12-bit values in a 16-bit PNG, as a CR export would hold them.
    Image.fromarray(quantise(phantom.image, 12, np.uint16)).save(args.out / "cxr.png")
    lungs = phantom.mask("right_lung", "left_lung") & ~phantom.mask("pacemaker")
    Image.fromarray(lungs.astype(np.uint8) * 255).save(args.out / "lungs_mask.png")
    Image.fromarray(phantom.mask("pacemaker").astype(np.uint8) * 255).save(args.out / "pacemaker_mask.png")
    print(f"wrote sample to {args.out}")
    files = write_sample_study(args.study_out)
    print(f"wrote sample study to {args.study_out} ({', '.join(p.name for p in files)})")


if __name__ == "__main__":
    main()
