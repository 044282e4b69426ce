"""Edit and keep masks on the source grid.

Rules (documented in the README):

* Binary masks (the default): every non-zero value is inside.  Soft masks
  (``soft=True``): integer masks are divided by their dtype's maximum, float
  masks must already lie in [0, 1].
* Dilation by ``radius`` pixels (the paper dilates by 5) happens on the source
  grid, with a ball structuring element (SimpleITK), before any resampling.
* Resampling to model space and to the latent grid: a cell belongs to a binary
  mask if any source pixel of its footprint does (never shrinks an edit region
  or loses a thin device in a keep region); soft masks are area-averaged.
* Edit and keep may overlap; where they do, **keep wins**: the keep paste is
  the last operation of every reverse step, so guidance inside a kept cell
  has no effect.  The overlap is reported, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MaskError
from .image import SourceImage


@dataclass
class EditMasks:
    """Edit and keep masks (float32 in [0, 1]) on one image's source grid."""

    edit: np.ndarray
    keep: np.ndarray | None = None
    soft: bool = False

    @property
    def overlap_pixels(self) -> int:
        if self.keep is None:
            return 0
        return int(np.count_nonzero((self.edit > 0) & (self.keep > 0)))

    def summary(self) -> dict[str, float | int | bool]:
        return {
            "edit_pixels": int(np.count_nonzero(self.edit > 0)),
            "keep_pixels": 0 if self.keep is None else int(np.count_nonzero(self.keep > 0)),
            "overlap_pixels": self.overlap_pixels,
            "soft": self.soft,
        }


def normalise_mask(
    array: np.ndarray,
    image: SourceImage,
    name: str,
    path: str | Path | None = None,
    soft: bool = False,
) -> np.ndarray:
    """Validate a mask against ``image`` and return float32 values in [0, 1]."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    where = path if path is not None else f"{name} mask"
    if array.shape != image.shape:
        raise MaskError(
            where,
            f"{name} mask shape {array.shape} does not match the image shape {image.shape}",
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.number):
        raise MaskError(where, f"{name} mask has unsupported type {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise MaskError(where, f"{name} mask contains NaN or infinite values")
    if not soft:
        # A probability map read as binary would edit wherever it is above 0 (1e-6 included): refuse to guess.
        if np.issubdtype(array.dtype, np.floating) and np.any(array != np.round(array)):
            sample = float(array[array != np.round(array)].flat[0])
            raise MaskError(
                where,
                f"{name} mask holds fractional values (e.g. {sample:g}); a binary mask holds 0 and 1 (or label "
                "values): threshold it, or turn on soft masks to use it as weights in [0, 1]",
            )
        if array.min() < 0:
            raise MaskError(where, f"{name} mask holds negative values (down to {array.min():g}); masks hold 0 and 1 "
                                   "(or non-negative label values)")  # fmt: skip
        return (array != 0).astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0:
            raise MaskError(where, f"soft {name} mask has negative values")
        return (array / np.iinfo(array.dtype).max).astype(np.float32)
    if array.min() < 0 or array.max() > 1:
        raise MaskError(
            where,
            f"soft {name} mask values must lie in [0, 1], found [{array.min():g}, {array.max():g}]",
        )
    return array.astype(np.float32)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate by ``radius`` pixels with a ball (disc) element; soft masks grey-dilate."""
    if radius < 0:
        raise ValueError("dilation radius must be >= 0")
    if radius == 0 or not np.any(mask):
        return mask
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    if np.all((mask == 0) | (mask == 1)):
        binary = sitk.Cast(image, sitk.sitkUInt8)
        out = sitk.BinaryDilate(binary, [radius, radius], sitk.sitkBall, 0.0, 1.0)
    else:
        out = sitk.GrayscaleDilate(image, [radius, radius], sitk.sitkBall)
    return sitk.GetArrayFromImage(out).astype(np.float32)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Erode a binary mask by ``radius`` pixels with the ball (disc) element of :func:`dilate`; bool out."""
    if radius < 0:
        raise ValueError("erosion radius must be >= 0")
    binary = np.asarray(mask) != 0
    if radius == 0 or not binary.any():
        return binary
    image = sitk.GetImageFromArray(binary.astype(np.uint8))
    out = sitk.BinaryErode(image, [radius, radius], sitk.sitkBall, 0.0, 1.0)
    return sitk.GetArrayFromImage(out).astype(bool)


def make_masks(
    image: SourceImage,
    edit: np.ndarray | None,
    keep: np.ndarray | None = None,
    *,
    soft: bool = False,
    dilate_px: int = 0,
    edit_path: str | Path | None = None,
    keep_path: str | Path | None = None,
    require_edit: bool = True,
) -> EditMasks:
    """Build validated, dilated masks. ``edit=None`` means edit everywhere (global edit).

    Raises:
        MaskError: a mask off the image's grid or with unusable values, an empty
            edit mask, or an edit mask the (dilated) keep mask covers entirely.
    """
    if edit is None:
        edit_mask = np.ones(image.shape, dtype=np.float32)
    else:
        edit_mask = dilate(normalise_mask(edit, image, "edit", edit_path, soft), dilate_px)
        if require_edit and not np.any(edit_mask > 0):
            raise MaskError(
                edit_path if edit_path is not None else "edit mask",
                "edit mask is empty: nothing would be edited",
            )
    keep_mask = None
    if keep is not None:
        keep_mask = dilate(normalise_mask(keep, image, "keep", keep_path, soft), dilate_px)
        # The keep mask wins where both are set: an edit region it covers entirely edits nothing (and an
        # "edit" bit-identical to its source would pass as one).
        if edit is not None and require_edit and not np.any((edit_mask > 0) & (keep_mask < 1)):
            grown = f" once both are dilated by {dilate_px} px" if dilate_px else ""
            raise MaskError(
                edit_path if edit_path is not None else "edit mask",
                f"edit mask lies entirely inside the keep mask {keep_path or ''}{grown}: nothing would be edited",
            )
    return EditMasks(edit=edit_mask, keep=keep_mask, soft=soft)
