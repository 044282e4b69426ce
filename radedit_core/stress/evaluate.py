"""Run the user's model on a stress-test set and compute every figure.

:func:`evaluate_set` does, in order:

1. read and check the set (:func:`~radedit_core.stress.stress_set.read_stress_set`)
   and that the predictor knows every label of it (an unknown label stops the
   run here, before the model sees an image);
2. the trial forward pass on one real image (:meth:`Predictor.check`), which
   also sizes the batches;
3. predictions for every accepted row, real and synthetic, in batches with
   tqdm progress; segmentation predictions go back to the image's grid and
   are scored against the row's ORIGINAL masks (Dice, HD95, ASD) and saved as
   ``masks/<id>.npz`` for the report's galleries.  Each finished batch is
   appended to ``.predictions.partial.jsonl``, so an interrupted run resumes
   where it stopped (rows whose image file changed, and every row when the
   predictor changed, are redone);
4. the metrics (:mod:`radedit_core.stress.metrics`) and ``results.json`` +
   ``predictions.csv``, each written atomically (the partial file is removed
   once both exist).

Outputs in ``output``: ``results.json`` (every figure: groups with 95% CIs,
paired differences, flip rates, per-recipe, per-subgroup and dose-response
breakdowns, QC, provenance), ``predictions.csv`` (one row per evaluated image)
and, for segmentation, ``masks/``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .._version import __version__
from ..errors import ConfigError, InputError, OutputError
from ..fileio import atomic_path, check_not_working_folder, check_run_files, csv_header, json_object, write_json
from ..imaging.io import read_image, read_mask_array
from ..scoring import PAPER_SCORE_THRESHOLD
from ..settings import MAX_SEED
from . import intervals
from .metrics import ClassificationTable, Outcomes, SourceBootstrap, segmentation_scores, summarise
from .predictors import Predictor
from .stress_set import SWEEP_COLUMNS, SetRow, StressSet, read_stress_set

RESULTS_JSON = "results.json"
PREDICTIONS_CSV = "predictions.csv"
#: The first columns of predictions.csv (the set row); how a predictions.csv radedit wrote is recognised.
PREDICTION_ROW_COLUMNS = ("id", "kind", "source", "recipe", "image")
MASKS_DIR = "masks"
PARTIAL = ".predictions.partial.jsonl"
#: Segmentation keeps each batch's source images (for the masks' grid): at most this many in memory.
SEGMENTATION_CHUNK = 32
RESULTS_FORMAT = "radedit-stress-results"
RESULTS_VERSION = 1
#: Packages whose versions go into the provenance.
PROVENANCE_PACKAGES = (
    "radedit-core", "torch", "monai", "numpy", "scipy", "pydicom", "highdicom", "SimpleITK", "nibabel",
    "diffusers", "transformers", "matplotlib", "jinja2",
)  # fmt: skip
AUROC_SCOPE = (
    "Sensitivity and specificity where a group holds positives (negatives); AUROC only where it holds "
    "both classes: the real set and real + synthetic pooled (a synthetic set is often one class, so "
    "accuracy is its figure, as in the paper's Tables 1-2)."
)


@dataclass
class Evaluation:
    output: Path
    results: dict[str, Any]
    results_path: Path
    predictions_path: Path
    evaluated: int
    reused: int


# -- checks before the model runs -------------------------------------------------------
def check_labels(stress_set: StressSet, predictor: Predictor, task: str | None = None) -> list[str]:
    """The classes to evaluate; errors for a task mismatch or a label the predictor lacks."""
    if task not in (None, "auto") and task != stress_set.task:
        raise ConfigError(f"--task {task}: the set {stress_set.json_path} is a {stress_set.task} set")
    if predictor.spec.task != stress_set.task:
        raise ConfigError(
            f"{predictor.name}: a {predictor.spec.task} predictor cannot be evaluated on the "
            f"{stress_set.task} set {stress_set.json_path}"
        )
    used: dict[str, None] = {}
    for row in stress_set.accepted:
        for name in (row.labels if stress_set.task == "classification" else row.masks):
            used.setdefault(name)
    predictor.require_classes(list(used), stress_set.json_path)
    return [c for c in predictor.spec.classes if c in used]


def file_signature(path: Path) -> str:
    """Size and modification time of a file, or of every file in a folder (a DICOM series).

    What the resume file checks: a row is redone when its image was rewritten
    (hashing every radiograph would read each one twice).
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


# -- the resume file ---------------------------------------------------------------------
class PartialPredictions:
    """``.predictions.partial.jsonl``: a header line, then one record per finished row."""

    def __init__(self, output: Path, header: dict[str, Any]):
        self.path = output / PARTIAL
        self.header = header
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            lines = self.path.read_text().splitlines()
            try:
                first = json.loads(lines[0]) if lines else None
            except json.JSONDecodeError:
                first = None
            if first == header:
                for line in lines[1:]:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a line cut by an interruption: that row is redone
                    self.records[record["id"]] = record
        if not self.records:
            self.path.write_text(json.dumps(header) + "\n")

    def done(self, row_id: str, signature: str) -> dict[str, Any] | None:
        record = self.records.get(row_id)
        return record if record is not None and record.get("signature") == signature else None

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        with open(self.path, "a") as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
                self.records[record["id"]] = record
            fh.flush()

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()


# -- predicting --------------------------------------------------------------------------
def _spacing_rc(image) -> tuple[tuple[float, float], str]:
    """(row, column) spacing for the distance metrics, and its unit."""
    if image.format == "png":
        return (1.0, 1.0), "px"
    sx, sy = image.geometry.in_plane().spacing[:2]
    return (float(sy), float(sx)), "mm"


def _score_segmentation(
    row: SetRow, image, probabilities: np.ndarray, predictor: Predictor, classes: Sequence[str], output: Path
) -> dict[str, Any]:
    masks = predictor.to_source_grid(probabilities, image)
    spacing, unit = _spacing_rc(image)
    scores: dict[str, Any] = {}
    for name in classes:
        ref = row.masks.get(name)
        if ref is None:
            continue
        truth = read_mask_array(ref, image) > 0
        scores[name] = segmentation_scores(masks[predictor.spec.classes.index(name)], truth, spacing)
    keep = [predictor.spec.classes.index(c) for c in classes]
    mask_file = output / MASKS_DIR / f"{row.id}.npz"
    mask_file.parent.mkdir(exist_ok=True)
    with atomic_path(mask_file, overwrite=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, masks=masks[keep].astype(bool), classes=np.asarray(list(classes)))
    return {"scores": scores, "distance_unit": unit, "mask_file": f"{MASKS_DIR}/{row.id}.npz"}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _name_the_bad_image(chunk: Sequence[tuple[SetRow, str]], tensors: Sequence[Any], predictor: Predictor) -> None:
    """A NaN or misshapen output after the trial pass: find the image and name it."""
    for (row, _), tensor in zip(chunk, tensors):
        try:
            predictor.run([tensor])
        except InputError as exc:
            raise InputError(row.image, f"predictor {exc.path}: {exc.problem}") from None


def _predict_rows(
    pending: Sequence[tuple[SetRow, str]],
    predictor: Predictor,
    classes: Sequence[str],
    task: str,
    output: Path,
    partial: PartialPredictions,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=len(pending), desc=f"stress evaluate ({predictor.name})", unit="image", disable=not progress)
    try:
        size = max(1, predictor.batch_size or 1)
        if task == "segmentation":
            size = min(size, SEGMENTATION_CHUNK)
        for chunk in _chunks(pending, size):
            images, tensors = [], []
            for row, _ in chunk:
                image = read_image(row.image)
                tensors.append(predictor.prepare(image))
                # Classification needs only the small contract tensor; full radiographs stay for segmentation.
                images.append(image if task == "segmentation" else None)
            try:
                outputs = [y.numpy() for y in predictor.run(tensors)]
            except InputError:
                _name_the_bad_image(chunk, tensors, predictor)
                raise
            records = []
            for (row, signature), image, p in zip(chunk, images, outputs):
                record: dict[str, Any] = {"id": row.id, "signature": signature}
                if task == "classification":
                    decisions = predictor.decide(p)
                    index = [predictor.spec.classes.index(c) for c in classes]
                    record["probabilities"] = {c: float(p[i]) for c, i in zip(classes, index)}
                    record["decisions"] = {c: int(decisions[i]) for c, i in zip(classes, index)}
                else:
                    record.update(_score_segmentation(row, image, p, predictor, classes, output))
                records.append(record)
            partial.add(records)
            bar.update(len(chunk))
    finally:
        bar.close()


# -- results -----------------------------------------------------------------------------
def _outcomes(rows: Sequence[SetRow], records: dict[str, dict], task: str, classes: Sequence[str],
              columns: Sequence[str]) -> Outcomes:  # fmt: skip
    out = Outcomes(
        task=task,
        classes=list(classes),
        ids=[r.id for r in rows],
        kinds=np.asarray([r.kind for r in rows]),
        sources=[r.source for r in rows],
        recipes=[r.recipe for r in rows],
        columns={c: [r.values.get(c) for r in rows] for c in columns},
    )
    for c in classes:
        if task == "classification":
            out.classification[c] = ClassificationTable(
                labels=np.array([r.labels.get(c, np.nan) for r in rows], dtype=np.float64),
                probabilities=np.array([records[r.id]["probabilities"][c] for r in rows]),
                decisions=np.array([records[r.id]["decisions"][c] for r in rows], dtype=np.float64),
            )
        else:
            names = ("dice", "hd95", "asd", "empty")
            table = {n: np.full(len(rows), np.nan) for n in names}
            for i, r in enumerate(rows):
                s = records[r.id]["scores"].get(c)
                if s is not None:
                    for n in names:
                        table[n][i] = s[n]
            out.segmentation[c] = table
    return out


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            continue
    versions.setdefault("radedit-core", __version__)
    return versions


def _locality_summary(rows: Sequence[SetRow]) -> dict[str, Any]:
    """Median (and largest) locality figures of a recipe's edits (:func:`radedit_core.scoring.edit_locality`)."""
    figures = {
        "edit_mean_abs_change": ("edit", "mean_abs_change"),
        "keep_max_abs_change": ("keep", "max_abs_change"),
        "outside_mean_abs_change": ("outside", "mean_abs_change"),
        "outside_max_abs_change": ("outside", "max_abs_change"),
        "ssim": ("ssim", None),
        "ssim_outside_edit": ("ssim_outside_edit", None),
    }
    out: dict[str, Any] = {}
    for name, (region, key) in figures.items():
        values = []
        for r in rows:
            loc = r.values.get("locality") or {}
            v = loc.get(region) if key is None else (loc.get(region) or {}).get(key)
            if isinstance(v, (int, float)):
                values.append(float(v))
        if values:
            out[name] = {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values)),
                         "n": len(values)}  # fmt: skip
    return out


#: Each recipe filter (:mod:`.recipes`) and the words of the rejection reasons it gives.
_FILTER_WORDS = {
    "min_score": ("min_score", "editing score"),
    "max_outside_change": ("max_outside_change", "outside the masks"),
    "max_keep_change": ("max_keep_change", "keep region"),
    "min_edit_change": ("min_edit_change", "in the edit region"),
}


def _qc(stress_set: StressSet) -> dict[str, Any]:
    synthetic = [r for r in stress_set.rows if not r.is_real]
    scored = [r for r in synthetic if r.score is not None]
    threshold = stress_set.qc.get("score_threshold", PAPER_SCORE_THRESHOLD if scored else None)
    per_recipe: dict[str, dict[str, Any]] = {}
    reasons: dict[str, int] = {}
    for r in synthetic:
        counts = per_recipe.setdefault(r.recipe or "", {"accepted": 0, "rejected": 0, "reasons": {}})
        counts["accepted" if r.accepted else "rejected"] += 1
        if not r.accepted:
            reason = r.reason or "unspecified"
            reasons[reason] = reasons.get(reason, 0) + 1
            # one count per filter (a rejection may name several)
            for part in reason.split("; "):
                kind = next((f for f, words in _FILTER_WORDS.items() if any(w in part for w in words)), "other")
                counts["reasons"][kind] = counts["reasons"].get(kind, 0) + 1
    for recipe, counts in per_recipe.items():
        rows = [r for r in synthetic if r.recipe == recipe]
        counts["locality"] = _locality_summary(rows)
        counts["scores"] = [r.score for r in rows if r.score is not None]
        counts["filters"] = (stress_set.qc.get("filters") or {}).get(recipe.removesuffix(":sham"), {})
    status = stress_set.qc.get("score_status")
    return {
        "score_threshold": threshold,
        "score_name": stress_set.qc.get("score_name", "BioViL-T editing score (paper Sec. 4.4)"),
        "score_status": status,
        "filters_not_applied": stress_set.qc.get("filters_not_applied"),
        "scores": [{"id": r.id, "recipe": r.recipe, "score": r.score, "accepted": r.accepted} for r in scored],
        "per_recipe": per_recipe,
        "reasons": reasons,
        "rejected": [{"id": r.id, "recipe": r.recipe, "score": r.score, "reason": r.reason} for r in synthetic if not r.accepted],
    }


def _distance_unit(records: Sequence[dict[str, Any]]) -> str | None:
    units = {r.get("distance_unit") for r in records if r.get("distance_unit")}
    if not units:
        return None
    return units.pop() if len(units) == 1 else "mm (px for PNG images)"


def _write_predictions(path: Path, rows: Sequence[SetRow], records: dict[str, dict], task: str,
                       classes: Sequence[str], columns: Sequence[str]) -> None:  # fmt: skip
    header = [*PREDICTION_ROW_COLUMNS, *columns]
    for c in classes:
        if task == "classification":
            header += [f"label_{c}", f"probability_{c}", f"prediction_{c}"]
        else:
            header += [f"dice_{c}", f"hd95_{c}", f"asd_{c}", f"empty_{c}"]
    if task == "segmentation":
        header.append("mask_file")
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            for r in rows:
                rec = records[r.id]
                cells: dict[str, Any] = {
                    "id": r.id, "kind": r.kind, "source": r.source, "recipe": r.recipe or "",
                    "image": r.values.get("image", ""), **{c: r.values.get(c, "") for c in columns},
                }  # fmt: skip
                for c in classes:
                    if task == "classification":
                        cells[f"label_{c}"] = "" if c not in r.labels else r.labels[c]
                        cells[f"probability_{c}"] = f"{rec['probabilities'][c]:.6g}"
                        cells[f"prediction_{c}"] = rec["decisions"][c]
                    else:
                        s = rec["scores"].get(c) or {}
                        for n in ("dice", "hd95", "asd", "empty"):
                            cells[f"{n}_{c}"] = "" if n not in s else f"{s[n]:.6g}"
                if task == "segmentation":
                    cells["mask_file"] = rec["mask_file"]
                writer.writerow(cells)


def check_evaluate_options(
    n_resamples: Any, seed: Any, confidence: Any, names: Sequence[str] = ("--resamples", "--seed", "--confidence")
) -> None:
    """The bootstrap's options, checked before the predictor loads (``names``: as the front end spells them).

    Raises:
        ConfigError: fewer than 100 resamples, a seed that is not an integer from 0 to
            :data:`~radedit_core.settings.MAX_SEED`, a confidence outside (0.5, 1).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise ConfigError(f"{names[0]} {n_resamples}: use at least 100 bootstrap resamples")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{names[1]} {seed}: must be an integer from 0 to {MAX_SEED}")
    if isinstance(confidence, bool) or not (isinstance(confidence, (int, float)) and 0.5 < confidence < 1.0):
        raise ConfigError(f"{names[2]} {confidence}: must lie between 0.5 and 1")


def _own_results(path: Path) -> bool:
    return (json_object(path) or {}).get("format") == RESULTS_FORMAT


def _own_predictions(path: Path) -> bool:
    return (csv_header(path) or [])[: len(PREDICTION_ROW_COLUMNS)] == list(PREDICTION_ROW_COLUMNS)


def check_results_folder(
    output: str | Path, stress_set: StressSet | None = None, predictor: Mapping[str, Any] | None = None
) -> None:
    """Before any prediction: the results folder is not the working folder, and its ``results.json``
    and ``predictions.csv`` are neither inputs (the set's files; the predictor's ``file``,
    ``sidecar`` and ``config`` from its description) nor files another tool wrote there
    (replaced only when radedit wrote them, ``--overwrite`` or not).

    Raises:
        OutputError: naming the file and the problem.
    """
    output = Path(output)
    check_not_working_folder(output)
    inputs: dict[str, Any] = dict(stress_set.input_files()) if stress_set is not None else {}
    for key in ("file", "sidecar", "config"):
        if (predictor or {}).get(key):
            inputs[f"--predictor's {key}"] = Path(str(predictor[key]))
    check_run_files(output, {RESULTS_JSON: _own_results, PREDICTIONS_CSV: _own_predictions}, inputs, "stress evaluate")


def evaluate_set(
    set_dir: str | Path | StressSet,
    predictor: Predictor,
    task: str | None = None,
    output: str | Path = "stress-results",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    overwrite: bool = False,
    progress: bool = True,
) -> Evaluation:
    """Evaluate ``predictor`` on a set; write ``results.json`` and ``predictions.csv`` into ``output``.

    Args:
        set_dir: the set folder (or its ``set.json``, or a read :class:`StressSet`).
        predictor: from :func:`~radedit_core.stress.predictor_forms.load_predictor`.
        task: ``classification``/``segmentation`` (must match the set), or None/``auto``.
        output: folder for the results (created); an existing ``results.json``
            is an error unless ``overwrite``.
        n_resamples, seed, confidence: the source bootstrap.

    Raises:
        InputError: bad set, unknown label, missing file, wrong predictor output
            (shape, NaN) in the trial pass or later.
        ConfigError: task mismatch, bad option.
        OutputError: results exist (without ``overwrite``) or cannot be written.
    """
    started = time.perf_counter()
    check_evaluate_options(n_resamples, seed, confidence)
    stress_set = set_dir if isinstance(set_dir, StressSet) else read_stress_set(set_dir)
    classes = check_labels(stress_set, predictor, task)
    task = stress_set.task
    output = Path(output)
    results_path, predictions_path = output / RESULTS_JSON, output / PREDICTIONS_CSV
    check_results_folder(output, stress_set, getattr(predictor, "description", None))
    # results.json is written last: predictions.csv without it is this command's own unfinished run, which resumes.
    if results_path.exists() and not overwrite:
        raise OutputError(f"{results_path}: output already exists (pass --overwrite, or overwrite=True in Python, to replace it)")

    # 2. trial forward pass on a real image, before anything is written
    rows = stress_set.accepted
    trial = next((r for r in rows if r.is_real), rows[0])
    predictor.check(read_image(trial.image))
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output}: cannot create the results folder ({exc.strerror})") from exc

    # 3. predictions, resumable
    header = {"fingerprint": predictor.fingerprint, "task": task, "classes": classes}
    partial = PartialPredictions(output, header)
    pending, reused = [], 0
    signatures = {r.id: file_signature(r.image) for r in rows}
    for r in rows:
        if partial.done(r.id, signatures[r.id]) is None:
            pending.append((r, signatures[r.id]))
        else:
            reused += 1
    _predict_rows(pending, predictor, classes, task, output, partial, progress)
    records = {r.id: partial.records[r.id] for r in rows}

    # 4. figures
    boot = SourceBootstrap([r.source for r in rows], n_resamples=n_resamples, seed=seed, confidence=confidence)
    sweeps = [c for c in SWEEP_COLUMNS if any(c in r.values for r in rows)]
    outcomes = _outcomes(rows, records, task, classes, [*stress_set.subgroups, *sweeps])
    summary = summarise(outcomes, boot, stress_set.subgroups, sweeps)
    real = [r for r in rows if r.is_real]
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "task": task,
        "classes": classes,
        "set": {
            "name": stress_set.name,
            "path": str(stress_set.path.resolve()),
            "sha256": stress_set.sha256,
            "rows": len(stress_set.rows),
            "evaluated": len(rows),
            "real": len(real),
            "synthetic": len(rows) - len(real),
            "rejected": len(stress_set.rejected),
            "sources": boot.n_sources,
            "recipes": stress_set.recipes,
            "subgroups": stress_set.subgroups,
            "sweeps": sweeps,
        },
        "predictor": predictor.provenance(),
        "evaluation": {
            "bootstrap": boot.describe(),
            "intervals": {
                "proportions": "accuracy, sensitivity, specificity, flip rate: " + intervals.WILSON,
                "differences": "of proportions: " + intervals.NEWCOMBE + "; paired (edits against their own "
                "sources): " + intervals.NEWCOMBE_PAIRED + " with an exact McNemar test",
                "other": "AUROC, Dice, HD95, ASD, probability changes: " + intervals.BOOTSTRAP,
                "too_small": f"groups of fewer than {intervals.MIN_INTERPRETABLE} images are marked too small to interpret",
            },
            "decision": (
                "argmax over classes (softmax)" if predictor.spec.exclusive
                else f"probability >= {predictor.spec.threshold:g}" if predictor.spec.output != "masks"
                else "mask value 1"
            ),
            "metric_scope": AUROC_SCOPE if task == "classification" else (
                "Dice, HD95 (95th-percentile Hausdorff distance) and ASD (symmetric average surface distance) "
                "against the original masks on the source grid; an empty prediction counts as Dice 0 and is "
                "left out of the distances (reported as empty predictions)"
            ),
            "distance_unit": _distance_unit(list(records.values())),
            "seconds": None,
            "reused_predictions": reused,
        },
        **summary,
        "qc": _qc(stress_set),
        "provenance": {
            "set": stress_set.provenance,
            "radedit_core": __version__,
            "packages": package_versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }
    results["evaluation"]["seconds"] = round(time.perf_counter() - started, 3)
    _write_predictions(predictions_path, rows, records, task, classes, stress_set.subgroups)
    write_json(results_path, results, overwrite=True)
    partial.remove()
    return Evaluation(output, results, results_path, predictions_path, evaluated=len(pending), reused=reused)


def read_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` from a results folder (or the file itself)."""
    path = Path(path)
    file = path / RESULTS_JSON if path.is_dir() else path
    if not file.is_file():
        raise InputError(file, "results not found (run radedit stress evaluate first)")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(file, f"not valid JSON ({exc})") from exc
    if data.get("format") != RESULTS_FORMAT:
        raise InputError(file, f"not a {RESULTS_FORMAT} file")
    return data


__all__ = [
    "check_evaluate_options",
    "check_results_folder",
    "Evaluation",
    "MASKS_DIR",
    "PREDICTIONS_CSV",
    "RESULTS_JSON",
    "check_labels",
    "file_signature",
    "evaluate_set",
    "package_versions",
    "read_results",
]
