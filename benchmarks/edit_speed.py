"""Seconds per RadEdit edit and edits per second: a reference-style loop, our fast path, a batch.

Every configuration runs in one process on the same synthetic model-space
images, masks, prompts and seeds (so the same noise):

(a) reference-style: float32, separate unconditional and conditional UNet
    calls, inversion of all T steps one call at a time (the released
    pipeline's cost), one edit;
(b) the fast path, one edit: UNet and text encoder in ``--dtype`` (bf16 on a
    GPU), VAE in ``--vae-dtype``, SDPA attention, channels-last, one batched
    call for both conditions per step, the inversion of only the steps used
    in one large call, the step loop's UNet through ``torch.compile`` with
    CUDA graphs (``--compile``);
(c) the fast path on a batch of ``--batch`` images, each with its own masks,
    prompt and seed: every reverse step is one UNet call on 2B samples;
(d) (c) with the UNet as a TensorRT engine (MONAI's ``trt_compile``), only
    where ``tensorrt``, ``polygraphy`` and MONAI are installed; otherwise
    reported as skipped.

Printed, per configuration: seconds per edit, edits per second, UNet calls
(and evaluations), peak memory, the share of the device's matrix peak that
the necessary work reaches, and the PSNR of the decoded images against a
float32 run with the same noise.  The necessary work of an edit is the
UNet's FLOPs per evaluation (counted by ``torch.utils.flop_counter`` on the
network actually run) times its necessary evaluations (the inverted steps
plus (1 + P) per reverse step, P prompts); the peak is the measured rate of
a large matrix product in the fast dtype (``--peak-tflops`` overrides: the
issue quotes 790 TFLOP/s bf16 on an H200).  A share of 0.5 means half the
machine's matrix rate is spent on work an edit needs.

It also checks what the fast path promises: after warm-up no
``torch.compile`` recompilation across steps or batches
(``torch._dynamo.config.error_on_recompile``), the number of compiled graphs
(one shape per configuration), and host synchronisations inside the step
loop (CUDA's sync debug mode, counted).

    python benchmarks/edit_speed.py --arch tiny --device cpu --steps 20 --batch 2   # CPU smoke run
    python benchmarks/edit_speed.py --arch paper --device cuda --batch 8            # GPU figures
    python benchmarks/edit_speed.py --model /path/to/radedit-folder --device cuda --batch 8

``--arch paper`` builds paper-sized networks with random weights (UNet base
128 channels, multipliers 1,2,4,6,8, attention at 32x32 and below with 32-dim
heads, 768-d cross-attention, 64x64 latents: 436M parameters, the published
UNet has 439.5M; an SDXL-VAE-sized VAE; a BERT-base-sized text encoder), so
timings need no download.

It imports only torch, transformers, diffusers and radedit_core's pipelines
(no imaging, DICOM or MONAI modules), so it runs in a minimal CUDA Python
environment: ``benchmarks/gpu_check.sh`` runs it there.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import importlib.util
import json
import math
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from radedit_core.models.loading import RadEditComponents, load_components, resolve_device, resolve_dtype
from radedit_core.models.spec import RADEDIT_SCHEDULER, ModelSpec
from radedit_core.pipelines import pipeline_radedit
from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

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
PROMPTS = [
    "Moderate pulmonary edema. The heart size is normal",
    "No acute cardiopulmonary process",
    "New left upper lobe consolidation",
    "Small right-sided pleural effusion",
]
#: Issue #12's targets (one H100/H200-class GPU, paper-sized networks, T = 200, skip 0.3).
TARGETS = {"single_s_per_edit": 0.6, "batch_edits_per_s": 7.0, "psnr_db": 40.0}


def paper_components(device: torch.device) -> RadEditComponents:
    """Paper-sized networks with random weights, float32 (timing only)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import BertConfig, BertModel

    tiny = load_components("tiny", device="cpu")  # for its tokenizer and spec
    torch.manual_seed(0)
    with torch.device(device):  # initialised where they run: seconds, not a minute, for 436M weights
        unet = UNet2DConditionModel(**PAPER_UNET).eval().requires_grad_(False)
        vae = AutoencoderKL(**SDXL_VAE).eval().requires_grad_(False)
        text = BertModel(BertConfig(vocab_size=tiny.tokenizer.vocab_size, max_position_embeddings=512))
        text = text.eval().requires_grad_(False)
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
        dtype=torch.float32,
        vae_dtype=torch.float32,
    )


def synthetic_inputs(n: int, size: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``n`` chest-like model-space images [n, 1, S, S] in [-1, 1], each with lung edit masks and a
    small keep mask (a device) of its own, drawn from seed b (no imaging modules needed)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    images, edits, keeps = [], [], []
    for b in range(n):
        g = torch.Generator().manual_seed(b)
        shift = (torch.rand(4, generator=g) - 0.5) * 0.1
        body = ((xx / 0.85) ** 2 + (yy / 1.05) ** 2 < 1).float()
        lungs = [((xx - s * 0.38 - shift[0]) / 0.26) ** 2 + ((yy + 0.05 - shift[1]) / 0.55) ** 2 < 1 for s in (-1, 1)]
        lung = (lungs[0] | lungs[1]).float()
        texture = torch.nn.functional.interpolate(torch.randn(1, 1, size // 16, size // 16, generator=g), size=(size, size),
                                                  mode="bicubic", align_corners=False)[0, 0]  # fmt: skip
        image = (-0.9 + 1.4 * body - 0.8 * lung + 0.08 * texture).clamp(-1, 1)
        r0, c0 = int(size * (0.25 + 0.1 * float(shift[2]))), int(size * (0.62 + 0.1 * float(shift[3])))
        keep = torch.zeros(size, size)
        keep[r0 : r0 + size // 16, c0 : c0 + size // 12] = 1.0
        image = torch.where(keep > 0, torch.ones_like(image), image)
        images.append(image)
        edits.append(lung[None, None])
        keeps.append(keep[None, None])
    return torch.stack(images)[:, None], edits, keeps


def psnr_db(images: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Per image, in dB, data range 2 (model space [-1, 1])."""
    out = []
    for a, b in zip(images.float().cpu(), reference.float().cpu()):
        mse = float(((a - b) ** 2).mean())
        out.append(math.inf if mse == 0 else 10 * math.log10(4.0 / mse))
    return out


def flops_per_evaluation(unet, latent_size: int, text_length: int) -> float:
    """FLOPs of one UNet evaluation (one sample), counted on the network itself."""
    from torch.utils.flop_counter import FlopCounterMode

    device, dtype = unet.device, unet.dtype
    sample = torch.randn(1, unet.config.in_channels, latent_size, latent_size, device=device, dtype=dtype)
    text = torch.randn(1, text_length, unet.config.cross_attention_dim, device=device, dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(sample, torch.tensor([500], device=device), encoder_hidden_states=text, return_dict=False)
    return float(counter.get_total_flops())


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Measured rate of a large matrix product in ``dtype`` (random data), TFLOP/s."""
    n = 8192 if device.type == "cuda" else 1024
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    reps = 10 if device.type == "cuda" else 3
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class SyncCounter:
    """Counts host synchronisations inside the reverse pass (CUDA's sync debug mode, 'warn')."""

    def __init__(self, device: torch.device):
        self.device = device
        self.count = 0
        self._orig = pipeline_radedit.radedit_reverse

    def __enter__(self):
        if self.device.type != "cuda":
            return self

        def checked(*args, **kwargs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    return self._orig(*args, **kwargs)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                    self.count += sum("synchroniz" in str(w.message) for w in caught)

        pipeline_radedit.radedit_reverse = checked
        return self

    def __exit__(self, *exc):
        pipeline_radedit.radedit_reverse = self._orig


@contextlib.contextmanager
def no_recompiles(enabled: bool):
    """Any torch.compile recompilation inside raises (after warm-up, none may happen)."""
    if not enabled:
        yield
        return
    import torch._dynamo

    before = torch._dynamo.config.error_on_recompile
    torch._dynamo.config.error_on_recompile = True
    try:
        yield
    finally:
        torch._dynamo.config.error_on_recompile = before


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def timed(pipe, kwargs: dict, repeats: int, device: torch.device, batch: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = pipe(**kwargs)
        sync(device)
        times.append((time.perf_counter() - t0) / batch)
    return times, out


def necessary_evaluations(out, prompts: int) -> int:
    """Per image: one inverted step per reverse step, plus (1 + P) per reverse step (no skipped steps
    inverted, no padding)."""
    reverse = len(out.timesteps) - out.skip
    return (2 + prompts) * reverse


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--model", default=None, help="a model folder/spec instead of --arch (real weights)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="fast-path UNet/text dtype (auto: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--vae-dtype", default="float32", help="fast-path VAE dtype (float32 or bfloat16)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--skip-ratio", type=float, default=0.3)
    p.add_argument("--batch", type=int, default=8, help="images per pipeline pass in (c)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="torch.compile (auto: on GPU)")
    p.add_argument("--compile-mode", default="auto", help="auto (CUDA graphs on GPU), reduce-overhead, max-autotune")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--fuse-qkv", choices=["on", "off"], default="on")
    p.add_argument("--inversion-batch-size", type=int, default=None, help="timesteps per inversion call")
    p.add_argument("--peak-tflops", type=float, default=None, help="matrix peak to compare with [measured]")
    p.add_argument("--skip-reference", action="store_true", help="leave out (a)")
    p.add_argument("--skip-tensorrt", action="store_true", help="leave out (d)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    fast_dtype = resolve_dtype(args.dtype, device)
    vae_dtype = resolve_dtype(args.vae_dtype, device)
    use_compile = args.compile == "on" or (args.compile == "auto" and cuda)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and cuda)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # the float32 runs are the agreement reference
        torch.backends.cudnn.allow_tf32 = False
        import torch._inductor.config as inductor

        inductor.conv_1x1_as_mm = True  # 1x1 convolutions (attention projections, shortcuts) as matmuls

    if args.model:
        base = load_components(args.model, device=device, dtype="float32", trust_remote_code=args.trust_remote_code)
    elif args.arch == "paper":
        base = paper_components(device)
    else:
        base = load_components("tiny", device=device, dtype="float32")
    fp32 = RadEditPipeline.from_components(base)
    fast_parts = base if fast_dtype == torch.float32 else base.with_dtype(fast_dtype)
    if vae_dtype != torch.float32:
        fast_parts = dataclasses.replace(fast_parts, vae=copy.deepcopy(base.vae).to(vae_dtype), vae_dtype=vae_dtype)
    fast = RadEditPipeline.from_components(fast_parts)
    for pipe in (fp32, fast):
        pipe.set_progress_bar_config(disable=True)
    if fast_parts is base:  # never change the float32 reference's modules
        channels_last = fuse_qkv = False
    else:
        fuse_qkv = args.fuse_qkv == "on"
        fast.prepare_unet(channels_last=channels_last, fuse_qkv=fuse_qkv)
    if use_compile:
        fast.compile_unet(mode=args.compile_mode)

    B = args.batch
    size = fp32.model_resolution
    images, edits, keeps = synthetic_inputs(B, size)
    images = images.to(device)
    prompts = [[PROMPTS[b % len(PROMPTS)]] for b in range(B)]
    seeds = list(range(B))
    common = dict(num_inference_steps=args.steps, skip_ratio=args.skip_ratio)

    def batch_kwargs(n: int) -> dict:
        return dict(common, image=images[:n], prompt=prompts[:n], edit_mask=edits[:n], keep_mask=keeps[:n],
                    generator=seeds[:n], inversion_batch_size=args.inversion_batch_size)  # fmt: skip

    flops = flops_per_evaluation(fp32.unet, fp32.unet.config.sample_size, fp32.text_settings.max_length)
    peak = args.peak_tflops or matmul_tflops(device, fast_dtype)
    figures: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "arch": args.model or args.arch,
        "unet_parameters_m": round(sum(x.numel() for x in base.unet.parameters()) / 1e6, 1),
        "gflop_per_evaluation": round(flops / 1e9, 2),
        "peak_tflops": round(peak, 1),
        "peak_measured": args.peak_tflops is None,
        "steps": args.steps,
        "skip_ratio": args.skip_ratio,
        "batch": B,
        "fast_dtype": str(fast_dtype).replace("torch.", ""),
        "vae_dtype": str(vae_dtype).replace("torch.", ""),
        "compile": use_compile,
        "channels_last": channels_last,
        "fuse_qkv": fuse_qkv,
        "configs": {},
    }

    def record(name: str, times: list[float], out, n: int, reference: torch.Tensor | None, **extra) -> dict:
        seconds = statistics.median(times)
        needed = necessary_evaluations(out, 1) * flops
        row = {
            "seconds_per_edit": round(seconds, 4),
            "edits_per_second": round(1.0 / seconds, 3),
            "unet_calls": out.unet_calls,
            "unet_evaluations": out.unet_evaluations,
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "share_of_peak": round(needed / seconds / (peak * 1e12), 4),
            "stage_seconds": {k: round(v, 4) for k, v in out.timings.items()},
            **extra,
        }
        if reference is not None:
            row["psnr_vs_fp32_db"] = round(min(psnr_db(out.images, reference[:n])), 2)
        figures["configs"][name] = row
        return row

    # (a) reference-style, one edit
    if not args.skip_reference:
        ref_kwargs = dict(batch_kwargs(1), batch_conditions=False, invert_all_steps=True, inversion_batch_size=1)
        reset_peak(device)
        t_ref, out_ref = timed(fp32, ref_kwargs, 1, device, 1)
        record("a_reference_fp32", t_ref, out_ref, 1, None)

    # float32 of our path, same noise: what the fast path must agree with
    baseline = fp32(**batch_kwargs(B)).images

    # (b) fast path, one edit: warm-up (compiles the step loop's shape), then no recompilation
    graphs0 = compiled_graphs() if use_compile else 0
    for _ in range(2 if use_compile else 1):
        fast(**batch_kwargs(1))
    reset_peak(device)
    with no_recompiles(use_compile), SyncCounter(device) as syncs:
        t_one, out_one = timed(fast, batch_kwargs(1), args.repeats, device, 1)
    record("b_fast_single", t_one, out_one, 1, baseline, host_syncs_in_step_loop=syncs.count if cuda else None)

    # (c) fast path, a batch of B (a second compiled shape)
    for _ in range(2 if use_compile else 1):
        fast(**batch_kwargs(B))
    reset_peak(device)
    with no_recompiles(use_compile), SyncCounter(device) as syncs:
        t_batch, out_batch = timed(fast, batch_kwargs(B), args.repeats, device, B)
    record(f"c_fast_batch_{B}", t_batch, out_batch, B, baseline, host_syncs_in_step_loop=syncs.count if cuda else None)
    figures["compiled_graphs"] = compiled_graphs() - graphs0 if use_compile else 0

    # (d) TensorRT through MONAI's trt_compile, where installed
    missing = [m for m in ("tensorrt", "polygraphy", "monai") if importlib.util.find_spec(m) is None]
    if args.skip_tensorrt:
        figures["tensorrt"] = "skipped (--skip-tensorrt)"
    elif missing or not cuda:
        figures["tensorrt"] = f"skipped ({', '.join(missing) + ' not installed' if missing else 'no CUDA GPU'})"
    else:
        figures["tensorrt"] = run_tensorrt(fast_parts, batch_kwargs(B), B, args, device, record, baseline)

    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


def run_tensorrt(parts, kwargs, B, args, device, record, baseline) -> str:
    """(d): the batch through a TensorRT engine built by MONAI's trt_compile (the bundle overlay's route)."""
    import tempfile

    from monai.networks import trt_compile

    from radedit_core.pipelines.tensorrt import wrap_unet

    pipe = RadEditPipeline.from_components(parts)
    pipe.set_progress_bar_config(disable=True)
    folder = tempfile.mkdtemp(prefix="radedit-trt-")
    trt_args = {"method": "onnx", "precision": "bf16", "dynamic_batchsize": [1, 2 * B, 512], "fallback": False}
    wrap_unet(pipe, lambda unet: trt_compile(unet, f"{folder}/unet", args=trt_args))
    pipe(**kwargs)  # builds the engine (minutes)
    reset_peak(device)
    times, out = timed(pipe, kwargs, args.repeats, device, B)
    record(f"d_tensorrt_batch_{B}", times, out, B, baseline)
    return "measured"


def print_table(f: dict) -> None:
    print(f"device: {f['device']} (torch {f['torch']})   arch: {f['arch']} ({f['unet_parameters_m']}M UNet parameters, "
          f"{f['gflop_per_evaluation']} GFLOP per evaluation)   T={f['steps']} skip={f['skip_ratio']}")  # fmt: skip
    print(f"fast path: {f['fast_dtype']} UNet/text, {f['vae_dtype']} VAE, compile={f['compile']}, "
          f"channels_last={f['channels_last']}, fuse_qkv={f['fuse_qkv']}; matrix peak "
          f"{f['peak_tflops']} TFLOP/s ({'measured' if f['peak_measured'] else 'given'})")  # fmt: skip
    header = f"{'configuration':<24} {'s/edit':>8} {'edits/s':>8} {'UNet calls':>10} {'evals':>6} " \
             f"{'peak MB':>9} {'share':>6} {'PSNR dB':>8} {'syncs':>5}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, r in f["configs"].items():
        psnr = r.get("psnr_vs_fp32_db")
        syncs = r.get("host_syncs_in_step_loop")
        print(f"{name:<24} {r['seconds_per_edit']:>8.3f} {r['edits_per_second']:>8.2f} {r['unet_calls']:>10} "
              f"{r['unet_evaluations']:>6} {r['peak_memory_mb']:>9.0f} {r['share_of_peak']:>6.1%} "
              f"{'-' if psnr is None else f'{psnr:.1f}':>8} {'-' if syncs is None else syncs:>5}")  # fmt: skip
    print(f"compiled graphs (step loop shapes): {f['compiled_graphs']}; recompilations after warm-up: none "
          f"(checked)" if f["compile"] else "compiled graphs: not compiled")  # fmt: skip
    print(f"TensorRT: {f['tensorrt']}")
    single = f["configs"].get("b_fast_single")
    batch = next((r for k, r in f["configs"].items() if k.startswith("c_fast_batch")), None)
    if f["device"] == "cpu" or f["arch"] == "tiny":
        print("issue #12 targets: not applicable (they are for paper-sized networks on an H100/H200-class GPU)")
    elif single and batch:
        checks = [
            ("single edit <= 0.6 s", single["seconds_per_edit"] <= TARGETS["single_s_per_edit"]),
            ("batch >= 7 edits/s", batch["edits_per_second"] >= TARGETS["batch_edits_per_s"]),
            ("PSNR >= 40 dB", min(single["psnr_vs_fp32_db"], batch["psnr_vs_fp32_db"]) >= TARGETS["psnr_db"]),
        ]
        print("issue #12 targets (paper arch, GPU, T=200): " + ", ".join(f"{n}: {'met' if ok else 'NOT met'}"
                                                                     for n, ok in checks))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
