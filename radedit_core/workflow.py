"""Source image in, edited image out: the one route every front end takes.

1. :func:`prepare_edit` checks everything that needs no model: the output
   (writable, format, DICOM-only options), the image (located in a DICOM
   folder, read), the masks (on the image's grid, not empty) and the DICOM
   series number, so that a bad input stops in a second, before the model
   loads and before anything is written.
2. :class:`RadEditor` holds the loaded model; :meth:`RadEditor.edit` maps a
   :class:`SourceImage` and its masks to model space, runs the pipeline and
   composites the result onto the exact source grid, dtype and stored-value
   range (:func:`radedit_core.imaging.compositing.composite`).
3. :func:`run_edit` edits a prepared request and writes the output and its
   provenance sidecar as one group (both or neither).
   :meth:`RadEditor.edit_batch` edits several prepared requests in one
   pipeline pass (each image mapped there and back on its own, by the same
   steps as :meth:`RadEditor.edit`), and :func:`write_edit_result` writes
   each.

:func:`edit_file` is 1 + 3 for scripts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ._version import __version__
from .edit_request import EditRequest, prepare_edit
from .errors import ConfigError
from .fileio import OutputGroup, check_writable, output_path, toolkit_record
from .imaging.compositing import composite
from .imaging.image import Geometry, SourceImage
from .imaging.io import write_image_file
from .imaging.masks import EditMasks, dominated_cells, make_masks
from .imaging.transform import ModelSpaceTransform
from .models.loading import RadEditComponents, load_components
from .outputs import DicomOutputOptions, WrittenOutput, output_notes, sidecar_path, write_edit
from .pipelines.base import ProgressCallback
from .pipelines.pipeline_radedit import RadEditPipeline, RadEditPipelineOutput
from .pipelines.pipeline_radedit_generation import RadEditGenerationPipeline
from .provenance import edit_provenance, header, image_notes, warn_notes
from .settings import BATCH_KEYS, PAPER_PROMPTS, EditSettings, GenerateSettings, ModelOptions


@dataclass
class ModelInputs:
    """One source image and its masks mapped to model space: what the pipeline gets for it.

    ``image`` [1, 1, S, S] in [-1, 1]; ``edit``/``keep`` [1, 1, S, S] in [0, 1]
    (``keep`` None: nothing kept); ``rule`` how the masks reach the latent grid.
    """

    masks: EditMasks
    transform: ModelSpaceTransform
    image: torch.Tensor
    edit: torch.Tensor
    keep: torch.Tensor | None
    rule: str


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
    #: Per prompt: its token count and whether the encoder's max length cut it.
    text: list[dict[str, Any]] = field(default_factory=list)
    #: One-line notes for the sidecar and the console (readers' interpretations, truncated prompts, ...).
    notes: list[str] = field(default_factory=list)
    #: decode(x0) [S, S] in [-1, 1]: the VAE's reconstruction that the compositing subtracts.
    model_reconstruction: np.ndarray | None = None
    #: What the compositing did (:func:`radedit_core.imaging.compositing.composite`'s figures).
    compositing: dict[str, Any] = field(default_factory=dict)
    #: Images edited in the same pipeline pass (UNet calls and stage timings are the pass's).
    batch_size: int = 1


class RadEditor:
    """A loaded model and its pipelines; reuse it for many edits."""

    def __init__(self, components: RadEditComponents, compile_unet: bool = False):
        self.components = components
        self.pipe = RadEditPipeline.from_components(components)
        self.generator_pipe = RadEditGenerationPipeline.from_components(components)
        if compile_unet:
            self.pipe.prepare_unet()
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

    @classmethod
    def from_options(cls, options: ModelOptions) -> "RadEditor":
        """Load the model :class:`~radedit_core.settings.ModelOptions` describe."""
        return cls.load(
            options.model,
            device=options.device,
            dtype=options.dtype,
            vae_dtype=options.vae_dtype,
            trust_remote_code=options.trust_remote_code,
            local_files_only=options.local_files_only,
            compile_unet=options.compile,
        )

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
        inputs = self.to_model_space(image, edit_mask, keep_mask, settings, mask_paths)
        out = self.pipe(
            inputs.image,
            settings.prompts,
            weights=settings.weights,
            edit_mask=inputs.edit,
            keep_mask=inputs.keep,
            num_inference_steps=settings.steps,
            skip_ratio=settings.skip_ratio,
            invert_prompt=settings.invert_prompt,
            invert_guidance=settings.invert_guidance,
            eta=settings.eta,
            inversion=settings.inversion,
            reference_compat=settings.reference_compat,
            mask_rule=inputs.rule,
            latent_sampling=settings.latent_sampling,
            generator=settings.seed,
            inversion_batch_size=settings.inversion_batch_size,
            batch_conditions=settings.batch_conditions,
            callback=callback,
        )
        return self.finish_edit(image, inputs, out, settings, t0, mask_paths)

    def to_model_space(
        self,
        image: SourceImage,
        edit_mask: np.ndarray | None,
        keep_mask: np.ndarray | None,
        settings: EditSettings,
        mask_paths: tuple[Any, Any] = (None, None),
    ) -> ModelInputs:
        """The masks checked and dilated on the source grid, then the image and masks in model space."""
        masks = make_masks(
            image,
            edit_mask,
            keep_mask,
            soft=settings.soft_masks,
            dilate_px=settings.dilate,
            edit_path=mask_paths[0],
            keep_path=mask_paths[1],
            keep_scope=settings.keep_scope,
        )
        transform = ModelSpaceTransform.fit(image, self.pipe.model_resolution)
        rule = "mean" if settings.soft_masks else "any"
        keep = None
        if masks.keep is not None:
            if settings.keep_scope == "device":
                # Only the latent cells the device dominates are pinned: a cell touched by a thin
                # device is mostly the background the edit should change.
                cells = dominated_cells(transform.mask_to_model(masks.keep, "mean")[0, 0].numpy(),
                                        self.pipe.vae_scale_factor)  # fmt: skip
                keep = torch.from_numpy(cells)[None, None]
            else:
                keep = transform.mask_to_model(masks.keep, rule)
        return ModelInputs(
            masks=masks,
            transform=transform,
            image=transform.image_to_model(image.array),
            edit=transform.mask_to_model(masks.edit, rule),
            keep=keep,
            rule=rule,
        )

    def finish_edit(
        self,
        image: SourceImage,
        inputs: ModelInputs,
        out: RadEditPipelineOutput,
        settings: EditSettings,
        t0: float,
        mask_paths: tuple[Any, Any] = (None, None),
        batch_size: int = 1,
    ) -> EditResult:
        """One image's pipeline outputs (a batch of one: ``out.select(b)`` of a batch) -> its
        :class:`EditResult`: the edit composited onto the source grid, dtype and stored-value
        range (:func:`radedit_core.imaging.compositing.composite`: the change against the VAE's
        reconstruction, the keep mask's pixels restored), notes and provenance.  ``t0``: when the
        edit (or its batch) started."""
        masks, transform, model_image = inputs.masks, inputs.transform, inputs.image
        t_composite = time.perf_counter()
        composited = composite(
            image, transform, masks, out.images[0], out.reconstruction[0], detail=settings.detail,
            keep_mode=settings.keep_mode,
        )  # fmt: skip
        timings = dict(out.timings)
        timings["composite"] = time.perf_counter() - t_composite
        timings["total"] = time.perf_counter() - t0
        text = out.text
        notes = image_notes(image) + masks.notes + [
            f"prompt {t['prompt']!r} has {t['tokens']} tokens; the text encoder reads the first {t['max_length']}"
            for t in text
            if t["truncated"]
        ] + composited.notes
        result = EditResult(
            source=image,
            image=image.with_array(composited.array),
            masks=masks,
            transform=transform,
            model_input=model_image[0, 0].numpy(),
            model_output=out.images[0, 0].cpu().numpy(),
            unet_evaluations=out.unet_evaluations,
            unet_calls=out.unet_calls,
            timings=timings,
            text=text,
            notes=notes,
            model_reconstruction=out.reconstruction[0, 0].cpu().numpy(),
            compositing=composited.figures,
            batch_size=batch_size,
        )
        result.provenance = edit_provenance(result, settings, self.components.provenance(), mask_paths)
        if batch_size > 1:
            # The pass's figures, shared by its images: a reader must not sum them per image.
            result.provenance["result"]["batch_size"] = batch_size
        return result

    def edit_batch(
        self,
        requests: Sequence[EditRequest],
        callback: ProgressCallback | None = None,
        pad_to: int | None = None,
    ) -> list[EditResult]:
        """Edit several prepared requests (:func:`prepare_edit`) in one pipeline pass.

        Each image is mapped to model space and back by the same steps as
        :meth:`edit` and keeps its own masks, prompts, weights, seed, dilation,
        keep mode and detail; every reverse step is one UNet call for all of
        them.  The results equal :meth:`edit` of each request up to float
        rounding (the UNet's kernels round differently at other batch sizes).
        ``pad_to``: repeat the last image up to this batch size, so that a
        compiled UNet sees the shapes it was compiled for; the repeats' results
        are dropped.

        Raises:
            ConfigError: the requests differ in a setting of
                :meth:`EditSettings.batch_key` (group them first, as the batch
                runner does).
        """
        if not requests:
            return []
        t0 = time.perf_counter()
        first = requests[0].settings
        for request in requests[1:]:
            if request.settings.batch_key() != first.batch_key():
                differ = [k for k in BATCH_KEYS if getattr(request.settings, k) != getattr(first, k)]
                raise ConfigError(f"edits in one batch must share {', '.join(differ)}; group them by these settings")
        inputs = [
            self.to_model_space(r.image, r.edit, r.keep, r.settings, (r.edit_ref, r.keep_ref)) for r in requests
        ]
        rows = list(range(len(requests)))
        rows += [rows[-1]] * max(0, (pad_to or 0) - len(rows))
        out = self.pipe(
            torch.cat([inputs[k].image for k in rows]),
            [requests[k].settings.prompts for k in rows],
            weights=[requests[k].settings.weights for k in rows],
            edit_mask=[inputs[k].edit for k in rows],
            keep_mask=[inputs[k].keep for k in rows],
            num_inference_steps=first.steps,
            skip_ratio=first.skip_ratio,
            invert_prompt=first.invert_prompt,
            invert_guidance=first.invert_guidance,
            eta=first.eta,
            inversion=first.inversion,
            reference_compat=first.reference_compat,
            mask_rule=inputs[0].rule,
            latent_sampling=first.latent_sampling,
            generator=[requests[k].settings.seed for k in rows],
            inversion_batch_size=first.inversion_batch_size,
            batch_conditions=first.batch_conditions,
            callback=callback,
        )
        return [
            self.finish_edit(r.image, inputs[b], out.select(b), r.settings, t0, (r.edit_ref, r.keep_ref), len(rows))
            for b, r in enumerate(requests)
        ]

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


def model_image_to_array(image: torch.Tensor | np.ndarray, bits: int = 8) -> np.ndarray:
    """A [-1, 1] model-space image -> unsigned integers of ``bits`` bits (for PNG)."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    arr = np.squeeze(arr)
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.rint((np.clip(arr, -1, 1) + 1) / 2 * (2**bits - 1)).astype(dtype)


# -- the route: prepare (no model: radedit_core.edit_request), then run ----------------------


def run_edit(
    editor: "RadEditor",
    request: EditRequest,
    callback: ProgressCallback | None = None,
    extra: dict[str, Any] | None = None,
    finish: Callable[[EditResult], None] | None = None,
) -> tuple[EditResult, WrittenOutput]:
    """Edit a prepared request; write the output and its sidecar (both or neither).

    ``extra``: blocks the front end adds to the sidecar (``batch``, ``worker``,
    ...). ``finish(result)`` may adjust the result before it is written (the
    worker maps it back to its volume's values). Notes (readers'
    interpretations, truncated prompts) are also logged as warnings.
    """
    result = editor.edit(
        request.image, request.edit, request.keep, request.settings, callback, (request.edit_ref, request.keep_ref)
    )
    return result, write_edit_result(result, request, extra, finish)


def write_edit_result(
    result: EditResult,
    request: EditRequest,
    extra: dict[str, Any] | None = None,
    finish: Callable[[EditResult], None] | None = None,
) -> WrittenOutput:
    """Write an edit's output and its sidecar (both or neither): the second half of :func:`run_edit`,
    also for each result of :meth:`RadEditor.edit_batch`."""
    if finish is not None:
        finish(result)
    quality = request.settings.jpeg_quality
    extra_notes = output_notes(request.output_format, quality)
    if extra_notes:
        result.notes.extend(extra_notes)
        result.provenance = {**result.provenance, "notes": list(result.notes)}
    warn_notes(result.notes, request.image.path)
    with OutputGroup() as group:
        written = write_edit(
            result, request.output, request.output_format, group, overwrite=request.overwrite, dicom=request.dicom,
            jpeg_quality=quality,
        )  # fmt: skip
        result.provenance = {**result.provenance, **(extra or {}), "output": written.to_dict()}
        group.json(request.sidecar, result.provenance, overwrite=request.overwrite)
    return written


# -- text-to-image ---------------------------------------------------------------------------------


def sample_paths(settings: GenerateSettings, out_dir: str | Path) -> list[Path]:
    """``out_dir/sample_000.png``, ... for every prompt times ``num_images``; then ``out_dir/samples.json``."""
    out_dir = Path(out_dir)
    n = len(settings.prompts) * settings.num_images
    return [out_dir / f"sample_{k:03d}.png" for k in range(n)] + [out_dir / "samples.json"]


def check_generate_output(
    settings: GenerateSettings, out_dir: str | Path, overwrite: bool = False, name: str = "--output"
) -> None:
    """Before the model loads: every file :func:`generate_files` would write can be written.

    Raises:
        ConfigError: ``out_dir`` is empty (``name`` is the option as the front end spells it).
        OutputError: a file exists (without ``overwrite``) or cannot be created.
    """
    for path in sample_paths(settings, output_path(out_dir, name)):
        check_writable(path, overwrite)


def _earlier_samples(out_dir: Path, keep: list[Path]) -> list[Path]:
    """The samples an earlier run's ``samples.json`` (written by radedit) lists that this run does not write."""
    record = toolkit_record(out_dir / "samples.json")
    listed = record.get("samples") if record is not None else None
    names = {s.get("path") for s in listed if isinstance(s, dict)} if isinstance(listed, list) else set()
    names = {n for n in names if isinstance(n, str) and re.fullmatch(r"sample_\d{3,}\.png", n)}
    return [out_dir / n for n in sorted(names - {p.name for p in keep}) if (out_dir / n).is_file()]


def generate_files(editor: "RadEditor", settings: GenerateSettings, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Sample the prompts and write the PNGs and ``samples.json`` (all of them or none).

    With ``overwrite``, the samples an earlier run wrote to ``out_dir`` (listed in its
    ``samples.json``) and this run does not replace are removed once this run's files are
    written, so that the folder holds one run; other files are left alone.
    """
    paths = sample_paths(settings, out_dir)
    earlier = _earlier_samples(Path(out_dir), paths) if overwrite else []
    out = editor.generate(
        settings.prompts,
        steps=settings.steps,
        guidance=settings.guidance,
        seed=settings.seed,
        negative_prompt=settings.negative_prompt,
        num_images_per_prompt=settings.num_images,
    )
    with OutputGroup() as group:
        for path, image in zip(paths, out.images):
            with group.file(path, overwrite) as tmp:
                write_image_file(tmp, model_image_to_array(image, settings.bits), Geometry())
        group.json(
            paths[-1],
            {
                **header(),
                "model": editor.components.provenance(),
                "settings": {**settings.to_dict(), "scheduler": "DDIM, eta 0"},
                "samples": [{"path": p.name, "prompt": pr} for p, pr in zip(paths, out.prompts)],
                "timings_s": out.timings,
            },
            overwrite,
        )
    for path in earlier:
        path.unlink(missing_ok=True)
    return paths


def edit_file(
    editor: RadEditor,
    image_path: str | Path,
    output: str | Path,
    settings: EditSettings,
    edit_mask_path: Any = None,
    keep_mask_path: Any = None,
    overwrite: bool = False,
    callback: ProgressCallback | None = None,
    output_format: str = "auto",
    dicom: DicomOutputOptions | None = None,
) -> EditResult:
    """Check, read, edit and write ``output`` (format from its suffix) plus its provenance sidecar.

    ``edit_mask_path=None`` edits the whole image (global edit).
    """
    request = prepare_edit(
        image_path, edit_mask_path, keep_mask_path, settings, output, output_format=output_format,
        overwrite=overwrite, global_edit=edit_mask_path is None, dicom=dicom, model=editor.components.spec,
    )  # fmt: skip
    return run_edit(editor, request, callback)[0]


def make_edit_result(
    source: SourceImage,
    edited: np.ndarray,
    *,
    edit_mask: np.ndarray | None = None,
    keep_mask: np.ndarray | None = None,
    prompts: Sequence[str] = ("No acute cardiopulmonary process",),
    seed: int = 0,
    model_name: str = "synthetic-edit",
    mask_paths: tuple[str | None, str | None] = ("edit_mask.png", None),
    soft: bool = False,
):
    """An :class:`EditResult` around given edited values, without a model.

    For testing writers and PACS round trips quickly: ``edited`` are stored
    values in MONOCHROME2 polarity on ``source``'s grid (as
    ``RadEditor.edit`` returns them); the provenance has the fields a real
    edit records (settings, masks, model name, version).
    """
    edited = np.asarray(edited)
    if edited.shape != source.shape:
        raise ValueError(f"edited values {edited.shape} are not on the source grid {source.shape}")
    low, high = source.value_range
    edited = np.clip(edited, low, high).astype(source.dtype)
    edit = np.ones(source.shape, np.float32) if edit_mask is None else np.asarray(edit_mask, dtype=np.float32)
    keep = None if keep_mask is None else np.asarray(keep_mask, dtype=np.float32)
    if not soft:
        edit = (edit > 0).astype(np.float32)
        keep = None if keep is None else (keep > 0).astype(np.float32)
    masks = EditMasks(edit=edit, keep=keep, soft=soft)
    settings = EditSettings(prompts=list(prompts), seed=seed, steps=20, soft_masks=soft)
    empty = np.zeros((0, 0), dtype=np.float32)
    result = EditResult(
        source=source,
        image=source.with_array(edited),
        masks=masks,
        transform=ModelSpaceTransform.fit(source),
        model_input=empty,
        model_output=empty,
        unet_evaluations=0,
        unet_calls=0,
    )
    result.provenance = {
        "tool": "radedit_core",
        "version": __version__,
        "input": {"path": None if source.path is None else str(source.path), "format": source.format},
        "masks": {"edit": mask_paths[0], "keep": mask_paths[1], **masks.summary()},
        "model": {"name": model_name},
        "settings": settings.to_dict(),
    }
    return result


__all__ = [
    "EditRequest",
    "EditResult",
    "EditSettings",
    "ModelInputs",
    "check_generate_output",
    "generate_files",
    "make_edit_result",
    "PAPER_PROMPTS",
    "RadEditor",
    "edit_file",
    "model_image_to_array",
    "prepare_edit",
    "run_edit",
    "sidecar_path",
    "write_edit_result",
]
