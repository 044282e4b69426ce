"""The in-memory image every reader produces and every writer consumes.

A :class:`SourceImage` holds one 2D chest X-ray as *stored values* on the source
grid together with everything needed to write the edited result back in the
same form: the numpy dtype, the range of legal stored values, the physical
geometry and, for DICOM, the dataset it came from.  The model never sees this
object directly; :mod:`radedit_core.imaging.transform` maps it to model space
and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Geometry:
    """Physical placement of the pixel grid (SimpleITK/ITK conventions, LPS).

    ``spacing`` and ``origin`` are (x, y[, z]) in mm; ``direction`` is the
    row-major direction cosine matrix flattened, as ``sitk.Image.GetDirection``.
    ``dimension`` is 3 for a one-slice volume (a NIfTI/NRRD written by Slicer),
    so that writing gives back the same kind of file.
    """

    spacing: tuple[float, ...] = (1.0, 1.0)
    origin: tuple[float, ...] = (0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 1.0)
    dimension: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "dimension": self.dimension,
        }

    def in_plane(self) -> "Geometry":
        """The 2D part of a one-slice volume's geometry."""
        if self.dimension == 2:
            return self
        d = self.direction
        n = self.dimension
        return Geometry(
            spacing=tuple(self.spacing[:2]),
            origin=tuple(self.origin[:2]),
            direction=(d[0], d[1], d[n], d[n + 1]),
            dimension=2,
        )

    def matches(self, other: "Geometry", tol: float = 1e-4) -> bool:
        """Same grid placement within ``tol`` (mm for spacing/origin)."""
        if self.dimension != other.dimension:
            return False
        pairs = (
            (self.spacing, other.spacing),
            (self.origin, other.origin),
            (self.direction, other.direction),
        )
        return all(
            len(a) == len(b) and np.allclose(a, b, atol=tol, rtol=0) for a, b in pairs
        )


@dataclass
class SourceImage:
    """A single-frame grayscale image in stored values, MONOCHROME2 polarity.

    Attributes:
        array: 2D array (rows, columns) in the source dtype.  For DICOM
            sources that display inverted (MONOCHROME1, or a Presentation LUT
            Shape INVERSE) the reader has already flipped polarity
            (``value_range[1] - stored + value_range[0]``) so that bright means
            dense for the model; ``monochrome1`` records that the flip must be
            undone on write.
        value_range: inclusive (min, max) of legal stored values; outputs are
            clipped to it (e.g. (0, 4095) for 12-bit data in uint16).
        window: optional (low, high) intensity window mapped to [-1, 1] for the
            model instead of the image's min and max (DICOM VOI).
        geometry: where the grid lies in patient space.
        path: the file (or folder) it was read from, for messages and provenance.
        format: "png", "nifti", "nrrd", "dicom", or "array".
        padding_range: optional inclusive (low, high) range of values that
            mark *padding* pixels (DICOM Pixel Padding Value/Range Limit, e.g.
            a collimation border), in the values of ``array``.  Padding pixels
            are not image: they stay out of the model's intensity range, are
            never changed by an edit, and no edited pixel takes a value in
            this range.
        metadata: reader-specific extras (the pydicom dataset for DICOM, the
            SimpleITK metadata dictionary for NRRD/NIfTI, ...).  Readers put
            one-line human-readable remarks that belong in the provenance
            sidecar and on the console (how an ambiguous file was read, what
            was accepted, problems inherited from the source) into
            ``metadata["notes"]``, a list of strings.
    """

    array: np.ndarray
    value_range: tuple[float, float]
    geometry: Geometry = field(default_factory=Geometry)
    window: tuple[float, float] | None = None
    path: Path | None = None
    format: str = "array"
    monochrome1: bool = False
    padding_range: tuple[float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_image_array(self.array, self.path)
        if self.padding_range is not None:
            low, high = (float(v) for v in self.padding_range)
            if high < low:
                raise ValueError(f"padding range ({low:g}, {high:g}) is empty")
            self.padding_range = (low, high)

    @property
    def padding(self) -> np.ndarray | None:
        """Boolean mask of the padding pixels (values in ``padding_range``), or None."""
        if self.padding_range is None:
            return None
        low, high = self.padding_range
        return (self.array >= low) & (self.array <= high)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def with_array(self, array: np.ndarray) -> "SourceImage":
        """Same image description around new pixel values (same shape/dtype)."""
        if array.shape != self.array.shape or array.dtype != self.array.dtype:
            raise ValueError(
                f"replacement array {array.shape} {array.dtype} does not match "
                f"{self.array.shape} {self.array.dtype}"
            )
        return replace(self, array=array)

    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        value_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> "SourceImage":
        """Wrap a numpy array; integer dtypes default to their full range."""
        array = np.asarray(array)
        if value_range is None:
            value_range = dtype_value_range(array.dtype)
        return cls(array=array, value_range=value_range, **kwargs)


def dtype_value_range(dtype: np.dtype) -> tuple[float, float]:
    """Legal stored values of ``dtype``.

    Floating-point images have no stored range: an edit may leave the source's
    extent, so only the infinities are excluded.
    """
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return float("-inf"), float("inf")


def validate_image_array(array: np.ndarray, path: Path | str | None = None) -> None:
    """Reject what the model cannot represent, naming the file."""
    if not isinstance(array, np.ndarray):
        raise InputError(path, f"image data must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise InputError(
            path,
            f"expected a single 2D grayscale image, got an array of shape {array.shape}",
        )
    if min(array.shape) < 8:
        raise InputError(path, f"image of size {array.shape} is too small to edit")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(path, f"unsupported pixel type {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise InputError(path, "image contains NaN or infinite values")
