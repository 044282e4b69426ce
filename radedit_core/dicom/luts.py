"""Modality and VOI LUT items (PS3.3 C.11.1.1 and C.11.2.1.1): read and re-encode.

A LUT item holds LUT Descriptor (entries, first input value mapped, bits per
entry) and LUT Data.  What archives hold, and this module reads:

* entries: 0 means 65536;
* first value mapped: US or SS; a US value above 32767 in a signed image is
  the two's complement of a negative input (C.11.2.1.1);
* bits per entry 8 or 16 (10..16 occur in DX, C.8.11.3.1.5);
* LUT Data as US (values) or OW (bytes in the data set's byte order, so a
  big-endian file's OW must be swapped); with 8-bit entries either one entry
  per 16-bit word or, as "8 bits allocated", two entries packed in each word
  (low byte first), told apart by the number of words.

Writers never copy a LUT item's bytes: :func:`encode_lut_item` builds a new
item from the entry values, little endian (US when it fits the 16-bit length
of explicit VR US, else OW): 16-bit entries one per word, 8-bit entries two
per word as C.11.2.1.1 wants (an odd count gets its last entry repeated:
inputs past the end map to the last entry anyway).  Widening 8-bit entries
to 16 bits (x 257) keeps the displayed image the same, since the VOI output
range is scaled to the display range (PS3.4 N.2.1.1); the DX IOD needs it
(C.8.11.3.1.5 allows 10 to 16 bits per VOI LUT entry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset

#: Explicit VR US values have a 16-bit length field: at most 32767 words.
_MAX_US_WORDS = 0xFFFE // 2


@dataclass(frozen=True)
class Lut:
    """A decoded LUT: ``entries[k]`` is the output for input ``first + k``."""

    first: int
    bits: int
    entries: np.ndarray  # int64
    explanation: str | None = None

    def apply(self, values: np.ndarray | float) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        index = np.clip(np.rint(values - self.first), 0, len(self.entries) - 1).astype(int)
        return self.entries[index]


def is_little_endian(ds: Dataset) -> bool:
    """The byte order the data set was read in (file meta, else what the parser detected)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        uid = pydicom.uid.UID(str(syntax))
        if uid.is_transfer_syntax:
            return bool(uid.is_little_endian)
    encoding = getattr(ds, "original_encoding", (None, None))
    return encoding[1] is not False


def _words(item: Dataset, little_endian: bool) -> np.ndarray:
    data = item["LUTData"].value
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little_endian else ">u2").astype(np.int64)
    if isinstance(data, (list, tuple, pydicom.multival.MultiValue)):
        return np.asarray([int(v) for v in data], dtype=np.int64)
    return np.asarray([int(data)], dtype=np.int64)


def read_lut(item: Dataset, little_endian: bool, signed_input: bool) -> Lut:
    """Decode one Modality or VOI LUT item.

    Args:
        item: the sequence item (LUTDescriptor, LUTData, optional LUTExplanation).
        little_endian: the byte order of the data set it came from (for OW data).
        signed_input: the LUT's input is signed (PixelRepresentation 1, or a
            modality output that can be negative): a first value mapped read
            as US above 32767 is then negative.

    Raises:
        ValueError: a malformed descriptor or LUT Data of a length that fits
            neither one entry per word nor two.
    """
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or len(descriptor) != 3:
        raise ValueError("LUT Descriptor must have 3 values")
    count, first, bits = (int(v) for v in descriptor)
    count = count or 65536
    if signed_input and item["LUTDescriptor"].VR != "SS" and first > 32767:
        first -= 65536
    if not 8 <= bits <= 16:
        raise ValueError(f"LUT Descriptor gives {bits} bits per entry; PS3.3 C.11.2.1.1 allows 8 or 16")
    if "LUTData" not in item:
        raise ValueError("LUT Data is missing")
    words = _words(item, little_endian)
    if len(words) >= count:
        entries = words[:count]
    elif bits == 8 and len(words) == (count + 1) // 2:
        # "Equivalent to 8 bits allocated": two entries per word, the first in the low byte.
        entries = np.stack([words & 0xFF, words >> 8], axis=1).ravel()[:count]
    else:
        raise ValueError(f"LUT Data holds {len(words)} words for {count} entries of {bits} bits")
    if entries.size and int(entries.max()) >= 1 << bits:
        raise ValueError(f"LUT Data holds values up to {int(entries.max())}, beyond its {bits} bits per entry")
    explanation = item.get("LUTExplanation")
    return Lut(first=first, bits=bits, entries=entries.astype(np.int64), explanation=explanation and str(explanation))


def widen(lut: Lut, bits: int = 16) -> Lut:
    """The same LUT with ``bits``-bit entries scaled to the wider output range (displays the same)."""
    if lut.bits >= bits:
        return lut
    scale = ((1 << bits) - 1) / ((1 << lut.bits) - 1)
    return Lut(lut.first, bits, np.rint(lut.entries * scale).astype(np.int64), lut.explanation)


def encode_lut_item(lut: Lut, source_item: Dataset | None = None) -> Dataset:
    """A new LUT item for a little-endian data set (see the module docstring).

    ``source_item``'s other attributes (LUTExplanation, ModalityLUTType) are
    kept; its LUT Descriptor and LUT Data are rebuilt from ``lut``.
    """
    item = Dataset()
    if source_item is not None:
        for element in source_item:
            if element.keyword not in ("LUTDescriptor", "LUTData"):
                item.add(element)
    entries = np.asarray(lut.entries, dtype=np.int64)
    if lut.bits <= 8:
        if entries.size % 2:
            entries = np.append(entries, entries[-1])
        words = entries[0::2] | (entries[1::2] << 8)  # first entry in the low byte
    else:
        words = entries
    count = entries.size
    item.LUTDescriptor = [count if count < 65536 else 0, int(lut.first), int(lut.bits)]
    item["LUTDescriptor"].VR = "SS" if lut.first < 0 else "US"
    values = words.astype("<u2")
    if values.size <= _MAX_US_WORDS:
        item.LUTData = [int(v) for v in values]
        item["LUTData"].VR = "US"
    else:
        item.LUTData = values.tobytes()
        item["LUTData"].VR = "OW"
    return _sorted(item)


def _sorted(item: Dataset) -> Dataset:
    out = Dataset()
    for element in sorted(item, key=lambda e: e.tag):
        out.add(element)
    return out


__all__ = ["Lut", "encode_lut_item", "is_little_endian", "read_lut", "widen"]
