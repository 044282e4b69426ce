"""Which form a predictor reference names, and loading it in that form.

The dispatch over every form of :mod:`.predictors` (MONAI bundle folder,
TorchScript file with its sidecar, ``package.module:factory``) and of
:mod:`.library_predictors` (``torchxrayvision:``, ``huggingface:``,
``timm:``); it sits above both so that neither imports the other's loader.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .library_predictors import load_library_predictor, parse_library_ref
from .predictors import _ENTRY_POINT_RE, Predictor, load_entry_point, load_monai_bundle, load_torchscript


def predictor_form(ref: str | Path) -> str:
    """``monai_bundle``, ``torchscript``, ``entry_point`` or a library form (``torchxrayvision``,
    ``huggingface``, ``timm``: ``<library>:<model>``, checked first) for what ``ref`` names."""
    library = parse_library_ref(ref)
    if library is not None:
        return library[0]
    path = Path(ref)
    if path.is_dir():
        return "monai_bundle"
    if path.is_file():
        return "torchscript"
    if isinstance(ref, str) and _ENTRY_POINT_RE.match(ref):
        return "entry_point"
    raise InputError(
        ref,
        "predictor not found: give a MONAI bundle folder, a TorchScript file (with its sidecar), "
        "a Python entry point package.module:factory, or torchxrayvision:<weights>, huggingface:<folder or id>, "
        "timm:<folder, id or architecture>",
    )


def load_predictor(ref: str | Path, config: str | Path | None = None, device: str = "auto") -> Predictor:
    """Load a predictor in any of its forms (see the module docstring)."""
    form = predictor_form(ref)
    if form not in ("monai_bundle", "torchscript", "entry_point"):
        return load_library_predictor(str(ref), config, device)
    if form == "monai_bundle":
        return load_monai_bundle(ref, config, device)
    if form == "torchscript":
        return load_torchscript(ref, config, device)
    return load_entry_point(str(ref), config, device)


__all__ = ["load_predictor", "predictor_form"]
