"""Source image in, edited image out: the one path every adapter calls.

``RadEditor`` holds the loaded model; ``RadEditor.edit`` maps a
:class:`SourceImage` and its masks to model space, runs the pipeline and maps
the result back onto the exact source grid, dtype and stored-value range.
``edit_file`` adds reading, atomic writing and the provenance sidecar.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ._version import __version__
from .errors import ConfigError
from .fileio import check_writable, full_suffix, write_json
from .imaging.image import SourceImage
from .imaging.io import read_image, read_mask_array, write_like
from .imaging.masks import EditMasks, make_masks
from .imaging.intensity import to_stored
from .imaging.transform import ModelSpaceTransform
from .models.loading import RadEditComponents, load_components
from .pipelines.base import ProgressCallback
from .pipelines.pipeline_radedit import DEFAULT_GUIDANCE, DEFAULT_INVERT_GUIDANCE, RadEditPipeline
from .pipelines.pipeline_radedit_generation import RadEditGenerationPipeline

KeepMode = Literal["latent", "pixel"]
DetailMode = Literal["outside-edit", "everywhere", "none"]

#: Prompts of the paper (Sec. 5, App. 0.G), offered as presets by the adapters.
PAPER_PROMPTS = {
    "normal": "No acute cardiopulmonary process",
    "edema": "Moderate pulmonary edema. The heart size is normal",
    "pacemaker": (
        "Left pectoral pacemaker in place. The position of the leads is as expected. "
        "Otherwise unremarkable chest radiographic examination"
    ),
    "consolidation-left": "New left upper lobe consolidation",
    "consolidation-right": "New right upper lobe consolidation",
    "no-pneumothorax": "No pneumothorax",
}


@dataclass
class EditSettings:
    """Everything that decides an edit besides the image, masks and model.

    ``keep_mode``: ``latent`` applies the keep mask in the diffusion (the
    paper); ``pixel`` additionally copies the source pixels inside the keep
    mask after decoding, so kept structures are bit-identical to the source.
    ``detail``: where the source's fine detail (beyond model resolution) is
    kept when mapping back (see :mod:`radedit_core.imaging.transform`):
    outside the edit mask (default), everywhere, or nowhere.
    """

    prompts: list[str]
    weights: list[float] | None = None
    steps: int = 200
    skip_ratio: float = 0.3
    invert_prompt: str = ""
    invert_guidance: float = DEFAULT_INVERT_GUIDANCE
    eta: float = 1.0
    seed: int = 0
    inversion: Literal["ddpm", "ddim"] = "ddpm"
    keep_mode: KeepMode = "latent"
    dilate: int = 0
    soft_masks: bool = False
    detail: DetailMode = "outside-edit"
    reference_compat: bool = False
    latent_sampling: Literal["mode", "sample"] = "mode"
    inversion_batch_size: int | None = None
    batch_conditions: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.prompts, str):
            self.prompts = [self.prompts]
        if not self.prompts:
            raise ConfigError("at least one prompt is needed (an empty prompt list was given)")
        if self.weights is None:
            self.weights = [DEFAULT_GUIDANCE] * len(self.prompts)
        elif isinstance(self.weights, (int, float)):
            self.weights = [float(self.weights)] * len(self.prompts)
        if len(self.weights) != len(self.prompts):
            raise ConfigError(f"{len(self.prompts)} prompts but {len(self.weights)} guidance weights")
        if self.keep_mode not in ("latent", "pixel"):
            raise ConfigError(f"keep_mode must be 'latent' or 'pixel', got {self.keep_mode!r}")
        if self.detail not in ("outside-edit", "everywhere", "none"):
            raise ConfigError(f"detail must be 'outside-edit', 'everywhere' or 'none', got {self.detail!r}")
        if self.dilate < 0:
            raise ConfigError(f"dilation must be >= 0 pixels, got {self.dilate}")
        if not 0.0 <= self.skip_ratio < 1.0:
            raise ConfigError(f"skip_ratio must be in [0, 1), got {self.skip_ratio}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EditResult:
    source: SourceImage
    image: SourceImage
    masks: EditMasks
    transform: ModelSpaceTransform
    model_input: np.ndarray  # [S, S] in [-1, 1]
    model_output: np.ndarray  # [S, S] in [-1, 1]
    unet_evaluations: int
    unet_calls: int
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


class RadEditor:
    """A loaded model and its pipelines; reuse it for many edits."""

    def __init__(self, components: RadEditComponents, compile_unet: bool = False):
        self.components = components
        self.pipe = RadEditPipeline.from_components(components)
        self.generator_pipe = RadEditGenerationPipeline.from_components(components)
        if compile_unet:
            self.pipe.compile_unet()
            self.generator_pipe._unet_forward = self.pipe._unet_forward

    @classmethod
    def load(
        cls,
        model: Any = "radedit",
        *,
        device: str = "auto",
        dtype: str = "auto",
        vae_dtype: str = "float32",
        trust_remote_code: bool = False,
        local_files_only: bool | None = None,
        compile_unet: bool = False,
    ) -> "RadEditor":
        components = load_components(
            model,
            device=device,
            dtype=dtype,
            vae_dtype=vae_dtype,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
        )
        return cls(components, compile_unet=compile_unet)

    def set_progress(self, enabled: bool) -> None:
        for pipe in (self.pipe, self.generator_pipe):
            pipe.set_progress_bar_config(disable=not enabled)

    # -- editing -----------------------------------------------------------
    def edit(
        self,
        image: SourceImage,
        edit_mask: np.ndarray | None,
        keep_mask: np.ndarray | None,
        settings: EditSettings,
        callback: ProgressCallback | None = None,
        mask_paths: tuple[Any, Any] = (None, None),
    ) -> EditResult:
        """Edit one image; ``edit_mask=None`` edits everywhere (global edit)."""
        t0 = time.perf_counter()
        masks = make_masks(
            image,
            edit_mask,
            keep_mask,
            soft=settings.soft_masks,
            dilate_px=settings.dilate,
            edit_path=mask_paths[0],
            keep_path=mask_paths[1],
        )
        transform = ModelSpaceTransform.fit(image, self.pipe.model_resolution)
        rule = "mean" if settings.soft_masks else "any"
        model_image = transform.image_to_model(image.array)
        out = self.pipe(
            model_image,
            settings.prompts,
            weights=settings.weights,
            edit_mask=transform.mask_to_model(masks.edit, rule),
            keep_mask=None if masks.keep is None else transform.mask_to_model(masks.keep, rule),
            num_inference_steps=settings.steps,
            skip_ratio=settings.skip_ratio,
            invert_prompt=settings.invert_prompt,
            invert_guidance=settings.invert_guidance,
            eta=settings.eta,
            inversion=settings.inversion,
            reference_compat=settings.reference_compat,
            mask_rule=rule,
            latent_sampling=settings.latent_sampling,
            generator=settings.seed,
            inversion_batch_size=settings.inversion_batch_size,
            batch_conditions=settings.batch_conditions,
            callback=callback,
        )
        detail_weight = {
            "outside-edit": 1.0 - masks.edit,
            "everywhere": None,
            "none": np.zeros(image.shape, dtype=np.float32),
        }[settings.detail]
        edited = transform.model_to_image(out.images, image, detail_weight)
        if settings.keep_mode == "pixel" and masks.keep is not None:
            keep = masks.keep
            blended = keep * image.array.astype(np.float64) + (1.0 - keep) * edited.astype(np.float64)
            edited = np.where(keep >= 1.0, image.array, to_stored(blended, image))
        timings = dict(out.timings)
        timings["total"] = time.perf_counter() - t0
        result = EditResult(
            source=image,
            image=image.with_array(edited),
            masks=masks,
            transform=transform,
            model_input=model_image[0, 0].numpy(),
            model_output=out.images[0, 0].cpu().numpy(),
            unet_evaluations=out.unet_evaluations,
            unet_calls=out.unet_calls,
            timings=timings,
        )
        result.provenance = self.provenance(image, result, settings, mask_paths)
        return result

    def provenance(
        self,
        image: SourceImage,
        result: EditResult,
        settings: EditSettings,
        mask_paths: tuple[Any, Any],
    ) -> dict[str, Any]:
        changed = int(np.count_nonzero(result.image.array != image.array))
        return {
            "tool": "radedit_core",
            "version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "method": "RadEdit (Pérez-García, Bond-Taylor et al., ECCV 2024)",
            "input": {
                "path": None if image.path is None else str(image.path),
                "format": image.format,
                "shape": list(image.shape),
                "dtype": str(image.dtype),
                "value_range": list(image.value_range),
                "sha256": _sha256(image.path),
            },
            "masks": {
                "edit": None if mask_paths[0] is None else str(mask_paths[0]),
                "keep": None if mask_paths[1] is None else str(mask_paths[1]),
                "dilate_px": settings.dilate,
                "rule": "mean" if settings.soft_masks else "any",
                **result.masks.summary(),
            },
            "model": self.components.provenance(),
            "settings": settings.to_dict(),
            "transform": {
                "crop_row_col_size": list(result.transform.crop),
                "model_size": result.transform.model_size,
                "intensity_low": result.transform.low,
                "intensity_high": result.transform.high,
            },
            "result": {
                "unet_evaluations": result.unet_evaluations,
                "unet_calls": result.unet_calls,
                "changed_pixels": changed,
                "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
                "torch": torch.__version__,
            },
        }

    # -- generation --------------------------------------------------------
    def generate(
        self,
        prompts: list[str],
        steps: int = 100,
        guidance: float = 7.5,
        seed: int = 0,
        negative_prompt: str = "",
        num_images_per_prompt: int = 1,
        callback: ProgressCallback | None = None,
    ):
        return self.generator_pipe(
            prompts,
            num_inference_steps=steps,
            guidance_scale=guidance,
            negative_prompt=negative_prompt,
            num_images_per_prompt=num_images_per_prompt,
            generator=seed,
            callback=callback,
        )


def _sha256(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(output: str | Path) -> Path:
    """``out.nii.gz`` -> ``out.json`` (beside a DICOM series folder: ``series.json``)."""
    output = Path(output)
    suffix = full_suffix(output) if output.suffix else ""
    return output.with_name(output.name[: len(output.name) - len(suffix)] + ".json")


def model_image_to_array(image: torch.Tensor | np.ndarray, bits: int = 8) -> np.ndarray:
    """A [-1, 1] model-space image -> unsigned integers of ``bits`` bits (for PNG)."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    arr = np.squeeze(arr)
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.rint((np.clip(arr, -1, 1) + 1) / 2 * (2**bits - 1)).astype(dtype)


def edit_file(
    editor: RadEditor,
    image_path: str | Path,
    output: str | Path,
    settings: EditSettings,
    edit_mask_path: str | Path | None = None,
    keep_mask_path: str | Path | None = None,
    overwrite: bool = False,
    callback: ProgressCallback | None = None,
    write_output=None,
) -> EditResult:
    """Read, edit, write atomically, then write the provenance sidecar.

    ``write_output(result, output, overwrite)`` overrides how the edited image
    is written (the DICOM writer plugs in here); by default the output's
    suffix picks PNG, NIfTI or NRRD with the source geometry.
    """
    output = Path(output)
    sidecar = sidecar_path(output)
    # Fail before minutes of computation, and never touch the inputs.
    check_writable(output, overwrite)
    check_writable(sidecar, overwrite)
    image = read_image(image_path)
    edit = None if edit_mask_path is None else read_mask_array(edit_mask_path, image)
    keep = None if keep_mask_path is None else read_mask_array(keep_mask_path, image)
    result = editor.edit(image, edit, keep, settings, callback, (edit_mask_path, keep_mask_path))
    if write_output is None:
        write_like(output, result.image.array, result.image, overwrite=overwrite)
    else:
        write_output(result, output, overwrite)
    result.provenance["output"] = {"path": str(output)}
    try:
        write_json(sidecar, result.provenance, overwrite=overwrite)
    except Exception:
        _remove(output)
        raise
    return result


def _remove(path: Path) -> None:
    import shutil  # noqa: PLC0415

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


__all__ = [
    "EditResult",
    "EditSettings",
    "PAPER_PROMPTS",
    "RadEditor",
    "edit_file",
    "model_image_to_array",
    "sidecar_path",
]
