"""Everything that decides a training run: one typed, validated :class:`TrainSettings`.

Built from a mapping (a bundle config, the command line, a Python dict) by
:meth:`TrainSettings.from_mapping`: unknown keys, values of the wrong type,
non-finite numbers and values out of range are one-line :class:`ConfigError`
messages that name the option, raised before any model is loaded or any output
is created.  Each field's metadata (kind, range, help, whether it belongs to
the *recipe*) is the single source for the validation, the command-line
options (:mod:`radedit_core.training.arguments`) and the resume check: a run
resumes only from a checkpoint written with the same recipe; the other
options (where to write, how often to validate, worker counts, the device)
may change between sessions because they do not change the trained weights.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..settings import choice_problem, coerce, range_problem

#: diffusers.optimization.SchedulerType names (piecewise_constant needs a rule string: not offered).
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _opt(
    default: Any,
    kind: str,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: tuple[Any, ...] | None = None,
    optional: bool = False,
    recipe: bool = True,
    stage: str | None = None,
) -> Any:
    """A settings field; ``kind``: int, float, bool, str, path, strs, config, extractor.

    ``recipe``: the option decides the trained weights (recorded, compared on resume); ``stage``:
    only that stage ('unet' or 'vae') uses it, so only its runs record it.
    """
    meta = dict(
        kind=kind, help=help, low=low, high=high, low_open=low_open, high_open=high_open,
        choices=choices, optional=optional, recipe=recipe, stage=stage,
    )  # fmt: skip
    return field(default=default, metadata=meta)


@dataclass
class TrainSettings:
    """A training run of the UNet (or, as a separate stage, the VAE) of a RadEdit model.

    Defaults follow diffusers' text-to-image fine-tuning recipe (AdamW, EMA,
    gradient clipping 1.0) with the model card's noise schedule taken from the
    model's own scheduler config.  See the field ``help`` texts (also shown by
    ``radedit train --help``) for units and ranges.
    """

    # -- data ----------------------------------------------------------------
    datalist: str | None = _opt(
        None, "path",
        "MONAI datalist JSON: {'training': [...], 'validation': [...]} of rows with an image path "
        "(relative to the datalist's folder) and a report",
    )  # fmt: skip
    image_key: str = _opt("image", "str", "datalist column holding the image path (PNG 8/16-bit, NIfTI, NRRD, DICOM)")
    text_key: str = _opt("report", "str", "datalist column holding the text the UNet is conditioned on")
    train_split: str = _opt("training", "str", "datalist list to train on")
    validation_split: str | None = _opt(
        "validation", "str", "datalist list for the validation loss, samples and FID ('' or null: none)",
        optional=True, recipe=False,
    )  # fmt: skip
    cache_rate: float = _opt(
        1.0, "float", "fraction of the images CacheDataset keeps in memory in model space (0: read every time)",
        low=0.0, high=1.0, recipe=False,
    )  # fmt: skip
    num_workers: int = _opt(0, "int", "DataLoader worker processes (0: load in the training process)", low=0, recipe=False)

    # -- model ---------------------------------------------------------------
    stage: str = _opt(
        "unet", "str", "what to train: 'unet' (text encoder and VAE frozen) or 'vae' (reconstruction + KL)",
        choices=("unet", "vae"),
    )  # fmt: skip
    model: str = _opt(
        "tiny", "str",
        "model to start from and take the frozen components from: 'radedit', 'tiny', 'tiny-random', "
        "a model folder or a spec file",
    )  # fmt: skip
    unet_config: Any = _opt(
        None, "config",
        "train the UNet from scratch with this architecture: 'tiny', a config.json (or its folder) or a mapping "
        "of UNet2DConditionModel arguments (default: fine-tune the model's UNet)",
        optional=True, stage="unet",
    )  # fmt: skip
    vae_config: Any = _opt(
        None, "config",
        "VAE stage from scratch with this AutoencoderKL architecture: 'tiny', a config.json or a mapping "
        "(default: fine-tune the model's VAE)",
        optional=True, stage="vae",
    )  # fmt: skip
    prediction_type: str | None = _opt(
        None, "str", "UNet target: epsilon, v_prediction or sample (default: the model's scheduler config)",
        choices=PREDICTION_TYPES, optional=True, stage="unet",
    )  # fmt: skip
    trust_remote_code: bool = _opt(
        False, "bool", "allow the text encoder's own modelling code (BioViL-T) to run", recipe=False
    )
    model_name: str | None = _opt(
        None, "str", "name written into the trained model's radedit_model.json (default: <model>-<stage>)",
        optional=True, recipe=False,
    )  # fmt: skip

    # -- output and resume ---------------------------------------------------
    output_dir: str | None = _opt(
        None, "path", "run folder: checkpoints/, samples/, metrics.jsonl and, at the end, the model in model/",
        recipe=False,
    )  # fmt: skip
    resume: str = _opt(
        "auto", "str",
        "'auto': continue from the newest checkpoint in output_dir if there is one; 'never': refuse a folder "
        "with an earlier run; or a checkpoint folder",
        recipe=False,
    )  # fmt: skip
    overwrite: bool = _opt(False, "bool", "delete an earlier run in output_dir and start again", recipe=False)

    # -- optimisation --------------------------------------------------------
    seed: int = _opt(0, "int", "seed of the data order, the per-sample noise and timesteps, and random inits", low=0)
    batch_size: int = _opt(8, "int", "images per process and micro-step", low=1)
    gradient_accumulation_steps: int = _opt(1, "int", "micro-steps per optimizer step", low=1)
    max_train_steps: int | None = _opt(
        None, "int", "optimizer steps to train (overrides num_epochs)", low=1, optional=True
    )
    num_epochs: int = _opt(1, "int", "passes over the training list when max_train_steps is not given", low=1)
    learning_rate: float = _opt(1e-4, "float", "peak AdamW learning rate", low=0.0, low_open=True)
    adam_beta1: float = _opt(0.9, "float", "AdamW beta1", low=0.0, high=1.0, high_open=True)
    adam_beta2: float = _opt(0.999, "float", "AdamW beta2", low=0.0, high=1.0, high_open=True)
    adam_weight_decay: float = _opt(1e-2, "float", "AdamW decoupled weight decay", low=0.0)
    adam_epsilon: float = _opt(1e-8, "float", "AdamW epsilon", low=0.0, low_open=True)
    lr_scheduler: str = _opt(
        "constant_with_warmup", "str", "learning-rate schedule (diffusers get_scheduler)", choices=LR_SCHEDULERS
    )
    lr_warmup_steps: int = _opt(500, "int", "linear warm-up steps of the learning rate", low=0)
    max_grad_norm: float = _opt(1.0, "float", "gradient clipping by global norm (0: no clipping)", low=0.0)
    mixed_precision: str = _opt(
        "auto", "str", "'bf16' autocast, 'no' (float32), or 'auto' (bf16 on a GPU that supports it)",
        choices=("auto", "no", "bf16"),
    )  # fmt: skip
    gradient_checkpointing: bool = _opt(
        False, "bool", "recompute activations in the backward pass (less memory, ~30% slower)", recipe=False
    )
    use_ema: bool = _opt(True, "bool", "keep an exponential moving average of the weights and save it")
    ema_decay: float = _opt(0.9999, "float", "largest EMA decay", low=0.0, high=1.0)
    ema_warmup: bool = _opt(
        False, "bool", "EMA decay 1 - (1 + step)^(-2/3) instead of (1 + step) / (10 + step), both capped by ema_decay"
    )
    device: str = _opt("auto", "str", "'auto', 'cpu', 'cuda' (under torchrun each rank takes its own GPU)", recipe=False)

    # -- diffusion (UNet stage) ----------------------------------------------
    caption_dropout: float = _opt(
        0.1, "float", "probability that a caption is replaced by '' (the unconditional embedding of guidance)",
        low=0.0, high=1.0, stage="unet",
    )  # fmt: skip
    caption_period_dropout: float = _opt(
        0.0, "float", "probability that a caption's final period is dropped (prompts are typed both ways)",
        low=0.0, high=1.0, stage="unet",
    )  # fmt: skip
    caption_sentence_shuffle: bool = _opt(
        False, "bool", "shuffle the sentences of each caption (the paper's recipe, App. 0.D)", stage="unet"
    )
    latent_sampling: str = _opt(
        "sample", "str", "VAE latents: 'sample' the posterior (per-sample seeded) or take its 'mode'",
        choices=("sample", "mode"), stage="unet",
    )  # fmt: skip
    cache_latents: bool = _opt(
        False, "bool", "encode each image once and keep its latent (needs latent_sampling 'mode')", stage="unet"
    )
    snr_gamma: float | None = _opt(
        None, "float", "min-SNR loss weighting gamma (Hang et al. 2023; 5.0 is usual); null: plain MSE",
        low=0.0, low_open=True, optional=True, stage="unet",
    )  # fmt: skip

    # -- VAE stage -----------------------------------------------------------
    vae_crop_size: int | None = _opt(
        None, "int", "VAE stage: train on random square crops of this size (null: whole model-space images)",
        low=8, optional=True, stage="vae",
    )  # fmt: skip
    vae_kl_weight: float = _opt(
        1e-4, "float", "VAE stage: weight of the KL term next to L1 + L2 reconstruction", low=0.0, stage="vae"
    )
    normalize_latents: bool = _opt(
        True, "bool",
        "VAE stage: fold a per-channel latent normalisation into quant_conv/post_quant_conv so that latents x "
        "scaling_factor have zero mean and unit variance",
        stage="vae",
    )  # fmt: skip
    latent_stats_images: int = _opt(
        128, "int", "VAE stage: training images the latent statistics are measured on", low=2, stage="vae"
    )

    # -- validation, samples, FID --------------------------------------------
    validation_epochs: int = _opt(
        1, "int", "validation loss every this many epochs and at the end (0: only at the end)", low=0, recipe=False
    )
    validation_timesteps: int = _opt(
        10, "int", "fixed timesteps (evenly spread) each validation image is scored at", low=1, recipe=False
    )
    max_validation_images: int | None = _opt(
        None, "int", "score at most this many validation images", low=1, optional=True, recipe=False
    )
    sample_epochs: int = _opt(
        1, "int", "sample grid (and FID) every this many epochs and at the end (0: only at the end)",
        low=0, recipe=False,
    )  # fmt: skip
    sample_prompts: list[str] | None = _opt(
        None, "strs", "prompts of the sample grid (default: the first validation reports)", optional=True,
        recipe=False,
    )  # fmt: skip
    num_sample_images: int = _opt(4, "int", "images in the sample grid", low=1, recipe=False)
    sample_steps: int = _opt(50, "int", "DDIM steps of the sample grid and FID images", low=1, high=1000, recipe=False)
    sample_guidance: float = _opt(7.5, "float", "classifier-free guidance of the samples", low=0.0, recipe=False)
    fid_feature_extractor: Any = _opt(
        None, "extractor",
        "TorchScript file (or, in Python, a callable) mapping [B, 1, S, S] images in [-1, 1] to [B, F] "
        "features for MONAI's FIDMetric; without one FID is reported as unavailable",
        optional=True, recipe=False,
    )  # fmt: skip
    fid_num_images: int = _opt(32, "int", "generated and real validation images the FID compares", low=2, recipe=False)

    # -- checkpoints and logging ---------------------------------------------
    checkpointing_steps: int = _opt(
        500, "int", "write a resumable checkpoint every this many steps (0: only at the end)", low=0, recipe=False
    )
    checkpoints_total_limit: int | None = _opt(
        3, "int", "keep only the newest checkpoints (null: keep all)", low=1, optional=True, recipe=False
    )
    log_every: int = _opt(10, "int", "write the training loss to metrics.jsonl every this many steps", low=1, recipe=False)
    progress: bool = _opt(True, "bool", "show tqdm progress bars", recipe=False)

    # -- construction --------------------------------------------------------
    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None = None, **changes: Any) -> "TrainSettings":
        """Validated settings; ``None`` values mean the default (except where a field allows null).

        Raises :class:`ConfigError` (one line, naming the option) for unknown
        keys, wrong types, non-finite numbers, values out of range and
        combinations that cannot work.
        """
        merged = {**dict(options or {}), **changes}
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(merged) - set(known))
        if unknown:
            hint = _closest(unknown[0], known)
            raise ConfigError(
                f"unknown training option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )
        kwargs = {}
        for name, value in merged.items():
            f = known[name]
            if value is None and not f.metadata["optional"]:
                continue  # the default
            kwargs[name] = _coerce(name, value, f.metadata)
        settings = cls(**kwargs)
        settings._check_combinations()
        return settings

    def _check_combinations(self) -> None:
        if self.datalist is None:
            raise ConfigError(
                "datalist: a training datalist is required (a MONAI datalist JSON with 'training' and "
                "'validation' lists of rows with an image path and a report)"
            )
        if self.output_dir is None:
            raise ConfigError("output_dir: a run folder is required (checkpoints, samples, metrics and the model)")
        if self.cache_latents and self.latent_sampling != "mode":
            raise ConfigError(
                "cache_latents: a cached latent cannot be re-sampled; set latent_sampling to 'mode' or turn "
                "cache_latents off"
            )
        if self.stage == "vae" and self.unet_config is not None:
            raise ConfigError("unet_config: the VAE stage does not train the UNet (give vae_config, or stage 'unet')")
        if self.stage == "unet" and self.vae_config is not None:
            raise ConfigError("vae_config: the UNet stage keeps the model's VAE (give unet_config, or stage 'vae')")
        if self.resume not in ("auto", "never") and not Path(self.resume).expanduser().is_dir():
            raise ConfigError(f"resume: {self.resume!r} is neither 'auto', 'never' nor a checkpoint folder")
        if self.validation_split is not None and self.validation_split == self.train_split:
            raise ConfigError(f"validation_split: the validation list must differ from the training list ({self.train_split!r})")

    # -- views ---------------------------------------------------------------
    def _used_fields(self) -> list[Any]:
        # The other stage's options change nothing in this one.
        return [f for f in fields(self) if f.metadata["stage"] in (None, self.stage)]

    def _recipe_fields(self) -> list[Any]:
        # Per-process batch size and accumulation are replaced by the global batch they make.
        return [
            f for f in self._used_fields()
            if f.metadata["recipe"] and f.name not in ("batch_size", "gradient_accumulation_steps")
        ]  # fmt: skip

    def recipe_defaults(self) -> dict[str, Any]:
        """Each recipe option's default, as :meth:`recipe` writes values (resuming a checkpoint
        written before an option existed compares it as its default)."""
        return _as_read_back({
            f.name: f.default if f.default is not MISSING else f.default_factory()
            for f in self._recipe_fields() if f.default is not MISSING or f.default_factory is not MISSING
        })  # fmt: skip

    def recipe(self) -> dict[str, Any]:
        """The options that decide the trained weights (compared on resume): those of
        every stage and this stage's own.

        Per-process batch size and accumulation are replaced by the global
        batch they make, so a run may resume on another number of ranks.
        """
        return _as_read_back({f.name: getattr(self, f.name) for f in self._recipe_fields()})

    def to_dict(self) -> dict[str, Any]:
        """Every option this stage uses (the other stage's options are left out), as given."""
        used = {f.name for f in self._used_fields()}
        data = {k: v for k, v in asdict(self).items() if k in used}
        if callable(self.fid_feature_extractor):
            data["fid_feature_extractor"] = repr(self.fid_feature_extractor)
        return data


# -- validation helpers --------------------------------------------------------
def _as_read_back(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as they read back from a checkpoint's JSON (tuples become lists)."""
    return json.loads(json.dumps(values, default=repr))


def _closest(name: str, known: Mapping[str, Any]) -> str | None:
    import difflib  # noqa: PLC0415

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return match[0] if match else None


def _check_range(name: str, value: float, meta: Mapping[str, Any], integer: bool) -> None:
    problem = range_problem(
        value, meta["low"], meta["high"], low_open=meta["low_open"], high_open=meta["high_open"], integer=integer
    )
    if problem is not None:
        raise ConfigError(f"{name}: {problem}")


def _coerce(name: str, value: Any, meta: Mapping[str, Any]) -> Any:
    """One option's value, parsed and checked as the settings layer does for every front end
    (:func:`radedit_core.settings.coerce`, :func:`range_problem`, :func:`choice_problem`), plus the kinds
    only training has (paths, model configs, feature extractors)."""
    kind = meta["kind"]
    if value is None:
        return None
    if meta["optional"] and isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
        return None
    if kind in ("int", "float", "bool"):
        out = coerce(name, value, kind)
        if kind != "bool":
            _check_range(name, out, meta, integer=kind == "int")
        return out
    if kind in ("str", "path"):
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        text = str(value).strip()
        if not text:
            raise ConfigError(f"{name}: expected a non-empty string")
        if meta["choices"] is not None and choice_problem(text, meta["choices"]):
            raise ConfigError(f"{name}: {choice_problem(text, meta['choices'])}")
        return str(Path(text).expanduser().resolve()) if kind == "path" else text
    if kind == "strs":
        items = coerce(name, value, "strs")
        if not items:
            raise ConfigError(f"{name}: expected at least one string (an empty list was given)")
        return items
    if kind == "config":
        return _coerce_config(name, value)
    if kind == "extractor":
        if callable(value):
            return value
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise ConfigError(f"{name}: expected a TorchScript file or a callable, got {value!r}")
        path = Path(str(value).strip()).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{name}: {path} is not a file (a TorchScript feature extractor saved by torch.jit.save)")
        return str(path)
    raise ValueError(f"unknown settings kind {kind!r}")


def _coerce_config(name: str, value: Any) -> Any:
    """'tiny', a config.json path (or its folder) or a mapping; the file must exist and be JSON."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"{name}: expected 'tiny', a config.json path or a mapping, got {value!r}")
    text = str(value).strip()
    if text == "tiny":
        return text
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"{name}: {path} does not exist (expected 'tiny', a config.json or its folder)")
    return str(path)


def option_fields() -> list[Any]:
    """The dataclass fields with their metadata, for the argparse helper."""
    return list(fields(TrainSettings))
