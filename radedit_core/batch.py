"""Many edits (or generated images) in one run, on one process or many.

A batch is a list of items: one image with its masks and prompt, given
directly or as rows of a datalist (JSON or CSV).  The run

1. checks the parameters and every row before any work (a bad row stops the
   whole run with the datalist file, the row and the problem, and nothing is
   written);
2. gives each item a deterministic id and output path (``<output_dir>/<id>.png``
   or, for DICOM, the series folder ``<output_dir>/<id>/``, with the
   provenance sidecar ``<output_dir>/<id>.json``);
3. skips items that are already done: output and sidecar exist and the
   sidecar's ``batch.fingerprint`` (inputs, settings, model, dtype) equals this
   run's; a finished item from *other* settings is an error unless
   ``overwrite`` is set (results are never replaced silently);
4. shares the pending items out over the ``torch.distributed`` ranks when a
   process group is initialised (``pending[rank::world]``), each item on
   exactly one rank;
5. writes each output atomically through :func:`radedit_core.workflow.edit_file`
   (output first, sidecar last, so a sidecar means a whole output);
6. gathers every rank's records and has rank 0 alone write the merged
   manifest (``manifest.json`` and ``manifest.csv``).

The item id names *what* is edited (image, masks, prompts and per-row
overrides); the run's settings say *how*.  Changing a prompt gives new items
beside the old ones; changing the steps of a finished run is a conflict.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from ._version import __version__
from .errors import ConfigError, InputError, ModelNotFoundError, OutputError, RadEditError
from .fileio import atomic_path, full_suffix, write_json

log = logging.getLogger("radedit.batch")

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
MANIFEST_FIELDS = (
    "id", "row", "status", "seconds", "rank", "input", "edit_mask", "keep_mask", "prompt", "output", "sidecar", "error",
)  # fmt: skip

#: Per-row columns that override the run's settings, with their parser.
EDIT_OVERRIDES = {
    "seed": "int",
    "guidance": "floats",
    "steps": "int",
    "skip_ratio": "float",
    "eta": "float",
    "keep_mode": "str",
    "dilate": "int",
    "invert_prompt": "str",
    "invert_guidance": "float",
    "detail": "str",
}
EDIT_COLUMNS = ("id", "image", "edit_mask", "keep_mask", "prompt", "global_edit", *EDIT_OVERRIDES)
GENERATE_OVERRIDES = {"seed": "int", "guidance": "float", "steps": "int", "negative_prompt": "str"}
GENERATE_COLUMNS = ("id", "prompt", *GENERATE_OVERRIDES)

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
_RESERVED_IDS = {"manifest", "generated"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_MAX_REPORTED = 20


# -- small parsers -----------------------------------------------------------
def _is_missing(value: Any) -> bool:
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


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")[:limit].strip("_-")
    return slug or "item"


def _stem(path: str) -> str:
    p = Path(str(path))
    name = p.name
    suffix = full_suffix(p) if p.suffix else ""
    return name[: len(name) - len(suffix)] if suffix else name


def item_id(label: str, content: dict[str, Any]) -> str:
    """``<readable label>-<8 hex digits of the content hash>``: stable over runs and row order."""
    text = json.dumps(content, sort_keys=True, default=str)
    return f"{_slug(label)}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _canonical(value: Any) -> Any:
    """JSON round trip, so that tuples, paths and numbers compare as the sidecar stores them."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# -- datalists ---------------------------------------------------------------
@dataclass
class Row:
    """One datalist row as read: ``number`` is 1-based over the data rows."""

    number: int
    values: dict[str, Any]
    where: str  # "row 3" / "row 3 (line 4)"


def read_datalist(path: str | Path) -> list[Row]:
    """Rows of a JSON (a list of objects, or ``{"items": [...]}``) or CSV (with a header) datalist."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "datalist does not exist" if not path.exists() else "datalist is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the datalist ({exc})") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            # MONAI datalists keep their rows under a key ("testing" in decathlon lists).
            keys = [k for k in ("items", "data", "testing") if isinstance(data.get(k), list)]
            if len(keys) != 1:
                raise InputError(path, 'expected a list of rows, or an object with one "items" list')
            data = data[keys[0]]
        if not isinstance(data, list):
            raise InputError(path, "expected a list of rows (objects)")
        rows = []
        for k, entry in enumerate(data, start=1):
            if not isinstance(entry, dict):
                raise InputError(path, f"row {k}: expected an object with image, edit_mask, keep_mask, prompt")
            rows.append(Row(k, dict(entry), f"row {k}"))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames:
            raise InputError(path, "empty CSV (a header row naming the columns is needed)")
        header = [h.strip() for h in reader.fieldnames]
        if len(set(header)) != len(header):
            raise InputError(path, f"repeated column names in the header {header}")
        rows = []
        for k, record in enumerate(reader, start=1):
            if None in record:
                raise InputError(path, f"row {k} (line {reader.line_num}): more values than header columns")
            values = {key.strip(): (v.strip() if isinstance(v, str) else v) for key, v in record.items()}
            if all(_is_missing(v) for v in values.values()):
                continue  # blank lines in spreadsheets exports
            rows.append(Row(k, values, f"row {k} (line {reader.line_num})"))
    else:
        raise InputError(path, f"unsupported datalist type '{suffix}'; use .json or .csv")
    if not rows:
        raise InputError(path, "the datalist has no rows")
    return rows


def _resolve(base: Path | None, value: Any) -> str:
    """A path for reading: datalist-relative paths joined to the datalist's folder, then absolute."""
    text = str(value).strip()
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / text
    return os.path.abspath(path)


def split_mask_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``seg.dcm#lungs`` -> (``seg.dcm``, ``"lungs"``): the labels that make the mask.

    After the ``#``: a DICOM SEG segment label or number, a Slicer segment
    name, or a label value of a label map; several separated by commas give
    their union.  ``::`` works the same, because MONAI's config parser
    rewrites every ``#`` in a string to ``::`` (its id separator).  A path that
    exists as written is never split, so a file whose name holds a ``#`` still
    works.
    """
    text = str(spec)
    if Path(text).exists():
        return Path(text), None
    for separator in ("::", "#"):
        if separator in text:
            path, select = text.rsplit(separator, 1)
            return Path(path), (select.strip() or None)
    return Path(text), None


def _resolve_mask(base: Path | None, value: Any) -> str:
    path, select = split_mask_spec(str(value).strip())
    resolved = _resolve(base, path)
    return resolved if select is None else f"{resolved}#{select}"


def mask_ref(spec: str | Path) -> Any:
    """What :func:`~radedit_core.workflow.edit_file` takes for a mask spec: a path, or a
    :class:`~radedit_core.imaging.io.MaskRef` naming the chosen labels (DICOM SEG segment
    labels or numbers, Slicer segment names, label-map values)."""
    path, select = split_mask_spec(spec)
    if select is None:
        return path
    from .imaging.io import MaskRef  # noqa: PLC0415

    return MaskRef(path, select)


def _rebuild(report: tuple[str, str]) -> RadEditError:
    """An error another rank reported (by class name and message) as the same kind here."""
    name, message = report
    if name == "OutputError":
        return OutputError(message)
    if name == "ConfigError":
        return ConfigError(message)
    if name == "ModelNotFoundError":
        return ModelNotFoundError(message)
    return InputError(None, message)


class Problems(list):
    """Problems found in rows, reported together; a lone kind of problem keeps its error class."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: set[type[RadEditError]] = set()

    def add(self, where: str, problem: Any, kind: type[RadEditError] = InputError) -> None:
        self.append(f"{where}: {problem}" if where else str(problem))
        self.kinds.add(type(problem) if isinstance(problem, RadEditError) else kind)

    def raise_if_any(self, source: str | Path | None) -> None:
        if self:
            raise self.exception(source)

    def exception(self, source: str | Path | None) -> RadEditError:
        return _errors_to_exception(source, self, self.kinds.pop() if len(self.kinds) == 1 else None)


def _errors_to_exception(
    source: str | Path | None, errors: Sequence[str], kind: type[RadEditError] | None = None
) -> RadEditError:
    """One error naming ``source`` (the datalist) and each bad row; ``kind`` keeps a lone error's class."""
    shown = list(errors[:_MAX_REPORTED])
    if len(errors) > _MAX_REPORTED:
        shown.append(f"... and {len(errors) - _MAX_REPORTED} more")
    problem = shown[0] if len(errors) == 1 else f"{len(errors)} problems:\n  " + "\n  ".join(shown)
    kind = kind or InputError
    if issubclass(kind, InputError):
        return kind(source, problem)
    return kind(problem if source is None else f"{source}: {problem}")


# -- items -------------------------------------------------------------------
@dataclass
class Item:
    """One unit of work with its deterministic id and its output paths."""

    id: str
    row: int
    where: str
    kind: str  # "edit" | "generate"
    prompt: list[str]
    image: str | None = None
    edit_mask: str | None = None
    keep_mask: str | None = None
    settings: Any = None  # EditSettings for edits, dict for generation
    output: Path | None = None
    sidecar: Path | None = None
    output_format: str = "png"
    fingerprint: dict[str, Any] = field(default_factory=dict)
    #: The paths as the user wrote them (datalist-relative or as given): ids
    #: and fingerprints use these, so moving a data folder with its datalist
    #: keeps both, and reading uses the resolved ones above.
    written: dict[str, Any] = field(default_factory=dict)

    def record(self, status: str, seconds: float = 0.0, rank: int | None = None, error: str = "") -> dict[str, Any]:
        """A manifest line; ``rank`` is the rank that processed the item (none for skipped items)."""
        return {
            "id": self.id,
            "row": self.row,
            "status": status,
            "seconds": round(seconds, 3),
            "rank": "" if rank is None else rank,
            "input": self.image or "",
            "edit_mask": self.edit_mask or "",
            "keep_mask": self.keep_mask or "",
            "prompt": " | ".join(self.prompt),
            "output": str(self.output),
            "sidecar": str(self.sidecar),
            "error": error,
        }


def _check_columns(row: Row, known: Sequence[str], problems: Problems) -> bool:
    unknown = sorted(set(row.values) - set(known))
    if unknown:
        problems.add(row.where, f"unknown columns {unknown}; known: {list(known)}")
        return False
    return True


def _explicit_id(row: Row, problems: Problems) -> str | None:
    value = row.values.get("id")
    if _is_missing(value):
        return None
    text = str(value).strip()
    if not _ID_RE.match(text) or text.lower() in _RESERVED_IDS:
        problems.add(
            row.where,
            f"id {text!r} must be 1-128 letters, digits, '_' or '-' (no dots or "
            f"slashes), start with a letter or digit, and not be {sorted(_RESERVED_IDS)}",
        )
        return None
    return text


def _check_unique(items: list[Item], problems: Problems) -> None:
    seen: dict[str, Item] = {}
    for item in items:
        first = seen.get(item.id.lower())  # case-insensitive file systems
        if first is not None:
            problems.add(
                item.where,
                f"repeats {first.where} (same id {item.id!r}); give the rows distinct "
                "'id' values or remove the duplicate"
            )
        else:
            seen[item.id.lower()] = item


def _output_format(image: str, requested: str) -> str:
    from .imaging.io import image_format  # noqa: PLC0415

    requested = (requested or "auto").lower().lstrip(".")
    source = Path(image.split("::", 1)[0])
    try:
        fmt = image_format(source) if source.exists() else _format_from_name(source)
    except InputError:
        fmt = _format_from_name(source)
    if requested == "auto":
        if fmt == "dicom":
            return "dicom"
        suffix = full_suffix(source)
        return suffix.lstrip(".") if suffix in (".png", ".nii", ".nii.gz", ".nrrd") else "nii.gz"
    if requested not in ("dicom", "png", "nii", "nii.gz", "nrrd"):
        raise ConfigError(f"output_format must be auto, dicom, png, nii.gz or nrrd, got {requested!r}")
    if requested == "dicom" and fmt != "dicom":
        raise ConfigError(f"output_format dicom needs a DICOM input; {image} is {fmt}")
    return requested


def _format_from_name(path: Path) -> str:
    suffix = full_suffix(path)
    return {".png": "png", ".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd"}.get(suffix, "dicom")


def _place(item: Item, output_dir: Path) -> None:
    if item.output_format == "dicom":
        item.output = output_dir / item.id  # a series folder
    else:
        item.output = output_dir / f"{item.id}.{item.output_format}"
    item.sidecar = output_dir / f"{item.id}.json"


def _normalise_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """``prompt``/``guidance`` (the names users type) -> ``prompts``/``weights`` (EditSettings')."""
    out = dict(settings or {})
    for short, long in (("prompt", "prompts"), ("guidance", "weights")):
        if short in out:
            value = out.pop(short)
            if out.get(long) is None:
                out[long] = value
    return out


def is_datalist(path: Any) -> bool:
    return not _is_missing(path) and Path(str(path)).suffix.lower() in (".json", ".csv", ".tsv")


def edit_items(
    *,
    input: str | Path | None = None,
    edit_mask: str | Path | None = None,
    keep_mask: str | Path | None = None,
    datalist: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    global_edit: bool = False,
    output_dir: str | Path = ".",
    output_format: str = "auto",
) -> list[Item]:
    """The edit items of one image or of a datalist, checked and placed (no file is read but the datalist).

    ``settings`` are the run's :class:`EditSettings` values; a datalist row
    may override the prompt and the keys of :data:`EDIT_OVERRIDES`.  Relative
    paths in a datalist are relative to the datalist's folder.  An ``input``
    ending in .json/.csv is taken as the datalist.
    """
    settings = _normalise_settings(settings)
    # The run's own settings must be valid whether or not every row brings a prompt.
    edit_settings(settings, prompts=settings.get("prompts") or "-")
    output_dir = Path(output_dir)
    if _is_missing(datalist) and is_datalist(input):
        datalist, input = input, None
    if _is_missing(datalist):
        if _is_missing(input):
            raise ConfigError("input: give an image (input) or a datalist (datalist)")
        rows = [Row(0, {"image": str(input), "edit_mask": edit_mask, "keep_mask": keep_mask}, "")]
        base, source = None, None
    else:
        rows = read_datalist(datalist)
        base, source = Path(str(datalist)).parent, Path(str(datalist))
    global_default = coerce("global_edit", global_edit, "bool")
    problems = Problems()
    items: list[Item] = []
    for row in rows:
        if not _check_columns(row, EDIT_COLUMNS, problems):
            continue
        v = row.values
        if _is_missing(v.get("image")):
            problems.add(row.where, "no image")
            continue
        explicit = _explicit_id(row, problems)
        try:
            flag = v.get("global_edit")
            whole = coerce("global_edit", global_default if _is_missing(flag) else flag, "bool")
            overrides = {k: coerce(k, v[k], kind) for k, kind in EDIT_OVERRIDES.items() if not _is_missing(v.get(k))}
            row_settings = dict(settings)
            if not _is_missing(v.get("prompt")) and v.get("prompt") != []:
                row_settings["prompts"] = v["prompt"]
            if "guidance" in overrides:
                row_settings["weights"] = overrides["guidance"]
            row_settings.update({k: x for k, x in overrides.items() if k != "guidance"})
            item_settings = edit_settings(row_settings)
        except ConfigError as exc:
            problems.add(row.where, exc)
            continue
        written = {
            key: None if _is_missing(v.get(key)) else str(v[key]).strip() for key in ("image", "edit_mask", "keep_mask")
        }
        for key in ("edit_mask", "keep_mask"):
            if written[key] is not None:  # one spelling of a segment choice, whichever way it came
                path, select = split_mask_spec(written[key])
                written[key] = str(path) if select is None else f"{path}#{select}"
        paths = {key: None if w is None else _resolve_mask(base, w) for key, w in written.items()}
        if paths["edit_mask"] is None and not whole:
            problems.add(row.where, "no edit_mask (set global_edit to true to edit the whole image)")
            continue
        if paths["edit_mask"] is not None and whole:
            problems.add(row.where, "edit_mask and global_edit exclude each other")
            continue
        try:
            fmt = _output_format(paths["image"], output_format)
        except ConfigError as exc:
            problems.add(row.where, exc)
            continue
        content = {**written, "prompts": item_settings.prompts, "overrides": dict(sorted(overrides.items()))}
        item = Item(
            id=explicit or item_id(_stem(written["image"]), content),
            row=row.number,
            where=row.where,
            kind="edit",
            prompt=list(item_settings.prompts),
            image=paths["image"],
            edit_mask=paths["edit_mask"],
            keep_mask=paths["keep_mask"],
            settings=item_settings,
            output_format=fmt,
            written=written,
        )
        _place(item, output_dir)
        items.append(item)
    _check_unique(items, problems)
    problems.raise_if_any(source)
    return items


def generate_items(
    *,
    prompt: str | Sequence[str] | None = None,
    datalist: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    num_images: int = 1,
    output_dir: str | Path = ".",
) -> list[Item]:
    """Text-to-image items: each prompt (or datalist row) gives ``num_images`` items, image j with seed + j."""
    base = {"steps": DEFAULT_GENERATE_STEPS, "guidance": DEFAULT_GENERATE_GUIDANCE, "seed": 0, "negative_prompt": ""}
    for key, value in (settings or {}).items():
        if key not in base:
            raise ConfigError(f"unknown generation setting {key!r}; known: {sorted(base)}")
        if value is not None:
            base[key] = coerce(key, value, GENERATE_OVERRIDES[key])
    if base["steps"] < 1:
        raise ConfigError(f"steps must be >= 1, got {base['steps']}")
    num_images = coerce("num_images", num_images, "int")
    if num_images < 1:
        raise ConfigError(f"num_images must be >= 1, got {num_images}")
    if datalist is None or _is_missing(datalist):
        prompts = [] if prompt is None else coerce("prompt", prompt, "strs")
        if not [p for p in prompts if p.strip()]:
            raise ConfigError("prompt: generation needs at least one prompt")
        rows = [Row(k, {"prompt": p}, f"prompt {k}") for k, p in enumerate(prompts, start=1)]
        source = None
    else:
        rows = read_datalist(datalist)
        source = Path(datalist)
    problems = Problems()
    items: list[Item] = []
    for row in rows:
        if not _check_columns(row, GENERATE_COLUMNS, problems):
            continue
        text = row.values.get("prompt")
        if _is_missing(text):
            problems.add(row.where, "no prompt")
            continue
        explicit = _explicit_id(row, problems)
        try:
            overrides = {
                k: coerce(k, row.values[k], kind)
                for k, kind in GENERATE_OVERRIDES.items()
                if not _is_missing(row.values.get(k))
            }
        except ConfigError as exc:
            problems.add(row.where, exc)
            continue
        row_settings = {**base, **overrides}
        if row_settings["steps"] < 1:
            problems.add(row.where, "steps must be >= 1")
            continue
        for j in range(num_images):
            item_settings = dict(row_settings, seed=row_settings["seed"] + j)
            content = {"prompt": str(text), "seed": item_settings["seed"], "overrides": overrides}
            ident = explicit if explicit and num_images == 1 else None
            if explicit and num_images > 1:
                ident = f"{explicit}-{j}"
            item = Item(
                id=ident or item_id(str(text)[:24], content),
                row=row.number,
                where=row.where,
                kind="generate",
                prompt=[str(text)],
                settings=item_settings,
                output_format="png",
            )
            _place(item, Path(output_dir))
            items.append(item)
    _check_unique(items, problems)
    problems.raise_if_any(source)
    return items


# -- torch.distributed -------------------------------------------------------
@dataclass
class Ranks:
    """This process's place among the ranks; collectives are no-ops in one process."""

    rank: int = 0
    world: int = 1
    group: Any = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def current(cls) -> "Ranks":
        import torch.distributed as dist  # noqa: PLC0415

        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size()
            if world == 1:
                return cls()
            # Object collectives go over gloo: CPU pickles, whatever the main backend (NCCL) is.
            group = None
            if dist.get_backend() != "gloo":
                group = dist.new_group(backend="gloo", timeout=_dt.timedelta(seconds=_DIST_TIMEOUT_S[0]))
            return cls(dist.get_rank(), world, group)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(
                f"started as one of {os.environ['WORLD_SIZE']} processes (WORLD_SIZE) but torch.distributed "
                "is not initialised, so every process would do every item: add "
                "configs/multi_gpu_inference.json to --config_file, or call radedit_core.batch.init_distributed()"
            )
        return cls()

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        import torch.distributed as dist  # noqa: PLC0415

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist  # noqa: PLC0415

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist  # noqa: PLC0415

            dist.barrier(group=self.group)

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed; the first failing rank's error wins."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        message = None if error is None else (type(error).__name__, str(error))
        reports = self.all_gather(message)
        for rank, report in enumerate(reports):
            if report is not None:
                if error is not None and rank == self.rank:
                    raise error
                raise _rebuild(report)

    def shard(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.rank :: self.world])


#: The process group's timeout, for the gloo side group that carries the object collectives.
_DIST_TIMEOUT_S = [86400.0]


def _wants_cuda(device: Any) -> bool:
    import torch  # noqa: PLC0415

    text = "auto" if device is None else str(device)
    return text.startswith("cuda") or (text == "auto" and torch.cuda.is_available())


def init_distributed(device: Any = "auto", backend: str = "auto", timeout_s: float = 86400.0) -> Ranks:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment).

    ``backend="auto"``: NCCL when ``device`` means a GPU, gloo on the CPU. On
    GPUs each rank takes ``cuda:LOCAL_RANK``. Without torchrun's variables this
    is one process and nothing is initialised.  ``timeout_s`` bounds how long
    a rank that has finished its share waits in the final gather for the
    slowest one (torchrun stops every rank anyway if one dies).
    """
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed support")
    if dist.is_initialized():
        return Ranks.current()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        log.warning("not started by torchrun (no RANK/WORLD_SIZE in the environment): running as one process")
        return Ranks()
    cuda = _wants_cuda(device)
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} needs a CUDA GPU but none is available (use --device cpu)")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    _DIST_TIMEOUT_S[0] = float(timeout_s)
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=float(timeout_s)))
    ranks = Ranks.current()
    log.info("rank %d of %d joined the process group (%s)", ranks.rank, ranks.world, backend)
    return ranks


def destroy_distributed() -> None:
    import torch.distributed as dist  # noqa: PLC0415

    # No barrier here: the run already ends with one (over gloo), and an NCCL
    # collective would fail when several ranks share a GPU.
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: Any = "auto") -> str:
    """``auto``/``cuda`` -> this rank's GPU when distributed; anything else unchanged."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    text = "auto" if device is None else str(device)
    if text in ("auto", "cuda") and torch.cuda.is_available() and dist.is_available() and dist.is_initialized():
        return f"cuda:{torch.cuda.current_device()}"
    return text


def bundled_sample(data_dir: str | Path | None = None) -> dict[str, str]:
    """The sample the bundle edits by default: ``input``, ``edit_mask``, ``keep_mask``.

    The DICOM study in ``radedit_core/data/sample_study`` (its CR image, found
    by the reader, and the lungs and pacemaker segments of its SEG) when this
    installation has it, otherwise the PNG sample of ``radedit demo``.
    """
    from importlib import resources  # noqa: PLC0415

    data = Path(str(resources.files("radedit_core") / "data")) if data_dir is None else Path(data_dir)
    study = data / "sample_study"
    seg = _find_seg(study) if study.is_dir() else None
    if seg is not None:
        return {"input": str(study), "edit_mask": f"{seg}#lungs", "keep_mask": f"{seg}#pacemaker"}
    png = data / "sample"
    return {
        "input": str(png / "cxr.png"),
        "edit_mask": str(png / "lungs_mask.png"),
        "keep_mask": str(png / "pacemaker_mask.png"),
    }


def _find_seg(folder: Path) -> Path | None:
    import pydicom  # noqa: PLC0415

    segmentation = "1.2.840.10008.5.1.4.1.1.66.4"
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            try:
                header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            except Exception:  # noqa: BLE001 - not DICOM: not the SEG
                continue
            if str(header.get("SOPClassUID", "")) == segmentation:
                return path
    return None


def find_model(model: Any, search_dirs: Sequence[str | Path] = ()) -> str:
    """``radedit``/``tiny``, an existing folder or spec file, or a name/path inside one of ``search_dirs``.

    The bundle passes its ``models/`` folder, so ``model=my_weights`` finds
    ``models/my_weights/`` from any working directory.
    """
    if _is_missing(model):
        raise ConfigError("model: give 'radedit', 'tiny', a model folder or a spec file")
    text = str(model).strip()
    if text in ("radedit", "tiny") or Path(text).expanduser().exists():
        return text
    tried = []
    for folder in search_dirs:
        candidate = Path(str(folder)).expanduser() / text
        tried.append(str(candidate))
        if candidate.exists():
            return str(candidate)
    where = f" (also looked for {', '.join(tried)})" if tried else ""
    raise ConfigError(
        f"{text}: model not found{where}; use 'radedit' (published weights from the Hugging Face cache), "
        "'tiny' (offline demo model), a model folder (unet/, vae/, text_encoder/, tokenizer/) or a spec file"
    )


# -- resume ------------------------------------------------------------------
def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def item_state(item: Item, overwrite: bool = False) -> str:
    """``done``, ``pending``, ``redo`` (leftovers of an interrupted write, replaced) or ``conflict``."""
    assert item.output is not None and item.sidecar is not None
    has_output, has_sidecar = item.output.exists(), item.sidecar.exists()
    if not has_output and not has_sidecar:
        return "pending"
    if overwrite:
        return "redo"
    if has_output != has_sidecar:
        # edit_file writes the sidecar last and removes the output when it
        # fails, so a lone file is what a killed process leaves behind.
        return "redo"
    sidecar = _read_sidecar(item.sidecar)
    if sidecar is None:
        return "redo"
    recorded = (sidecar.get("batch") or {}).get("fingerprint")
    return "done" if recorded == _canonical(item.fingerprint) else "conflict"


def _conflict_message(item: Item) -> str:
    recorded = ((_read_sidecar(item.sidecar) or {}).get("batch") or {}).get("fingerprint") or {}
    current = _canonical(item.fingerprint)
    diffs = _diff(recorded, current)
    what = "; ".join(diffs[:4]) if diffs else "it was not written by a batch run"
    where = f"{item.where}: " if item.where else ""
    return (
        f"{where}{item.output} exists from another run ({what}); use another output_dir, "
        "or set overwrite to true to replace it"
    )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_leftovers(item: Item) -> None:
    """Temporary files of a killed atomic write of this item (``.<name>.*.part*``)."""
    for target in (item.output, item.sidecar):
        for stale in target.parent.glob(f".{target.name}.*.part*"):
            _remove(stale)


# -- manifest ----------------------------------------------------------------
def write_manifest(output_dir: Path, records: list[dict[str, Any]], header: dict[str, Any]) -> tuple[Path, Path]:
    """``manifest.json`` (run header + one record per item) and ``manifest.csv``, each atomically."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    json_path = write_json(output_dir / MANIFEST_JSON, {**header, "counts": counts, "items": records})
    csv_path = output_dir / MANIFEST_CSV
    with atomic_path(csv_path, overwrite=True) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for record in records:
                writer.writerow({k: record.get(k, "") for k in MANIFEST_FIELDS})
    return json_path, csv_path


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / MANIFEST_JSON).read_text())


# -- the runs ----------------------------------------------------------------
@dataclass
class BatchSummary:
    done: int
    skipped: int
    failed: int
    manifest: Path
    records: list[dict[str, Any]]

    def __str__(self) -> str:
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed; manifest {self.manifest}"


class _Batch:
    """What edit and generate runs share: checks, resume, sharding, manifest."""

    kind = "edit"

    def __init__(
        self,
        *,
        model: Any = "tiny",
        model_dirs: Sequence[Any] | None = None,
        device: Any = "auto",
        dtype: Any = "auto",
        vae_dtype: Any = "float32",
        trust_remote_code: Any = False,
        offline: Any = None,
        compile: Any = False,
        output_dir: Any = "radedit-batch",
        overwrite: Any = False,
        progress: Any = False,
        editor: Any = None,
    ):
        # Only stored here: run() checks them, so that every problem surfaces
        # the same way (a RadEditError from run), whoever constructs the job.
        self.params = dict(
            model=model, device=device, dtype=dtype, vae_dtype=vae_dtype, trust_remote_code=trust_remote_code,
            offline=offline, compile=compile, output_dir=output_dir, overwrite=overwrite, progress=progress,
        )  # fmt: skip
        self.model_dirs = [str(d) for d in (model_dirs or []) if not _is_missing(d)]
        self.editor = editor
        self.ranks = Ranks()

    def _check_params(self) -> None:
        p = self.params
        self.model = None if _is_missing(p["model"]) else str(p["model"])
        self.device = "auto" if _is_missing(p["device"]) else str(p["device"])
        self.dtype = "auto" if _is_missing(p["dtype"]) else str(p["dtype"])
        self.vae_dtype = "float32" if _is_missing(p["vae_dtype"]) else str(p["vae_dtype"])
        self.trust_remote_code = coerce("trust_remote_code", p["trust_remote_code"], "bool")
        self.offline = None if p["offline"] is None else coerce("offline", p["offline"], "bool")
        self.compile = coerce("compile", p["compile"], "bool")
        if _is_missing(p["output_dir"]):
            raise ConfigError("output_dir: an output folder is needed")
        self.output_dir = Path(str(p["output_dir"])).expanduser()
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise OutputError(f"{self.output_dir}: output_dir exists and is not a folder")
        self.overwrite = coerce("overwrite", p["overwrite"], "bool")
        self.progress = coerce("progress", p["progress"], "bool")
        if self.editor is None:
            self.model = find_model(self.model, self.model_dirs)

    # subclasses: build items, check one item deeply, process one item
    def build_items(self) -> list[Item]:
        raise NotImplementedError

    def check_item(self, item: Item) -> None:
        pass

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        raise NotImplementedError

    def source(self) -> str | None:
        return None

    # -- model --------------------------------------------------------------
    def _model_fingerprint(self) -> dict[str, Any]:
        """What of the model decides the pixels: its sources and revisions, the dtypes."""
        if self.editor is not None:
            prov = self.editor.components.provenance()
            spec = self.editor.components.spec.to_dict()
            return {"spec": spec, "dtype": prov["dtype"], "vae_dtype": prov["vae_dtype"]}
        from .models.loading import dtype_name, resolve_device, resolve_dtype  # noqa: PLC0415
        from .models.spec import ModelSpec  # noqa: PLC0415

        spec = ModelSpec.resolve(self.model)
        device = resolve_device(rank_device(self.device))
        return {
            "spec": spec.to_dict(),
            "dtype": dtype_name(resolve_dtype(self.dtype, device)),
            "vae_dtype": dtype_name(resolve_dtype(self.vae_dtype, device)),
        }

    def _load_editor(self):
        if self.editor is not None:
            return self.editor
        from .cli import _quiet_libraries  # noqa: PLC0415
        from .workflow import RadEditor  # noqa: PLC0415

        _quiet_libraries()
        editor = RadEditor.load(
            str(self.model),
            device=rank_device(self.device),
            dtype=self.dtype,
            vae_dtype=self.vae_dtype,
            trust_remote_code=self.trust_remote_code,
            local_files_only=True if self.offline else None,
            compile_unet=self.compile,
        )
        editor.set_progress(self.progress)
        return editor

    # -- the run ------------------------------------------------------------
    def run(self) -> BatchSummary:
        self.ranks = ranks = Ranks.current()
        prefix = f"[rank {ranks.rank}/{ranks.world}] " if ranks.distributed else ""

        # 1. parameters and rows, identical on every rank, before anything is written
        error: BaseException | None = None
        items: list[Item] = []
        try:
            self._check_params()
            model_fp = self._model_fingerprint()
            items = self.build_items()
            for item in items:
                item.fingerprint = self.fingerprint(item, model_fp)
        except RadEditError as exc:
            error = exc
        ranks.agree(error)

        # 2. which items are done: rank 0 looks, every rank gets the same answer
        states = None
        if ranks.rank == 0:
            try:
                states = [item_state(item, self.overwrite) for item in items]
                conflicts = [_conflict_message(it) for it, s in zip(items, states) if s == "conflict"]
                if conflicts:
                    raise _errors_to_exception(self.source(), conflicts, OutputError)
                states = ("ok", states)
            except RadEditError as exc:
                states = ("error", (type(exc).__name__, str(exc)))
        states = ranks.broadcast(states)
        if states[0] == "error":
            raise _rebuild(states[1])
        states = states[1]
        pending = [(item, state) for item, state in zip(items, states) if state in ("pending", "redo")]
        mine = ranks.shard(pending)

        # 3. read every pending input of this rank's share; no rank starts before all are good
        problems = Problems()
        for item, _ in mine:
            try:
                self.check_item(item)
            except RadEditError as exc:
                problems.add(item.where, exc)
        ranks.agree(problems.exception(self.source()) if problems else None)

        # 4. the work
        records: list[dict[str, Any]] = []
        if mine:
            log.info("%s%d of %d items to do here (%d already done)", prefix, len(mine), len(items),
                     states.count("done"))  # fmt: skip
            editor = self._load_editor()
            for k, (item, state) in enumerate(mine, start=1):
                _remove_leftovers(item)
                t0 = time.perf_counter()
                try:
                    self.process(editor, item, overwrite=state == "redo")
                except RadEditError as exc:
                    records.append(item.record("failed", time.perf_counter() - t0, ranks.rank, str(exc)))
                    log.error("%s%s failed: %s", prefix, item.id, exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad item must not lose the others
                    records.append(item.record("failed", time.perf_counter() - t0, ranks.rank, repr(exc)))
                    log.exception("%s%s failed", prefix, item.id)
                    continue
                seconds = time.perf_counter() - t0
                records.append(item.record("done", seconds, ranks.rank))
                log.info("%s[%d/%d] %s -> %s (%.1f s)", prefix, k, len(mine), item.id, item.output, seconds)

        # 5. merged manifest, once, by rank 0 after every rank is finished
        gathered = ranks.all_gather(records)
        by_id = {r["id"]: r for part in gathered for r in part}
        if len(by_id) != sum(len(part) for part in gathered):  # pragma: no cover - a sharding bug
            log.error("some items were processed on more than one rank: %s", [len(p) for p in gathered])
        merged = [by_id.get(item.id) or item.record("skipped") for item in items]
        manifest = self.output_dir / MANIFEST_JSON
        if ranks.rank == 0:
            header = {
                "tool": "radedit_core",
                "version": __version__,
                "kind": self.kind,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "source": self.source(),
                "output_dir": str(self.output_dir),
                "world_size": ranks.world,
                # items each rank processed in this run: their sum is the "done" + "failed" count
                "processed_per_rank": [len(part) for part in gathered],
            }
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(self.output_dir, merged, header)
        ranks.barrier()
        summary = BatchSummary(
            done=sum(r["status"] == "done" for r in merged),
            skipped=sum(r["status"] == "skipped" for r in merged),
            failed=sum(r["status"] == "failed" for r in merged),
            manifest=manifest,
            records=merged,
        )
        if ranks.rank == 0:
            log.info("%s", summary)
        if summary.failed:
            first = next(r for r in merged if r["status"] == "failed")
            raise RadEditError(
                f"{summary.failed} of {len(merged)} items failed (first: {first['id']}: {first['error']}); "
                f"see {manifest}; run again to retry them, finished items are skipped"
            )
        return summary

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _batch_block(self, item: Item) -> dict[str, Any]:
        return {
            "id": item.id,
            "row": item.row,
            "source": self.source(),
            "rank": self.ranks.rank,
            "world_size": self.ranks.world,
            "fingerprint": _canonical(item.fingerprint),
        }


class EditBatch(_Batch):
    """Edit one image or every row of a datalist; see the module docstring.

    ``settings``: the run's :class:`~radedit_core.workflow.EditSettings` values
    (``prompts``/``prompt``, ``weights``/``guidance``, ``steps``, ...; ``None``
    means the default). ``input``/``edit_mask``/``keep_mask`` describe one
    image and are ignored when ``datalist`` is given.
    """

    kind = "edit"

    def __init__(
        self,
        *,
        input: Any = None,
        edit_mask: Any = None,
        keep_mask: Any = None,
        datalist: Any = None,
        settings: dict[str, Any] | None = None,
        global_edit: Any = False,
        output_format: str = "auto",
        write_output: Callable | None = None,
        **common: Any,
    ):
        super().__init__(**common)
        self.input = None if _is_missing(input) else str(input)
        self.edit_mask = None if _is_missing(edit_mask) else str(edit_mask)
        self.keep_mask = None if _is_missing(keep_mask) else str(keep_mask)
        self.datalist = None if _is_missing(datalist) else str(datalist)
        self.settings = dict(settings or {})
        self.global_edit = global_edit
        self.output_format = output_format or "auto"
        self.write_output = write_output

    def source(self) -> str | None:
        return self.datalist

    def build_items(self) -> list[Item]:
        return edit_items(
            input=self.input,
            edit_mask=self.edit_mask,
            keep_mask=self.keep_mask,
            datalist=self.datalist,
            settings=self.settings,
            global_edit=self.global_edit,
            output_dir=self.output_dir,
            output_format=self.output_format,
        )

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "edit",
            "input": item.written["image"],
            "edit_mask": item.written["edit_mask"],
            "keep_mask": item.written["keep_mask"],
            "settings": item.settings.to_dict(),
            "output_format": item.output_format,
            "model": model_fp,
        }

    def check_item(self, item: Item) -> None:
        from .imaging.io import read_image, read_mask_array  # noqa: PLC0415
        from .imaging.masks import make_masks  # noqa: PLC0415

        image = read_image(item.image)
        edit = None if item.edit_mask is None else read_mask_array(mask_ref(item.edit_mask), image)
        keep = None if item.keep_mask is None else read_mask_array(mask_ref(item.keep_mask), image)
        # Dilation never makes an empty or misplaced mask usable: check without it.
        make_masks(image, edit, keep, soft=item.settings.soft_masks, edit_path=item.edit_mask, keep_path=item.keep_mask)

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from .workflow import edit_file  # noqa: PLC0415

        edit_file(
            editor,
            item.image,
            item.output,
            item.settings,
            edit_mask_path=None if item.edit_mask is None else mask_ref(item.edit_mask),
            keep_mask_path=None if item.keep_mask is None else mask_ref(item.keep_mask),
            overwrite=overwrite,
            write_output=self._writer(item),
        )

    def _writer(self, item: Item) -> Callable:
        custom = self.write_output
        block = self._batch_block(item)

        def write(result, output, overwrite):
            # edit_file writes the sidecar from result.provenance after this returns.
            result.provenance["batch"] = block
            if custom is not None:
                return custom(result, output, overwrite)
            if item.output_format == "dicom":
                return write_dicom_output(result, output, overwrite)
            from .imaging.io import write_like  # noqa: PLC0415

            return write_like(output, result.image.array, result.image, overwrite=overwrite)

        return write


def write_dicom_output(result: Any, output: Path, overwrite: bool) -> Any:
    """The edit as a derived DICOM series in the folder ``output``."""
    try:
        from .dicom import write_derived_series  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(f"DICOM output is not available in this installation ({exc})") from exc
    return write_derived_series(result, output, overwrite=overwrite)


class GenerateBatch(_Batch):
    """Text-to-image samples, one PNG + sidecar per (prompt, seed), with the same resume and sharding."""

    kind = "generate"

    def __init__(
        self,
        *,
        prompt: Any = None,
        datalist: Any = None,
        settings: dict[str, Any] | None = None,
        num_images: Any = 1,
        bits: Any = 8,
        **common: Any,
    ):
        super().__init__(**common)
        self.prompt = prompt
        self.datalist = None if _is_missing(datalist) else str(datalist)
        self.settings = dict(settings or {})
        self.num_images = num_images
        self.bits = bits

    def _check_params(self) -> None:
        super()._check_params()
        self.bits = coerce("bits", self.bits, "int")
        if self.bits not in (8, 16):
            raise ConfigError(f"bits must be 8 or 16, got {self.bits}")

    def source(self) -> str | None:
        return self.datalist

    def build_items(self) -> list[Item]:
        return generate_items(
            prompt=self.prompt,
            datalist=self.datalist,
            settings=self.settings,
            num_images=self.num_images,
            output_dir=self.output_dir,
        )

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "generate",
            "prompt": item.prompt[0],
            "settings": item.settings,
            "bits": self.bits,
            "model": model_fp,
        }

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from .fileio import check_writable  # noqa: PLC0415
        from .imaging.image import Geometry  # noqa: PLC0415
        from .imaging.io import write_image  # noqa: PLC0415
        from .workflow import model_image_to_array  # noqa: PLC0415

        check_writable(item.output, overwrite)
        check_writable(item.sidecar, overwrite)
        s = item.settings
        out = editor.generate(
            item.prompt, steps=s["steps"], guidance=s["guidance"], seed=s["seed"], negative_prompt=s["negative_prompt"]
        )
        write_image(item.output, model_image_to_array(out.images[0], self.bits), Geometry(), overwrite=overwrite)
        sidecar = {
            "tool": "radedit_core",
            "version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "prompt": item.prompt[0],
            "model": editor.components.provenance(),
            "settings": {**s, "scheduler": "DDIM, eta 0", "bits": self.bits},
            "timings_s": getattr(out, "timings", {}),
            "output": {"path": str(item.output)},
            "batch": self._batch_block(item),
        }
        try:
            write_json(item.sidecar, sidecar, overwrite=overwrite)
        except Exception:
            _remove(item.output)
            raise


__all__ = [
    "BatchSummary",
    "EditBatch",
    "bundled_sample",
    "GenerateBatch",
    "Item",
    "Ranks",
    "coerce",
    "destroy_distributed",
    "edit_items",
    "edit_settings",
    "find_model",
    "generate_items",
    "init_distributed",
    "item_state",
    "mask_ref",
    "rank_device",
    "read_datalist",
    "read_manifest",
    "split_mask_spec",
    "write_manifest",
]
