"""Train the bundled demo model on the phantom world with the training workflow (``radedit_core.training``).

    python scripts/train_demo_model.py --out radedit_core/data/demo_model
        [--images 2000] [--vae-steps N] [--unet-steps N] [--seed 0] [--datalist D] [--work-dir W]
        [--vae-from MODEL]

The demo recipe, in two stages of :func:`radedit_core.training.train_from_mapping`
starting from the seeded random tiny model (``--model tiny-random``: the
classes, configurations, tokenizer and scheduler of
:mod:`radedit_core.models.tiny`):

1. VAE: L1 + L2 reconstruction + 1e-4 KL on random crops of the model-space
   images, then the per-channel latent normalisation folded into its weights
   so that latents times the fixed ``scaling_factor`` have unit variance;
2. UNet (from the seeded initialisation of ``TINY_UNET``, ``unet_config="tiny"``):
   epsilon-prediction loss with the model card's schedule on the
   posterior-mode latents of the full 512 x 512 images (encoded once),
   conditioned on the report impressions through the frozen (random) text
   encoder, their sentences shuffled (the paper's recipe), with caption
   dropout (and the final period dropped from half the captions, as prompts
   are typed both ways), min-SNR-5 loss weighting (it
   converges faster, which matters on a CPU budget); EMA weights saved.

The data is ``--datalist`` (a MONAI datalist with 'training' and 'validation'
lists of ``image``/``report`` rows), or by default ``--images`` cases of the
phantom world (:mod:`radedit_core.phantom_world`) written by its own data set
writer to ``<work-dir>/world``: :data:`TRAINING_WORLD`, the default world with
the findings and devices the edits add or remove made more frequent (so that
a short run sees enough of each) and consolidation at both sites (the
generative model should know it everywhere; the *predictors* of the
replication are the ones trained on the site-biased world), and reports that
state "No pneumothorax." whenever there is none (``report_negatives``, as
real impressions often do: the paper's removal prompt is then a common
sentence, where the default world writes it only beside a drain, about 1.4 %
of these reports).  The chest drain keeps the default world's correlation
with pneumothorax (0.9 / 0.02): that correlation is what a global edit trips
over (paper Sec. 5.3).

``--vae-from MODEL`` skips stage 1 and trains the UNet on the VAE, text
encoder and tokenizer of an earlier demo model (stage 1 is deterministic, so
this is the VAE a full run would train again); the VAE stage's record comes
along (``vae/training.json`` of the written model).

The run folders (checkpoints, metrics, sample grids) are kept under
``--work-dir`` if given; an interrupted run continues from its last
checkpoint when started again with the same ``--work-dir``.  Deterministic
given ``--seed`` and ``--threads`` on one machine.  The written folder's
README records the command, both stages' recipes and their metrics.
"""

from __future__ import annotations

import argparse
import json
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

from radedit_core.models.tiny import TINY_UNET  # noqa: E402
from radedit_core.phantom_world import WorldConfig, write_dataset  # noqa: E402
from radedit_core.training import train_from_mapping  # noqa: E402

DEMO_NAME = "radedit-demo"
#: The generative model's training world: the default world with these changes.
TRAINING_WORLD = {
    "prevalence": {"pneumothorax": 0.3, "edema": 0.3, "consolidation": 0.25},
    "site_only": {},
    "pacemaker": 0.3,
    "report_negatives": True,
}
#: Data set seed of the training world (the replication's worlds use other seeds).
WORLD_SEED = 101


def vae_stage(args: argparse.Namespace, datalist: Path, run_dir: Path) -> dict:
    return dict(
        datalist=datalist, output_dir=run_dir, stage="vae", model="tiny-random", seed=args.seed,
        max_train_steps=args.vae_steps, batch_size=args.vae_batch, vae_crop_size=args.vae_crop,
        learning_rate=1e-3, adam_weight_decay=0.0, lr_scheduler="cosine", lr_warmup_steps=min(100, args.vae_steps),
        max_grad_norm=1.0, use_ema=False, vae_kl_weight=1e-4, normalize_latents=True, latent_stats_images=128,
        mixed_precision="no", device=args.device, checkpointing_steps=250, validation_epochs=0, sample_epochs=0,
        num_sample_images=4, log_every=25, model_name=f"{DEMO_NAME}-vae", progress=True,
    )  # fmt: skip


def unet_architecture(channels: tuple[int, ...]) -> str | dict:
    """``unet_config`` of the UNet stage: ``"tiny"`` (:data:`TINY_UNET`) or it with other block widths."""
    if channels == tuple(TINY_UNET["block_out_channels"]):
        return "tiny"
    return dict(TINY_UNET, block_out_channels=channels)


def unet_stage(args: argparse.Namespace, datalist: Path, run_dir: Path, start: Path) -> dict:
    return dict(
        datalist=datalist, output_dir=run_dir, stage="unet", model=str(start),
        unet_config=unet_architecture(args.unet_channels), seed=args.seed + 1,
        max_train_steps=args.unet_steps, batch_size=args.unet_batch, learning_rate=args.unet_lr,
        adam_weight_decay=1e-4, lr_scheduler="cosine", lr_warmup_steps=min(200, args.unet_steps), max_grad_norm=1.0,
        use_ema=True, ema_decay=0.999, caption_dropout=args.caption_dropout, caption_period_dropout=0.5,
        caption_sentence_shuffle=True,
        snr_gamma=args.snr_gamma or None,
        latent_sampling="mode", cache_latents=True, mixed_precision="no", device=args.device,
        checkpointing_steps=250, validation_epochs=0, validation_timesteps=10, sample_epochs=0, num_sample_images=4,
        sample_steps=50, log_every=25, model_name=DEMO_NAME, progress=True,
    )  # fmt: skip


def vae_record(args: argparse.Namespace, datalist: Path, run_dir: Path) -> dict:
    """The VAE stage's record of the model ``--vae-from`` names.

    ``vae/training.json`` (written by this script since ``--vae-from``), or
    for a model written before it, the VAE metrics of its README's metrics
    block with this script's VAE recipe, after checking that the README's
    recipe line is the one this recipe writes.
    """
    model = args.vae_from
    recorded = model / "vae" / "training.json"
    if recorded.is_file():
        return json.loads(recorded.read_text())
    text = (model / "README.md").read_text()
    metrics = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])["vae"]
    settings = json.loads(json.dumps(vae_stage(args, datalist, run_dir), default=str))
    record = {"settings": settings, "global_step": metrics["train"]["step"], "metrics": metrics}
    line = (
        f"- VAE stage: {record['global_step']} steps, batch {settings['batch_size']} random "
        f"{settings['vae_crop_size']}x{settings['vae_crop_size']} crops, AdamW lr {settings['learning_rate']:g} cosine, "
        f"L1 + L2 + {settings['vae_kl_weight']:g} KL"
    )
    if line not in text:
        sys.exit(f"--vae-from: {model}/README.md does not state this script's VAE recipe ({line!r})")
    return record


def write_world(folder: Path, images: int, holdout: int, workers: int) -> Path:
    """The training world's data set (resumable; reused when complete)."""
    datalist = folder / "datalist.json"
    if not datalist.exists():
        fraction = holdout / images
        write_dataset(
            folder, images, WorldConfig.from_dict(TRAINING_WORLD), seed=WORLD_SEED, format="png",
            splits={"training": 1.0 - fraction, "validation": fraction}, workers=workers,
        )  # fmt: skip
    return datalist


def readme(command: str, vae: dict, unet: dict, record: dict) -> str:
    """The model folder's README: what it is, the command, both stages and their metrics."""
    vs, us = vae["settings"], unet["settings"]
    unet_cfg = json.loads((Path(record["unet_config_path"])).read_text())
    vae_cfg = json.loads((Path(record["vae_config_path"])).read_text())
    lines = [
        "# RadEdit demo model (phantom world)",
        "",
        "A small RadEdit latent diffusion model (the classes, configurations and tokenizer of "
        "`radedit_core.models.tiny`, the published weights' folder layout) trained on the *phantom world* "
        "(`radedit_core.phantom_world`) by `scripts/train_demo_model.py` for the offline demo, the tests and "
        "the phantom replication of the paper's experiments (`benchmarks/phantom_replication.py`). "
        "Not for research on real images or clinical use.",
        "",
        "    " + command,
        "",
        f"- Architecture: UNet2DConditionModel blocks {list(unet_cfg['block_out_channels'])} "
        f"({', '.join(unet_cfg['down_block_types'])}), cross-attention width {unet_cfg['cross_attention_dim']}; "
        f"AutoencoderKL blocks {list(vae_cfg['block_out_channels'])}, 4 latent channels, x8; the text encoder is "
        "the tiny BERT's seeded random initialisation, frozen (the UNet learns to read it).",
        f"- Data: {record['images']} phantom-world cases (data set seed {WORLD_SEED}, "
        f"world {json.dumps(TRAINING_WORLD)} over the default world), 16-bit PNGs mapped to model space "
        "by the training data loader exactly as the editing path maps images.",
        f"- VAE stage: {vae['global_step']} steps, batch {vs['batch_size']} random {vs['vae_crop_size']}x"
        f"{vs['vae_crop_size']} crops, AdamW lr {vs['learning_rate']:g} cosine, L1 + L2 + {vs['vae_kl_weight']:g} KL; "
        "latent normalisation folded into quant_conv/post_quant_conv.",
        f"- UNet stage: {unet['global_step']} steps, batch {us['batch_size']}, AdamW lr {us['learning_rate']:g} "
        f"cosine ({us['lr_warmup_steps']} warm-up), epsilon target with the model card's schedule, posterior-mode "
        f"latents (cached), {'sentences shuffled, ' if us.get('caption_sentence_shuffle') else ''}"
        f"caption dropout {us['caption_dropout']:g}, final period dropped with probability "
        f"{us['caption_period_dropout']:g}, min-SNR gamma {us['snr_gamma']}, EMA (decay up to {us['ema_decay']:g}) "
        "weights saved.",
    ]
    if record.get("vae_from"):
        lines += [
            f"- The VAE stage was not run again: `--vae-from` took the VAE (with the text encoder and tokenizer) of "
            f"the demo model in `{record['vae_from']}`, which this script's stage 1 trained with the same seed and "
            "threads (its record: `vae/training.json`); `wall_time_s.vae` is therefore 0.",
        ]
    lines += [
        "",
        "Metrics (`training.json` has every setting of the UNet stage):",
        "",
        "```json",
        json.dumps(record["metrics"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def channel_list(text: str) -> tuple[int, ...]:
    """``--unet-channels``: four positive widths, each a multiple of the UNet's 8 norm groups."""
    groups = TINY_UNET["norm_num_groups"]
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        channels = ()
    if len(channels) != 4 or any(c <= 0 or c % groups for c in channels):
        raise argparse.ArgumentTypeError(f"{text!r}: four positive multiples of {groups}, e.g. 16,32,96,128")
    return channels


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, each option with its default."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the VAE stage (the UNet stage: seed + 1)")
    parser.add_argument("--vae-steps", type=int, default=2000, help="VAE optimizer steps")
    parser.add_argument("--unet-steps", type=int, default=3000, help="UNet optimizer steps")
    parser.add_argument("--datalist", type=Path, help="train on this MONAI datalist instead of the phantom world")
    parser.add_argument("--images", type=int, default=2000, help="phantom-world cases (without --datalist)")
    parser.add_argument("--holdout", type=int, default=40, help="of which held out for the validation metrics")
    parser.add_argument("--vae-batch", type=int, default=8, help="VAE batch (random crops)")
    parser.add_argument("--vae-crop", type=int, default=128, help="VAE crop size, model pixels")
    parser.add_argument("--unet-batch", type=int, default=16, help="UNet batch")
    parser.add_argument(
        "--unet-channels", type=channel_list, default=tuple(TINY_UNET["block_out_channels"]), metavar="C1,C2,C3,C4",
        help="UNet block widths (finest to coarsest level; the last two have cross-attention)",
    )  # fmt: skip
    parser.add_argument("--unet-lr", type=float, default=1e-3, help="UNet AdamW learning rate (cosine)")
    parser.add_argument("--caption-dropout", type=float, default=0.15, help="probability of the empty caption")
    parser.add_argument("--snr-gamma", type=float, default=5.0, help="min-SNR loss weighting (0: plain MSE)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (part of the determinism)")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering phantoms")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--work-dir", type=Path, help="keep the phantoms and run folders here (resumable)")
    parser.add_argument(
        "--vae-from", type=Path, metavar="MODEL",
        help="skip the VAE stage: train the UNet on this demo model's VAE, text encoder and tokenizer",
    )  # fmt: skip
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    command = "python scripts/train_demo_model.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        datalist = args.datalist or write_world(work / "world", args.images, args.holdout, args.workers)
        world_s = time.perf_counter() - started
        vae_run = work / "vae"
        if args.vae_from is not None:
            start, vae_training = args.vae_from, vae_record(args, datalist, vae_run)
        else:
            if not (vae_run / "model").exists():
                print(train_from_mapping(vae_stage(args, datalist, vae_run)))
            start = vae_run / "model"
            vae_training = json.loads((start / "training.json").read_text())
        vae_s = time.perf_counter() - started - world_s
        unet = train_from_mapping(unet_stage(args, datalist, work / "unet", start))
        print(unet)
        unet_training = json.loads((unet.model_dir / "training.json").read_text())
        total = time.perf_counter() - started
        record = {
            "vae_from": None if args.vae_from is None else str(args.vae_from),
            "images": args.images if args.datalist is None else unet_training["data"]["training_rows"],
            "unet_config_path": str(unet.model_dir / "unet" / "config.json"),
            "vae_config_path": str(unet.model_dir / "vae" / "config.json"),
            "metrics": {
                "seed": args.seed,
                "threads": args.threads,
                "vae": vae_training["metrics"],
                "unet": unet_training["metrics"],
                "wall_time_s": {"world": round(world_s, 1), "vae": round(vae_s, 1),
                                "unet": round(total - world_s - vae_s, 1), "total": round(total, 1)},  # fmt: skip
            },
        }
        text = readme(command, vae_training, unet_training, record)
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(unet.model_dir, args.out)
        (args.out / "vae" / "training.json").write_text(json.dumps(vae_training, indent=2) + "\n")
        (args.out / "README.md").write_text(text)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
