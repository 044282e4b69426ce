"""Train the bundled demo model on synthetic chest phantoms (CPU, deterministic).

    python scripts/train_demo_model.py --out radedit_core/data/demo_model \
        [--vae-steps N] [--unet-steps N] [--seed 0]

Starts from the random tiny model of :func:`radedit_core.models.tiny.write_tiny_model`
(same classes, configurations, tokenizer and scheduler) and trains

1. the VAE as an autoencoder on random crops of model-space phantoms (it is
   fully convolutional, so crops keep it cheap), then folds a per-channel
   latent normalisation into its weights so that latents times the fixed
   ``scaling_factor`` have zero mean and unit variance, as the diffusion
   schedule assumes;
2. the UNet with the epsilon-prediction DDPM loss on the VAE latents of full
   512 x 512 phantoms, conditioned on report-like captions through the frozen
   (random) text encoder, with caption dropout for classifier-free guidance.

A random UNet is a chaotic map (its Jacobian amplifies float rounding) and a
random VAE does not reconstruct; a trained pair behaves like the real model in
the properties the tests and the demo rely on, at a few hundred kB.

Deterministic given ``--seed`` and ``--threads`` on one machine: every random
draw comes from a seeded generator and phantoms are drawn per index.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Set before torch loads OpenMP.  Spinning OpenMP workers (the default) make a
# 2-thread run many times slower as soon as another process holds a core (a
# laptop, a shared CI runner); sleeping waits cost little when the machine is
# idle and do not change any result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from radedit_core.imaging.image import SourceImage  # noqa: E402
from radedit_core.imaging.transform import ModelSpaceTransform  # noqa: E402
from radedit_core.models.conditioning import encode_prompts  # noqa: E402
from radedit_core.models.spec import RADEDIT_SCHEDULER, SPEC_FILENAME, TextSettings  # noqa: E402
from radedit_core.models.tiny import write_tiny_model  # noqa: E402
from radedit_core.synthetic import LABELS, chest_phantom, quantise  # noqa: E402

MODEL_SIZE = 512
UNCONDITIONAL = ""
NORMAL = "No acute cardiopulmonary process."
PACEMAKER = "Left pectoral pacemaker in place."


# --------------------------------------------------------------------------
# Phantom variety
# --------------------------------------------------------------------------
# chest_phantom draws one fixed anatomy; everything below varies it by
# post-processing (local and global warps, added findings, intensity changes)
# so that chest_phantom itself stays untouched.


@dataclass(frozen=True)
class Case:
    image: np.ndarray  # [512, 512] float32 model space in [-1, 1]
    caption: str  # with its final period; dropping it is a training augmentation


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [1, 1, H, W] (reflect padding)."""
    radius = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))


def _smooth_noise(rng: np.random.Generator, grid: int, shape: tuple[int, int]) -> torch.Tensor:
    """Zero-mean, roughly unit-range low-frequency field [1, 1, H, W]."""
    coarse = torch.from_numpy(rng.standard_normal((1, 1, grid, grid)).astype(np.float32))
    return F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)


def _warp_grid(rng: np.random.Generator, rows: int, cols: int, heart_scale: float) -> torch.Tensor:
    """grid_sample grid: a small global affine, then local magnifications.

    The local "bulges" change the size of the heart and of each lung
    independently, which a global transform cannot.
    """
    y, x = torch.meshgrid(
        (torch.arange(rows, dtype=torch.float32) + 0.5) / rows,
        (torch.arange(cols, dtype=torch.float32) + 0.5) / cols,
        indexing="ij",
    )
    angle = math.radians(rng.uniform(-4.0, 4.0))
    scale = rng.uniform(0.93, 1.07)
    ty, tx = rng.uniform(-0.035, 0.035, size=2)
    cy, cx = y - 0.5, x - 0.5
    qy = 0.5 + ty + (math.cos(angle) * cy - math.sin(angle) * cx) / scale
    qx = 0.5 + tx + (math.sin(angle) * cy + math.cos(angle) * cx) / scale
    bulges = (
        (0.62, 0.56, 0.24, heart_scale),  # heart
        (0.47, 0.31, 0.25, rng.uniform(0.9, 1.1)),  # right lung
        (0.49, 0.69, 0.25, rng.uniform(0.9, 1.1)),  # left lung
    )
    dy, dx = torch.zeros_like(qy), torch.zeros_like(qx)
    for by, bx, radius, factor in bulges:
        # Sampling at c + (p - c) / f near the centre magnifies by f there;
        # the Gaussian falloff leaves the rest of the image in place.
        fall = torch.exp(-(((qy - by) ** 2 + (qx - bx) ** 2) / radius**2))
        dy -= (qy - by) * (1.0 - 1.0 / factor) * fall
        dx -= (qx - bx) * (1.0 - 1.0 / factor) * fall
    qy, qx = qy + dy, qx + dx
    return torch.stack([qx * 2 - 1, qy * 2 - 1], dim=-1)[None]  # align_corners=False units


def _lung_box(mask: torch.Tensor) -> tuple[float, float, float, float] | None:
    """(top, bottom, left, right) in pixels of a boolean mask, None if empty."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() < 8 or cols.numel() < 8:
        return None
    return float(rows[0]), float(rows[-1]), float(cols[0]), float(cols[-1])


def draw_case(seed: int, index: int) -> Case:
    """One varied phantom in model space and its caption (deterministic in seed, index)."""
    rng = np.random.default_rng([seed, index])
    rows, cols = int(rng.integers(512, 641)), int(rng.integers(480, 601))
    pacemaker = rng.random() < 0.4
    plain = rng.random() < 0.15  # keep the stock drawing in the mix, as tests use it
    phantom = chest_phantom(rows, cols, seed=int(rng.integers(2**31)), pacemaker=pacemaker, noise=0.0)
    img = torch.from_numpy(phantom.image.astype(np.float32))[None, None]
    labels = torch.from_numpy(phantom.labels.astype(np.float32))[None, None]
    findings: list[str] = []
    yy, xx = torch.meshgrid(torch.arange(rows, dtype=torch.float32), torch.arange(cols, dtype=torch.float32), indexing="ij")

    cardiomegaly = not plain and rng.random() < 0.15
    if not plain:
        heart_scale = rng.uniform(1.4, 1.6) if cardiomegaly else rng.uniform(0.9, 1.1)
        grid = _warp_grid(rng, rows, cols, heart_scale)
        img = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
        labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="border", align_corners=False)
    lab = labels[0, 0]
    lungs = {"right": lab == LABELS["right_lung"], "left": lab == LABELS["left_lung"]}
    # Findings fade in from the lung edge but never spill outside it (a spill
    # draws a bright rim along the border).
    soft = {k: _gaussian_blur(m[None, None].float(), 1.5) * m for k, m in lungs.items()}
    edit = torch.zeros_like(img)  # density added by findings

    if not plain and rng.random() < 0.2:  # lobar consolidation: a dense, irregular blob
        side, lobe = ("left", "upper") if rng.random() < 0.6 else ("right", "lower")
        box = _lung_box(lungs[side])
        if box is not None:
            top, bottom, left, right = box
            frac = rng.uniform(0.2, 0.38) if lobe == "upper" else rng.uniform(0.6, 0.75)
            by, bx = top + frac * (bottom - top), left + rng.uniform(0.35, 0.65) * (right - left)
            radius = rng.uniform(0.25, 0.4) * (right - left)
            shape = -(((yy - by) ** 2 + (xx - bx) ** 2) / radius**2) + 0.35 * _smooth_noise(rng, 6, (rows, cols))[0, 0]
            blob = torch.sigmoid(6.0 * (shape + 0.6))[None, None]
            texture = 1.0 + 0.25 * _smooth_noise(rng, 24, (rows, cols))
            edit += rng.uniform(0.2, 0.32) * blob * texture * soft[side]
            findings.append(f"New {side} {lobe} lobe consolidation.")

    if not plain and rng.random() < 0.2:  # edema: bilateral perihilar/basal haze
        moderate = rng.random() < 0.5
        amp = rng.uniform(0.13, 0.2) if moderate else rng.uniform(0.06, 0.1)
        ny, nx = yy / rows, xx / cols
        pattern = 0.55 + 0.45 * torch.exp(-(((nx - 0.5) / 0.18) ** 2)) + 0.3 * ny
        mottle = 1.0 + 0.35 * _smooth_noise(rng, 40, (rows, cols))
        edit += amp * pattern[None, None] * mottle * (soft["right"] + soft["left"])
        findings.append(("Moderate" if moderate else "Mild") + " pulmonary edema.")

    if not plain and rng.random() < 0.15:  # effusion: fluid at one base, meniscus rising laterally
        side = "right" if rng.random() < 0.5 else "left"
        box = _lung_box(lungs[side])
        if box is not None:
            top, bottom, left, right = box
            height, width = bottom - top, right - left
            level = bottom - rng.uniform(0.15, 0.3) * height
            lateral = left if side == "right" else right
            nearness = 1.0 - ((xx - lateral).abs() / width).clamp(0, 1)
            meniscus = level - 0.15 * height * nearness**2
            fluid = torch.sigmoid((yy - meniscus) / 2.0)[None, None]
            edit += rng.uniform(0.25, 0.35) * fluid * lungs[side].float()  # fluid fills to the edge
            findings.append(f"Small {side} pleural effusion.")

    if cardiomegaly:
        findings.append("Cardiomegaly.")

    img = img + edit
    if not plain:
        img = img.clamp(0.0, 1.0) ** math.exp(rng.uniform(-0.25, 0.25))  # exposure / processing curve
        img = img * (1.0 + 0.04 * _smooth_noise(rng, 3, (rows, cols)))  # heel effect, uneven exposure
    sigma = 0.01 if plain else rng.uniform(0.003, 0.02)
    img = img + sigma * torch.from_numpy(rng.standard_normal((rows, cols)).astype(np.float32))
    stored = quantise(img[0, 0].double().numpy(), 12)  # 12-bit, as the CR sample and real exports
    source = SourceImage.from_array(stored, value_range=(0, 4095))
    model = ModelSpaceTransform.fit(source, MODEL_SIZE).image_to_model(source.array)
    caption = " ".join(([PACEMAKER] if pacemaker else []) + findings) or NORMAL
    return Case(model[0, 0].numpy(), caption)


def _draw(args: tuple[int, int]) -> Case:
    torch.set_num_threads(1)
    return draw_case(*args)


def draw_cases(seed: int, indices: range, workers: int, desc: str) -> list[Case]:
    jobs = [(seed, i) for i in indices]
    if workers <= 1:
        return [draw_case(*j) for j in tqdm(jobs, desc=desc)]
    # spawn: a forked child would inherit the parent's OpenMP state.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(_draw, jobs, chunksize=8), total=len(jobs), desc=desc))


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def vae_roundtrip(vae, images: torch.Tensor, batch: int = 4) -> torch.Tensor:
    """Model-space [N, 1, S, S] -> decoded, as the pipelines do (mode, mean of RGB, clamp)."""
    outs = []
    with torch.no_grad():
        for chunk in images.split(batch):
            rgb = chunk.expand(-1, vae.config.in_channels, -1, -1)
            z = vae.encode(rgb).latent_dist.mode()
            outs.append(vae.decode(z).sample.mean(dim=1, keepdim=True).clamp(-1.0, 1.0))
    return torch.cat(outs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR over [-1, 1] images (peak-to-peak 2)."""
    return float(10.0 * torch.log10(4.0 / (a - b).pow(2).mean()))


def train_vae(vae, images: torch.Tensor, steps: int, batch: int, crop: int, seed: int) -> float:
    """Reconstruction (L1 + L2) plus a small KL term on random crops; returns the final loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    vae.train()
    history: list[float] = []
    n, size = images.shape[0], images.shape[-1]
    bar = tqdm(range(steps), desc="VAE")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3, 100)
        idx = torch.randint(0, n, (batch,), generator=gen)
        offs = torch.randint(0, size - crop + 1, (batch, 2), generator=gen)
        x = torch.stack([images[i, :, r : r + crop, c : c + crop] for i, (r, c) in zip(idx.tolist(), offs.tolist())])
        x = x.expand(-1, vae.config.in_channels, -1, -1)
        post = vae.encode(x).latent_dist
        # Reparameterised sample so the decoder tolerates the posterior's spread.
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).mean()
        loss = (rec - x).abs().mean() + (rec - x).pow(2).mean() + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        history.append(loss.item())
        if step % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-100:]):.4f}")
    vae.eval()
    return float(np.mean(history[-100:]))


@torch.no_grad()
def fold_latent_normalisation(vae, images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Make ``mode() * scaling_factor`` zero-mean, unit-variance per channel.

    An exact reparameterisation (z' = k (z - m) in ``quant_conv``, undone in
    ``post_quant_conv``): reconstructions do not change, the diffusion sees
    latents on the scale its noise schedule is built for, and the config's
    scaling factor stays that of the published VAE.
    """
    sf = vae.config.scaling_factor
    zs = []
    for chunk in images.split(4):
        zs.append(vae.encode(chunk.expand(-1, vae.config.in_channels, -1, -1)).latent_dist.mode())
    z = torch.cat(zs).double()
    mean = z.mean(dim=(0, 2, 3))
    std = z.std(dim=(0, 2, 3))
    k = 1.0 / (sf * std)  # target: std(k (z - m)) * sf = 1
    c = mean.numel()
    qc, pqc = vae.quant_conv, vae.post_quant_conv
    w, b = qc.weight.double(), qc.bias.double()
    w[:c] *= k.view(-1, 1, 1, 1)
    b[:c] = k * (b[:c] - mean)
    b[c:] += 2.0 * torch.log(k)  # log-variance of the rescaled posterior
    qc.weight.copy_(w.float())
    qc.bias.copy_(b.float())
    pw, pb = pqc.weight.double(), pqc.bias.double()
    pb += (pw[:, :, 0, 0] @ mean)
    pw /= k.view(1, -1, 1, 1)
    pqc.weight.copy_(pw.float())
    pqc.bias.copy_(pb.float())
    return mean.tolist(), std.tolist()


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """Scaled latents exactly as ``RadEditPipelineBase.encode_image`` computes them."""
    out = []
    for chunk in tqdm(images.split(4), desc="latents"):
        z = vae.encode(chunk.expand(-1, vae.config.in_channels, -1, -1)).latent_dist.mode()
        out.append(z.float() * vae.config.scaling_factor)
    return torch.cat(out)


def train_unet(
    unet,
    latents: torch.Tensor,
    cond_ids: torch.Tensor,
    table: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    steps: int,
    batch: int,
    seed: int,
    dropout: float,
) -> tuple[torch.nn.Module, float]:
    """Epsilon-prediction DDPM loss; returns the EMA UNet and the final training loss.

    ``cond_ids[i]`` holds the embedding rows of image i's caption with and
    without its final period (both spellings occur in prompts); row 0 of
    ``table`` is the unconditional (empty prompt) embedding.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    sqrt_a, sqrt_1ma = alphas_cumprod.sqrt().float(), (1.0 - alphas_cumprod).sqrt().float()
    unet.train()
    history: list[float] = []
    n = latents.shape[0]
    bar = tqdm(range(steps), desc="UNet")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3, 200)
        idx = torch.randint(0, n, (batch,), generator=gen)
        t = torch.randint(0, alphas_cumprod.numel(), (batch,), generator=gen)
        variant = torch.randint(0, 2, (batch,), generator=gen)
        rows = cond_ids[idx, variant]
        rows = torch.where(torch.rand(batch, generator=gen) < dropout, torch.zeros_like(rows), rows)
        x0 = latents[idx]
        eps = torch.randn(x0.shape, generator=gen)
        xt = sqrt_a[t].view(-1, 1, 1, 1) * x0 + sqrt_1ma[t].view(-1, 1, 1, 1) * eps
        pred = unet(xt, t, encoder_hidden_states=table[rows]).sample
        loss = F.mse_loss(pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        # EMA weights sample more smoothly than the last iterate; the short
        # warm-up keeps early (random) weights from dominating short runs.
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1.0 - decay)
        history.append(loss.item())
        if step % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-100:]):.4f}")
    return ema, float(np.mean(history[-200:]))


@torch.no_grad()
def unet_eval_loss(unet, latents, cond_rows, table, alphas_cumprod, seed: int) -> float:
    """Held-out epsilon MSE at fixed timesteps and noise (comparable between runs)."""
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for t_val in range(50, 1000, 100):
        eps = torch.randn(latents.shape, generator=gen)
        a = float(alphas_cumprod[t_val])
        xt = math.sqrt(a) * latents + math.sqrt(1 - a) * eps
        t = torch.full((latents.shape[0],), t_val, dtype=torch.long)
        pred = unet(xt, t, encoder_hidden_states=table[cond_rows]).sample
        losses.append(F.mse_loss(pred, eps).item())
    return float(np.mean(losses))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--unet-steps", type=int, default=3000)
    parser.add_argument("--images", type=int, default=600, help="training phantoms")
    parser.add_argument("--holdout", type=int, default=16, help="held-out phantoms for the reported metrics")
    parser.add_argument("--vae-batch", type=int, default=8)
    parser.add_argument("--vae-crop", type=int, default=128)
    parser.add_argument("--unet-batch", type=int, default=16)
    parser.add_argument("--caption-dropout", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (part of the determinism)")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing phantoms")
    args = parser.parse_args()

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: PLC0415
    from transformers import AutoTokenizer, BertModel  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        base = write_tiny_model(Path(tmp) / "model", seed=args.seed)

        t0 = time.perf_counter()
        train_cases = draw_cases(args.seed, range(args.images), args.workers, "phantoms")
        # Held-out indices never overlap the training ones.
        held_cases = draw_cases(args.seed, range(10**6, 10**6 + args.holdout), args.workers, "held-out")
        images = torch.from_numpy(np.stack([c.image for c in train_cases]))[:, None]
        held = torch.from_numpy(np.stack([c.image for c in held_cases]))[:, None]
        timings["phantoms"] = time.perf_counter() - t0

        # -- VAE -----------------------------------------------------------
        t0 = time.perf_counter()
        vae = AutoencoderKL.from_pretrained(base / "vae")
        psnr_before = psnr(vae_roundtrip(vae, held), held)
        vae_loss = train_vae(vae, images, args.vae_steps, args.vae_batch, args.vae_crop, args.seed + 11)
        latent_mean, latent_std = fold_latent_normalisation(vae, images[:128])
        held_psnr = psnr(vae_roundtrip(vae, held), held)
        timings["vae"] = time.perf_counter() - t0

        # -- conditioning --------------------------------------------------
        tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer", model_max_length=128)
        text_encoder = BertModel.from_pretrained(base / "text_encoder").eval()
        spellings = sorted({c.caption for c in train_cases + held_cases} | {c.caption.rstrip(".") for c in train_cases + held_cases})
        strings = [UNCONDITIONAL] + spellings
        table = encode_prompts(strings, tokenizer, text_encoder, TextSettings(128, False), torch.device("cpu"), torch.float32)
        row = {s: i for i, s in enumerate(strings)}
        cond_ids = torch.tensor([[row[c.caption], row[c.caption.rstrip(".")]] for c in train_cases])
        held_rows = torch.tensor([row[c.caption] for c in held_cases])

        # -- UNet ----------------------------------------------------------
        t0 = time.perf_counter()
        latents = encode_latents(vae, images)
        held_latents = encode_latents(vae, held)
        # The model card's schedule (diffusers' linear 1e-4..0.02, 1000 steps),
        # built through DDPMScheduler as in diffusers' training examples.
        ddim_only = {"clip_sample", "timestep_spacing", "steps_offset", "set_alpha_to_one"}
        noise_scheduler = DDPMScheduler(**{k: v for k, v in RADEDIT_SCHEDULER.items() if k not in ddim_only})
        alphas_cumprod = noise_scheduler.alphas_cumprod.double()
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        eval_before = unet_eval_loss(unet.eval(), held_latents, held_rows, table, alphas_cumprod, args.seed + 13)
        ema, unet_loss = train_unet(
            unet, latents, cond_ids, table, alphas_cumprod, args.unet_steps, args.unet_batch, args.seed + 12, args.caption_dropout
        )
        eval_after = unet_eval_loss(ema, held_latents, held_rows, table, alphas_cumprod, args.seed + 13)
        timings["unet"] = time.perf_counter() - t0

        # -- write ---------------------------------------------------------
        staging = Path(tmp) / "out"
        shutil.copytree(base, staging)
        for sub in ("unet", "vae"):
            shutil.rmtree(staging / sub)
        ema.save_pretrained(staging / "unet", safe_serialization=True)
        vae.save_pretrained(staging / "vae", safe_serialization=True)
        spec = json.loads((staging / SPEC_FILENAME).read_text())
        spec["name"] = "radedit-demo"
        (staging / SPEC_FILENAME).write_text(json.dumps(spec, indent=2) + "\n")
        total = time.perf_counter() - started
        metrics = {
            "seed": args.seed,
            "images": args.images,
            "vae_steps": args.vae_steps,
            "vae_batch": f"{args.vae_batch} x {args.vae_crop}x{args.vae_crop} crops",
            "vae_final_loss": round(vae_loss, 5),
            "vae_heldout_psnr_db": round(held_psnr, 2),
            "vae_heldout_psnr_db_random_init": round(psnr_before, 2),
            "latent_mean_before_fold": [round(v, 4) for v in latent_mean],
            "latent_std_before_fold": [round(v, 4) for v in latent_std],
            "unet_steps": args.unet_steps,
            "unet_batch": args.unet_batch,
            "caption_dropout": args.caption_dropout,
            "unet_final_train_loss": round(unet_loss, 5),
            "unet_heldout_eps_mse": round(eval_after, 5),
            "unet_heldout_eps_mse_random_init": round(eval_before, 5),
            "wall_time_s": round(total, 1),
            "threads": args.threads,
        }
        (staging / "README.md").write_text(
            "# RadEdit demo model\n\n"
            "Tiny RadEdit model (classes, configurations and tokenizer of "
            "`radedit_core.models.tiny`) *trained on synthetic chest phantoms* by "
            "`scripts/train_demo_model.py` for the offline demo and the tests. "
            "Not for research or clinical use.\n\n"
            f"    python scripts/train_demo_model.py --out <folder> --seed {args.seed} "
            f"--vae-steps {args.vae_steps} --unet-steps {args.unet_steps} --images {args.images}\n\n"
            "- Start: `write_tiny_model(seed)` (random init); the text encoder stays frozen at that init.\n"
            f"- VAE: {args.vae_steps} steps of L1 + L2 reconstruction + 1e-4 KL on "
            f"{args.vae_batch} random {args.vae_crop}x{args.vae_crop} crops of {args.images} "
            "model-space phantoms; a per-channel latent normalisation is folded into "
            "`quant_conv`/`post_quant_conv` so that latents x scaling_factor have unit variance.\n"
            f"- UNet: {args.unet_steps} steps, batch {args.unet_batch}, epsilon-prediction DDPM loss "
            "with the model card's schedule (linear betas 1e-4..0.02, 1000 steps) on the latents of "
            f"the full 512x512 phantoms, {args.caption_dropout:.0%} caption dropout; EMA weights saved.\n\n"
            "Metrics:\n\n```json\n" + json.dumps(metrics, indent=2) + "\n```\n"
        )
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, args.out)

    print(f"wrote {args.out}")
    print(f"timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + f", total {total:.0f}s")
    print(f"VAE final training loss {vae_loss:.5f}; held-out PSNR {held_psnr:.2f} dB (random init {psnr_before:.2f} dB)")
    print(f"UNet final training loss {unet_loss:.5f}; held-out eps MSE {eval_after:.5f} (random init {eval_before:.5f})")


if __name__ == "__main__":
    main()
