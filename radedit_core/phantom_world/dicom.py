"""Phantom-world cases as DICOM: a CR image per case and, optionally, a SEG of its structures.

The CR instance is built by :func:`radedit_core.dicom.synthetic.make_cxr`
(whose modules and attributes validate with ``dciodvfy``) and then given the
case's pixels and acquisition: 12 bits stored in the site's photometric
interpretation (MONOCHROME1 stores ``4095 - v``), ImagerPixelSpacing from
the site's field of view, a full-range VOI window (so that a reader maps the
whole stored range to model space, as for the PNG output), the site's
manufacturer, institution and station, and the report impression in Image
Comments.  UIDs derive from a seed
text, so a data set written twice is the same byte for byte.

The SEG (PS3.3 A.51) holds one segment per non-empty structure mask and
references the CR image; it is built by
:func:`radedit_core.dicom.synthetic.make_seg_dataset` (highdicom).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from .world import Case


def case_study_info(case_id: str, uid_seed: str):
    """Patient and study attributes of one case (each case is its own patient and study)."""
    from ..dicom.synthetic import StudyInfo  # noqa: PLC0415

    return StudyInfo.new(
        uid_seed,
        patient_name=f"Phantom^{case_id}",
        patient_id=case_id,
        accession_number=case_id.replace("_", "")[-16:],
        study_description="Chest X-ray (phantom world)",
        study_id="1",
    )


def case_to_dicom(case: Case, case_id: str, uid_seed: str) -> Dataset:
    """The CR instance of a case (see the module docstring)."""
    from ..dicom.synthetic import make_cxr  # noqa: PLC0415

    storage = case.storage
    acq = case.parameters.acquisition
    cxr = make_cxr(
        "CR",
        rows=64,
        columns=64,
        photometric=storage.photometric,
        bits_stored=storage.bits_stored,
        study=case_study_info(case_id, uid_seed),
        series_description=f"PA chest, site {case.site}",
        pixel_spacing=storage.pixel_spacing_mm,
        pacemaker=False,
        private_tags=False,
        uid_seed=uid_seed,
    )
    ds = cxr.dataset
    stored = case.stored()
    ds.Rows, ds.Columns = stored.shape
    ds.PixelData = np.ascontiguousarray(stored.astype("<u2")).tobytes()
    ds["PixelData"].VR = "OW"
    top = (1 << storage.bits_stored) - 1
    ds.WindowCenter = (top + 1) / 2.0
    ds.WindowWidth = float(top + 1)
    ds.WindowCenterWidthExplanation = "FULL RANGE"
    ds.ImagerPixelSpacing = [round(storage.pixel_spacing_mm, 6)] * 2
    ds.Manufacturer = acq.manufacturer or "RadEdit phantom world"
    ds.ManufacturerModelName = "phantom_world"
    ds.InstitutionName = acq.institution or f"Site {case.site}"
    ds.StationName = acq.station or case.site
    ds.ImageComments = case.report[:10240]
    return ds


def case_seg(case: Case, image: Dataset, uid_seed: str) -> Dataset:
    """A DICOM SEG with one segment per non-empty structure mask of ``case``, referencing ``image``."""
    from ..dicom.synthetic import make_seg_dataset  # noqa: PLC0415

    masks = {name: mask for name, mask in case.masks.items() if mask.any()}
    return make_seg_dataset(image, masks, series_number=100, series_description="Phantom world structures", uid_seed=uid_seed)


__all__ = ["case_seg", "case_study_info", "case_to_dicom"]
