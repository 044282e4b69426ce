"""The step maths against diffusers' own DDIMScheduler (conformance)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler

from radedit_core.diffusion.schedule import make_schedule, noise_scale, reverse_step, step_mean
from radedit_core.errors import ConfigError
from radedit_core.models.spec import RADEDIT_SCHEDULER


@pytest.fixture
def scheduler():
    return DDIMScheduler(**RADEDIT_SCHEDULER)


def test_trailing_timesteps_for_200_steps(scheduler):
    sched = make_schedule(scheduler, 200)
    assert sched.timesteps == tuple(range(999, 3, -5))
    assert sched.timesteps[0] == 999 and sched.timesteps[-1] == 4
    assert len(sched.timesteps) == 200
    # prev(t) = t - 5; past the last step abar_prev is final_alpha_cumprod = 1.
    alphas = scheduler.alphas_cumprod.double()
    assert sched.abar_prev[0] == pytest.approx(float(alphas[994]))
    assert sched.abar_prev[-1] == 1.0


def test_model_card_betas_are_the_linear_ho_schedule(scheduler):
    # The model card builds DDIMScheduler with defaults besides the listed keys.
    assert scheduler.config.beta_start == 1e-4 and scheduler.config.beta_end == 0.02
    assert scheduler.config.beta_schedule == "linear"
    assert scheduler.config.prediction_type == "epsilon" and not scheduler.config.clip_sample


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_reverse_step_matches_ddim_scheduler_step(scheduler, eta):
    sched = make_schedule(scheduler, 50)
    gen = torch.Generator().manual_seed(0)
    for i in (0, 17, 48):
        x = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
        eps = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
        z = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
        ours = reverse_step(x, eps, sched, i, eta, z if eta > 0 else None)
        ref = scheduler.step(eps, sched.timesteps[i], x, eta=eta, variance_noise=z).prev_sample
        assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-6), i


def test_last_step_has_zero_sigma_and_finite_unit_noise_scale(scheduler):
    sched = make_schedule(scheduler, 200)
    assert sched.sigma(199) == 0.0
    assert noise_scale(sched, 199, 1.0) == 1.0
    assert all(math.isfinite(sched.sigma(i)) and sched.sigma(i) >= 0 for i in range(200))
    assert all(noise_scale(sched, i, 1.0) > 0 for i in range(200))


def test_step_mean_has_no_nan_at_any_step(scheduler):
    sched = make_schedule(scheduler, 200)
    x = torch.randn(1, 4, 8, 8)
    for i in range(200):
        assert torch.isfinite(step_mean(x, x, sched, i, 1.0)).all()


@pytest.mark.parametrize("steps", [0, 1001])
def test_invalid_step_counts(scheduler, steps):
    with pytest.raises(ConfigError):
        make_schedule(scheduler, steps)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_invalid_skip_ratio(scheduler, ratio):
    with pytest.raises(ConfigError):
        make_schedule(scheduler, 10).skip_steps(ratio)
