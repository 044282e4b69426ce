"""RadEdit: edit-friendly inversion, then masked guidance with a keep paste.

Works in model space: images are [B, 1, S, S] tensors in [-1, 1] (S = 512 for
the published model); :mod:`radedit_core.workflow` maps source images and
masks there and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from diffusers.utils import BaseOutput

from ..diffusion.editing import radedit_reverse, reproduces_inversion
from ..diffusion.inversion import Inversion, ddim_invert, ddpm_invert
from ..diffusion.schedule import make_schedule
from ..errors import ConfigError, InputError, MaskError
from ..settings import DEFAULT_GUIDANCE, DEFAULT_INVERT_GUIDANCE
from .base import ProgressCallback, RadEditPipelineBase, check_finite, make_generator, normalise_prompts

#: Default DDPM-inversion chunking: on a GPU, every inverted timestep of every image in one UNet
#: call up to this many samples (140 steps of one image: one call; of 8 images: 5 calls of 224),
#: in even chunks beyond; on the CPU, 8 timesteps per call.
GPU_INVERSION_SAMPLES = 256
CPU_INVERSION_STEPS = 8

MaskRule = Literal["any", "mean"]
#: One mask for the batch ([B or 1, 1, S, S] / latent grid), or one per image (None: edit
#: everywhere / keep nothing for that image).
Masks = torch.Tensor | Sequence[torch.Tensor | None] | None


@dataclass
class RadEditPipelineOutput(BaseOutput):
    """``images``: [B, 1, S, S] float32 in [-1, 1], the decoded edit.  ``reconstruction``: the same
    decoder's image of the inverted latent x0 (``decode(x0)``, same shape), which the compositing
    subtracts so that the VAE's reconstruction error never reaches the output
    (:mod:`radedit_core.imaging.compositing`).  Latents are scaled VAE latents.

    ``unet_evaluations`` and ``unet_calls`` count the whole batch's work:
    the calls of B images are those of one (each carries B times the samples).
    """

    images: torch.Tensor
    reconstruction: torch.Tensor
    latents: torch.Tensor
    source_latents: torch.Tensor
    inversion: Inversion
    edit_mask_latent: torch.Tensor
    keep_mask_latent: torch.Tensor | None
    timesteps: tuple[int, ...]
    skip: int
    unet_evaluations: int
    unet_calls: int
    timings: dict[str, float] = field(default_factory=dict)
    #: Per prompt (edit prompts, then the invert prompt): token count and truncation; for a batch
    #: with prompts per image, those of every image in turn.
    text: list[dict] = field(default_factory=list)
    #: For a batch with prompts per image: ``text`` of each image.
    text_per_image: list[list[dict]] | None = None

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    def select(self, b: int) -> "RadEditPipelineOutput":
        """Image ``b``'s outputs as a batch of one (views of this batch's tensors).

        Every tensor field with the batch as its first dimension is sliced
        there, the inversion's trajectories along their second, so the
        finishing step of an edit takes one image's outputs whatever else
        the pipeline returns.
        """
        n = self.batch_size
        if not 0 <= b < n:
            raise IndexError(f"image {b} of a batch of {n}")
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
                changes[f.name] = value[b : b + 1]
            elif isinstance(value, Inversion):
                changes[f.name] = replace(
                    value,
                    latents=value.latents[:, b : b + 1],
                    means=None if value.means is None else value.means[:, b : b + 1],
                )
        if self.text_per_image is not None:
            changes["text"] = self.text_per_image[b]
            changes["text_per_image"] = None
        return replace(self, **changes)


class RadEditPipeline(RadEditPipelineBase):
    r"""Mask-constrained text-guided editing of chest X-rays (Pérez-García et al., ECCV 2024)."""

    def latent_mask(self, mask: Masks, rule: MaskRule, name: str, batch: int, empty: float = 1.0) -> torch.Tensor | None:
        """Model-space (S x S) or latent-grid mask -> [B, 1, h, w] float32 on the latent grid.

        Binary rule ``any``: a latent cell is in the mask if any pixel of its
        8x8 footprint is (max pooling).  ``mean``: the footprint's average.
        A list gives one mask per image; its None entries become ``empty``
        (1: edit everywhere, 0: keep nothing), which the step maths apply
        exactly (1 * x = x, 0 * x + x = x), so such an image edits as it
        would alone with no mask.  A list of only None is None.
        """
        if mask is None:
            return None
        if isinstance(mask, (list, tuple)):
            if len(mask) != batch:
                raise MaskError(None, f"{len(mask)} {name} masks for a batch of {batch} images")
            if all(m is None for m in mask):
                return None
            grids = [None if m is None else self.latent_mask(m, rule, name, 1) for m in mask]
            like = next(g for g in grids if g is not None)
            return torch.cat([torch.full_like(like, empty) if g is None else g for g in grids])
        if mask.dim() == 2:
            mask = mask[None, None]
        elif mask.dim() == 3:
            mask = mask[:, None]
        latent_size = self.unet.config.sample_size
        mask = mask.float()
        if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
            raise MaskError(None, f"{name} mask values must lie in [0, 1]")
        if mask.shape[0] not in (1, batch):
            raise MaskError(None, f"{name} mask batch {mask.shape[0]} does not match the image batch {batch}")
        size = tuple(mask.shape[-2:])
        if size == (self.model_resolution,) * 2:
            pool = F.max_pool2d if rule == "any" else F.avg_pool2d
            mask = pool(mask, self.vae_scale_factor)
        elif size != (latent_size, latent_size):
            raise MaskError(
                None,
                f"{name} mask is {size[0]}x{size[1]}; expected {self.model_resolution}x{self.model_resolution} "
                f"(model space) or {latent_size}x{latent_size} (latent grid)",
            )
        return mask.expand(batch, -1, -1, -1).to(self.unet.device)

    def batch_conditioning(
        self,
        prompts: list[list[str]],
        weights: list[list[float]],
        invert_prompt: str,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(uncond [1, L, D], cond [P, B, L, D], weights [P, B], invert [1, L, D] or None).

        ``prompts[b]``/``weights[b]``: image b's prompts and guidance weights.
        All texts go through the encoder in one call.  P is the largest prompt
        count; an image with fewer prompts gets the unconditional embedding at
        weight 0 in its remaining slots (its guidance gains exact zero terms),
        so images with different numbers of prompts can share a batch (the
        batch runner groups them by prompt count, so no padding is spent).
        """
        flat = [p for image_prompts in prompts for p in image_prompts]
        embeds = self.encode_text([""] + flat + ([invert_prompt] if invert_prompt else []))
        uncond = embeds[:1]
        n = max(len(p) for p in prompts)
        cond = uncond[None].expand(n, len(prompts), -1, -1).clone()
        w = torch.zeros(n, len(prompts), dtype=torch.float32)
        k = 1
        for b, (image_prompts, image_weights) in enumerate(zip(prompts, weights)):
            cond[: len(image_prompts), b] = embeds[k : k + len(image_prompts)]
            w[: len(image_weights), b] = torch.tensor(image_weights, dtype=torch.float32)
            k += len(image_prompts)
        return uncond, cond, w.to(self.unet.device), embeds[-1:] if invert_prompt else None

    @torch.no_grad()
    def __call__(
        self,
        image: torch.Tensor,
        prompt: str | list[str] | list[list[str]],
        weights: float | list[float] | list[list[float]] | None = None,
        edit_mask: Masks = None,
        keep_mask: Masks = None,
        num_inference_steps: int = 200,
        skip_ratio: float = 0.3,
        invert_prompt: str = "",
        invert_guidance: float = DEFAULT_INVERT_GUIDANCE,
        eta: float = 1.0,
        inversion: Literal["ddpm", "ddim"] = "ddpm",
        reference_compat: bool = False,
        mask_rule: MaskRule = "any",
        latent_sampling: Literal["mode", "sample"] = "mode",
        generator: torch.Generator | int | list | None = None,
        inversion_batch_size: int | None = None,
        batch_conditions: bool = True,
        invert_all_steps: bool = False,
        callback: ProgressCallback | None = None,
    ) -> RadEditPipelineOutput:
        r"""Edit ``image`` towards ``prompt`` inside ``edit_mask``, keeping ``keep_mask``.

        A batch of B images is edited in one pass: every reverse step is one
        UNet call on (1 + P) * B samples and the inversion batches all images'
        timesteps; each image keeps its own masks, prompts, weights and seed,
        and the result equals editing it alone up to float rounding.

        Args:
            image: [B, 1, S, S] (or [B, 3, S, S]) in [-1, 1], S = ``model_resolution``.
            prompt: one prompt or several, for every image; with several, ``weights``
                gives one guidance weight per prompt and the guided direction is their
                weighted sum (negative weights steer away).  A list of B lists: each
                image's own prompts (see :meth:`batch_conditioning` for different counts).
            weights: guidance weight(s); default 15 (paper); a list of B lists with prompts per image.
            edit_mask: where guidance acts; model-space or latent-grid; None = everywhere
                (the LANCE-style global edit); a list: one per image (None entries: everywhere).
            keep_mask: where the inverted latents are pasted back; None = nowhere; a list:
                one per image (None entries: nowhere).
            num_inference_steps: T (paper: 200); ``skip_ratio``: leading steps skipped (0.3).
            invert_prompt: prompt of the inversion ("" = unconditional, the paper's setting);
                when non-empty the inversion uses CFG with ``invert_guidance``.
            eta: DDPM noise scale (1 = edit-friendly DDPM inversion).
            inversion: "ddpm" (default) or "ddim" (paper's ablation; eta is ignored).
            reference_compat: reproduce the released pipeline's keep-mask quirks.
            mask_rule: "any" (binary masks) or "mean" (soft masks) for the latent grid.
            latent_sampling: "mode" (deterministic) or "sample" of the VAE posterior.
            generator: seed or CPU generator for every random draw; a list of B seeds or
                generators: image b's draws come from its own (diffusers' convention), so
                its noise does not depend on the rest of the batch.
            inversion_batch_size: at most this many timesteps (of every image) per UNet call
                during DDPM inversion (default on GPU: all in one call up to
                ``GPU_INVERSION_SAMPLES`` samples, in even chunks beyond; 8 on CPU; 1 for a null
                edit, see :func:`~radedit_core.diffusion.editing.reproduces_inversion`).
            batch_conditions: unconditional and conditional predictions in one call.
            invert_all_steps: also invert the skipped steps (the released pipeline's
                cost; results are unchanged).
            callback: ``callback(stage, done, total)`` for GUIs.
        """
        timings: dict[str, float] = {}
        calls_before = self.unet_calls
        # 1. Check inputs
        batch = image.shape[0] if image.dim() == 4 else 0
        per_image = isinstance(prompt, (list, tuple)) and len(prompt) > 0 and not isinstance(prompt[0], str)
        if per_image:
            if len(prompt) != batch:
                raise ConfigError(f"{len(prompt)} prompt lists for a batch of {batch} images; give one per image")
            if weights is not None and not (isinstance(weights, (list, tuple)) and len(weights) == batch):
                raise ConfigError(f"with prompts per image, give weights per image too ({batch} lists) or none")
            pairs = [
                normalise_prompts(p, None if weights is None else weights[b], DEFAULT_GUIDANCE)
                for b, p in enumerate(prompt)
            ]
        else:
            pairs = [normalise_prompts(prompt, weights, DEFAULT_GUIDANCE)] * max(batch, 1)
        if image.dim() != 4 or image.shape[-2:] != (self.model_resolution,) * 2:
            raise InputError(
                None,
                f"model-space image must be [B, 1, {self.model_resolution}, {self.model_resolution}], got {tuple(image.shape)}",
            )
        if not torch.isfinite(image).all():
            raise InputError(None, "model-space image contains NaN or infinite values")
        if inversion not in ("ddpm", "ddim"):
            raise ConfigError(f"inversion must be 'ddpm' or 'ddim', got {inversion!r}")
        if inversion == "ddpm" and not eta > 0:
            raise ConfigError("DDPM inversion needs eta > 0 (eta = 0 leaves the noise maps undefined)")
        if mask_rule not in ("any", "mean"):
            raise ConfigError(f"mask_rule must be 'any' or 'mean', got {mask_rule!r}")
        if isinstance(generator, (list, tuple)) and len(generator) != batch:
            raise ConfigError(f"{len(generator)} seeds/generators for a batch of {batch} images; give one per image")
        device = self.unet.device
        generator = make_generator(generator)
        if inversion_batch_size is not None and inversion_batch_size < 1:
            raise ConfigError("inversion_batch_size must be >= 1")

        # 2. Encode prompts: unconditional, each image's edit prompts, optional invert prompt
        with self.timed(timings, "text"):
            if per_image:
                uncond, cond, weight_t, invert_embed = self.batch_conditioning(
                    [p for p, _ in pairs], [w for _, w in pairs], invert_prompt
                )
            else:
                prompts, weight_list = pairs[0]
                embeds = self.encode_text([""] + prompts + ([invert_prompt] if invert_prompt else []))
                uncond, cond = embeds[:1], embeds[1 : 1 + len(prompts)][:, None].expand(-1, batch, -1, -1)
                invert_embed = embeds[-1:] if invert_prompt else None
                weight_t = torch.tensor(weight_list, dtype=torch.float32, device=device)
        invert_text = self.prompt_report([invert_prompt]) if invert_prompt else []
        text_per_image = [self.prompt_report(p) + invert_text for p, _ in pairs] if per_image else None
        text = [t for image_text in text_per_image for t in image_text] if per_image else self.prompt_report(
            pairs[0][0] + ([invert_prompt] if invert_prompt else [])
        )

        # 3. Masks on the latent grid (keep wins where they overlap: pasted last)
        m_edit = self.latent_mask(edit_mask, mask_rule, "edit", batch)
        m_keep = self.latent_mask(keep_mask, mask_rule, "keep", batch, empty=0.0)
        if inversion_batch_size is None:
            # A null edit returns x0 bit for bit only when both passes lay out their UNet calls
            # alike (batched kernels round differently): one timestep per inversion call, as the
            # reverse pass makes them (an unconditional inversion calls without the conditional
            # half, like the reverse pass only when it does not batch conditions), when every
            # image of the batch is one.  Otherwise the independent inversion calls are batched.
            null = inversion == "ddpm" and (bool(invert_prompt) or not batch_conditions)
            null = null and all(
                reproduces_inversion(p, w, invert_prompt, invert_guidance, None if m_edit is None else m_edit[b : b + 1])
                for b, (p, w) in enumerate(pairs)
            )
            inversion_batch_size = 1 if null else None

        # 4. Encode the image to x0
        with self.timed(timings, "encode"):
            x0 = self.encode_image(image, latent_sampling, generator)
        check_finite(x0, "VAE encode")

        # 5. Timesteps
        schedule = make_schedule(self.scheduler, num_inference_steps, reference_compat)
        skip = schedule.skip_steps(skip_ratio)
        inv_start = 0 if invert_all_steps else skip
        timesteps = schedule.timesteps

        # 6. Invert: only the steps the reverse pass uses (unless asked otherwise)
        def inversion_eps(latents: torch.Tensor, steps: list[int]) -> torch.Tensor:
            n = latents.shape[0]
            t = self.timestep_tensor([timesteps[i] for i in steps])
            if invert_embed is None:
                return self.unet_eps(latents, t, uncond.expand(n, -1, -1), inversion=True)
            pair = torch.cat([uncond, invert_embed])
            if batch_conditions:
                eps = self.unet_eps(
                    latents.repeat(2, 1, 1, 1), t.repeat(2), pair.repeat_interleave(n, dim=0), inversion=True
                )
                eps_u, eps_p = eps.chunk(2)
            else:
                eps_u = self.unet_eps(latents, t, pair[:1].expand(n, -1, -1), inversion=True)
                eps_p = self.unet_eps(latents, t, pair[1:].expand(n, -1, -1), inversion=True)
            return eps_u + invert_guidance * (eps_p - eps_u)

        inv_total = schedule.num_steps - inv_start
        if inversion_batch_size is None:
            inversion_batch_size = (
                max(1, GPU_INVERSION_SAMPLES // batch) if device.type == "cuda" else CPU_INVERSION_STEPS
            )
        with self.timed(timings, "invert"), self.stage_bar(inv_total, "invert") as bar:
            last = [0]

            def inv_progress(done: int, total: int) -> None:
                bar.update(done - last[0])
                last[0] = done
                if callback is not None:
                    callback("invert", done, total)

            if inversion == "ddpm":
                inv = ddpm_invert(
                    x0,
                    schedule,
                    inversion_eps,
                    inv_start,
                    eta,
                    generator,
                    inversion_batch_size,
                    inv_progress,
                    pad_chunks=self.inversion_is_compiled,
                )
            else:
                inv = ddim_invert(x0, schedule, inversion_eps, inv_start, inv_progress)

        # 7. Reverse pass with masked guidance and keep paste
        predict = self.conditional_predictor(timesteps, uncond, cond, batch_conditions)
        with self.timed(timings, "edit"), self.stage_bar(schedule.num_steps - skip, "edit") as bar:

            def on_step(done: int, total: int) -> None:
                bar.update(1)
                if callback is not None:
                    callback("edit", done, total)

            latents = radedit_reverse(
                inv, schedule, skip, predict, weight_t, m_edit, m_keep, eta, reference_compat, on_step
            )
        check_finite(latents, "UNet")

        # 8. Decode the edit and x0 alike (same decoder, dtype and batch), so that where the edit
        #    left the latent as it was the two images are the same bits.
        with self.timed(timings, "decode"):
            images = self.decode_latents(latents)
            reconstruction = images if torch.equal(latents, x0) else self.decode_latents(x0)

        # 9. Output
        return RadEditPipelineOutput(
            images=images,
            reconstruction=reconstruction,
            latents=latents,
            source_latents=x0,
            inversion=inv,
            edit_mask_latent=m_edit if m_edit is not None else torch.ones_like(x0[:, :1]),
            keep_mask_latent=m_keep,
            timesteps=timesteps,
            skip=skip,
            unet_evaluations=inv_total + schedule.num_steps - skip,
            unet_calls=self.unet_calls - calls_before,
            timings=timings,
            text=text,
            text_per_image=text_per_image,
        )
