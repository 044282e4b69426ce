"""The starting point of a run: the model's components, a from-scratch module, the noise schedule.

Fine-tuning starts from the weights of ``settings.model`` (anything
:meth:`radedit_core.models.spec.ModelSpec.resolve` takes: 'radedit', 'tiny',
a folder, a spec file), loaded by
:func:`radedit_core.models.loading.load_components` in float32 (autocast
provides bf16 where asked).  ``unet_config``/``vae_config`` replace the
trained module by a fresh, seeded initialisation of that architecture ('tiny':
:data:`radedit_core.models.tiny.TINY_UNET`/``TINY_VAE``), keeping the other
components of ``settings.model``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..models.tiny import TINY_UNET, TINY_VAE
from .noise import seed_for


def read_config(option: str, value: Any, tiny: dict[str, Any]) -> dict[str, Any]:
    """'tiny' -> a copy of ``tiny``; a config.json path -> its contents; a mapping -> a copy."""
    if isinstance(value, dict):
        return dict(value)
    if value == "tiny":
        return dict(tiny)
    try:
        data = json.loads(Path(value).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{option}: cannot read {value} as a JSON config ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{option}: {value} must hold a JSON object")
    return data


def fresh_module(cls, option: str, config: dict[str, Any], seed: int, device: torch.device):
    """``cls.from_config(config)`` with weights from a seeded generator (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(seed, "init", 0))
        try:
            module = cls.from_config(config)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"{option}: not a valid {cls.__name__} configuration ({exc})") from exc
    return module.to(device)


def load_start_components(settings, device: torch.device):
    """The model's components with the trained module replaced by a fresh one if a config is given.

    Raises:
        ModelNotFoundError / ConfigError: from loading, or when the UNet does
            not fit the VAE's latents or the text encoder's width.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: PLC0415

    from ..models.loading import load_components  # noqa: PLC0415

    components = load_components(
        settings.model, device=device, dtype="float32", vae_dtype="float32", trust_remote_code=settings.trust_remote_code
    )
    if settings.unet_config is not None:
        config = read_config("unet_config", settings.unet_config, TINY_UNET)
        components.unet = fresh_module(UNet2DConditionModel, "unet_config", config, settings.seed, device)
    if settings.vae_config is not None:
        config = read_config("vae_config", settings.vae_config, TINY_VAE)
        components.vae = fresh_module(AutoencoderKL, "vae_config", config, settings.seed, device)
    check_compatible(components)
    for module in (components.unet, components.vae, components.text_encoder):
        module.eval().requires_grad_(False)
    return components


def check_compatible(components) -> None:
    unet, vae = components.unet.config, components.vae.config
    if unet.in_channels != vae.latent_channels or unet.out_channels != vae.latent_channels:
        raise ConfigError(
            f"unet_config: the UNet takes {unet.in_channels} and predicts {unet.out_channels} channels but the "
            f"VAE's latents have {vae.latent_channels}"
        )
    hidden = getattr(components.text_encoder.config, "hidden_size", None)
    if hidden is not None and unet.cross_attention_dim != hidden:
        raise ConfigError(
            f"unet_config: cross_attention_dim {unet.cross_attention_dim} does not match the text encoder's "
            f"hidden size {hidden}"
        )
    if not isinstance(unet.sample_size, int):
        raise ConfigError(f"unet_config: sample_size must be one integer (square latents), got {unet.sample_size!r}")


def model_resolution(components) -> int:
    """Model-space image size: UNet latent size x the VAE's downsampling factor."""
    return int(components.unet.config.sample_size) * 2 ** (len(components.vae.config.block_out_channels) - 1)


def scheduler_settings(spec_scheduler: dict[str, Any], prediction_type: str | None) -> dict[str, Any]:
    """The model's scheduler settings (DDIMScheduler form), with the prediction type overridden if given."""
    out = {k: v for k, v in spec_scheduler.items() if not k.startswith("_")}
    if prediction_type is not None:
        out["prediction_type"] = prediction_type
    return out


def noise_scheduler_from(scheduler: dict[str, Any]):
    """A :class:`diffusers.DDPMScheduler` with the same schedule (the DDIM-only keys dropped).

    Raises:
        ConfigError: the settings are not a valid schedule.
    """
    from diffusers import DDPMScheduler  # noqa: PLC0415

    accepted = set(inspect.signature(DDPMScheduler.__init__).parameters) - {"self"}
    try:
        return DDPMScheduler(**{k: v for k, v in scheduler.items() if k in accepted})
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ConfigError(f"model scheduler settings are not a valid noise schedule ({exc})") from exc
