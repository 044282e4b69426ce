"""The DDIM/DDPM step maths on explicit tensors.

Notation as in ``shared/notes/radedit-method.md``: ``abar_t`` is
``scheduler.alphas_cumprod[t]``; with ``timestep_spacing="trailing"`` and T
steps the timesteps are 999, 999 - 1000/T, ..., and ``prev(t) = t - 1000/T``,
with ``abar_prev = final_alpha_cumprod`` (1.0) past the last step.

Coefficients are computed in float64 and applied to float32 latents; the UNet
may run in bf16/fp16, the latents never do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """Timesteps of one sampling run and their cumulative alphas, index i = 0..T-1."""

    timesteps: tuple[int, ...]
    abar: tuple[float, ...]
    abar_prev: tuple[float, ...]

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def sigma(self, i: int) -> float:
        """DDPM posterior std of step i (0 at the last step, where abar_prev = 1)."""
        a, ap = self.abar[i], self.abar_prev[i]
        var = (1.0 - ap) / (1.0 - a) * (1.0 - a / ap)
        return math.sqrt(max(var, 0.0))

    def skip_steps(self, skip_ratio: float) -> int:
        """Number of leading steps skipped: ``int(T * skip_ratio)`` (paper: 0.3)."""
        if not 0.0 <= skip_ratio < 1.0:
            raise ConfigError(f"skip_ratio must be in [0, 1), got {skip_ratio}")
        return int(self.num_steps * skip_ratio)


def make_schedule(scheduler, num_inference_steps: int) -> Schedule:
    """Timesteps and alphas exactly as ``DDIMScheduler.step`` uses them."""
    if num_inference_steps < 1:
        raise ConfigError(f"steps must be >= 1, got {num_inference_steps}")
    train_steps = scheduler.config.num_train_timesteps
    if num_inference_steps > train_steps:
        raise ConfigError(f"steps must be <= {train_steps}, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps)
    alphas = scheduler.alphas_cumprod.double()
    final = float(scheduler.final_alpha_cumprod)
    stride = train_steps // num_inference_steps
    timesteps = tuple(int(t) for t in scheduler.timesteps)
    abar = tuple(float(alphas[t]) for t in timesteps)
    abar_prev = tuple(float(alphas[t - stride]) if t - stride >= 0 else final for t in timesteps)
    return Schedule(timesteps, abar, abar_prev)


def predict_x0(x: torch.Tensor, eps: torch.Tensor, abar: float) -> torch.Tensor:
    return (x - math.sqrt(1.0 - abar) * eps) / math.sqrt(abar)


def step_mean(x: torch.Tensor, eps: torch.Tensor, schedule: Schedule, i: int, eta: float) -> torch.Tensor:
    """mu_t: the DDIM(eta) update of step i without its noise term."""
    a, ap = schedule.abar[i], schedule.abar_prev[i]
    std = eta * schedule.sigma(i)
    direction = math.sqrt(max(1.0 - ap - std**2, 0.0))
    return math.sqrt(ap) * predict_x0(x, eps, a) + direction * eps


def noise_scale(schedule: Schedule, i: int, eta: float) -> float:
    """Coefficient of the noise map z in step i of the edit-friendly reverse pass.

    ``eta * sigma_t``, except where that is 0 (the last step, where
    abar_prev = 1): there the DDPM noise term vanishes and ``x0_hat`` of the
    model would replace the source's x0.  Giving that step a unit coefficient
    makes z the residual ``x0 - mu``, so the reverse pass stays an exact
    inverse and no division by sigma = 0 (NaN) ever happens.
    """
    std = eta * schedule.sigma(i)
    return std if std > 0.0 else 1.0


def reverse_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    schedule: Schedule,
    i: int,
    eta: float,
    z: torch.Tensor | None,
) -> torch.Tensor:
    """x_{t-1} = mu_t + noise_scale * z_t; ``z=None`` gives the deterministic DDIM(eta) mean."""
    mu = step_mean(x, eps, schedule, i, eta)
    if z is None:
        return mu
    return mu + noise_scale(schedule, i, eta) * z


def guided_eps(
    eps_uncond: torch.Tensor,
    eps_cond: torch.Tensor,
    weights: torch.Tensor,
    edit_mask: torch.Tensor | None,
) -> torch.Tensor:
    """eps_u + m_edit * sum_k w_k (eps_k - eps_u).

    ``eps_cond`` is [P, B, C, H, W] (one slice per prompt), ``weights`` [P].
    With one prompt this is the paper's masked classifier-free guidance; with
    several it is the composable (weighted-sum) form, where a negative weight
    steers away from its prompt.
    """
    w = weights.to(eps_cond).view(-1, *([1] * (eps_cond.dim() - 1)))
    direction = (w * (eps_cond - eps_uncond.unsqueeze(0))).sum(dim=0)
    if edit_mask is not None:
        direction = edit_mask * direction
    return eps_uncond + direction
