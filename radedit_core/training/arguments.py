"""Command-line options of ``radedit train``, generated from :class:`TrainSettings`.

Every settings field is an option ``--name-with-dashes`` whose help is the
field's; an option not given stays out of the mapping, so the settings'
defaults and checks apply unchanged::

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    result = train_from_mapping(options_from_args(parser.parse_args()))
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .settings import option_fields

#: Positional-free option names that take several values.
_LISTS = {"strs"}


def _parse_config(text: str) -> Any:
    """A config option: inline JSON (an object) or a name/path kept as text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    return text


def _metavar(meta: dict[str, Any]) -> str | None:
    if meta["choices"]:
        return "{" + ",".join(str(c) for c in meta["choices"]) + "}"
    return {"int": "N", "float": "X", "path": "PATH", "config": "CONFIG", "extractor": "FILE"}.get(meta["kind"])


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one option per :class:`TrainSettings` field to ``parser`` (values checked by the settings)."""
    group = parser.add_argument_group("training")
    for f in option_fields():
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not None else "none"
        # argparse %-formats help strings: a literal % ("~30% slower") must be doubled.
        help_text = f"{meta['help']} (default: {default})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if meta["kind"] == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if meta["kind"] in _LISTS:
            kwargs["nargs"] = "+"
        if meta["kind"] == "config":
            kwargs["type"] = _parse_config
        group.add_argument(flag, metavar=_metavar(meta), **kwargs)
    return parser


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The training options given on the command line (others keep their defaults)."""
    names = {f.name for f in option_fields()}
    return {k: v for k, v in vars(args).items() if k in names}
