"""RadEdit: edit-friendly inversion, then masked guidance with a keep paste.

Works in model space: images are [B, 1, S, S] tensors in [-1, 1] (S = 512 for
the published model); :mod:`radedit_core.workflow` maps source images and
masks there and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.utils import BaseOutput

from ..diffusion.editing import radedit_reverse, reproduces_inversion
from ..diffusion.inversion import Inversion, ddim_invert, ddpm_invert
from ..diffusion.schedule import make_schedule
from ..errors import ConfigError, InputError, MaskError
from ..settings import DEFAULT_GUIDANCE, DEFAULT_INVERT_GUIDANCE
from .base import ProgressCallback, RadEditPipelineBase, check_finite, make_generator, normalise_prompts

MaskRule = Literal["any", "mean"]



@dataclass
class RadEditPipelineOutput(BaseOutput):
    """``images``: [B, 1, S, S] float32 in [-1, 1], the decoded edit.  ``reconstruction``: the same
    decoder's image of the inverted latent x0 (``decode(x0)``, same shape), which the compositing
    subtracts so that the VAE's reconstruction error never reaches the output
    (:mod:`radedit_core.imaging.compositing`).  Latents are scaled VAE latents."""

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
    #: Per prompt (edit prompts, then the invert prompt): token count and truncation.
    text: list[dict] = field(default_factory=list)


class RadEditPipeline(RadEditPipelineBase):
    r"""Mask-constrained text-guided editing of chest X-rays (Pérez-García et al., ECCV 2024)."""

    def latent_mask(self, mask: torch.Tensor | None, rule: MaskRule, name: str, batch: int) -> torch.Tensor | None:
        """Model-space (S x S) or latent-grid mask -> [B, 1, h, w] float32 on the latent grid.

        Binary rule ``any``: a latent cell is in the mask if any pixel of its
        8x8 footprint is (max pooling).  ``mean``: the footprint's average.
        """
        if mask is None:
            return None
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

    @torch.no_grad()
    def __call__(
        self,
        image: torch.Tensor,
        prompt: str | list[str],
        weights: float | list[float] | None = None,
        edit_mask: torch.Tensor | None = None,
        keep_mask: torch.Tensor | None = None,
        num_inference_steps: int = 200,
        skip_ratio: float = 0.3,
        invert_prompt: str = "",
        invert_guidance: float = DEFAULT_INVERT_GUIDANCE,
        eta: float = 1.0,
        inversion: Literal["ddpm", "ddim"] = "ddpm",
        reference_compat: bool = False,
        mask_rule: MaskRule = "any",
        latent_sampling: Literal["mode", "sample"] = "mode",
        generator: torch.Generator | int | None = None,
        inversion_batch_size: int | None = None,
        batch_conditions: bool = True,
        invert_all_steps: bool = False,
        callback: ProgressCallback | None = None,
    ) -> RadEditPipelineOutput:
        r"""Edit ``image`` towards ``prompt`` inside ``edit_mask``, keeping ``keep_mask``.

        Args:
            image: [B, 1, S, S] (or [B, 3, S, S]) in [-1, 1], S = ``model_resolution``.
            prompt: one prompt or several; with several, ``weights`` gives one
                guidance weight per prompt and the guided direction is their
                weighted sum (negative weights steer away).
            weights: guidance weight(s); default 15 (paper).
            edit_mask: where guidance acts; model-space or latent-grid; None = everywhere
                (the LANCE-style global edit).
            keep_mask: where the inverted latents are pasted back; None = nowhere.
            num_inference_steps: T (paper: 200); ``skip_ratio``: leading steps skipped (0.3).
            invert_prompt: prompt of the inversion ("" = unconditional, the paper's setting);
                when non-empty the inversion uses CFG with ``invert_guidance``.
            eta: DDPM noise scale (1 = edit-friendly DDPM inversion).
            inversion: "ddpm" (default) or "ddim" (paper's ablation; eta is ignored).
            reference_compat: reproduce the released pipeline's keep-mask quirks.
            mask_rule: "any" (binary masks) or "mean" (soft masks) for the latent grid.
            latent_sampling: "mode" (deterministic) or "sample" of the VAE posterior.
            generator: seed or CPU generator for every random draw.
            inversion_batch_size: timesteps per UNet call during DDPM inversion
                (default 64 on GPU, 8 on CPU; 1 for a null edit, see
                :func:`~radedit_core.diffusion.editing.reproduces_inversion`).
            batch_conditions: unconditional and conditional predictions in one call.
            invert_all_steps: also invert the skipped steps (the released pipeline's
                cost; results are unchanged).
            callback: ``callback(stage, done, total)`` for GUIs.
        """
        timings: dict[str, float] = {}
        calls_before = self.unet_calls
        # 1. Check inputs
        prompts, weight_list = normalise_prompts(prompt, weights, DEFAULT_GUIDANCE)
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
        device = self.unet.device
        batch = image.shape[0]
        generator = make_generator(generator)
        if inversion_batch_size is not None and inversion_batch_size < 1:
            raise ConfigError("inversion_batch_size must be >= 1")

        # 2. Encode prompts: unconditional, edit prompts, optional invert prompt
        with self.timed(timings, "text"):
            embeds = self.encode_text([""] + prompts + ([invert_prompt] if invert_prompt else []))
        uncond, cond = embeds[:1], embeds[1 : 1 + len(prompts)]
        text = self.prompt_report(prompts + ([invert_prompt] if invert_prompt else []))
        weight_t = torch.tensor(weight_list, dtype=torch.float32, device=device)

        # 3. Masks on the latent grid (keep wins where they overlap: pasted last)
        m_edit = self.latent_mask(edit_mask, mask_rule, "edit", batch)
        m_keep = self.latent_mask(keep_mask, mask_rule, "keep", batch)
        if inversion_batch_size is None:
            # A null edit returns x0 bit for bit only when both passes lay out their UNet calls
            # alike (batched kernels round differently): one timestep per inversion call, as the
            # reverse pass makes them (an unconditional inversion calls without the conditional
            # half, like the reverse pass only when it does not batch conditions).  Otherwise
            # batch the independent inversion calls.
            null = inversion == "ddpm" and (bool(invert_prompt) or not batch_conditions)
            null = null and reproduces_inversion(prompts, weight_list, invert_prompt, invert_guidance, m_edit)
            inversion_batch_size = 1 if null else (64 if device.type == "cuda" else 8)

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
            t = torch.tensor([timesteps[i] for i in steps], dtype=torch.long)
            if not invert_prompt:
                return self.unet_eps(latents, t, uncond.expand(n, -1, -1))
            pair = torch.cat([uncond, embeds[-1:]])
            if batch_conditions:
                eps = self.unet_eps(latents.repeat(2, 1, 1, 1), t.repeat(2), pair.repeat_interleave(n, dim=0))
                eps_u, eps_p = eps.chunk(2)
            else:
                eps_u = self.unet_eps(latents, t, pair[:1].expand(n, -1, -1))
                eps_p = self.unet_eps(latents, t, pair[1:].expand(n, -1, -1))
            return eps_u + invert_guidance * (eps_p - eps_u)

        inv_total = schedule.num_steps - inv_start
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
                    pad_chunks=self.is_compiled,
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
        )
