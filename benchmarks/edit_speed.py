"""Seconds per RadEdit edit: a reference-style loop against our fast path.

Both run in one process on the same image, masks and noise:

(a) reference-style: float32, separate unconditional and conditional UNet
    calls, inversion over all T steps one call at a time (what the released
    pipeline does);
(b) our default fast path: bf16/fp16 UNet and text encoder on GPU (float32 on
    CPU), one batched call for both conditions, inversion only of the steps
    the reverse pass uses, batched over timesteps, optionally torch.compile.

Printed: seconds per edit (median), UNet evaluations and calls, peak memory,
the speed ratio, and the PSNR of (b)'s decoded image against a float32 run
of our path with the same noise (agreement of the fast path).

    python benchmarks/edit_speed.py --arch tiny --steps 50          # CPU smoke run
    python benchmarks/edit_speed.py --arch paper --device cuda --compile
    python benchmarks/edit_speed.py --model /path/to/radedit-folder --device cuda

``--arch paper`` builds paper-sized networks with random weights (UNet base
128 channels, multipliers 1,2,4,6,8, attention at 32x32 and below with 32-dim
heads, 768-d cross-attention, 64x64 latents, 436M parameters against the
published 439.5M; an SDXL-VAE-sized VAE; a BERT-base-sized text encoder), so
timings need no download.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from radedit_core.imaging.image import SourceImage
from radedit_core.imaging.transform import ModelSpaceTransform
from radedit_core.models.loading import RadEditComponents, load_components, resolve_device, resolve_dtype
from radedit_core.models.spec import RADEDIT_SCHEDULER, ModelSpec
from radedit_core.pipelines.pipeline_radedit import RadEditPipeline
from radedit_core.scoring import model_space_psnr
from radedit_core.synthetic import chest_phantom, quantise

# Attention at 32, 16 and 8 (plus the cross-attention mid block at 4x4):
# 436.0M parameters, within 1% of the published UNet (1.758 GB of float32
# weights = 439.5M); attention also in the 4x4 down block would give 549M.
PAPER_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
    block_out_channels=(128, 256, 512, 768, 1024),
    layers_per_block=2,
    # diffusers' attention_head_dim means heads; channels / 32 gives 32-dim heads
    attention_head_dim=(4, 8, 16, 24, 32),
    cross_attention_dim=768,
)
SDXL_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    sample_size=1024,
    scaling_factor=0.13025,
)


def paper_components(device: torch.device, dtype: torch.dtype) -> RadEditComponents:
    """Paper-sized networks with random weights (timing only)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import BertConfig, BertModel

    tiny = load_components("tiny", device="cpu")  # for its tokenizer and spec
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**PAPER_UNET).to(device, dtype).eval().requires_grad_(False)
    vae = AutoencoderKL(**SDXL_VAE).to(device, torch.float32).eval().requires_grad_(False)
    text = BertModel(BertConfig(vocab_size=tiny.tokenizer.vocab_size, max_position_embeddings=512))
    text = text.to(device, dtype).eval().requires_grad_(False)
    spec = ModelSpec(
        name="paper-arch-random",
        unet=tiny.spec.unet,
        vae=tiny.spec.vae,
        text_encoder=tiny.spec.text_encoder,
        tokenizer=tiny.spec.tokenizer,
    )
    return RadEditComponents(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=tiny.tokenizer,
        scheduler=DDIMScheduler(**RADEDIT_SCHEDULER),
        spec=spec,
        device=device,
        dtype=dtype,
        vae_dtype=torch.float32,
    )


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def timed_edits(pipe, inputs, kwargs, repeats, device) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = pipe(*inputs, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times, out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--model", default=None, help="a model folder/spec instead of --arch (real weights)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="fast-path dtype (auto: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--skip-ratio", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's UNet")
    p.add_argument("--compile-mode", default=None, help="e.g. reduce-overhead, max-autotune")
    p.add_argument("--inversion-batch-size", type=int, default=None)
    p.add_argument("--skip-reference", action="store_true", help="time only the fast path")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    fast_dtype = resolve_dtype(args.dtype, device)
    if args.model:
        base = load_components(args.model, device=device, dtype="float32", trust_remote_code=args.trust_remote_code)
    elif args.arch == "paper":
        base = paper_components(device, torch.float32)
    else:
        base = load_components("tiny", device=device, dtype="float32")
    fp32 = RadEditPipeline.from_components(base)
    fast = RadEditPipeline.from_components(base if fast_dtype == torch.float32 else base.with_dtype(fast_dtype))
    for pipe in (fp32, fast):
        pipe.set_progress_bar_config(disable=True)
    if args.compile:
        fast.compile_unet(mode=args.compile_mode)

    ph = chest_phantom(1024, 896, seed=0)
    src = SourceImage.from_array(quantise(ph.image, 12), value_range=(0, 4095))
    tf = ModelSpaceTransform.fit(src, fp32.model_resolution)
    image = tf.image_to_model(src.array).to(device)
    edit = tf.mask_to_model(ph.mask("right_lung", "left_lung").astype(np.float32))
    keep = tf.mask_to_model(ph.mask("pacemaker").astype(np.float32))
    common = dict(edit_mask=edit, keep_mask=keep, num_inference_steps=args.steps, skip_ratio=args.skip_ratio, generator=0)
    inputs = (image, "Moderate pulmonary edema. The heart size is normal")
    figures: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "arch": args.model or args.arch, "steps": args.steps, "skip_ratio": args.skip_ratio,
                     "fast_dtype": str(fast_dtype).replace("torch.", ""), "compile": args.compile}

    ref_kwargs = dict(common, batch_conditions=False, invert_all_steps=True, inversion_batch_size=1)
    fast_kwargs = dict(common, inversion_batch_size=args.inversion_batch_size)

    if not args.skip_reference:
        timed_edits(fp32, inputs, ref_kwargs, 1, device)  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t_ref, out_ref = timed_edits(fp32, inputs, ref_kwargs, args.repeats, device)
        figures["reference"] = {
            "seconds_per_edit": statistics.median(t_ref),
            "unet_evaluations": out_ref.unet_evaluations,
            "unet_calls": out_ref.unet_calls,
            "peak_memory_mb": round(peak_memory_mb(device), 1),
        }

    # Our path in float32: the agreement baseline of the fast path (same noise).
    baseline = fp32(*inputs, **fast_kwargs)
    timed_edits(fast, inputs, fast_kwargs, 2 if args.compile else 1, device)  # warm-up / compile
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_fast, out_fast = timed_edits(fast, inputs, fast_kwargs, args.repeats, device)
    psnr = model_space_psnr(out_fast.images, baseline.images)
    figures["fast"] = {
        "seconds_per_edit": statistics.median(t_fast),
        "unet_evaluations": out_fast.unet_evaluations,
        "unet_calls": out_fast.unet_calls,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "stage_seconds": {k: round(v, 4) for k, v in out_fast.timings.items()},
        "psnr_vs_fp32_db": round(psnr, 2),
    }
    if "reference" in figures:
        figures["speedup"] = round(figures["reference"]["seconds_per_edit"] / figures["fast"]["seconds_per_edit"], 2)

    print(f"device: {figures['device']}   arch: {figures['arch']}   T={args.steps} skip={args.skip_ratio}")
    if "reference" in figures:
        r = figures["reference"]
        print(f"(a) reference-style fp32: {r['seconds_per_edit']:.3f} s/edit, {r['unet_evaluations']} UNet evaluations "
              f"in {r['unet_calls']} calls, peak {r['peak_memory_mb']:.0f} MB")
    f = figures["fast"]
    print(f"(b) fast path {figures['fast_dtype']}{' +compile' if args.compile else ''}: {f['seconds_per_edit']:.3f} s/edit, "
          f"{f['unet_evaluations']} UNet evaluations in {f['unet_calls']} calls, peak {f['peak_memory_mb']:.0f} MB")
    if "speedup" in figures:
        print(f"speed-up (a)/(b): {figures['speedup']:.2f}x")
    print(f"PSNR of (b) vs fp32 of our path, same noise: {f['psnr_vs_fp32_db']:.2f} dB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
