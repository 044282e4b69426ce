"""Pneumothorax classifiers trained in the tests on phantom-world data (paper Sec. 5.3 in miniature).

Both are the same small model, a logistic regression on fixed random
convolution features (24 seeded 5x5 filters, ReLU, max and mean pooled over a
4x4 grid, plus the grid's mean intensity), trained by L-BFGS in about a second:

* the **weak** predictor learns from the default world, where
  P(drain | pneumothorax) = 0.9 and P(drain | none) = 0.02: the drain is the
  easy cue, and it is what the model learns;
* the **strong** predictor learns from a world where drains are independent
  of the pneumothorax (0.5 either way): only the pneumothorax itself predicts
  the label.

They are saved as TorchScript files with a sidecar (the predictor form users
give), input ``[B, 1, 64, 64]`` in [0, 1] (intensity ``unit``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT = 64
GRID = 4
FILTERS = 24
SPEC = {"task": "classification", "classes": ["pneumothorax"], "input_size": [INPUT, INPUT], "intensity": "unit",
        "output": "logits", "activation": "sigmoid", "threshold": 0.5}  # fmt: skip
#: Worlds the predictors learn from: pneumothorax in half the cases, at 128 x 128 (fast to draw).
TRAIN_WORLD = {"rows": 128, "columns": 128, "prevalence": {"pneumothorax": 0.5}}
UNBIASED = {"drain_given_pneumothorax": 0.5, "drain_given_no_pneumothorax": 0.5}


class RandomFeatureClassifier(nn.Module):
    """logit = w . standardise(features(x)) + b, features from fixed seeded filters."""

    __constants__ = ["grid"]

    def __init__(self, n_features: int):
        super().__init__()
        self.grid = GRID
        g = torch.Generator().manual_seed(0)
        w = torch.randn(FILTERS, 1, 5, 5, generator=g)
        w = w - w.mean(dim=(2, 3), keepdim=True)
        self.register_buffer("filters", w / w.flatten(1).norm(dim=1)[:, None, None, None])
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("weight", torch.zeros(n_features))
        self.register_buffer("bias", torch.zeros(1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(nn.functional.conv2d(x, self.filters, padding=2))
        return torch.cat([
            nn.functional.adaptive_max_pool2d(z, self.grid).flatten(1),
            nn.functional.adaptive_avg_pool2d(z, self.grid).flatten(1),
            nn.functional.adaptive_avg_pool2d(x, self.grid).flatten(1),
        ], dim=1)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.features(x) - self.mean) / self.std
        return (z @ self.weight + self.bias)[:, None]


def contract_batch(images: list[np.ndarray]) -> torch.Tensor:
    """Images as the evaluation feeds them (min/max to [0, 1], area resize to 64 x 64)."""
    from radedit_core.imaging.image import SourceImage
    from radedit_core.stress.predictors import PredictorSpec, to_contract

    spec = PredictorSpec.from_mapping(SPEC, "test")
    return torch.stack([to_contract(SourceImage.from_array(a.astype(np.float32)), spec) for a in images])


def world_images(n: int, seed: int, label: str = "pneumothorax", **config) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _world_draw(n, seed, json.dumps(config, sort_keys=True))
    return images, torch.tensor([float(case_labels[label]) for case_labels in labels])


@functools.lru_cache(maxsize=4)
def _world_draw(n: int, seed: int, config: str) -> tuple[torch.Tensor, tuple[dict, ...]]:
    """The images and labels of ``n`` cases drawn once per process (a case takes ~0.2 s to draw: most of
    the predictors' training time; the same world with another label, or another module training the
    same predictor, reuses the draw)."""
    from radedit_core.phantom_world import WorldConfig, sample_case

    world = WorldConfig.from_dict({**TRAIN_WORLD, **json.loads(config)})
    cases = [sample_case(world, seed * 1_000_003 + k) for k in range(n)]
    return contract_batch([c.image for c in cases]), tuple(dict(c.labels) for c in cases)


def train(x: torch.Tensor, y: torch.Tensor, l2: float = 0.01) -> RandomFeatureClassifier:
    torch.manual_seed(0)
    with torch.no_grad():
        probe = RandomFeatureClassifier(1)
        feats = probe.features(x)
    model = RandomFeatureClassifier(feats.shape[1])
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mean) / std
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        model.mean.copy_(mean)
        model.std.copy_(std)
        model.weight.copy_(w.detach())
        model.bias.copy_(b.detach())
    return model.eval()


def save(model: nn.Module, path: Path, name: str) -> Path:
    torch.jit.script(model).save(str(path))
    path.with_suffix(".json").write_text(json.dumps({**SPEC, "name": name}))
    return path


def weak_and_strong(folder: Path, n: int = 150) -> tuple[Path, Path]:
    """Train both on freshly drawn worlds; return their TorchScript files."""
    weak = train(*world_images(n, seed=1))
    strong = train(*world_images(n, seed=2, **UNBIASED))
    return save(weak, folder / "weak.ts", "weak (learned the drain)"), save(strong, folder / "strong.ts", "strong")


def drain_detector(folder: Path, n: int = 600) -> Path:
    """A pure shortcut: trained to see the chest drain (drains independent of the pneumothorax), saved as a
    *pneumothorax* classifier.  Right on a world where every pneumothorax has its drain, wrong on every edit
    that removes the pneumothorax and keeps the drain."""
    # 600 cases and a light penalty: it then sees every drain of the 40-case README world (a faint one too)
    model = train(*world_images(n, seed=3, label="drain", **UNBIASED), l2=0.001)
    return save(model, folder / "drain_detector.ts", "drain detector posing as a pneumothorax classifier")


# -- broken predictors (entry points) for the error tests ------------------------------------
class _Constant(nn.Module):
    def __init__(self, value: float, width: int):
        super().__init__()
        self.value, self.width = value, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.width), self.value)


def nan_outputs() -> nn.Module:
    model = _Constant(float("nan"), 1)
    model.predictor_spec = dict(SPEC)
    return model


def wrong_shape() -> nn.Module:
    model = _Constant(0.0, 1)
    model.predictor_spec = {**SPEC, "classes": ["pneumothorax", "effusion"], "activation": "sigmoid"}
    return model


def other_classes() -> nn.Module:
    model = _Constant(0.0, 1)
    model.predictor_spec = {**SPEC, "classes": ["effusion"]}
    return model
