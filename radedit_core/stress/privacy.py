"""Keeping patient attributes out of what a stress test shares.

A report is meant to be sent to colleagues, so it must not carry the patient
attributes of the images it describes.  The report is built only from figures,
pixels, row ids, recipe names and subgroup values, never from DICOM headers;
as a second line of defence :class:`Scrubber` replaces, in every piece of text
that goes into it, any patient identifier found in the set's DICOM headers (a
row id or a builder's provenance note that happens to contain a PatientID,
for instance).  The attributes are those of the DICOM basic de-identification
profile's direct identifiers (PS3.15 Annex E) that can appear as text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

#: DICOM keywords whose values identify a patient (PS3.15 Table E.1-1, the text-valued direct
#: identifiers).  Institution names are left alone: a site is a legitimate subgroup (acquisition shift).
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AccessionNumber",
    "IssuerOfPatientID",
)
#: Shorter values (an ID "12") cannot be told apart from ordinary numbers and words in a report.
MIN_IDENTIFIER_LENGTH = 4
REDACTED = "[redacted]"


def _values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [s for v in value for s in _values(v)]
    text = str(value).strip()
    if not text:
        return []
    out = [text]
    if "^" in text or " " in text:  # person names: each component, and "Given Family"
        parts = [p for p in re.split(r"[\^ ]+", text) if p]
        out.extend(parts)
        out.append(" ".join(reversed(parts[:2])))
    if re.fullmatch(r"\d{8}", text):  # DA: 19800101 also as 1980-01-01
        out.append(f"{text[:4]}-{text[4:6]}-{text[6:]}")
    return out


def dicom_identifiers(path: Path) -> set[str]:
    """Identifying values in the header of a DICOM file or series folder (empty for other files)."""
    import pydicom  # noqa: PLC0415

    from ..imaging.io import image_format  # noqa: PLC0415

    try:
        if image_format(path) != "dicom":
            return set()
        if path.is_dir():
            from ..dicom import locate_dicom_image  # noqa: PLC0415

            path, _ = locate_dicom_image(path)
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(IDENTIFYING_KEYWORDS))
    except Exception:  # noqa: BLE001 - unreadable files were reported when the set was evaluated
        return set()
    found: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:
        found.update(_values(ds.get(keyword)))
    return {v for v in found if len(v) >= MIN_IDENTIFIER_LENGTH}


class Scrubber:
    """Replaces known identifiers in text (case-insensitive) with ``[redacted]``."""

    def __init__(self, identifiers: Iterable[str] = ()):
        words = sorted({w for w in identifiers if len(w) >= MIN_IDENTIFIER_LENGTH}, key=len, reverse=True)
        self.identifiers = words
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None

    @classmethod
    def for_images(cls, paths: Iterable[Path | None]) -> "Scrubber":
        found: set[str] = set()
        for path in paths:
            if path is not None and Path(path).exists():
                found |= dicom_identifiers(Path(path))
        return cls(found)

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(REDACTED, value)

    def contains(self, value: str) -> bool:
        return self._pattern is not None and self._pattern.search(value) is not None


__all__ = ["IDENTIFYING_KEYWORDS", "MIN_IDENTIFIER_LENGTH", "REDACTED", "Scrubber", "dicom_identifiers"]
