"""The replication's judges, predictors and segmenters: small MONAI networks trained here.

* Classifiers: :class:`monai.networks.nets.ResNet` (basic blocks, one per
  stage, widths 16-32-64-128, global average pooling and a linear head: a
  ResNet-10 narrowed for the CPU), one logit per class, trained with binary
  cross-entropy.
* Segmenters: :class:`monai.networks.nets.UNet` (channels 8-16-32-64, strides
  2, one residual unit), one logit per pixel, trained with MONAI's
  ``DiceCELoss`` (sigmoid).

Both take the contract tensors of :mod:`.data` (``[B, 1, S, S]`` in [0, 1])
and are trained with AdamW (lr 2e-3, cosine decay to 0), batch 32, random
shifts (up to S/20 pixels) and left-right flips (the phantoms' findings and
devices occur on both sides), a seeded data order, augmentation and
initialisation, on the CPU threads torch has.  A trained
network is saved as TorchScript with a predictor sidecar
(:mod:`radedit_core.stress.predictors`), so ``radedit stress evaluate``
takes it as it is, and is loaded back through
:func:`~radedit_core.stress.predictors.load_torchscript`: the replication
evaluates with the same code a user's model goes through.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..stress.predictors import Predictor, load_torchscript
from .data import RenderedSet, contract_spec

CHANNELS = (8, 16, 32, 64)
RESNET_WIDTHS = (16, 32, 64, 128)
#: Part of every cache key: bump when the architectures or the training loop change.
NETWORK_VERSION = 2


@dataclass(frozen=True)
class Recipe:
    """How one network is trained (part of its cache key)."""

    kind: str  # "classifier" or "segmenter"
    classes: tuple[str, ...]  # label names (classifier) or ("lungs",) (segmenter)
    epochs: int
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class TrainedNetwork:
    """A trained network as a :class:`Predictor`, with what it took."""

    name: str
    predictor: Predictor
    recipe: Recipe
    train_split: str
    train_cases: int
    seconds: float
    final_loss: float
    path: Path
    weights_sha256: str

    def record(self) -> dict[str, Any]:
        """What was trained, on what, and the result: the last epoch's loss in full precision and a
        digest of the weights (two runs that train the same weights bit for bit have the same)."""
        return {"name": self.name, "recipe": {**asdict(self.recipe), "classes": list(self.recipe.classes)},
                "train_split": self.train_split, "train_cases": self.train_cases,
                "train_seconds": round(self.seconds, 1), "final_loss": self.final_loss,
                "weights_sha256": self.weights_sha256, "file": str(self.path)}  # fmt: skip


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and bytes, in state-dict order)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def build(recipe: Recipe, size: int) -> torch.nn.Module:
    from monai.networks.nets import ResNet, UNet  # noqa: PLC0415

    if recipe.kind == "classifier":
        return ResNet(block="basic", layers=(1, 1, 1, 1), block_inplanes=list(RESNET_WIDTHS), spatial_dims=2,
                      n_input_channels=1, num_classes=len(recipe.classes), conv1_t_size=7, conv1_t_stride=2)  # fmt: skip
    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=CHANNELS, strides=(2, 2, 2), num_res_units=1)


def _targets(data: RenderedSet, recipe: Recipe) -> np.ndarray:
    if recipe.kind == "classifier":
        return np.stack([data.labels[c] for c in recipe.classes], axis=1).astype(np.float32)
    return data.lungs[:, None].astype(np.float32)


def fit(
    name: str,
    recipe: Recipe,
    data: RenderedSet,
    cache: Path,
    progress: bool = False,
) -> TrainedNetwork:
    """Train ``recipe`` on ``data`` (or load it from ``cache`` when trained before on the same data).

    The files are ``cache/nets/<name>-<key>.ts`` (TorchScript), ``.json``
    (the predictor sidecar) and ``.train.json`` (recipe, data, time, loss).
    """
    size = int(data.images.shape[-1])
    key = _key(recipe, data)
    folder = Path(cache) / "nets"
    path = folder / f"{name}-{key}.ts"
    record_path = path.with_suffix(".train.json")
    if path.is_file() and record_path.is_file():
        rec = json.loads(record_path.read_text())
        return TrainedNetwork(name, load_torchscript(path, device="cpu"), recipe, data.split, len(data),
                              rec["seconds"], rec["final_loss"], path, rec["weights_sha256"])  # fmt: skip
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = build(recipe, size)
        loss = _train(net, recipe, data, progress, name)
    net.eval()
    seconds = time.perf_counter() - started
    digest = weights_digest(net)
    folder.mkdir(parents=True, exist_ok=True)
    task = "classification" if recipe.kind == "classifier" else "segmentation"
    spec = contract_spec(task, recipe.classes, size, name=name)
    with torch.no_grad():
        scripted = torch.jit.trace(net, torch.zeros(2, 1, size, size))
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    torch.jit.save(scripted, str(tmp))
    sidecar = {k: v for k, v in spec.to_dict().items() if v is not None}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    record_path.write_text(json.dumps({"seconds": seconds, "final_loss": loss, "weights_sha256": digest,
                                       "cases": len(data), "split": data.split, "recipe": asdict(recipe)},
                                      indent=1) + "\n")  # fmt: skip
    os.replace(tmp, path)
    return TrainedNetwork(name, load_torchscript(path, device="cpu"), recipe, data.split, len(data), seconds, loss, path,
                          digest)  # fmt: skip


def _key(recipe: Recipe, data: RenderedSet) -> str:
    digest = hashlib.sha256(json.dumps({**asdict(recipe), "version": NETWORK_VERSION}, sort_keys=True).encode())
    digest.update(data.seeds.tobytes())
    # The cases' content, not only their seeds: a world setting changes the images and labels of
    # the same seeds (a network trained on the old ones must not be reused).
    digest.update(str(data.images.shape).encode())
    digest.update(np.ascontiguousarray(data.images).tobytes())
    digest.update(np.ascontiguousarray(data.lungs).tobytes())
    for name in sorted(data.labels):
        digest.update(name.encode() + np.ascontiguousarray(data.labels[name]).tobytes())
    return digest.hexdigest()[:12]


def _train(net: torch.nn.Module, recipe: Recipe, data: RenderedSet, progress: bool, name: str) -> float:
    from monai.losses import DiceCELoss  # noqa: PLC0415
    from tqdm.auto import tqdm  # noqa: PLC0415

    x_all = torch.from_numpy(data.images)
    y_all = torch.from_numpy(_targets(data, recipe))
    n = len(data)
    steps_per_epoch = max(1, n // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    if recipe.kind == "classifier":
        criterion: Any = torch.nn.BCEWithLogitsLoss()
    else:
        criterion = DiceCELoss(sigmoid=True)
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    shift = max(1, int(x_all.shape[-1]) // 20)
    segmentation = recipe.kind == "segmenter"
    net.train()
    last = float("nan")
    bar = tqdm(total=total, desc=f"train {name}", disable=not progress, leave=False)
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=gen)
        for k in range(steps_per_epoch):
            idx = order[k * recipe.batch_size : (k + 1) * recipe.batch_size]
            x, y = x_all[idx], y_all[idx]
            dy, dx = torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
            flip = bool(torch.rand(1, generator=gen) < 0.5)
            x = torch.roll(x, (dy, dx), (2, 3))
            x = x.flip(3) if flip else x
            if segmentation:
                y = torch.roll(y, (dy, dx), (2, 3))
                y = y.flip(3) if flip else y
            loss = criterion(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            value = loss.item()
            last = 0.9 * last + 0.1 * value if math.isfinite(last) else value
            bar.update(1)
    bar.close()
    return last


def predict_probabilities(network: TrainedNetwork, tensors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Contract tensors ``[N, 1, S, S]`` -> probabilities (``[N, C]``, or ``[N, 1, S, S]`` for a segmenter)."""
    batch = [torch.from_numpy(np.asarray(t, dtype=np.float32)) for t in tensors]
    return np.stack([y.numpy() for y in network.predictor.run(batch)])


__all__ = ["Recipe", "TrainedNetwork", "build", "fit", "predict_probabilities"]
