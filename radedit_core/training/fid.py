"""Fréchet distance of image features with MONAI's :class:`monai.metrics.FIDMetric`.

The features come from a feature extractor the user supplies (seed 004 uses a
chest X-ray classifier's features instead of Inception's; here a classifier
trained on the phantom world can serve): a TorchScript file saved with
``torch.jit.save`` or, from Python, any callable.  It receives model-space
images, float32 [B, 1, S, S] in [-1, 1] on the training device, and returns
[B, F] features (or [B, F, ...], averaged over the trailing axes as MONAI
advises).  Any resizing or normalisation it needs is its own business.
Without an extractor FID is reported as unavailable, never estimated some
other way.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import ConfigError

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def load_feature_extractor(spec: Any, device: torch.device) -> FeatureExtractor | None:
    """``None`` -> None; a callable -> itself; a path -> the TorchScript module on ``device``, in eval mode.

    Raises:
        ConfigError: the file is not a TorchScript archive.
    """
    if spec is None:
        return None
    if callable(spec):
        return spec
    try:
        module = torch.jit.load(str(spec), map_location=device)
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"fid_feature_extractor: {spec} is not a TorchScript module ({reason})") from exc
    return module.eval()


@torch.no_grad()
def features(extractor: FeatureExtractor, images: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """[N, F] float64 features of [N, 1, S, S] images (trailing axes averaged)."""
    out = []
    for part in images.split(chunk):
        f = extractor(part)
        if not isinstance(f, torch.Tensor) or f.dim() < 2 or f.shape[0] != part.shape[0]:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ConfigError(f"fid_feature_extractor: expected [B, F] features for {part.shape[0]} images, got {shape}")
        out.append(f.flatten(2).mean(dim=2).double() if f.dim() > 2 else f.double())
    return torch.cat(out)


def frechet_distance(generated: torch.Tensor, real: torch.Tensor) -> float:
    """MONAI's FID of two [N, F] feature sets (N >= 2)."""
    from monai.metrics import FIDMetric  # noqa: PLC0415

    return float(FIDMetric()(generated.cpu(), real.cpu()))
