"""Problems a derived instance inherits from its source, found when the source is read.

The writer (:mod:`radedit_core.dicom.writing`) copies the patient and study
modules, the pixel spacing, anatomy, positioning and technique attributes
unchanged: they describe the same patient and exposure, and radedit never
"repairs" them with values it would have to invent.  When such an attribute
is invalid in the source, the derived instance carries the same error.
:func:`inherited_problems` lists each one as a one-line note (it goes to
``SourceImage.metadata["notes"]``, and from there to the sidecar and the
console), naming the attribute by its keyword so that a ``dciodvfy`` error on
the output can be traced to it.

Checked: values against their VR (pydicom's validators: DA, TM, UI, CS, ...
formats and lengths) in every copied element, including sequence items;
empty Type 1 code item attributes; non-positive pixel spacings; and the Type
1 attributes of the DX modules the writer copies but cannot supply
(ImageLaterality, AnatomicRegionSequence, ImagerPixelSpacing).
"""

from __future__ import annotations

from typing import Iterable

import pydicom
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from .attributes import ACQUISITION_EQUIPMENT, UNPAIRED_BODY_PARTS, copied_keywords
from .luts import Lut
from .sop import DX_SOP_CLASSES

_CODE_ITEM_TYPE1 = ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")
_SPACINGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
#: DX Anatomy Imaged / DX Detector attributes of Type 1 that only the source can give.
_DX_TYPE1 = ("ImageLaterality", "AnatomicRegionSequence", "ImagerPixelSpacing")
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def _value_problem(element: pydicom.DataElement, name: str) -> str | None:
    if element.VR not in _TEXT_VRS or element.value in (None, ""):
        return None
    values = element.value if isinstance(element.value, (list, tuple, pydicom.multival.MultiValue)) else [element.value]
    for value in values:
        text = str(value)
        try:
            validate_value(element.VR, text, config.RAISE)
        except ValueError as exc:
            return f"{name} value {text!r} is not a valid {element.VR} ({str(exc).strip().rstrip('.')})"
    return None


def _walk(element: pydicom.DataElement, path: str) -> Iterable[str]:
    if element.VR == "SQ":
        for index, item in enumerate(element.value or []):
            where = f"{path}[{index + 1}]"
            if element.keyword.endswith("CodeSequence") or element.keyword == "AnatomicRegionSequence":
                for keyword in _CODE_ITEM_TYPE1:
                    if not str(item.get(keyword, "") or "").strip() and not (
                        keyword == "CodeValue" and ("LongCodeValue" in item or "URNCodeValue" in item)
                    ):
                        yield f"{where}.{keyword} is missing or empty (Type 1 in a code item)"
            for child in item:
                yield from _walk(child, f"{where}.{child.keyword or child.tag}")
        return
    problem = _value_problem(element, path)
    if problem is not None:
        yield problem


def _spacing_problem(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value] if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else []
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) == 2 and min(numbers) > 0:
        return None
    shown = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else value
    return f"{keyword} '{shown}' is not two positive numbers; the reader ignores it"


def inherited_problems(ds: Dataset, voi_lut: Lut | None = None) -> list[str]:
    """One note per problem the derived instance inherits from ``ds`` (see the module docstring).

    ``voi_lut``: the source's first VOI LUT item as the reader decoded it
    (:func:`radedit_core.dicom.reading.voi_lut`), None when it has none or it
    cannot be read.
    """
    sop_class = str(ds.get("SOPClassUID", ""))
    problems: list[str] = []
    for keyword in copied_keywords(sop_class):
        if keyword in _SPACINGS:
            if (problem := _spacing_problem(ds, keyword)) is not None:
                problems.append(problem)
            continue
        if keyword in ds:
            problems.extend(_walk(ds[keyword], keyword))
    problems.extend(_laterality_problems(ds, sop_class))
    notes = _equipment_notes(ds) + _lut_notes(voi_lut, sop_class)
    if sop_class in DX_SOP_CLASSES:
        for keyword in _DX_TYPE1:
            value = ds.get(keyword)
            if value is None or (not isinstance(value, pydicom.sequence.Sequence) and str(value).strip() == ""):
                problems.append(f"{keyword} is missing or empty (Type 1 in the DX IOD)")
            elif isinstance(value, pydicom.sequence.Sequence) and len(value) == 0:
                problems.append(f"{keyword} is empty (Type 1 in the DX IOD)")
    suffix = "; inherited from the source and copied unchanged into a derived image"
    return [problem + suffix for problem in dict.fromkeys(problems)] + notes


def _lut_notes(lut: Lut | None, sop_class: str) -> list[str]:
    """VOI LUTs the derived image re-encodes differently (the displayed image stays the same)."""
    if sop_class not in DX_SOP_CLASSES or lut is None or lut.bits >= 10:
        return []
    return [
        f"VOI LUT with {lut.bits}-bit entries in a DX image (C.8.11.3.1.5 wants 10 to 16): a derived image gets "
        "the same LUT with 16-bit entries (x 257), which displays the same"
    ]


def _laterality_problems(ds: Dataset, sop_class: str) -> list[str]:
    """General Series Laterality against its Type 2C condition (paired body part, no Image Laterality)."""
    if sop_class in DX_SOP_CLASSES and str(ds.get("ImageLaterality", "") or "").strip():
        return []  # the writer keeps Image Laterality only, as the DX IOD wants
    part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if "Laterality" in ds and part in UNPAIRED_BODY_PARTS:
        return [f"Laterality '{ds.Laterality}' is present although BodyPartExamined {part} is unpaired (Type 2C)"]
    if "Laterality" not in ds and part not in UNPAIRED_BODY_PARTS:
        shown = f"BodyPartExamined {part}" if part else "no BodyPartExamined"
        return [f"Laterality is missing with {shown} (Type 2C: required unless the body part is unpaired)"]
    return []


def _equipment_notes(ds: Dataset) -> list[str]:
    """What of the source's equipment cannot be listed in a derived image's Contributing Equipment."""
    notes = []
    if not str(ds.get("Manufacturer", "") or "").strip():
        known = [f"{k} '{ds.get(k)}'" for k in ACQUISITION_EQUIPMENT if str(ds.get(k, "") or "").strip()]
        if known:
            notes.append(
                "Manufacturer is empty, so the acquisition equipment (" + ", ".join(known) + ") is not listed in "
                "the derived image's ContributingEquipmentSequence, where Manufacturer is Type 1 and radedit "
                "does not invent one"
            )
    for index, item in enumerate(ds.get("ContributingEquipmentSequence") or [], start=1):
        if not str(item.get("Manufacturer", "") or "").strip() or not item.get("PurposeOfReferenceCodeSequence"):
            notes.append(
                f"ContributingEquipmentSequence item {index} lacks Manufacturer or its purpose (both Type 1): "
                "not carried into the derived image"
            )
    return notes


__all__ = ["copied_keywords", "inherited_problems"]
