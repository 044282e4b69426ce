"""Sample grids: model-space images tiled into one 8-bit grayscale PNG per evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path


def tile(images: torch.Tensor, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """[N, 1, S, S] in [-1, 1] -> uint8 [rows x S + gaps, columns x S + gaps], row-major, black gaps."""
    n, _, size, _ = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * size + (rows - 1) * gap, columns * size + (columns - 1) * gap), np.uint8)
    pixels = ((images[:, 0].detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    for k in range(n):
        r, c = divmod(k, columns)
        y, x = r * (size + gap), c * (size + gap)
        grid[y : y + size, x : x + size] = pixels[k]
    return grid


def write_grid(images: torch.Tensor, path: str | Path, columns: int | None = None) -> Path:
    """Write :func:`tile` of ``images`` as a PNG, atomically (replacing an older grid of that name)."""
    from PIL import Image  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        Image.fromarray(tile(images, columns)).save(tmp, format="PNG")
    return path
