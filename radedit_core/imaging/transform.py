"""Source grid <-> model space, with an exact inverse.

Forward (paper, App. 0.D): centre-crop the largest square, resize it to the
model resolution (512 for RadEdit) with antialiased bilinear interpolation, map
the intensity range to [-1, 1].  We crop first and then resize, which equals
"short side to 512, centre crop 512" up to the sub-pixel rounding of the crop
offset, and makes the crop an integer box on the source grid that can be undone
exactly.

Inverse: the edited model-space image is brought back as a *change*.  Inside
the crop the output is

    out = src + up(edited - pre) * s - (1 - w) * (src - up_denorm(pre))

where ``pre`` is the forward transform of the source, ``up`` resizes model space
to the crop, ``s`` converts model units to stored values and ``w`` in [0, 1]
says where the source's own fine detail (what the model resolution cannot
represent) is kept.  With ``w = 1`` the source's detail is kept everywhere; with
``w = 0`` the output is the upsampled model image.  Outside the crop, and
wherever nothing changed, the source is returned bit for bit: with no edit
(``edited == pre``) and ``w = 1`` the round trip is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .image import SourceImage
from .intensity import to_stored

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

    def _crop(self, array: np.ndarray) -> np.ndarray:
        if tuple(array.shape) != self.source_shape:
            raise ValueError(f"array {array.shape} is not on the source grid {self.source_shape}")
        r0, c0, size = self.crop
        return array[r0 : r0 + size, c0 : c0 + size]

    def _resize(self, x: torch.Tensor, size: int) -> torch.Tensor:
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    # -- forward -----------------------------------------------------------
    def image_to_model(self, array: np.ndarray) -> torch.Tensor:
        """Source array -> float32 tensor [1, 1, S, S] in [-1, 1]."""
        crop = torch.from_numpy(np.ascontiguousarray(self._crop(array), dtype=np.float64))
        normed = (crop - self.low) / self.scale - 1.0
        resized = self._resize(normed[None, None].float(), self.model_size)
        return resized.clamp(-1.0, 1.0)

    def mask_to_model(self, mask: np.ndarray, rule: MaskRule = "any") -> torch.Tensor:
        """Mask on the source grid -> float32 tensor [1, 1, S, S] in [0, 1].

        ``any``: a model pixel is in the mask if any source pixel of its
        footprint is (adaptive max pooling), so a binary edit mask is never
        shrunk and a keep mask never loses a thin structure.  ``mean``: the
        footprint's average, for soft masks.
        """
        crop = torch.from_numpy(np.ascontiguousarray(self._crop(mask), dtype=np.float32))[None, None]
        size = self.model_size
        if crop.shape[-1] >= size:
            pool = F.adaptive_max_pool2d if rule == "any" else F.adaptive_avg_pool2d
            return pool(crop, size)
        # Smaller than model space: every model pixel lies inside one source pixel.
        return F.interpolate(crop, size=(size, size), mode="nearest")

    # -- inverse -----------------------------------------------------------
    def model_to_image(
        self,
        edited: torch.Tensor,
        source: SourceImage,
        detail_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        """Edited model-space image [.., S, S] in [-1, 1] -> source grid and dtype.

        ``detail_weight`` (source grid, values in [0, 1], default all ones) is
        ``w`` of the module docstring.
        """
        r0, c0, size = self.crop
        src = source.array
        edited = edited.detach().to("cpu", torch.float32).reshape(1, 1, self.model_size, self.model_size)
        pre = self.image_to_model(src)
        up = lambda x: F.interpolate(  # noqa: E731 - local shorthand
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )[0, 0].double().numpy()
        src_crop = self._crop(src).astype(np.float64)
        change = up(edited.clamp(-1.0, 1.0) - pre) * self.scale
        out_crop = src_crop + change
        if detail_weight is not None:
            w = np.clip(self._crop(np.asarray(detail_weight, dtype=np.float64)), 0.0, 1.0)
            smooth_src = (up(pre) + 1.0) * self.scale + self.low
            out_crop = out_crop - (1.0 - w) * (src_crop - smooth_src)
        out = src.astype(np.float64, copy=True)
        out[r0 : r0 + size, c0 : c0 + size] = out_crop
        return to_stored(out, source)
