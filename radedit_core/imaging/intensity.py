"""Stored values and what the model sees: rounding/clipping to the stored range, polarity and window
overrides, and the exact affine map between a front end's pixel values and the DICOM stored values.

These conversions undo exactly: integer flips are reflections within the stored range, and the affine
map is verified on every pixel, so an unchanged pixel comes back bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, InputError
from .image import SourceImage

_INTENSITY_KEYS = {"value_range", "window", "invert", "padding_range"}


def to_stored(values: np.ndarray, source: SourceImage) -> np.ndarray:
    """Float values -> the source's dtype, rounded and clipped to its legal range.

    With a ``source.padding_range`` the padding pixels keep the source's
    values, and any other pixel that would land inside the padding range is
    moved to the nearest legal value outside it, so that the result has
    exactly the source's padding pixels.
    """
    lo, hi = source.value_range
    if np.issubdtype(source.dtype, np.integer):
        values = np.rint(values)
    out = np.clip(values, lo, hi).astype(source.dtype)
    padding = source.padding
    if padding is not None:
        p_lo, p_hi = source.padding_range
        if np.issubdtype(source.dtype, np.integer):
            below, above = p_lo - 1, p_hi + 1
        else:
            below = float(np.nextafter(source.dtype.type(p_lo), source.dtype.type(-np.inf)))
            above = float(np.nextafter(source.dtype.type(p_hi), source.dtype.type(np.inf)))
        inside = (out >= p_lo) & (out <= p_hi) & ~padding
        if np.any(inside):
            # The nearer legal side; a range touching one end of the legal range has one side only.
            if below < lo and above > hi:
                raise InputError(source.path, "the padding range covers every legal value; there is nothing to edit")
            if below < lo:
                upper = inside
            elif above > hi:
                upper = np.zeros_like(inside)
            else:
                upper = inside & (out.astype(np.float64) > (p_lo + p_hi) / 2.0)
            if np.any(upper):
                out[upper] = source.dtype.type(above)
            if np.any(inside & ~upper):
                out[inside & ~upper] = source.dtype.type(below)
        out[padding] = source.array[padding]
    return out


def apply_intensity(image, intensity: dict[str, Any] | None):
    """The image as the model must see it, and the function that undoes it.

    ``value_range``, ``window`` and ``padding_range`` (values marking padding
    pixels, never edited) override the image's, in its own values.  ``invert`` flips polarity about the stored-value range (or, for floating
    point images without one, about the data's extent); the flip is an exact
    integer reflection, so undoing it restores the source bit for bit.
    """
    intensity = dict(intensity or {})
    unknown = sorted(set(intensity) - _INTENSITY_KEYS)
    if unknown:
        raise ConfigError(f"unknown intensity fields {unknown}; known: {sorted(_INTENSITY_KEYS)}")
    changes: dict[str, Any] = {}
    if intensity.get("value_range") is not None:
        low, high = (float(v) for v in intensity["value_range"])
        if not high > low:
            raise ConfigError(f"value_range must be (low, high) with low < high, got {intensity['value_range']}")
        if image.array.min() < low or image.array.max() > high:
            raise InputError(
                image.path,
                f"image values [{image.array.min():g}, {image.array.max():g}] lie outside "
                f"the given value range [{low:g}, {high:g}]",
            )
        changes["value_range"] = (low, high)
    if intensity.get("window") is not None:
        low, high = (float(v) for v in intensity["window"])
        if not high > low:
            raise ConfigError(f"window must be (low, high) with low < high, got {intensity['window']}")
        changes["window"] = (low, high)
    if intensity.get("padding_range") is not None:
        low, high = (float(v) for v in intensity["padding_range"])
        if not high >= low:
            raise ConfigError(f"padding_range must be (low, high) with low <= high, got {intensity['padding_range']}")
        changes["padding_range"] = (low, high)
    image = dataclasses.replace(image, **changes) if changes else image
    if not intensity.get("invert"):
        return image, lambda array: array

    low, high = image.value_range
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = float(image.array.min()), float(image.array.max())
    pivot = low + high
    dtype = image.dtype
    work = np.float64 if np.issubdtype(dtype, np.floating) else np.int64

    def flip(array):
        return (pivot - array.astype(work)).astype(dtype)

    window = None if image.window is None else (pivot - image.window[1], pivot - image.window[0])
    padding = image.padding_range
    padding = None if padding is None else (pivot - padding[1], pivot - padding[0])
    return dataclasses.replace(image, array=flip(image.array), window=window, padding_range=padding), flip


def dicom_intensity(image, dicom) -> tuple[dict[str, Any], Callable]:
    """The intensity the DICOM reader gives ``dicom`` (its :func:`read_dicom_image`), in ``image``'s values.

    ``image`` is the same picture as the front end holds it (rescaled, in
    whatever polarity its loader chose); with the exact map between the two,
    the model sees what ``radedit edit`` on the DICOM file shows it: the VOI
    window, MONOCHROME2 polarity and the stored-value range as the clipping
    range.  Also returns the function that rounds edited values to ones the
    DICOM file can store (with a RescaleSlope of 2 only every other value
    exists), so that the front end shows exactly what an export will hold.
    """
    if dicom.shape != image.shape:
        raise InputError(
            image.path,
            f"image is {image.shape[1]}x{image.shape[0]} (columns x rows) but its DICOM source "
            f"{dicom.path} is {dicom.shape[1]}x{dicom.shape[0]}",
        )
    a, b = stored_value_map(dicom.array, image.array)
    # A floating-point volume holds the rescaled values to float rounding.
    slack = 0.0 if np.issubdtype(image.dtype, np.integer) else 1e-5 * max(1.0, float(np.abs(image.array).max()))

    def to_image(values, pad=0.0):
        low, high = sorted(a * float(v) + b for v in values)
        return [low - pad, high + pad]

    intensity: dict[str, Any] = {"value_range": to_image(dicom.value_range, slack), "invert": bool(a < 0)}
    if dicom.window is not None:
        intensity["window"] = to_image(dicom.window)
    if dicom.padding_range is not None:
        # Padding values as the volume holds them (same slack as the range: a float volume rounds).
        intensity["padding_range"] = to_image(dicom.padding_range, slack)

    def storable(array):
        values = a * to_source_values(array, dicom, a, b).astype(np.float64) + b
        if np.issubdtype(image.dtype, np.integer):
            values = np.rint(values)
        return values.astype(image.dtype)

    return intensity, storable


def stored_value_map(stored, displayed) -> tuple[float, float]:
    """``(a, b)`` with ``displayed == a * stored + b`` on every pixel, or an error.

    The pair is the same image as the DICOM reader returns it and as the front
    end holds it (rescale slope/intercept applied, polarity as stored); the map
    is fitted and then required to reproduce every pixel to within a quarter
    of a stored step, which also proves that both lie on the same pixel grid.
    """
    s = np.asarray(stored, dtype=np.float64).ravel()
    d = np.asarray(displayed, dtype=np.float64).ravel()
    s_span = float(s.max() - s.min())
    if s_span == 0:
        a = 1.0
    else:
        i, j = int(np.argmin(s)), int(np.argmax(s))
        a = (d[j] - d[i]) / (s[j] - s[i])
    if a == 0:
        raise InputError(None, "the volume is constant where the DICOM image is not; they are not the same image")
    b = float(np.median(d - a * s))
    residual = float(np.max(np.abs(d - (a * s + b)))) if d.size else 0.0
    tolerance = 0.25 * abs(a) + 1e-6 * max(1.0, float(np.max(np.abs(d))))
    if residual > tolerance:
        raise InputError(
            None,
            "the volume's values are not the DICOM image's stored values under one rescale "
            f"(largest mismatch {residual:g}); was the volume resampled, cropped or modified "
            "before editing?",
        )
    return float(a), b


def to_source_values(edited, source, a: float, b: float):
    """Displayed values -> the source's stored values (rounded, clipped, cast)."""
    values = (np.asarray(edited, dtype=np.float64) - b) / a
    low, high = source.value_range
    if np.issubdtype(source.dtype, np.integer):
        values = np.rint(values)
    return np.clip(values, low, high).astype(source.dtype)
