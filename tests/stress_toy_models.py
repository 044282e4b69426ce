"""Small models whose outputs depend on the phantoms in known ways (stress-test tests).

On :func:`radedit_core.synthetic.chest_phantom` images (contract tensors in
[0, 1], bright = dense):

* :class:`DeviceShortcutClassifier` says "opacity" when very bright pixels fill
  a share of the upper-right region, where the phantom's pacemaker sits: a
  *weak* predictor that learned the device, not the finding (the paper's
  manifestation shift, Sec. 5.3);
* :class:`LungOpacityClassifier` says "opacity" from the mean brightness of a
  right-lung patch: a *strong* predictor;
* :class:`ThresholdLungSegmenter` segments "lungs" as the dark pixels inside a
  lung-shaped prior: consolidation (a bright patch) inside a lung is lost, a
  population shift for segmentation (Sec. 5.4).

Each has parameters (saved in state dicts and TorchScript files), can be
scripted, and is importable as a bundle's ``scripts/`` code or as an entry
point (``stress_toy_models:weak_classifier``).
"""

from __future__ import annotations

import torch
from torch import nn

#: The right-lung patch where tests paint an opacity (normalised row, column bounds).
OPACITY_BOX = (0.42, 0.58, 0.24, 0.38)
#: Centre and radii (normalised) of the consolidation tests paint into the left lung.
CONSOLIDATION = (0.45, 0.70, 0.12, 0.07)


class DeviceShortcutClassifier(nn.Module):
    """logit = gain * (share of pixels > 0.85 in the upper-right region) + bias."""

    def __init__(self, gain: float = 400.0, bias: float = -2.0):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        region = x[:, :, : h // 3, w // 2 :]
        share = (region > 0.85).float().mean(dim=(1, 2, 3))
        return (self.gain * share + self.bias)[:, None]


class LungOpacityClassifier(nn.Module):
    """logit = gain * (mean of the right-lung patch - level)."""

    def __init__(self, gain: float = 30.0, level: float = 0.42):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.level = nn.Parameter(torch.tensor(float(level)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        r0, r1, c0, c1 = OPACITY_BOX
        patch = x[:, :, int(r0 * h) : int(r1 * h), int(c0 * w) : int(c1 * w)]
        return (self.gain * (patch.mean(dim=(1, 2, 3)) - self.level))[:, None]


class ThresholdLungSegmenter(nn.Module):
    """Logits ``gain * (level - x)`` inside two enlarged lung ellipses, ``-20`` outside."""

    def __init__(self, gain: float = 40.0, level: float = 0.42):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.level = nn.Parameter(torch.tensor(float(level)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        yy = (torch.arange(h, dtype=x.dtype, device=x.device)[:, None] + 0.5) / h
        xx = (torch.arange(w, dtype=x.dtype, device=x.device)[None, :] + 0.5) / w
        right = ((yy - 0.47) / 0.34) ** 2 + ((xx - 0.31) / 0.16) ** 2 <= 1.0
        left = ((yy - 0.49) / 0.32) ** 2 + ((xx - 0.69) / 0.15) ** 2 <= 1.0
        prior = (right | left).to(x.dtype)
        logits = self.gain * (self.level - x)
        return prior * logits + (1.0 - prior) * -20.0


CLASSIFIER_SPEC = {
    "task": "classification",
    "classes": ["opacity"],
    "input_size": [64, 64],
    "intensity": "unit",
    "window": [0, 4095],
    "output": "logits",
    "activation": "sigmoid",
    "threshold": 0.5,
}
SEGMENTER_SPEC = {
    "task": "segmentation",
    "classes": ["lungs"],
    "input_size": [64, 64],
    "intensity": "unit",
    "output": "logits",
    "activation": "sigmoid",
}


def weak_classifier(device: str = "cpu", gain: float = 400.0) -> nn.Module:
    """Entry-point factory: the weak classifier, its spec attached."""
    model = DeviceShortcutClassifier(gain=gain).to(device)
    model.predictor_spec = {**CLASSIFIER_SPEC, "name": "weak (device shortcut)"}
    return model


def strong_classifier() -> nn.Module:
    """Entry-point factory without a spec (the sidecar gives it)."""
    return LungOpacityClassifier()


def lung_segmenter(device: str = "cpu") -> nn.Module:
    model = ThresholdLungSegmenter().to(device)
    model.predictor_spec = {**SEGMENTER_SPEC, "name": "threshold lung segmenter"}
    return model
