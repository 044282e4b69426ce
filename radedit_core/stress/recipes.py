"""Edit recipes: named edits that turn real images into a stress-test set (paper Sec. 5).

A recipe file (YAML or JSON) holds ``recipes``, a mapping of names to
recipes, and optional ``defaults`` (edit settings shared by every recipe)::

    defaults: {steps: 200, skip_ratio: 0.3, dilate: 5}
    recipes:
      remove-pneumothorax:
        shift: manifestation            # acquisition | manifestation | population (paper Sec. 5.2-5.4)
        description: remove the pneumothorax, keep the chest drain that treats it
        when: {pneumothorax: 1}         # the datalist rows it applies to (column: value or [values])
        prompt: No acute cardiopulmonary process    # or a list of prompts
        guidance: 15                    # one weight, or one per prompt
        edit: pneumothorax              # mask label(s) of the row (its mask_<label> columns) or a derived region
        keep: [drain]                   # optional, same forms
        labels: {pneumothorax: 0}       # what the edited image shows (classification)
        settings: {dilate: 5}           # edit settings overrides (radedit_core.settings.EditSettings)
        filters: {min_score: 0.2, max_outside_change: 0.05}
        sweep: {guidance: [5, 10, 15], skip_ratio: [0.2, 0.3]}   # one edit per combination
        sham: true                      # also the same edit with the image's own report (a control)

**Regions** (``edit``, ``keep``): a label (``pneumothorax``), a list of labels
(united), or a derived region ``{labels: [...], box: false, erode: 0,
dilate: 0, border: 0, band: 0}``, made in that order from the row's masks
with the project's mask code (:func:`radedit_core.imaging.masks.dilate`):
``box`` replaces each connected part by its bounding box (the COVID-19 boxes
of Sec. 5.2); ``erode``/``dilate`` shrink/grow by N pixels (a disc);
``border`` keeps only the band of N pixels either side of the outline (lung
borders that must not move, Sec. 5.4); ``band`` (edit only) removes the keep
region grown by N pixels, leaving a free band between edit and keep that the
model may blend.  Derived regions are written as mask files in the set; a
plain single label uses the row's own mask file.

**Filters** (quality control after each edit; a rejected edit stays in the
set with ``accepted: false`` and its reason): ``min_score`` (the BioViL-T
editing score, paper Sec. 4.4: 0.2), ``max_outside_change`` (mean absolute
change outside the edit and keep regions, as a fraction of the source's
intensity range), ``max_keep_change`` (largest absolute change inside the
keep region, same unit), ``min_edit_change`` (mean absolute change inside the
edit region: an edit that did nothing).

:func:`load_recipes` checks a file on its own; :func:`check_recipes` checks it
against a datalist (every label and mask column it names exists) before any
model loads.  Every problem is a one-line
:class:`~radedit_core.errors.ConfigError` naming the file, the recipe and the
key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError, InputError
from ..settings import EDIT_SPECS, EditSettings, coerce, is_missing
from ..yamlio import load_yaml

SHIFTS = ("acquisition", "manifestation", "population")
FILTERS = ("min_score", "max_outside_change", "max_keep_change", "min_edit_change")
#: Edit settings a recipe may sweep (one edit per combination; dose-response curves).
SWEEPABLE = ("guidance", "skip_ratio")
#: Per-recipe edit settings (the prompts and weights have keys of their own).
RECIPE_SETTINGS = tuple(k for k in EDIT_SPECS if k not in ("prompts", "weights"))
RECIPE_KEYS = ("shift", "description", "when", "prompt", "guidance", "edit", "keep", "labels", "settings", "filters",
               "sweep", "sham")  # fmt: skip
REGION_KEYS = ("labels", "box", "erode", "dilate", "border", "band")
#: The most combinations one recipe's sweep may have unless ``--max-sweep-points`` (``max_sweep_points``)
#: raises it: each is one edit per row, checked before any is planned.
MAX_SWEEP_POINTS = 1000
MASK_PREFIX = "mask_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_PX = 512


@dataclass(frozen=True)
class Region:
    """Where to edit or what to keep, from a row's masks; see the module docstring."""

    labels: tuple[str, ...]
    box: bool = False
    erode: int = 0
    dilate: int = 0
    border: int = 0
    band: int = 0

    @property
    def derived(self) -> bool:
        """Anything but one label's own mask: the region is computed and written as a file."""
        return len(self.labels) > 1 or self.box or bool(self.erode or self.dilate or self.border or self.band)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Recipe:
    """One named edit, checked (see the module docstring for the keys)."""

    name: str
    shift: str
    prompts: tuple[str, ...]
    edit: Region
    keep: Region | None = None
    guidance: tuple[float, ...] | None = None
    description: str = ""
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    filters: dict[str, float] = field(default_factory=dict)
    sweep: dict[str, tuple[float, ...]] = field(default_factory=dict)
    sham: bool = False
    #: the recipe file, for messages
    source: str | None = field(default=None, compare=False)

    def sweep_points(self) -> list[dict[str, float]]:
        """One mapping per edit: ``[{}]`` without a sweep, else every combination of the swept values."""
        if not self.sweep:
            return [{}]
        keys = list(self.sweep)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.sweep[k] for k in keys))]

    def edit_settings(self, defaults: Mapping[str, Any] | None = None, point: Mapping[str, float] | None = None,
                      prompts: Sequence[str] | None = None, overrides: Mapping[str, Any] | None = None) -> EditSettings:  # fmt: skip
        """The :class:`EditSettings` of one edit.

        Precedence: the file's ``defaults`` < the recipe's ``settings`` (and
        ``guidance``) < ``overrides`` (the command line's edit options) < the
        sweep ``point``.  ``prompts`` replaces the recipe's (a sham edit).
        """
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        values: dict[str, Any] = {**(defaults or {}), **self.settings}
        values["prompts"] = list(prompts if prompts is not None else self.prompts)
        point = dict(point or {})
        weights: Any = self.guidance
        if "guidance" in overrides:
            given = overrides.pop("guidance")
            weights = tuple(given) if isinstance(given, (list, tuple)) else (given,)
        if "guidance" in point:
            weights = (point.pop("guidance"),)
        values.update(overrides)
        if weights is not None:
            # Another prompt (a sham edit's report) takes the recipe's first weight.
            values["weights"] = list(weights) if prompts is None else [weights[0]]
        values.update(point)
        where = f"{self.source}: " if self.source else ""
        return EditSettings.from_mapping(values, lambda k: f"{where}recipe {self.name}: {_recipe_key(k)}")

    def applies_to(self, row: Mapping[str, Any]) -> bool:
        for column, allowed in self.when.items():
            value = row.get(column)
            if not any(_same_value(value, a) for a in allowed):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "shift": self.shift,
            "description": self.description,
            "prompt": list(self.prompts),
            "guidance": None if self.guidance is None else list(self.guidance),
            "edit": self.edit.to_dict(),
            "keep": None if self.keep is None else self.keep.to_dict(),
            "when": {k: list(v) for k, v in self.when.items()},
            "labels": dict(self.labels),
            "settings": dict(self.settings),
            "filters": dict(self.filters),
            "sweep": {k: list(v) for k, v in self.sweep.items()},
            "sham": self.sham,
        }
        return out


@dataclass
class RecipeBook:
    """The recipes of one file, in file order, with the file's shared ``defaults``."""

    path: Path | None
    recipes: list[Recipe]
    defaults: dict[str, Any]
    sha256: str | None = None

    def __iter__(self):
        return iter(self.recipes)

    def __len__(self) -> int:
        return len(self.recipes)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.recipes]

    def where(self, recipe: str | None = None, key: str | None = None) -> str:
        parts = [str(self.path) if self.path is not None else "recipes"]
        if recipe is not None:
            parts.append(f"recipe {recipe}")
        if key is not None:
            parts.append(key)
        return ": ".join(parts)

    def label_names(self) -> list[str]:
        """Every class a recipe sets, in order of first use."""
        seen: dict[str, None] = {}
        for r in self.recipes:
            for name in r.labels:
                seen.setdefault(name)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {"path": None if self.path is None else str(self.path), "sha256": self.sha256,
                "defaults": dict(self.defaults), "recipes": [r.to_dict() for r in self.recipes]}  # fmt: skip


# -- parsing ---------------------------------------------------------------------------
def _recipe_key(key: str) -> str:
    return {"prompts": "prompt", "weights": "guidance"}.get(key, f"settings.{key}" if key in EDIT_SPECS else key)


def _same_value(value: Any, wanted: Any) -> bool:
    """``1`` matches ``"1"`` and ``1.0`` (CSV cells are text)."""
    if value is None:
        return False
    if str(value).strip() == str(wanted).strip():
        return True
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return False


class _Where:
    def __init__(self, path: Path | None, recipe: str | None = None):
        self.path, self.recipe = path, recipe

    def fail(self, key: str | None, problem: str) -> ConfigError:
        parts = [str(self.path) if self.path is not None else "recipes"]
        if self.recipe is not None:
            parts.append(f"recipe {self.recipe}")
        if key:
            parts.append(key)
        return ConfigError(": ".join(parts) + f": {problem}")


def _pixels(w: _Where, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise w.fail(key, f"expected a number of pixels, got {value!r}")
    n = coerce(key, value, "int") if not isinstance(value, float) or value.is_integer() else None
    if n is None or not 0 <= n <= _MAX_PX:
        raise w.fail(key, f"must be a whole number of pixels from 0 to {_MAX_PX}, got {value!r}")
    return int(n)


def _label_list(w: _Where, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise w.fail(key, f"expected a mask label or a list of them, got {value!r}")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise w.fail(key, f"mask labels are names (the row's mask_<label> columns), got {item!r}")
        out.append(item.strip())
    return tuple(out)


def parse_region(value: Any, w: _Where, key: str) -> Region:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(REGION_KEYS))
        if unknown:
            raise w.fail(f"{key}.{unknown[0]}", f"unknown key; a region has {', '.join(REGION_KEYS)}")
        if "labels" not in value:
            raise w.fail(f"{key}.labels", "a derived region needs the labels it is made from")
        if key == "keep" and value.get("band"):
            raise w.fail("keep.band", "band belongs to the edit region (the gap it leaves around the keep region)")
        box = value.get("box", False)
        if not isinstance(box, bool):
            raise w.fail(f"{key}.box", f"expected true or false, got {box!r}")
        return Region(
            labels=_label_list(w, f"{key}.labels", value["labels"]),
            box=box,
            **{k: _pixels(w, f"{key}.{k}", value[k]) for k in ("erode", "dilate", "border", "band") if k in value},
        )
    return Region(labels=_label_list(w, key, value))


def _prompts(w: _Where, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise w.fail("prompt", f"expected the text the edited image should match (or a list), got {value!r}")
    if not all(isinstance(p, str) and p.strip() for p in items):
        raise w.fail("prompt", "prompts must be non-empty text (the empty prompt only reconstructs the image)")
    return tuple(p.strip() for p in items)


def _numbers(w: _Where, key: str, value: Any) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise w.fail(key, "give at least one value")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise w.fail(key, f"expected numbers, got {item!r}")
        try:
            out.append(float(item))
        except ValueError:
            raise w.fail(key, f"expected numbers, got {item!r}") from None
    return tuple(out)


def _mapping(w: _Where, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise w.fail(key, f"expected a mapping, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _settings(w: _Where, key: str, value: Any) -> dict[str, Any]:
    settings = _mapping(w, key, value)
    for name in settings:
        if name in ("prompt", "prompts", "guidance", "weights"):
            raise w.fail(f"{key}.{name}", "give prompts and guidance as the recipe's own 'prompt' and 'guidance' keys")
        if name not in RECIPE_SETTINGS:
            raise w.fail(f"{key}.{name}", f"unknown edit setting; known: {', '.join(RECIPE_SETTINGS)}")
    return settings


def parse_recipe(
    name: str, data: Any, defaults: Mapping[str, Any], path: Path | None, max_sweep_points: int = MAX_SWEEP_POINTS
) -> Recipe:
    w = _Where(path, name)
    if not _NAME_RE.match(name):
        raise _Where(path).fail(None, f"recipe name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    if not isinstance(data, Mapping):
        raise w.fail(None, f"expected a mapping of {', '.join(RECIPE_KEYS)}")
    unknown = sorted(set(data) - set(RECIPE_KEYS))
    if unknown:
        raise w.fail(unknown[0], f"unknown key; a recipe has {', '.join(RECIPE_KEYS)}")
    for required in ("shift", "prompt", "edit"):
        if is_missing(data.get(required)):
            raise w.fail(required, "missing")
    shift = data["shift"]
    if shift not in SHIFTS:
        raise w.fail("shift", f"must be one of {', '.join(SHIFTS)}, got {shift!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise w.fail("description", "expected text")
    when: dict[str, tuple[Any, ...]] = {}
    for column, allowed in _mapping(w, "when", data.get("when")).items():
        values = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
        if not values or any(isinstance(v, (dict, list)) for v in values):
            raise w.fail(f"when.{column}", f"expected a value or a list of values, got {allowed!r}")
        when[column] = values
    labels: dict[str, int] = {}
    for label, value in _mapping(w, "labels", data.get("labels")).items():
        if isinstance(value, bool) or value not in (0, 1):
            raise w.fail(f"labels.{label}", f"a label is 0 or 1, got {value!r}")
        labels[label] = int(value)
    filters: dict[str, float] = {}
    for key, value in _mapping(w, "filters", data.get("filters")).items():
        if key not in FILTERS:
            raise w.fail(f"filters.{key}", f"unknown filter; known: {', '.join(FILTERS)}")
        number = _numbers(w, f"filters.{key}", value)
        if len(number) != 1 or (key != "min_score" and not number[0] >= 0) or (key == "min_score" and not -1 <= number[0] <= 1):
            raise w.fail(f"filters.{key}", f"expected one number ({'in [-1, 1]' if key == 'min_score' else '>= 0'}), got {value!r}")
        filters[key] = number[0]
    sweep: dict[str, tuple[float, ...]] = {}
    for key, value in _mapping(w, "sweep", data.get("sweep")).items():
        if key not in SWEEPABLE:
            raise w.fail(f"sweep.{key}", f"only {', '.join(SWEEPABLE)} can be swept")
        values = _numbers(w, f"sweep.{key}", value)
        if len(set(values)) != len(values):
            raise w.fail(f"sweep.{key}", f"repeated values in {list(values)}")
        sweep[key] = values
    points = math.prod(len(v) for v in sweep.values())
    if points > max_sweep_points:
        raise w.fail("sweep", f"{' x '.join(str(len(v)) for v in sweep.values())} = {points} combinations, more than the "
                              f"limit {max_sweep_points} (each is one edit per row); pass --max-sweep-points {points} "
                              "(max_sweep_points) to raise it")  # fmt: skip
    sham = data.get("sham", False)
    if not isinstance(sham, bool):
        raise w.fail("sham", f"expected true or false, got {sham!r}")
    edit = parse_region(data["edit"], w, "edit")
    keep = None if is_missing(data.get("keep")) else parse_region(data["keep"], w, "keep")
    if edit.band and keep is None:
        raise w.fail("edit.band", "a band separates the edit region from a keep region, and there is none")
    recipe = Recipe(
        name=name,
        shift=shift,
        prompts=_prompts(w, data["prompt"]),
        edit=edit,
        keep=keep,
        guidance=None if data.get("guidance") is None else _numbers(w, "guidance", data["guidance"]),
        description=description.strip(),
        when=when,
        labels=labels,
        settings=_settings(w, "settings", data.get("settings")),
        filters=filters,
        sweep=sweep,
        sham=sham,
        source=None if path is None else str(path),
    )
    # Every combination the recipe will run must be valid settings now, not after hours of editing.
    for point in recipe.sweep_points():
        settings = recipe.edit_settings(defaults, point)
    if "guidance" in sweep and len(recipe.prompts) > 1 and recipe.guidance is not None and len(recipe.guidance) > 1:
        raise w.fail("sweep.guidance", "a guidance sweep sets one weight for all prompts; drop the per-prompt guidance")
    if edit.band and settings.dilate and 2 * settings.dilate >= edit.band:
        raise w.fail(
            "edit.band",
            f"the band of {edit.band} px is closed again by settings.dilate {settings.dilate} (both masks grow by it): "
            f"set settings.dilate to 0 or the band above {2 * settings.dilate} px",
        )
    return recipe


def parse_recipes(
    data: Any, path: Path | None = None, sha256: str | None = None, max_sweep_points: int = MAX_SWEEP_POINTS
) -> RecipeBook:
    """A :class:`RecipeBook` from parsed YAML/JSON (see the module docstring)."""
    w = _Where(path)
    if not isinstance(data, Mapping) or "recipes" not in data:
        raise w.fail(None, "expected a mapping with 'recipes' (name: recipe) and optional 'defaults'")
    unknown = sorted(set(data) - {"recipes", "defaults"})
    if unknown:
        raise w.fail(unknown[0], "unknown key; a recipe file has 'recipes' and 'defaults'")
    defaults = _settings(w, "defaults", data.get("defaults"))
    recipes_data = data["recipes"]
    if not isinstance(recipes_data, Mapping) or not recipes_data:
        raise w.fail("recipes", "expected a non-empty mapping of recipe names to recipes")
    recipes = [parse_recipe(str(name), value, defaults, path, max_sweep_points) for name, value in recipes_data.items()]
    return RecipeBook(path=path, recipes=recipes, defaults=defaults, sha256=sha256)


def load_recipes(path: str | Path, max_sweep_points: int = MAX_SWEEP_POINTS) -> RecipeBook:
    """Read and check a recipe file (YAML or JSON); a key given twice is an error (naming it and its line).

    Raises:
        InputError: the file is missing or not YAML/JSON.
        ConfigError: ``<file>: recipe <name>: <key>: <problem>``.
    """
    import yaml  # noqa: PLC0415


    path = Path(path)
    if not path.is_file():
        raise InputError(path, "recipe file not found" if not path.exists() else "recipe file is not a file")
    raw = path.read_bytes()
    try:
        data = load_yaml(raw.decode("utf-8-sig"), path)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"not valid YAML/JSON ({first})") from None
    return parse_recipes(data, path, hashlib.sha256(raw).hexdigest(), max_sweep_points)


# -- against the datalist ------------------------------------------------------------------
def _columns(rows: Sequence[Any]) -> set[str]:
    return {c for row in rows for c in row.values}


def check_recipes(book: RecipeBook, rows: Sequence[Any], datalist: str | Path, classes: Sequence[str] = (),
                  task: str = "classification") -> None:  # fmt: skip
    """Check the recipes against a datalist's rows (:class:`radedit_core.batch.Row`) before any model loads.

    Every class, ``labels`` key and ``when`` column must be a column of the
    datalist (a class's values 0 or 1); every mask label a region names must
    be a ``mask_<label>`` column filled in every row the recipe applies to; a
    recipe must apply to at least one row.

    Raises:
        ConfigError: naming the recipe file, the recipe and the key (or the datalist and the row).
    """
    columns = _columns(rows)
    masks = sorted(c[len(MASK_PREFIX) :] for c in columns if c.startswith(MASK_PREFIX))
    for name in classes:
        column = name if task == "classification" else f"{MASK_PREFIX}{name}"
        if (task == "classification" and name not in columns) or (task == "segmentation" and name not in masks):
            # a label a recipe sets is the recipe's typo more often than the datalist's gap: name both
            setter = next((r.name for r in book.recipes if name in r.labels), None)
            where = book.where(setter, f"labels.{name}") if setter is not None else str(datalist)
            raise ConfigError(f"{where}: unknown label '{name}': the datalist {datalist} has no column '{column}'")
    if task == "classification":
        for row in rows:
            for name in classes:
                value = row.values.get(name)
                if is_missing(value) or not any(_same_value(value, v) for v in (0, 1)):
                    raise ConfigError(f"{datalist}: {row.where}: label '{name}' must be 0 or 1, got {value!r}")
    for recipe in book:
        w = _Where(book.path, recipe.name)
        for column in recipe.when:
            if column not in columns:
                raise w.fail(f"when.{column}", f"the datalist {datalist} has no column '{column}'")
        for label in recipe.labels:
            if task == "segmentation":
                raise w.fail(f"labels.{label}", "a segmentation set keeps each source's masks; labels are for classification")
            if label not in columns:
                raise w.fail(f"labels.{label}", f"unknown label: the datalist {datalist} has no column '{label}'")
            if classes and label not in classes:
                raise w.fail(f"labels.{label}", f"unknown label: the set's classes are {list(classes)}")
        applicable = [row for row in rows if recipe.applies_to(row.values)]
        if not applicable:
            looked = rows.describe().removeprefix("read ") if hasattr(rows, "describe") else f"{len(rows)} rows"
            raise w.fail("when", f"applies to no row of {datalist} (looked at {looked})")
        for key, region in (("edit", recipe.edit), ("keep", recipe.keep)):
            if region is None:
                continue
            for label in region.labels:
                if f"{MASK_PREFIX}{label}" not in columns:
                    raise w.fail(key, f"missing mask '{label}': the datalist {datalist} has no column "
                                      f"'{MASK_PREFIX}{label}' (its masks: {', '.join(masks) or 'none'})")  # fmt: skip
                for row in applicable:
                    if is_missing(row.values.get(f"{MASK_PREFIX}{label}")):
                        raise w.fail(key, f"missing mask '{label}' in {datalist} {row.where}")


def region_digest(region: Region) -> str:
    return hashlib.sha256(json.dumps(region.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


__all__ = [
    "FILTERS",
    "RECIPE_KEYS",
    "REGION_KEYS",
    "Recipe",
    "RecipeBook",
    "Region",
    "SHIFTS",
    "SWEEPABLE",
    "check_recipes",
    "MAX_SWEEP_POINTS",
    "load_recipes",
    "parse_recipe",
    "parse_recipes",
    "region_digest",
]
