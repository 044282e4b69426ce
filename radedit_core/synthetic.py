"""Synthetic chest-X-ray-like phantoms for tests, the demo and the sample study.

Not anatomy: a deterministic drawing with the structures that matter for
editing (two lungs, heart, spine, ribs, clavicles, diaphragm, an optional
pacemaker with a lead) and their label masks, so edit/keep masks can be
painted exactly where a user would paint them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = {"right_lung": 1, "left_lung": 2, "heart": 3, "pacemaker": 4}


@dataclass
class Phantom:
    image: np.ndarray  # float64 in [0, 1], bright = dense (MONOCHROME2)
    labels: np.ndarray  # uint8 label map, values from LABELS

    def mask(self, *names: str) -> np.ndarray:
        return np.isin(self.labels, [LABELS[n] for n in names])


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def chest_phantom(
    rows: int = 512,
    cols: int = 512,
    seed: int = 0,
    pacemaker: bool = True,
    noise: float = 0.01,
) -> Phantom:
    """Draw a frontal chest radiograph phantom of the given size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    y, x = yy / rows, xx / cols  # normalised coordinates
    img = np.full((rows, cols), 0.08)
    labels = np.zeros((rows, cols), dtype=np.uint8)

    body = _ellipse(y, x, 0.58, 0.5, 0.55, 0.46)
    img[body] = 0.55
    # Lungs: dark, slightly asymmetric, with a smooth gradient to the bases.
    right = _ellipse(y, x, 0.47, 0.31, 0.30, 0.14)
    left = _ellipse(y, x, 0.49, 0.69, 0.28, 0.13)
    img[right | left] = 0.22 + 0.08 * (y[right | left] - 0.2)
    labels[right] = LABELS["right_lung"]
    labels[left] = LABELS["left_lung"]
    # Heart overlapping the left lung's medial border, mediastinum and spine.
    heart = _ellipse(y, x, 0.62, 0.56, 0.15, 0.14)
    img[heart] = 0.62
    labels[heart] = LABELS["heart"]
    spine = (np.abs(x - 0.5) < 0.045) & (y > 0.12) & body
    img[spine] = np.maximum(img[spine], 0.7)
    # Diaphragm domes below the lungs.
    for cx in (0.31, 0.69):
        dome = _ellipse(y, x, 0.86, cx, 0.12, 0.17) & ~(right | left)
        img[dome & body] = np.maximum(img[dome & body], 0.6)
    # Ribs: arcs through the lungs, clavicles across the top.
    for k in range(8):
        for side, cx in ((-1, 0.31), (1, 0.69)):
            cy = 0.24 + 0.075 * k
            arc = np.abs((y - cy) - 0.35 * (x - cx) ** 2 * 4 - 0.02 * side * (x - cx) * 4) < 0.008
            arc &= np.abs(x - cx) < 0.17
            img[arc & body] += 0.12
    for cx in (0.35, 0.65):
        clav = (np.abs(y - 0.17 - 0.15 * (x - cx) ** 2 * 8) < 0.012) & (np.abs(x - cx) < 0.14)
        img[clav] += 0.15
    if pacemaker:
        box = (np.abs(y - 0.2) < 0.025) & (np.abs(x - 0.78) < 0.04)
        t = np.linspace(0, 1, 400)
        lead_y = 0.2 + 0.42 * t
        lead_x = 0.78 - 0.2 * t + 0.04 * np.sin(6 * t)
        lead = np.zeros_like(box)
        ly = np.clip((lead_y * rows).astype(int), 0, rows - 1)
        lx = np.clip((lead_x * cols).astype(int), 0, cols - 1)
        thick = max(1, rows // 256)
        for dy in range(-thick, thick + 1):
            for dx in range(-thick, thick + 1):
                lead[np.clip(ly + dy, 0, rows - 1), np.clip(lx + dx, 0, cols - 1)] = True
        device = box | lead
        img[device] = 0.97
        labels[device] = LABELS["pacemaker"]
    # Soft blur-free texture plus quantum-like noise, then clip.
    img += noise * rng.standard_normal(img.shape)
    img += 0.03 * np.sin(2 * np.pi * (3 * x + 2 * y)) * body
    return Phantom(image=np.clip(img, 0.0, 1.0), labels=labels)


def quantise(image: np.ndarray, bits: int, dtype=None) -> np.ndarray:
    """[0, 1] floats -> unsigned integers using ``bits`` bits (in uint8/uint16)."""
    if dtype is None:
        dtype = np.uint8 if bits <= 8 else np.uint16
    return np.rint(np.clip(image, 0, 1) * (2**bits - 1)).astype(dtype)
