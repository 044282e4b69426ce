"""TensorRT for the UNet, following MONAI's convention (``monai.networks.trt_compile``).

The bundle's overlay ``configs/inference_trt.json`` (merged after
``inference.json``) sets ``unet_backend: tensorrt`` and a ``unet_wrapper``
that puts ``monai.networks.trt_compile`` around :class:`UNetNoisePrediction`:
the UNet as a module of tensors only, which ONNX export and a TensorRT engine
need (diffusers' forward takes optional dictionaries and returns a dataclass).
MONAI builds the engine on the first call, saves it as ``<base path>.plan``
and reuses it in later runs.

:func:`require_tensorrt` runs before any model loads: without the
``tensorrt`` and ``polygraphy`` packages (or without a CUDA GPU) the run
stops with one line naming what is missing (:class:`BackendError`, exit code
6) and writes nothing, instead of MONAI's warning and a silent fall back to
PyTorch.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

import torch

from ..errors import BackendError


class UNetNoisePrediction(torch.nn.Module):
    """``(sample [N, C, h, w], timestep [N] long, encoder_hidden_states [N, L, D]) -> prediction [N, C, h, w]``.

    A diffusers ``UNet2DConditionModel`` called with tensors only and
    returning a tensor, so that ``torch.onnx.export`` and TensorRT see three
    inputs and one output (MONAI's ``TrtCompiler`` reads the input names from
    this ``forward``'s signature).
    """

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


def missing_tensorrt() -> str | None:
    """Why TensorRT cannot run here (one sentence), or None when it can."""
    missing = [name for name in ("tensorrt", "polygraphy") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"TensorRT is not installed here ({' and '.join(missing)} cannot be imported); install "
            "`pip install tensorrt polygraphy onnx` on a CUDA machine, or run without configs/inference_trt.json "
            "(unet_backend torch)"
        )
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU and none is available; run without configs/inference_trt.json"
    return None


def require_tensorrt() -> None:
    """Raises:
    BackendError: TensorRT (or polygraphy, or a CUDA GPU) is missing."""
    problem = missing_tensorrt()
    if problem is not None:
        raise BackendError(problem)


def wrap_unet(pipe: Any, wrapper: Callable[[torch.nn.Module], torch.nn.Module]) -> torch.nn.Module:
    """Run ``pipe``'s UNet as ``wrapper(UNetNoisePrediction(pipe.unet))`` (e.g. MONAI's ``trt_compile``),
    in the step loop and the inversion; returns the wrapped module."""
    module = wrapper(UNetNoisePrediction(pipe.unet))
    if module is None:
        raise BackendError("unet_wrapper returned nothing; it must return the (wrapped) module it was given")
    pipe.use_unet_module(module)
    return module


__all__ = ["UNetNoisePrediction", "missing_tensorrt", "require_tensorrt", "wrap_unet"]
