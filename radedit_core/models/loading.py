"""Load the RadEdit components with the real diffusers/transformers classes.

Weights come from the Hugging Face cache (hub id + pinned revision) or a local
folder; ``HF_HUB_OFFLINE=1`` / ``local_files_only`` are honoured by the
libraries themselves.  Remote code (BioViL-T's CXR-BERT) runs only when the
caller opts in with ``trust_remote_code=True`` *and* the revision is pinned.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch
from safetensors import SafetensorError

from ..errors import ConfigError, InputError, ModelNotFoundError
from .spec import ComponentSource, ModelSpec

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


#: The loggers of the libraries that load and save model components.
_MODEL_LIBRARY_LOGGERS = ("diffusers", "transformers", "huggingface_hub")


def quiet_model_libraries() -> None:
    """Silence diffusers/transformers/huggingface_hub chatter (load reports, dtype notes, their bars).

    Library messages drown the one line a user needs; errors still surface as
    radedit errors.  Importing diffusers/transformers costs seconds, so this is
    called when a model is about to load, never at start-up.
    """
    for name in _MODEL_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as dlog  # noqa: PLC0415
        from transformers.utils import logging as tlog  # noqa: PLC0415
    except ImportError:  # pragma: no cover - both are dependencies
        return
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


@contextlib.contextmanager
def quieted_model_libraries() -> Iterator[None]:
    """:func:`quiet_model_libraries` for the duration of a block, then the libraries' settings as
    they were (for library calls such as :meth:`radedit_core.training.Trainer.run` that a
    program embedding them should not find changed)."""
    from diffusers.utils import logging as dlog  # noqa: PLC0415
    from transformers.utils import logging as tlog  # noqa: PLC0415

    levels = {name: logging.getLogger(name).level for name in _MODEL_LIBRARY_LOGGERS}
    settings = [(m, m.get_verbosity(), m.is_progress_bar_enabled()) for m in (dlog, tlog)]
    quiet_model_libraries()
    try:
        yield
    finally:
        for module, verbosity, bars in settings:
            module.set_verbosity(verbosity)
            (module.enable_progress_bar if bars else module.disable_progress_bar)()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available (use --device cpu)")
    return device


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on GPUs that support it (fp16 otherwise), fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(
            f"unknown dtype '{dtype}'; choose one of auto, float32, bfloat16, float16"
        ) from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


@dataclass
class RadEditComponents:
    """The loaded networks, ready for the pipelines."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_dtype(self, dtype: "str | torch.dtype") -> "RadEditComponents":
        """The same weights with UNet and text encoder in ``dtype`` (copies; the VAE is shared).

        For comparing the fast (half-precision) path with float32 on identical
        weights, as the benchmark and the agreement test do.
        """
        import copy  # noqa: PLC0415

        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        return replace(
            self,
            unet=copy.deepcopy(self.unet).to(dt),
            text_encoder=copy.deepcopy(self.text_encoder).to(dt),
            dtype=dt,
        )

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "components": self.sources,
            "scheduler": {k: v for k, v in self.scheduler.config.items() if not k.startswith("_")},
            "text": {
                "max_length": self.spec.text.max_length,
                "pass_attention_mask": self.spec.text.pass_attention_mask,
            },
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "vae_dtype": dtype_name(self.vae_dtype),
        }


def _not_found(what: str, comp: ComponentSource, exc: Exception) -> ModelNotFoundError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    if comp.is_local:
        hint = (
            f"the folder must hold the {what} files (config + weights) as written by save_pretrained"
        )
    else:
        from huggingface_hub import constants  # noqa: PLC0415

        cache = constants.HF_HUB_CACHE
        hint = (
            f"looked in the Hugging Face cache ({cache}){' in offline mode' if offline else ''}. "
            f"Provide it with `hf download {comp.source} --revision {comp.revision or 'main'}` on a "
            "connected machine and copy the cache here, or point --model at a local folder/spec file"
        )
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelNotFoundError(f"{what} not found: {comp.describe()}; {hint}. ({reason})")


def _where(comp: ComponentSource) -> tuple[str, dict[str, Any]]:
    """(what from_pretrained gets, the location kwargs).

    A local component is passed as its own folder: transformers looks for a
    component's remote code (``configuration_*.py``) at the root of what it
    is given, not in ``subfolder``.
    """
    if comp.is_local:
        return str(comp.path), {}
    kwargs: dict[str, Any] = {}
    if comp.subfolder:
        kwargs["subfolder"] = comp.subfolder
    if comp.revision:
        kwargs["revision"] = comp.revision
    return comp.source, kwargs


def _offline(local_files_only: bool | None) -> bool:
    from huggingface_hub import constants  # noqa: PLC0415

    return bool(local_files_only) or bool(constants.HF_HUB_OFFLINE)


def check_cached(what: str, comp: ComponentSource, local_files_only: bool | None) -> None:
    """Offline, a hub component missing from the cache fails now, with the instructions, not after retries.

    Raises:
        ModelNotFoundError: the component's config is not in the Hugging Face
            cache (at the pinned revision) and the hub may not be contacted.
    """
    if comp.is_local or not _offline(local_files_only):
        return
    from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

    filename = "config.json" if what != "tokenizer" else "tokenizer_config.json"
    found = try_to_load_from_cache(
        comp.source, filename if not comp.subfolder else f"{comp.subfolder}/{filename}", revision=comp.revision
    )
    if not isinstance(found, str):
        raise _not_found(what, comp, FileNotFoundError(f"{filename} is not in the cache"))


def _check_remote_code(what: str, comp: ComponentSource, allowed: bool) -> None:
    if not comp.trust_remote_code:
        return
    if not allowed:
        raise ConfigError(
            f"{what} {comp.describe()} needs remote code (custom modelling files) to load; "
            "review them and pass --trust-remote-code (trust_remote_code=True) to allow it"
        )
    if not comp.is_local and not comp.is_pinned:
        raise ConfigError(
            f"{what} {comp.describe()}: remote code is only run from a pinned revision "
            "(a 40-character commit hash or a release tag); set 'revision' in the model spec"
        )


def _load(what: str, comp: ComponentSource, loader, local_files_only: bool | None, **extra: Any):
    source, kwargs = _where(comp)
    if local_files_only:
        kwargs["local_files_only"] = True
    if comp.variant and what != "tokenizer":
        kwargs["variant"] = comp.variant
    try:
        # Loading must not move the caller's random stream: some modules draw in
        # __init__ even when their weights are then loaded (diffusers'
        # AttentionPooling of the "text" addition embedding calls torch.randn),
        # which would make a seeded run depend on when its model was loaded.
        with torch.random.fork_rng(devices=[]):
            return loader(source, **kwargs, **extra)
    except SafetensorError as exc:
        detail = (str(exc).splitlines() or ["unreadable"])[0]
        raise InputError(source, f"{what} weights cannot be read ({detail}): the file is truncated or corrupt") from exc
    except (OSError, ValueError, EnvironmentError) as exc:
        # diffusers/transformers/huggingface_hub report missing files, unknown
        # repositories, absent revisions and offline misses as OSError/ValueError.
        raise _not_found(what, comp, exc) from exc


def _check_text_length(spec: ModelSpec, local_files_only: bool | None) -> None:
    """``text.max_length`` must fit the encoder's position embeddings (read from its config, before its weights)."""
    from transformers import AutoConfig  # noqa: PLC0415

    comp = spec.text_encoder
    source, kwargs = _where(comp)
    if local_files_only:
        kwargs["local_files_only"] = True
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=comp.trust_remote_code, **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise _not_found("text encoder", comp, exc) from exc
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and spec.text.max_length > limit:
        raise ConfigError(
            f"model spec '{spec.name}': text.max_length {spec.text.max_length} exceeds the text encoder's "
            f"{limit} position embeddings; use at most {limit}"
        )


def load_components(
    spec: ModelSpec | str | None = None,
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    vae_dtype: str | torch.dtype | None = "float32",
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
) -> RadEditComponents:
    """Load UNet, VAE, text encoder, tokenizer and scheduler described by ``spec``.

    ``dtype`` applies to the UNet and the text encoder; the VAE defaults to
    float32 because the SDXL VAE overflows in float16.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: PLC0415
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    spec = ModelSpec.resolve(spec)
    dev = resolve_device(device)
    model_dtype = resolve_dtype(dtype, dev)
    vae_torch_dtype = resolve_dtype(vae_dtype, dev)
    if dev.type == "cpu" and torch.float16 in (model_dtype, vae_torch_dtype):
        log.warning("float16 on CPU is slow and poorly supported; consider bfloat16 or float32")
    for what, comp in (("text encoder", spec.text_encoder), ("tokenizer", spec.tokenizer)):
        _check_remote_code(what, comp, trust_remote_code)
    for what, comp in (("UNet", spec.unet), ("VAE", spec.vae), ("text encoder", spec.text_encoder),
                       ("tokenizer", spec.tokenizer)):  # fmt: skip
        check_cached(what, comp, local_files_only)
    _check_text_length(spec, local_files_only)

    unet = _load("UNet", spec.unet, UNet2DConditionModel.from_pretrained, local_files_only, torch_dtype=model_dtype)
    vae = _load("VAE", spec.vae, AutoencoderKL.from_pretrained, local_files_only, torch_dtype=vae_torch_dtype)
    text_encoder = _load(
        "text encoder",
        spec.text_encoder,
        AutoModel.from_pretrained,
        local_files_only,
        trust_remote_code=spec.text_encoder.trust_remote_code,
    )
    tokenizer = _load(
        "tokenizer",
        spec.tokenizer,
        AutoTokenizer.from_pretrained,
        local_files_only,
        trust_remote_code=spec.tokenizer.trust_remote_code,
        model_max_length=spec.text.max_length,
    )
    try:
        scheduler = DDIMScheduler.from_config(spec.scheduler)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model spec '{spec.name}': invalid scheduler settings ({exc})") from exc

    unet_cross = unet.config.cross_attention_dim
    hidden = getattr(text_encoder.config, "hidden_size", None)
    if hidden is not None and unet_cross != hidden:
        raise ConfigError(
            f"model spec '{spec.name}': text encoder hidden size {hidden} does not match the "
            f"UNet's cross-attention dim {unet_cross}"
        )

    # diffusers modules got their dtype from from_pretrained (which keeps any
    # modules declared fp32-only in fp32); the text encoder is cast here.
    text_encoder.to(dtype=model_dtype)
    for module in (unet, text_encoder, vae):
        module.to(device=dev)
        module.eval()
        module.requires_grad_(False)

    sources = {
        name: {
            "source": comp.source,
            "subfolder": comp.subfolder,
            "revision": comp.revision,
            "local": comp.is_local,
            "class": type(module).__name__,
        }
        for name, comp, module in (
            ("unet", spec.unet, unet),
            ("vae", spec.vae, vae),
            ("text_encoder", spec.text_encoder, text_encoder),
            ("tokenizer", spec.tokenizer, tokenizer),
        )
    }
    return RadEditComponents(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        spec=spec,
        device=dev,
        dtype=model_dtype,
        vae_dtype=vae_torch_dtype,
        sources=sources,
    )
