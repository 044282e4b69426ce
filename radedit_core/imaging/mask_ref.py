"""Mask references: which file (or PACS series) holds a mask, and which of its labels make it.

Every front end names masks with the same syntaxes, parsed here once
(:func:`parse_mask_ref`):

* ``PATH``: every non-zero pixel of a label map, every segment of a SEG or
  Slicer segmentation;
* ``PATH#LABELS`` (or ``PATH::LABELS``, which is what MONAI's config parser
  makes of a ``#``): only those labels, comma-separated: DICOM SEG segment
  labels or numbers, Slicer segment names or IDs, label-map values. A path
  that exists as written is never split, so a file whose name holds ``#``
  still works;
* ``study:SERIES_UID[:LABEL]``: a DICOM SEG stored in the same study on a
  PACS (``radedit pacs-edit`` only);
* labels given separately (``--edit-labels``) are joined to the reference's.

A :class:`MaskRef` goes wherever a mask path goes; ``str()`` is how
provenance records it (``seg.dcm [labels: lungs]``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_NONE = ("none", "null")


class MaskRef(os.PathLike):
    """A mask file (or a SEG series of a PACS study) and the labels that make the mask."""

    def __init__(self, path: str | Path | None, select: Any = None, series_uid: str | None = None):
        self.path = None if path is None else Path(path)
        self.select = select
        self.series_uid = series_uid

    @property
    def labels(self) -> list[str] | None:
        """The chosen labels as a list, or None for all."""
        if self.select is None:
            return None
        items = [self.select] if isinstance(self.select, (str, int)) else list(self.select)
        return [str(t).strip() for item in items for t in str(item).split(",") if str(t).strip()] or None

    def __fspath__(self) -> str:
        if self.path is None:
            raise TypeError(f"{self} is a PACS series, not a file")
        return str(self.path)

    def __str__(self) -> str:
        where = f"study:{self.series_uid}" if self.path is None else str(self.path)
        if self.select is None:
            return where
        shown = self.select if isinstance(self.select, (str, int)) else ", ".join(map(str, self.select))
        return f"{where} [labels: {shown}]"

    def spec(self) -> str:
        """The reference in the ``PATH#LABELS`` syntax (what datalists and sidecars hold)."""
        where = f"study:{self.series_uid}" if self.path is None else str(self.path)
        labels = self.labels
        return where if labels is None else f"{where}{':' if self.path is None else '#'}{','.join(labels)}"

    def __repr__(self) -> str:
        return f"MaskRef({None if self.path is None else str(self.path)!r}, select={self.select!r}, series_uid={self.series_uid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskRef) and (self.path, self.labels, self.series_uid) == (
            other.path,
            other.labels,
            other.series_uid,
        )

    def __hash__(self) -> int:
        return hash((self.path, str(self.labels), self.series_uid))


def parse_mask_ref(
    value: Any,
    labels: Sequence[str] | str | None = None,
    *,
    name: str = "mask",
    base: str | Path | None = None,
    allow_study: bool = False,
) -> MaskRef | None:
    """Parse one mask reference (see the module docstring); ``None``, ``""``, ``none`` -> None.

    ``labels``: labels given separately (``--edit-labels``), joined to those of
    the reference. ``base``: folder that relative paths are relative to (a
    datalist's folder). ``allow_study``: accept ``study:SERIES_UID[:LABEL]``.

    Raises:
        ConfigError: naming ``name``, for labels without a mask, a malformed
            study reference, or a study reference where none is possible.
    """
    extra = None if labels is None else MaskRef(None, labels).labels
    if isinstance(value, MaskRef):
        ref = value
    elif value is None or (isinstance(value, str) and value.strip().lower() in ("", *_NONE)):
        if extra:
            raise ConfigError(f"{name}: labels {','.join(extra)} were given but no mask")
        return None
    else:
        text = os.fspath(value) if isinstance(value, os.PathLike) else str(value).strip()
        ref = _parse_text(text, name, base, allow_study)
    if extra:
        ref = MaskRef(ref.path, (ref.labels or []) + extra, ref.series_uid)
    return ref


def _parse_text(text: str, name: str, base: str | Path | None, allow_study: bool) -> MaskRef:
    if text.startswith("study:"):
        if not allow_study:
            raise ConfigError(f"{name} {text!r}: study:SERIES_UID references name a SEG on a PACS (radedit pacs-edit)")
        series, _, label = text[len("study:") :].partition(":")
        if not _UID.match(series) or len(series) > 64:
            raise ConfigError(f"{name} {text!r}: expected study:SEG_SERIES_UID[:segment label]")
        return MaskRef(None, label.strip() or None, series_uid=series)

    def resolved(path: str) -> Path:
        p = Path(path).expanduser()
        return p if base is None or p.is_absolute() else Path(base) / p

    if resolved(text).exists():
        return MaskRef(resolved(text))
    for separator in ("::", "#"):
        if separator in text:
            path, select = text.rsplit(separator, 1)
            return MaskRef(resolved(path.strip()), select.strip() or None)
    return MaskRef(resolved(text))


__all__ = ["MaskRef", "parse_mask_ref"]
