"""Varied synthetic chest phantoms with report-like captions, written as a MONAI datalist.

The data set the bundled demo model was trained on (``scripts/train_demo_model.py``),
until the phantom world's own generator replaces it.  ``chest_phantom`` draws
one fixed anatomy; everything here varies it by post-processing (local and
global warps, added findings, intensity changes) so that
``radedit_core.synthetic`` itself stays untouched.  Each case is quantised to
12 bits (as the CR sample and real exports) and stored as a 16-bit PNG; the
training data loader maps it to model space exactly as the editing path does.

Deterministic in ``(seed, index)``: every draw comes from a generator seeded
by both.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from radedit_core.synthetic import LABELS, chest_phantom, quantise

NORMAL = "No acute cardiopulmonary process."
PACEMAKER = "Left pectoral pacemaker in place."


@dataclass(frozen=True)
class Case:
    stored: np.ndarray  # [rows, cols] uint16, 12-bit stored values (MONOCHROME2)
    caption: str  # with its final period; dropping it is a training augmentation
    pacemaker: bool


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
    """One varied phantom (12-bit stored values) and its caption, deterministic in (seed, index)."""
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
    caption = " ".join(([PACEMAKER] if pacemaker else []) + findings) or NORMAL
    return Case(stored, caption, pacemaker)


def _write(args: tuple[int, int, str]) -> dict:
    seed, index, folder = args
    torch.set_num_threads(1)
    from PIL import Image  # noqa: PLC0415

    case = draw_case(seed, index)
    name = f"phantom-{index:07d}.png"
    Image.fromarray(case.stored).save(Path(folder) / "images" / name)
    return {"id": f"phantom-{index}", "image": f"images/{name}", "report": case.caption, "site": "phantom",
            "pacemaker": int(case.pacemaker)}  # fmt: skip


def write_phantom_datalist(folder: str | Path, seed: int, images: int, holdout: int, workers: int = 1) -> Path:
    """Write ``images`` training and ``holdout`` validation phantoms and ``datalist.json`` into ``folder``.

    Held-out indices (from 10**6 on) never overlap the training ones.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    splits = {"training": range(images), "validation": range(10**6, 10**6 + holdout)}
    datalist = {}
    for split, indices in splits.items():
        jobs = [(seed, i, str(folder)) for i in indices]
        if workers <= 1:
            rows = [_write(j) for j in tqdm(jobs, desc=split)]
        else:
            # spawn: a forked child would inherit the parent's OpenMP state.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                rows = list(tqdm(pool.imap(_write, jobs, chunksize=8), total=len(jobs), desc=split))
        datalist[split] = rows
    datalist["testing"] = []
    path = folder / "datalist.json"
    path.write_text(json.dumps(datalist, indent=1) + "\n")
    return path
