"""Batched editing: B images in one pipeline pass equal B single edits.

Three different phantoms, each with its own edit mask (one a global edit),
keep mask (one without), prompts (one image with two, so the others are
padded with zero-weight slots), guidance weights and seed, in both inversion
modes:

* with per-sample UNet kernels the batch is the single edits bit for bit:
  the batching itself (per-image noise, masks, conditioning, weights,
  padding, VAE slicing) is exact;
* with the real batched kernels it agrees within float32 rounding, which
  the UNet's kernels produce differently at other batch sizes (about 1e-6
  per call) and guidance multiplies over the steps.  On the
  earlier demo model a single edit alone moved by up to 2.5e-4 in model
  space when only its call layout changed (``batch_conditions=False``,
  ``inversion_batch_size=1``; the global edit at guidance 15) and a batch
  differed from its single edits by up to 2.2e-4; on the phantom-world demo
  model (a deeper UNet) a batch differed by up to 6.4e-4 in the latents and
  8e-5 in the decoded images with torch 2.13's CPU build, and with torch
  2.14.1 (the set-up's pair with torchvision) by up to 2.3e-3 in the latents
  (whose values reach about 30) and 1e-4 in the images (the retrained demo
  model, same architecture: 2.2e-4 and 8.6e-5), so a tolerance of 1e-4
  would fail on rounding alone: ``LATENT_ATOL`` and ``IMAGE_ATOL``; any
  mistake in the batching (an image with another's noise, mask, prompt or
  weight) moves an image by orders of magnitude more, and the bit-for-bit
  test above rules out even small ones;
* a batch makes as many UNet calls as one image;
* :meth:`RadEditor.edit_batch` of one request is :meth:`RadEditor.edit` bit
  for bit, and of three requests (per-sample kernels) too, on the source grid;
* the compiled step loop is not recompiled across steps or across batches
  of the same size.

Only the rounding tolerance (a figure docs/speed.md states, measured on the demo
model) runs on the demo model; everything else is mechanics of the batching,
checked bit for bit, by call counts or within a stored unit, and runs on the
test-only micro model (conftest), whose edits are many times cheaper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radedit_core.errors import ConfigError

STEPS = 4
#: Latents and decoded model-space images of a batch against the single edits (float32 rounding,
#: amplified by guidance; see the module docstring for the measured spread).
LATENT_ATOL = 5e-3
IMAGE_ATOL = 1e-3
PROMPTS = [["No pneumothorax", "Small left pleural effusion"], ["Moderate pulmonary edema"], ["Mild cardiomegaly"]]
WEIGHTS = [[12.0, -4.0], [15.0], [7.5]]
SEEDS = [3, 11, 7]


# One torch thread for the whole module (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def phantoms(model_size):
    """Three phantoms in model space with their own edit (lung) and keep (pacemaker) masks."""
    from radedit_core.imaging.image import SourceImage
    from radedit_core.imaging.transform import ModelSpaceTransform
    from radedit_core.synthetic import chest_phantom, quantise

    images, edits, keeps = [], [], []
    for seed, lung in ((0, "left_lung"), (1, "right_lung"), (2, "left_lung")):
        ph = chest_phantom(600, 520, seed=seed)
        src = SourceImage.from_array(quantise(ph.image, 12), value_range=(0, 4095))
        tf = ModelSpaceTransform.fit(src, model_size)
        images.append(tf.image_to_model(src.array))
        edits.append(tf.mask_to_model(ph.mask(lung).astype(np.float32)))
        keeps.append(tf.mask_to_model(ph.mask("pacemaker").astype(np.float32)))
    return torch.cat(images), edits, keeps


def three_of(model_size):
    """Image 1 is a global edit, image 2 keeps nothing."""
    images, edits, keeps = phantoms(model_size)
    return images, [edits[0], None, edits[2]], [keeps[0], keeps[1], None]


@pytest.fixture(scope="module")
def three(edit_pipe):
    """The three edits in the demo model's space."""
    return three_of(edit_pipe.model_resolution)


@pytest.fixture(scope="module")
def micro_three(micro_pipe):
    """The three edits in the micro model's space."""
    return three_of(micro_pipe.model_resolution)



class PerSampleUNet(torch.nn.Module):
    """The UNet evaluated one sample at a time: results independent of the batch size."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return torch.cat([
            self.unet(sample[k : k + 1], timestep[k : k + 1], encoder_hidden_states=encoder_hidden_states[k : k + 1],
                      return_dict=False)[0]
            for k in range(sample.shape[0])
        ])  # fmt: skip


def batch_and_singles(pipe, three, inversion, count_unet=None):
    images, edits, keeps = three
    kw = dict(num_inference_steps=STEPS, inversion=inversion)
    counter = count_unet(pipe.unet) if count_unet else None
    batch = pipe(images, PROMPTS, WEIGHTS, edit_mask=edits, keep_mask=keeps, generator=SEEDS, **kw)
    batch_calls = counter.calls if counter else None
    singles = [
        pipe(images[b : b + 1], PROMPTS[b], WEIGHTS[b], edit_mask=edits[b], keep_mask=keeps[b], generator=SEEDS[b], **kw)
        for b in range(3)
    ]
    return batch, singles, batch_calls, counter


@pytest.mark.parametrize("inversion", ["ddpm", "ddim"])
def test_a_batch_is_its_single_edits_bit_for_bit_with_per_sample_kernels(micro_components, micro_three, inversion):
    from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

    pipe = RadEditPipeline.from_components(micro_components)
    pipe.set_progress_bar_config(disable=True)
    pipe.use_unet_module(PerSampleUNet(pipe.unet))
    batch, singles, _, _ = batch_and_singles(pipe, micro_three, inversion)
    for b, one in enumerate(singles):
        mine = batch.select(b)
        assert torch.equal(mine.latents, one.latents), f"image {b}"
        assert torch.equal(mine.images, one.images), f"image {b}"
        assert torch.equal(mine.inversion.latents, one.inversion.latents)
        assert mine.text == one.text
    # the images really differ from each other (a batch of copies would prove nothing)
    assert (batch.images[0] - batch.images[1]).abs().max() > 0.1


# The default inversion in the quick loop; DDIM's batching is proven exact above, its rounding
# bound (the same figure) is checked with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize("inversion", ["ddpm", "ddim"])
def test_a_batch_agrees_with_its_single_edits_within_float32_rounding(edit_pipe, three, inversion, count_unet):
    batch, singles, batch_calls, counter = batch_and_singles(edit_pipe, three, inversion, count_unet)
    assert batch.unet_calls == singles[0].unet_calls == batch_calls  # a batch costs the calls of one image
    assert counter.calls == 4 * batch_calls  # the batch and three singles, each with the same calls
    for b, one in enumerate(singles):
        mine = batch.select(b)
        latent = (mine.latents - one.latents).abs().max().item()
        image = (mine.images - one.images).abs().max().item()
        assert latent <= LATENT_ATOL and image <= IMAGE_ATOL, f"image {b}: latents {latent:.1e}, images {image:.1e}"


def test_a_batch_carries_b_times_the_samples_in_the_same_calls(micro_pipe, micro_three, count_unet):
    edit_pipe = micro_pipe
    images, edits, keeps = micro_three
    prompts = [p[:1] for p in PROMPTS]  # one prompt each: calls of 2B samples per step
    with count_unet(edit_pipe.unet) as one:
        edit_pipe(images[:1], prompts[0], edit_mask=edits[0], num_inference_steps=STEPS, generator=0)
    with count_unet(edit_pipe.unet) as three_images:
        edit_pipe(images, prompts, edit_mask=edits, keep_mask=keeps, num_inference_steps=STEPS, generator=SEEDS)
    assert three_images.calls == one.calls
    assert three_images.samples == 3 * one.samples


def test_edit_batch_maps_each_image_back_like_edit(micro_components, tmp_path):
    # Per-sample UNet kernels (as above): the batch's rounding equals the singles', so each
    # image must come back onto its source grid bit for bit, not merely within a stored unit.
    from radedit_core.demo import sample_dir
    from radedit_core.settings import EditSettings
    from radedit_core.workflow import RadEditor, prepare_edit

    editor = RadEditor(micro_components)
    editor.set_progress(False)
    editor.pipe.use_unet_module(PerSampleUNet(editor.pipe.unet))
    sample = sample_dir()
    rows = [(["No pneumothorax"], 1, sample / "pacemaker_mask.png", 5),
            (["Small left pleural effusion", "Mild cardiomegaly"], 2, None, 0),
            (["Moderate pulmonary edema"], 3, None, 3)]  # fmt: skip
    requests = [
        prepare_edit(sample / "cxr.png", sample / "lungs_mask.png", keep,
                     EditSettings(prompts=prompts, seed=seed, steps=STEPS, dilate=dilate), tmp_path / f"o{k}.png")
        for k, (prompts, seed, keep, dilate) in enumerate(rows)
    ]  # fmt: skip
    r = requests[0]
    alone = editor.edit(r.image, r.edit, r.keep, r.settings, mask_paths=(r.edit_ref, r.keep_ref))
    (one,) = editor.edit_batch(requests[:1])
    assert np.array_equal(one.image.array, alone.image.array)
    assert np.array_equal(one.model_output, alone.model_output)

    batch = editor.edit_batch(requests)
    for r, result in zip(requests, batch):
        single = editor.edit(r.image, r.edit, r.keep, r.settings, mask_paths=(r.edit_ref, r.keep_ref))
        assert np.array_equal(result.image.array, single.image.array)
        assert result.provenance["result"]["batch_size"] == 3 and result.batch_size == 3
        assert result.provenance["settings"]["prompts"] == r.settings.prompts
        assert result.masks.summary() == single.masks.summary()  # each image's own dilation
    # the edits differ (three copies of one image would prove nothing) and the pixel keep
    # mask holds bit for bit in the batched edit too
    assert not np.array_equal(batch[0].image.array, batch[1].image.array)
    keep = batch[0].masks.keep >= 1.0
    assert keep.any() and np.array_equal(batch[0].image.array[keep], requests[0].image.array[keep])


def test_edits_that_cannot_share_a_pass_are_refused(micro_editor, tmp_path):
    editor = micro_editor
    from radedit_core.demo import sample_dir
    from radedit_core.settings import EditSettings
    from radedit_core.workflow import prepare_edit

    sample = sample_dir()
    a, b = (prepare_edit(sample / "cxr.png", sample / "lungs_mask.png", None, EditSettings(prompts=["x"], steps=s),
                         tmp_path / f"{s}.png") for s in (5, 6))  # fmt: skip
    with pytest.raises(ConfigError, match="edits in one batch must share steps"):
        editor.edit_batch([a, b])


def test_compiled_step_loop_is_not_recompiled_across_steps_or_batches(micro_components, micro_three):
    # Dynamo decides recompilation (its guards); the "eager" backend keeps the test fast and
    # leaves the code generation, which does not change that decision, to the GPU check.
    import torch._dynamo
    from torch._dynamo.utils import counters

    from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

    images, edits, keeps = micro_three
    pipe = RadEditPipeline.from_components(micro_components)
    pipe.set_progress_bar_config(disable=True)
    eager = RadEditPipeline.from_components(micro_components)
    eager.set_progress_bar_config(disable=True)
    torch._dynamo.reset()
    # Dynamo's counters are process-wide and outlive reset(): count what this test compiles.
    before = counters["stats"]["unique_graphs"]
    pipe.compile_unet(mode=None, backend="eager")
    kw = dict(num_inference_steps=STEPS)
    try:
        first = pipe(images[:2], [["No pneumothorax"], ["Moderate pulmonary edema"]], edit_mask=edits[:2],
                     keep_mask=keeps[:2], generator=[1, 2], **kw)  # fmt: skip
        graphs = counters["stats"]["unique_graphs"]
        assert graphs - before == 1  # the step call's one shape; the inversion runs eagerly
        torch._dynamo.config.error_on_recompile = True
        second = pipe(images[1:], [["Mild cardiomegaly"], ["Small left pleural effusion"]], [[5.0], [20.0]],
                      edit_mask=edits[1:], keep_mask=keeps[1:], generator=[8, 9], **kw)  # fmt: skip
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        torch._dynamo.config.error_on_recompile = False
        torch._dynamo.reset()
    assert pipe.is_compiled and not pipe.inversion_is_compiled
    expected = eager(images[1:], [["Mild cardiomegaly"], ["Small left pleural effusion"]], [[5.0], [20.0]],
                     edit_mask=edits[1:], keep_mask=keeps[1:], generator=[8, 9], **kw)  # fmt: skip
    assert torch.equal(second.images, expected.images)
    assert not torch.equal(first.images, second.images)
