"""The run folder: its layout, whether a run starts, resumes or is refused, and the metrics log.

::

    <output_dir>/
      train_settings.json      the settings of the latest session
      metrics.jsonl            one JSON object per line: training loss records and evaluations
      checkpoints/checkpoint-<step>/   resumable states (radedit_core.training.checkpoint)
      samples/step-<step>.png  sample grids
      model/                   the trained model, written once at the end (radedit_core.training.output)

Nothing is created while deciding (:func:`plan_run`): a bad folder is an error
before any model is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..fileio import atomic_path, check_outputs_apart, json_object, toolkit_record
from .checkpoint import TrainState, check_resumable, list_checkpoints
from .output import MODEL_SUBDIR

METRICS_FILE = "metrics.jsonl"
SETTINGS_FILE = "train_settings.json"
_RUN_ENTRIES = ("checkpoints", "samples", METRICS_FILE, SETTINGS_FILE, MODEL_SUBDIR)


@dataclass(frozen=True)
class RunPlan:
    """What this session does with ``run_dir``.

    ``resume_from``/``state``: the checkpoint to continue from (None: a fresh
    run).  ``clear``: the earlier run's entries to delete first (overwrite).
    """

    run_dir: Path
    model_dir: Path
    resume_from: Path | None
    state: TrainState | None
    clear: tuple[Path, ...]


def plan_run(settings, global_batch: int) -> RunPlan:
    """Decide between a fresh run, a resume and an error; creates nothing.

    Raises:
        OutputError: the folder holds a finished model, or an earlier run
            that ``resume='never'`` refuses, or cannot be created; it is not
            empty and not a run folder radedit wrote (overwrite or not); or
            overwrite would delete an input (the model to fine-tune).
        ConfigError: the checkpoint to resume was written with other settings.
    """
    run_dir = Path(settings.output_dir)
    model_dir = run_dir / MODEL_SUBDIR
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: output_dir exists and is not a folder")
    if not run_dir.exists():
        _check_creatable(run_dir)
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_folder(run_dir):
        raise OutputError(
            f"{run_dir}: not a training run folder radedit wrote (no {SETTINGS_FILE} written by radedit in it); "
            "output_dir must be new, empty or an earlier run's, overwrite or not: choose another output_dir"
        )
    earlier = tuple(run_dir / name for name in _RUN_ENTRIES if (run_dir / name).exists())
    if settings.overwrite:
        # what overwrite deletes holds no input (fine-tuning the run's own model/ into the same folder)
        inputs = {"model": settings.model, "datalist": settings.datalist,
                  "resume": None if settings.resume in ("auto", "never") else settings.resume}  # fmt: skip
        for entry in earlier:
            check_outputs_apart({"overwrite, which deletes,": entry}, inputs, folders=("overwrite, which deletes,",))
        return RunPlan(run_dir, model_dir, None, None, earlier)
    if model_dir.exists():
        raise OutputError(
            f"{model_dir}: this run folder already holds a trained model (pass overwrite to train again, "
            "or choose another output_dir)"
        )
    recipe, defaults = settings.recipe(), settings.recipe_defaults()
    if settings.resume not in ("auto", "never"):
        folder = Path(settings.resume).expanduser().resolve()
        return RunPlan(run_dir, model_dir, folder, check_resumable(folder, recipe, global_batch, defaults), ())
    checkpoints = list_checkpoints(run_dir)
    if settings.resume == "never" and earlier:
        raise OutputError(
            f"{run_dir}: holds an earlier training run ({', '.join(p.name for p in earlier)}); resume it "
            "(resume auto), pass overwrite, or choose another output_dir"
        )
    if checkpoints:
        latest = checkpoints[-1]
        return RunPlan(run_dir, model_dir, latest, check_resumable(latest, recipe, global_batch, defaults), ())
    return RunPlan(run_dir, model_dir, None, None, ())


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a training run folder radedit wrote: its :data:`SETTINGS_FILE` is radedit's
    (``tool``, or the ``settings``/``radedit_core`` record that runs before 0.1 kept)."""
    path = Path(folder) / SETTINGS_FILE
    return toolkit_record(path) is not None or {"settings", "radedit_core"} <= set(json_object(path) or {})


def _check_creatable(path: Path) -> None:
    """The nearest existing ancestor of ``path`` is a writable folder (nothing is created)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot create output_dir ({parent} is not a writable folder)")


def prepare_run_dir(plan: RunPlan) -> None:
    """Create the folder (and delete the earlier run's entries when overwriting)."""
    for entry in plan.clear:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    try:
        plan.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{plan.run_dir}: cannot create the run folder ({exc.strerror})") from exc


class MetricsLog:
    """``metrics.jsonl``: appended line by line (a crash loses at most the line being written)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled

    def append(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (written by a session that did not reach its next checkpoint)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        with atomic_path(self.path, overwrite=True) as tmp:
            tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
