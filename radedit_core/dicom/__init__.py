"""DICOM in, derived DICOM series out.

* :func:`read_dicom_image`: a CR, DX or secondary-capture chest X-ray from a
  file, a series folder or a study folder, as a :class:`SourceImage` in
  MONOCHROME2 polarity (see :mod:`radedit_core.dicom.reading`).
* :func:`read_dicom_mask`: chosen segments of a DICOM SEG that references the
  image (see :mod:`radedit_core.dicom.seg`).
* :func:`write_derived_series`: the edit as a new derived series of the same
  study, optionally with a SEG of the masks (see :mod:`radedit_core.dicom.writing`).
* :mod:`radedit_core.dicom.synthetic`: synthetic CR/DX/SC instances and studies.
* :mod:`radedit_core.dicom.validate`: ``dciodvfy`` on written files.
"""

from __future__ import annotations

from .reading import locate_dicom_image, read_dicom_dataset, read_dicom_image, scan_folder
from .seg import read_dicom_mask
from .sop import EDITABLE_SOP_CLASSES, SEGMENTATION
from .writing import DerivedSeries, choose_series_number, derived_voi, write_derived_series

__all__ = [
    "DerivedSeries",
    "EDITABLE_SOP_CLASSES",
    "SEGMENTATION",
    "choose_series_number",
    "derived_voi",
    "locate_dicom_image",
    "read_dicom_dataset",
    "read_dicom_image",
    "read_dicom_mask",
    "scan_folder",
    "write_derived_series",
]
