"""DiffEdit's automatic edit mask on RadEdit's components (the paper's DiffEdit baseline).

DiffEdit (Couairon et al., ICLR 2023) guesses where an edit should happen
from the difference between the noise a model predicts under the source
prompt and under the target prompt.  This is the rule of diffusers'
``StableDiffusionDiffEditPipeline.generate_mask`` with its defaults, computed
with a RadEdit pipeline's own VAE, text encoder, UNet and scheduler (no
diffusers pipeline is built):

1. ``num_maps_per_mask`` (10) latents of the image: VAE posterior *samples*
   (seeded) times the scaling factor;
2. the scheduler set to ``num_inference_steps`` (50); the encode timestep is
   ``timesteps[T - int(T * mask_encode_strength)]`` (strength 0.5: the middle
   of the trajectory); each copy is noised to it with its own Gaussian noise;
3. one UNet call on ``[source negative, source, target negative, target]``
   conditionings (negatives are ""), classifier-free guidance with
   ``guidance_scale`` (7.5) on each side;
4. the guidance map: ``|eps_target - eps_source|`` averaged over the noise
   maps and the latent channels; clamped at ``mask_thresholding_ratio`` (3)
   times its mean, divided by that clamp, and binarised at 0.5 (a map that
   is zero everywhere, identical prompts, gives an empty mask; diffusers'
   0/0 would give a full one).

The random draws come from ``generator`` in diffusers' order (the posterior
samples, then the noise), so the mask equals diffusers' for the same
components and generator (``tests/test_diffedit_mask.py`` checks it against
the diffusers pipeline built on the demo model).  The mask is on the latent
grid ([h, w] = model size / 8); use :func:`latent_mask_to_source` to put it
on the source image's grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging.transform import ModelSpaceTransform
from .base import RadEditPipelineBase


@dataclass
class DiffEditMask:
    """``mask``: [h, w] bool on the latent grid; ``guidance_map``: [h, w] float32 before thresholding."""

    mask: np.ndarray
    guidance_map: np.ndarray
    encode_timestep: int
    unet_evaluations: int


@torch.no_grad()
def diffedit_mask(
    pipe: RadEditPipelineBase,
    image: torch.Tensor,
    source_prompt: str,
    target_prompt: str,
    *,
    num_maps_per_mask: int = 10,
    mask_encode_strength: float = 0.5,
    mask_thresholding_ratio: float = 3.0,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    generator: int | torch.Generator = 0,
) -> DiffEditMask:
    """DiffEdit's mask for editing ``image`` ([1, 1, S, S] model space in [-1, 1]) from source to target prompt.

    Raises:
        ValueError: ``mask_encode_strength`` outside (0, 1], fewer than one
            map or step, a batch of more than one image.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"one image [1, 1, S, S] at a time, got shape {list(image.shape)}")
    if not 0.0 < mask_encode_strength <= 1.0:
        raise ValueError(f"mask_encode_strength must lie in (0, 1], got {mask_encode_strength}")
    if num_maps_per_mask < 1 or num_inference_steps < 1:
        raise ValueError("num_maps_per_mask and num_inference_steps must be at least 1")
    gen = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(int(generator))
    n = num_maps_per_mask
    # 1. Latents: one posterior sample per map, drawn in diffusers' order (all posterior draws, then all noise).
    vae = pipe.vae
    rgb = image.to(vae.device, vae.dtype).expand(-1, vae.config.in_channels, -1, -1)
    dist = vae.encode(rgb).latent_dist
    shape = (n, *dist.mean.shape[1:])
    draws = torch.randn(shape, generator=gen, dtype=torch.float32).to(dist.mean)
    latents = ((dist.mean + dist.std * draws).float() * vae.config.scaling_factor).to(pipe.unet.device)
    # 2. The encode timestep of diffusers' get_timesteps, on a scheduler of our own (the pipeline's keeps its state).
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps)
    start = num_inference_steps - min(int(num_inference_steps * mask_encode_strength), num_inference_steps)
    t = int(scheduler.timesteps[start])
    noise = torch.randn(shape, generator=gen, dtype=torch.float32).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, torch.tensor([t]))
    # 3. One call: source negative, source, target negative, target (as diffusers orders them).
    text = pipe.encode_text(["", source_prompt, "", target_prompt])
    embeddings = text.repeat_interleave(n, dim=0)
    eps = pipe.unet_eps(noisy.repeat(4, 1, 1, 1), torch.full((4 * n,), t, dtype=torch.long), embeddings)
    neg_src, src, neg_tgt, tgt = eps.chunk(4)
    src = neg_src + guidance_scale * (src - neg_src)
    tgt = neg_tgt + guidance_scale * (tgt - neg_tgt)
    # 4. The map and its threshold.
    guidance_map = (tgt - src).abs().mean(dim=(0, 1))
    clamp = guidance_map.mean() * mask_thresholding_ratio
    scaled = guidance_map.clamp(0, clamp) / clamp
    return DiffEditMask(
        mask=(scaled > 0.5).cpu().numpy(),
        guidance_map=guidance_map.float().cpu().numpy(),
        encode_timestep=t,
        unet_evaluations=4 * n,
    )


def latent_mask_to_source(mask: np.ndarray, transform: ModelSpaceTransform) -> np.ndarray:
    """A latent-grid mask [h, w] -> a bool mask on the source grid (nearest; zero outside the model crop)."""
    r0, c0, size = transform.crop
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    crop = F.interpolate(m, size=(size, size), mode="nearest")[0, 0].numpy() >= 0.5
    out = np.zeros(transform.source_shape, dtype=bool)
    out[r0 : r0 + size, c0 : c0 + size] = crop
    return out


__all__ = ["DiffEditMask", "diffedit_mask", "latent_mask_to_source"]
