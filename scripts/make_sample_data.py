"""Write the bundled sample image and masks and the sample DICOM study (one phantom-world case).

    python scripts/make_sample_data.py [--out radedit_core/data/sample] [--study-out radedit_core/data/sample_study]

The case: :func:`radedit_core.demo.sample_phantom_case`, the default phantom
world drawn at 640 x 560 pixels (non-square: the model crops its centre) with
case seed ``SAMPLE_CASE_SEED`` (178): site A, a large right pneumothorax treated by a right
chest drain, and a left pectoral pacemaker.  It is written twice:

* ``sample/``: ``cxr.png`` (its 12-bit stored values, MONOCHROME2, in a
  16-bit PNG) and one 0/255 PNG per mask: ``lungs_mask.png`` (both lungs),
  ``pneumothorax_mask.png``, ``drain_mask.png``, ``pacemaker_mask.png``;
* ``sample_study/``: a one-image DICOM study, ``cxr.dcm`` (CR, MONOCHROME1,
  12 bits stored, RescaleSlope/Intercept 1/-1024 and a linear VOI LUT over the
  image's modality range, so that a reader maps the same intensities to
  model space as for the PNG) and ``seg.dcm``, a DICOM SEG referencing it
  with the segments "lungs", "pneumothorax", "drain" and "pacemaker".

UIDs and dates are derived from fixed seeds, so rerunning the script writes
the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from radedit_core.demo import sample_phantom_case
from radedit_core.phantom_world import Case

SEGMENTS = ("lungs", "pneumothorax", "drain", "pacemaker")
DATA = Path(__file__).resolve().parents[1] / "radedit_core/data"
#: Seeds the sample study's UIDs: the same files on every run.
STUDY_UID_SEED = "radedit sample study v2 (phantom world)"
RESCALE = (1.0, -1024.0)


def segment_masks(case: Case) -> dict[str, np.ndarray]:
    return {name: case.mask(name) for name in SEGMENTS}


def linear_voi_lut(stored_m2: np.ndarray, slope: float, intercept: float) -> Dataset:
    """A VOI LUT item rising linearly over the image's modality range (PS3.3 C.11.2.1.1, 16-bit entries)."""
    first = int(np.floor(stored_m2.min() * slope + intercept))
    last = int(np.ceil(stored_m2.max() * slope + intercept))
    entries = last - first + 1
    item = Dataset()
    item.LUTDescriptor = [entries, first, 16]
    item["LUTDescriptor"].VR = "SS" if first < 0 else "US"
    item.LUTExplanation = "LINEAR OVER IMAGE RANGE"
    item.LUTData = [int(v) for v in np.rint(np.linspace(0, 65535, entries))]
    item["LUTData"].VR = "US"
    return item


def write_sample_study(folder: Path, case: Case) -> list[Path]:
    """The bundled DICOM study: one CR (MONOCHROME1, 12-bit, rescale, VOI LUT) and its SEG."""
    from radedit_core.dicom.synthetic import StudyInfo, make_cxr, make_seg_dataset, save_dataset  # noqa: PLC0415

    study = StudyInfo.new(
        STUDY_UID_SEED,
        patient_id="RADEDIT-SAMPLE",
        accession_number="RESAMPLE2",
        study_description="Chest X-ray (phantom world sample)",
    )
    cxr = make_cxr(
        "CR", rows=64, columns=64, photometric="MONOCHROME1", bits_stored=12, rescale=RESCALE, voi=None,
        study=study, series_description="PA chest (phantom world sample)", pixel_spacing=round(case.storage.pixel_spacing_mm, 6),
        pacemaker=False, private_tags=False, uid_seed=STUDY_UID_SEED,
    )  # fmt: skip
    ds = cxr.dataset
    stored = case.stored(12, "MONOCHROME1")
    ds.Rows, ds.Columns = stored.shape
    ds.PixelData = np.ascontiguousarray(stored.astype("<u2")).tobytes()
    ds["PixelData"].VR = "OW"
    # The LUT is defined on modality values of the stored (MONOCHROME1) pixels; the reader flips it.
    ds.VOILUTSequence = DicomSequence([linear_voi_lut(stored, *RESCALE)])
    ds.ManufacturerModelName = "phantom_world"
    ds.ImageComments = case.report
    folder.mkdir(parents=True, exist_ok=True)
    image_path = save_dataset(ds, folder / "cxr.dcm")
    seg = make_seg_dataset(ds, segment_masks(case), series_number=100, uid_seed=STUDY_UID_SEED)
    return [image_path, save_dataset(seg, folder / "seg.dcm")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DATA / "sample")
    parser.add_argument("--study-out", type=Path, default=DATA / "sample_study")
    args = parser.parse_args()
    case = sample_phantom_case()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    # 12-bit values in a 16-bit PNG, as a CR export would hold them.
    Image.fromarray(case.stored(12, "MONOCHROME2")).save(args.out / "cxr.png")
    for name, mask in segment_masks(case).items():
        Image.fromarray(mask.astype(np.uint8) * 255).save(args.out / f"{name}_mask.png")
    print(f"wrote sample to {args.out}: {case.report}")
    files = write_sample_study(args.study_out, case)
    print(f"wrote sample study to {args.study_out} ({', '.join(p.name for p in files)})")


if __name__ == "__main__":
    main()
