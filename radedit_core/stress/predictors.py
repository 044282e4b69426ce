"""The user's model under test: its input contract and the loaders of its file forms.

**Input contract.**  The model is called on ``float32`` tensors
``[B, 1, H, W]`` on its device, one image per row:

* display polarity: bright = dense (a MONOCHROME1 image is flipped, as
  :func:`radedit_core.imaging.io.read_image` returns every image);
* intensity as the predictor declares: ``unit`` maps the image's window to
  [0, 1] and clips (MONAI ``ScaleIntensityRange``): the sidecar's fixed
  ``window`` (stored values) if given, else the DICOM VOI window, else the
  image's own minimum and maximum; ``stored`` passes the stored values as
  they are (after the MONOCHROME1 flip, before rescale);
* the whole image resized to the declared ``input_size`` ``[H, W]`` (MONAI
  ``Resize``: ``area`` (box filter, antialiased) where it shrinks, ``bilinear``
  where it grows; no crop, so the aspect ratio may change).

**Output contract.**  Classification: ``[B, C]`` (``[B]`` for one class);
segmentation: ``[B, C, H, W]`` at the input size; ``C`` = the declared
``classes`` in channel order.  ``output`` says what the values are:
``logits`` (``activation`` ``sigmoid``: independent classes, or ``softmax``:
one class per image or pixel), ``probabilities`` (same ``activation`` key, to
say whether they are independent or exclusive) or ``masks`` (0/1).  A class is
predicted where its probability is at least ``threshold`` (sigmoid) or where it
is the largest (softmax).  Segmentation probabilities go back to the source
grid (bilinear; nearest for masks) before that decision, so metrics compare
with the original masks at full resolution.

**Sidecar** (JSON or YAML; next to a TorchScript file as ``<name>.json``,
``.yaml`` or ``.yml``, or given explicitly)::

    task: classification            # or segmentation
    classes: [pneumothorax]          # channel order
    input_size: [224, 224]           # [H, W]
    intensity: unit                  # or stored
    window: [0, 4095]                # optional, stored values (unit only)
    output: logits                   # or probabilities, masks
    activation: sigmoid              # or softmax; needed for C > 1
    threshold: 0.5                   # sigmoid decision threshold
    batch_size: 32                   # optional upper bound
    name: weak-ptx-classifier        # optional, shown in reports
    factory_kwargs: {}               # entry points only: passed to the factory

**Forms** (:func:`radedit_core.stress.predictor_forms.load_predictor` picks by what ``ref`` is):

* a MONAI bundle folder: ``configs/metadata.json``, an inference config
  (``configs/inference.json``/``.yaml``) with the id ``network_def`` and
  optionally ``preprocessing`` (applied to each contract tensor ``[1, H, W]``:
  array or dictionary transforms on key ``image``), and the state dict
  ``models/model.pt``.  The spec comes from ``network_data_format`` (input
  ``spatial_shape``, ``value_range`` [0, 1] = ``unit``; output
  ``channel_def`` = classes; ``type`` ``probabilities`` = classification,
  ``image`` = segmentation; the network's raw output is taken as logits, with
  softmax for format ``labels`` and sigmoid for ``classes``, as the MONAI bundle
  specification defines them), overridden by a ``radedit_predictor`` object in
  ``metadata.json`` and then by an explicit sidecar;
* a TorchScript file with its sidecar;
* a Python entry point ``package.module:factory`` (importable: installed or on
  ``PYTHONPATH``): the factory (given ``device=`` if it takes it, and the
  sidecar's ``factory_kwargs``) returns a :class:`Predictor`, or a callable on
  contract batches with the spec as its ``predictor_spec`` attribute or in a
  sidecar;
* ``torchxrayvision:<weights>``, ``huggingface:<folder or hub id>``,
  ``timm:<folder, hub id or architecture>``: the classifiers researchers
  already have, each with its library's own preprocessing instead of the
  input contract above (:mod:`~radedit_core.stress.library_predictors`; the
  three prefixes are checked before an entry point).

:meth:`Predictor.check` is the trial forward pass on one real image at
start-up: a wrong output shape, NaN or infinite values, or "probabilities"
outside [0, 1] stop the run with a one-line error before any edit or
evaluation.  A GPU is used when present (``device="auto"``); batches are sized
to the free GPU memory from the trial pass and halved if memory runs out.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..imaging.image import SourceImage
from ..yamlio import load_yaml

Task = Literal["classification", "segmentation"]
OutputKind = Literal["logits", "probabilities", "masks"]
Activation = Literal["sigmoid", "softmax"]
INTENSITIES = ("unit", "stored")
OUTPUTS = ("logits", "probabilities", "masks")
ACTIVATIONS = ("sigmoid", "softmax")
SIDECAR_SUFFIXES = (".json", ".yaml", ".yml")
TORCHSCRIPT_SUFFIXES = (".ts", ".pt", ".pth", ".jit", ".zip", ".torchscript")
CPU_BATCH_SIZE = 16
MAX_BATCH_SIZE = 256
#: Share of the free GPU memory the batches may use (the rest: fragmentation, other tensors).
GPU_MEMORY_SHARE = 0.7
_ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)


# -- the spec ------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictorSpec:
    """What a predictor takes and returns (the sidecar schema of the module docstring)."""

    task: Task
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    intensity: str = "unit"
    window: tuple[float, float] | None = None
    output: str = "logits"
    activation: str | None = None
    threshold: float = 0.5
    batch_size: int | None = None
    name: str | None = None

    @property
    def exclusive(self) -> bool:
        """One class per image (or pixel): softmax outputs, decided by argmax."""
        return self.activation == "softmax"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["input_size"] = list(self.input_size)
        d["window"] = None if self.window is None else list(self.window)
        return d

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str | Path) -> "PredictorSpec":
        """Check a sidecar mapping; every problem is a :class:`ConfigError` naming ``where``."""
        known = {f.name for f in fields(cls)} | {"factory_kwargs"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown predictor key(s) {unknown}; known: {sorted(known)}")
        missing = [k for k in ("task", "classes", "input_size") if data.get(k) in (None, "", [])]
        if missing:
            raise ConfigError(f"{where}: missing predictor key(s) {missing}")
        task = data["task"]
        if task not in ("classification", "segmentation"):
            raise ConfigError(f"{where}: task must be classification or segmentation, not {task!r}")
        classes = data["classes"]
        if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
            raise ConfigError(f"{where}: classes must be a list of class names in channel order")
        classes = tuple(str(c) for c in classes)
        if len(set(classes)) != len(classes):
            raise ConfigError(f"{where}: repeated class names in {list(classes)}")
        size = data["input_size"]
        if isinstance(size, int):
            size = [size, size]
        if (
            not isinstance(size, Sequence)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise ConfigError(f"{where}: input_size must be [H, W] in pixels, not {data['input_size']!r}")
        intensity = data.get("intensity", "unit")
        if intensity not in INTENSITIES:
            raise ConfigError(f"{where}: intensity must be 'unit' or 'stored', not {intensity!r}")
        window = data.get("window")
        if window is not None:
            if intensity != "unit":
                raise ConfigError(f"{where}: a window applies to intensity 'unit' only")
            try:
                lo, hi = (float(v) for v in window)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: window must be [low, high] in stored values, not {window!r}") from None
            if not hi > lo:
                raise ConfigError(f"{where}: window [low, high] needs high > low, not {window!r}")
            window = (lo, hi)
        output = data.get("output", "logits")
        if output not in OUTPUTS:
            raise ConfigError(f"{where}: output must be one of {list(OUTPUTS)}, not {output!r}")
        activation = data.get("activation")
        if output == "masks":
            if activation is not None:
                raise ConfigError(f"{where}: output 'masks' takes no activation")
        else:
            if activation is None:
                if len(classes) > 1:
                    raise ConfigError(
                        f"{where}: output '{output}' with {len(classes)} classes needs 'activation': "
                        "'sigmoid' (independent classes) or 'softmax' (one class per image or pixel)"
                    )
                activation = "sigmoid"
            if activation not in ACTIVATIONS:
                raise ConfigError(f"{where}: activation must be 'sigmoid' or 'softmax', not {activation!r}")
            if activation == "softmax" and len(classes) < 2:
                raise ConfigError(f"{where}: softmax over one class is always 1; use sigmoid or list every class")
        try:
            threshold = float(data.get("threshold", 0.5))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: threshold must be a number") from None
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"{where}: threshold must lie in (0, 1), not {threshold}")
        batch_size = data.get("batch_size")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ConfigError(f"{where}: batch_size must be a positive integer, not {batch_size!r}")
        name = data.get("name")
        return cls(
            task=task,
            classes=classes,
            input_size=(int(size[0]), int(size[1])),
            intensity=intensity,
            window=window,
            output=output,
            activation=activation,
            threshold=threshold,
            batch_size=batch_size,
            name=None if name is None else str(name),
        )


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML sidecar as a mapping (not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: predictor sidecar does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:

            data = load_yaml(text, path)
    except Exception as exc:  # noqa: BLE001 - both parsers' errors end here
        raise ConfigError(f"{path}: cannot parse the predictor sidecar ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a predictor sidecar is a mapping of keys (task, classes, input_size, ...)")
    return data


def sidecar_for(model_file: Path) -> Path | None:
    """``weak.pt`` -> the first of ``weak.json``, ``weak.yaml``, ``weak.yml`` that exists."""
    for suffix in SIDECAR_SUFFIXES:
        candidate = model_file.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


# -- the input contract ------------------------------------------------------------------
def contract_window(image: SourceImage, spec: PredictorSpec) -> tuple[float, float]:
    """The stored values mapped to 0 and 1 for intensity ``unit``."""
    if spec.window is not None:
        return spec.window
    if image.window is not None:
        return float(image.window[0]), float(image.window[1])
    lo, hi = float(image.array.min()), float(image.array.max())
    if not hi > lo:
        raise InputError(image.path, f"image intensities are constant ({lo:g}); there is no window to map to [0, 1]")
    return lo, hi


def resize_mode(source: Sequence[int], target: Sequence[int]) -> str:
    """``area`` when shrinking (antialiased, and fast: MONAI's Gaussian anti-aliasing
    takes about a second per radiograph), ``bilinear`` when growing."""
    return "area" if all(t <= s for s, t in zip(source, target)) else "bilinear"


def to_contract(image: SourceImage, spec: PredictorSpec) -> torch.Tensor:
    """One image as the predictor sees it: float32 ``[1, H, W]`` (CPU)."""
    from monai.transforms import Resize, ScaleIntensityRange  # noqa: PLC0415
    from monai.utils import convert_to_tensor  # noqa: PLC0415

    x = torch.from_numpy(np.ascontiguousarray(image.array, dtype=np.float32))[None]
    if spec.intensity == "unit":
        lo, hi = contract_window(image, spec)
        x = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(x)
    if tuple(x.shape[-2:]) != spec.input_size:
        x = Resize(spatial_size=spec.input_size, mode=resize_mode(x.shape[-2:], spec.input_size))(x)
    return convert_to_tensor(x, dtype=torch.float32, track_meta=False)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device}: not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    return dev


# -- the predictor ---------------------------------------------------------------------
@dataclass
class Predictor:
    """A loaded model with its spec; call :meth:`predict` on images.

    ``model`` maps a contract batch ``[B, 1, H, W]`` (on ``device``) to the
    declared output; ``preprocessing`` (optional) maps each contract tensor
    ``[1, H, W]`` first (a MONAI bundle's ``preprocessing``).  ``image_transform``
    (optional) replaces the contract: it maps each image to the model's input
    ``[C, H, W]`` with a library's own preprocessing (the library forms of
    :mod:`~radedit_core.stress.library_predictors`).  ``description`` is the
    provenance (form, file, SHA-256, ...).
    """

    model: Callable[[torch.Tensor], Any]
    spec: PredictorSpec
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    preprocessing: Callable[[Any], Any] | None = None
    description: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    image_transform: Callable[[SourceImage], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.batch_size is None and self.spec.batch_size is not None:
            self.batch_size = self.spec.batch_size
        self._fixed_batch = self.batch_size is not None

    def set_batch_size(self, size: int) -> None:
        """Use ``size`` images per forward pass (no sizing from GPU memory; still halved on OOM)."""
        if size < 1:
            raise ConfigError(f"--batch-size {size}: must be at least 1")
        self.batch_size = int(size)
        self._fixed_batch = True

    def require_classes(self, names: Sequence[str], where: str | Path) -> None:
        """Stop with a one-line error if a label (or mask) name is not one of the predictor's classes.

        For the set builder too: call it with a recipe's labels before any edit.
        """
        unknown = [n for n in names if n not in self.spec.classes]
        if unknown:
            raise InputError(where, f"unknown label '{unknown[0]}': the predictor {self.name} has classes {list(self.spec.classes)}")

    @property
    def name(self) -> str:
        return self.spec.name or str(self.description.get("ref") or self.description.get("form") or "predictor")

    @property
    def fingerprint(self) -> str:
        """Changes whenever the model file, the code reference or the spec changes."""
        payload = json.dumps({"description": self.description, "spec": self.spec.to_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        return {
            **self.description,
            "spec": self.spec.to_dict(),
            "fingerprint": self.fingerprint,
            "device": str(self.device),
            "batch_size": self.batch_size,
        }

    # 1. images -> contract tensors
    def prepare(self, image: SourceImage) -> torch.Tensor:
        if self.image_transform is not None:
            return self.image_transform(image).float()
        x = to_contract(image, self.spec)
        if self.preprocessing is not None:
            x = self._preprocess(x, image)
        return x

    def _preprocess(self, x: torch.Tensor, image: SourceImage) -> torch.Tensor:
        from monai.transforms import Compose, MapTransform  # noqa: PLC0415
        from monai.utils import convert_to_tensor  # noqa: PLC0415

        tf = self.preprocessing
        steps = tf.transforms if isinstance(tf, Compose) else [tf]
        keyed = any(isinstance(t, MapTransform) for t in steps)
        try:
            out = tf({"image": x})["image"] if keyed else tf(x)
        except Exception as exc:  # noqa: BLE001 - a user's transform may raise anything
            raise ConfigError(
                f"{self.name}: the bundle's preprocessing failed on the contract tensor [1, H, W] of "
                f"{image.path} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); radedit reads "
                "the image itself, so keep only intensity and array transforms there"
            ) from exc
        out = convert_to_tensor(out, dtype=torch.float32, track_meta=False)
        if out.ndim != 3 or out.shape[0] != 1:
            raise ConfigError(f"{self.name}: the bundle's preprocessing returned shape {list(out.shape)}, not [1, H, W]")
        return out

    # 2. contract batch -> probabilities
    def expected_shape(self, batch: int) -> tuple[int, ...]:
        c = len(self.spec.classes)
        if self.spec.task == "classification":
            return (batch, c)
        return (batch, c, *self.spec.input_size)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Contract batch -> float32 probabilities (or 0/1 masks) on the CPU, checked.

        Raises:
            InputError: the output has the wrong shape or holds NaN/infinite values.
        """
        try:
            y = self.model(batch.to(self.device))
        except _OOM_ERRORS:
            raise  # run() halves the batch
        except Exception as exc:  # noqa: BLE001 - the user's model may fail in any way: one line naming the call
            detail = (str(exc).strip().splitlines() or [""])[-1].strip()
            raise InputError(
                self.name,
                f"the model raised {type(exc).__name__} on a batch of shape {list(batch.shape)} ({detail}); "
                "predictors get float32 [N, 1, H, W] tensors in [0, 1] (one channel: repeat it in the predictor if "
                "the network wants three)",
            ) from exc
        if isinstance(y, Mapping):  # MONAI-style outputs keyed by name
            y = y.get("pred", next(iter(y.values())) if len(y) == 1 else y)
        if isinstance(y, (tuple, list)) and len(y) == 1:
            y = y[0]
        if not isinstance(y, torch.Tensor):
            raise InputError(self.name, f"returned {type(y).__name__}, not a tensor")
        y = y.detach().to("cpu", torch.float32)
        expected = self.expected_shape(batch.shape[0])
        if self.spec.task == "classification" and len(self.spec.classes) == 1 and tuple(y.shape) == expected[:1]:
            y = y[:, None]
        if tuple(y.shape) != expected:
            raise InputError(
                self.name,
                f"output has shape {list(y.shape)}, expected {list(expected)} "
                f"({self.spec.task}, classes {list(self.spec.classes)}, input {list(self.spec.input_size)})",
            )
        if not torch.isfinite(y).all():
            bad = int((~torch.isfinite(y)).sum())
            raise InputError(self.name, f"output holds {bad} NaN or infinite value(s)")
        if self.spec.output == "logits":
            y = torch.softmax(y, dim=1) if self.spec.exclusive else torch.sigmoid(y)
        elif self.spec.output == "probabilities":
            lo, hi = float(y.min()), float(y.max())
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise InputError(
                    self.name,
                    f"declares output 'probabilities' but returned values in [{lo:.3g}, {hi:.3g}]; are they logits?",
                )
        elif self.spec.output == "masks":
            if not torch.all((y == 0) | (y == 1)):
                raise InputError(self.name, "declares output 'masks' but returned values other than 0 and 1")
        return y

    def run(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Forward contract tensors in batches; a batch that runs out of GPU memory is halved."""
        out: list[torch.Tensor] = []
        i = 0
        while i < len(tensors):
            n = min(self.batch_size or CPU_BATCH_SIZE, len(tensors) - i)
            try:
                y = self.forward(torch.stack(list(tensors[i : i + n])))
            except _OOM_ERRORS as exc:
                if n == 1:
                    raise InputError(self.name, f"runs out of memory on a single image ({exc})") from None
                self.batch_size = max(1, n // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            out.extend(y.unbind(0))
            i += n
        return out

    def predict(self, images: Sequence[SourceImage]) -> list[np.ndarray]:
        """Probabilities per image: ``[C]`` (classification) or ``[C, H, W]`` at the input size."""
        return [y.numpy() for y in self.run([self.prepare(im) for im in images])]

    # 3. probabilities -> decisions
    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """0/1 per class (classification ``[C]``) or per class and pixel (``[C, ...]``)."""
        p = np.asarray(probabilities)
        if self.spec.output == "masks":
            return (p >= 0.5).astype(np.uint8)
        if self.spec.exclusive:
            winner = np.argmax(p, axis=0)
            return (np.arange(p.shape[0]).reshape((-1,) + (1,) * (p.ndim - 1)) == winner).astype(np.uint8)
        return (p >= self.spec.threshold).astype(np.uint8)

    def to_source_grid(self, probabilities: np.ndarray, image: SourceImage) -> np.ndarray:
        """Segmentation probabilities ``[C, H, W]`` -> 0/1 masks ``[C, rows, cols]`` on the image's grid."""
        from monai.transforms import Resize  # noqa: PLC0415
        from monai.utils import convert_to_numpy  # noqa: PLC0415

        p = torch.from_numpy(np.ascontiguousarray(probabilities, dtype=np.float32))
        if tuple(p.shape[-2:]) != image.shape:
            mode = "nearest" if self.spec.output == "masks" else "bilinear"
            p = Resize(spatial_size=image.shape, mode=mode)(p)
        return self.decide(convert_to_numpy(p))

    # 4. start-up
    def check(self, image: SourceImage) -> np.ndarray:
        """Trial forward pass on one real image (before any edit or evaluation); sizes the batches.

        Returns the image's probabilities.  Raises :class:`InputError` for a
        wrong output shape, NaN/infinite outputs or probabilities outside [0, 1].
        """
        x = self.prepare(image)
        if not self._fixed_batch and self.device.type == "cuda":
            self.batch_size = self._gpu_batch_size(x)
        y = self.forward(x[None])[0]
        if self.spec.output == "probabilities" and self.spec.exclusive:
            total = y.sum(dim=0)
            if not torch.allclose(total, torch.ones_like(total), atol=1e-3):
                raise InputError(
                    self.name, "declares softmax probabilities but the classes do not sum to 1; use activation sigmoid"
                )
        if self.batch_size is None:
            self.batch_size = CPU_BATCH_SIZE
        return y.numpy()

    def _gpu_batch_size(self, x: torch.Tensor) -> int:
        """From the peak memory of a batch of two: how many fit in the free memory."""
        dev = self.device
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        self.forward(torch.stack([x, x]))
        per_image = max((torch.cuda.max_memory_allocated(dev) - base) / 2, 1)
        free, _ = torch.cuda.mem_get_info(dev)
        return int(max(1, min(MAX_BATCH_SIZE, GPU_MEMORY_SHARE * free // per_image)))


# -- loaders ---------------------------------------------------------------------------
def _sha256_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _merged_spec(base: Mapping[str, Any], config: str | Path | None, where: str | Path) -> tuple[PredictorSpec, dict]:
    data = dict(base)
    if config is not None:
        data.update(read_sidecar(config))
        where = config
    kwargs = data.pop("factory_kwargs", None) or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: factory_kwargs must be a mapping")
    return PredictorSpec.from_mapping(data, where), kwargs


def _prepare_module(model: Any, device: torch.device) -> Any:
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model


def load_torchscript(path: str | Path, config: str | Path | None = None, device: str = "auto") -> Predictor:
    """A TorchScript file and its sidecar (``config``, or ``<stem>.json/.yaml/.yml`` beside it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "TorchScript file does not exist")
    sidecar = Path(config) if config is not None else sidecar_for(path)
    if sidecar is None:
        raise ConfigError(
            f"{path}: no sidecar {path.stem}.json/.yaml next to it stating task, classes, input_size, "
            "intensity and output (or pass --predictor-config)"
        )
    spec, _ = _merged_spec(read_sidecar(sidecar), None, sidecar)
    dev = resolve_device(device)
    try:
        model = torch.jit.load(str(path), map_location=dev)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError or ValueError here
        raise InputError(path, f"cannot be loaded as TorchScript ({str(exc).strip().splitlines()[0]})") from exc
    model.eval()
    description = {
        "form": "torchscript",
        "ref": path.name,
        "file": str(path),
        "sha256": _sha256_files([path]),
        "sidecar": str(sidecar),
    }
    return Predictor(model, spec, dev, description=description)


def _bundle_config(folder: Path) -> Path:
    for name in ("inference.json", "inference.yaml", "inference.yml"):
        candidate = folder / "configs" / name
        if candidate.is_file():
            return candidate
    raise InputError(folder, "MONAI bundle has no configs/inference.json (or .yaml) with a network_def")


def spec_from_bundle_metadata(meta: Mapping[str, Any], where: str | Path) -> dict[str, Any]:
    """Sidecar fields derived from ``network_data_format`` (MONAI bundle specification)."""
    fmt = meta.get("network_data_format") or {}
    derived: dict[str, Any] = {}
    inputs = fmt.get("inputs") or {}
    item = inputs.get("image") or (next(iter(inputs.values())) if len(inputs) == 1 else None)
    if isinstance(item, Mapping):
        shape = item.get("spatial_shape")
        if isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape):
            derived["input_size"] = list(shape)
        if item.get("num_channels") not in (None, 1):
            raise ConfigError(f"{where}: the network takes {item['num_channels']} channels; the chest X-ray contract is [B, 1, H, W]")
        if list(item.get("value_range") or []) == [0, 1]:
            derived["intensity"] = "unit"
    outputs = fmt.get("outputs") or {}
    out = outputs.get("pred") or (next(iter(outputs.values())) if len(outputs) == 1 else None)
    if isinstance(out, Mapping):
        channel_def = out.get("channel_def") or {}
        if channel_def:
            try:
                derived["classes"] = [str(channel_def[k]) for k in sorted(channel_def, key=lambda k: int(k))]
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: channel_def keys must be channel numbers") from None
        kind, form = out.get("type"), out.get("format")
        if kind == "probabilities":
            derived["task"] = "classification"
        elif kind == "image":
            derived["task"] = "segmentation"
        if form in ("labels", "classes"):
            # The raw network ends before the bundle's postprocessing: logits.
            derived["output"] = "logits"
            derived["activation"] = "softmax" if form == "labels" else "sigmoid"
    name = meta.get("name")
    if name:
        derived["name"] = str(name)
    return derived


@contextlib.contextmanager
def _bundle_code(folder: Path) -> Iterator[None]:
    """Import a bundle's own code package (every bundle calls it ``scripts``) from ``folder``, in isolation.

    Another bundle's ``scripts`` (this toolkit's own, when the stress run is a
    bundle run) is set aside while the user's network is built and put back
    afterwards, so neither bundle finds the other's code.
    """
    def code_modules() -> dict[str, Any]:
        return {m: mod for m, mod in sys.modules.items() if m == "scripts" or m.startswith("scripts.")}

    before = code_modules()
    for name in before:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in code_modules():
            del sys.modules[name]
        sys.modules.update(before)


def load_monai_bundle(folder: str | Path, config: str | Path | None = None, device: str = "auto") -> Predictor:
    """A MONAI bundle folder: ``network_def`` (+ ``preprocessing``) and ``models/model.pt``."""
    from monai.bundle import ConfigParser  # noqa: PLC0415

    folder = Path(folder)
    meta_path = folder / "configs" / "metadata.json"
    if not meta_path.is_file():
        raise InputError(folder, "not a MONAI bundle (configs/metadata.json is missing)")
    config_path = _bundle_config(folder)
    weights = folder / "models" / "model.pt"
    if not weights.is_file():
        raise InputError(folder, "MONAI bundle has no weights at models/model.pt")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(meta_path, f"not valid JSON ({exc})") from exc
    base = spec_from_bundle_metadata(meta, meta_path)
    override = meta.get("radedit_predictor") or {}
    if not isinstance(override, dict):
        raise ConfigError(f"{meta_path}: radedit_predictor must be an object")
    spec, _ = _merged_spec({**base, **override}, config, meta_path)
    dev = resolve_device(device)
    parser = ConfigParser()
    # Bundles import their own code (scripts/...) relative to the bundle root.
    with _bundle_code(folder):
        try:
            parser.read_meta(str(meta_path))
            parser.read_config(str(config_path))
        except Exception as exc:  # noqa: BLE001 - JSONDecodeError, yaml.YAMLError, OSError
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(config_path, f"cannot be read as a bundle config ({detail})") from exc
        parser["bundle_root"] = str(folder)
        if parser.get("network_def") is None:
            raise InputError(config_path, "has no 'network_def' id")
        try:
            network = parser.get_parsed_content("network_def", instantiate=True)
            preprocessing = (
                parser.get_parsed_content("preprocessing", instantiate=True)
                if parser.get("preprocessing") is not None
                else None
            )
        except Exception as exc:  # noqa: BLE001 - config instantiation raises anything
            raise ConfigError(f"{config_path}: cannot build network_def/preprocessing ({str(exc).splitlines()[0]})") from exc
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(weights, f"cannot be read as a state dict ({str(exc).strip().splitlines()[0]})") from exc
    for key in ("model", "state_dict", "network"):
        if isinstance(state, dict) and set(state) == {key}:
            state = state[key]
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(weights, f"does not fit network_def ({str(exc).strip().splitlines()[0]})") from exc
    description = {
        "form": "monai_bundle",
        "ref": folder.name,
        "folder": str(folder),
        "bundle_name": meta.get("name"),
        "bundle_version": meta.get("version"),
        "sha256": _sha256_files([weights, config_path, meta_path]),
        "config": str(config_path),
        "sidecar": None if config is None else str(config),
    }
    return Predictor(_prepare_module(network, dev), spec, dev, preprocessing=preprocessing, description=description)


def load_entry_point(ref: str, config: str | Path | None = None, device: str = "auto") -> Predictor:
    """``package.module:factory``: the factory returns a Predictor or a callable on contract batches."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module may fail in any way
        hint = "; a module beside you is found with PYTHONPATH=. (or install it)" if isinstance(exc, ModuleNotFoundError) else ""
        raise ConfigError(f"{ref}: cannot import module '{module_name}' ({type(exc).__name__}: {exc}){hint}") from exc
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ConfigError(f"{ref}: module '{module_name}' has no '{attr}'")
    if not callable(factory):
        raise ConfigError(f"{ref}: '{attr}' is not callable")
    dev = resolve_device(device)
    base: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if config is not None:
        base = read_sidecar(config)
        kwargs = base.pop("factory_kwargs", None) or {}
    try:
        takes_device = "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_device = False
    if takes_device:
        kwargs = {"device": str(dev), **kwargs}
    try:
        made = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{ref}: the factory failed ({type(exc).__name__}: {exc})") from exc
    try:
        source = inspect.getsourcefile(module)
    except TypeError:  # a built-in or compiled module
        source = None
    description = {
        "form": "entry_point",
        "ref": ref,
        "module_file": source,
        "sha256": _sha256_files([Path(source)]) if source else None,
        "factory_kwargs": {k: v for k, v in kwargs.items() if k != "device"},
        "sidecar": None if config is None else str(config),
    }
    if isinstance(made, Predictor):
        if config is not None:
            made = replace(made, spec=_merged_spec({**made.spec.to_dict(), **base}, None, config)[0])
        made.description = {**description, **made.description}
        return made
    if not callable(made):
        raise ConfigError(f"{ref}: the factory returned {type(made).__name__}, not a callable on [B, 1, H, W] batches")
    attached = getattr(made, "predictor_spec", None)
    if isinstance(attached, PredictorSpec):
        attached = attached.to_dict()
    if attached is None and config is None:
        raise ConfigError(
            f"{ref}: no predictor spec; give a sidecar (--predictor-config) or set a predictor_spec "
            "attribute on what the factory returns"
        )
    spec, _ = _merged_spec({**(attached or {}), **base}, None, config or ref)
    return Predictor(_prepare_module(made, dev), spec, dev, description=description)


__all__ = [
    "CPU_BATCH_SIZE",
    "Predictor",
    "PredictorSpec",
    "contract_window",
    "load_entry_point",
    "load_monai_bundle",
    "load_torchscript",
    "read_sidecar",
    "resize_mode",
    "sidecar_for",
    "spec_from_bundle_metadata",
    "to_contract",
]
