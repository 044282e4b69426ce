"""Small stress-test sets on phantoms, with edits made by known numpy changes.

* :func:`classification_set`: the manifestation-shift setting of the paper
  (Sec. 5.3) in miniature.  Even sources have an opacity in the right lung and
  a pacemaker, odd sources neither (biased: the device goes with the finding).
  The recipe ``remove-opacity`` takes the opacity out and keeps the pacemaker:
  at guidance 15 completely, at guidance 5 only 30% of it (a dose-response).
  One more edit is filtered out by quality control.
* :func:`segmentation_set`: healthy lungs (NIfTI, 0.5 mm pixels, label-map
  masks), recipes ``add-consolidation`` (a bright patch in the left lung) and
  ``add-edema`` (a slight brightening of both lungs); edits keep the source's
  ORIGINAL masks.
* :func:`dicom_set`: CR images (MONOCHROME1) of a named patient and derived
  DICOM series of their edits, written by radedit_core's DICOM writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radedit_core.imaging.image import Geometry
from radedit_core.imaging.io import write_image
from radedit_core.stress.stress_set import write_stress_set
from radedit_core.synthetic import LABELS, chest_phantom, quantise
from stress_toy_models import CONSOLIDATION, OPACITY_BOX

ROWS, COLS = 96, 80
PATIENT = {"patient_name": "Doe^Jane", "patient_id": "MRN-0042-7731", "patient_birth_date": "19800101"}


def _grid(rows: int = ROWS, cols: int = COLS) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:rows, 0:cols]
    return (yy + 0.5) / rows, (xx + 0.5) / cols


def opacity_mask(rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    y, x = _grid(rows, cols)
    r0, r1, c0, c1 = OPACITY_BOX
    cy, cx, ry, rx = (r0 + r1) / 2, (c0 + c1) / 2, (r1 - r0) / 2 + 0.03, (c1 - c0) / 2 + 0.03
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def consolidation_mask(rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    y, x = _grid(rows, cols)
    cy, cx, ry, rx = CONSOLIDATION
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def _png(path: Path, image01: np.ndarray) -> Path:
    return write_image(path, quantise(image01, 12), Geometry())


def _mask_png(path: Path, mask: np.ndarray) -> Path:
    return write_image(path, mask.astype(np.uint8), Geometry())


def classification_set(folder: Path, sources: int = 10, **set_kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    lesion = opacity_mask()
    for k in range(sources):
        positive = k % 2 == 0
        phantom = chest_phantom(ROWS, COLS, seed=k, pacemaker=positive)
        site = "A" if k < sources // 2 else "B"
        sid = f"case{k:02d}"
        real = np.clip(phantom.image + 0.4 * lesion * positive, 0, 1)
        rows.append({"id": sid, "image": _png(folder / "real" / f"{sid}.png", real), "kind": "real",
                     "label": {"opacity": int(positive)}, "site": site})  # fmt: skip
        if not positive:
            continue
        edit_mask = _mask_png(folder / "masks" / f"{sid}-edit.png", lesion)
        keep_mask = _mask_png(folder / "masks" / f"{sid}-keep.png", phantom.mask("pacemaker"))
        for guidance, left in ((5.0, 0.7), (15.0, 0.0)):
            eid = f"{sid}-no-opacity-g{guidance:g}"
            edited = np.clip(phantom.image + 0.4 * left * lesion, 0, 1)
            rows.append({
                "id": eid, "image": _png(folder / "edits" / f"{eid}.png", edited), "kind": "synthetic",
                "source": sid, "recipe": "remove-opacity", "label": {"opacity": 0},
                "prompt": "No acute cardiopulmonary process", "guidance": guidance, "skip_ratio": 0.3, "seed": 0,
                "edit_mask": edit_mask, "keep_mask": keep_mask, "score": 0.25 + 0.02 * k + 0.01 * guidance,
                "locality": {"ssim_outside_edit": 0.99}, "accepted": True, "reason": "", "site": site,
            })  # fmt: skip
        if k == 0:
            rows.append({"id": f"{sid}-no-opacity-rejected", "kind": "synthetic", "source": sid,
                         "recipe": "remove-opacity", "label": {"opacity": 0}, "guidance": 15.0, "score": 0.12,
                         "accepted": False, "reason": "editing score 0.12 < 0.2", "site": site})  # fmt: skip
    provenance = {"model": {"name": "tiny", "unet_revision": "demo"}, "settings": {"steps": 20, "skip_ratio": 0.3}}
    write_stress_set(folder, rows, task="classification", classes=["opacity"], name="opacity-with-device",
                     qc={"score_threshold": 0.2}, provenance=provenance, **set_kwargs)  # fmt: skip
    return folder


def segmentation_set(folder: Path, sources: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    geometry = Geometry(spacing=(0.5, 0.5))
    blob = consolidation_mask()
    rows = []
    for k in range(sources):
        phantom = chest_phantom(ROWS, COLS, seed=10 + k, pacemaker=False)
        sid = f"lung{k:02d}"
        image = write_image(folder / "real" / f"{sid}.nii.gz", quantise(phantom.image, 12), geometry)
        labels = write_image(folder / "masks" / f"{sid}-labels.nii.gz", phantom.labels.astype(np.uint8), geometry)
        lungs = f"masks/{labels.name}#{LABELS['right_lung']},{LABELS['left_lung']}"
        rows.append({"id": sid, "image": image, "kind": "real", "mask_lungs": lungs, "sex": "F" if k % 2 else "M"})
        lung_region = phantom.mask("right_lung", "left_lung")
        for recipe, change in (("add-consolidation", 0.45 * blob), ("add-edema", 0.05 * lung_region)):
            eid = f"{sid}-{recipe}"
            edited = write_image(folder / "edits" / f"{eid}.nii.gz", quantise(np.clip(phantom.image + change, 0, 1), 12), geometry)
            rows.append({"id": eid, "image": edited, "kind": "synthetic", "source": sid, "recipe": recipe,
                         "mask_lungs": lungs, "score": 0.3, "sex": "F" if k % 2 else "M"})  # fmt: skip
    write_stress_set(folder, rows, task="segmentation", classes=["lungs"], name="lungs-population-shift")
    return folder


def dicom_set(folder: Path) -> Path:
    """CR sources of one named patient (header attributes of :data:`PATIENT`) and derived-series edits.

    The ids of the first source and its edit contain the PatientID (a builder naming
    rows after the archive's ids), a ``PatientID`` column repeats it and the builder's
    provenance note names the patient: the report must show none of them.
    """
    from radedit_core.dicom import read_dicom_image, write_derived_series
    from radedit_core.dicom.synthetic import StudyInfo, make_cxr
    from radedit_core.workflow import make_edit_result

    folder.mkdir(parents=True, exist_ok=True)
    study = StudyInfo.new("stress-privacy", **PATIENT)
    lesion = opacity_mask()
    rows = []
    for k in range(4):
        positive = k % 2 == 0
        cxr = make_cxr("CR", rows=ROWS, columns=COLS, photometric="MONOCHROME1", bits_stored=12, study=study,
                       series_number=k + 1, seed=k, pacemaker=positive, uid_seed=f"stress-privacy-{k}")  # fmt: skip
        sid = f"{PATIENT['patient_id']}-{k}" if k == 0 else f"cr{k}"
        path = cxr.save(folder / "real" / f"cr{k}.dcm")
        source = read_dicom_image(path)
        lo, hi = source.value_range
        span = hi - lo
        real_values = source.array.astype(np.float64) + 0.4 * span * lesion * positive
        if positive:
            # The finding is part of the "real" image: store it in a copy of the instance.
            ds = cxr.dataset
            stored = np.clip(real_values, lo, hi)
            stored = (hi + lo - stored) if source.monochrome1 else stored
            ds.PixelData = stored.astype(np.uint16).tobytes()
            path = cxr.save(folder / "real" / f"cr{k}.dcm")
            source = read_dicom_image(path)
        rows.append({"id": sid, "image": path, "kind": "real", "label": {"opacity": int(positive)},
                     "PatientID": PATIENT["patient_id"]})  # fmt: skip
        if positive:
            edited = np.clip(source.array.astype(np.float64) - 0.4 * span * lesion, lo, hi)
            result = make_edit_result(source, np.rint(edited), edit_mask=lesion)
            out = write_derived_series(result, folder / "edits" / f"cr{k}-no-opacity")
            rows.append({"id": f"{sid}-no-opacity", "image": out[0].parent, "kind": "synthetic", "source": sid,
                         "recipe": "remove-opacity", "label": {"opacity": 0}, "score": 0.3,
                         "PatientID": PATIENT["patient_id"]})  # fmt: skip
    write_stress_set(folder, rows, task="classification", classes=["opacity"], name="dicom-privacy",
                     provenance={"note": f"edits of {PATIENT['patient_name']}'s study"})  # fmt: skip
    return folder
