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
from .fileio import atomic_path, check_writable, output_path, remove
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


#: Outline colours of the comparison picture (the report's gallery uses the same).
EDIT_OUTLINE, KEEP_OUTLINE = "#ffd000", "#00d0ff"


def comparison_figure(source: np.ndarray, edited: np.ndarray, edit_mask: np.ndarray | None, keep_mask: np.ndarray | None,
                      prompt: str, settings_text: str = "") -> np.ndarray:  # fmt: skip
    """source | edited | |edited - source|, each panel named, the prompt as the title and the edit (yellow) and
    keep (cyan) masks outlined: an RGB uint8 picture ``[H, W, 3]``, about 3 source widths wide, for viewing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    lo, hi = float(source.min()), float(source.max())
    scale = lambda a: np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)  # noqa: E731
    diff = np.abs(edited.astype(np.float64) - source.astype(np.float64)) / max(hi - lo, 1e-9)
    h, w = source.shape[:2]
    dpi = 100
    fig = Figure(figsize=(3 * w / dpi + 1.2, h / dpi + 1.3), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    limit = max(float(diff.max()), 1e-6)
    panels = ((scale(source), "source", "gray", 1.0), (scale(edited), "edited", "gray", 1.0),
              (diff, f"|edited − source| (0 to {limit:.2f} of the source range)", "magma", limit))  # fmt: skip
    for ax, (image, title, cmap, vmax) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        for mask, colour in ((edit_mask, EDIT_OUTLINE), (keep_mask, KEEP_OUTLINE)):
            if mask is not None and np.any(mask) and not np.all(mask):
                ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=[colour], linewidths=1.2)
        ax.set_title(title, fontsize=11)
        ax.set_axis_off()
    handles = [Line2D([0], [0], color=EDIT_OUTLINE, label="edit mask"), Line2D([0], [0], color=KEEP_OUTLINE, label="keep mask")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=10, frameon=False)
    fig.suptitle(f'Prompt: "{prompt}"' + (f" ({settings_text})" if settings_text else ""), fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def prepare_demo(output: str | Path, steps: Any = 200, overwrite: bool = False, model: Any = None) -> EditRequest:
    """The demo's edit, checked before the model loads: "No pneumothorax" inside the pneumothorax, the drain kept.

    ``model``: the model option (its files count as inputs: no output may replace one).

    Raises:
        ConfigError: ``output`` is empty, or a setting is invalid.
        OutputError: an output exists (without ``overwrite``) or would replace an input.
    """
    output = output_path(output, "--output")
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
        model=model,
    )


def run_demo(editor: Any, request: EditRequest) -> list[Path]:
    """Edit, write ``edited.png`` (+ sidecar) and ``comparison.png`` (source | edited | difference)."""
    from .workflow import run_edit  # noqa: PLC0415 - torch only once the inputs are good

    strip_path = request.output.parent / "comparison.png"
    result, _ = run_edit(editor, request)
    s = request.settings
    picture = comparison_figure(
        result.source.array, result.image.array, result.masks.edit > 0.5,
        None if result.masks.keep is None else result.masks.keep > 0.5, " | ".join(s.prompts),
        f"guidance {', '.join(f'{w:g}' for w in s.weights)}, {s.steps} steps, skip ratio {s.skip_ratio:g}, seed {s.seed}",
    )  # fmt: skip
    try:
        from PIL import Image  # noqa: PLC0415


        with atomic_path(strip_path, overwrite=request.overwrite) as tmp:
            Image.fromarray(picture).save(tmp, format="PNG")
    except BaseException:
        remove(request.output)
        remove(request.sidecar)
        raise
    return [request.output, request.sidecar, strip_path]
