"""Training RadEdit models: the UNet with text encoder and VAE frozen (and the VAE as a stage of its own).

The paper's recipe (App. 0.D) and seed 003's: a latent diffusion UNet trained
on a datalist of chest X-rays and their reports through a frozen VAE and a
frozen text encoder, from scratch or fine-tuning published weights.  Data in
model space exactly as the editing path sees it, per-sample seeded noise and
timesteps, AdamW with warm-up, gradient clipping, EMA, bf16 autocast on GPUs,
gradient checkpointing, checkpoints with an exact resume, validation loss,
sample grids and MONAI's FID on a user-supplied feature extractor, DDP under
``torchrun``; the result is a model folder that ``--model DIR`` loads.

Modules, one concept each:

- :mod:`.settings`: :class:`TrainSettings`, validated from a mapping;
- :mod:`.arguments`: the ``radedit train`` options (:func:`add_train_arguments`);
- :mod:`.data`: the datalist, images in model space, the batch order;
- :mod:`.noise`: random draws seeded per sample;
- :mod:`.components`: the start model, from-scratch modules, the noise schedule;
- :mod:`.denoising`: the UNet stage's loss, validation and samples;
- :mod:`.autoencoder`: the VAE stage's loss, validation and latent normalisation;
- :mod:`.engine`: the loop (:class:`Trainer`, :func:`train_from_mapping`);
- :mod:`.checkpoint`: resumable checkpoints;
- :mod:`.run_folder`: the run folder, the resume decision, the metrics log;
- :mod:`.samples`, :mod:`.fid`: sample grids and FID;
- :mod:`.distributed`: torchrun process groups and DDP;
- :mod:`.output`: the trained model folder.
"""

from __future__ import annotations

from typing import Any

from .arguments import add_train_arguments, options_from_args
from .settings import TrainSettings

_ENGINE = {"StepInfo", "TrainResult", "Trainer", "train_from_mapping"}


def __getattr__(name: str) -> Any:
    # The loop imports torch, diffusers and MONAI; settings and options do not
    # (so `radedit train --help` and option errors stay fast).
    if name in _ENGINE:
        from . import engine  # noqa: PLC0415

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "StepInfo",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "add_train_arguments",
    "options_from_args",
    "train_from_mapping",
]
