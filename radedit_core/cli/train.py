"""``radedit train``: train (or fine-tune) the UNet or the VAE on a datalist of images and reports."""

from __future__ import annotations

from ..training.arguments import add_train_arguments, options_from_args
from ..training.settings import TrainSettings, option_fields
from .common import dashed, options_as_typed


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the latent diffusion model on a datalist",
        description="Train the UNet (text encoder frozen) or the VAE on a MONAI datalist of images and texts, "
        "from scratch or from a model; resumable checkpoints, EMA, validation loss, sample grids. The "
        "result is a model folder that --model loads (radedit_core.training).",
    )
    add_train_arguments(p)


def run(args) -> int:
    # Options are checked before the engine is imported: a typo costs no 10 s of torch, diffusers and MONAI imports.
    with options_as_typed(dashed(*(f.name for f in option_fields()))):
        settings = TrainSettings.from_mapping(options_from_args(args))
        from ..training.engine import Trainer  # noqa: PLC0415 - torch, diffusers and MONAI

        print(Trainer(settings).run())
    return 0
