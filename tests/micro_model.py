"""The test-only micro model: the demo model's classes, configurations and folder layout, a few hundred KB.

Mechanics tests (call counts, shapes, masks, I/O, DICOM writing, batching,
resume, CLI plumbing, settings) need a model that loads through the real
loader and runs the real pipeline, not one that edits well: this one runs an
edit many times faster than the demo model (``radedit_core/data/demo_model``).
Tests of what an edit *does* (a pneumothorax removed, the replication, the
fast path's agreement and exact-reconstruction figures the documentation
states) stay on the demo model.

What it is: :func:`radedit_core.models.tiny.write_tiny_model` with
:data:`MICRO_UNET` and :data:`MICRO_VAE`, the tiny configurations scaled down
(16 x 16 latents, so a 128 x 128 model space; 8 and 16 channels); the tiny
model's text encoder, tokenizer and the model card's DDIM scheduler.  Its
weights are the seeded random initialisation with the UNet's output
convolution scaled by :data:`OUTPUT_SCALE`: a random UNet is a chaotic map
that amplifies float rounding over the steps (a run with another batch size
or thread count would drift far apart), a damped one is a contraction whose
runs agree to rounding, and its noise predictions still depend on image,
timestep and prompt (an edit changes the pixels it may change).

It is written at test-session start into pytest's temporary folder (under a
second on a CPU, deterministic: the seed fixes every weight) instead of being
committed: nothing binary to keep in step with the classes.  The fixtures
``micro_model_dir``, ``micro_components``, ``micro_pipe`` and ``micro_editor``
in ``tests/conftest.py`` are the way to use it; ``python tests/micro_model.py
DIR`` writes one to look at.
"""

from __future__ import annotations

import sys
from pathlib import Path

from radedit_core.models.tiny import TINY_UNET, TINY_VAE, write_tiny_model

#: TINY_UNET at 16 x 16 latents (128 x 128 model space) and narrow channels.
MICRO_UNET = dict(TINY_UNET, sample_size=16, block_out_channels=(8, 16, 16, 16), norm_num_groups=4)
#: TINY_VAE with narrow channels: the same x8 downsampling and 4 latent channels.
MICRO_VAE = dict(TINY_VAE, block_out_channels=(8, 8, 16, 16), norm_num_groups=4, sample_size=128)
#: The UNet's output convolution is multiplied by this (see the module docstring).
OUTPUT_SCALE = 0.05
SEED = 0
NAME = "radedit-micro-test"


def write_micro_model(folder: str | Path, seed: int = SEED) -> Path:
    """Write the micro model into ``folder`` (created; must not exist); returns it."""
    import torch  # noqa: PLC0415
    from diffusers import UNet2DConditionModel  # noqa: PLC0415

    folder = write_tiny_model(folder, seed=seed, unet=MICRO_UNET, vae=MICRO_VAE, name=NAME)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    with torch.no_grad():
        unet.conv_out.weight.mul_(OUTPUT_SCALE)
        unet.conv_out.bias.mul_(OUTPUT_SCALE)
    unet.save_pretrained(folder / "unet")
    (folder / "README.md").write_text(
        f"Micro RadEdit model for radedit_core's tests only (random weights, seed {seed}, output convolution "
        f"x {OUTPUT_SCALE}; tests/micro_model.py). Its edits mean nothing.\n"
    )
    return folder


if __name__ == "__main__":
    print(write_micro_model(sys.argv[1]))
