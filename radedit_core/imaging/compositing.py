"""Compositing: an edit's decoded model-space images -> the edited image on the exact source grid.

The pipeline returns two images from the same decoder: ``E = decode(x_edit)``
and ``R = decode(x0)``, the VAE's reconstruction of the inverted image.  Their
difference is what the edit changed; ``R`` itself differs from the source by
the VAE's reconstruction error (blurred rib edges, wires and markers), which
must never reach a pixel the edit did not change.  Inside the centred crop
(docs/method.md, "What exactly is computed", steps 5 and 6), in stored values:

    out = src + f * [ (E_v - R_v) + r * (R_v - src) ]

* ``E_v``, ``R_v``: E and R resized to the crop (antialiased bilinear, as on
  the way in) and mapped from [-1, 1] to stored values.  ``E_v - R_v`` is
  computed as ``up(E - R)``, so it is exactly 0 wherever E and R are the same
  bits, and a null edit (x_edit == x0) changes nothing.
* ``r`` in [0, 1] says where the source's own full-resolution detail gives way
  to the model's image (``r = 1``: ``out = E_v``).  Adding a smooth change to
  the sharp source inside a removed device would leave a ghost of its edges;
  there ``r = 1`` uses the model's image instead.  By ``detail`` mode
  (:data:`radedit_core.settings.DETAIL_MODES`):

  - ``unchanged`` (default): ``r = m_edit * min(1, up(maxpool3(|E - R|)) / CHANGE_SCALE)``:
    inside the (dilated) edit mask, as far as the edit changed the image (the
    local maximum over 3x3 model pixels, so that a change crossing zero
    leaves no seam of sharp detail); the source's detail everywhere else.
  - ``outside-edit``: ``r = m_edit``: the model's image in the whole edit mask
    (radedit 0.1's default, there with the reconstruction error).
  - ``everywhere``: ``r = 0``: the change alone is added.
  - ``decoded``: ``r = 1`` and no fade: the released pipeline's plain decoded
    image, resized onto the crop, for comparison (it carries the VAE's
    reconstruction error everywhere in the crop).

* ``f`` fades the whole bracket to 0 towards the crop's borders that lie
  inside the image (a sin^2 ramp over :data:`FADE_MODEL_PX` model pixels,
  ``round(FADE_MODEL_PX * size / S)`` source pixels, reaching 0 half a pixel
  outside the crop), so the output joins the untouched source outside the crop
  without a step.  Borders on the image's own edge do not fade.

Then (step 6) keep mode ``pixel`` copies the source inside the keep mask
(``out = keep * src + (1 - keep) * out``, bit for bit where ``keep = 1``), and
:func:`~radedit_core.imaging.intensity.to_stored` rounds, clips to the
stored-value range and restores padding pixels.  Outside the crop the source
is returned bit for bit.

Guarantees (``tests/test_compositing.py``): with ``E == R`` (a null edit, in
modes ``unchanged`` and ``everywhere``) the output is the source bit for bit;
in mode ``unchanged`` the VAE's reconstruction error reaches no pixel outside
the edit mask, where ``out = src + f * (E_v - R_v)``: only the reverse pass's
own change; the change is 0 outside the crop and continuous across its border.

An edit mask reaching outside the crop cannot be edited there: a note gives
the fraction, and :func:`check_edit_mask_in_crop` (run by ``prepare_edit``)
refuses masks with more than :data:`MAX_EDIT_OUTSIDE_CROP` of it outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MaskError
from ..settings import DEFAULT_DETAIL, DETAIL_MODES
from .image import SourceImage
from .intensity import to_stored
from .masks import EditMasks
from .transform import ModelSpaceTransform

#: |E - R| (model units; the model's [-1, 1] spans the intensity range) at which mode ``unchanged``
#: fully replaces the source's detail: 5 % of the intensity range.  A smaller change keeps that
#: share of it, so a faint change leaves at most a faint ghost (<= CHANGE_SCALE / 4 times the
#: source's detail contrast).
CHANGE_SCALE = 0.1
#: Window (model pixels) of the local maximum of |E - R| in mode ``unchanged``.
CHANGE_POOL_PX = 3
#: Width of the fade towards crop borders inside the image: 16 model pixels (two latent cells of
#: an x8 VAE, where a latent change at the border spreads), 1/32 of the crop.
FADE_MODEL_PX = 16
#: Largest share of an edit mask outside the centred crop that ``prepare_edit`` accepts (above it
#: most of the requested edit could not happen); any share above 0 is a note.
MAX_EDIT_OUTSIDE_CROP = 0.5


@dataclass
class Composite:
    """The edited image on the source grid and what the compositing did.

    ``array``: source shape and dtype.  ``figures``: the ``compositing`` block
    of the provenance sidecar.  ``notes``: one-line remarks for the sidecar
    and the console (an edit mask reaching outside the crop).
    """

    array: np.ndarray
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fade_weight(transform: ModelSpaceTransform) -> tuple[np.ndarray, int, list[str]]:
    """``f`` on the crop (float64 [size, size] in [0, 1]), the band width in source pixels and the faded sides.

    Pixel k (0-based) from a faded border gets ``sin^2(pi/2 * min(1, (k + 0.5) / band))``.
    """
    r0, c0, size = transform.crop
    rows, cols = transform.source_shape
    band = max(1, int(round(FADE_MODEL_PX * size / transform.model_size)))
    k = np.arange(size, dtype=np.float64)
    ramp_in = np.sin(0.5 * math.pi * np.minimum(1.0, (k + 0.5) / band)) ** 2
    ramp_out = ramp_in[::-1]
    f_rows, f_cols = np.ones(size), np.ones(size)
    sides = []
    for name, inside, ramp, axis in (
        ("top", r0 > 0, ramp_in, f_rows),
        ("bottom", r0 + size < rows, ramp_out, f_rows),
        ("left", c0 > 0, ramp_in, f_cols),
        ("right", c0 + size < cols, ramp_out, f_cols),
    ):
        if inside:
            axis *= ramp
            sides.append(name)
    return np.outer(f_rows, f_cols), band, sides


def replace_weight(
    detail: str, edit_crop: np.ndarray, change_model: np.ndarray, transform: ModelSpaceTransform
) -> np.ndarray:
    """``r`` on the crop: where the source's detail gives way to the model's image (module docstring)."""
    if detail == "everywhere":
        return np.zeros_like(edit_crop, dtype=np.float64)
    if detail == "decoded":
        return np.ones_like(edit_crop, dtype=np.float64)
    if detail == "outside-edit":
        return edit_crop.astype(np.float64)
    from scipy.ndimage import maximum_filter  # noqa: PLC0415 - seconds to import; prepare_edit needs none of it

    local = maximum_filter(np.abs(change_model), size=CHANGE_POOL_PX, mode="nearest")
    changed = np.clip(transform.model_to_crop(local) / CHANGE_SCALE, 0.0, 1.0)
    return edit_crop.astype(np.float64) * changed


def _model_array(x: Any, model_size: int) -> np.ndarray:
    """A decoded image [.., S, S] (tensor or array, one image) -> float64 [S, S] clipped to [-1, 1]."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.size != model_size * model_size:
        raise ValueError(f"expected one {model_size}x{model_size} model-space image, got shape {array.shape}")
    return np.clip(array.reshape(model_size, model_size), -1.0, 1.0)


def composite(
    source: SourceImage,
    transform: ModelSpaceTransform,
    masks: EditMasks,
    edited: Any,
    reconstruction: Any,
    *,
    detail: str = DEFAULT_DETAIL,
    keep_mode: str = "pixel",
) -> Composite:
    """Map one edit back onto the source grid, dtype and stored-value range.

    Args:
        source: the image as read (stored values, MONOCHROME2 polarity).
        transform: its :class:`ModelSpaceTransform` (crop, intensity range).
        masks: edit and keep masks on the source grid, as applied (dilated).
        edited: ``decode(x_edit)``, one model-space image [(1, 1,) S, S] in [-1, 1]
            (a tensor or an array).
        reconstruction: ``decode(x0)`` from the same decoder, dtype and batch layout.
        detail: ``unchanged``, ``outside-edit``, ``everywhere`` or ``decoded``
            (module docstring).
        keep_mode: ``pixel`` copies the source inside the keep mask; ``latent``
            leaves the latent paste alone.

    Returns:
        :class:`Composite` with the edited array, the figures (units: stored
        values unless named ``_model``) and notes.

    Raises:
        ValueError: for an unknown mode or images not of the model's size.
    """
    if detail not in DETAIL_MODES:
        raise ValueError(f"detail must be one of {', '.join(DETAIL_MODES)}, got {detail!r}")
    if keep_mode not in ("pixel", "latent"):
        raise ValueError(f"keep_mode must be 'pixel' or 'latent', got {keep_mode!r}")
    S = transform.model_size
    rows, cols = transform.crop_slices
    src = source.array
    src_crop = src[rows, cols].astype(np.float64)

    # 1. The change, in stored values on the crop: exactly 0 where E and R are the same bits
    e_model, r_model = _model_array(edited, S), _model_array(reconstruction, S)
    change_model = e_model - r_model
    change = transform.model_to_crop(change_model) * transform.scale
    recon = transform.to_values(transform.model_to_crop(r_model))

    # 2. Where the source's detail gives way to the model's image, and the fade to the crop border
    r = replace_weight(detail, masks.edit[rows, cols], change_model, transform)
    if detail == "decoded":
        f, band, sides = np.ones_like(src_crop), 0, []
    else:
        f, band, sides = fade_weight(transform)

    # 3. out = src + f * [(E_v - R_v) + r * (R_v - src)], the source outside the crop
    out = src.astype(np.float64, copy=True)
    out[rows, cols] = src_crop + f * (change + r * (recon - src_crop))

    # 4. Keep mode pixel: the source inside the keep mask (bit for bit where it is 1)
    keep = masks.keep if keep_mode == "pixel" else None
    if keep is not None:
        out = keep * src.astype(np.float64) + (1.0 - keep) * out
    edited_array = to_stored(out, source)
    if keep is not None:
        edited_array = np.where(keep >= 1.0, src, edited_array)

    # 5. Figures and notes
    outside = transform.outside_crop_fraction(masks.edit)
    size = transform.crop[2]
    notes = []
    if outside > 0.0:
        whole = bool(np.all(masks.edit >= 1.0))
        what = "of the image" if whole else "of the edit mask"
        notes.append(
            f"{100 * outside:.1f}% {what} lies outside the centred {size}x{size} crop that the model sees "
            "and is left as it was"
        )
    figures = {
        "detail": detail,
        "keep_mode": keep_mode,
        "change_scale_model": CHANGE_SCALE if detail == "unchanged" else None,
        "fade_band_px": band,
        "fade_sides": sides,
        "edit_outside_crop_fraction": round(outside, 6),
        "max_abs_change_model": float(np.max(np.abs(change_model))),
        "detail_replaced_pixels": int(np.count_nonzero(r >= 0.5)),
        # What the compositing keeps out of unchanged pixels: the VAE's own error on this image.
        "reconstruction_error_p99": float(np.percentile(np.abs(recon - src_crop), 99)),
    }
    return Composite(edited_array, figures, notes)


def check_edit_mask_in_crop(mask: np.ndarray, transform: ModelSpaceTransform, where: Any = None) -> float:
    """Refuse an edit mask with more than :data:`MAX_EDIT_OUTSIDE_CROP` of it outside the centred crop.

    Returns the fraction outside (0 .. 1) otherwise.

    Raises:
        MaskError: naming ``where`` (the mask file), the fraction and the crop.
    """
    outside = transform.outside_crop_fraction(mask)
    if outside > MAX_EDIT_OUTSIDE_CROP:
        r0, c0, size = transform.crop
        raise MaskError(
            where if where is not None else "edit mask",
            f"{100 * outside:.0f}% of the edit mask lies outside the centred {size}x{size} square "
            f"(rows {r0}-{r0 + size - 1}, columns {c0}-{c0 + size - 1}) that the model edits; at most "
            f"{100 * MAX_EDIT_OUTSIDE_CROP:.0f}% may: crop or pad the image so that the region to edit "
            "lies in its centre square",
        )
    return outside


__all__ = [
    "CHANGE_POOL_PX",
    "CHANGE_SCALE",
    "Composite",
    "FADE_MODEL_PX",
    "MAX_EDIT_OUTSIDE_CROP",
    "check_edit_mask_in_crop",
    "composite",
    "fade_weight",
    "replace_weight",
]
