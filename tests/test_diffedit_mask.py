"""DiffEdit's automatic mask on RadEdit's components equals diffusers' generate_mask on the same components.

On the test-only micro model (conftest): conformance with diffusers' maths and the mask's mapping
do not depend on what the weights edit, and its 16 x 16 latents cost a fraction of the demo model's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from radedit_core.imaging.transform import ModelSpaceTransform
from radedit_core.pipelines.diffedit_mask import diffedit_mask, latent_mask_to_source

SOURCE = "Large right pneumothorax. Right chest drain in place."
TARGET = "No pneumothorax"


@pytest.fixture(scope="module")
def sample_model_image(micro_pipe):
    from radedit_core.demo import sample_dir
    from radedit_core.imaging.io import read_image

    image = read_image(sample_dir() / "cxr.png")
    tf = ModelSpaceTransform.fit(image, micro_pipe.model_resolution)
    return image, tf, tf.image_to_model(image.array)


def _diffusers_pipeline(components):
    from diffusers import DDIMInverseScheduler, StableDiffusionDiffEditPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = StableDiffusionDiffEditPipeline(
            vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
            unet=components.unet, scheduler=components.scheduler,
            inverse_scheduler=DDIMInverseScheduler.from_config(components.scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_mask_matches_diffusers_generate_mask_with_its_defaults(micro_components, micro_pipe, sample_model_image):
    components, edit_pipe = micro_components, micro_pipe
    _, _, model_image = sample_model_image
    ours = diffedit_mask(edit_pipe, model_image, SOURCE, TARGET, generator=3)
    reference = _diffusers_pipeline(components)
    assert reference.tokenizer.model_max_length == edit_pipe.text_settings.max_length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = reference.generate_mask(
            image=model_image.expand(-1, 3, -1, -1), source_prompt=SOURCE, target_prompt=TARGET,
            generator=torch.Generator().manual_seed(3), output_type="np",
        )  # fmt: skip
    theirs = np.asarray(theirs)[0].astype(bool)
    assert ours.mask.shape == theirs.shape == (16, 16)  # the micro model's latent grid
    assert ours.unet_evaluations == 40 and ours.encode_timestep == 499  # 50 trailing steps, strength 0.5
    # Same draws, same maths: identical but for pixels at the 0.5 threshold within float rounding.
    assert (ours.mask != theirs).mean() <= 0.002, (ours.mask != theirs).sum()
    assert 0 < ours.mask.mean() < 0.5


def test_identical_prompts_give_an_empty_mask(micro_pipe, sample_model_image):
    edit_pipe = micro_pipe
    _, _, model_image = sample_model_image
    out = diffedit_mask(edit_pipe, model_image, TARGET, TARGET, num_maps_per_mask=2, generator=0)
    assert float(np.abs(out.guidance_map).max()) == 0.0 and not out.mask.any()


def test_latent_mask_lands_on_the_source_grid_inside_the_crop(sample_model_image):
    image, tf, _ = sample_model_image
    latent = np.zeros((16, 16), bool)
    latent[0, 0] = latent[-1, -1] = True
    mask = latent_mask_to_source(latent, tf)
    r0, c0, size = tf.crop
    assert mask.shape == image.shape and not mask[:r0].any() and not mask[r0 + size :].any()
    cell = size / 16
    assert mask[r0, c0] and mask[r0 + size - 1, c0 + size - 1]
    assert abs(int(mask.sum()) - 2 * cell * cell) <= 4 * cell + 4


def test_bad_arguments_are_refused(micro_pipe, sample_model_image):
    edit_pipe = micro_pipe
    _, _, model_image = sample_model_image
    with pytest.raises(ValueError, match="mask_encode_strength"):
        diffedit_mask(edit_pipe, model_image, SOURCE, TARGET, mask_encode_strength=0.0)
    with pytest.raises(ValueError, match="one image"):
        diffedit_mask(edit_pipe, model_image.repeat(2, 1, 1, 1), SOURCE, TARGET)
