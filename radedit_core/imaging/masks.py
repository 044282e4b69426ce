"""Edit and keep masks on the source grid.

Rules (docs/editing.md, "Masks" and "Keep scope"; docs/method.md, "What exactly is computed"):

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
* Keep scope ``device`` (opt-in; the default is ``mask``, :data:`radedit_core.settings.KEEP_SCOPES`):
  the dilation protects a device whose annotation misses its border, but it
  also takes in the finding around the device.  So inside the dilated edit
  mask only the pixels of the dilated keep mask that belong to the device
  are kept (:func:`device_keep`); outside it the whole dilated keep mask is.
  Scope ``mask`` keeps the whole dilated keep mask (radedit 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MaskError
from .image import SourceImage


#: Keep scope ``device`` (:func:`device_keep`); lengths in source pixels.
#: Noise smoothing (Gaussian sigma) before a pixel is compared with its background.
DEVICE_SMOOTH_PX = 1.0
#: Half-width of the median window of the first background (wider than a thin device).
DEVICE_MEDIAN_PX = 15
#: Widths of the Gaussians that interpolate the second background from the pixels outside the
#: first pass's device, finest first; a pixel takes the finest scale whose weight of such pixels
#: reaches :data:`DEVICE_BACKGROUND_WEIGHT`, so a device of any width gets a background.
DEVICE_BACKGROUND_SIGMAS_PX = (3.0, 6.0, 12.0, 24.0, 48.0, 96.0)
DEVICE_BACKGROUND_WEIGHT = 0.05
#: A pixel is clearly device where it differs from the background, in the device's direction
#: (brighter or darker), by at least the smaller of DEVICE_CONTRAST_SHARE times the device's
#: contrast (the DEVICE_CONTRAST_PERCENTILE-th percentile of that difference over the dilated keep
#: mask) and DEVICE_TEXTURE_MADS robust standard deviations (1.4826 x MAD) of the background's own
#: texture around the mask (so a faint lead beside a bright generator counts).
DEVICE_CONTRAST_SHARE = 0.4
DEVICE_CONTRAST_PERCENTILE = 90.0
DEVICE_TEXTURE_MADS = 5.0
#: Fainter parts (a lumen, antialiased borders) count where they reach DEVICE_WEAK_SHARE /
#: DEVICE_CONTRAST_SHARE of that threshold within DEVICE_MARGIN_PX + 1 of a clear part.
DEVICE_WEAK_SHARE = 0.1
#: The device pixels found are grown by this many pixels (a disc, :func:`dilate`), so that their
#: faint antialiased border and the smoothing's reach are kept too.
DEVICE_MARGIN_PX = 1
#: Below this contrast (a share of the image's value range) nothing in the keep mask stands out
#: from its background: the whole dilated keep mask is kept, with a note.
DEVICE_MIN_CONTRAST = 0.01


@dataclass
class EditMasks:
    """Edit and keep masks (float32 in [0, 1]) on one image's source grid.

    ``keep``: the keep mask as applied (dilated; with keep scope ``device``
    cut down to the device inside the edit mask).  ``keep_dilated``: the
    dilated keep mask before that (None when equal).  ``keep_scope`` and
    ``notes``: what :func:`device_keep` did.
    """

    edit: np.ndarray
    keep: np.ndarray | None = None
    soft: bool = False
    keep_dilated: np.ndarray | None = None
    keep_scope: str = "mask"
    notes: list[str] = field(default_factory=list)

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
            "keep_scope": self.keep_scope,
            "keep_dilated_pixels": (
                None if self.keep is None
                else int(np.count_nonzero((self.keep if self.keep_dilated is None else self.keep_dilated) > 0))
            ),
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


def _device_pixels(mask: np.ndarray, difference: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of ``mask`` that stand out (``difference``: over ``mask``'s pixels, in the device's direction)."""
    from scipy.ndimage import binary_fill_holes  # noqa: PLC0415

    strong, weak = np.zeros_like(mask), np.zeros_like(mask)
    strong[mask] = difference >= threshold
    weak[mask] = difference >= DEVICE_WEAK_SHARE / DEVICE_CONTRAST_SHARE * threshold
    # The device's fainter parts (a lumen, antialiased borders) where they touch its clear parts.
    device = strong | (weak & (dilate(strong.astype(np.float32), DEVICE_MARGIN_PX + 1) > 0))
    device = binary_fill_holes(device)
    return binary_fill_holes(dilate(device.astype(np.float32), DEVICE_MARGIN_PX) > 0) & mask


def device_keep(
    source: np.ndarray, keep: np.ndarray, edit: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """Keep scope ``device``: the dilated keep mask cut down to the device inside the edit mask.

    The device is what differs from the background around it.  Rule, all
    lengths in source pixels, differences in the source's stored values, on
    the source smoothed by :data:`DEVICE_SMOOTH_PX`:

    1. First background: the median over a (2 x :data:`DEVICE_MEDIAN_PX` + 1)
       square window.  The device's direction ``s``: the heavier of the
       90th-percentile tails of ``src - b`` over the keep mask (a bright
       drain: brighter).  First device: pixels with ``s * (src - b)`` of at
       least :data:`DEVICE_CONTRAST_SHARE` times its 90th percentile ``c``.
    2. Second background: the source outside that device (grown by
       :data:`DEVICE_MARGIN_PX`) interpolated into it by normalised Gaussian
       convolution (:data:`DEVICE_BACKGROUND_SIGMAS_PX`).
    3. Device: keep-mask pixels with ``s * (src - b) >=`` min(DEVICE_CONTRAST_SHARE
       x ``c``, DEVICE_TEXTURE_MADS x the background texture's robust deviation
       outside the mask); fainter pixels (DEVICE_WEAK_SHARE) next to them; holes
       filled; grown by :data:`DEVICE_MARGIN_PX`; holes filled again; within the keep mask.
    4. Kept: the device, plus the keep mask outside the edit mask (there
       nothing is to change).

    A keep mask in which nothing stands out (``c`` below
    :data:`DEVICE_MIN_CONTRAST` of the image's range) is kept whole, with a note.

    Args:
        source: [H, W] stored values (any real dtype, MONOCHROME2 polarity).
        keep: [H, W] float32 in [0, 1], the dilated keep mask (soft masks: > 0 is inside).
        edit: [H, W] in [0, 1], the dilated edit mask; None: everywhere.

    Returns:
        The keep mask as applied ([H, W] float32, ``keep``'s values where kept,
        0 elsewhere) and notes.
    """
    from scipy.ndimage import gaussian_filter, median_filter  # noqa: PLC0415 - seconds to import

    inside = np.asarray(keep) > 0
    if not inside.any():
        return keep, []
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    pad = 2 * DEVICE_MEDIAN_PX
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, inside.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, inside.shape[1])
    box = (slice(r0, r1), slice(c0, c1))
    src = gaussian_filter(np.asarray(source, dtype=np.float64)[box], DEVICE_SMOOTH_PX, mode="nearest")
    mask = inside[box]
    # Pass 1: a median over a window wider than a thin device is the background around it.
    first = median_filter(src, size=2 * DEVICE_MEDIAN_PX + 1, mode="nearest")
    diff = (src - first)[mask]
    # The device's direction: the heavier tail of the difference (a device is the mask's extreme).
    sign = 1.0 if np.percentile(diff, DEVICE_CONTRAST_PERCENTILE) >= -np.percentile(diff, 100 - DEVICE_CONTRAST_PERCENTILE) else -1.0
    contrast = float(np.percentile(sign * diff, DEVICE_CONTRAST_PERCENTILE))
    device = _device_pixels(mask, sign * diff, DEVICE_CONTRAST_SHARE * contrast)
    # Pass 2: the background interpolated from the source outside that device (and its margin).
    outside = ~(dilate(device.astype(np.float32), DEVICE_MARGIN_PX) > 0)
    outside_w = outside.astype(np.float64)
    background = np.full(src.shape, np.nan)
    for sigma in DEVICE_BACKGROUND_SIGMAS_PX:
        weight = gaussian_filter(outside_w, sigma, mode="constant")
        value = gaussian_filter(src * outside_w, sigma, mode="constant")
        fill = np.isnan(background) & (weight >= DEVICE_BACKGROUND_WEIGHT)
        background[fill] = value[fill] / weight[fill]
    if np.isnan(background[mask]).any():
        background[np.isnan(background)] = np.median(src[mask])
    diff = (src - background)[mask]
    contrast = float(np.percentile(sign * diff, DEVICE_CONTRAST_PERCENTILE))
    span = float(np.ptp(source)) or 1.0
    if contrast < DEVICE_MIN_CONTRAST * span:
        return keep, [
            "keep scope device: nothing in the keep mask differs from its background "
            f"(contrast {contrast:.3g} < {DEVICE_MIN_CONTRAST:g} of the range); the whole keep mask is kept"
        ]
    # Faint parts of a device with a bright part (a lead beside a generator) are judged against
    # the background's own texture too: DEVICE_TEXTURE_MADS robust deviations of it around the mask.
    texture = sign * (src - background)[~mask]
    spread = 1.4826 * float(np.median(np.abs(texture - np.median(texture)))) if texture.size else np.inf
    threshold = min(DEVICE_CONTRAST_SHARE * contrast, DEVICE_TEXTURE_MADS * spread)
    device = _device_pixels(mask, sign * diff, threshold)
    found = np.zeros_like(inside)
    found[box] = device
    if edit is not None:
        found |= np.asarray(edit) <= 0
    return np.where(found & inside, keep, 0.0).astype(np.float32), []


#: Keep scope ``device``: a latent cell is pinned by the latent keep paste when at least this share
#: of its footprint (model pixels, area-averaged) is kept.
DEVICE_CELL_SHARE = 0.5


def dominated_cells(mask: np.ndarray, cell: int, share: float = DEVICE_CELL_SHARE) -> np.ndarray:
    """Latent cells at least ``share`` inside a model-space mask: [S, S] in [0, 1] -> float32 [S/cell, S/cell] of 0/1.

    A cell's value is the mean of its ``cell`` x ``cell`` footprint (soft masks: of their weights).
    """
    mask = np.asarray(mask, dtype=np.float64)
    size = mask.shape[0] // cell
    means = mask[: size * cell, : size * cell].reshape(size, cell, size, cell).mean(axis=(1, 3))
    return (means >= share - 1e-9).astype(np.float32)


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
    keep_scope: str = "mask",
) -> EditMasks:
    """Build validated, dilated masks. ``edit=None`` means edit everywhere (global edit).

    ``keep_scope``: ``mask`` keeps the whole dilated keep mask; ``device``
    only its device inside the edit mask (:func:`device_keep`).

    Raises:
        MaskError: a mask off the image's grid or with unusable values, an empty
            edit mask, or an edit mask the (dilated, scoped) keep mask covers entirely.
        ValueError: an unknown ``keep_scope``.
    """
    if keep_scope not in ("device", "mask"):
        raise ValueError(f"keep_scope must be 'device' or 'mask', got {keep_scope!r}")
    if edit is None:
        edit_mask = np.ones(image.shape, dtype=np.float32)
    else:
        edit_mask = dilate(normalise_mask(edit, image, "edit", edit_path, soft), dilate_px)
        if require_edit and not np.any(edit_mask > 0):
            raise MaskError(
                edit_path if edit_path is not None else "edit mask",
                "edit mask is empty: nothing would be edited",
            )
    keep_mask, dilated, notes = None, None, []
    if keep is not None:
        keep_mask = dilate(normalise_mask(keep, image, "keep", keep_path, soft), dilate_px)
        if keep_scope == "device":
            dilated = keep_mask
            keep_mask, notes = device_keep(image.array, keep_mask, None if edit is None else edit_mask)
        # The keep mask wins where both are set: an edit region it covers entirely edits nothing (and an
        # "edit" bit-identical to its source would pass as one).
        if edit is not None and require_edit and not np.any((edit_mask > 0) & (keep_mask < 1)):
            grown = f" once both are dilated by {dilate_px} px" if dilate_px else ""
            raise MaskError(
                edit_path if edit_path is not None else "edit mask",
                f"edit mask lies entirely inside the keep mask {keep_path or ''}{grown}: nothing would be edited",
            )
    return EditMasks(edit=edit_mask, keep=keep_mask, soft=soft, keep_dilated=dilated, keep_scope=keep_scope,
                     notes=notes)  # fmt: skip
