"""One settings layer: every option of every front end is parsed, checked and defaulted here.

The CLI, the MONAI bundle, the Slicer worker and ``radedit pacs-edit`` hand
their options (an argparse namespace, a bundle config, a job file) to the
functions of this module before any model is loaded or any output created.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .errors import ConfigError

#: EditSettings fields and the type each is coerced to (values come from
#: config files and command lines, where "10" and 10 both occur).
_SETTING_TYPES = {
    "prompts": "strs",
    "weights": "floats",
    "steps": "int",
    "skip_ratio": "float",
    "invert_prompt": "str",
    "invert_guidance": "float",
    "eta": "float",
    "seed": "int",
    "inversion": "str",
    "keep_mode": "str",
    "dilate": "int",
    "soft_masks": "bool",
    "detail": "str",
    "reference_compat": "bool",
    "latent_sampling": "str",
    "inversion_batch_size": "int",
    "batch_conditions": "bool",
}
DEFAULT_EDIT_STEPS = 200
DEFAULT_GENERATE_STEPS = 100
DEFAULT_GENERATE_GUIDANCE = 7.5
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "floats": "a number or a list of numbers",
    "str": "a string",
    "strs": "a string or a list of strings",
    "bool": "true or false",
}


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` as ``kind`` (int, float, floats, str, strs, bool) or a ConfigError naming ``name``."""
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
            if text in ("true", "yes", "1", "y"):
                return True
            if text in ("false", "no", "0", "n", ""):
                return False
            raise ValueError
    except (TypeError, ValueError):
        expected = _EXPECTED[kind]
        raise ConfigError(f"{name}: expected {expected}, got {value!r}") from None
    raise ValueError(f"unknown kind {kind}")


def edit_settings(base: dict[str, Any] | None = None, **changes: Any):
    """An :class:`EditSettings` from a settings mapping; ``None`` values mean the default.

    Raises :class:`ConfigError` for unknown keys or values of the wrong type,
    so that a typo in a config file or on the command line is an error, not a
    silently ignored setting.
    """
    from .workflow import EditSettings  # noqa: PLC0415 - torch import only when needed

    merged = {**(base or {}), **changes}
    if "prompt" in merged and "prompts" not in merged:
        merged["prompts"] = merged.pop("prompt")
    if "guidance" in merged and "weights" not in merged:
        merged["weights"] = merged.pop("guidance")
    known = {f.name for f in fields(EditSettings)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"unknown edit settings {unknown}; known: {sorted(known)}")
    kwargs = {k: coerce(k, v, _SETTING_TYPES.get(k, "str")) for k, v in merged.items() if v is not None}
    if not kwargs.get("prompts"):
        raise ConfigError("prompt: an edit needs a prompt (none was given)")
    weights = kwargs.get("weights")
    if isinstance(weights, list) and len(weights) == 1:
        kwargs["weights"] = weights * len(kwargs["prompts"])
    kwargs.setdefault("steps", DEFAULT_EDIT_STEPS)
    try:
        return EditSettings(**kwargs)
    except TypeError as exc:  # a value the dataclass checks cannot compare
        raise ConfigError(f"invalid edit settings ({exc})") from exc

