"""Layers: what each structure adds to the attenuation map, and exactly where.

A case is rendered as a sum of per-structure *layers* on the pixel grid, in
attenuation units (a.u.: 0 = air outside the patient, about 1 = soft tissue
through the full chest, metal several units).  The acquisition
(:mod:`~radedit_core.phantom_world.acquisition`) then maps the summed map
pointwise to display values, adding noise that is pointwise in the map too.
Because both steps are pointwise and every layer is exactly zero outside its
mask, rendering a case without one structure changes the image exactly on
that structure's mask: the masks match the pixels by construction, and the
tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .geometry import Frame

#: Contributions smaller than this (a.u.) are dropped, so that every pixel of a
#: mask changes the image by a visible amount (not a float rounding error).
MIN_CONTRIBUTION = 1e-3


@dataclass
class Layer:
    """One structure's contribution to the attenuation map.

    ``density`` is [rows, columns] float32 in a.u. (negative where the
    structure replaces tissue by air: lungs, pneumothorax, trachea); ``mask``
    is where it is non-zero.  Build layers with :meth:`from_density`, which
    drops contributions below :data:`MIN_CONTRIBUTION`.
    """

    name: str
    density: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_density(cls, name: str, density: np.ndarray) -> "Layer":
        d = np.asarray(density, dtype=np.float32)
        mask = np.abs(d) >= MIN_CONTRIBUTION
        return cls(name=name, density=np.where(mask, d, np.float32(0)).astype(np.float32), mask=mask)


@dataclass
class Scene:
    """The frame a case is drawn in and what structures drawn so far share with later ones.

    ``shared`` holds intermediate fields that later structures need (the
    lungs' coverage and texture for the findings, the lung shapes for the
    drain's path); they are not layers themselves.
    """

    frame: Frame
    shared: dict[str, object] = field(default_factory=dict)

    @property
    def x(self) -> np.ndarray:
        return self.frame.grid[0]

    @property
    def y(self) -> np.ndarray:
        return self.frame.grid[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.frame.rows, self.frame.columns

    @property
    def pixel_spacing(self) -> float:
        return self.frame.pixel_spacing_mm

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=np.float32)

    def window(self, x0: float, y0: float, x1: float, y1: float, margin_mm: float = 4.0) -> tuple[slice, slice] | None:
        """Pixel slices covering the patient-plane rectangle [x0, x1] x [y0, y1] (mm); None if off the image."""
        corners = np.array([(x0, y0), (x1, y0), (x0, y1), (x1, y1)], dtype=np.float64)
        return self.frame.window(corners, margin_mm)


def attenuation(layers: Iterable[Layer], shape: tuple[int, int]) -> np.ndarray:
    """The attenuation map: the sum of the layers (float32, a.u.)."""
    total = np.zeros(shape, dtype=np.float32)
    for layer in layers:
        total += layer.density
    return total


__all__ = ["Layer", "MIN_CONTRIBUTION", "Scene", "attenuation"]
