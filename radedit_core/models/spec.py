"""Where each model component comes from: one :class:`ModelSpec`.

A spec names, per component, a Hugging Face hub id or a local folder, with a
subfolder and a revision.  It can be written as a small JSON/YAML file::

    {
      "name": "radedit",
      "unet": {"source": "microsoft/radedit", "subfolder": "unet", "revision": "<sha>"},
      "vae": {"source": "stabilityai/sdxl-vae", "revision": "<sha>"},
      "text_encoder": {"source": "microsoft/BiomedVLP-BioViL-T", "revision": "<sha>",
                       "trust_remote_code": true},
      "tokenizer": {"source": "microsoft/BiomedVLP-BioViL-T", "revision": "<sha>",
                    "trust_remote_code": true},
      "scheduler": {"beta_schedule": "linear", ...},
      "text": {"max_length": 128, "pass_attention_mask": false}
    }

or given as a folder with the diffusers layout (``unet/``, ``vae/``,
``text_encoder/``, ``tokenizer/`` and optionally ``scheduler/``), with or
without a ``radedit_model.json`` in it.  Relative ``source`` paths in a spec
file are resolved against the file's folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..settings import coerce
from .catalog import (  # re-exported: callers read the named models' facts from the spec module too
    BIOVIL_T_REVISION,
    RADEDIT_REVISION,
    RADEDIT_SCHEDULER,
    SDXL_VAE_REVISION,
    DEMO_MODEL_DIR,
    SPEC_FILENAME,
    demo_model_dir,
    tiny_random_dir,
)
from .tiny import ensure_tiny_model
from ..yamlio import load_json, load_yaml

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer")

_SHA = re.compile(r"^[0-9a-f]{40}$")

#: DDIMScheduler settings the step maths honour, with the values they accept
#: (None: any value of the right kind).  ``clip_sample`` and ``thresholding``
#: change x0 predictions and ``rescale_betas_zero_snr`` makes abar_T = 0: each
#: breaks exact inversion, so only their off value is accepted.  Keys of other
#: schedulers' saved configs that the DDIM step never reads are accepted too.
SCHEDULER_SETTINGS: dict[str, tuple | None] = {
    "num_train_timesteps": None,
    "beta_start": None,
    "beta_end": None,
    "beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    "trained_betas": None,
    "clip_sample": (False,),
    "set_alpha_to_one": None,
    "steps_offset": None,
    "prediction_type": ("epsilon", "v_prediction", "sample"),
    "thresholding": (False,),
    "dynamic_thresholding_ratio": None,
    "clip_sample_range": None,
    "sample_max_value": None,
    "timestep_spacing": ("trailing", "leading", "linspace"),
    "rescale_betas_zero_snr": (False,),
    # DDPMScheduler/EulerDiscreteScheduler keys the DDIM step does not use
    "variance_type": None,
    "interpolation_type": None,
    "use_karras_sigmas": (False,),
    "timestep_type": None,
}


def check_scheduler(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The scheduler settings of a spec, checked; keys starting with ``_`` (class, version) are kept.

    Raises:
        ConfigError: for an unknown key (a misspelling would otherwise be
            ignored) or a value the step maths cannot honour, listing what is
            supported.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: 'scheduler' must be a mapping of DDIMScheduler settings")
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if key not in SCHEDULER_SETTINGS:
            raise ConfigError(
                f"{where}: unknown scheduler setting {key!r}; supported: {', '.join(SCHEDULER_SETTINGS)}"
            )
        allowed = SCHEDULER_SETTINGS[key]
        if allowed is not None and value not in allowed:
            reason = "it breaks exact inversion" if allowed == (False,) else "the step maths do not implement it"
            shown = ", ".join(map(str, allowed))
            raise ConfigError(f"{where}: scheduler {key}={value!r} is not supported ({reason}); use {shown}")
    return dict(config)


def check_text_settings(text: Any, where: str) -> "TextSettings":
    """``text`` of a spec: ``max_length`` an integer >= 1, ``pass_attention_mask`` a boolean (parsed strictly)."""
    if not isinstance(text, dict):
        raise ConfigError(f"{where}: 'text' must be a mapping (max_length, pass_attention_mask)")
    unknown = sorted(set(text) - {"max_length", "pass_attention_mask"})
    if unknown:
        raise ConfigError(f"{where}: unknown text settings {unknown}; known: max_length, pass_attention_mask")
    max_length = coerce("text.max_length", text.get("max_length", 128), "int")
    if max_length < 1:
        raise ConfigError(f"{where}: text.max_length must be >= 1 tokens, got {max_length}")
    mask = coerce("text.pass_attention_mask", text.get("pass_attention_mask", False), "bool")
    return TextSettings(max_length, mask)


@dataclass(frozen=True)
class ComponentSource:
    """One component: ``source`` is a hub id ("org/name") or a local folder."""

    source: str
    subfolder: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    #: Weights file variant (``fp16`` for ``*.fp16.safetensors``), as diffusers/transformers name it.
    variant: str | None = None

    @property
    def path(self) -> Path:
        """The component's own folder (local components)."""
        base = Path(self.source).expanduser()
        return base / self.subfolder if self.subfolder else base

    @property
    def is_local(self) -> bool:
        path = Path(self.source).expanduser()
        return path.is_absolute() or path.exists()

    @property
    def is_pinned(self) -> bool:
        return self.revision is not None and (bool(_SHA.match(self.revision)) or self.revision.startswith("v"))

    def describe(self) -> str:
        where = self.source + (f"/{self.subfolder}" if self.subfolder else "")
        if self.is_local:
            return f"local folder {where}"
        return f"hub repository {where} at revision {self.revision or 'main (unpinned)'}"


_WEIGHT_FILES = ("diffusion_pytorch_model", "model")


def _with_local_facts(comp: ComponentSource) -> ComponentSource:
    """What a local component's files say: remote code (``auto_map``) and fp16-only weights.

    A component that ships its own modelling code (BioViL-T's CXR-BERT) has an
    ``auto_map`` in its config; it is marked so that loading asks for
    ``--trust-remote-code`` instead of failing inside transformers.  A folder
    whose only weights are ``*.fp16.*`` files gets ``variant="fp16"``.
    """
    folder = comp.path
    changes: dict[str, Any] = {}
    for name in ("config.json", "tokenizer_config.json"):
        try:
            config = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("auto_map"):
            changes["trust_remote_code"] = True
    if comp.variant is None and folder.is_dir():
        files = {p.name for p in folder.iterdir()}
        plain = any(f"{stem}.{ext}" in files for stem in _WEIGHT_FILES for ext in ("safetensors", "bin"))
        variants = {
            name.split(".")[-2]
            for name in files
            if name.count(".") >= 2 and name.split(".")[0] in _WEIGHT_FILES and name.endswith((".safetensors", ".bin"))
        }
        if not plain and len(variants) == 1:
            changes["variant"] = variants.pop()
    return replace(comp, **changes) if changes else comp


@dataclass(frozen=True)
class TextSettings:
    """How prompts become UNet conditioning.

    ``pass_attention_mask``: whether the tokenizer's attention mask is given to
    the text encoder.  The model card builds a StableDiffusionPipeline, which
    passes it only when the encoder config sets ``use_attention_mask``; BioViL-T
    does not, so the default is False (padding tokens attend and are attended).
    """

    max_length: int = 128
    pass_attention_mask: bool = False


@dataclass(frozen=True)
class ModelSpec:
    name: str
    unet: ComponentSource
    vae: ComponentSource
    text_encoder: ComponentSource
    tokenizer: ComponentSource
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(RADEDIT_SCHEDULER))
    text: TextSettings = field(default_factory=TextSettings)

    # -- construction ------------------------------------------------------
    @classmethod
    def radedit(cls) -> "ModelSpec":
        """The published RadEdit components (model card), revisions pinned."""
        biovil = ComponentSource("microsoft/BiomedVLP-BioViL-T", None, BIOVIL_T_REVISION, True)
        return cls(
            name="radedit",
            unet=ComponentSource("microsoft/radedit", "unet", RADEDIT_REVISION),
            vae=ComponentSource("stabilityai/sdxl-vae", None, SDXL_VAE_REVISION),
            text_encoder=biovil,
            tokenizer=biovil,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> "ModelSpec":
        unknown = set(data) - {"name", "scheduler", "text", *COMPONENTS}
        if unknown:
            raise ConfigError(f"model spec: unknown keys {sorted(unknown)}")
        missing = [c for c in COMPONENTS if c not in data]
        if missing:
            raise ConfigError(f"model spec: missing components {missing}")

        def component(key: str) -> ComponentSource:
            entry = data[key]
            if isinstance(entry, str):
                entry = {"source": entry}
            if not isinstance(entry, dict) or "source" not in entry:
                raise ConfigError(f"model spec: '{key}' needs a 'source' (hub id or folder)")
            bad = set(entry) - {"source", "subfolder", "revision", "trust_remote_code", "variant"}
            if bad:
                raise ConfigError(f"model spec: '{key}' has unknown keys {sorted(bad)}")
            source = str(entry["source"])
            if base is not None and not Path(source).expanduser().is_absolute():
                candidate = base / source
                if source.startswith(("./", "../")) or candidate.exists():
                    source = str(candidate.resolve())

            found = ComponentSource(
                source=source,
                subfolder=entry.get("subfolder"),
                revision=entry.get("revision"),
                trust_remote_code=coerce(f"{key}.trust_remote_code", entry.get("trust_remote_code", False), "bool"),
                variant=entry.get("variant"),
            )
            return _with_local_facts(found) if found.is_local else found

        text_settings = check_text_settings(data.get("text", {}), "model spec")
        scheduler = check_scheduler(data.get("scheduler", RADEDIT_SCHEDULER), "model spec")
        return cls(
            name=str(data.get("name", "custom")),
            unet=component("unet"),
            vae=component("vae"),
            text_encoder=component("text_encoder"),
            tokenizer=component("tokenizer"),
            scheduler=dict(scheduler),
            text=text_settings,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "ModelSpec":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read model spec ({exc.strerror})") from exc
        try:
            data = load_json(text, path) if path.suffix == ".json" else load_yaml(text, path)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: model spec is not valid JSON/YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: model spec must be a mapping")
        return cls.from_dict(data, base=path.parent.resolve())

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ModelSpec":
        folder = Path(folder).expanduser().resolve()
        spec_file = folder / SPEC_FILENAME
        if spec_file.exists():
            return cls.from_file(spec_file)
        absent = [c for c in COMPONENTS if not (folder / c).is_dir()]
        if absent:
            raise ConfigError(
                f"{folder}: not a RadEdit model folder: no {SPEC_FILENAME} and missing "
                f"subfolders {absent} (expected unet/, vae/, text_encoder/, tokenizer/)"
            )
        scheduler: dict[str, Any] = dict(RADEDIT_SCHEDULER)
        scheduler_file = folder / "scheduler" / "scheduler_config.json"
        if scheduler_file.exists():
            try:
                scheduler = json.loads(scheduler_file.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{scheduler_file}: not a readable scheduler config ({exc})") from exc
        parts = {c: _with_local_facts(ComponentSource(str(folder), c)) for c in COMPONENTS}
        return cls(name=folder.name, scheduler=check_scheduler(scheduler, str(scheduler_file)), **parts)

    @classmethod
    def resolve(cls, model: "str | Path | ModelSpec | None") -> "ModelSpec":
        """``radedit`` / ``tiny`` / ``tiny-random`` / a spec file / a model folder -> spec.

        ``tiny`` is the bundled demo model (the tiny architecture trained on
        the phantom world); ``tiny-random`` its seeded random initialisation.
        """
        if isinstance(model, ModelSpec):
            return model
        if model is None or str(model) == "radedit":
            return cls.radedit()
        if str(model) == "tiny":
            return cls.from_folder(demo_model_dir())
        if str(model) == "tiny-random":
            return cls.from_folder(ensure_tiny_model())
        path = Path(model).expanduser()
        if path.is_file():
            return cls.from_file(path)
        if path.is_dir():
            return cls.from_folder(path)
        raise ConfigError(
            f"{model}: model not found; use 'radedit' (published weights), 'tiny' "
            "(bundled offline demo model), a model folder or a spec file (.json/.yaml)"
        )

    def with_text(self, **changes: Any) -> "ModelSpec":
        return replace(self, text=replace(self.text, **changes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_files(model: "str | Path | ModelSpec | None") -> list[Path]:
    """The files and folders on this machine that a model option reads, for the output checks
    (:func:`radedit_core.fileio.check_outputs_apart`): a spec file, a model folder (every file in it
    counts) and the local component folders a spec names; nothing for hub components.

    Writes and downloads nothing (``tiny-random`` not yet written has no files); a spec that cannot
    be read gives just its own path (loading the model reports it).
    """
    if isinstance(model, ModelSpec):
        spec, found = model, []
    else:
        text = "radedit" if model is None else str(model)
        if text == "radedit":
            return []
        path = {"tiny": DEMO_MODEL_DIR, "tiny-random": tiny_random_dir()}.get(text, Path(text).expanduser())
        if not path.exists():
            return []
        found = [path]
        try:
            spec = ModelSpec.from_file(path) if path.is_file() else ModelSpec.from_folder(path)
        except ConfigError:
            return found
    for comp in (spec.unet, spec.vae, spec.text_encoder, spec.tokenizer):
        if comp.is_local and comp.path.exists() and comp.path not in found:
            found.append(comp.path)
    return found
