"""The stress-test set on disk: edited and real images, one MONAI-style datalist.

A set is a folder holding ``set.json`` (the source of truth) and ``set.csv``
(the same rows for spreadsheets), next to the images the toolkit wrote (PNG,
NIfTI, NRRD files or DICOM series folders).  Relative paths are relative to
the set folder; absolute paths are allowed (real images may stay where they
are).  ``set.json``::

    {
      "format": "radedit-stress-set", "version": 1,
      "name": "ptx-with-drain", "task": "classification",
      "classes": ["pneumothorax"],
      "qc": {"score_threshold": 0.2},
      "subgroups": ["site"],
      "provenance": {... what the builder records: model sources and revisions, settings ...},
      "testing": [
        {"id": "p001", "image": "real/p001.png", "kind": "real", "label": {"pneumothorax": 1}, "site": "A"},
        {"id": "p001-no-ptx", "image": "edits/p001-no-ptx.png", "kind": "synthetic", "source": "p001",
         "recipe": "remove-ptx", "label": {"pneumothorax": 0},
         "prompt": "No pneumothorax", "guidance": 15, "skip_ratio": 0.3, "seed": 0,
         "edit_mask": "masks/p001-ptx.png", "keep_mask": "masks/p001-drain.png",
         "score": 0.31, "locality": {...}, "accepted": true, "reason": "", "site": "A"}
      ]
    }

Rows (one per image, real images included):

* ``id``: unique, ``[A-Za-z0-9][A-Za-z0-9_.-]*`` (never a patient identifier:
  ids are shown in reports).
* ``image``: the file or DICOM series folder; may be absent for a rejected edit.
* ``kind``: ``"real"`` or ``"synthetic"``.
* ``source``: the id of the real image an edit came from (paired statistics
  resample sources, since one source gives several edits); a real row is its
  own source.  The source need not be a row of the set (then the edit has no
  pair).
* ``recipe``: the name of the edit recipe (synthetic rows; ``null`` for real).
* ``label`` (classification): an int (index into the set's ``classes``), a
  class name (one class per image), or an object ``{class: 0/1}`` (independent
  labels; classes left out are not labelled for that row).
* ``mask_<name>`` (segmentation): the ORIGINAL ground-truth mask of class
  ``<name>`` on the image's grid (an edit keeps its source's masks, as the paper
  evaluates, Sec. 5.4), optionally ``path#labels`` to pick labels of a label
  map or segments of a DICOM SEG (:class:`~radedit_core.imaging.io.MaskRef`).
* recipe settings (``prompt``, ``guidance``, ``skip_ratio``, ``seed``, masks as
  ``edit_mask``/``keep_mask``); a recipe that sweeps ``guidance`` or
  ``skip_ratio`` gives dose-response curves.
* quality control: ``score`` (the BioViL-T editing score, paper Sec. 4.4),
  ``locality`` (:func:`radedit_core.scoring.edit_locality`), ``accepted``
  (default true) and ``reason`` (why an edit was filtered out).
* any other column (``site``, ``scanner``, ...) is a subgroup column; the set
  may list them in ``subgroups``.  Columns that identify a patient (name, ID,
  birth date, accession number, ...) are never used as subgroups.

:func:`write_stress_set` writes a set (the builder's and the tests' helper);
:func:`read_stress_set` reads and checks one, raising a one-line
:class:`~radedit_core.errors.InputError` naming ``set.json``, the row and the
problem before any model runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import InputError
from ..fileio import atomic_path, csv_header, json_object
from ..imaging.mask_ref import MaskRef, parse_mask_ref

SET_FORMAT = "radedit-stress-set"
SET_VERSION = 1
SET_JSON = "set.json"
SET_CSV = "set.csv"
#: Where a self-contained set keeps its copies of the real images and masks.
REAL_DIR = "real"
Task = Literal["classification", "segmentation"]
TASKS = ("classification", "segmentation")
KINDS = ("real", "synthetic")
MASK_PREFIX = "mask_"
#: A recipe's sham control (the same edit with the image's own report) is the recipe ``<name>:sham``.
SHAM_SUFFIX = ":sham"
#: Recipe settings a recipe may sweep (dose-response curves).
SWEEP_COLUMNS = ("guidance", "skip_ratio")
#: Columns with a fixed meaning; every other scalar column is a subgroup column.
RESERVED_COLUMNS = frozenset(
    {
        "id", "image", "kind", "source", "recipe", "label", "accepted", "reason", "score", "locality",
        "prompt", "guidance", "skip_ratio", "seed", "edit_mask", "keep_mask", "notes",
    }
)  # fmt: skip
#: Column names (lower case, letters and digits only) that identify a patient:
#: never subgroups, never in a report (DICOM PS3.15 Annex E basic profile, the direct identifiers).
IDENTIFYING_COLUMNS = frozenset(
    {
        "patientname", "patientid", "patientbirthdate", "patientbirthtime", "otherpatientids",
        "otherpatientnames", "patientaddress", "patienttelephonenumbers", "accessionnumber",
        "issuerofpatientid", "medicalrecordlocator", "mrn", "name", "birthdate", "dob", "dateofbirth",
        "address", "phone", "email", "ssn", "studyinstanceuid", "seriesinstanceuid", "sopinstanceuid",
    }
)  # fmt: skip
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


#: Parts of a column name that mark it as identifying wherever they occur in it (``accession_no``,
#: ``referring_physician``; ``patient_sex`` and ``patient_age`` stay subgroups).
IDENTIFYING_PARTS = ("accession", "birth", "referr", "physician", "mrn", "subjectid")
#: A subgroup column is an identifier, not a subgroup, when at least this many rows each hold a
#: value of their own.
UNIQUE_VALUES_ROWS = 10


def is_identifying(column: str) -> bool:
    """Does a column name denote a patient identifier (case and punctuation ignored)?

    A name heuristic (:data:`IDENTIFYING_COLUMNS`, :data:`IDENTIFYING_PARTS`): a column of
    identifiers under another name is caught by its values instead (:func:`identifier_problem`).
    """
    name = re.sub(r"[^a-z0-9]", "", column.lower())
    return name in IDENTIFYING_COLUMNS or any(part in name for part in IDENTIFYING_PARTS)


def identifier_problem(column: str, values: Sequence[Any]) -> str | None:
    """Why ``column`` (with one value per row, None where missing) cannot be a subgroup, or None:
    its name identifies patients, or each of at least :data:`UNIQUE_VALUES_ROWS` rows holds a
    value of its own (an accession number under any name; a subgroup of one image says nothing)."""
    if is_identifying(column):
        return f"column '{column}' identifies patients; it cannot be a subgroup"
    present = [str(v) for v in values if v is not None and str(v).strip() != ""]
    if len(present) >= UNIQUE_VALUES_ROWS and len(set(present)) == len(present):
        return (f"column '{column}' holds a different value in each of its {len(present)} rows: an identifier, "
                "not a subgroup; it cannot be one")
    return None


@dataclass
class SetRow:
    """One checked row.  ``image`` and mask paths are absolute."""

    number: int
    id: str
    kind: str
    source: str
    recipe: str | None
    image: Path | None
    labels: dict[str, int] = field(default_factory=dict)
    masks: dict[str, Path | MaskRef] = field(default_factory=dict)
    #: the recipe's ``edit_mask`` and ``keep_mask`` (for pictures), when given
    regions: dict[str, Path | MaskRef] = field(default_factory=dict)
    accepted: bool = True
    reason: str = ""
    score: float | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"row {self.number} (id {self.id})"

    @property
    def is_real(self) -> bool:
        return self.kind == "real"


@dataclass
class StressSet:
    """A checked set: ``rows`` in file order; ``classes`` the label (or mask) names."""

    path: Path
    name: str
    task: Task
    classes: list[str]
    rows: list[SetRow]
    qc: dict[str, Any]
    provenance: dict[str, Any]
    subgroups: list[str]
    sha256: str

    @property
    def json_path(self) -> Path:
        return self.path / SET_JSON

    def input_files(self) -> dict[str, Path]:
        """Every file a command reading the set reads, by the name messages give it: ``set.json``,
        ``set.csv``, each row's image and its mask files (labels, edit and keep masks)."""
        files = {"--set": self.json_path, "the set's csv": self.path / SET_CSV}
        for row in self.rows:
            if row.image is not None:
                files[f"set row {row.id}: image"] = row.image
            for column, ref in (*row.masks.items(), *row.regions.items()):
                path = ref.path if isinstance(ref, MaskRef) else ref
                if path is not None:
                    files[f"set row {row.id}: {column}"] = Path(path)
        return files

    @property
    def accepted(self) -> list[SetRow]:
        return [r for r in self.rows if r.accepted]

    @property
    def rejected(self) -> list[SetRow]:
        return [r for r in self.rows if not r.accepted]

    @property
    def recipes(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            if r.recipe is not None:
                seen.setdefault(r.recipe)
        return list(seen)

    def row(self, row_id: str) -> SetRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(row_id)


# -- reading ---------------------------------------------------------------------------
def _fail(path: Path, where: str, problem: str) -> InputError:
    return InputError(path, f"{where}: {problem}" if where else problem)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    # normalised lexically: "../data/p001.png" of a set names the file, not a path through the set folder
    return p if p.is_absolute() else Path(os.path.normpath(base / p))


def _mask_ref(base: Path, value: str) -> tuple[Path, Path | MaskRef]:
    """``path#labels`` (the one mask-reference syntax, :func:`parse_mask_ref`) -> (file, what
    :func:`read_mask_array` takes: the file, or a MaskRef when labels are chosen)."""
    ref = parse_mask_ref(str(value), base=base)
    return ref.path, (ref.path if ref.labels is None else ref)


def _label_of(value: Any, classes: list[str], json_path: Path, where: str) -> dict[str, int]:
    def binary(name: str, v: Any) -> int:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1):
            return int(v)
        raise _fail(json_path, where, f"label of class '{name}' must be 0 or 1, not {v!r}")

    if isinstance(value, bool):
        raise _fail(json_path, where, f"label {value!r}: give a class index, a class name or {{class: 0/1}}")
    if isinstance(value, int):
        if not 0 <= value < len(classes):
            raise _fail(json_path, where, f"label {value} is not a class index (the set has {len(classes)} classes {classes})")
        return {c: int(k == value) for k, c in enumerate(classes)}
    if isinstance(value, str):
        if value not in classes:
            raise _fail(json_path, where, f"unknown label '{value}'; the set's classes are {classes}")
        return {c: int(c == value) for c in classes}
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in classes]
        if unknown:
            raise _fail(json_path, where, f"unknown label '{unknown[0]}'; the set's classes are {classes}")
        if not value:
            raise _fail(json_path, where, "empty label object")
        return {str(k): binary(str(k), v) for k, v in value.items()}
    raise _fail(json_path, where, f"label {value!r}: give a class index, a class name or {{class: 0/1}}")


def _finite_or_none(value: Any, json_path: Path, where: str, column: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _fail(json_path, where, f"{column} must be a number, not {value!r}") from None
    if not math.isfinite(out):
        raise _fail(json_path, where, f"{column} must be finite, not {value!r}")
    return out


def _check_row(
    k: int, entry: Any, base: Path, json_path: Path, task: str, classes: list[str]
) -> SetRow:
    where = f"row {k}"
    if not isinstance(entry, Mapping):
        raise _fail(json_path, where, "expected an object with id, image, kind, ...")
    row_id = entry.get("id")
    if not isinstance(row_id, str) or not _ID_RE.match(row_id):
        raise _fail(json_path, where, f"id {row_id!r} must be a string of letters, digits, '_', '.', '-'")
    where = f"row {k} (id {row_id})"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise _fail(json_path, where, f"kind must be 'real' or 'synthetic', not {kind!r}")
    accepted = entry.get("accepted", True)
    if not isinstance(accepted, bool):
        raise _fail(json_path, where, f"accepted must be true or false, not {accepted!r}")
    if kind == "real" and not accepted:
        raise _fail(json_path, where, "a real image cannot be filtered out (accepted: false is for edits)")
    source = entry.get("source")
    recipe = entry.get("recipe")
    if kind == "real":
        if source not in (None, "", row_id):
            raise _fail(json_path, where, f"a real row is its own source; source {source!r} differs from its id")
        source = row_id
        if recipe not in (None, ""):
            raise _fail(json_path, where, f"a real row has no recipe (got {recipe!r})")
        recipe = None
    else:
        if not isinstance(source, str) or not source:
            raise _fail(json_path, where, "a synthetic row needs 'source': the id of the real image it was edited from")
        if not isinstance(recipe, str) or not recipe:
            raise _fail(json_path, where, "a synthetic row needs 'recipe': the name of the edit that made it")
    image_value = entry.get("image")
    image = None
    if image_value not in (None, ""):
        image = _resolve(base, str(image_value))
    if accepted:
        if image is None:
            raise _fail(json_path, where, "missing 'image'")
        if not image.exists():
            raise _fail(json_path, where, f"image '{image_value}' does not exist")
    labels: dict[str, int] = {}
    masks: dict[str, Path | MaskRef] = {}
    if task == "classification":
        if "label" not in entry or entry["label"] is None:
            if accepted:
                raise _fail(json_path, where, "missing 'label'")
        else:
            labels = _label_of(entry["label"], classes, json_path, where)
    for column, value in entry.items():
        if not column.startswith(MASK_PREFIX):
            continue
        name = column[len(MASK_PREFIX) :]
        if task != "segmentation":
            raise _fail(json_path, where, f"column '{column}': mask columns belong to segmentation sets")
        if name not in classes:
            raise _fail(json_path, where, f"unknown label '{name}' (column '{column}'); the set's classes are {classes}")
        if value in (None, ""):
            continue
        path, ref = _mask_ref(base, str(value))
        if accepted and not path.is_file():
            raise _fail(json_path, where, f"mask '{value}' of class '{name}' does not exist")
        masks[name] = ref
    if task == "segmentation" and accepted and not masks:
        raise _fail(json_path, where, f"missing mask: give at least one of {[MASK_PREFIX + c for c in classes]}")
    regions: dict[str, Path | MaskRef] = {}
    for column in ("edit_mask", "keep_mask"):
        value = entry.get(column)
        if value in (None, ""):
            continue
        path, ref = _mask_ref(base, str(value))
        if accepted and not path.is_file():
            raise _fail(json_path, where, f"{column} '{value}' does not exist")
        regions[column] = ref
    reason = entry.get("reason") or ""
    if not isinstance(reason, str):
        raise _fail(json_path, where, f"reason must be text, not {reason!r}")
    score = _finite_or_none(entry.get("score"), json_path, where, "score")
    for column in SWEEP_COLUMNS:
        _finite_or_none(entry.get(column), json_path, where, column)
    return SetRow(
        number=k,
        id=row_id,
        kind=kind,
        source=source,
        recipe=recipe,
        image=image,
        labels=labels,
        masks=masks,
        regions=regions,
        accepted=accepted,
        reason=reason,
        score=score,
        values=dict(entry),
    )


def _subgroup_columns(rows: list[SetRow], declared: Any, json_path: Path) -> list[str]:
    scalar = (str, int, float, bool)
    if declared is not None:
        if not isinstance(declared, list) or not all(isinstance(c, str) for c in declared):
            raise InputError(json_path, "'subgroups' must be a list of column names")
        for column in declared:
            per_source = {r.source: r.values.get(column) for r in rows}
            problem = identifier_problem(column, list(per_source.values()))
            if problem:
                raise InputError(json_path, f"subgroup {problem}")
            if column in RESERVED_COLUMNS or column.startswith(MASK_PREFIX):
                raise InputError(json_path, f"'{column}' has a fixed meaning and cannot be a subgroup column")
            if not any(column in r.values for r in rows):
                raise InputError(json_path, f"subgroup column '{column}' occurs in no row")
        return list(declared)
    columns: dict[str, None] = {}
    for r in rows:
        for column, value in r.values.items():
            if (
                column in RESERVED_COLUMNS
                or column.startswith(MASK_PREFIX)
                or is_identifying(column)
                or not isinstance(value, scalar)
            ):
                continue
            columns.setdefault(column)
    return list(columns)


def read_stress_set(set_dir: str | Path) -> StressSet:
    """Read and check a set folder (or its ``set.json``).

    Checks, before any model runs: the format, the task, unique ids, kinds,
    sources and recipes, that every accepted row's image and masks exist,
    labels against the set's ``classes`` (an unknown label is an error), QC
    fields.  Rows keep their file order.

    Raises:
        InputError: ``set.json: row N (id X): <problem>``.
    """
    path = Path(set_dir)
    json_path = path if path.suffix.lower() == ".json" else path / SET_JSON
    base = json_path.parent
    if not json_path.is_file():
        raise InputError(json_path, "stress-test set not found (a set folder holds set.json)")
    raw = json_path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("testing"), list):
        raise InputError(json_path, 'expected an object with a "testing" list of rows (MONAI datalist)')
    if data.get("format", SET_FORMAT) != SET_FORMAT:
        raise InputError(json_path, f"format {data.get('format')!r} is not {SET_FORMAT!r}")
    version = data.get("version", SET_VERSION)
    if version != SET_VERSION:
        raise InputError(json_path, f"set version {version!r} is not supported (this radedit_core reads {SET_VERSION})")
    task = data.get("task")
    if task not in TASKS:
        raise InputError(json_path, f"task must be 'classification' or 'segmentation', not {task!r}")
    classes = data.get("classes")
    if classes is None and task == "segmentation":
        names: dict[str, None] = {}
        for entry in data["testing"]:
            if isinstance(entry, Mapping):
                for column in entry:
                    if column.startswith(MASK_PREFIX):
                        names.setdefault(column[len(MASK_PREFIX) :])
        classes = list(names)
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise InputError(json_path, "'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise InputError(json_path, f"repeated class names in {classes}")
    if not data["testing"]:
        raise InputError(json_path, "the set has no rows")
    rows = [_check_row(k, e, base, json_path, task, classes) for k, e in enumerate(data["testing"], start=1)]
    seen: dict[str, SetRow] = {}
    for r in rows:
        if r.id in seen:
            raise _fail(json_path, r.where, f"id repeats row {seen[r.id].number}")
        seen[r.id] = r
    for r in rows:
        if not r.is_real and r.source in seen and not seen[r.source].is_real:
            raise _fail(json_path, r.where, f"source '{r.source}' is a synthetic row; a source must be a real image")
    if not any(r.accepted for r in rows):
        raise InputError(json_path, "every row is filtered out (accepted: false); nothing to evaluate")
    qc = data.get("qc") or {}
    if not isinstance(qc, dict):
        raise InputError(json_path, "'qc' must be an object")
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise InputError(json_path, "'provenance' must be an object")
    return StressSet(
        path=base,
        name=str(data.get("name") or base.name),
        task=task,
        classes=list(classes),
        rows=rows,
        qc=qc,
        provenance=provenance,
        subgroups=_subgroup_columns(rows, data.get("subgroups"), json_path),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


# -- writing ---------------------------------------------------------------------------
def _relative(value: Any, base: Path) -> Any:
    """Paths are stored relative to the set folder (``../data/p001.png`` too), so that a set and its
    sources can be moved together."""
    if isinstance(value, MaskRef):
        inner = _relative(value.path, base)
        return inner if value.select is None else f"{inner}#{value.select}"
    if isinstance(value, Path):
        try:
            return Path(os.path.relpath(value.resolve(), base.resolve())).as_posix()
        except ValueError:  # another drive (Windows): nothing relative exists
            return str(value.resolve())
    return value


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _copy_in(value: Any, base: Path, origin: Path) -> Any:
    """A path outside the set folder copied to ``<set>/real/`` (kept relative to ``origin``) and the copy's path."""
    if isinstance(value, MaskRef):
        return MaskRef(_copy_in(value.path, base, origin), value.select)
    if not isinstance(value, Path) or _inside(value, base) or not value.exists():
        return value
    try:
        relative = value.resolve().relative_to(origin.resolve())
    except ValueError:
        relative = Path(value.name)
    target = base / REAL_DIR / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if value.is_dir():  # a DICOM series folder
            staging = target.with_name(f".{target.name}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(value, staging)
            staging.rename(target)
        else:
            with atomic_path(target, overwrite=True) as tmp:
                shutil.copy2(value, tmp)
    return target


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def set_rows_as_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The CSV manifest's columns and cells: ``label`` objects become ``label_<class>``
    columns, other objects (``locality``) JSON text."""
    columns: dict[str, None] = {}
    table = []
    for row in rows:
        cells: dict[str, Any] = {}
        for key, value in row.items():
            if key == "label" and isinstance(value, Mapping):
                for name, v in value.items():
                    cells[f"label_{name}"] = v
            else:
                cells[key] = _csv_cell(value)
        for key in cells:
            columns.setdefault(key)
        table.append(cells)
    return list(columns), table


def is_own_set(path: Path) -> bool:
    """Whether ``path`` is a ``set.json`` this toolkit wrote (its ``format`` is :data:`SET_FORMAT`)."""
    return (json_object(path) or {}).get("format") == SET_FORMAT


def is_own_set_csv(path: Path) -> bool:
    """Whether ``path`` is the ``set.csv`` written with the ``set.json`` beside it: that file is the
    toolkit's and this one's header is the columns of its rows (:func:`set_rows_as_table`)."""
    beside = json_object(Path(path).with_name(SET_JSON)) or {}
    rows = beside.get("testing")
    if beside.get("format") != SET_FORMAT or not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        return False
    return csv_header(path) == set_rows_as_table(rows)[0]


def write_stress_set(
    set_dir: str | Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    task: Task,
    classes: Sequence[str],
    name: str | None = None,
    qc: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    subgroups: Sequence[str] | None = None,
    overwrite: bool = False,
    copy_from: str | Path | None = None,
) -> StressSet:
    """Write ``set.json`` and ``set.csv`` into ``set_dir`` (images already there) and check the result.

    ``rows`` are mappings with the columns of the module docstring; ``Path``
    values (and :class:`MaskRef` masks) are stored relative to the folder.
    ``copy_from`` (a self-contained set): files outside the folder are first
    copied into ``<set>/real/``, keeping their path relative to ``copy_from``.  Both files are written atomically; if the set does not check out
    (:func:`read_stress_set`), neither is left behind.

    Raises:
        OutputError: ``set.json`` exists and ``overwrite`` is false.
        InputError: a row does not check out (the message names it).
    """
    base = Path(set_dir)
    base.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = base / SET_JSON, base / SET_CSV
    if copy_from is not None:
        rows = [{k: _copy_in(v, base, Path(copy_from)) for k, v in dict(r).items()} for r in rows]
    stored = [{k: _relative(v, base) for k, v in dict(r).items()} for r in rows]
    data: dict[str, Any] = {
        "format": SET_FORMAT,
        "version": SET_VERSION,
        "name": name or base.name,
        "task": task,
        "classes": list(classes),
        "qc": dict(qc or {}),
        "provenance": dict(provenance or {}),
    }
    if subgroups is not None:
        data["subgroups"] = list(subgroups)
    data["testing"] = stored
    # Checked under its temporary name (same folder, so relative paths resolve alike):
    # a set that does not check out never replaces anything.
    with atomic_path(json_path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        checked = read_stress_set(tmp)
    columns, table = set_rows_as_table(stored)
    with atomic_path(csv_path, overwrite=True) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for cells in table:
                writer.writerow(cells)
    return checked


__all__ = [
    "IDENTIFYING_COLUMNS",
    "KINDS",
    "MASK_PREFIX",
    "RESERVED_COLUMNS",
    "REAL_DIR",
    "SET_CSV",
    "SET_JSON",
    "SHAM_SUFFIX",
    "SWEEP_COLUMNS",
    "SetRow",
    "StressSet",
    "TASKS",
    "identifier_problem",
    "is_identifying",
    "is_own_set",
    "is_own_set_csv",
    "read_stress_set",
    "set_rows_as_table",
    "write_stress_set",
]
