"""The DDIM/DDPM step maths on explicit tensors.

Notation as in ``shared/notes/radedit-method.md``: ``abar_t`` is
``scheduler.alphas_cumprod[t]``.  The timesteps are the scheduler's own list
for T steps (``set_timesteps``: with ``timestep_spacing="trailing"`` and
T = 200 they are 999, 994, ..., 4; ``leading`` and ``linspace`` give other
lists).  Step i goes from the level of ``timesteps[i]`` to the level of the
next listed timestep, and the last step ends at x0 (abar = 1).  Diffusers'
own rule, ``prev(t) = t - 1000 // T``, disagrees with the list whenever T does
not divide 1000 (and with ``leading``/``linspace`` spacings), and ends the
last step short of abar = 1; ``reference_compat=True`` keeps it, to reproduce
the released pipeline.

The UNet may predict ``epsilon``, ``v_prediction`` or ``sample``
(``prediction_type``); :func:`to_epsilon` turns the latter two into the noise
prediction the step maths use, so inversion stays exact for all three.

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


def make_schedule(scheduler, num_inference_steps: int, reference_compat: bool = False) -> Schedule:
    """Timesteps and cumulative alphas of ``num_inference_steps`` steps of ``scheduler``.

    ``abar_prev[i]`` is abar of the next listed timestep, 1.0 after the last
    one; with ``reference_compat`` it is diffusers' ``t - num_train_timesteps
    // T`` rule (``final_alpha_cumprod`` past 0).

    Raises:
        ConfigError: for a step count outside 1..num_train_timesteps, or a
            spacing whose timesteps fall outside the trained range (``leading``
            with ``steps_offset`` 1 at 1000 steps lists timestep 1000).
    """
    if num_inference_steps < 1:
        raise ConfigError(f"steps must be >= 1, got {num_inference_steps}")
    train_steps = scheduler.config.num_train_timesteps
    if num_inference_steps > train_steps:
        raise ConfigError(f"steps must be <= {train_steps}, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps)
    alphas = scheduler.alphas_cumprod.double()
    timesteps = tuple(int(t) for t in scheduler.timesteps)
    bad = [t for t in timesteps if not 0 <= t < train_steps]
    if bad or len(set(timesteps)) != len(timesteps):
        spacing = scheduler.config.timestep_spacing
        raise ConfigError(
            f"scheduler timestep_spacing '{spacing}' with steps_offset {scheduler.config.steps_offset} gives "
            f"{'timestep ' + str(bad[0]) + ' outside 0..' + str(train_steps - 1) if bad else 'repeated timesteps'} "
            f"at {num_inference_steps} steps; use fewer steps or timestep_spacing 'trailing'"
        )
    abar = tuple(float(alphas[t]) for t in timesteps)
    if reference_compat:
        final = float(scheduler.final_alpha_cumprod)
        stride = train_steps // num_inference_steps
        abar_prev = tuple(float(alphas[t - stride]) if t - stride >= 0 else final for t in timesteps)
    else:
        abar_prev = abar[1:] + (1.0,)
    return Schedule(timesteps, abar, abar_prev)


def to_epsilon(output: torch.Tensor, x: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The noise prediction equivalent to a UNet ``output`` of ``prediction_type`` at levels ``abar``.

    ``abar`` broadcasts over ``x`` (one value per sample: [N, 1, 1, 1]).
    ``v_prediction`` (Salimans & Ho): eps = sqrt(abar) v + sqrt(1 - abar) x;
    ``sample``: eps = (x - sqrt(abar) x0) / sqrt(1 - abar).
    """
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return abar.sqrt() * output + (1.0 - abar).sqrt() * x
    if prediction_type == "sample":
        return (x - abar.sqrt() * output) / (1.0 - abar).sqrt()
    raise ConfigError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")


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

    ``eps_cond`` is [P, B, C, H, W] (one slice per prompt), ``weights`` [P]
    (the same for every image) or [P, B] (per image: a batch of edits, where
    an image with fewer prompts has zero weights in the padded slots, which
    add exactly nothing).  With one prompt this is the paper's masked
    classifier-free guidance; with several it is the composable
    (weighted-sum) form, where a negative weight steers away from its prompt.
    """
    w = weights.to(eps_cond)
    w = w.view(*w.shape, *([1] * (eps_cond.dim() - w.dim())))
    direction = (w * (eps_cond - eps_uncond.unsqueeze(0))).sum(dim=0)
    if edit_mask is not None:
        direction = edit_mask * direction
    return eps_uncond + direction
