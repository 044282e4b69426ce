"""SOP classes radedit reads and writes, and what each one implies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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

#: General Equipment of every instance radedit writes (Manufacturer, Manufacturer's Model Name).
RADEDIT_MANUFACTURER = "radedit_core"
RADEDIT_MODEL_NAME = "RadEdit"
#: How radedit's DerivationDescription of an edited image begins.
RADEDIT_DERIVATION_PREFIX = "RadEdit diffusion edit"


def sop_class_name(uid: str | None) -> str:
    """'Computed Radiography Image Storage' for a known UID, else the UID itself."""
    if not uid:
        return "no SOP Class UID"
    name = UID(str(uid)).name
    return name if name and name != str(uid) else str(uid)


def describe_instances(items: Sequence[Any], limit: int = 8) -> str:
    """``a; b; ...; and N more`` from objects with ``describe()``, for error messages."""
    shown = "; ".join(item.describe() for item in items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def count_sop_classes(uids: Iterable[str | None]) -> str:
    """``2 Computed Radiography Image Storage, 1 Segmentation Storage``, or ``nothing``."""
    counts: dict[str, int] = {}
    for uid in uids:
        name = sop_class_name(uid)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "nothing"


__all__ = [
    "count_sop_classes",
    "describe_instances",
    "CR_IMAGE",
    "DX_FOR_PRESENTATION",
    "DX_FOR_PROCESSING",
    "DX_SOP_CLASSES",
    "EDITABLE_SOP_CLASSES",
    "MF_GRAYSCALE_BYTE_SC",
    "MF_GRAYSCALE_WORD_SC",
    "MULTIFRAME_SC_SOP_CLASSES",
    "RADEDIT_DERIVATION_PREFIX",
    "RADEDIT_MANUFACTURER",
    "RADEDIT_MODEL_NAME",
    "SC_SOP_CLASSES",
    "SECONDARY_CAPTURE",
    "SEGMENTATION",
    "sop_class_name",
]
