"""The module's logic without Qt: masks, jobs, the background run, result, export.

``RadEditCoreLogic`` takes its MRML scene and segmentations logic (and, for
export, how to find a DICOM instance's file and how to import a folder into
the DICOM database) from its caller: Slicer's ``RadEditLogic`` passes
``slicer.mrmlScene``, ``slicer.modules.segmentations.logic()`` and
``slicer.dicomDatabase``; the headless tests pass what the ``slicer-core``
bootstrap made.  The algorithm and all DICOM work stay in ``radedit_core``,
reached only through ``python -m radedit_core.worker``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import mrml
from .protocol import (
    EditParameters,
    WorkerError,
    WorkerProcess,
    check_job,
    edit_job,
    export_job,
    worker_command,
    write_job,
)

CLIENT = {"name": "RadEditSlicer", "version": "0.1.0"}


@dataclass
class EditRun:
    """One edit in flight (or finished): its files, its process, its inputs."""

    job_dir: Path
    job_path: Path
    input_path: Path
    edit_mask_path: Path
    keep_mask_path: Path | None
    output_path: Path
    sidecar_path: Path
    source_volume_id: str
    parameters: EditParameters
    masks: mrml.SegmentMasks
    process: WorkerProcess | None = None
    result_volume: Any = None
    difference_volume: Any = None

    @property
    def state(self) -> str:
        return "new" if self.process is None else self.process.state


@dataclass
class ExportRun:
    export_dir: Path
    out_dir: Path
    job_path: Path
    process: WorkerProcess


@dataclass
class ExportOutcome:
    out_dir: Path
    files: list[Path]
    series_instance_uid: str | None
    study_instance_uid: str | None
    imported: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


class RadEditCoreLogic:
    """Everything the module does, callable without a GUI."""

    def __init__(
        self,
        scene=None,
        segmentations_logic=None,
        *,
        python: str | Path | None = None,
        env: dict[str, str] | None = None,
        work_root: str | Path | None = None,
        file_for_instance: Callable[[str], str] | None = None,
        import_dicom_folder: Callable[[Path], Any] | None = None,
    ):
        self._scene = scene
        self._segmentations_logic = segmentations_logic
        self.python = None if python is None else str(python)
        self.env = env
        self.work_root = None if work_root is None else Path(work_root)
        self.file_for_instance = file_for_instance
        self.import_dicom_folder = import_dicom_folder

    # -- what Slicer's subclass provides -----------------------------------------
    def scene(self):
        if self._scene is None:
            raise RuntimeError("no MRML scene: pass one to RadEditCoreLogic")
        return self._scene

    def segmentationsLogic(self):
        if self._segmentations_logic is None:
            raise RuntimeError("no segmentations logic: pass one to RadEditCoreLogic")
        return self._segmentations_logic

    def workerPython(self) -> str:
        return self.python or sys.executable

    def workerEnvironment(self) -> dict[str, str] | None:
        return self.env

    def workRoot(self) -> Path:
        return self.work_root or Path(tempfile.gettempdir())

    # -- masks ---------------------------------------------------------------------
    def takeSegmentArrays(
        self, volumeNode, segmentationNode, editSegmentIds: Sequence[str], keepSegmentIds: Sequence[str] = ()
    ) -> mrml.SegmentArrays:
        """The MRML half of :meth:`computeMasks` (the GUI thread's part): copies of the chosen
        segments' labelmap voxels and extents (:func:`mrml.take_segment_arrays`); nothing computed."""
        if volumeNode is None:
            raise mrml.MaskProblem("choose the input volume (the chest X-ray)")
        return mrml.take_segment_arrays(
            self.scene(),
            self.segmentationsLogic(),
            segmentationNode,
            list(editSegmentIds),
            list(keepSegmentIds),
            volumeNode,
        )

    def computeMasks(self, volumeNode, segmentationNode, editSegmentIds: Sequence[str], keepSegmentIds: Sequence[str] = ()):
        """Edit/keep masks from the segments, on ``volumeNode``'s own grid, on the caller's thread.

        Both halves at once (scripts): :meth:`takeSegmentArrays`, then
        :func:`mrml.masks_from_arrays` (the panel runs that one in a
        background thread: ``panel.MaskCache``).
        """
        return mrml.masks_from_arrays(self.takeSegmentArrays(volumeNode, segmentationNode, editSegmentIds, keepSegmentIds))

    # -- edit ------------------------------------------------------------------------
    def intensityFor(self, volumeNode) -> dict[str, Any]:
        """What the model must know beyond the voxels: shown inverted (MONOCHROME1)?"""
        display = volumeNode.GetDisplayNode()
        invert = bool(display is not None and hasattr(display, "GetInvertDisplayScalarRange") and display.GetInvertDisplayScalarRange())
        return {"invert": invert}

    def prepareEdit(
        self,
        volumeNode,
        segmentationNode,
        editSegmentIds: Sequence[str],
        keepSegmentIds: Sequence[str],
        parameters: EditParameters,
        *,
        check: bool = True,
        masks: mrml.SegmentMasks | None = None,
    ) -> EditRun:
        """Write the job folder (the volume and masks as NRRD on its grid, and job.json).

        ``check``: have the worker check it first (blocking: scripts); a bad
        parameter or input is a WorkerError with the worker's message, and no
        folder stays.  The GUI passes ``check=False``: the edit worker checks
        the job itself before it loads the model, and its error comes back
        through the polled process.  ``masks``: masks already computed for
        these segments (the panel's cache).
        """
        if masks is None:
            masks = self.computeMasks(volumeNode, segmentationNode, editSegmentIds, keepSegmentIds)
        root = self.workRoot()
        root.mkdir(parents=True, exist_ok=True)
        job_dir = Path(tempfile.mkdtemp(prefix="RadEdit-", dir=root))
        try:
            scene = self.scene()
            input_path = mrml.write_volume(volumeNode, job_dir / "input.nrrd")
            edit_path = mrml.write_array_like(scene, volumeNode, masks.edit.astype("uint8"), job_dir / "edit.nrrd", labelmap=True)
            keep_path = None
            if masks.keep is not None and masks.keep.any():
                keep_path = mrml.write_array_like(
                    scene, volumeNode, masks.keep.astype("uint8"), job_dir / "keep.nrrd", labelmap=True
                )
            output = job_dir / "edited.nrrd"
            sidecar = job_dir / "edited.json"
            job = edit_job(
                input_path,
                edit_path,
                keep_path,
                output,
                parameters,
                intensity=self.intensityFor(volumeNode),
                source_dicom=self.sourceDicomFileIfAny(volumeNode),
                client={**CLIENT, "volume": volumeNode.GetName()},
            )
            job["sidecar"] = str(sidecar)
            job_path = write_job(job_dir / "job.json", job)
            if check:
                check_job(self.workerPython(), job_path, env=self.workerEnvironment())
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        return EditRun(
            job_dir=job_dir,
            job_path=job_path,
            input_path=input_path,
            edit_mask_path=edit_path,
            keep_mask_path=keep_path,
            output_path=output,
            sidecar_path=sidecar,
            source_volume_id=volumeNode.GetID(),
            parameters=parameters,
            masks=masks,
        )

    def startEdit(
        self, volumeNode, segmentationNode, editSegmentIds, keepSegmentIds, parameters: EditParameters, on_event=None,
        *, check: bool = True, masks: mrml.SegmentMasks | None = None,
    ) -> EditRun:
        """Start the edit in a background process and return (``check``, ``masks``: see :meth:`prepareEdit`)."""
        run = self.prepareEdit(
            volumeNode, segmentationNode, editSegmentIds, keepSegmentIds, parameters, check=check, masks=masks
        )
        run.process = WorkerProcess(
            worker_command(self.workerPython(), run.job_path),
            task="edit",
            env=self.workerEnvironment(),
            cwd=run.job_dir,
            on_event=on_event,
        )
        try:
            run.process.start()
        except WorkerError:
            self.discard(run)
            raise
        return run

    def cancel(self, run: EditRun, wait: bool = False) -> None:
        """Stop the worker's whole process tree (see :meth:`WorkerProcess.cancel`).

        Returns at once: the GUI keeps polling ``run.process`` and calls
        :meth:`discard` when it has finished.  ``wait=True`` (scripts)
        blocks until the tree is gone (at most ``CANCEL_GRACE_S`` and a
        poll) and removes everything the run wrote.
        """
        if run.process is not None:
            run.process.cancel()
            if not wait and not run.process.finished:
                return
            run.process.wait()
        self.discard(run)

    def discard(self, run: EditRun) -> None:
        shutil.rmtree(run.job_dir, ignore_errors=True)

    def finishEdit(self, run: EditRun, difference: bool = True):
        """Load the finished edit as a new volume beside the source (and a difference)."""
        process = run.process
        if process is None:
            raise RuntimeError("the edit was not started")
        process.poll()
        if not process.finished:
            raise RuntimeError("the edit is still running")
        if process.state != "done":
            message = process.error_message or process.state
            self.discard(run)
            raise WorkerError(message)
        scene = self.scene()
        source = scene.GetNodeByID(run.source_volume_id)
        if source is None:
            self.discard(run)
            raise WorkerError("the input volume was removed from the scene while it was being edited")
        output = Path(process.result.get("output", run.output_path))
        if not output.is_absolute():
            output = run.job_dir / output
        name = mrml.result_name(source.GetName(), run.parameters.prompt)
        result = mrml.read_volume(scene, output, name)
        if not mrml.same_grid(result, source):
            scene.RemoveNode(result)
            raise WorkerError("the edited image did not come back on the input volume's grid")
        # Within rounding the grids agree; copying makes the views' geometry identical.
        result.CopyOrientation(source)
        self._copyDisplay(source, result)
        for key, value in (
            (mrml.ATTR_SOURCE_VOLUME, source.GetID()),
            (mrml.ATTR_JOB_DIR, str(run.job_dir)),
            (mrml.ATTR_INPUT, str(run.input_path)),
            (mrml.ATTR_OUTPUT, str(output)),
            (mrml.ATTR_SIDECAR, str(run.sidecar_path)),
            (mrml.ATTR_EDIT_MASK, str(run.edit_mask_path)),
            (mrml.ATTR_KEEP_MASK, "" if run.keep_mask_path is None else str(run.keep_mask_path)),
            (mrml.ATTR_PROMPT, run.parameters.prompt),
        ):
            result.SetAttribute(key, value)
        mrml.place_beside(scene, source, result)
        run.result_volume = result
        if difference:
            run.difference_volume = mrml.difference_volume(scene, source, result)
            result.SetAttribute(mrml.ATTR_DIFFERENCE, run.difference_volume.GetID())
            mrml.place_beside(scene, source, run.difference_volume)
        return result

    def _copyDisplay(self, source, result) -> None:
        src, dst = source.GetDisplayNode(), result.GetDisplayNode()
        if src is None or dst is None:
            return
        dst.SetAutoWindowLevel(False)
        dst.SetWindowLevel(src.GetWindow(), src.GetLevel())
        if src.GetColorNodeID():
            dst.SetAndObserveColorNodeID(src.GetColorNodeID())
        # Slicer 5.10 and later (tests/slicer_api_refs.json): older ones cannot show an image inverted.
        if hasattr(src, "GetInvertDisplayScalarRange") and hasattr(dst, "SetInvertDisplayScalarRange"):
            dst.SetInvertDisplayScalarRange(src.GetInvertDisplayScalarRange())

    def edit(self, volumeNode, segmentationNode, editSegmentIds, keepSegmentIds, parameters: EditParameters, timeout: float | None = None, difference: bool = True):
        """Blocking edit (scripts, tests): start, wait, load the result volume."""
        run = self.startEdit(volumeNode, segmentationNode, editSegmentIds, keepSegmentIds, parameters)
        try:
            run.process.wait(timeout=timeout)
        except WorkerError:
            self.discard(run)
            raise
        self.finishEdit(run, difference=difference)
        return run

    # -- export --------------------------------------------------------------------------
    def sourceDicomFile(self, volumeNode) -> str:
        """The DICOM file a one-slice volume was loaded from (via the DICOM database)."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        if not uids:
            raise WorkerError(
                f"'{volumeNode.GetName()}' was not loaded from the DICOM database, so there is no study "
                "to add a series to; load the study with the DICOM module (or choose the source file)"
            )
        if len(uids) != 1:
            raise WorkerError(f"'{volumeNode.GetName()}' comes from {len(uids)} DICOM instances; RadEdit edits single images")
        if self.file_for_instance is None:
            raise WorkerError("no DICOM database to look the source instance up in")
        path = self.file_for_instance(uids[0])
        if not path or not os.path.exists(path):
            raise WorkerError(f"the DICOM file of instance {uids[0]} is not in the DICOM database any more")
        return path

    def sourceDicomFileIfAny(self, volumeNode) -> str | None:
        """The volume's DICOM file when it has one: the worker then takes the intensity
        (VOI window, polarity, stored range) from the DICOM reader, as the CLI does."""
        try:
            return self.sourceDicomFile(volumeNode)
        except WorkerError:
            return None

    def startExport(
        self,
        resultVolume,
        outDir: str | Path | None = None,
        *,
        sourceDicomFile: str | Path | None = None,
        seriesDescription: str | None = None,
        seriesNumber: int | None = None,
        uidRoot: str | None = None,
        writeSeg: bool = False,
    ) -> ExportRun:
        """Start writing the result as a derived series of the source's study (radedit_core's writer)."""
        scene = self.scene()
        source_id = resultVolume.GetAttribute(mrml.ATTR_SOURCE_VOLUME)
        source = scene.GetNodeByID(source_id) if source_id else None
        if source is None:
            raise WorkerError(f"'{resultVolume.GetName()}' is not a RadEdit result of a volume in this scene")
        source_file = str(sourceDicomFile) if sourceDicomFile else self.sourceDicomFile(source)
        job_dir = Path(resultVolume.GetAttribute(mrml.ATTR_JOB_DIR) or "")
        if not job_dir.is_dir():
            self.workRoot().mkdir(parents=True, exist_ok=True)
            job_dir = Path(tempfile.mkdtemp(prefix="RadEdit-", dir=self.workRoot()))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        export_dir = Path(tempfile.mkdtemp(prefix=f"export-{stamp}-", dir=job_dir))
        # What is exported is what the user sees now (it may have been touched up).
        edited = mrml.write_volume(resultVolume, export_dir / "edited.nrrd")
        reference = Path(resultVolume.GetAttribute(mrml.ATTR_INPUT) or "")
        if not reference.is_file():
            reference = mrml.write_volume(source, export_dir / "input.nrrd")
        out_dir = Path(outDir) if outDir else export_dir / "dicom"
        prompt = resultVolume.GetAttribute(mrml.ATTR_PROMPT) or ""
        sidecar = resultVolume.GetAttribute(mrml.ATTR_SIDECAR)
        edit_mask = resultVolume.GetAttribute(mrml.ATTR_EDIT_MASK)
        keep_mask = resultVolume.GetAttribute(mrml.ATTR_KEEP_MASK)
        job = export_job(
            source_file,
            reference,
            edited,
            out_dir,
            provenance=sidecar if sidecar and os.path.exists(sidecar) else None,
            edit_mask=edit_mask if edit_mask and os.path.exists(edit_mask) else None,
            keep_mask=keep_mask if keep_mask and os.path.exists(keep_mask) else None,
            series_description=seriesDescription or mrml.series_description(prompt or "edited"),
            series_number=seriesNumber,
            uid_root=uidRoot,
            write_seg=writeSeg,
            client={**CLIENT, "volume": resultVolume.GetName()},
        )
        job_path = write_job(export_dir / "export.json", job)
        process = WorkerProcess(
            worker_command(self.workerPython(), job_path), task="export", env=self.workerEnvironment(), cwd=export_dir
        )
        process.start()
        return ExportRun(export_dir=export_dir, out_dir=out_dir, job_path=job_path, process=process)

    def finishExport(self, run: ExportRun, importToDatabase: bool = True) -> ExportOutcome:
        """Check the finished export and import the series into the DICOM database."""
        run.process.poll()
        if not run.process.finished:
            raise RuntimeError("the export is still running")
        summary = run.process.raise_for_state()
        outcome = ExportOutcome(
            out_dir=Path(summary["out_dir"]),
            files=[Path(p) for p in summary.get("files", [])],
            series_instance_uid=summary.get("series_instance_uid"),
            study_instance_uid=summary.get("study_instance_uid"),
            summary=summary,
        )
        if importToDatabase and self.import_dicom_folder is not None:
            self.import_dicom_folder(outcome.out_dir)
            outcome.imported = True
        return outcome

    def exportDicom(self, resultVolume, outDir: str | Path | None = None, *, importToDatabase: bool = True, timeout: float | None = 600.0, **options) -> ExportOutcome:
        """Blocking export (scripts, tests); options as for :meth:`startExport`."""
        run = self.startExport(resultVolume, outDir, **options)
        run.process.wait(timeout=timeout)
        return self.finishExport(run, importToDatabase=importToDatabase)
