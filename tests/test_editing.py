"""Invariants of the RadEdit maths, on real diffusers UNets and VAEs.

The exact-reconstruction figure the documentation states (docs/speed.md: edit prompt = invert
prompt = "", T=40, within 1e-5, measured by ``benchmarks/fast_path_agreement.py``) on the demo model;
everything else on the test-only micro model (conftest) with fewer steps: keep masks, the
reference-compatible variant, bit-exactness, call counts, seeds, finiteness and argument checks are
mechanics of the pipeline that hold (or break) the same way for any UNet, and each is asserted
bit for bit or against a change orders of magnitude above float rounding.
"""

from __future__ import annotations

import math

import pytest
import torch

from radedit_core.errors import ConfigError, InputError, MaskError

DEMO_STEPS = 40  # the documented case: skip 0.3 -> 28 inverted + 28 sampling steps
STEPS = 10  # micro model: skip 0.3 -> 7 inverted + 7 sampling steps
SKIP = int(STEPS * 0.3)
EXACT_TOL = 1e-5


def run(pipe, image, prompt="No acute cardiopulmonary process", **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("generator", 0)
    return pipe(image, prompt, **kw)


def max_err(out):
    return (out.latents - out.source_latents).abs().max().item()


# -- exact reconstruction ---------------------------------------------------------
def test_prompt_equal_to_invert_prompt_reconstructs_x0(edit_pipe, model_inputs):
    image, lung, _ = model_inputs
    out = run(edit_pipe, image, prompt="", edit_mask=lung, num_inference_steps=DEMO_STEPS)
    assert max_err(out) <= EXACT_TOL


def test_nonempty_invert_prompt_with_same_prompt_and_guidance_reconstructs_x0(micro_pipe, micro_model_inputs):
    image, _, _ = micro_model_inputs
    p = "Moderate pulmonary edema"
    out = run(micro_pipe, image, prompt=p, invert_prompt=p, weights=3.5, invert_guidance=3.5)
    assert max_err(out) <= EXACT_TOL


def test_empty_edit_mask_reconstructs_x0(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=torch.zeros_like(lung))
    assert max_err(out) <= EXACT_TOL


def test_reconstruction_is_bit_exact_when_calls_are_laid_out_alike(micro_pipe, micro_model_inputs):
    # The residual form of the step returns the inverted latent bit for bit
    # whenever the UNet returns the same bits; with one sample per call the
    # only difference left (batch-dependent kernel rounding) disappears.
    image, lung, _ = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=torch.zeros_like(lung), inversion_batch_size=1, batch_conditions=False)
    assert torch.equal(out.latents, out.source_latents)


# -- keep mask ----------------------------------------------------------------------
def test_keep_mask_of_ones_returns_x0_exactly(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=lung, keep_mask=torch.ones_like(lung))
    assert torch.equal(out.latents, out.source_latents)


def test_kept_latents_equal_x0_and_edit_region_changes(micro_pipe, micro_model_inputs):
    image, lung, device = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=lung, keep_mask=device)
    keep = (out.keep_mask_latent > 0).expand_as(out.latents)
    edit = ((out.edit_mask_latent > 0) & (out.keep_mask_latent == 0)).expand_as(out.latents)
    assert keep.any() and edit.any()
    assert torch.equal(out.latents[keep], out.source_latents[keep])
    change = (out.latents - out.source_latents).abs()
    assert change[edit].mean() > 100 * EXACT_TOL


def test_overlap_keep_wins(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=lung, keep_mask=lung)
    both = ((out.edit_mask_latent > 0) & (out.keep_mask_latent > 0)).expand_as(out.latents)
    assert both.any()
    assert torch.equal(out.latents[both], out.source_latents[both])


# -- what is computed ------------------------------------------------------------------
def test_unet_evaluations_are_inverted_plus_sampling_steps(micro_pipe, micro_model_inputs, count_unet):
    image, lung, _ = micro_model_inputs
    counter = count_unet(micro_pipe.unet)
    out = run(micro_pipe, image, edit_mask=lung, inversion_batch_size=1)
    steps = STEPS - SKIP
    assert out.unet_evaluations == 2 * steps
    # one call per inverted step and one batched (uncond + cond) call per sampling step
    assert counter.calls == out.unet_calls == 2 * steps
    assert counter.samples == steps * 1 + steps * 2


def test_inversion_batches_timesteps(micro_pipe, micro_model_inputs, count_unet):
    image, lung, _ = micro_model_inputs
    counter = count_unet(micro_pipe.unet)
    out = run(micro_pipe, image, edit_mask=lung, inversion_batch_size=3)
    steps = STEPS - SKIP
    assert out.unet_evaluations == 2 * steps
    assert counter.calls == math.ceil(steps / 3) + steps


def test_separate_condition_calls_when_not_batched(micro_pipe, micro_model_inputs, count_unet):
    image, lung, _ = micro_model_inputs
    counter = count_unet(micro_pipe.unet)
    run(micro_pipe, image, edit_mask=lung, inversion_batch_size=1, batch_conditions=False)
    steps = STEPS - SKIP
    assert counter.calls == steps + 2 * steps


def test_skipped_steps_need_no_inversion(micro_pipe, micro_model_inputs, count_unet):
    image, lung, _ = micro_model_inputs
    full = run(micro_pipe, image, edit_mask=lung, invert_all_steps=True, inversion_batch_size=1, batch_conditions=False)
    lean = run(micro_pipe, image, edit_mask=lung, inversion_batch_size=1, batch_conditions=False)
    assert full.unet_evaluations == STEPS + (STEPS - SKIP)
    assert lean.unet_evaluations == 2 * (STEPS - SKIP)
    # Inverting the skipped steps is wasted work: the result is identical.
    assert torch.equal(full.latents, lean.latents)


def test_no_nan_or_inf_anywhere(micro_pipe, micro_model_inputs):
    image, lung, device = micro_model_inputs
    out = run(micro_pipe, image, edit_mask=lung, keep_mask=device, num_inference_steps=200)
    for t in (out.images, out.latents, out.inversion.latents, out.inversion.means):
        assert torch.isfinite(t).all()
    assert out.timesteps[0] == 999 and out.timesteps[-1] == 4 and out.skip == 60


def test_same_seed_same_output_other_seed_differs(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    a = run(micro_pipe, image, edit_mask=lung, generator=5)
    b = run(micro_pipe, image, edit_mask=lung, generator=5)
    c = run(micro_pipe, image, edit_mask=lung, generator=6)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.latents, c.latents)


# -- reference compatibility ----------------------------------------------------------
def test_reference_compat_pastes_one_step_late(micro_pipe, micro_model_inputs):
    image, lung, device = micro_model_inputs
    default = run(micro_pipe, image, edit_mask=lung, keep_mask=device)
    compat = run(micro_pipe, image, edit_mask=lung, keep_mask=device, reference_compat=True)
    keep = (default.keep_mask_latent > 0).expand_as(default.latents)
    assert torch.equal(default.latents[keep], default.source_latents[keep])
    late = compat.inversion.level(STEPS - 1)  # the noisier input level of the last step
    assert torch.equal(compat.latents[keep], late[keep])
    assert not torch.allclose(compat.latents[keep], compat.source_latents[keep], atol=1e-3)


def test_reference_compat_keep_mask_has_no_effect(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    # keep = 1 - edit on the latent grid (pixel-level complements overlap there)
    lung = torch.nn.functional.max_pool2d(lung, 8)
    outside = 1.0 - lung
    compat_keep = run(micro_pipe, image, edit_mask=lung, keep_mask=outside, reference_compat=True)
    compat_none = run(micro_pipe, image, edit_mask=lung, reference_compat=True)
    assert torch.equal(compat_keep.latents, compat_none.latents)
    ours_keep = run(micro_pipe, image, edit_mask=lung, keep_mask=outside)
    ours_none = run(micro_pipe, image, edit_mask=lung)
    assert not torch.equal(ours_keep.latents, ours_none.latents)


# -- variants ---------------------------------------------------------------------------
def test_ddim_inversion_runs_and_is_only_approximate(micro_pipe, micro_model_inputs, count_unet):
    image, lung, _ = micro_model_inputs
    counter = count_unet(micro_pipe.unet)
    out = run(micro_pipe, image, prompt="", edit_mask=lung, inversion="ddim")
    assert out.unet_evaluations == 2 * (STEPS - SKIP) == counter.calls
    assert torch.isfinite(out.latents).all()
    assert out.inversion.method == "ddim" and out.inversion.means is None


def test_global_edit_changes_everywhere(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    masked = run(micro_pipe, image, edit_mask=lung)
    global_ = run(micro_pipe, image)
    outside = (lung[:, :, ::8, ::8] == 0).expand_as(global_.latents)
    d_masked = (masked.latents - masked.source_latents).abs()[outside].mean()
    d_global = (global_.latents - global_.source_latents).abs()[outside].mean()
    assert d_global > d_masked


def test_weighted_prompts_sum_their_guidance(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    kw = dict(edit_mask=lung, inversion_batch_size=1, batch_conditions=False)
    one = run(micro_pipe, image, prompt=["Moderate pulmonary edema"], weights=[10.0], **kw)
    two = run(micro_pipe, image, prompt=["Moderate pulmonary edema", "Left pectoral pacemaker"], weights=[10.0, 0.0], **kw)
    assert torch.equal(one.latents, two.latents)


# -- bad input --------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(micro_pipe, micro_model_inputs):
    image, lung, _ = micro_model_inputs
    with pytest.raises(ConfigError, match="at least one prompt"):
        micro_pipe(image, [])
    with pytest.raises(ConfigError, match="weights"):
        micro_pipe(image, ["a", "b"], weights=[1.0])
    with pytest.raises(MaskError, match="expected 128x128"):
        micro_pipe(image, "a", edit_mask=lung[:, :, :100, :100])
    with pytest.raises(InputError, match="NaN"):
        micro_pipe(image * float("nan"), "a")
    with pytest.raises(ConfigError, match="eta > 0"):
        micro_pipe(image, "a", eta=0.0)
