"""The provenance sidecar: what went into an output, built in one place.

Every front end's sidecar has the same core (tool, version, creation time,
input and its hash, masks, model sources and revisions, settings, the
model-space transform, the result's figures and timings, notes); front ends
and writers add their own block (``output``, ``dicom``, ``batch``,
``worker``, ``pacs``) as returned values, never by editing the dictionary
from elsewhere.  Sidecars are strict JSON (:func:`radedit_core.fileio.to_json`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
from pathlib import Path
from typing import Any

from ._version import __version__

log = logging.getLogger("radedit")

METHOD = "RadEdit (Pérez-García, Bond-Taylor et al., ECCV 2024)"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256(path: Path | None) -> str | None:
    """Hex digest of a file's bytes (None for folders and missing files)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header() -> dict[str, Any]:
    return {"tool": "radedit_core", "version": __version__, "created": now(), "method": METHOD}


def image_notes(*images: Any) -> list[str]:
    """Notes readers left on images (``metadata["notes"]``: interpretations, accepted conventions,
    problems inherited from the source), in order, without repeats."""
    notes: list[str] = []
    for image in images:
        for note in (getattr(image, "metadata", None) or {}).get("notes", []) or []:
            if note not in notes:
                notes.append(str(note))
    return notes


def edit_provenance(
    result: Any,
    settings: Any,
    model: dict[str, Any],
    mask_refs: tuple[Any, Any] = (None, None),
) -> dict[str, Any]:
    """The sidecar of an edit (an :class:`~radedit_core.workflow.EditResult`), before any output block."""
    image = result.source
    changed = int((result.image.array != image.array).sum())
    prov = {
        **header(),
        "input": {
            "path": None if image.path is None else str(image.path),
            "format": image.format,
            "shape": list(image.shape),
            "dtype": str(image.dtype),
            # A floating-point image has no stored range: (-inf, inf), which strict JSON cannot hold.
            "value_range": [v if math.isfinite(v) else None for v in image.value_range],
            "window": None if image.window is None else list(image.window),
            "sha256": sha256(image.path),
        },
        "masks": {
            "edit": None if mask_refs[0] is None else str(mask_refs[0]),
            "keep": None if mask_refs[1] is None else str(mask_refs[1]),
            "dilate_px": settings.dilate,
            "rule": "mean" if settings.soft_masks else "any",
            **result.masks.summary(),
        },
        "model": model,
        "settings": settings.to_dict(),
        "text": result.text,
        "transform": {
            "crop_row_col_size": list(result.transform.crop),
            "model_size": result.transform.model_size,
            "intensity_low": result.transform.low,
            "intensity_high": result.transform.high,
        },
        "result": {
            "unet_evaluations": result.unet_evaluations,
            "unet_calls": result.unet_calls,
            "changed_pixels": changed,
            "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        },
        "compositing": dict(getattr(result, "compositing", None) or {}),
        "locality": locality(result),
        "notes": list(result.notes),
    }
    return prov


def locality(result: Any) -> dict[str, Any]:
    """Where the edit changed the image: :func:`radedit_core.scoring.edit_locality`'s per-region figures
    (``edit``: the edit mask less the keep mask, ``keep``, ``outside``: neither), without SSIM (seconds
    per large image), in fractions of the source's value range ``range``; plus, in stored values, the
    99th percentile of the absolute change outside both masks (``outside_p99_abs_change_stored``)."""
    import numpy as np  # noqa: PLC0415

    from .scoring import edit_locality  # noqa: PLC0415

    source, edited = result.source.array, result.image.array
    report = edit_locality(source, edited, result.masks, ssim=False)
    report["units"] = "fraction of range"
    outside = result.masks.edit <= 0
    if result.masks.keep is not None:
        outside &= result.masks.keep <= 0
    if outside.any():
        change = np.abs(edited.astype(np.float64) - source.astype(np.float64))[outside]
        report["outside_p99_abs_change_stored"] = float(np.percentile(change, 99))
    return report


def warn_notes(notes: list[str], where: Any = None) -> None:
    """Notes go to the console too (a warning each), so that no one has to open the sidecar to see them."""
    for note in notes:
        log.warning("%s%s", f"{where}: " if where else "", note)


__all__ = ["METHOD", "edit_provenance", "header", "image_notes", "locality", "now", "sha256", "warn_notes"]
