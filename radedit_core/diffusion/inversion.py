"""Edit-friendly DDPM inversion (Huberman-Spiegelglas et al.) and DDIM inversion.

Both return the inverted latents at every noise level the reverse pass visits
(x at t_start, ..., t_{T-1}, then x0) and, for DDPM, the noise maps z_t that
make the reverse pass reproduce them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .schedule import Schedule, predict_x0, step_mean

#: predict(latents [N, C, H, W] float32, step_indices [N]) -> eps [N, C, H, W] float32
NoisePredictor = Callable[[torch.Tensor, list[int]], torch.Tensor]


@dataclass
class Inversion:
    """Inverted trajectory from step ``start`` on.

    ``latents[k]`` is the latent at the level of step ``start + k`` (the input
    of that reverse step), ``latents[-1]`` is x0.  ``means[k]`` is mu of step
    ``start + k`` as the inversion predicted it (DDPM only), so that the noise
    map is ``z = (latents[k + 1] - means[k]) / noise_scale``.
    """

    method: str
    start: int
    latents: torch.Tensor
    means: torch.Tensor | None = None

    def level(self, i: int) -> torch.Tensor:
        """Latent at the input level of step i (i = T gives x0)."""
        if i < self.start:
            raise IndexError(f"step {i} was not inverted (inversion starts at step {self.start})")
        return self.latents[i - self.start]

    def mean(self, i: int) -> torch.Tensor:
        if self.means is None:
            raise ValueError(f"{self.method} inversion has no noise maps")
        return self.means[i - self.start]

    @property
    def x0(self) -> torch.Tensor:
        return self.latents[-1]


#: One CPU generator for the whole batch, or one per image (diffusers' convention).
Generators = torch.Generator | list[torch.Generator] | None


def per_image_randn(shape: tuple[int, ...], generator: Generators, batch_dim: int = 0) -> torch.Tensor:
    """N(0, I) float32 on the CPU; with a list of generators, slice ``b`` along ``batch_dim`` is
    drawn from ``generator[b]`` alone, so an image's noise depends only on its own seed and a
    batch draws exactly what its images would draw one at a time.

    Raises:
        ValueError: a generator list whose length is not ``shape[batch_dim]``.
    """
    if not isinstance(generator, list):
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(generator) != shape[batch_dim]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[batch_dim]}")
    one = shape[:batch_dim] + (1,) + shape[batch_dim + 1 :]
    return torch.cat([torch.randn(one, generator=g, dtype=torch.float32) for g in generator], dim=batch_dim)


def draw_level_noise(
    schedule: Schedule,
    shape: tuple[int, ...],
    generator: Generators,
) -> torch.Tensor:
    """One independent N(0, I) draw per step, [T, *shape], float32 on the CPU.

    Drawn for all T steps in one call whatever ``skip`` is, so that the noise
    at a given timestep depends only on the seed, and on the CPU, so that the
    same seed gives the same noise on every device.  With one generator per
    image, image b's draws [T, 1, ...] come from its own generator
    (:func:`per_image_randn`).
    """
    return per_image_randn((schedule.num_steps, *shape), generator, batch_dim=1)


def balanced_chunks(n: int, limit: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the fewest chunks of at most ``limit`` items covering ``range(n)``, as even as
    possible (140 steps at 64 give 47 + 47 + 46, not 64 + 64 + 12: a padded last chunk wastes less)."""
    if n <= 0:
        return []
    calls = max(1, math.ceil(n / max(1, limit)))
    size = math.ceil(n / calls)
    return [(k, min(k + size, n)) for k in range(0, n, size)]


def ddpm_invert(
    x0: torch.Tensor,
    schedule: Schedule,
    predict: NoisePredictor,
    start: int,
    eta: float,
    generator: Generators,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    pad_chunks: bool = False,
) -> Inversion:
    """Edit-friendly inversion of ``x0`` for reverse steps ``start..T-1``.

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps_t with independent eps_t; then
    z_t = (x_{t-1} - mu_t(x_t)) / (eta sigma_t) (see ``noise_scale`` for the
    last step, where sigma_t = 0); the means mu_t are kept instead of z_t, see
    :func:`radedit_core.diffusion.editing.radedit_reverse`.  The UNet evaluations do not
    depend on each other, so they run at most ``batch_size`` timesteps (of
    every image of the batch) per call, in chunks as even as possible;
    ``pad_chunks`` pads a shorter chunk to the first one's size (one input
    shape for a compiled UNet).  ``generator``: one for the batch or one per
    image (:func:`per_image_randn`).
    """
    noise = draw_level_noise(schedule, tuple(x0.shape), generator).to(x0.device)
    steps = list(range(start, schedule.num_steps))
    levels = torch.stack(
        [math.sqrt(schedule.abar[i]) * x0 + math.sqrt(1.0 - schedule.abar[i]) * noise[i] for i in steps] + [x0]
    )
    means = torch.empty_like(levels[:-1])
    chunks = balanced_chunks(len(steps), batch_size)
    width = chunks[0][1] - chunks[0][0] if chunks else 0
    for k0, k1 in chunks:
        chunk = steps[k0:k1]
        x_in = levels[k0:k1]  # [n, B, C, H, W]
        n, b = x_in.shape[:2]
        step_ids = [i for i in chunk for _ in range(b)]
        flat = x_in.reshape(n * b, *x_in.shape[2:])
        pad = (width - n) * b if pad_chunks else 0
        if pad:
            # One input shape for every call: a compiled UNet is not recompiled
            # (or re-captured as a CUDA graph) for a shorter chunk.
            flat = torch.cat([flat, flat[-1:].expand(pad, *flat.shape[1:])])
            step_ids = step_ids + [step_ids[-1]] * pad
        eps = predict(flat, step_ids)[: n * b].reshape(x_in.shape)
        for j, i in enumerate(chunk):
            means[k0 + j] = step_mean(levels[k0 + j], eps[j], schedule, i, eta)
        if on_progress is not None:
            on_progress(k1, len(steps))
    return Inversion("ddpm", start, levels, means)


def ddim_invert(
    x0: torch.Tensor,
    schedule: Schedule,
    predict: NoisePredictor,
    start: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> Inversion:
    """Deterministic DDIM inversion from x0 up to the level of step ``start``.

    Each step reuses the noise predicted at the lower level with the target
    timestep (the usual approximation), so it is sequential and only
    approximately invertible: the paper's ablation (Fig. 5).
    """
    T = schedule.num_steps
    levels: list[torch.Tensor] = [x0]
    x = x0
    for n, j in enumerate(range(T - 1, start - 1, -1), start=1):
        a_cur, a_next = schedule.abar_prev[j], schedule.abar[j]
        eps = predict(x, [j] * x.shape[0])
        x = math.sqrt(a_next) * predict_x0(x, eps, a_cur) + math.sqrt(1.0 - a_next) * eps
        levels.append(x)
        if on_progress is not None:
            on_progress(n, T - start)
    stacked = torch.stack(levels[::-1])
    return Inversion("ddim", start, stacked)
