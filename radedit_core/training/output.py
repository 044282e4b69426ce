"""The trained model as a folder ``--model DIR`` loads (diffusers layout), written atomically.

::

    model/
      unet/           UNet2DConditionModel.save_pretrained (the EMA weights when EMA is on)
      vae/            AutoencoderKL.save_pretrained
      text_encoder/   the frozen text encoder, save_pretrained
      tokenizer/      its tokenizer, save_pretrained
      scheduler/      DDIMScheduler with the model's scheduler settings
      radedit_model.json   the model spec (components in this folder, scheduler, text settings)
      training.json   settings, start model, metrics (machine-readable)
      README.md       the recipe and the metrics

It loads with :func:`radedit_core.models.loading.load_components` and edits
with :class:`radedit_core.workflow.RadEditor`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..fileio import atomic_directory
from ..models.spec import SPEC_FILENAME

MODEL_SUBDIR = "model"


def model_spec_dict(components, name: str, scheduler: dict[str, Any]) -> dict[str, Any]:
    """The radedit_model.json of the written folder (components as its subfolders)."""
    spec = components.spec
    text_remote = spec.text_encoder.trust_remote_code
    tok_remote = spec.tokenizer.trust_remote_code
    return {
        "name": name,
        "unet": {"source": ".", "subfolder": "unet"},
        "vae": {"source": ".", "subfolder": "vae"},
        "text_encoder": {"source": ".", "subfolder": "text_encoder", "trust_remote_code": text_remote},
        "tokenizer": {"source": ".", "subfolder": "tokenizer", "trust_remote_code": tok_remote},
        "scheduler": scheduler,
        "text": {"max_length": spec.text.max_length, "pass_attention_mask": spec.text.pass_attention_mask},
    }


def write_model_folder(
    folder: Path,
    components,
    trained: dict[str, torch.nn.Module],
    name: str,
    scheduler: dict[str, Any],
    training: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write the model into ``folder`` (appears whole or not at all).

    ``trained`` maps component names ("unet", "vae") to the modules to save
    instead of the loaded ones.
    """
    from diffusers import DDIMScheduler  # noqa: PLC0415

    folder = Path(folder)
    with atomic_directory(folder, overwrite=overwrite) as tmp:
        for part in ("unet", "vae"):
            trained.get(part, getattr(components, part)).save_pretrained(tmp / part, safe_serialization=True)
        components.text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
        components.tokenizer.save_pretrained(tmp / "tokenizer")
        DDIMScheduler.from_config(scheduler).save_pretrained(tmp / "scheduler")
        (tmp / SPEC_FILENAME).write_text(json.dumps(model_spec_dict(components, name, scheduler), indent=2) + "\n")
        (tmp / "training.json").write_text(json.dumps(training, indent=2, default=str) + "\n")
        (tmp / "README.md").write_text(readme(name, training))
    return folder


def readme(name: str, training: dict[str, Any]) -> str:
    s = training["settings"]
    stage = s["stage"]
    what = (
        "the UNet (text encoder and VAE frozen)"
        if stage == "unet"
        else "the VAE (reconstruction + KL), UNet and text encoder unchanged"
    )
    start = f"`{s['model']}`" + (
        f", UNet from scratch ({s['unet_config'] if isinstance(s['unet_config'], str) else 'given config'})"
        if s.get("unet_config") is not None
        else ""
    )
    lines = [
        f"# {name}",
        "",
        f"Trained by radedit_core {__version__} (`radedit_core.training`): {what}, "
        f"starting from {start}, on `{s['datalist']}` ({training['data']['training_rows']} training rows, "
        f"{training['data']['validation_rows']} validation rows).",
        "",
    ]
    if training["prediction_type"] != "epsilon":
        lines += [
            f"**This UNet predicts {training['prediction_type']}**: the editing and generation pipelines of "
            "radedit_core assume epsilon prediction and cannot use it as it is.",
            "",
        ]
    lines += [
        "Recipe:",
        "",
        f"- {training['global_step']} optimizer steps, global batch {training['global_batch']} "
        f"({training['world_size']} rank(s) x batch {s['batch_size']} x accumulation "
        f"{s['gradient_accumulation_steps']}), AdamW lr {s['learning_rate']:g} "
        f"(betas {s['adam_beta1']:g}/{s['adam_beta2']:g}, weight decay {s['adam_weight_decay']:g}), "
        f"{s['lr_scheduler']} schedule with {s['lr_warmup_steps']} warm-up steps, gradient clipping "
        f"{s['max_grad_norm']:g}, mixed precision {training['mixed_precision']}, seed {s['seed']}.",
    ]
    if stage == "unet":
        lines.append(
            f"- Target {training['prediction_type']} with the model's noise schedule, latents by posterior "
            f"{s['latent_sampling']}, caption dropout {s['caption_dropout']:g}"
            + (", sentences shuffled" if s.get("caption_sentence_shuffle") else "")
            + (f", final period dropped with probability {s['caption_period_dropout']:g}"
               if s["caption_period_dropout"] else "")
            + (f", min-SNR gamma {s['snr_gamma']:g}" if s.get("snr_gamma") is not None else "")
            + "."
        )
    else:
        crop = f"{s['vae_crop_size']}x{s['vae_crop_size']} crops" if s.get("vae_crop_size") else "whole images"
        lines.append(
            f"- L1 + L2 reconstruction + {s['vae_kl_weight']:g} KL on {crop}"
            + ("; latent normalisation folded into quant_conv/post_quant_conv." if s["normalize_latents"] else ".")
        )
    lines.append(f"- EMA weights saved (decay up to {s['ema_decay']:g})." if s["use_ema"] else "- Raw weights saved (no EMA).")
    lines += ["", "Metrics:", "", "```json", json.dumps(training["metrics"], indent=2, default=str), "```", ""]
    lines += ["All settings are in `training.json`.", ""]
    return "\n".join(lines)
