"""SOP classes radedit reads and writes, and what each one implies."""

from __future__ import annotations

from pydicom.uid import UID

CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")
DX_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
DX_FOR_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.1.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MF_GRAYSCALE_BYTE_SC = UID("1.2.840.10008.5.1.4.1.1.7.2")
MF_GRAYSCALE_WORD_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")
SEGMENTATION = UID("1.2.840.10008.5.1.4.1.1.66.4")

#: Chest X-ray image SOP classes radedit edits (single-frame 2D grayscale).
EDITABLE_SOP_CLASSES = frozenset(
    {CR_IMAGE, DX_FOR_PRESENTATION, DX_FOR_PROCESSING, SECONDARY_CAPTURE, MF_GRAYSCALE_BYTE_SC, MF_GRAYSCALE_WORD_SC}
)
DX_SOP_CLASSES = frozenset({DX_FOR_PRESENTATION, DX_FOR_PROCESSING})
SC_SOP_CLASSES = frozenset({SECONDARY_CAPTURE, MF_GRAYSCALE_BYTE_SC, MF_GRAYSCALE_WORD_SC})
MULTIFRAME_SC_SOP_CLASSES = frozenset({MF_GRAYSCALE_BYTE_SC, MF_GRAYSCALE_WORD_SC})


def sop_class_name(uid: str | None) -> str:
    """'Computed Radiography Image Storage' for a known UID, else the UID itself."""
    if not uid:
        return "no SOP Class UID"
    name = UID(str(uid)).name
    return name if name and name != str(uid) else str(uid)


__all__ = [
    "CR_IMAGE",
    "DX_FOR_PRESENTATION",
    "DX_FOR_PROCESSING",
    "DX_SOP_CLASSES",
    "EDITABLE_SOP_CLASSES",
    "MF_GRAYSCALE_BYTE_SC",
    "MF_GRAYSCALE_WORD_SC",
    "MULTIFRAME_SC_SOP_CLASSES",
    "SC_SOP_CLASSES",
    "SECONDARY_CAPTURE",
    "SEGMENTATION",
    "sop_class_name",
]
