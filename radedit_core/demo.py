"""The offline demo: the bundled sample image, edited with the tiny model.

It exercises the whole path a real edit takes: a 12-bit non-square source,
an edit mask over both lungs, a keep mask over the pacemaker (kept bit for
bit with ``keep_mode="pixel"``), inversion, masked guidance, and the exact
mapping back onto the source grid, plus a side-by-side picture to look at.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .fileio import check_writable
from .imaging.image import Geometry
from .imaging.io import write_image
from .workflow import PAPER_PROMPTS, EditSettings, RadEditor, edit_file, sidecar_path


def sample_dir() -> Path:
    return Path(str(resources.files("radedit_core") / "data" / "sample"))


def comparison_strip(source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """source | edited | amplified absolute difference, 8-bit, for viewing."""
    lo, hi = float(source.min()), float(source.max())
    scale = lambda a: np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)  # noqa: E731
    diff = np.abs(edited.astype(np.float64) - source.astype(np.float64))
    diff = diff / max(float(diff.max()), 1e-9)
    gap = np.ones((source.shape[0], 8))
    strip = np.concatenate([scale(source), gap, scale(edited), gap, diff], axis=1)
    return np.rint(strip * 255).astype(np.uint8)


def run_demo(editor: RadEditor, output: str | Path, steps: int = 200, overwrite: bool = False) -> list[Path]:
    output = Path(output)
    sample = sample_dir()
    edited_path = output / "edited.png"
    strip_path = output / "comparison.png"
    for path in (edited_path, sidecar_path(edited_path), strip_path):
        check_writable(path, overwrite)
    settings = EditSettings(
        prompts=[PAPER_PROMPTS["edema"]],
        steps=steps,
        keep_mode="pixel",
        dilate=5,
    )
    result = edit_file(
        editor,
        sample / "cxr.png",
        edited_path,
        settings,
        edit_mask_path=sample / "lungs_mask.png",
        keep_mask_path=sample / "pacemaker_mask.png",
        overwrite=overwrite,
    )
    strip = comparison_strip(result.source.array, result.image.array)
    write_image(strip_path, strip, Geometry(), overwrite=overwrite)
    return [edited_path, sidecar_path(edited_path), strip_path]
