"""The offline demo: the bundled sample image, edited with the demo model.

The sample is a phantom-world case (:func:`sample_phantom_case`): a large
right pneumothorax crossed by the chest drain that treats it, and a left
pacemaker, 640 x 560 pixels, 12 bits stored.  The demo removes the
pneumothorax ("No pneumothorax" inside the pneumothorax mask) and keeps the
drain (keep mask, copied bit for bit with ``keep_mode="pixel"``): the
paper's manifestation-shift edit.  It exercises the whole path a real edit
takes: a non-square source, inversion, masked guidance, the keep mask, and
the exact mapping back onto the source grid, plus a side-by-side picture to
look at.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .edit_request import EditRequest, prepare_edit
from .fileio import check_writable, remove
from .imaging.image import Geometry
from .imaging.io import write_image
from .phantom_world import WorldConfig, sample_case
from .settings import PAPER_PROMPTS, EditSettings, cli_name


#: The sample case: the default phantom world drawn at 640 x 560 with this case seed
#: (scripts/make_sample_data.py writes it as radedit_core/data/sample and sample_study).
SAMPLE_SHAPE = (640, 560)
SAMPLE_CASE_SEED = 178


def sample_dir() -> Path:
    return Path(str(resources.files("radedit_core") / "data" / "sample"))


def sample_phantom_case():
    """The bundled sample's phantom-world case (:class:`radedit_core.phantom_world.Case`), rendered again."""
    return sample_case(WorldConfig(rows=SAMPLE_SHAPE[0], columns=SAMPLE_SHAPE[1]), SAMPLE_CASE_SEED)


def comparison_strip(source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """source | edited | amplified absolute difference, 8-bit, for viewing."""
    lo, hi = float(source.min()), float(source.max())
    scale = lambda a: np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)  # noqa: E731
    diff = np.abs(edited.astype(np.float64) - source.astype(np.float64))
    diff = diff / max(float(diff.max()), 1e-9)
    gap = np.ones((source.shape[0], 8))
    strip = np.concatenate([scale(source), gap, scale(edited), gap, diff], axis=1)
    return np.rint(strip * 255).astype(np.uint8)


def prepare_demo(output: str | Path, steps: Any = 200, overwrite: bool = False) -> EditRequest:
    """The demo's edit, checked before the model loads: "No pneumothorax" inside the pneumothorax, the drain kept."""
    output = Path(output)
    check_writable(output / "comparison.png", overwrite)
    sample = sample_dir()
    settings = EditSettings.from_mapping({"prompts": [PAPER_PROMPTS["no-pneumothorax"]], "steps": steps}, cli_name)
    return prepare_edit(
        sample / "cxr.png",
        sample / "pneumothorax_mask.png",
        sample / "drain_mask.png",
        settings,
        output / "edited.png",
        overwrite=overwrite,
    )


def run_demo(editor: Any, request: EditRequest) -> list[Path]:
    """Edit, write ``edited.png`` (+ sidecar) and ``comparison.png`` (source | edited | difference)."""
    from .workflow import run_edit  # noqa: PLC0415 - torch only once the inputs are good

    strip_path = request.output.parent / "comparison.png"
    result, _ = run_edit(editor, request)
    strip = comparison_strip(result.source.array, result.image.array)
    try:
        write_image(strip_path, strip, Geometry(), overwrite=request.overwrite)
    except BaseException:
        remove(request.output)
        remove(request.sidecar)
        raise
    return [request.output, request.sidecar, strip_path]
