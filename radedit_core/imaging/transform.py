"""Source grid <-> model space, with an exact inverse.

Forward (paper, App. 0.D): centre-crop the largest square, resize it to the
model resolution (512 for RadEdit) with antialiased bilinear interpolation, map
the intensity range to [-1, 1].  We crop first and then resize, which equals
"short side to 512, centre crop 512" up to the sub-pixel rounding of the crop
offset, and makes the crop an integer box on the source grid that can be undone
exactly.

Back: :meth:`ModelSpaceTransform.model_to_crop` resizes a model-space map to
the crop (the same interpolation) and :meth:`ModelSpaceTransform.to_values`
turns model units into stored values; how an edit is composited onto the
source from there is :mod:`radedit_core.imaging.compositing`.

torch is imported inside the methods that resize: :func:`ModelSpaceTransform.fit`
and the crop geometry run in ``prepare_edit``, before any model loads, where
importing torch would cost seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError
from .image import SourceImage

MaskRule = Literal["any", "mean"]


@dataclass(frozen=True)
class ModelSpaceTransform:
    """What it takes to map one source image to model space and back.

    ``crop`` is (row0, col0, size) on the source grid; ``low``/``high`` are the
    stored values mapped to -1 and +1.
    """

    source_shape: tuple[int, int]
    crop: tuple[int, int, int]
    model_size: int
    low: float
    high: float

    @classmethod
    def fit(cls, image: SourceImage, model_size: int = 512) -> "ModelSpaceTransform":
        rows, cols = image.shape
        size = min(rows, cols)
        r0, c0 = (rows - size) // 2, (cols - size) // 2
        if image.window is not None:
            low, high = (float(v) for v in image.window)
        else:
            region = image.array[r0 : r0 + size, c0 : c0 + size]
            padding = image.padding
            if padding is not None:
                # Padding (a collimation border) is not image: it would stretch
                # the range and squeeze the anatomy into a few model levels.
                region = region[~padding[r0 : r0 + size, c0 : c0 + size]]
            if region.size == 0:
                raise InputError(image.path, "the centre crop holds only padding pixels; there is nothing to edit")
            low, high = float(region.min()), float(region.max())
        if not high > low:
            raise InputError(
                image.path,
                f"image intensities are constant ({low:g}) inside the centre crop; "
                "there is nothing to edit",
            )
        return cls((rows, cols), (r0, c0, size), int(model_size), low, high)

    # -- helpers -----------------------------------------------------------
    @property
    def scale(self) -> float:
        """Stored values per model unit."""
        return (self.high - self.low) / 2.0

    @property
    def crop_slices(self) -> tuple[slice, slice]:
        """(rows, columns) of the crop on the source grid."""
        r0, c0, size = self.crop
        return slice(r0, r0 + size), slice(c0, c0 + size)

    def _crop(self, array: np.ndarray) -> np.ndarray:
        if tuple(array.shape) != self.source_shape:
            raise ValueError(f"array {array.shape} is not on the source grid {self.source_shape}")
        return array[self.crop_slices]

    @staticmethod
    def _resize(x, size: int):
        import torch.nn.functional as F  # noqa: PLC0415 - see the module docstring

        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def outside_crop_fraction(self, mask: np.ndarray) -> float:
        """Share of a mask's weight (its sum) that lies outside the crop: what no edit can reach.

        0 for an empty mask.  ``mask`` is on the source grid, values in [0, 1].
        """
        weights = np.asarray(mask, dtype=np.float64)
        if weights.shape != self.source_shape:
            raise ValueError(f"mask {weights.shape} is not on the source grid {self.source_shape}")
        total = float(weights.sum())
        if total <= 0.0:
            return 0.0
        return max(0.0, 1.0 - float(self._crop(weights).sum()) / total)

    # -- forward -----------------------------------------------------------
    def image_to_model(self, array: np.ndarray):
        """Source array -> float32 tensor [1, 1, S, S] in [-1, 1]."""
        import torch  # noqa: PLC0415 - see the module docstring

        crop = torch.from_numpy(np.ascontiguousarray(self._crop(array), dtype=np.float64))
        normed = (crop - self.low) / self.scale - 1.0
        resized = self._resize(normed[None, None].float(), self.model_size)
        return resized.clamp(-1.0, 1.0)

    def mask_to_model(self, mask: np.ndarray, rule: MaskRule = "any"):
        """Mask on the source grid -> float32 tensor [1, 1, S, S] in [0, 1].

        ``any``: a model pixel is in the mask if any source pixel of its
        footprint is (adaptive max pooling), so a binary edit mask is never
        shrunk and a keep mask never loses a thin structure.  ``mean``: the
        footprint's average, for soft masks.
        """
        import torch  # noqa: PLC0415 - see the module docstring
        import torch.nn.functional as F  # noqa: PLC0415

        crop = torch.from_numpy(np.ascontiguousarray(self._crop(mask), dtype=np.float32))[None, None]
        size = self.model_size
        if crop.shape[-1] >= size:
            pool = F.adaptive_max_pool2d if rule == "any" else F.adaptive_avg_pool2d
            return pool(crop, size)
        # Smaller than model space: every model pixel lies inside one source pixel.
        return F.interpolate(crop, size=(size, size), mode="nearest")

    # -- back --------------------------------------------------------------
    def model_to_crop(self, x) -> np.ndarray:
        """A model-space map [.., S, S] (tensor or array, any units) -> float64 [size, size] on the crop.

        Antialiased bilinear resizing, as on the way in; it is linear with
        non-negative weights, so a map of zeros comes back as exact zeros and
        a non-negative map stays non-negative.
        """
        import torch  # noqa: PLC0415 - see the module docstring

        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu", torch.float64)
        else:
            t = torch.from_numpy(np.asarray(x, np.float64))
        t = t.reshape(1, 1, self.model_size, self.model_size)
        return self._resize(t, self.crop[2])[0, 0].numpy()

    def to_values(self, model_units: np.ndarray) -> np.ndarray:
        """Model-space intensities (-1 .. 1) -> stored values (``low`` .. ``high``), float64."""
        return (np.asarray(model_units, dtype=np.float64) + 1.0) * self.scale + self.low
