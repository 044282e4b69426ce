"""Build a stress-test set: every recipe on every datalist row it applies to (paper Sec. 5).

:class:`StressBuild` is a batch run (:mod:`radedit_core.batch`): one item per
(row, recipe, sweep point) and one more per (row, recipe) for a sham edit,
each with a deterministic id, its output and its provenance sidecar, so that
resume (finished items are skipped, an interrupted write is redone) and
``torchrun`` sharding (each item on exactly one rank) come from the batch
runner.  In order:

1. the recipes are read and checked against the datalist (labels and masks
   they name exist), the predictor's classes and the options, before any
   model loads (:func:`~radedit_core.stress.recipes.check_recipes`);
2. every pending item's image is read and its regions are made from the
   row's masks (derived regions: :func:`region_mask`) and checked (on the
   grid, not empty), still before the model loads;
3. each edit goes the one route (:func:`~radedit_core.edit_request.prepare_edit`,
   :func:`~radedit_core.workflow.run_edit`); derived regions are first written
   as mask files under ``<set>/masks/``; quality control is measured on the
   result and stored in the sidecar's ``qc`` block: locality
   (:func:`~radedit_core.scoring.edit_locality`) and the BioViL-T editing score
   (paper Sec. 4.4) when its encoders are available, else ``null`` with the
   reason (never a stand-in);
4. rank 0 writes the set once at the end from the sidecars
   (:func:`~radedit_core.stress.stress_set.write_stress_set`): ``set.json``
   (a MONAI-style datalist, ``{"testing": [...]}``) and ``set.csv``, with
   every real row, every edit and its QC; the recipes' filters decide
   ``accepted``/``reason`` there, so changing a filter needs no new edits.

Layout of the set folder::

    set.json, set.csv            the set (rows: real images and edits)
    manifest.json, manifest.csv  the batch run's record (one line per item)
    edits/<id>.<ext>             the edits (a DICOM series folder <id>/ for DICOM input)
    edits/<id>.<ext>.json        each edit's provenance sidecar (with its qc block)
    masks/<row>/<recipe>-<edit|keep>-<hash>.png   derived regions
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._version import __version__
from ..batch.datalist import Problems, Row, read_datalist
from ..batch.items import Item, _source_format, _stem, item_id
from ..batch.runner import BatchSummary, _Batch
from ..errors import ConfigError, InputError, RadEditError
from ..fileio import json_object
from ..imaging.image import Geometry
from ..imaging.mask_ref import MaskRef, parse_mask_ref
from ..outputs import output_format_for_source, sidecar_path
from ..runlock import run_lock
from ..settings import EditSettings, bundle_name, coerce, is_missing, parse_split, row_name
from .recipes import (
    MASK_PREFIX,
    MAX_SWEEP_POINTS,
    Recipe,
    RecipeBook,
    Region,
    check_recipes,
    load_recipes,
    region_digest,
)
from .stress_set import (
    SET_CSV,
    SET_JSON,
    SHAM_SUFFIX,
    TASKS,
    StressSet,
    identifier_problem,
    is_identifying,
    is_own_set,
    is_own_set_csv,
    write_stress_set,
)

log = logging.getLogger("radedit.stress")

EDITS_DIR = "edits"
MASKS_DIR = "masks"
SCORE_MODES = ("auto", "required", "off")
#: The most edits one build plans unless ``--max-items`` (``max_items``) raises it.
MAX_ITEMS = 100_000
_ROW_ID_CHARS = "letters, digits, '_', '.' or '-'"


# -- regions ---------------------------------------------------------------------------
def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    from ..imaging.masks import dilate  # noqa: PLC0415

    return dilate(mask.astype(np.float32), px) > 0 if px else mask


def _shrink(mask: np.ndarray, px: int) -> np.ndarray:
    # Erosion is the dilation of the outside; pixels beyond the image count as outside.
    if not px:
        return mask
    padded = np.pad(~mask, px, constant_values=True)
    return ~_grow(padded, px)[px:-px, px:-px]


def _boxes(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage  # noqa: PLC0415

    labelled, _ = ndimage.label(mask)
    out = np.zeros_like(mask)
    for found in ndimage.find_objects(labelled):
        if found is not None:
            out[found] = True
    return out


def region_mask(region: Region, masks: Mapping[str, np.ndarray], keep: np.ndarray | None = None) -> np.ndarray:
    """A region (boolean, on the masks' grid) from a row's label masks (see :mod:`.recipes`).

    In order: union of ``labels`` -> ``box`` -> ``erode`` -> ``dilate`` ->
    ``border`` (the outline +- N px) -> ``band`` (minus ``keep`` grown by N px).
    """
    mask = np.zeros(next(iter(masks.values())).shape, dtype=bool)
    for label in region.labels:
        mask |= np.asarray(masks[label]) > 0
    if region.box:
        mask = _boxes(mask)
    mask = _grow(_shrink(mask, region.erode), region.dilate)
    if region.border:
        mask = _grow(mask, region.border) & ~_shrink(mask, region.border)
    if region.band and keep is not None:
        mask &= ~_grow(keep, region.band)
    return mask


# -- the plan of one item -----------------------------------------------------------------
@dataclass
class Plan:
    """What one item edits: its row, recipe, sweep point, prompts and settings."""

    row: Row
    row_id: str
    recipe: Recipe
    point: dict[str, float]
    sham: bool
    prompts: list[str]
    settings: EditSettings
    image: str
    real_text: str | None
    #: label -> the row's mask reference (resolved), for every label a region names
    label_masks: dict[str, MaskRef] = field(default_factory=dict)
    #: the masks as the edit reads them (a row's file or a derived file), filled when made
    edit_ref: Any = None
    keep_ref: Any = None

    @property
    def recipe_name(self) -> str:
        return self.recipe.name + (SHAM_SUFFIX if self.sham else "")

    def edit_text(self) -> str:
        """The text of the change (the score's E_T(edit)): the prompts with a positive weight."""
        weights = self.settings.weights or []
        return " ".join(p for p, w in zip(self.prompts, weights) if w > 0) or " ".join(self.prompts)


def _source_image(path: str):
    """The image an edit reads, as the one route reads it (a DICOM folder's image located first)."""
    from ..imaging.io import image_format, read_image  # noqa: PLC0415

    p = Path(path)
    if p.exists() and image_format(p) == "dicom":
        from ..dicom import locate_dicom_image  # noqa: PLC0415

        p, _ = locate_dicom_image(p, None)
    return read_image(p)


@dataclass
class BuildSummary:
    """What a build did: the batch run's counts and the set it wrote (rank 0)."""

    batch: BatchSummary
    set_path: Path
    stress_set: StressSet | None
    accepted: int = 0
    rejected: int = 0
    score: str = "off"

    def __str__(self) -> str:
        # The reason an unavailable score gives is long and was logged when the build started.
        unapplied = self.stress_set is not None and "filters_not_applied" in self.stress_set.qc
        score = self.score if not self.score.startswith("unavailable") else (
            "unavailable" + (", so the recipes' min_score was not applied" if unapplied else "") + " (why: set.json's qc)")
        return (f"{self.batch}; set {self.set_path} ({self.accepted} edits accepted, {self.rejected} rejected; "
                f"editing score: {score})")  # fmt: skip


class StressBuild(_Batch):
    """Build a stress-test set (see the module docstring).

    Args:
        datalist: JSON (MONAI-style) or CSV rows with ``image``, ``mask_<label>``
            columns, 0/1 label columns, a report column and any subgroup columns.
        split: the lists of a MONAI datalist to read (default: every list;
            :data:`~radedit_core.settings.DATALIST_RULE`).
        self_contained: copy the real images and masks into ``<set>/real/``
            (default: the set refers to them by paths relative to the set folder).
        recipes: a recipe file or a :class:`RecipeBook`.
        task: ``classification`` (rows get ``label``) or ``segmentation``
            (rows get the source's ``mask_<class>``).
        classes: the set's classes (default: every label the recipes set;
            for segmentation, required).
        subgroups: datalist columns copied into the set as subgroups (``site``).
        id_column: the datalist column naming each row (default ``id``, else the image's name).
        text_column: the column with each image's own report (the score's
            real text, and the prompt of sham edits).
        score: ``auto`` (the editing score when BioViL-T is available, else
            recorded as unavailable), ``required`` (unavailable is an error
            before any edit) or ``off``.
        score_weights: a folder with BioViL-T in its published layout
            (default: the Hugging Face cache).
        settings: edit settings from the command line, over the recipes'.
        predictor_classes: the classes of the predictor the set is for
            (``radedit stress run``): a set label it lacks stops the build.
        common: model, device, dtype, output_dir (the set folder), overwrite,
            progress, ... as for :class:`~radedit_core.batch.EditBatch`.
    """

    kind = "stress-build"

    def __init__(
        self,
        *,
        datalist: Any,
        recipes: Any,
        split: Any = None,
        self_contained: Any = False,
        task: Any = "classification",
        classes: Any = None,
        subgroups: Any = None,
        id_column: Any = "id",
        text_column: Any = "report",
        score: Any = "auto",
        score_weights: Any = None,
        settings: Mapping[str, Any] | None = None,
        output_format: Any = "auto",
        name: Any = None,
        predictor_classes: Sequence[str] | None = None,
        scorer: Any = None,
        max_items: Any = None,
        max_sweep_points: Any = None,
        **common: Any,
    ):
        super().__init__(**common)
        self.datalist = None if is_missing(datalist) else str(datalist)
        self.split = parse_split(split)
        self.self_contained = coerce("self_contained", False if self_contained is None else self_contained, "bool")
        self.recipes_source = recipes
        self.task = task
        self.classes = classes
        self.subgroups = subgroups
        self.id_column = id_column
        self.text_column = text_column
        self.score = score
        self.score_weights = score_weights
        self.settings = {k: v for k, v in dict(settings or {}).items() if v is not None}
        self.output_format = output_format or "auto"
        self.name = name
        self.predictor_classes = None if predictor_classes is None else list(predictor_classes)
        self.scorer = scorer
        self.max_items = max_items
        self.max_sweep_points = max_sweep_points
        self.plans: dict[str, Plan] = {}
        self.items: list[Item] = []
        self._pending_here = 0
        self._bar = None

    def source(self) -> str | None:
        return self.datalist

    def run_files(self) -> dict[str, Any]:
        return {**super().run_files(), SET_JSON: is_own_set, SET_CSV: is_own_set_csv}

    def read_inputs(self, items: list[Item]) -> dict[str, Any]:
        inputs = super().read_inputs(items)
        if isinstance(self.recipes_source, (str, Path)):
            inputs["recipes"] = self.recipes_source
        return inputs

    # -- 1. options, recipes and rows (identical on every rank) --------------------------
    def _check_options(self) -> None:
        if self.datalist is None:
            raise ConfigError("datalist: give the datalist of real images to edit")
        if is_missing(self.recipes_source):
            raise ConfigError("recipes: give a recipe file")
        self.task = str(self.task or "classification")
        if self.task not in TASKS:
            raise ConfigError(f"task: must be classification or segmentation, got {self.task!r}")
        self.score = str(self.score or "auto")
        if self.score not in SCORE_MODES:
            raise ConfigError(f"score: must be one of {', '.join(SCORE_MODES)}, got {self.score!r}")
        self.classes = [] if is_missing(self.classes) or self.classes == [] else coerce("classes", _split(self.classes), "strs")
        self.subgroups = [] if is_missing(self.subgroups) or self.subgroups == [] else coerce("subgroups", _split(self.subgroups), "strs")
        for column in self.subgroups:
            if is_identifying(column):
                raise ConfigError(f"subgroups: column '{column}' identifies patients; it cannot be a subgroup")
        self.id_column = str(self.id_column or "id")
        self.text_column = str(self.text_column or "report")
        for key, default in (("max_items", MAX_ITEMS), ("max_sweep_points", MAX_SWEEP_POINTS)):
            value = default if is_missing(getattr(self, key)) else coerce(key, getattr(self, key), "int")
            if value < 1:
                raise ConfigError(f"{key}: must be at least 1, got {value}")
            setattr(self, key, value)
        # The command line's edit settings on their own first, so that a bad one is named as typed;
        # kept as the settings layer parsed them (numbers, not the command line's text).
        checked = EditSettings.from_mapping({**self.settings, "prompt": "-"}, bundle_name)
        self.settings = {k: getattr(checked, {"guidance": "weights", "prompt": "prompts"}.get(k, k)) for k in self.settings}
        self.book = (
            self.recipes_source
            if isinstance(self.recipes_source, RecipeBook)
            else load_recipes(self.recipes_source, self.max_sweep_points)
        )

    def build_items(self) -> list[Item]:
        self._check_options()
        book: RecipeBook = self.book
        rows = read_datalist(self.datalist, self.split)
        self.lists_read = rows.describe()
        base = Path(self.datalist).parent
        if self.task == "classification" and not self.classes:
            self.classes = book.label_names()
            if not self.classes:
                raise ConfigError(f"{book.where()}: no recipe sets a label; give the set's classes (classes)")
        if self.task == "segmentation" and not self.classes:
            raise ConfigError("classes: a segmentation set needs its classes (the mask labels the predictor segments)")
        check_recipes(book, rows, self.datalist, self.classes, self.task)
        for column in self.subgroups:
            if not any(column in r.values for r in rows):
                raise ConfigError(f"subgroups: the datalist {self.datalist} has no column '{column}'")
            problem = identifier_problem(column, [r.values.get(column) for r in rows])
            if problem:
                raise ConfigError(f"subgroups: {problem}")
        if self.predictor_classes is not None:
            missing = [c for c in self.classes if c not in self.predictor_classes]
            if missing:
                raise ConfigError(
                    f"unknown label '{missing[0]}': the predictor's classes are {self.predictor_classes} "
                    f"(the set's: {self.classes})"
                )
        if self.score == "required":
            self._scorer_status(required=True)

        problems = Problems()
        items: list[Item] = []
        self.rows: list[tuple[str, Row, str]] = []
        seen_rows: dict[str, Row] = {}
        for row in rows:
            v = row.values
            if is_missing(v.get("image")):
                problems.add(row.where, "no image")
                continue
            row_id = str(v.get(self.id_column) or _stem(str(v["image"]).strip())).strip()
            if not _valid_row_id(row_id):
                problems.add(row.where, f"id {row_id!r} must be {_ROW_ID_CHARS} (give an '{self.id_column}' column)")
                continue
            if row_id in seen_rows:
                problems.add(row.where, f"id {row_id!r} repeats {seen_rows[row_id].where}")
                continue
            seen_rows[row_id] = row
            image_text = str(v["image"]).strip()
            image = str((base / image_text).resolve()) if not Path(image_text).is_absolute() else image_text
            if not Path(image).exists():  # every row is a real image of the set, edited or not
                problems.add(row.where, InputError(image, "file does not exist"))
                continue
            self.rows.append((row_id, row, image))
            text = v.get(self.text_column)
            real_text = None if is_missing(text) else str(text).strip()
            try:
                fmt, suffix = output_format_for_source(*_source_format(image), self.output_format)
            except ConfigError as exc:
                problems.add(row.where, exc)
                continue
            for recipe in book:
                if not recipe.applies_to(v):
                    continue
                try:
                    label_masks = self._label_masks(recipe, row, base)
                    jobs = [(point, False, list(recipe.prompts)) for point in recipe.sweep_points()]
                    if recipe.sham:
                        if real_text is None:
                            raise ConfigError(f"recipe {recipe.name}: sham: the row has no '{self.text_column}' text")
                        jobs.append(({}, True, [real_text]))
                    if len(items) + len(jobs) > self.max_items:  # sized before planned: no hours of planning
                        raise ConfigError(
                            f"{self.datalist}: more than {self.max_items} edits planned (the limit, reached at "
                            f"{row.where}, recipe {recipe.name}); pass --max-items (max_items) to raise it"
                        )
                    for point, sham, prompts in jobs:
                        settings = recipe.edit_settings(book.defaults, point, prompts if sham else None, self.settings)
                        plan = Plan(row, row_id, recipe, point, sham, prompts, settings, image, real_text, label_masks)
                        items.append(self._item(plan, fmt, suffix))
                except ConfigError as exc:
                    problems.add(row.where, exc)
        problems.raise_if_any(self.datalist)
        seen: dict[str, Item] = {}
        for item in items:
            if item.id.lower() in seen:  # ids hash everything that differs: equal ids are a hash collision
                raise ConfigError(
                    f"{item.where}: item id collision with {seen[item.id.lower()].where}: different edits hash to the "
                    f"same id {item.id}; rename the row's id or the recipe"
                )
            seen[item.id.lower()] = item
        self.items = items
        rows.announce()  # once the rows check out: a bad row stays a one-line error
        return items

    def _label_masks(self, recipe: Recipe, row: Row, base: Path) -> dict[str, MaskRef]:
        out: dict[str, MaskRef] = {}
        for region in (recipe.edit, recipe.keep):
            for label in () if region is None else region.labels:
                column = f"{MASK_PREFIX}{label}"
                ref = parse_mask_ref(row.values.get(column), name=f"{row.where}: {column}", base=base)
                if ref is None:
                    raise ConfigError(f"recipe {recipe.name}: missing mask '{label}' ({column} is empty)")
                out[label] = MaskRef(Path(ref.path).resolve(), ref.select)
        return out

    def _item(self, plan: Plan, fmt: str, suffix: str) -> Item:
        recipe = plan.recipe
        content = {
            "image": str(plan.row.values["image"]).strip(),
            "recipe": recipe.name,
            "edit": recipe.edit.to_dict(),
            "keep": None if recipe.keep is None else recipe.keep.to_dict(),
            "prompts": plan.prompts,
            "point": plan.point,
            "sham": plan.sham,
        }
        label = f"{plan.row_id}-{recipe.name}" + ("-sham" if plan.sham else "")
        ident = item_id(label, content)
        item = Item(
            id=ident,
            row=plan.row.number,
            where=f"{plan.row.where} ({plan.recipe_name})",
            kind="edit",
            prompt=list(plan.prompts),
            image=plan.image,
            settings=plan.settings,
            output_format=fmt,
            written={"image": content["image"], "recipe": recipe.name, "edit_region": content["edit"],
                     "keep_region": content["keep"]},  # fmt: skip
        )
        item.output = self.output_dir / EDITS_DIR / f"{ident}{suffix}"
        item.sidecar = sidecar_path(item.output)
        self.plans[ident] = plan
        return item

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        # What decides the pixels; the filters do not (they are applied when the set is written).
        return {
            "kind": "stress-edit",
            "input": item.written["image"],
            "recipe": item.written["recipe"],
            "edit_region": item.written["edit_region"],
            "keep_region": item.written["keep_region"],
            "settings": item.settings.to_dict(),
            "output_format": item.output_format,
            "model": model_fp,
        }

    # -- 2. each pending item's inputs, before the model loads ---------------------------------
    def _regions(self, plan: Plan, source) -> tuple[np.ndarray, np.ndarray | None]:
        from ..imaging.io import read_mask_array  # noqa: PLC0415

        arrays = {label: read_mask_array(ref, source) for label, ref in plan.label_masks.items()}
        keep = None if plan.recipe.keep is None else region_mask(plan.recipe.keep, arrays)
        edit = region_mask(plan.recipe.edit, arrays, keep)
        return edit, keep

    def _mask_file(self, plan: Plan, which: str, region: Region) -> Path:
        name = f"{plan.recipe.name}-{which}-{region_digest(region)}.png"
        return self.output_dir / MASKS_DIR / plan.row_id / name

    def _refs(self, plan: Plan, edit: np.ndarray, keep: np.ndarray | None, write: bool) -> tuple[Any, Any]:
        """The masks as the edit reads them: the row's own file, or a derived file (written when ``write``)."""
        from ..imaging.io import write_image  # noqa: PLC0415

        refs = []
        for which, region, array in (("edit", plan.recipe.edit, edit), ("keep", plan.recipe.keep, keep)):
            if region is None:
                refs.append(None)
            elif not region.derived:
                refs.append(plan.label_masks[region.labels[0]])
            else:
                path = self._mask_file(plan, which, region)
                if write and not path.is_file():
                    write_image(path, array.astype(np.uint8), Geometry(), overwrite=True)
                refs.append(path)
        return refs[0], refs[1]

    def check_item(self, item: Item) -> None:
        from ..imaging.masks import make_masks  # noqa: PLC0415

        plan = self.plans[item.id]
        source = _source_image(plan.image)
        edit, keep = self._regions(plan, source)
        edit_ref, keep_ref = self._refs(plan, edit, keep, write=False)
        try:
            make_masks(source, edit, keep, edit_path=edit_ref, keep_path=keep_ref)
            if keep is not None and item.settings.dilate:  # dilation may let the keep region cover the edit region
                make_masks(source, edit, keep, dilate_px=item.settings.dilate, edit_path=edit_ref, keep_path=keep_ref)
        except InputError as exc:
            raise InputError(exc.path, f"recipe {plan.recipe_name}: {exc.problem}") from None
        self._pending_here += 1

    # -- 3. the work ---------------------------------------------------------------------------
    def _scorer_status(self, required: bool = False) -> str:
        """``available`` or ``unavailable: <reason>`` (``off`` when not asked for)."""
        if self.score == "off":
            return "off"
        if self.scorer is not None:
            return "available"
        from ..scoring import biovil_t_status  # noqa: PLC0415

        reason = biovil_t_status(self.score_weights)
        if reason is None:
            return "available"
        if required:
            raise ConfigError(f"score required but the BioViL-T editing score is unavailable: {reason}")
        return f"unavailable: {reason}"

    def _load_editor(self):
        editor = super()._load_editor()
        status = self._scorer_status()
        self.score_status = status
        if status == "available" and self.scorer is None:
            from ..scoring import BioViLTScorer  # noqa: PLC0415

            self.scorer = BioViLTScorer.load(source=self.score_weights, device=str(self.model_options.device))
        elif status.startswith("unavailable"):
            log.warning("editing score %s", status)
        from tqdm.auto import tqdm  # noqa: PLC0415

        self._bar = tqdm(total=self._pending_here, desc="stress build", unit="edit", disable=not self.progress)
        return editor

    def _qc(self, plan: Plan):
        def measure(result) -> None:
            from ..scoring import edit_locality  # noqa: PLC0415

            qc: dict[str, Any] = {"locality": edit_locality(result.source.array, result.image.array, result.masks)}
            status = getattr(self, "score_status", "off")
            if plan.sham:
                qc["score"], qc["score_status"] = None, "not computed: a sham edit changes no text"
            elif status != "available":
                qc["score"], qc["score_status"] = None, status
            elif plan.real_text is None:
                qc["score"], qc["score_status"] = None, f"not computed: the row has no '{self.text_column}' text"
            else:
                qc["score"] = self.scorer.score(result.source.array, result.image.array, plan.real_text, plan.edit_text())
                qc["score_status"] = "computed"
            result.provenance["qc"] = qc

        return measure

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from ..edit_request import prepare_edit  # noqa: PLC0415
        from ..workflow import run_edit  # noqa: PLC0415

        plan = self.plans[item.id]
        source = _source_image(plan.image)
        edit, keep = self._regions(plan, source)
        plan.edit_ref, plan.keep_ref = self._refs(plan, edit, keep, write=True)
        request = prepare_edit(plan.image, plan.edit_ref, plan.keep_ref, item.settings, item.output,
                               output_format=item.output_format, overwrite=overwrite, name=row_name(item.where),
                               model=self.model)  # fmt: skip
        stress = {"row": plan.row_id, "recipe": plan.recipe_name, "shift": plan.recipe.shift, "point": plan.point,
                  "sham": plan.sham, "edit_text": plan.edit_text(), "real_text": plan.real_text}  # fmt: skip
        try:
            run_edit(editor, request, extra={"batch": self._batch_block(item), "stress": stress}, finish=self._qc(plan))
        finally:
            if self._bar is not None:
                self._bar.update()

    # -- 4. the set --------------------------------------------------------------------------
    def run(self) -> BuildSummary:
        # One lock over the edits and the set (the batch's run takes it again, re-entrantly).
        with run_lock(self.lock_folder(), "radedit stress build"):
            return self._build()

    def _build(self) -> BuildSummary:
        try:
            summary = super().run()
        finally:
            if self._bar is not None:
                self._bar.close()
        stress_set = None
        counts = (0, 0)
        if self.ranks.rank == 0:
            stress_set, counts = self.write_set()
        self.ranks.barrier()
        status = getattr(self, "score_status", None) or self._scorer_status()
        return BuildSummary(summary, self.output_dir, stress_set, counts[0], counts[1], status)

    def _real_row(self, row_id: str, row: Row, image: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": row_id, "image": Path(image), "kind": "real"}
        out.update(self._truth(row))
        out.update({c: row.values.get(c) for c in self.subgroups if not is_missing(row.values.get(c))})
        return out

    def _truth(self, row: Row) -> dict[str, Any]:
        if self.task == "classification":
            return {"label": {c: int(float(row.values[c])) for c in self.classes}}
        base = Path(self.datalist).parent
        out = {}
        for c in self.classes:
            ref = parse_mask_ref(row.values.get(f"{MASK_PREFIX}{c}"), name=f"{MASK_PREFIX}{c}", base=base)
            if ref is not None:
                out[f"{MASK_PREFIX}{c}"] = MaskRef(Path(ref.path).resolve(), ref.select)
        return out

    def _synthetic_row(self, item: Item, sidecar: dict[str, Any]) -> dict[str, Any]:
        plan = self.plans[item.id]
        qc = sidecar.get("qc") or {}
        out: dict[str, Any] = {"id": item.id, "image": item.output, "kind": "synthetic", "source": plan.row_id,
                               "recipe": plan.recipe_name}  # fmt: skip
        truth = self._truth(plan.row)
        if self.task == "classification" and not plan.sham:
            truth["label"] = {**truth["label"], **{k: v for k, v in plan.recipe.labels.items() if k in self.classes}}
        out.update(truth)
        settings = item.settings
        out.update({
            "prompt": " | ".join(plan.prompts),
            "guidance": settings.weights[0] if len(set(settings.weights)) == 1 else None,
            "skip_ratio": settings.skip_ratio,
            "seed": settings.seed,
            "edit_mask": plan.edit_ref,
            "keep_mask": plan.keep_ref,
            "score": qc.get("score"),
            "locality": qc.get("locality"),
        })  # fmt: skip
        accepted, reasons = _apply_filters(plan, qc)
        out["accepted"] = accepted
        out["reason"] = "; ".join(reasons)
        out["shift"] = plan.recipe.shift
        out.update({c: plan.row.values.get(c) for c in self.subgroups if not is_missing(plan.row.values.get(c))})
        return out

    def write_set(self) -> tuple[StressSet, tuple[int, int]]:
        """``set.json`` and ``set.csv`` from the finished items' sidecars (rank 0, once)."""
        rows: list[dict[str, Any]] = [self._real_row(*r) for r in self.rows]
        accepted = rejected = 0
        for item in self.items:
            plan = self.plans[item.id]
            sidecar = json_object(item.sidecar)
            if sidecar is None or not item.output.exists():  # pragma: no cover - run() raised for failed items
                raise RadEditError(f"{item.where}: {item.output} is missing; run the build again")
            if plan.edit_ref is None and (plan.recipe.edit.derived or (plan.recipe.keep and plan.recipe.keep.derived)):
                # Finished in an earlier run: its derived masks are there (or made again, identically).
                source = _source_image(plan.image)
                edit, keep = self._regions(plan, source)
                plan.edit_ref, plan.keep_ref = self._refs(plan, edit, keep, write=True)
            elif plan.edit_ref is None:
                plan.edit_ref, plan.keep_ref = self._refs(plan, None, None, write=False)  # type: ignore[arg-type]
            row = self._synthetic_row(item, sidecar)
            accepted += row["accepted"]
            rejected += not row["accepted"]
            rows.append(row)
        thresholds = {r.filters["min_score"] for r in self.book if "min_score" in r.filters}
        status = getattr(self, "score_status", None) or self._scorer_status()
        qc = {
            "score_name": "BioViL-T editing score (paper Sec. 4.4)",
            "score_status": status,
            "filters": {r.name: dict(r.filters) for r in self.book},
        }
        if len(thresholds) == 1:
            qc["score_threshold"] = thresholds.pop()
        if not status == "available" and any("min_score" in r.filters for r in self.book):
            qc["filters_not_applied"] = f"min_score ({status})"
        provenance = {
            "builder": "radedit stress build",
            "edit_settings": _settings_per_recipe(self.items, self.plans),
            "radedit_core": __version__,
            "datalist": _relative_to(Path(self.datalist), self.output_dir),
            "datalist_lists": getattr(self, "lists_read", None),
            "recipes": self.book.to_dict(),
            "model": self._model_fingerprint(),
            "settings_overrides": dict(self.settings),
            "task": self.task,
            "text_column": self.text_column,
            "score": status,
            "world_size": self.ranks.world,
            "items": len(self.items),
        }
        stress_set = write_stress_set(
            self.output_dir, rows, task=self.task, classes=self.classes, name=None if is_missing(self.name) else str(self.name),
            qc=qc, provenance=provenance, subgroups=self.subgroups, overwrite=True,
            copy_from=Path(self.datalist).parent if self.self_contained else None,
        )  # fmt: skip
        return stress_set, (accepted, rejected)


def _apply_filters(plan: Plan, qc: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """The recipe's filters on an edit's measured QC: (accepted, reasons for a rejection)."""
    reasons: list[str] = []
    f = plan.recipe.filters
    loc = qc.get("locality") or {}
    score = qc.get("score")
    if "min_score" in f and not plan.sham and score is not None and score < f["min_score"]:
        reasons.append(f"editing score {score:.3f} < min_score {f['min_score']:g}")
    if "max_outside_change" in f and "outside" in loc and loc["outside"]["mean_abs_change"] > f["max_outside_change"]:
        reasons.append(f"mean change outside the masks {loc['outside']['mean_abs_change']:.4f} > max_outside_change "
                       f"{f['max_outside_change']:g}")  # fmt: skip
    if "max_keep_change" in f and "keep" in loc and loc["keep"]["max_abs_change"] > f["max_keep_change"]:
        reasons.append(f"largest change in the keep region {loc['keep']['max_abs_change']:.4f} > max_keep_change "
                       f"{f['max_keep_change']:g}")  # fmt: skip
    # Whatever the filters say: an edit that changed nothing in its region is no example of its finding.
    if loc and not plan.sham and "edit" not in loc:
        reasons.append("the edit region is empty once the keep region is taken out of it")
    elif loc and not plan.sham and loc["edit"]["max_abs_change"] == 0.0:
        reasons.append("no pixel of the edit region changed: the edit is identical to its source there")
    if "min_edit_change" in f and not plan.sham:
        change = (loc.get("edit") or {}).get("mean_abs_change", 0.0)
        if change < f["min_edit_change"]:
            reasons.append(f"mean change in the edit region {change:.4f} < min_edit_change {f['min_edit_change']:g}")
    return not reasons, reasons


#: The settings the report's summary states per recipe (as numbers).
SUMMARY_SETTINGS = ("steps", "skip_ratio", "weights", "seed", "dilate", "keep_mode", "detail", "inversion")


def _settings_per_recipe(items: Sequence[Item], plans: Mapping[str, Plan]) -> dict[str, dict[str, Any]]:
    """Per recipe (shams apart), each summary setting: its one value, or the sorted values a sweep used."""
    out: dict[str, dict[str, list]] = {}
    for item in items:
        values = out.setdefault(plans[item.id].recipe_name, {})
        for key in SUMMARY_SETTINGS:
            value = getattr(item.settings, key)
            value = value[0] if key == "weights" and len(set(value)) == 1 else value
            if value not in values.setdefault("guidance" if key == "weights" else key, []):
                values["guidance" if key == "weights" else key].append(value)
    return {r: {k: v[0] if len(v) == 1 else sorted(v, key=str) for k, v in values.items()} for r, values in out.items()}


def _relative_to(path: Path, folder: Path) -> str:
    import os  # noqa: PLC0415

    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def _split(value: Any) -> Any:
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _valid_row_id(text: str) -> bool:
    import re  # noqa: PLC0415

    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", text))


def build_stress_set(**options: Any) -> BuildSummary:
    """Build a set in one call (:class:`StressBuild` keyword arguments)."""
    return StressBuild(**options).run()


__all__ = ["BuildSummary", "Plan", "StressBuild", "build_stress_set", "region_mask"]
