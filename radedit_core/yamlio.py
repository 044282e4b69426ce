"""YAML read strictly: the one loader every YAML file of the toolkit goes through.

PyYAML keeps the last of two equal keys and drops the first without a word
(two recipes of one name: the first is lost).  :func:`load_yaml` refuses that,
naming the key and both lines, and is otherwise ``yaml.safe_load``;
:func:`load_json` does the same for JSON files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError


def _loader():
    import yaml  # noqa: PLC0415 - PyYAML only where YAML is read

    class UniqueKeyLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that raises on a mapping key given twice."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # what a merge key (<<) brings in may be overridden: that is its purpose
                    key = self.construct_object(key_node, deep=True)
                    try:
                        line = seen.get(key)
                    except TypeError:  # an unhashable key: SafeLoader reports it itself
                        continue
                    here = key_node.start_mark.line + 1
                    if line is not None:
                        raise _DuplicateKey(key, line, here)
                    seen[key] = here
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"duplicate key {key!r} on line {again} (first on line {first}); give each key once")
        self.key, self.first, self.again = key, first, again


def load_yaml(text: str, source: str | Path = "<string>") -> Any:
    """Parse YAML ``text`` (from ``source``, named in messages) like ``yaml.safe_load``, refusing duplicate keys.

    Raises:
        ConfigError: ``source: duplicate key 'name' on line 7 (first on line 2); ...``.
        yaml.YAMLError: any other YAML syntax error (callers turn it into their own error).
    """
    try:
        return __import__("yaml").load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_json(text: str, source: str | Path = "<string>") -> Any:
    """``json.loads`` refusing an object key given twice (JSON keeps the last one too).

    Raises:
        ConfigError: naming the key; json.JSONDecodeError: any other syntax error.
    """
    import json  # noqa: PLC0415

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ConfigError(f"{source}: duplicate key {key!r}; give each key once")
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=unique)


__all__ = ["load_json", "load_yaml"]
