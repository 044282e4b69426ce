"""Background worker: one JSON job in, JSON lines out.

Front ends that must stay responsive (the 3D Slicer extension, notebooks with
a GUI) run the edit in a separate process::

    python -m radedit_core.worker job.json
    python -m radedit_core.worker --probe          # what this environment has
    python -m radedit_core.worker --check job.json # is the job valid? (no model, nothing written)

The process prints one JSON object per line on stdout and nothing else there
(library chatter is sent to stderr)::

    {"event": "started", "task": "edit", "pid": 123, "version": "0.1.0"}
    {"event": "progress", "stage": "load", "done": 0, "total": 1}
    {"event": "progress", "stage": "invert", "done": 7, "total": 7}
    {"event": "progress", "stage": "edit", "done": 3, "total": 7}
    {"event": "done", "output": "/tmp/job/edited.nrrd", "sidecar": "...", ...}
    {"event": "error", "message": "edit.nrrd: edit mask is empty: ...", "kind": "MaskError"}

and exits 0 on success, the error's exit code (2 input/config, 3 model
missing, 4 output) or 1 for an unexpected failure.  SIGTERM (the front end's
Cancel) ends it with exit code 143 and removes what it was writing: outputs
are written to temporary names and renamed, so an output exists whole or not
at all.

Jobs (``"radedit_job": 1``):

Relative paths in a job count from the job file's folder; a relative output
(``output``, ``sidecar``, ``out_dir``) may not leave that folder through
``..``, and no output may be one of the job's inputs (compared as files:
symlinks and hard links count).

``task: "edit"`` edits ``image`` (anything :func:`read_image` reads; the
Slicer module writes the volume as NRRD with its geometry) inside
``edit_mask`` (``null``: global edit), keeping ``keep_mask``; both must lie on
the image's grid.  ``settings`` are :class:`~radedit_core.settings.EditSettings` fields (the
bundle's names: ``prompt``, ``guidance``, ...; absent = the default), ``model``
is ``{"name", "device", "dtype", "vae_dtype", "trust_remote_code", "offline"}``
(:class:`~radedit_core.settings.ModelOptions`)
and ``intensity`` optionally overrides what the file cannot say: the
stored-value ``value_range``, the ``window`` mapped to [-1, 1], and
``invert`` for images stored with inverted polarity (bright = air), which the
model must see the usual way round.  Writes ``output`` (same grid, dtype and
format as the image) and its provenance sidecar.

``task: "export"`` writes ``edited`` (an image on the grid of ``reference``)
as a derived DICOM series of ``source_dicom``'s study with
:func:`radedit_core.dicom.write_derived_series`.  ``reference`` is the source
image as the front end holds it (Slicer applies the rescale and keeps the
stored polarity), so the worker recovers the exact affine map between those
values and the DICOM stored values from the pair, checks that it is exact,
and brings the edit back to stored values with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, TextIO

from ._version import __version__
from .errors import ConfigError, InputError, MaskError, RadEditError
from .fileio import check_outputs_apart, check_writable, same_file
from .settings import EditSettings, ModelOptions, bundle_name, dicom_output_values

JOB_VERSION = 1
#: Exit code of a cancelled job (128 + SIGTERM, what a shell reports).
CANCELLED_EXIT_CODE = 143

_EDIT_KEYS = {
    "radedit_job", "task", "image", "edit_mask", "keep_mask", "output", "sidecar",
    "overwrite", "settings", "model", "intensity", "source_dicom", "client",
}
_EXPORT_KEYS = {
    "radedit_job", "task", "source_dicom", "reference", "edited", "provenance", "edit_mask",
    "keep_mask", "out_dir", "uid_root", "series_number", "series_description", "write_seg",
    "overwrite", "client",
}


class Cancelled(BaseException):
    """SIGTERM arrived: unwind (running every ``finally``) and exit.

    A BaseException so that no ``except Exception`` on the way swallows it.
    """


class Emitter:
    """Writes protocol events as JSON lines on the real stdout."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            # The front end went away (or closed our pipe on Cancel); the
            # work's outcome is decided by the files, not by this line.
            pass


def _protocol_stream() -> TextIO:
    """Keep stdout for events; send everything else written to fd 1 to stderr.

    Libraries print (load reports, warnings from C++): a duplicate of the
    original stdout carries the protocol and fd 1 is pointed at stderr, so a
    stray print can never corrupt a JSON line.
    """
    sys.stdout.flush()
    try:
        protocol_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # pragma: no cover - no real file descriptors (embedded use)
        return sys.stdout
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8")


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Cancelled()


# -- jobs ------------------------------------------------------------------


def load_job(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "job file does not exist") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"job file is not valid JSON ({exc})") from exc
    if not isinstance(job, dict):
        raise InputError(path, "job file must hold a JSON object")
    version = job.get("radedit_job")
    if version != JOB_VERSION:
        raise ConfigError(
            f"{path}: job version {version!r} is not supported by radedit_core {__version__} "
            f"(expected \"radedit_job\": {JOB_VERSION}); update the front end or radedit_core"
        )
    task = job.get("task")
    allowed = {"edit": _EDIT_KEYS, "export": _EXPORT_KEYS}.get(task)
    if allowed is None:
        raise ConfigError(f"{path}: unknown task {task!r}; expected 'edit' or 'export'")
    unknown = sorted(set(job) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown {task} job fields {unknown}")
    for key in _OBJECT_FIELDS:
        if job.get(key) is not None and not isinstance(job[key], dict):
            raise ConfigError(f"{path}: job field {key!r} must be a JSON object, got {type(job[key]).__name__} "
                              f"{job[key]!r:.60}")  # fmt: skip
    return _resolve_paths(job, path)


#: Job fields holding a JSON object.
_OBJECT_FIELDS = ("settings", "model", "intensity", "client")
#: Job fields naming files the job reads, and those it writes.
_INPUT_FIELDS = ("image", "edit_mask", "keep_mask", "source_dicom", "reference", "edited", "provenance")
_OUTPUT_FIELDS = ("output", "sidecar", "out_dir")


def _resolve_paths(job: dict[str, Any], path: Path) -> dict[str, Any]:
    """Relative paths count from the job file's folder; a relative output may not leave it through ``..``.

    Raises:
        ConfigError: a path field that is not a string, or an output escaping the job's folder.
    """
    base = Path(os.path.abspath(path)).parent
    out = dict(job)
    for key in (*_INPUT_FIELDS, *_OUTPUT_FIELDS):
        value = job.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{path}: job field {key!r} must be a path (a string), got {value!r:.60}")
        given = Path(value).expanduser()
        if given.is_absolute():
            continue
        resolved = Path(os.path.normpath(base / given))
        if key in _OUTPUT_FIELDS and ".." in given.parts and base not in resolved.parents:
            raise ConfigError(
                f"{path}: job field {key!r} {value!r} leaves the job's folder {base} through '..'; give an "
                "absolute path or one inside the job's folder"
            )
        out[key] = str(resolved)
    return out


def _require(job: dict[str, Any], key: str) -> Any:
    if job.get(key) in (None, ""):
        raise ConfigError(f"job field {key!r} is required for a {job['task']} job")
    return job[key]


def check_edit(job: dict[str, Any]):
    """Everything about an edit job that needs no model: settings, model options, image, masks, outputs.

    Returns the :class:`~radedit_core.edit_request.EditRequest` (with the
    job's own sidecar path) and the :class:`~radedit_core.settings.ModelOptions`.
    """
    from dataclasses import replace  # noqa: PLC0415

    from .edit_request import check_edit_outputs_apart, prepare_edit  # noqa: PLC0415
    from .models.spec import ModelSpec  # noqa: PLC0415

    settings = EditSettings.from_mapping(dict(_require(job, "settings")), bundle_name)
    model = ModelOptions.from_mapping(dict(job.get("model") or {}), bundle_name)
    ModelSpec.resolve(model.model)  # a model that does not exist is reported now, not after the inputs
    overwrite = bool(job.get("overwrite", False))
    request = prepare_edit(
        _require(job, "image"),
        job.get("edit_mask"),
        job.get("keep_mask"),
        settings,
        _require(job, "output"),
        overwrite=overwrite,
        global_edit=job.get("edit_mask") is None,
        name=bundle_name,
        model=model.model,
    )
    if job.get("sidecar"):
        request = replace(request, sidecar=check_writable(job["sidecar"], overwrite))
        check_edit_outputs_apart(
            {"sidecar": request.sidecar, "output": request.output},
            job["image"], request.edit_ref, request.keep_ref, bundle_name, model.model,
        )  # fmt: skip
        if same_file(request.sidecar, request.output) or Path(os.path.abspath(request.sidecar)) == Path(
            os.path.abspath(request.output)
        ):
            raise ConfigError(f"job fields 'sidecar' and 'output' name the same file {request.output}")
    return request, model


def run_edit(job: dict[str, Any], emit: Emitter) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    from .imaging.intensity import apply_intensity, dicom_intensity  # noqa: PLC0415
    from .models.loading import quiet_model_libraries  # noqa: PLC0415
    from .workflow import RadEditor, run_edit as run_request  # noqa: PLC0415

    # Every problem with the job is reported before the model is loaded.
    request, model = check_edit(job)
    source = request.image
    intensity = job.get("intensity")
    storable = None
    if job.get("source_dicom"):
        from .dicom import read_dicom_image  # noqa: PLC0415

        intensity, storable = dicom_intensity(source, read_dicom_image(job["source_dicom"]))
    image, undo = apply_intensity(source, intensity)
    request.image = image

    emit("progress", stage="load", done=0, total=1)
    t0 = time.perf_counter()
    quiet_model_libraries()
    editor = RadEditor.from_options(model)
    editor.set_progress(False)
    load_seconds = time.perf_counter() - t0
    emit("progress", stage="load", done=1, total=1)

    def progress(stage: str, done: int, total: int) -> None:
        emit("progress", stage=stage, done=int(done), total=int(total))

    def back_to_the_volume(result) -> None:
        edited = undo(result.image.array)
        if storable is not None:
            # Unchanged pixels keep their exact values (a float volume may not
            # reproduce them bit for bit through the stored-value round trip).
            edited = np.where(edited == source.array, source.array, storable(edited))
        result.source, result.image = source, source.with_array(edited)
        emit("progress", stage="write", done=0, total=1)

    worker_block = {
        "job_version": JOB_VERSION,
        "intensity": intensity or {},
        "source_dicom": job.get("source_dicom"),
        "client": job.get("client"),
        "model_load_s": round(load_seconds, 4),
    }
    result, written = run_request(editor, request, progress, extra={"worker": worker_block}, finish=back_to_the_volume)
    emit("progress", stage="write", done=1, total=1)
    masks = result.masks.summary()
    return {
        "output": str(written.path),
        "sidecar": str(request.sidecar),
        "changed_pixels": result.provenance["result"]["changed_pixels"],
        "edit_pixels": masks["edit_pixels"],
        "keep_pixels": masks["keep_pixels"],
        "overlap_pixels": masks["overlap_pixels"],
        "unet_evaluations": result.unet_evaluations,
        "seconds": round(result.timings.get("total", 0.0), 3),
    }


# -- export ------------------------------------------------------------------


def run_export(job: dict[str, Any], emit: Emitter) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    from .imaging.intensity import stored_value_map, to_source_values  # noqa: PLC0415
    from .imaging.io import read_image  # noqa: PLC0415

    try:
        from .dicom import read_dicom_image, write_derived_series  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installed version
        raise ConfigError(
            f"this radedit_core ({__version__}) has no DICOM writer; update radedit_core ({exc})"
        ) from exc

    source_path = Path(_require(job, "source_dicom"))
    out_dir = Path(_require(job, "out_dir"))
    # the series options before anything is read; their errors name the job fields
    dicom = dicom_output_values({k: job.get(k) for k in ("uid_root", "series_number", "series_description", "write_seg")})

    check_outputs_apart({"out_dir": out_dir}, {k: job.get(k) for k in _INPUT_FIELDS}, folders=("out_dir",))
    emit("progress", stage="read", done=0, total=1)
    source = read_dicom_image(source_path)
    reference = read_image(_require(job, "reference"))
    edited = read_image(_require(job, "edited"))
    for name, image in (("reference", reference), ("edited", edited)):
        if image.shape != source.shape:
            raise InputError(
                image.path,
                f"{name} image is {image.shape[1]}x{image.shape[0]} (columns x rows) but the DICOM "
                f"image {source_path} is {source.shape[1]}x{source.shape[0]}; it is not on the "
                "source's pixel grid",
            )
    if not reference.geometry.in_plane().matches(edited.geometry.in_plane()):
        raise InputError(edited.path, "edited image does not lie on the reference image's grid")
    a, b = stored_value_map(source.array, reference.array)
    stored = to_source_values(edited.array, source, a, b)
    emit("progress", stage="read", done=1, total=1)

    provenance: dict[str, Any] = {}
    if job.get("provenance"):
        provenance = json.loads(Path(job["provenance"]).read_text(encoding="utf-8"))
    provenance.setdefault("tool", "radedit_core")
    provenance.setdefault("version", __version__)
    provenance["export"] = {
        "source_dicom": str(source_path),
        "displayed_to_stored": {"slope": a, "intercept": b},
        "client": job.get("client"),
    }
    result = _export_result(source, stored, job, provenance)

    emit("progress", stage="write", done=0, total=1)
    kwargs: dict[str, Any] = {**dicom, "overwrite": bool(job.get("overwrite", False))}
    files = [Path(p) for p in write_derived_series(result, out_dir, **kwargs)]
    emit("progress", stage="write", done=1, total=1)
    series_uid = study_uid = None
    changed = int(np.count_nonzero(stored != source.array))
    try:
        import pydicom  # noqa: PLC0415

        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        series_uid, study_uid = str(first.SeriesInstanceUID), str(first.StudyInstanceUID)
    except Exception:  # noqa: BLE001 - the UIDs are a convenience for the caller
        pass
    return {
        "out_dir": str(out_dir),
        "files": [str(p) for p in files],
        "series_instance_uid": series_uid,
        "study_instance_uid": study_uid,
        "changed_pixels": changed,
    }


@dataclasses.dataclass
class ExportedEdit:
    """What :func:`write_derived_series` reads of an :class:`EditResult`.

    The edit was computed in an earlier process; building a full EditResult
    would import torch only to fill fields the writer never reads.
    """

    source: Any
    image: Any
    masks: Any
    provenance: dict[str, Any]


def _export_result(source, stored, job, provenance) -> ExportedEdit:
    import numpy as np  # noqa: PLC0415

    from .imaging.io import read_image  # noqa: PLC0415
    from .imaging.masks import EditMasks  # noqa: PLC0415

    def mask(key):
        # Masks lie on the front end's volume grid, whose coordinate convention
        # may differ from the DICOM reader's; the stored-value map has already
        # proved that the pixel grids agree, so the size is what is checked.
        path = job.get(key)
        if not path:
            return None
        array = read_image(path).array
        if array.shape != source.shape:
            raise MaskError(path, f"{key} of size {array.shape} is not on the DICOM image's grid {source.shape}")
        return (array != 0).astype(np.float32)

    edit = mask("edit_mask")
    keep = mask("keep_mask")
    masks = EditMasks(edit=edit if edit is not None else np.ones(source.shape, np.float32), keep=keep)
    return ExportedEdit(source=source, image=source.with_array(stored), masks=masks, provenance=provenance)


# -- probe and main ----------------------------------------------------------


def probe() -> dict[str, Any]:
    """What this environment can run (the front end shows it in its settings)."""
    info: dict[str, Any] = {
        "version": __version__,
        "job_version": JOB_VERSION,
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }
    try:
        import torch  # noqa: PLC0415

        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
        info["devices"] = ["cpu"] + [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    except Exception as exc:  # noqa: BLE001 - report, don't fail: the probe diagnoses
        info["torch"] = None
        info["torch_error"] = str(exc)
    try:
        from . import dicom  # noqa: F401, PLC0415

        info["dicom"] = True
    except Exception:  # noqa: BLE001
        info["dicom"] = False
    return info


TASKS: dict[str, Callable[[dict[str, Any], Emitter], dict[str, Any]]] = {
    "edit": run_edit,
    "export": run_export,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m radedit_core.worker",
        description="Run one RadEdit job (JSON) and report progress as JSON lines on stdout.",
    )
    parser.add_argument("job", nargs="?", type=Path, help="job file (JSON)")
    parser.add_argument("--probe", action="store_true", help="print what this environment has and exit")
    parser.add_argument(
        "--check", action="store_true", help="check the job (options, inputs, outputs) without running it"
    )
    args = parser.parse_args(argv)
    if args.job is None and not args.probe:
        parser.error("give a job file, or --probe")

    emit = Emitter(_protocol_stream())
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        if args.probe:
            emit("probe", **probe())
            return 0
        job = load_job(args.job)
        if args.check:
            if job["task"] == "edit":
                check_edit(job)
            emit("checked", task=job["task"])
            return 0
        emit("started", task=job["task"], pid=os.getpid(), version=__version__)
        summary = TASKS[job["task"]](job, emit)
        emit("done", task=job["task"], **summary)
        return 0
    except Cancelled:
        emit("cancelled")
        return CANCELLED_EXIT_CODE
    except RadEditError as exc:
        emit("error", message=str(exc), kind=type(exc).__name__, exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        emit("cancelled")
        return 130
    except Exception as exc:  # noqa: BLE001 - the front end shows every failure
        traceback.print_exc(file=sys.stderr)
        emit("error", message=f"{type(exc).__name__}: {exc}", kind=type(exc).__name__, exit_code=1)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
