"""One settings layer: every option of every front end is parsed, checked and defaulted here.

The CLI (an argparse namespace), the MONAI bundle (its config ids and
datalist columns), the worker that the 3D Slicer module drives (a JSON job)
and ``radedit pacs-edit`` hand their options to the functions of this module
before any model is loaded or any output is created.  So a value is accepted,
refused or defaulted the same way whichever front end it came through, and
the error names the option as that front end spells it (``--guidance``,
``guidance``, ``settings.weights``, ``row 3: guidance``).

* :class:`EditSettings`: what decides an edit besides the image, the masks
  and the model (paper Sec. 4; docs/method.md, "What exactly is computed").
* :class:`GenerateSettings`: text-to-image sampling (model card: 100 DDIM
  steps, guidance 7.5).
* :class:`ModelOptions`: which model and how it runs (device, precision).

The defaults are defined once, here (:data:`EDIT_DEFAULTS`,
:data:`GENERATE_DEFAULTS`, :data:`MODEL_DEFAULTS`); front ends leave an option
unset (``None``) to get them.  Every error is a :class:`ConfigError` (exit
code 2) whose message starts with the option's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

from .errors import ConfigError

# -- defaults (the one place they are written) -----------------------------------------

#: Guidance weight inside the edit mask (paper Sec. 4, following DDPM inversion).
DEFAULT_GUIDANCE = 15.0
#: Guidance of the inversion when an invert prompt is given: the DDPM inversion
#: authors' source-prompt default.
DEFAULT_INVERT_GUIDANCE = 3.5
#: How an edit is composited onto the source (docs/method.md, "What exactly is computed", step 5;
#: :mod:`radedit_core.imaging.compositing`): where the source's own full-resolution detail gives
#: way to the model's image.  ``unchanged`` (default): kept wherever the edit did not change the
#: image; ``outside-edit``: kept outside the edit mask only; ``everywhere``: kept everywhere (the
#: change alone is added); ``decoded``: nowhere, the released pipeline's plain decoded image.
DETAIL_MODES = ("unchanged", "outside-edit", "everywhere", "decoded")
DEFAULT_DETAIL = "unchanged"
#: What each detail mode means, in the words every front end's help shows (one vocabulary).
DETAIL_HELP = (
    "where the source's own full-resolution detail is kept when compositing the edit: unchanged "
    "(wherever the edit did not change the image), outside-edit (outside the edit mask), everywhere (the "
    "change alone is added), decoded (nowhere: the released pipeline's plain decoded image, for comparison)"
)
#: What of the dilated keep mask is kept where it overlaps the edit mask
#: (:func:`radedit_core.imaging.masks.device_keep`).  ``device``: only the device, the pixels that
#: differ from the background around them (and, in the latent paste, only the latent cells at least
#: half device), so the dilation that protects a device's border keeps no band of the finding beside
#: it; ``mask`` (default): the whole dilated keep mask and every latent cell it touches (the paper's
#: rule).  ``mask`` stays the default while the demo model overshoots without the pinned band: on the
#: sample study at 50 steps ``device`` leaves the pneumothorax region 183 stored values brighter than
#: the true counterfactual on average, ``mask`` 62 (benchmarks/keep_scope_gap.py).
KEEP_SCOPES = ("device", "mask")
DEFAULT_KEEP_SCOPE = "mask"
#: Model card's text-to-image settings.
DEFAULT_GENERATE_STEPS = 100
DEFAULT_GENERATE_GUIDANCE = 7.5

#: Prompts of the paper (Sec. 5, App. 0.G), offered as presets by the front ends.
PAPER_PROMPTS = {
    "normal": "No acute cardiopulmonary process",
    "edema": "Moderate pulmonary edema. The heart size is normal",
    "pacemaker": (
        "Left pectoral pacemaker in place. The position of the leads is as expected. "
        "Otherwise unremarkable chest radiographic examination"
    ),
    "consolidation-left": "New left upper lobe consolidation",
    "consolidation-right": "New right upper lobe consolidation",
    "no-pneumothorax": "No pneumothorax",
}

# -- ranges --------------------------------------------------------------------------

#: Diffusion steps: at least one, at most the 1000 training timesteps of the
#: model card's scheduler (a model with fewer is checked when it loads).
MAX_STEPS = 1000
#: Largest |guidance| accepted: far above any useful value (the paper uses 15,
#: sweeps go to ~20), low enough that float32 guidance cannot overflow.
MAX_GUIDANCE = 100.0
#: Seeds seed ``torch.Generator.manual_seed``, which takes 64-bit integers.
MAX_SEED = 2**63 - 1
MAX_DILATE_PX = 256
MAX_INVERSION_BATCH = 4096
MAX_IMAGES = 10_000
#: Images edited in one pipeline pass: far above what pays (16 fill a GPU's step calls).
MAX_BATCH_SIZE = 256

_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "floats": "a number or a list of numbers",
    "str": "a string",
    "strs": "a string or a list of strings",
    "bool": "true or false",
}

Namer = Callable[[str], str]


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` as ``kind`` (int, float, floats, str, strs, bool) or a ConfigError naming ``name``.

    Values come from config files, job files and command lines, where ``"10"``
    and ``10``, ``"false"`` and ``False`` both occur; booleans are parsed
    strictly (``"false"`` is False, ``"maybe"`` is an error).
    """
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "floats":
            if isinstance(value, (list, tuple)):
                return [coerce(name, v, "float") for v in value]
            if isinstance(value, str) and ";" in value:
                return [coerce(name, v, "float") for v in value.split(";")]
            return coerce(name, value, "float")
        if kind == "str":
            if isinstance(value, (list, tuple, dict)):
                raise ValueError
            return str(value)
        if kind == "strs":
            if isinstance(value, (list, tuple)):
                return [coerce(name, v, "str") for v in value]
            return [coerce(name, value, "str")]
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "y", "on"):
                return True
            if text in ("false", "no", "0", "n", "off", ""):
                return False
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name}: expected {_EXPECTED[kind]}, got {value!r}") from None
    raise ValueError(f"unknown kind {kind}")


# -- checks ----------------------------------------------------------------------------


def range_problem(
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> str | None:
    """Why ``value`` is not a finite number (an integer) within the bounds, in words; None when it is.

    Every range check of every settings class words its problem this way.
    """
    ok = math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if ok:
        return None
    what = "an integer" if integer else "a finite number"

    def shown(bound: float) -> str:
        return str(int(bound)) if integer or float(bound).is_integer() and abs(bound) >= 1e6 else f"{bound:g}"

    lo, hi = (None if b is None else shown(b) for b in (low, high))
    if lo is not None and hi is not None:
        if integer and not low_open and not high_open:
            return f"must be an integer from {lo} to {hi}, got {value!r}"
        return f"must be {what} in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}, got {value!r}"
    if lo is not None:
        return f"must be {what} {'>' if low_open else '>='} {lo}, got {value!r}"
    if hi is not None:
        return f"must be {what} {'<' if high_open else '<='} {hi}, got {value!r}"
    return f"must be {what}, got {value!r}"


def _number(lo: float, hi: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[Any], str | None]:
    return lambda value: range_problem(value, lo, hi, low_open=low_open, high_open=high_open)


def _integer(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda value: range_problem(value, lo, hi, integer=True)


def choice_problem(value: str, options) -> str | None:
    """Why ``value`` is not one of ``options``, in words; None when it is."""
    return None if value in options else f"must be one of {', '.join(map(str, options))}, got {value!r}"


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda value: choice_problem(value, options)


def _each(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def each(values: list) -> str | None:
        for value in values:
            problem = check(value)
            if problem is not None:
                return problem
        return None

    return each


def _edit_prompts(prompts: list[str]) -> str | None:
    if not prompts:
        return "an edit needs a prompt (none was given)"
    for prompt in prompts:
        if not prompt.strip():
            # "" is the unconditional prompt: guidance towards it is zero and
            # the "edit" would only reconstruct the image.
            return (
                "is empty; the empty prompt is the unconditional one, so the edit would only reconstruct "
                "the image: give the text the edited image should match"
            )
    return None


def _generate_prompts(prompts: list[str]) -> str | None:
    return None if prompts else "generation needs at least one prompt"


@dataclass(frozen=True)
class _Spec:
    kind: str
    check: Callable[[Any], str | None] | None = None
    optional: bool = False  # None is a legal value (an automatic choice)


def _validate(values: dict[str, Any], specs: Mapping[str, _Spec], name: Namer) -> dict[str, Any]:
    """Coerce and range-check every given value; the first problem is a ConfigError naming its option."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = specs[key]
        if value is None and spec.optional:
            out[key] = None
            continue
        value = coerce(name(key), value, spec.kind)
        if spec.kind == "floats" and not isinstance(value, list):
            value = [value]
        if spec.check is not None:
            problem = spec.check(value)
            if problem is not None:
                raise ConfigError(f"{name(key)}: {problem}")
        out[key] = value
    return out


def _unknown(given: Mapping[str, Any], known: Mapping[str, Any], name: Namer, what: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        shown = ", ".join(name(k) for k in unknown)
        raise ConfigError(f"unknown {what} {shown}; known: {', '.join(name(k) for k in sorted(known))}")


def _plain(key: str) -> str:
    return key


# -- edit settings -------------------------------------------------------------------------

EDIT_SPECS: dict[str, _Spec] = {
    "prompts": _Spec("strs", _edit_prompts),
    "weights": _Spec("floats", _each(_number(-MAX_GUIDANCE, MAX_GUIDANCE))),
    "steps": _Spec("int", _integer(1, MAX_STEPS)),
    "skip_ratio": _Spec("float", _number(0.0, 1.0, high_open=True)),
    "invert_prompt": _Spec("str"),
    "invert_guidance": _Spec("float", _number(-MAX_GUIDANCE, MAX_GUIDANCE)),
    "eta": _Spec("float", _number(0.0, 1.0, low_open=True)),
    "seed": _Spec("int", _integer(0, MAX_SEED)),
    "inversion": _Spec("str", _choice("ddpm", "ddim")),
    "keep_mode": _Spec("str", _choice("pixel", "latent")),
    "dilate": _Spec("int", _integer(0, MAX_DILATE_PX)),
    "keep_scope": _Spec("str", _choice(*KEEP_SCOPES)),
    "soft_masks": _Spec("bool"),
    "detail": _Spec("str", _choice(*DETAIL_MODES)),
    "reference_compat": _Spec("bool"),
    "latent_sampling": _Spec("str", _choice("mode", "sample")),
    "inversion_batch_size": _Spec("int", _integer(1, MAX_INVERSION_BATCH), optional=True),
    "batch_conditions": _Spec("bool"),
    "jpeg_quality": _Spec("int", _integer(1, 100), optional=True),
}


@dataclass
class EditSettings:
    """Everything that decides an edit besides the image, the masks and the model.

    ``prompts``/``weights``: edit prompt(s) and their guidance weights (one per
    prompt; default :data:`DEFAULT_GUIDANCE`). ``steps`` T and ``skip_ratio``
    (the first ``int(T * skip_ratio)`` steps are skipped). ``invert_prompt``
    ("" = unconditional inversion, the paper's setting) with
    ``invert_guidance``. ``eta`` in (0, 1] (1 = edit-friendly DDPM inversion).
    ``seed`` in [0, 2^63 - 1]. ``inversion`` ``ddpm`` or ``ddim`` (the paper's
    ablation). ``keep_mode``: ``pixel`` (default: kept regions are copied from
    the source, bit for bit) or ``latent`` (the paper's latent paste only).
    ``dilate``: both masks are dilated by this many pixels (paper: 5).
    ``keep_scope``: ``mask`` (default, the paper's rule) keeps the whole
    dilated keep mask; ``device`` keeps, where the keep mask overlaps the
    edit mask, only the device's pixels (:data:`KEEP_SCOPES`).
    ``detail``: where the source's full-resolution detail is kept when mapping
    back (:data:`DETAIL_MODES`). ``reference_compat``: reproduce the released pipeline's quirks.
    ``latent_sampling``: VAE posterior ``mode`` or a seeded ``sample``.
    ``inversion_batch_size``: at most this many timesteps per UNet call while
    inverting (None: on GPU all in one call up to 256 samples, 8 on CPU, 1 for a
    null edit so that it is bit for bit). ``batch_conditions``: unconditional
    and conditional predictions in one UNet call. ``jpeg_quality``: 1 to 100,
    the quality of a JPEG output (required for one: JPEG is lossy; None
    otherwise).

    Raises:
        ConfigError: for any value of the wrong type or out of range, naming it.
    """

    prompts: list[str]
    weights: list[float] | None = None
    steps: int = 200
    skip_ratio: float = 0.3
    invert_prompt: str = ""
    invert_guidance: float = DEFAULT_INVERT_GUIDANCE
    eta: float = 1.0
    seed: int = 0
    inversion: str = "ddpm"
    keep_mode: str = "pixel"
    dilate: int = 5
    keep_scope: str = DEFAULT_KEEP_SCOPE
    soft_masks: bool = False
    detail: str = DEFAULT_DETAIL
    reference_compat: bool = False
    latent_sampling: str = "mode"
    inversion_batch_size: int | None = None
    batch_conditions: bool = True
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        _normalise_edit(self, _plain)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def batch_key(self) -> tuple:
        """The settings that edits sharing one pipeline pass (a batch) must have in common.

        Everything that shapes the pass itself: steps, skip ratio, eta, the
        inversion (method, prompt, guidance, chunking), the call layout, the
        latent sampling, the mask rule and the reference quirks.  Prompts,
        weights, seed, masks, dilation, keep mode and scope and detail are each
        image's own.
        """
        return tuple(getattr(self, key) for key in BATCH_KEYS)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], name: Namer = _plain) -> "EditSettings":
        """Settings from a front end's mapping of field names to (possibly textual) values.

        ``None`` means the default; ``prompt``/``guidance`` are accepted for
        ``prompts``/``weights``; ``name`` spells a field as the front end does
        (for the error messages).
        """
        given = dict(values)
        for short, long in (("prompt", "prompts"), ("guidance", "weights")):
            if short in given:
                value = given.pop(short)
                if given.get(long) is None:
                    given[long] = value
        _unknown(given, EDIT_SPECS, name, "edit settings")
        given = {k: v for k, v in given.items() if v is not None}
        if "prompts" not in given:
            raise ConfigError(f"{name('prompts')}: an edit needs a prompt (none was given)")
        checked = _validate(given, EDIT_SPECS, name)
        settings = cls.__new__(cls)
        for f in fields(cls):
            setattr(settings, f.name, checked.get(f.name, _default(f)))
        _normalise_edit(settings, name)
        return settings


def _default(f) -> Any:
    return f.default_factory() if callable(getattr(f, "default_factory", None)) else f.default


def _normalise_edit(settings: EditSettings, name: Namer) -> None:
    if isinstance(settings.prompts, str):
        settings.prompts = [settings.prompts]
    weights = settings.weights
    if weights is None:
        weights = [DEFAULT_GUIDANCE]
    elif isinstance(weights, (int, float, str)):
        weights = [weights]
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values["weights"] = list(weights)
    checked = _validate(values, EDIT_SPECS, name)
    if len(checked["weights"]) == 1:
        checked["weights"] = checked["weights"] * len(checked["prompts"])
    if len(checked["weights"]) != len(checked["prompts"]):
        raise ConfigError(
            f"{name('weights')}: {len(checked['prompts'])} prompts but {len(checked['weights'])} guidance "
            "weights; give one weight for all prompts or one per prompt"
        )
    for key, value in checked.items():
        object.__setattr__(settings, key, value)


#: :meth:`EditSettings.batch_key`'s fields.
BATCH_KEYS = (
    "steps", "skip_ratio", "eta", "inversion", "invert_prompt", "invert_guidance", "inversion_batch_size",
    "batch_conditions", "latent_sampling", "soft_masks", "reference_compat",
)  # fmt: skip

#: The defaults every front end shares (an edit with one placeholder prompt).
EDIT_DEFAULTS = EditSettings(prompts=["-"])


# -- batch run options -----------------------------------------------------------------------


def _batch_size(value: Any) -> str | None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BATCH_SIZE)
    return None if ok else (
        f"must be auto or an integer from 1 to {MAX_BATCH_SIZE}, got {value!r}"
    )


@dataclass(frozen=True)
class BatchOptions:
    """How a batch run groups its edits.

    ``batch_size``: images edited in one pipeline pass (each reverse step one
    UNet call on (1 + P) * batch_size samples), or ``auto``: 1 on the CPU
    (batching saves nothing there) and on a GPU as many as the free memory
    holds, up to 16 (:func:`radedit_core.batch.sizing.auto_batch_size`).
    Edits are grouped by :meth:`EditSettings.batch_key` and prompt count;
    batching changes float rounding only.

    Raises:
        ConfigError: naming the option, for anything but ``auto`` or 1..MAX_BATCH_SIZE.
    """

    batch_size: int | str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", _parse_batch_size(self.batch_size, "batch_size"))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], name: Namer = _plain) -> "BatchOptions":
        _unknown(values, {"batch_size": None}, name, "batch options")
        value = values.get("batch_size")
        return cls(_parse_batch_size(value, name("batch_size")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_batch_size(value: Any, label: str) -> int | str:
    if is_missing(value) or (isinstance(value, str) and value.strip().lower() == "auto"):
        return "auto"
    try:
        number = coerce(label, value, "int")
    except ConfigError:
        number = value
    problem = _batch_size(number)
    if problem is not None:
        raise ConfigError(f"{label}: {problem}")
    return number


BATCH_DEFAULTS = BatchOptions()


# -- generation settings ---------------------------------------------------------------------

GENERATE_SPECS: dict[str, _Spec] = {
    "prompts": _Spec("strs", _generate_prompts),
    "steps": _Spec("int", _integer(1, MAX_STEPS)),
    "guidance": _Spec("float", _number(-MAX_GUIDANCE, MAX_GUIDANCE)),
    "seed": _Spec("int", _integer(0, MAX_SEED)),
    "negative_prompt": _Spec("str"),
    "num_images": _Spec("int", _integer(1, MAX_IMAGES)),
    "bits": _Spec("int", lambda v: None if v in (8, 16) else f"must be 8 or 16, got {v}"),
}


@dataclass
class GenerateSettings:
    """Text-to-image sampling: DDIM (eta 0) with classifier-free guidance (model card).

    ``prompts`` (an empty prompt samples unconditionally), ``steps``,
    ``guidance``, ``seed`` (image j of a prompt uses ``seed + j``),
    ``negative_prompt`` (the unconditional branch), ``num_images`` per prompt
    and the PNG ``bits`` (8 or 16).
    """

    prompts: list[str] = field(default_factory=list)
    steps: int = DEFAULT_GENERATE_STEPS
    guidance: float = DEFAULT_GENERATE_GUIDANCE
    seed: int = 0
    negative_prompt: str = ""
    num_images: int = 1
    bits: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.prompts, str):
            self.prompts = [self.prompts]
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in _validate(values, GENERATE_SPECS, _plain).items():
            setattr(self, key, value)
        if self.seed + self.num_images - 1 > MAX_SEED:
            raise ConfigError(f"seed: seed + num_images - 1 must stay <= {MAX_SEED}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], name: Namer = _plain) -> "GenerateSettings":
        given = dict(values)
        if "prompt" in given:
            value = given.pop("prompt")
            if given.get("prompts") is None:
                given["prompts"] = value
        _unknown(given, GENERATE_SPECS, name, "generation settings")
        given = {k: v for k, v in given.items() if v is not None}
        checked = _validate(given, GENERATE_SPECS, name)
        try:
            return cls(**checked)
        except ConfigError as exc:
            # A cross-field problem: name the option as the front end does.
            raise ConfigError(str(exc).replace("seed:", f"{name('seed')}:", 1)) from None


GENERATE_DEFAULTS = GenerateSettings(prompts=["-"])


# -- model options ---------------------------------------------------------------------------

_DTYPES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

MODEL_SPECS: dict[str, _Spec] = {
    "model": _Spec("str", lambda v: None if v.strip() else "give 'radedit', 'tiny', a model folder or a spec file"),
    "device": _Spec("str", lambda v: None if _DEVICE.match(v) else f"must be auto, cpu, cuda or cuda:N, got {v!r}"),
    "dtype": _Spec("str", _choice(*_DTYPES)),
    "vae_dtype": _Spec("str", _choice(*_DTYPES)),
    "trust_remote_code": _Spec("bool"),
    "offline": _Spec("bool", optional=True),
    "compile": _Spec("bool"),
}


@dataclass(frozen=True)
class ModelOptions:
    """Which model, and how it runs.

    ``model``: ``radedit`` (the published weights, from the Hugging Face cache),
    ``tiny`` (the bundled demo model), a model folder or a spec file.
    ``device``: auto, cpu, cuda, cuda:N. ``dtype``: UNet and text encoder
    precision (auto = bfloat16 on GPU, float32 on CPU); ``vae_dtype`` (float32
    by default: the SDXL VAE overflows in float16). ``trust_remote_code``:
    allow a component's own modelling code (BioViL-T). ``offline``: never
    contact the hub (None: as HF_HUB_OFFLINE says). ``compile``: torch.compile
    the UNet.
    """

    model: str = "radedit"
    device: str = "auto"
    dtype: str = "auto"
    vae_dtype: str = "float32"
    trust_remote_code: bool = False
    offline: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in _validate(values, MODEL_SPECS, _plain).items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], name: Namer = _plain, default_model: str = "radedit") -> "ModelOptions":
        given = dict(values)
        if given.get("name") is not None and given.get("model") is None:
            given["model"] = given.pop("name")
        given.pop("name", None)
        _unknown(given, MODEL_SPECS, name, "model options")
        given = {k: v for k, v in given.items() if v is not None}
        given.setdefault("model", default_model)
        return cls(**_validate(given, MODEL_SPECS, name))

    @property
    def local_files_only(self) -> bool | None:
        return True if self.offline else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MODEL_DEFAULTS = ModelOptions()


# -- datalists ------------------------------------------------------------------------------------

#: The lists of a MONAI (decathlon-style) datalist, in the order they are read.
DATALIST_LISTS = ("training", "validation", "testing")
#: The rule every reader of a datalist follows (stress build, batch runs, the bundle, stress run).
DATALIST_RULE = (
    "a JSON datalist that is an object of lists (MONAI: training, validation, testing) is read whole by "
    "default, every list in that order; split names the lists to read (one or several, comma-separated). "
    "A plain JSON list of rows, an object with one 'items' or 'data' list, and a CSV are read whole"
)
_SPLIT = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_split(value: Any, name: str = "split") -> list[str] | None:
    """The datalist lists to read (``None``: every list, :data:`DATALIST_RULE`).

    ``"testing"``, ``"training,validation"`` or a list of names.

    Raises:
        ConfigError: naming ``name``, for an empty or malformed list name or a repeated one.
    """
    if is_missing(value):
        return None
    names = coerce(name, value, "strs")
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names]
    for n in names:
        if not _SPLIT.match(n):
            raise ConfigError(f"{name}: {n!r} is not a datalist list name (e.g. training, validation, testing)")
    if len(set(names)) != len(names):
        raise ConfigError(f"{name}: repeated list names in {names}")
    return names


# -- derived DICOM series -------------------------------------------------------------------------

#: SeriesNumber is an IS: a signed 32-bit integer (PS3.5 Table 6.2-1).
MAX_SERIES_NUMBER = 2**31 - 1
#: Longest UID root: what is left of a UID's 64 characters keeps enough random digits for unique UIDs.
MAX_UID_ROOT_LENGTH = 40
#: SeriesDescription is an LO: at most 64 characters, which DICOM validators (dciodvfy) count in
#: encoded bytes; UTF-8, the character set the writer falls back to for text the source's cannot
#: encode, takes 2 to 4 bytes for a character outside ASCII.
MAX_SERIES_DESCRIPTION = 64
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.?$")


def uid_root_problem(value: str) -> str | None:
    """Why ``value`` is not a usable UID root (digits and dots, at most :data:`MAX_UID_ROOT_LENGTH`); None when it is."""
    root = value.strip()
    if not _UID_ROOT.match(root):
        return f"{value!r} is not a DICOM UID prefix (digits and dots, e.g. 1.2.826.0.1.3680043.8.498)"
    length = len(root) + (0 if root.endswith(".") else 1)
    if length > MAX_UID_ROOT_LENGTH:
        return (
            f"{value!r} is {length} characters; at most {MAX_UID_ROOT_LENGTH} leave room for enough random "
            "digits to keep UIDs unique"
        )
    return None


def series_description_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SeriesDescription (LO: no control characters or backslash, at most 64
    characters and 64 bytes in UTF-8); None when it can.

    A description that is too long is refused, not cut: it was chosen, so the series must show it whole.
    """
    if re.search(r"[\x00-\x1f\x7f\\]", value):
        return "must not contain control characters or backslashes"
    if len(value) > MAX_SERIES_DESCRIPTION:
        return f"is {len(value)} characters; DICOM allows at most {MAX_SERIES_DESCRIPTION}"
    size = len(value.encode("utf-8"))
    if size > MAX_SERIES_DESCRIPTION:
        return (
            f"is {size} bytes in UTF-8 ({len(value)} characters, some of them take several bytes); DICOM "
            f"allows at most {MAX_SERIES_DESCRIPTION} bytes"
        )
    return None


DICOM_OUTPUT_SPECS: dict[str, _Spec] = {
    "uid_root": _Spec("str", uid_root_problem, optional=True),
    "series_number": _Spec("int", _integer(0, MAX_SERIES_NUMBER), optional=True),
    "series_description": _Spec("str", series_description_problem, optional=True),
    "write_seg": _Spec("bool"),
}


def dicom_output_values(values: Mapping[str, Any], name: Namer = _plain) -> dict[str, Any]:
    """A derived DICOM series' options, checked: ``uid_root``, ``series_number``, ``series_description``
    (None: the default), ``write_seg``.

    A blank ``uid_root`` or ``series_number`` is the default (front ends send empty fields); whether
    a series number is free depends on the study (:func:`radedit_core.dicom.choose_series_number`).

    Raises:
        ConfigError: naming the option as ``name`` spells it.
    """
    _unknown(values, DICOM_OUTPUT_SPECS, name, "DICOM output options")
    given = dict(values)
    for key in ("uid_root", "series_number"):
        if is_missing(given.get(key)):
            given[key] = None
    if given.get("write_seg") is None:
        given["write_seg"] = False
    checked = _validate(given, DICOM_OUTPUT_SPECS, name)
    return {key: checked.get(key) for key in DICOM_OUTPUT_SPECS} | {"write_seg": checked["write_seg"]}


# -- how front ends spell the options ---------------------------------------------------------

_CLI_NAMES = {"prompts": "--prompt", "weights": "--guidance", "num_images": "--num-images"}


def cli_name(key: str) -> str:
    """``weights`` -> ``--guidance``, ``skip_ratio`` -> ``--skip-ratio``."""
    return _CLI_NAMES.get(key) or "--" + key.replace("_", "-")


def bundle_name(key: str) -> str:
    """``weights`` -> ``guidance``, ``prompts`` -> ``prompt`` (the bundle's config ids)."""
    return {"prompts": "prompt", "weights": "guidance"}.get(key, key)


def prefixed(prefix: str) -> Namer:
    """``prefixed("settings")("steps")`` -> ``settings.steps`` (job files)."""
    return lambda key: f"{prefix}.{key}"


def row_name(where: str, base: Namer = bundle_name) -> Namer:
    """Datalist rows: ``row 3: guidance``."""
    return lambda key: f"{where}: {base(key)}" if where else base(key)


def edit_settings(base: Mapping[str, Any] | None = None, name: Namer = _plain, **changes: Any) -> EditSettings:
    """:meth:`EditSettings.from_mapping` of ``base`` updated with ``changes``."""
    return EditSettings.from_mapping({**(base or {}), **changes}, name)


__all__ = [
    "DEFAULT_DETAIL",
    "DEFAULT_KEEP_SCOPE",
    "DICOM_OUTPUT_SPECS",
    "MAX_SERIES_DESCRIPTION",
    "MAX_SERIES_NUMBER",
    "MAX_UID_ROOT_LENGTH",
    "KEEP_SCOPES",
    "BATCH_DEFAULTS",
    "BATCH_KEYS",
    "BatchOptions",
    "DEFAULT_GENERATE_GUIDANCE",
    "DEFAULT_GENERATE_STEPS",
    "DEFAULT_GUIDANCE",
    "DEFAULT_INVERT_GUIDANCE",
    "DATALIST_LISTS",
    "DATALIST_RULE",
    "DETAIL_HELP",
    "DETAIL_MODES",
    "EDIT_DEFAULTS",
    "EditSettings",
    "GENERATE_DEFAULTS",
    "GenerateSettings",
    "MAX_BATCH_SIZE",
    "MAX_GUIDANCE",
    "MAX_SEED",
    "MAX_STEPS",
    "MODEL_DEFAULTS",
    "PAPER_PROMPTS",
    "ModelOptions",
    "bundle_name",
    "choice_problem",
    "cli_name",
    "coerce",
    "dicom_output_values",
    "edit_settings",
    "is_missing",
    "parse_split",
    "prefixed",
    "range_problem",
    "row_name",
    "series_description_problem",
    "uid_root_problem",
]
