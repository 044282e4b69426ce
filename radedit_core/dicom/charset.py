"""Specific Character Set of the files radedit writes (PS3.3 C.12.1.1.2, PS3.5 Sec. 6.1).

A derived image or SEG keeps its source's Specific Character Set when that
set can encode every text radedit adds (descriptions, labels), so that the
patient and study attributes it copies keep their bytes' meaning; otherwise
it is written in UTF-8 (``ISO_IR 192``), which encodes everything.  Encoding
is pydicom's (:mod:`pydicom.charset`), escape sequences included for the
ISO 2022 code extensions.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import pydicom
from pydicom.dataset import Dataset

UTF8 = "ISO_IR 192"


def _values(charset: Any) -> list[str]:
    return [charset] if isinstance(charset, str) else list(charset or [])


def output_character_set(src: Dataset, texts: Iterable[str]) -> Any:
    """The source's SpecificCharacterSet (str, list or None) if it encodes ``texts``, else ``"ISO_IR 192"``."""
    charset = src.get("SpecificCharacterSet")
    encodings = pydicom.charset.convert_encodings(_values(charset) or ["ISO_IR 6"])
    for text in texts:
        if not any(_encodable(text, enc) for enc in encodings):
            return UTF8
    return charset


def encoded_size(charset: Any) -> Callable[[str], int]:
    """The number of bytes a text takes in ``charset`` (a SpecificCharacterSet value; None: ASCII)."""
    encodings = pydicom.charset.convert_encodings(_values(charset) or ["ISO_IR 6"])
    return lambda text: len(pydicom.charset.encode_string(text, encodings))


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8."""
    return len(text.encode("utf-8"))


def fit_text(text: str, limit: int, size: Callable[[str], int] = utf8_size, ellipsis: str = "...") -> str:
    """``text`` cut at a character boundary (ending in ``ellipsis``) so that ``size(text) <= limit``.

    DICOM's length limits of text VRs (LO 64, ST 1024, ...) count the encoded bytes (dciodvfy
    does, and pydicom warns on reading a longer value): ``size`` measures them, by default in
    UTF-8, the encoding the writer falls back to, which takes at least as many bytes as the
    single-byte character sets.
    """
    if size(text) <= limit:
        return text
    keep = len(text)
    while keep > 0 and size(text[:keep].rstrip() + ellipsis) > limit:
        keep -= max(1, (size(text[:keep]) - limit) // 4)  # coarse steps first, then one character at a time
    return text[:keep].rstrip() + ellipsis


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


__all__ = ["UTF8", "encoded_size", "fit_text", "output_character_set", "utf8_size"]
