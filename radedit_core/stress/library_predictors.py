"""The classifiers researchers already have: torchxrayvision, Hugging Face and timm models as predictors.

Each form is named ``<library>:<model>`` (``--predictor``, a stress config's
``predictor``, the bundle's ``predictor``) and runs with its library's OWN
preprocessing, so that the model sees what it saw in training; nothing is
downloaded (weights come from the library's cache, a folder or the Hugging
Face cache):

* ``torchxrayvision:<weights>`` (``pip install "radedit-core[torchxrayvision]"``),
  e.g. ``torchxrayvision:densenet121-res224-all`` or
  ``torchxrayvision:resnet50-res512-all``: ``xrv.models.get_model`` from the
  weights file in torchxrayvision's cache (``~/.torchxrayvision/models_data``,
  or the sidecar's ``cache_dir``).  Preprocessing:
  ``xrv.utils.normalize`` to [-1024, 1024], ``xrv.datasets.XRayCenterCrop``
  and ``XRayResizer`` to the weights' resolution (224 or 512 px).  Classes:
  the weights' pathology names (unused outputs, named ``""``, left out).
  Output: probabilities, sigmoid of the logits; where the weights carry a
  calibrated operating point (``op_threshs``) the probability is
  torchxrayvision's ``op_norm`` of it, so 0.5 is that operating point.
* ``huggingface:<folder or hub id>`` (``pip install "radedit-core[huggingface]"``,
  transformers is in the default install): ``AutoModelForImageClassification``
  and ``AutoImageProcessor`` from a ``save_pretrained`` folder or the Hugging
  Face cache (offline).  Preprocessing: the image processor on the 8-bit RGB
  image.  Classes: ``config.id2label``.  Output: logits, sigmoid for
  ``problem_type`` ``multi_label_classification`` or one label, else softmax.
* ``timm:<folder, hub id or architecture>`` (``pip install "radedit-core[timm]"``):
  a folder in timm's Hugging Face layout (``config.json`` with
  ``architecture``, ``pretrained_cfg`` and ``label_names``, weights as
  ``model.safetensors`` or ``pytorch_model.bin``; what ``timm.models.save_for_hf``
  writes) through ``timm.create_model("local-dir:<folder>")``, the same from
  the Hugging Face cache, or an architecture name with the sidecar's
  ``checkpoint`` and ``classes`` (``timm.create_model(name,
  checkpoint_path=...)``).  Preprocessing: ``timm.data.create_transform`` of
  ``resolve_data_config`` (the pretrained config's input size, crop, mean
  and std) on the 8-bit image (RGB, or grey for one input channel).
  Classes: ``label_names``.  Output: logits, softmax (sigmoid with the
  sidecar's ``activation: sigmoid`` or one class).

**Intensity.**  Every form starts from the image in display polarity
(MONOCHROME1 flipped) and the range ``[low, high]``: the sidecar's
``window``, else the DICOM VOI window, else the legal range of the stored
values (``value_range``: 0-255 for an 8-bit PNG, 0-4095 for 12-bit data),
clipped to it.  torchxrayvision takes ``normalize(stored - low, high - low)``;
the others the 8-bit image ``round(255 (stored - low) / (high - low))``; an
8-bit PNG thus reaches the library exactly as ``Image.open(p).convert("RGB")``
or ``skimage.io.imread(p)`` gives it.

**Sidecar** (``--predictor-config``, optional): ``classes`` (a list of the
library's class names to keep, or a mapping ``set label: library class name``
that renames them for the set), ``threshold``, ``window``, ``batch_size``,
``name``; ``cache_dir`` (torchxrayvision), ``revision`` (Hugging Face),
``checkpoint`` and ``activation`` (timm); relative paths are relative to the
sidecar's folder.

The adapters return a :class:`~radedit_core.stress.predictors.Predictor`
whose ``image_transform`` is the library's preprocessing (``SourceImage ->
[C, H, W]``) and whose model returns ``[B, classes]``.  Errors are
:class:`~radedit_core.errors.ConfigError` with one line naming the
predictor and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..imaging.image import SourceImage
from .predictors import Predictor, PredictorSpec, _prepare_module, _sha256_files, read_sidecar, resolve_device

#: ``<library>:`` prefixes of the library forms, and the extra that installs each library.
LIBRARY_FORMS = {"torchxrayvision": "torchxrayvision", "huggingface": "huggingface", "timm": "timm"}
_COMMON_KEYS = {"classes", "threshold", "window", "batch_size", "name"}
_FORM_KEYS = {"torchxrayvision": {"cache_dir"}, "huggingface": {"revision"}, "timm": {"checkpoint", "activation"}}


def parse_library_ref(ref: Any) -> tuple[str, str] | None:
    """``("timm", "resnet10t")`` for ``timm:resnet10t``; None when ``ref`` names no library form."""
    if not isinstance(ref, str):
        return None
    form, sep, target = ref.partition(":")
    if not sep or form not in LIBRARY_FORMS:
        return None
    if not target.strip():
        raise ConfigError(f"{ref}: names no model after '{form}:'")
    return form, target.strip()


def resolve_library_ref(ref: str, base: str | Path | None) -> str:
    """A library form's relative folder resolved against ``base`` (a config file's folder), else ``ref``."""
    parsed = parse_library_ref(ref)
    if parsed is None or base is None:
        return ref
    form, target = parsed
    if form in ("huggingface", "timm") and (Path(base) / target).is_dir() and not Path(target).is_absolute():
        return f"{form}:{Path(base) / target}"
    return ref


def _library(form: str, ref: str) -> Any:
    import importlib  # noqa: PLC0415

    module = {"torchxrayvision": "torchxrayvision", "huggingface": "transformers", "timm": "timm"}[form]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{ref}: {module} is not installed (pip install \"radedit-core[{LIBRARY_FORMS[form]}]\"): {exc}"
        ) from None


def _options(form: str, ref: str, config: str | Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    data = read_sidecar(config)
    unknown = sorted(set(data) - _COMMON_KEYS - _FORM_KEYS[form])
    if unknown:
        raise ConfigError(f"{config}: unknown key(s) {unknown} for {ref}; known: {sorted(_COMMON_KEYS | _FORM_KEYS[form])}")
    for key in ("cache_dir", "checkpoint"):  # relative to the sidecar, as a config file's paths are
        if data.get(key):
            path = Path(str(data[key])).expanduser()
            data[key] = str(path if path.is_absolute() else Path(config).parent / path)
    return data


def choose_classes(names: Sequence[str], chosen: Any, ref: str) -> tuple[list[int], list[str]]:
    """Output channels and their names in the set: all named ones, or those ``chosen`` names (list or mapping)."""
    if chosen is None:
        keep = [i for i, n in enumerate(names) if n]
        return keep, [names[i] for i in keep]
    if isinstance(chosen, Mapping):
        pairs = list(chosen.items())
    elif isinstance(chosen, list):
        pairs = [(c, c) for c in chosen]
    else:
        pairs = []
    if not pairs:
        raise ConfigError(f"{ref}: classes must be a list of the model's class names or a mapping set label: class name")
    index: list[int] = []
    for _, name in pairs:
        if str(name) not in names or not str(name):
            raise ConfigError(f"{ref}: no class '{name}'; the model's classes are {[n for n in names if n]}")
        index.append(list(names).index(str(name)))
    return index, [str(label) for label, _ in pairs]


def intensity_range(image: SourceImage, window: Sequence[float] | None) -> tuple[float, float]:
    """``[low, high]`` of the stored values the library sees (module docstring, Intensity)."""
    if window is not None:
        lo, hi = (float(v) for v in window)
    elif image.window is not None:
        lo, hi = float(image.window[0]), float(image.window[1])
    else:
        lo, hi = float(image.value_range[0]), float(image.value_range[1])
    if not hi > lo:
        raise ConfigError(f"{image.path}: intensity range [{lo:g}, {hi:g}] is empty")
    return lo, hi


def eight_bit(image: SourceImage, window: Sequence[float] | None) -> np.ndarray:
    """The image as ``uint8`` over :func:`intensity_range` (unchanged for 8-bit data over 0-255)."""
    lo, hi = intensity_range(image, window)
    a = image.array
    if a.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        return a
    scaled = (np.clip(a.astype(np.float64), lo, hi) - lo) / (hi - lo)
    return np.rint(scaled * 255.0).astype(np.uint8)


def _pil(image: SourceImage, window: Sequence[float] | None, channels: int) -> Any:
    from PIL import Image  # noqa: PLC0415

    return Image.fromarray(eight_bit(image, window)).convert("RGB" if channels == 3 else "L")


class _Selected(torch.nn.Module):
    """A classifier's output columns ``index`` (``forward(x) -> [B, len(index)]``)."""

    def __init__(self, model: torch.nn.Module, index: Sequence[int], output: Callable[[Any], torch.Tensor],
                 keyword: str | None = None):  # fmt: skip
        super().__init__()
        self.model = model
        self.register_buffer("index", torch.as_tensor(list(index), dtype=torch.long), persistent=False)
        self.output = output
        self.keyword = keyword  # transformers' models take pixel_values by keyword

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(**{self.keyword: x}) if self.keyword else self.model(x)
        return self.output(y).index_select(1, self.index)


def _predictor(model: torch.nn.Module, transform: Callable, spec_data: dict, options: dict, description: dict,
               device: str, config: str | Path | None) -> Any:  # fmt: skip
    for key in ("threshold", "window", "batch_size", "name"):
        if options.get(key) is not None:
            spec_data[key] = options[key]
    spec_data.setdefault("name", description["ref"])
    spec = PredictorSpec.from_mapping(spec_data, config or description["ref"])
    dev = resolve_device(device)
    return Predictor(_prepare_module(model, dev), spec, dev, description=description, image_transform=transform)


def _sha256(paths: Sequence[Path]) -> str:
    return _sha256_files([p for p in paths if p.is_file()])


# -- torchxrayvision ----------------------------------------------------------------------------
def xrv_transform(xrv: Any, resolution: int, window: Sequence[float] | None) -> Callable[[SourceImage], torch.Tensor]:
    """SourceImage -> ``[1, res, res]`` float32 in [-1024, 1024]: normalize, XRayCenterCrop, XRayResizer."""
    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(resolution)

    def transform(image: SourceImage) -> torch.Tensor:
        lo, hi = intensity_range(image, window)
        x = xrv.utils.normalize(np.clip(image.array.astype(np.float64), lo, hi) - lo, hi - lo)[None]
        return torch.from_numpy(np.ascontiguousarray(resize(crop(x)), dtype=np.float32))

    return transform


def load_torchxrayvision(weights: str, config: str | Path | None = None, device: str = "auto") -> Any:
    """``torchxrayvision:<weights>``: a DenseNet or ResNet of torchxrayvision (module docstring)."""
    ref = f"torchxrayvision:{weights}"
    xrv = _library("torchxrayvision", ref)
    options = _options("torchxrayvision", ref, config)
    urls = xrv.models.model_urls
    if weights not in urls or not weights.startswith(("densenet", "resnet")):
        names = sorted(k for k in urls if k.startswith(("densenet", "resnet")))
        raise ConfigError(f"{ref}: unknown torchxrayvision weights; known: {', '.join(names)}")
    entry = urls[weights]
    folder = Path(str(options.get("cache_dir") or xrv.utils.get_cache_dir())).expanduser()
    file = folder / Path(entry["weights_url"]).name
    if not file.is_file():
        raise ConfigError(
            f"{ref}: weights file {file} is missing (nothing is downloaded; fetch {entry['weights_url']} "
            "on a connected machine, or give cache_dir)"
        )
    try:
        model = xrv.models.get_model(weights, cache_dir=str(folder))
    except Exception as exc:  # noqa: BLE001 - torch.load and load_state_dict raise anything
        raise ConfigError(f"{ref}: {file} does not load ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})") from None
    names = list(model.pathologies)
    index, classes = choose_classes(names, options.get("classes"), ref)
    thresholds = getattr(model, "op_threshs", None)
    thresholds = None if thresholds is None else thresholds.detach().float().cpu()
    # The raw logits: op_norm is applied below to the calibrated classes only (op_norm leaves an
    # uncalibrated class at a constant 0.5, which would predict nothing).
    model.op_threshs = None
    model.apply_sigmoid = False

    def output(logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        if thresholds is None:
            return p
        t = thresholds.to(p.device)
        calibrated = ~torch.isnan(t)
        p[:, calibrated] = xrv.models.op_norm(p[:, calibrated], t[calibrated])
        return p

    resolution = int(entry.get("input_resolution") or 224)
    calibrated = [] if thresholds is None else [names[i] for i in index if not torch.isnan(thresholds[i])]
    description = {
        "form": "torchxrayvision", "ref": ref, "weights": weights, "file": str(file), "sha256": _sha256([file]),
        "library_version": getattr(xrv, "__version__", None), "calibrated_classes": calibrated,
        "library_classes": [names[i] for i in index],
        "preprocessing": f"xrv.utils.normalize to [-1024, 1024], XRayCenterCrop, XRayResizer({resolution})",
        "sidecar": None if config is None else str(config),
    }  # fmt: skip
    spec = {"task": "classification", "classes": classes, "input_size": [resolution, resolution],
            "output": "probabilities", "activation": "sigmoid"}  # fmt: skip
    transform = xrv_transform(xrv, resolution, options.get("window"))
    return _predictor(_Selected(model, index, output), transform, spec, options, description, device, config)


# -- Hugging Face -------------------------------------------------------------------------------------
def hf_transform(processor: Any, window: Sequence[float] | None) -> Callable[[SourceImage], torch.Tensor]:
    """SourceImage -> ``[3, H, W]``: the image processor on the 8-bit RGB image."""

    def transform(image: SourceImage) -> torch.Tensor:
        return processor(images=_pil(image, window, 3), return_tensors="pt")["pixel_values"][0].float()

    return transform


def load_huggingface(source: str, config: str | Path | None = None, device: str = "auto") -> Any:
    """``huggingface:<folder or hub id>``: AutoModelForImageClassification with its image processor."""
    ref = f"huggingface:{source}"
    transformers = _library("huggingface", ref)
    options = _options("huggingface", ref, config)
    kwargs = {"local_files_only": True, **({"revision": options["revision"]} if options.get("revision") else {})}
    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(source, **kwargs).eval()
        processor = transformers.AutoImageProcessor.from_pretrained(source, **kwargs)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, ... from from_pretrained
        where = "folder" if Path(source).is_dir() else "Hugging Face cache (offline)"
        raise ConfigError(
            f"{ref}: no image classifier with its image processor in the {where} "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        ) from None
    cfg = model.config
    names = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
    index, classes = choose_classes(names, options.get("classes"), ref)
    transform = hf_transform(processor, options.get("window"))
    sizes = {tuple(transform(SourceImage(np.zeros(shape, np.uint8), (0.0, 255.0))).shape[-2:])
             for shape in ((256, 256), (256, 192))}  # fmt: skip
    if len(sizes) > 1:
        raise ConfigError(f"{ref}: the image processor's output size follows each image's shape ({sorted(sizes)}); "
                          "batches need one size: give the processor a crop_size or a fixed size")  # fmt: skip
    size = list(sizes.pop())
    sigmoid = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
    folder = Path(source) if Path(source).is_dir() else None
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.json")) if folder else []
    description = {
        "form": "huggingface", "ref": ref, "model_class": type(model).__name__,
        "processor_class": type(processor).__name__, "folder": None if folder is None else str(folder),
        "commit": getattr(cfg, "_commit_hash", None), "sha256": _sha256(files) if files else None,
        "library_version": transformers.__version__, "library_classes": [names[i] for i in index],
        "preprocessing": f"{type(processor).__name__} on the 8-bit RGB image",
        "sidecar": None if config is None else str(config),
    }  # fmt: skip
    spec = {"task": "classification", "classes": classes, "input_size": size, "output": "logits",
            "activation": "sigmoid" if sigmoid else "softmax"}  # fmt: skip
    if not sigmoid and len(index) != len(names):
        raise ConfigError(f"{ref}: softmax over chosen classes changes the probabilities; choose every class or none")
    model = _Selected(model, index, lambda out: out.logits, keyword="pixel_values")
    return _predictor(model, transform, spec, options, description, device, config)


# -- timm -----------------------------------------------------------------------------------------------
def timm_transform(model: Any, window: Sequence[float] | None) -> tuple[Callable[[SourceImage], torch.Tensor], dict]:
    """SourceImage -> ``[C, H, W]``: timm's eval transform of the model's resolved data config."""
    from timm.data import create_transform, resolve_data_config  # noqa: PLC0415

    data_config = resolve_data_config(model=model)
    tf = create_transform(**data_config, is_training=False)
    channels = int(data_config["input_size"][0])

    def transform(image: SourceImage) -> torch.Tensor:
        return tf(_pil(image, window, channels))

    return transform, data_config


def load_timm(source: str, config: str | Path | None = None, device: str = "auto") -> Any:
    """``timm:<folder, hub id or architecture>`` (module docstring)."""
    ref = f"timm:{source}"
    timm = _library("timm", ref)
    options = _options("timm", ref, config)
    folder = Path(source).expanduser()
    files: list[Path] = []
    names: list[str] | None = None
    try:
        if not folder.is_dir() and "/" in source and not options.get("checkpoint"):
            from huggingface_hub import snapshot_download  # noqa: PLC0415

            try:
                folder = Path(snapshot_download(source, local_files_only=True))
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"{ref}: not a folder, and not in the Hugging Face cache ({type(exc).__name__})") from None
        if folder.is_dir():
            if not (folder / "config.json").is_file():
                raise ConfigError(f"{ref}: {folder} has no config.json (timm's layout: timm.models.save_for_hf)")
            model = timm.create_model(f"local-dir:{folder}", pretrained=True)
            files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + [folder / "config.json"]
            names = model.pretrained_cfg.get("label_names")
        else:
            checkpoint = options.get("checkpoint")
            if not timm.is_model(source):
                raise ConfigError(f"{ref}: not a folder and not a timm architecture (timm.list_models())")
            if not checkpoint or not Path(str(checkpoint)).is_file():
                raise ConfigError(f"{ref}: an architecture needs the sidecar's checkpoint (a file), not {checkpoint!r}")
            names = options.get("classes")
            if not isinstance(names, list) or not names:
                raise ConfigError(f"{ref}: an architecture with a checkpoint needs the sidecar's classes in channel order")
            model = timm.create_model(source, pretrained=False, num_classes=len(names), checkpoint_path=str(checkpoint))
            files = [Path(str(checkpoint))]
            options = {**options, "classes": None}
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - timm and torch raise anything for a wrong folder or checkpoint
        raise ConfigError(f"{ref}: cannot build the model ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})") from None
    model.eval()
    n = int(model.num_classes)
    names = [str(c) for c in names] if names else [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise ConfigError(f"{ref}: {len(names)} class names for {n} outputs")
    index, classes = choose_classes(names, options.get("classes"), ref)
    transform, data_config = timm_transform(model, options.get("window"))
    activation = options.get("activation") or ("sigmoid" if n == 1 else "softmax")
    if activation == "softmax" and len(index) != n:
        raise ConfigError(f"{ref}: softmax over chosen classes changes the probabilities; choose every class or none")
    description = {
        "form": "timm", "ref": ref, "architecture": model.pretrained_cfg.get("architecture") or source,
        "sha256": _sha256(files) if files else None, "library_version": timm.__version__,
        "library_classes": [names[i] for i in index],
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "preprocessing": "timm.data.create_transform(**resolve_data_config(model=model)) on the 8-bit image",
        "sidecar": None if config is None else str(config),
    }  # fmt: skip
    spec = {"task": "classification", "classes": classes, "input_size": list(data_config["input_size"][1:]),
            "output": "logits", "activation": activation}  # fmt: skip
    return _predictor(_Selected(model, index, lambda y: y), transform, spec, options, description, device, config)


LOADERS = {"torchxrayvision": load_torchxrayvision, "huggingface": load_huggingface, "timm": load_timm}


def load_library_predictor(ref: str, config: str | Path | None = None, device: str = "auto") -> Any:
    """A ``<library>:<model>`` predictor (module docstring)."""
    form, target = parse_library_ref(ref)  # type: ignore[misc]
    return LOADERS[form](target, config, device)


__all__ = [
    "LIBRARY_FORMS",
    "choose_classes",
    "eight_bit",
    "hf_transform",
    "intensity_range",
    "load_huggingface",
    "load_library_predictor",
    "load_timm",
    "load_torchxrayvision",
    "parse_library_ref",
    "resolve_library_ref",
    "timm_transform",
    "xrv_transform",
]
