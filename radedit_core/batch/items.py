"""Items: one unit of work each (an image with its masks and prompt, or a prompt to sample), with a
deterministic id and output paths."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, InputError
from ..fileio import full_suffix
from ..settings import DEFAULT_GENERATE_GUIDANCE, DEFAULT_GENERATE_STEPS, coerce, edit_settings, is_missing
from .datalist import Problems, Row, _resolve_mask, read_datalist, split_mask_spec

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
_RESERVED_IDS = {"manifest", "generated"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
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
    if is_missing(value):
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
    from ..imaging.io import image_format  # noqa: PLC0415

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
    return not is_missing(path) and Path(str(path)).suffix.lower() in (".json", ".csv", ".tsv")


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
    if is_missing(datalist) and is_datalist(input):
        datalist, input = input, None
    if is_missing(datalist):
        if is_missing(input):
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
        if is_missing(v.get("image")):
            problems.add(row.where, "no image")
            continue
        explicit = _explicit_id(row, problems)
        try:
            flag = v.get("global_edit")
            whole = coerce("global_edit", global_default if is_missing(flag) else flag, "bool")
            overrides = {k: coerce(k, v[k], kind) for k, kind in EDIT_OVERRIDES.items() if not is_missing(v.get(k))}
            row_settings = dict(settings)
            if not is_missing(v.get("prompt")) and v.get("prompt") != []:
                row_settings["prompts"] = v["prompt"]
            if "guidance" in overrides:
                row_settings["weights"] = overrides["guidance"]
            row_settings.update({k: x for k, x in overrides.items() if k != "guidance"})
            item_settings = edit_settings(row_settings)
        except ConfigError as exc:
            problems.add(row.where, exc)
            continue
        written = {
            key: None if is_missing(v.get(key)) else str(v[key]).strip() for key in ("image", "edit_mask", "keep_mask")
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
    if datalist is None or is_missing(datalist):
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
        if is_missing(text):
            problems.add(row.where, "no prompt")
            continue
        explicit = _explicit_id(row, problems)
        try:
            overrides = {
                k: coerce(k, row.values[k], kind)
                for k, kind in GENERATE_OVERRIDES.items()
                if not is_missing(row.values.get(k))
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


