"""The RadEdit reverse pass (paper, Algorithm 3; method note).

For every remaining step i (timestep t):

    eps      = eps_u + m_edit * sum_k w_k (eps_k - eps_u)
    x_{t-1}  = mu_t(x_t, eps) + eta sigma_t z_t      (unit scale at sigma = 0)
    x_{t-1}  = m_keep * xhat_{t-1} + (1 - m_keep) * x_{t-1}

where xhat_{t-1} is the inverted latent at the level x_{t-1} now has (x0 after
the last step).  Because the keep paste comes last, keep wins where the two
masks overlap.

``reference_compat=True`` reproduces the released pipeline's pastes instead:
the keep paste uses the inverted latent of the *input* level x_t (one step
late, so residual noise stays in kept regions), and a second paste puts that
latent everywhere outside the edit mask.  So the keep mask has no effect
outside the edit mask, but where it overlaps the edit mask the kept latent is
the late inverted one: the result is the late latent wherever m_keep = 1 or
m_edit = 0.  The last step is not reproduced: the reference implementations
use a zero noise map where sigma = 0 (their final latent is the step mean mu),
while this reverse pass keeps that step's residual x0 - mu_inv in both modes
(the residual form below), so that a null edit returns x0.
"""

from __future__ import annotations

from typing import Callable

import torch

from .inversion import Inversion
from .schedule import Schedule, guided_eps, reverse_step, step_mean

#: predict(x [B, C, H, W] float32, step_index) -> (eps_uncond [B...], eps_cond [P, B, ...])
ConditionalPredictor = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def radedit_reverse(
    inversion: Inversion,
    schedule: Schedule,
    start: int,
    predict: ConditionalPredictor,
    weights: torch.Tensor,
    edit_mask: torch.Tensor | None,
    keep_mask: torch.Tensor | None,
    eta: float,
    reference_compat: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run steps ``start..T-1`` from the inverted latent at step ``start``; return the final latent."""
    T = schedule.num_steps
    ddpm = inversion.method == "ddpm"
    x = inversion.level(start).clone()
    for n, i in enumerate(range(start, T), start=1):
        eps_u, eps_c = predict(x, i)
        eps = guided_eps(eps_u, eps_c, weights, edit_mask)
        if ddpm:
            # mu + scale * z with z = (x_inv_{t-1} - mu_inv) / scale, written
            # without the division: where the prediction equals the
            # inversion's, the step returns the inverted latent bit for bit.
            x = inversion.level(i + 1) + (step_mean(x, eps, schedule, i, eta) - inversion.mean(i))
        else:
            x = reverse_step(x, eps, schedule, i, 0.0, None)
        if reference_compat:
            late = inversion.level(i)
            if keep_mask is not None:
                x = keep_mask * late + (1.0 - keep_mask) * x
            if edit_mask is not None:
                x = edit_mask * x + (1.0 - edit_mask) * late
        elif keep_mask is not None:
            x = keep_mask * inversion.level(i + 1) + (1.0 - keep_mask) * x
        if on_step is not None:
            on_step(n, T - start)
    return x


def reproduces_inversion(
    prompts: list[str],
    weights: list[float],
    invert_prompt: str,
    invert_guidance: float,
    edit_mask: torch.Tensor | None,
) -> bool:
    """Whether the guided prediction of the reverse pass is the inversion's own everywhere (a null edit).

    True when every prompt with a non-zero weight is the invert prompt, their
    weights add up to ``invert_guidance`` and the edit mask is 1 everywhere
    (``None``), or, for an unconditional inversion (``invert_prompt == ""``),
    when the edit mask is 0 everywhere.  The reverse pass then returns x0 in
    exact arithmetic (each residual step returns the inverted latent), and bit
    for bit when its UNet calls are laid out like the inversion's.
    """
    if not invert_prompt:
        return edit_mask is not None and not bool(edit_mask.any())
    guided = [(p, w) for p, w in zip(prompts, weights) if w != 0.0]
    return (
        bool(guided)
        and all(p == invert_prompt for p, _ in guided)
        and sum(w for _, w in guided) == invert_guidance
        and (edit_mask is None or bool((edit_mask == 1).all()))
    )


def ddim_sample(
    x: torch.Tensor,
    schedule: Schedule,
    predict: ConditionalPredictor,
    weights: torch.Tensor,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Plain text-to-image DDIM sampling (eta = 0) with classifier-free guidance."""
    for n, i in enumerate(range(schedule.num_steps), start=1):
        eps_u, eps_c = predict(x, i)
        x = reverse_step(x, guided_eps(eps_u, eps_c, weights, None), schedule, i, 0.0, None)
        if on_step is not None:
            on_step(n, schedule.num_steps)
    return x
