"""Does the keep mask keep the device and not its neighbourhood?  Measured against the true counterfactual.

A phantom case with a drain crossing a pneumothorax is edited ("No
pneumothorax" inside the pneumothorax mask, the drain kept) and compared with
the same case rendered without its pneumothorax (the world's true
counterfactual), in stored values:

* ``share(region) = 1 - mean(edited - cf) / mean(source - cf)`` over a region
  of the pneumothorax: the share of the finding's mean darkness the edit
  removed there (0: none, 1: all);
* ``ring``: the pneumothorax within 2-12 px of the drain (:data:`RING_PX`),
  where a keep mask dilated by 5 px, or the latent cells it touches, kept a
  band of the finding; ``whole``: the pneumothorax outside the drain;
  ``ring_ratio = share(ring) / share(whole)`` (1: the ring is edited like the
  rest of the finding);
* ``device_exact``: every pixel of the true drain mask is the source's, bit
  for bit (pixel keep mode); ``device_changed_pixels`` counts those that are not;
* ``device_contrast_kept``: the drain's own contrast (mean over its pixels of
  the image less the case rendered without drain and pneumothorax) in the
  edit, as a share of the counterfactual's: near 1 when the drain is there,
  near 0 when the edit took it.

Keep masks (:data:`KEEP_MASKS`): ``exact`` (the world's drain mask),
``misses_border`` (eroded by 2 px: an annotation that misses the device's
border) and ``too_large`` (dilated by 10 px).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..imaging import masks
from ..phantom_world import Case, WorldConfig, render_case, sample_case
from .data import case_image

#: Inner and outer distance (source pixels) of the ring beside the device.
RING_PX = (2, 12)
#: How each tested keep mask is drawn from the world's drain mask: (erode px, dilate px).
KEEP_MASKS = {"exact": (0, 0), "misses_border": (2, 0), "too_large": (0, 10)}


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    return masks.dilate(np.asarray(mask, bool).astype(np.float32), px) > 0 if px else np.asarray(mask, bool)


def crossing_cases(config: WorldConfig, n: int, start: int = 0, min_ring_px: int = 400,
                   limit: int = 2000) -> list[Case]:  # fmt: skip
    """The first ``n`` cases (seeds from ``start``) whose drain crosses the pneumothorax with a ring
    of at least ``min_ring_px`` pneumothorax pixels beside it."""
    out = []
    for seed in range(start, start + limit):
        case = sample_case(config, seed)
        if case.labels["pneumothorax"] and case.labels["drain"] and ring(case).sum() >= min_ring_px:
            out.append(case)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} crossing cases among seeds {start}..{start + limit - 1}")


def ring(case: Case) -> np.ndarray:
    """The pneumothorax within :data:`RING_PX` of the drain (bool, source grid)."""
    drain = case.masks["drain"]
    return _grow(drain, RING_PX[1]) & ~_grow(drain, RING_PX[0]) & case.masks["pneumothorax"]


def keep_mask(case: Case, name: str) -> np.ndarray:
    erode_px, dilate_px = KEEP_MASKS[name]
    return _grow(masks.erode(case.masks["drain"], erode_px), dilate_px)


def measure(case: Case, edited: np.ndarray) -> dict[str, Any]:
    """The figures of the module docstring for one edit of ``case`` (``edited``: stored values)."""
    source = case_image(case).array.astype(np.float64)
    cf = case_image(render_case(case.parameters, exclude=["pneumothorax"])).array.astype(np.float64)
    bare = case_image(render_case(case.parameters, exclude=["pneumothorax", "drain"])).array.astype(np.float64)
    edited = np.asarray(edited)
    drain, ptx = case.masks["drain"], case.masks["pneumothorax"]

    def share(region: np.ndarray) -> float:
        return float(1.0 - (edited - cf)[region].mean() / (source - cf)[region].mean())

    whole, near = ptx & ~drain, ring(case)
    s_ring, s_whole = share(near), share(whole)
    changed = int(np.count_nonzero(edited[drain] != case_image(case).array[drain]))
    return {
        "ring_share": s_ring,
        "whole_share": s_whole,
        "ring_ratio": s_ring / s_whole if s_whole > 0 else float("nan"),
        "device_exact": changed == 0,
        "device_changed_pixels": changed,
        "device_contrast_kept": float((edited - bare)[drain].mean() / (cf - bare)[drain].mean()),
        "ring_pixels": int(near.sum()),
    }


def run_cases(
    edit: Callable[[Any, np.ndarray, np.ndarray], np.ndarray],
    cases: list[Case],
    keep_names: tuple[str, ...] = tuple(KEEP_MASKS),
) -> dict[str, list[dict[str, Any]]]:
    """``edit(source_image, edit_mask, keep_mask) -> edited stored values`` on each case and keep mask."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in keep_names}
    for case in cases:
        image = case_image(case)
        for name in keep_names:
            out[name].append({"seed": case.seed, **measure(case, edit(image, case.masks["pneumothorax"],
                                                                        keep_mask(case, name)))})  # fmt: skip
    return out


__all__ = ["KEEP_MASKS", "RING_PX", "crossing_cases", "keep_mask", "measure", "ring", "run_cases"]
