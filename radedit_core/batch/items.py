"""Items: one unit of work each (an image with its masks and prompt, or a prompt to sample), with a
deterministic id and output paths."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, InputError
from ..fileio import full_suffix
from ..imaging.mask_ref import MaskRef, parse_mask_ref
from ..outputs import output_format_for_source, sidecar_path
from ..settings import EditSettings, GenerateSettings, bundle_name, coerce, is_missing, row_name
from .datalist import Problems, Row, read_datalist

#: Per-row columns that override the run's settings (parsed by the settings layer).
EDIT_OVERRIDES = (
    "seed", "guidance", "steps", "skip_ratio", "eta", "keep_mode", "dilate", "invert_prompt", "invert_guidance",
    "detail", "keep_scope",
)  # fmt: skip
EDIT_COLUMNS = ("id", "image", "edit_mask", "keep_mask", "prompt", "global_edit", *EDIT_OVERRIDES)
GENERATE_OVERRIDES = ("seed", "guidance", "steps", "negative_prompt")
GENERATE_COLUMNS = ("id", "prompt", *GENERATE_OVERRIDES)
_OVERRIDE_KINDS = {
    "seed": "int", "guidance": "floats", "steps": "int", "skip_ratio": "float", "eta": "float", "keep_mode": "str",
    "dilate": "int", "invert_prompt": "str", "invert_guidance": "float", "detail": "str", "keep_scope": "str", "negative_prompt": "str",
}  # fmt: skip
#: The generation settings an item's output depends on (its fingerprint).
_GENERATE_FINGERPRINT = ("steps", "guidance", "seed", "negative_prompt")
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
    """``<readable label>-<16 hex digits of the content hash>``: stable over runs and row order.

    64 bits of SHA-256: a million items collide with a probability of about 3e-8 (32 bits collided
    in a sweep of 400 000 edits).
    """
    text = json.dumps(content, sort_keys=True, default=str)
    return f"{_slug(label)}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


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
    settings: Any = None  # EditSettings or GenerateSettings
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


def _source_format(image: str) -> tuple[str, str]:
    """(format name, suffix) of an input image, from the file if it exists, else from its name."""
    from ..imaging.io import image_format  # noqa: PLC0415

    source = Path(image)
    suffix = full_suffix(source)
    try:
        fmt = image_format(source) if source.exists() else None
    except InputError:
        fmt = None
    if fmt is None:
        fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd"}.get(
            suffix, "dicom"
        )
    return fmt, suffix


def _place(item: Item, output_dir: Path, suffix: str) -> None:
    """``<id><suffix>`` (``<id>/`` for a DICOM series) and its sidecar in ``output_dir``."""
    item.output = output_dir / f"{item.id}{suffix}"
    item.sidecar = sidecar_path(item.output)


def _no_prompt(value: Any) -> bool:
    return is_missing(value) or value == []


def is_datalist(path: Any) -> bool:
    return not is_missing(path) and Path(str(path)).suffix.lower() in (".json", ".csv", ".tsv")


def _mask(value: Any, base: Path | None, name: str) -> tuple[str | None, str | None]:
    """(as written, resolved for reading) spellings of a mask reference, both as ``PATH#LABELS``."""
    if is_missing(value):
        return None, None
    text = str(value).strip()
    resolved = parse_mask_ref(text, name=name, base=base)
    if resolved is None:
        return None, None
    if resolved.labels is None:
        written = MaskRef(text)
    else:
        # One spelling of a segment choice, whichever separator it came with.
        head = text.rsplit("::", 1)[0] if "::" in text else text.rsplit("#", 1)[0]
        written = MaskRef(head.strip(), resolved.labels)
    absolute = MaskRef(os.path.abspath(resolved.path), resolved.labels)
    return written.spec(), absolute.spec()


def edit_items(
    *,
    input: str | Path | None = None,
    edit_mask: str | Path | None = None,
    keep_mask: str | Path | None = None,
    datalist: str | Path | None = None,
    split: Any = None,
    settings: dict[str, Any] | None = None,
    global_edit: bool = False,
    output_dir: str | Path = ".",
    output_format: str = "auto",
) -> list[Item]:
    """The edit items of one image or of a datalist, checked and placed (no file is read but the datalist).

    ``settings`` are the run's :class:`EditSettings` values (bundle ids:
    ``prompt``, ``guidance``, ``steps``, ...; ``None`` = the default); a
    datalist row may override the prompt and the columns of
    :data:`EDIT_OVERRIDES`.  Relative paths in a datalist are relative to the
    datalist's folder.  An ``input`` ending in .json/.csv is taken as the
    datalist; ``split`` names the lists of a MONAI datalist to read (default:
    every list, :data:`~radedit_core.settings.DATALIST_RULE`).
    """
    run_settings = dict(settings or {})
    # The run's own settings must be valid whether or not every row brings a prompt.
    EditSettings.from_mapping({**run_settings, "prompt": run_settings.get("prompt") or "-"}, bundle_name)
    output_dir = Path(output_dir)
    if is_missing(datalist) and is_datalist(input):
        datalist, input = input, None
    if is_missing(datalist):
        if is_missing(input):
            raise ConfigError("input: give an image (input) or a datalist (datalist)")
        rows = [Row(0, {"image": str(input), "edit_mask": edit_mask, "keep_mask": keep_mask}, "")]
        base, source = None, None
    else:
        rows = read_datalist(datalist, split)
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
        # No prompt of its own and none of the run's to fall back on: said once the image and masks check out.
        lacks_prompt = _no_prompt(v.get("prompt")) and _no_prompt(run_settings.get("prompt"))
        explicit = _explicit_id(row, problems)
        name = row_name(row.where)
        try:
            flag = v.get("global_edit")
            whole = coerce(name("global_edit"), global_default if is_missing(flag) else flag, "bool")
            overrides = {k: v[k] for k in EDIT_OVERRIDES if not is_missing(v.get(k))}
            row_settings = {**run_settings, **overrides}
            if not _no_prompt(v.get("prompt")):
                row_settings["prompt"] = v["prompt"]
            elif lacks_prompt:
                row_settings["prompt"] = "-"  # a placeholder, so that the row's other settings are checked
            item_settings = EditSettings.from_mapping(row_settings, name)
            masks = {key: _mask(v.get(key), base, name(key)) for key in ("edit_mask", "keep_mask")}
        except ConfigError as exc:
            problems.add("", exc)
            continue
        image_text = str(v["image"]).strip()
        written = {"image": image_text, **{key: w for key, (w, _) in masks.items()}}
        image_path = os.path.abspath(Path(image_text).expanduser() if base is None else base / image_text)
        if masks["edit_mask"][0] is None and not whole:
            # A missing image is the first thing to fix (a mistyped input), not its missing mask.
            if not os.path.exists(image_path):
                problems.add(row.where, InputError(image_path, "file does not exist"))
            else:
                problems.add(row.where, "no edit_mask (set global_edit to true to edit the whole image)")
            continue
        if masks["edit_mask"][0] is not None and whole:
            problems.add(row.where, "edit_mask and global_edit exclude each other")
            continue
        if lacks_prompt:
            problem = ("no prompt: fill in the row's prompt, or give the run a prompt for the rows without one"
                       if row.where else f"{name('prompt')}: an edit needs a prompt (none was given)")
            problems.add(row.where, problem, ConfigError)
            continue
        try:
            fmt, suffix = output_format_for_source(*_source_format(image_path), output_format)
        except ConfigError as exc:
            problems.add(row.where, exc)
            continue
        # Ids hash the overrides as typed values, so "10" in a CSV and 10 in JSON give the same item.
        typed = {k: coerce(k, x, _OVERRIDE_KINDS[k]) for k, x in sorted(overrides.items())}
        content = {**written, "prompts": item_settings.prompts, "overrides": typed}
        item = Item(
            id=explicit or item_id(_stem(image_text), content),
            row=row.number,
            where=row.where,
            kind="edit",
            prompt=list(item_settings.prompts),
            image=image_path,
            edit_mask=masks["edit_mask"][1],
            keep_mask=masks["keep_mask"][1],
            settings=item_settings,
            output_format=fmt,
            written=written,
        )
        _place(item, output_dir, suffix)
        items.append(item)
    _check_unique(items, problems)
    problems.raise_if_any(source)
    if hasattr(rows, "announce"):
        rows.announce()  # once the rows check out: a bad row stays a one-line error
    return items


def generate_items(
    *,
    prompt: str | Sequence[str] | None = None,
    datalist: str | Path | None = None,
    split: Any = None,
    settings: dict[str, Any] | None = None,
    num_images: Any = 1,
    bits: Any = 8,
    output_dir: str | Path = ".",
) -> list[Item]:
    """Text-to-image items: each prompt (or datalist row) gives ``num_images`` items, image j with seed + j."""
    run_settings = {**(settings or {}), "num_images": num_images, "bits": bits}
    unknown = sorted(set(settings or {}) - set(GENERATE_OVERRIDES))
    if unknown:
        raise ConfigError(f"unknown generation settings {', '.join(unknown)}; known: {', '.join(GENERATE_OVERRIDES)}")
    base = GenerateSettings.from_mapping({**run_settings, "prompts": ["-"]}, bundle_name)
    if datalist is None or is_missing(datalist):
        prompts = [] if prompt is None else coerce("prompt", prompt, "strs")
        if not [p for p in prompts if p.strip()]:
            raise ConfigError("prompt: generation needs at least one prompt (or a datalist with a prompt column)")
        rows = [Row(k, {"prompt": p}, f"prompt {k}") for k, p in enumerate(prompts, start=1)]
        source = None
    else:
        rows = read_datalist(datalist, split)
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
        overrides = {k: row.values[k] for k in GENERATE_OVERRIDES if not is_missing(row.values.get(k))}
        try:
            row_settings = GenerateSettings.from_mapping(
                {**run_settings, **overrides, "prompts": [str(text)]}, row_name(row.where)
            )
        except ConfigError as exc:
            problems.add("", exc)
            continue
        for j in range(base.num_images):
            item_settings = GenerateSettings(**{**row_settings.to_dict(), "seed": row_settings.seed + j, "num_images": 1})
            typed = {k: coerce(k, x, _OVERRIDE_KINDS[k]) for k, x in overrides.items()}
            content = {"prompt": str(text), "seed": item_settings.seed, "overrides": typed}
            ident = explicit if explicit and base.num_images == 1 else None
            if explicit and base.num_images > 1:
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
            _place(item, Path(output_dir), ".png")
            items.append(item)
    _check_unique(items, problems)
    problems.raise_if_any(source)
    if hasattr(rows, "announce"):
        rows.announce()  # once the rows check out: a bad row stays a one-line error
    return items


def generate_fingerprint_settings(settings: GenerateSettings) -> dict[str, Any]:
    """What of a generation item's settings decides its image."""
    return {k: getattr(settings, k) for k in _GENERATE_FINGERPRINT}
