"""Train the bundled demo model with the training workflow (``radedit_core.training``).

    python scripts/train_demo_model.py --out radedit_core/data/demo_model \
        [--vae-steps N] [--unet-steps N] [--seed 0] [--datalist D]

The demo recipe, in two stages of :func:`radedit_core.training.train_from_mapping`
starting from the seeded random tiny model (``--model tiny-random``, the
classes, configurations, tokenizer and scheduler of
:mod:`radedit_core.models.tiny`):

1. VAE: L1 + L2 reconstruction + 1e-4 KL on random crops of the model-space
   images, then the per-channel latent normalisation folded into its weights
   so that latents times the fixed ``scaling_factor`` have unit variance;
2. UNet: epsilon-prediction loss with the model card's schedule on the
   posterior-mode latents of the full 512 x 512 images (encoded once),
   conditioned on the reports through the frozen (random) text encoder,
   with caption dropout (and the final period dropped from half the captions,
   as prompts are typed both ways); EMA weights saved.

The data is ``--datalist`` (a MONAI datalist with 'training' and 'validation'
lists of ``image``/``report`` rows), or by default the varied chest phantoms of
``scripts/demo_phantoms.py`` written to a temporary folder.  The run folders
(checkpoints, metrics, sample grids) are kept under ``--work-dir`` if given;
an interrupted run continues from its last checkpoint when started again
with the same ``--work-dir``.  Deterministic given ``--seed`` and
``--threads`` on one machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Set before torch loads OpenMP.  Spinning OpenMP workers (the default) make a
# 2-thread run many times slower as soon as another process holds a core;
# sleeping waits cost little when the machine is idle and change no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from radedit_core.training import train_from_mapping  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_phantoms import write_phantom_datalist  # noqa: E402

DEMO_NAME = "radedit-demo"


def vae_stage(args: argparse.Namespace, datalist: Path, run_dir: Path) -> dict:
    return dict(
        datalist=datalist, output_dir=run_dir, stage="vae", model="tiny-random", seed=args.seed,
        max_train_steps=args.vae_steps, batch_size=args.vae_batch, vae_crop_size=args.vae_crop,
        learning_rate=1e-3, adam_weight_decay=0.0, lr_scheduler="cosine", lr_warmup_steps=min(100, args.vae_steps),
        max_grad_norm=1.0, use_ema=False, vae_kl_weight=1e-4, normalize_latents=True, latent_stats_images=128,
        mixed_precision="no", device=args.device, checkpointing_steps=500, validation_epochs=0, sample_epochs=0,
        num_sample_images=4, log_every=25, model_name=f"{DEMO_NAME}-vae", progress=True,
    )  # fmt: skip


def unet_stage(args: argparse.Namespace, datalist: Path, run_dir: Path, start: Path) -> dict:
    return dict(
        datalist=datalist, output_dir=run_dir, stage="unet", model=str(start), seed=args.seed + 1,
        max_train_steps=args.unet_steps, batch_size=args.unet_batch, learning_rate=1e-3, adam_weight_decay=1e-4,
        lr_scheduler="cosine", lr_warmup_steps=min(200, args.unet_steps), max_grad_norm=1.0, use_ema=True,
        ema_decay=0.999, caption_dropout=args.caption_dropout, caption_period_dropout=0.5, latent_sampling="mode",
        cache_latents=True, mixed_precision="no", device=args.device, checkpointing_steps=500, validation_epochs=0,
        validation_timesteps=10, sample_epochs=0, num_sample_images=4, sample_steps=50, log_every=25,
        model_name=DEMO_NAME, progress=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--unet-steps", type=int, default=3000)
    parser.add_argument("--datalist", type=Path, help="train on this MONAI datalist instead of drawn phantoms")
    parser.add_argument("--images", type=int, default=600, help="training phantoms (without --datalist)")
    parser.add_argument("--holdout", type=int, default=16, help="held-out phantoms for the validation metrics")
    parser.add_argument("--vae-batch", type=int, default=8)
    parser.add_argument("--vae-crop", type=int, default=128)
    parser.add_argument("--unet-batch", type=int, default=16)
    parser.add_argument("--caption-dropout", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (part of the determinism)")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing phantoms")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path, help="keep the phantoms and run folders here (resumable)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        datalist = args.datalist
        if datalist is None:
            datalist = work / "phantoms" / "datalist.json"
            if not datalist.exists():
                write_phantom_datalist(datalist.parent, args.seed, args.images, args.holdout, args.workers)
        vae_run = work / "vae"
        if not (vae_run / "model").exists():
            print(train_from_mapping(vae_stage(args, datalist, vae_run)))
        unet = train_from_mapping(unet_stage(args, datalist, work / "unet", vae_run / "model"))
        print(unet)
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(unet.model_dir, args.out)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
