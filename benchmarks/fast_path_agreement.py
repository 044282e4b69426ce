"""The fast-path table of docs/speed.md ("Agreement with float32"), measured: each fast-path change against float32 on the same inputs and noise.

    python benchmarks/fast_path_agreement.py [--model tiny] [--steps 30]

On the inputs of ``tests/test_fast_path.py`` (the chest phantom of the test
fixtures, 600 x 520, seed 3: edit mask the left lung, keep mask the
pacemaker; prompt "Moderate pulmonary edema. The heart size is normal"),
prints for decoded model-space images in [-1, 1]:

* the maximum absolute difference between the fast call layout (conditions
  in one UNet call, inversion batched over 16 timesteps) and one sample per
  call (the test's tolerance: 1e-4);
* the PSNR of the UNet and text encoder in bfloat16 and in float16 against
  float32 (tolerance: 40 dB);
* the exact-reconstruction error (edit prompt = invert prompt = "", T=40):
  the largest latent difference from the inverted x0 (tolerance: 1e-5).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from radedit_core.imaging.image import SourceImage
from radedit_core.imaging.transform import ModelSpaceTransform
from radedit_core.models.loading import load_components
from radedit_core.pipelines.pipeline_radedit import RadEditPipeline
from radedit_core.scoring import model_space_psnr
from radedit_core.synthetic import chest_phantom, quantise

PROMPT = "Moderate pulmonary edema. The heart size is normal"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    phantom = chest_phantom(600, 520, seed=3)
    src = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    tf = ModelSpaceTransform.fit(src)
    image = tf.image_to_model(src.array)
    lung = tf.mask_to_model(phantom.mask("left_lung").astype(np.float32))
    keep = tf.mask_to_model(phantom.mask("pacemaker").astype(np.float32))
    components = load_components(args.model, device="cpu", dtype="float32")

    def pipe_for(dtype=None):
        pipe = RadEditPipeline.from_components(components if dtype is None else components.with_dtype(dtype))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def edit(pipe, **kw):
        kw.setdefault("num_inference_steps", args.steps)
        return pipe(image, PROMPT, edit_mask=lung, keep_mask=keep, generator=0, **kw)

    fp32 = pipe_for()
    reference = edit(fp32, batch_conditions=False, inversion_batch_size=1)
    fast = edit(fp32, inversion_batch_size=16)
    print(f"batched call layout: max abs difference {(fast.images - reference.images).abs().max().item():.2e} "
          f"({fast.unet_calls} UNet calls against {reference.unet_calls})")  # fmt: skip
    for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        out = edit(pipe_for(dtype))
        print(f"UNet and text encoder in {name}: PSNR {model_space_psnr(out.images, reference.images):.1f} dB")
    exact = fp32(image, "", edit_mask=lung, num_inference_steps=40, generator=0)
    print(f"exact reconstruction (prompt = invert prompt, T=40): max latent error "
          f"{(exact.latents - exact.source_latents).abs().max().item():.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
