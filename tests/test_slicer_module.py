"""The RadEdit Slicer module's logic against real Slicer classes (the ``slicer-core`` wheel).

A one-slice volume made from a synthetic chest X-ray and a segmentation with
painted segments, the segmentations logic of Slicer exporting them, the edit
in a background ``radedit_core.worker`` process (a real process: it is what the
module runs) with the test-only micro model (conftest; the module's mechanics do
not depend on what the edit does, and a worker on it edits in a fraction of the
demo model's time), the
result loaded back with Slicer's own storage node, and the export through
radedit_core's DICOM writer.  The GUI half of the module (``RadEdit.py``
needs Qt) is checked statically here and runs for real in ``Slicer --testing``
(see the README).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pydicom
import pytest
import slicer
import slicer_bootstrap as sb  # imports the slicer-core wheel: missing -> these tests fail
import vtk
from slicer_polling import poll_until, wait_for_stage
from vtk.util import numpy_support

from radedit_core.dicom import read_dicom_image
from radedit_core.dicom.synthetic import make_cxr
from radedit_core.dicom.validate import validate_dicom
from radedit_core.synthetic import chest_phantom, quantise
from radedit_core.imaging.intensity import stored_value_map

from RadEditLib import environment, mrml
from RadEditLib.logic import RadEditCoreLogic
from RadEditLib.protocol import CANCEL_GRACE_S, PAPER_PROMPTS, EditParameters, WorkerError, probe_environment

PROMPT = PAPER_PROMPTS["normal"]
ROWS, COLS = 176, 160
# As Slicer's DICOM plugin places a PA chest film (ImageOrientationPatient 1\0\0\0\0\-1):
# columns run to patient left, rows to the feet, the slice normal points anterior.
DIRECTION = [[-1, 0, 0, 0], [0, 0, -1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]
SPACING = (0.35, 0.3, 1.0)
ORIGIN = (140.0, -20.0, 95.0)


@pytest.fixture(scope="module")
def core():
    return sb.bootstrap()


@pytest.fixture(scope="module")
def phantom():
    return chest_phantom(ROWS, COLS, seed=7)


@pytest.fixture
def scene_inputs(core, phantom):
    """A 12-bit CXR volume and a segmentation with 'lungs' (edit) and 'drain' (keep)."""
    core.clear()
    array = quantise(phantom.image, 12).astype(np.int16)
    volume = sb.add_cxr_volume(core.scene, array, "CXR", spacing=SPACING, origin=ORIGIN, direction=DIRECTION)
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    lungs = phantom.mask("left_lung", "right_lung")
    drain = np.zeros_like(lungs)
    drain[50:140, 40:46] = True  # a chest tube through the right lung
    lungs_id = sb.paint_segment(segmentation, volume, "lungs", lungs)
    drain_id = sb.paint_segment(segmentation, volume, "drain", drain, (0.0, 1.0, 0.0))
    return {
        "volume": volume,
        "segmentation": segmentation,
        "array": array,
        "lungs": lungs,
        "drain": drain,
        "edit_ids": [lungs_id],
        "keep_ids": [drain_id],
    }


@pytest.fixture
def logic(core, tmp_path, radedit_home):
    return RadEditCoreLogic(core.scene, core.segmentations_logic, python=sys.executable, work_root=tmp_path / "work")


@pytest.fixture(scope="module")
def micro(micro_model_dir):
    """EditParameters on the micro model, few steps, with ``changes``."""

    def make(**changes) -> EditParameters:
        values = dict(prompt=PROMPT, steps=6, model=str(micro_model_dir), device="cpu", dtype="float32", dilate=0,
                      keep_mode="pixel")  # fmt: skip
        values.update(changes)
        return EditParameters(**values)

    return make


def volume_nodes(scene) -> list[str]:
    return [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName() for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]


# -- masks ---------------------------------------------------------------------------------


def test_masks_from_segments_equal_what_was_painted(logic, scene_inputs):
    s = scene_inputs
    nodes_before = logic.scene().GetNumberOfNodes()
    masks = logic.computeMasks(s["volume"], s["segmentation"], s["edit_ids"], s["keep_ids"])
    assert masks.edit.shape == (ROWS, COLS) and masks.edit.dtype == bool
    np.testing.assert_array_equal(masks.edit, s["lungs"])
    np.testing.assert_array_equal(masks.keep, s["drain"])
    overlap = int((s["lungs"] & s["drain"]).sum())
    assert masks.overlap_pixels == overlap > 0
    assert f"{overlap} px in both" in masks.summary() and "keep wins" in masks.summary()

    # Several edit segments make their union; no keep segment means no keep mask.
    both = logic.computeMasks(s["volume"], s["segmentation"], s["edit_ids"] + s["keep_ids"], [])
    np.testing.assert_array_equal(both.edit, s["lungs"] | s["drain"])
    assert both.keep is None and both.overlap_pixels == 0
    # The temporary labelmaps of the export, their display nodes and colour tables are gone again.
    assert logic.scene().GetNumberOfNodes() == nodes_before
    assert volume_nodes(logic.scene()) == ["CXR"]


def test_mask_problems_are_reported_in_words(logic, scene_inputs, core):
    s = scene_inputs
    with pytest.raises(mrml.MaskProblem, match="at least one edit segment"):
        logic.computeMasks(s["volume"], s["segmentation"], [], s["keep_ids"])
    with pytest.raises(mrml.MaskProblem, match="chosen both to edit and to keep"):
        logic.computeMasks(s["volume"], s["segmentation"], s["edit_ids"], s["edit_ids"])
    empty = s["segmentation"].GetSegmentation().AddEmptySegment("", "nothing yet")
    with pytest.raises(mrml.MaskProblem, match="edit segments are empty"):
        logic.computeMasks(s["volume"], s["segmentation"], [empty], [])
    stack = sb.add_cxr_volume(core.scene, np.zeros((4, 16, 16), np.int16), "stack")
    with pytest.raises(ValueError, match="4 slices"):
        logic.computeMasks(stack, s["segmentation"], s["edit_ids"], [])


# -- the background edit ----------------------------------------------------------------------


@pytest.mark.slow
def test_background_edit_gives_a_result_on_the_input_grid(logic, scene_inputs, micro):
    s = scene_inputs
    volume = s["volume"]
    # 30 steps: enough progress events for the 0.1 s polling below to see it advance
    run = logic.startEdit(volume, s["segmentation"], s["edit_ids"], s["keep_ids"], micro(steps=30))
    # The job folder holds what the worker reads: the volume and masks on its grid.
    assert sorted(p.name for p in run.job_dir.iterdir()) == ["edit.nrrd", "input.nrrd", "job.json", "keep.nrrd"]

    fractions, slowest_poll = [], 0.0
    while not run.process.finished:  # what the module's QTimer does
        t0 = time.perf_counter()
        run.process.poll()
        slowest_poll = max(slowest_poll, time.perf_counter() - t0)
        fractions.append(run.process.progress.fraction)
        time.sleep(0.1)
    assert run.state == "done", run.process.error_message
    assert slowest_poll < 0.5  # polling never waits for the process
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(set(fractions)) >= 4
    kinds = [e.kind for e in run.process.events]
    assert kinds[0] == "started" and kinds[-1] == "done"
    assert {e.get("stage") for e in run.process.events if e.kind == "progress"} == {"load", "invert", "edit", "write"}

    result = logic.finishEdit(run)
    assert result.GetName() == "CXR RadEdit: No acute cardiopulmonary process"
    assert result.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    np.testing.assert_array_equal(mrml.ijk_to_ras(result), mrml.ijk_to_ras(volume))
    edited = mrml.single_slice(result)
    assert edited.dtype == s["array"].dtype
    # keep mode "pixel": the drain is untouched, also where it crosses the lungs (keep wins).
    np.testing.assert_array_equal(edited[s["drain"]], s["array"][s["drain"]])
    changed = edited != s["array"]
    assert changed[s["lungs"] & ~s["drain"]].any()
    assert run.process.result["changed_pixels"] == int(changed.sum())
    assert run.process.result["overlap_pixels"] == int((s["lungs"] & s["drain"]).sum())

    difference = logic.scene().GetNodeByID(result.GetAttribute(mrml.ATTR_DIFFERENCE))
    np.testing.assert_array_equal(
        mrml.single_slice(difference), edited.astype(np.float32) - s["array"].astype(np.float32)
    )
    np.testing.assert_array_equal(mrml.ijk_to_ras(difference), mrml.ijk_to_ras(volume))
    assert result.GetAttribute(mrml.ATTR_SOURCE_VOLUME) == volume.GetID()
    assert result.GetStorageNode() is None  # an unsaved new volume, not a view of a temp file
    sh = logic.scene().GetSubjectHierarchyNode()
    assert sh.GetItemParent(sh.GetItemByDataNode(result)) == sh.GetItemParent(sh.GetItemByDataNode(volume))
    # The source volume was not touched.
    np.testing.assert_array_equal(mrml.single_slice(volume), s["array"])


@pytest.mark.slow
def test_cancel_ends_the_process_and_leaves_nothing(logic, scene_inputs, micro):
    s = scene_inputs
    run = logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], s["keep_ids"], micro(steps=100))  # the edit stage outlasts the cancel
    wait_for_stage(run.process, "edit")
    pid = run.process.pid
    t0 = time.perf_counter()
    logic.cancel(run)  # what the module's Cancel button does: it returns at once ...
    assert time.perf_counter() - t0 < 0.3
    # ... and the poll timer settles it
    poll_until(lambda: run.process.finished, run.process.poll, CANCEL_GRACE_S + 1.0, "the end of the cancelled edit")
    assert run.state == "cancelled" and run.process.returncode is not None
    # SIGTERM reached the worker: it reported the cancel itself, well before the kill.
    assert run.process.events[-1].kind == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    logic.discard(run)
    assert not run.job_dir.exists()
    assert volume_nodes(logic.scene()) == ["CXR"]


@pytest.mark.slow
def test_worker_errors_reach_the_user_with_their_message(logic, scene_inputs, tmp_path, micro):
    s = scene_inputs
    # found when the worker checks the job: nothing starts
    with pytest.raises(WorkerError, match="/nowhere/model: model not found"):
        logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], [], micro(model="/nowhere/model"))
    assert not logic.workRoot().exists() or not any(logic.workRoot().iterdir())
    # found while running: the worker's message, and the job's folder goes
    empty = tmp_path / "empty_model"
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        (empty / part).mkdir(parents=True)
    run = logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], [], micro(model=str(empty)))
    run.process.wait(timeout=120)
    assert run.state == "error"
    with pytest.raises(WorkerError, match="text encoder not found: local folder"):
        logic.finishEdit(run)
    assert not run.job_dir.exists()
    assert volume_nodes(logic.scene()) == ["CXR"]


def test_bad_parameters_are_refused_before_anything_runs(logic, scene_inputs, micro):
    # radedit_core's settings layer checks them (worker --check): the module holds no rules of its own.
    s = scene_inputs
    with pytest.raises(WorkerError, match="prompt: is empty"):
        logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], [], micro(prompt="  "))
    with pytest.raises(WorkerError, match=r"skip_ratio: must be a finite number in \[0, 1\), got 1.0"):
        logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], [], micro(skip_ratio=1.0))
    with pytest.raises(WorkerError, match="guidance: must be a finite number in .* got nan"):
        logic.startEdit(s["volume"], s["segmentation"], s["edit_ids"], [], micro(guidance=float("nan")))
    assert not (logic.workRoot()).exists() or not any(logic.workRoot().iterdir())


# -- environment ---------------------------------------------------------------------------


def test_environment_probe_and_paths(tmp_path):
    info = probe_environment(sys.executable)
    assert info["version"] and info["torch"]
    no_site = tmp_path / "python-without-radedit"
    no_site.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    no_site.chmod(0o755)
    with pytest.raises(WorkerError, match="radedit_core is not installed there"):
        probe_environment(no_site)
    assert environment.bundled_core_parent(sb.MODULE_DIR) == sb.REPO
    env = environment.with_pythonpath({"PYTHONPATH": "/a"}, "/b")
    assert env["PYTHONPATH"] == os.pathsep.join(["/b", "/a"])
    clean = environment.external_environment({"PYTHONHOME": "/slicer", "PYTHONPATH": "/slicer/lib", "PATH": "/usr/bin"})
    assert clean == {"PATH": "/usr/bin"}


# -- the module's files ---------------------------------------------------------------------


def test_module_files_fit_together():
    module = sb.MODULE_DIR / "RadEdit.py"
    tree = ast.parse(module.read_text())
    classes = {node.name: [ast.unparse(b) for b in node.bases] for node in tree.body if isinstance(node, ast.ClassDef)}
    assert classes["RadEdit"] == ["ScriptedLoadableModule"]
    assert classes["RadEditWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert classes["RadEditLogic"] == ["ScriptedLoadableModuleLogic", "RadEditCoreLogic"]
    assert classes["RadEditTest"] == ["ScriptedLoadableModuleTest"]
    wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RadEditParameterNode")
    assert [ast.unparse(d) for d in wrapper.decorator_list] == ["parameterNodeWrapper"]
    fields = {n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign)}

    ui = ET.parse(sb.MODULE_DIR / "Resources" / "UI" / "RadEdit.ui")
    widgets = {w.get("name") for w in ui.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", module.read_text()))
    assert used <= widgets, used - widgets
    bound = {
        w.get("name"): p.find("string").text
        for w in ui.iter("widget")
        for p in w.findall("property")
        if p.get("name") == "SlicerParameterName"
    }
    assert set(bound.values()) <= fields, set(bound.values()) - fields
    assert {"inputVolume", "segmentation", "prompt", "guidance", "steps", "skipRatio", "seed", "dilation",
            "keepMode", "model", "device"} <= set(bound.values())

    cmake = (sb.MODULE_DIR / "CMakeLists.txt").read_text()
    for path in sorted((sb.MODULE_DIR / "RadEditLib").glob("*.py")):
        assert f"RadEditLib/{path.name}" in cmake
    for resource in ("Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui", "Resources/requirements.txt"):
        assert resource in cmake
    assert "slicerMacroBuildScriptedModule" in cmake and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    top = (sb.REPO / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS", "find_package(Slicer REQUIRED)",
                "add_subdirectory(RadEditSlicer)", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert key in top
    assert (sb.MODULE_DIR / "Resources" / "Icons" / "RadEdit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Extensions Index: a licence file at the root (the project's MIT licence), a screenshot that is not the icon.
    assert 'license = { text = "MIT" }' in (sb.REPO / "pyproject.toml").read_text()
    assert (sb.REPO / "LICENSE.txt").read_text().startswith("MIT License")
    assert "set(EXTENSION_LICENSE_FILE ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE.txt)" in top
    shots = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', top).group(1).split()
    prefix = "https://raw.githubusercontent.com/radedit-toolkit/radedit/main/"
    for url in shots:
        assert url.startswith(prefix) and "Icons" not in url
        assert (sb.REPO / url[len(prefix):]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The in-Slicer self-test writes its study with this builder, in the worker's Python.
    from radedit_core.dicom.synthetic import write_synthetic_cxr_study

    assert "write_synthetic_cxr_study(" in module.read_text() and callable(write_synthetic_cxr_study)


def test_requirements_cover_radedit_core_and_presets_match_the_paper():
    from radedit_core.workflow import PAPER_PROMPTS as CORE_PROMPTS

    assert PAPER_PROMPTS == CORE_PROMPTS
    block = re.search(r"^dependencies = \[(.*?)^\]", (sb.REPO / "pyproject.toml").read_text(), re.S | re.M).group(1)
    needed = {environment.requirement_name(r) for r in re.findall(r'^\s*"([^"]+)"', block, re.M)}
    listed = {environment.requirement_name(r) for r in environment.read_requirements(sb.MODULE_DIR / "Resources" / "requirements.txt")}
    # torch comes from the PyTorch extension; numpy and SimpleITK ship with Slicer.
    assert needed - {"torch", "numpy", "simpleitk"} == listed


def test_helper_package_imports_no_qt():
    for path in (sb.MODULE_DIR / "RadEditLib").glob("*.py"):
        imports = {
            alias.name.split(".")[0]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
        }
        assert not imports & {"qt", "ctk", "PythonQt", "slicer_util", "radedit_core"}, (path.name, imports)
    assert "qt" not in sys.modules


# -- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding",
    [{"photometric": "MONOCHROME2"}, {"photometric": "MONOCHROME1", "rescale": (2.0, -1024.0)}],
    ids=["monochrome2", "monochrome1-rescaled"],
)
@pytest.mark.slow
def test_export_writes_a_derived_series_into_the_source_study(core, tmp_path, encoding, micro):
    core.clear()
    cxr = make_cxr("CR", rows=ROWS, columns=COLS, seed=3, pixel_spacing=0.3, **encoding)
    source = cxr.dataset
    source_file = cxr.save(tmp_path / "study" / "cr.dcm")
    source_bytes = source_file.read_bytes()
    volume = sb.load_dicom_volume(core.scene, source_file, "Chest PA")
    shown = mrml.single_slice(volume)
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    pacemaker = cxr.phantom.mask("pacemaker")
    edit_id = sb.paint_segment(segmentation, volume, "lungs", cxr.phantom.mask("left_lung", "right_lung"))
    keep_id = sb.paint_segment(segmentation, volume, "pacemaker", pacemaker)

    database = {str(source.SOPInstanceUID): str(source_file)}
    imported = []
    logic = RadEditCoreLogic(
        core.scene,
        core.segmentations_logic,
        python=sys.executable,
        work_root=tmp_path / "work",
        file_for_instance=database.get,
        import_dicom_folder=imported.append,
    )
    run = logic.edit(volume, segmentation, [edit_id], [keep_id], micro(), timeout=300)
    # The model saw the image as radedit_core's DICOM reader presents it (MONOCHROME2 polarity,
    # the VOI window), whatever rescale and polarity the volume has in Slicer.
    sidecar = json.loads(run.sidecar_path.read_text())
    assert sidecar["worker"]["source_dicom"] == str(source_file)
    dicom = read_dicom_image(source_file)
    a, b = stored_value_map(dicom.array, shown)
    intensity = sidecar["worker"]["intensity"]
    assert intensity["invert"] is bool(a < 0)
    assert intensity["window"] == pytest.approx(sorted(a * w + b for w in dicom.window))
    if a > 0:
        model_window = [sidecar["transform"]["intensity_low"], sidecar["transform"]["intensity_high"]]
        assert model_window == pytest.approx(intensity["window"])
    result = run.result_volume
    edited = mrml.single_slice(result)
    assert edited.dtype == shown.dtype and (edited != shown).any()
    np.testing.assert_array_equal(edited[pacemaker], shown[pacemaker])

    outcome = logic.exportDicom(result, tmp_path / "export")
    assert imported == [outcome.out_dir] and outcome.imported
    assert outcome.out_dir == tmp_path / "export" and len(outcome.files) == 1
    report = validate_dicom(outcome.files[0])
    assert report.ok, str(report)
    image = pydicom.dcmread(outcome.files[0])
    # Same patient and study; a new series and instance of the same kind, derived from the source.
    assert image.StudyInstanceUID == source.StudyInstanceUID == outcome.study_instance_uid
    assert image.PatientID == source.PatientID
    assert image.SeriesInstanceUID == outcome.series_instance_uid != source.SeriesInstanceUID
    assert image.SOPInstanceUID != source.SOPInstanceUID
    assert image.SOPClassUID == source.SOPClassUID and image.Modality == "CR"
    assert image.PhotometricInterpretation == source.PhotometricInterpretation
    assert list(image.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert [item.ReferencedSOPInstanceUID for item in image.SourceImageSequence] == [source.SOPInstanceUID]
    assert image.SeriesDescription == "RadEdit: No acute cardiopulmonary process"
    # Loaded back the way Slicer loads it, the series shows exactly the edited volume.
    reloaded = sb.load_dicom_volume(core.scene, outcome.files[0], "reloaded")
    np.testing.assert_array_equal(mrml.single_slice(reloaded), edited)
    if "rescale" not in encoding:
        np.testing.assert_array_equal(image.pixel_array, edited)
    assert source_file.read_bytes() == source_bytes  # the source was only read


def test_export_needs_the_source_in_the_dicom_database(logic, scene_inputs):
    s = scene_inputs
    fake = s["volume"]
    result = mrml.add_volume_like(logic.scene(), fake, s["array"], "not from DICOM")
    result.SetAttribute(mrml.ATTR_SOURCE_VOLUME, fake.GetID())
    with pytest.raises(WorkerError, match="was not loaded from the DICOM database"):
        logic.exportDicom(result)
    with pytest.raises(WorkerError, match="is not a RadEdit result"):
        logic.exportDicom(fake)


def put_labelmap(segmentation_node, volume_node, name: str, extent, voxels: np.ndarray) -> str:
    """A segment whose binary labelmap lies on the volume's grid with its own ``extent`` (it may reach
    beyond the image, or hold several slices), as the Segment Editor leaves one after painting."""
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(*extent)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    dims = labelmap.GetDimensions()
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = voxels.reshape(dims[::-1]).ravel()
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    labelmap.SetImageToWorldMatrix(matrix)
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    return segment_id


def resampled_as_before(segmentation_node, segment_id: str, volume_node) -> np.ndarray | None:
    """The module's mask of an on-grid segment before the numeric half moved off the GUI thread:
    its labelmap resampled onto the volume's grid by vtkOrientedImageDataResample, then its label;
    None where that resampling did not give the volume's extent (the module exported those)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName())
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volume_node.GetImageData().GetExtent())
    reference.SetImageToWorldMatrix(matrix)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, True
    ) or resampled.GetExtent() != reference.GetExtent():
        return None
    dims = resampled.GetDimensions()
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    return values[0] == segment.GetLabelValue()


def test_the_numeric_half_gives_the_masks_of_before_on_and_off_the_grid(logic, core, phantom, monkeypatch):
    """Masks made from the copied arrays equal what the module made before (the VTK resampling of an
    on-grid labelmap) and what ExportSegmentsToLabelmapNode makes, for every kind of segment."""
    core.clear()
    volume = sb.add_cxr_volume(core.scene, np.zeros((ROWS, COLS), np.int16), "CXR", spacing=SPACING, origin=ORIGIN, direction=DIRECTION)
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    left, right, heart = phantom.mask("left_lung"), phantom.mask("right_lung"), phantom.mask("heart")
    ids = {name: sb.paint_segment(segmentation, volume, name, m) for name, m in (("left", left), ("right", right))}
    # Disjoint segments may share one labelmap layer, told apart by their label values.
    assert segmentation.GetSegmentation().GetNumberOfLayers() == 1
    for name in ("left", "right"):  # the module resampled these with VTK before: the same masks
        before = resampled_as_before(segmentation, ids[name], volume)
        assert before is not None and before.any(), name
        arrays = logic.takeSegmentArrays(volume, segmentation, [ids[name]])
        np.testing.assert_array_equal(mrml.masks_from_arrays(arrays).edit, before, err_msg=name)
    rng = np.random.default_rng(5)
    # On the grid, but reaching beyond the image on every side of a corner (cropped there; VTK's
    # resampling did not crop, so the module exported such segments before) ...
    ids["beyond"] = put_labelmap(segmentation, volume, "beyond", (-7, 30, -5, 40, 0, 0), rng.random((1, 46, 38)) < 0.5)
    # ... and three slices thick around the image's slice (only slice 0 counts), past the other corner.
    thick = np.zeros((3, 20, 16), bool)
    thick[0], thick[1], thick[2] = True, rng.random((20, 16)) < 0.5, True
    ids["thick"] = put_labelmap(segmentation, volume, "thick", (COLS - 10, COLS + 5, ROWS - 12, ROWS + 7, -1, 1), thick)
    # Off the grid: painted on a coarser grid (every second pixel); the export resamples it.  It overlaps
    # every segment above, so it gets a layer of its own (a shared layer would be resampled with it).
    coarse = sb.add_cxr_volume(core.scene, np.zeros((ROWS // 2, COLS // 2), np.int16), "coarse",
                               spacing=(SPACING[0] * 2, SPACING[1] * 2, 1.0), origin=ORIGIN, direction=DIRECTION)
    chest = heart | left | right
    chest[:40, :30] = chest[ROWS - 12 :, COLS - 10 :] = True
    ids["heart"] = sb.paint_segment(segmentation, coarse, "heart", chest[::2, ::2])

    with monkeypatch.context() as m:  # every segment through the segmentations logic's export
        m.setattr(mrml, "_labelmap_on_grid", lambda *a: None)
        exported = {name: logic.computeMasks(volume, segmentation, [i]).edit for name, i in ids.items()}
    for name, segment_id in ids.items():  # and what the export gives, which the module used for the others
        arrays = logic.takeSegmentArrays(volume, segmentation, [segment_id])
        # The exported one is on the volume's grid already (any non-zero voxel); the others keep their own extent.
        assert (arrays.segments[segment_id].label is None) is (name == "heart"), name
        np.testing.assert_array_equal(mrml.masks_from_arrays(arrays).edit, exported[name], err_msg=name)
    np.testing.assert_array_equal(exported["left"], left)
    assert exported["beyond"][:41, :31].any() and not exported["beyond"][41:].any() and not exported["beyond"][:, 31:].any()
    np.testing.assert_array_equal(exported["thick"][ROWS - 12 :, COLS - 10 :], thick[1, :12, :10])
    # Several segments of both kinds: their union, keep wins where both cover a pixel.
    masks = logic.computeMasks(volume, segmentation, [ids["left"], ids["heart"]], [ids["beyond"], ids["right"]])
    np.testing.assert_array_equal(masks.edit, exported["left"] | exported["heart"])
    np.testing.assert_array_equal(masks.keep, exported["beyond"] | exported["right"])
    assert masks.overlap_pixels == int((masks.edit & masks.keep).sum()) > 0

    transform = core.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    segmentation.SetAndObserveTransformNodeID(transform.GetID())
    arrays = logic.takeSegmentArrays(volume, segmentation, [ids["left"]])
    assert arrays.segments[ids["left"]].label is None  # the export handles transforms
    np.testing.assert_array_equal(mrml.masks_from_arrays(arrays).edit, left)


def test_the_gui_thread_half_only_copies_arrays(logic, core, phantom, monkeypatch):
    """takeSegmentArrays (the GUI thread's part) returns the labelmap voxels as they are in MRML,
    label values and extent included, and computes nothing; the masks come from the copies alone."""
    core.clear()
    volume = sb.add_cxr_volume(core.scene, np.zeros((ROWS, COLS), np.int16), "CXR", spacing=SPACING, origin=ORIGIN, direction=DIRECTION)
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    left, right = phantom.mask("left_lung"), phantom.mask("right_lung")
    left_id = sb.paint_segment(segmentation, volume, "left", left)
    right_id = sb.paint_segment(segmentation, volume, "right", right)

    def numeric(*args, **kwargs):
        raise AssertionError("the numeric half ran on the GUI thread")

    with monkeypatch.context() as m:
        m.setattr(mrml, "segment_on_grid", numeric)
        m.setattr(mrml, "masks_from_arrays", numeric)
        arrays = logic.takeSegmentArrays(volume, segmentation, [left_id], [right_id])
    assert type(arrays) is mrml.SegmentArrays
    assert arrays.extent == volume.GetImageData().GetExtent() and (arrays.edit_ids, arrays.keep_ids) == ((left_id,), (right_id,))
    taken_left, taken_right = arrays.segments[left_id], arrays.segments[right_id]
    layer = segmentation.GetSegmentation().GetSegment(left_id).GetRepresentation("Binary labelmap")
    dims = layer.GetDimensions()
    raw = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    # The shared layer's voxels, copied once, as MRML holds them: both label values, not a bool mask.
    assert taken_left.voxels is taken_right.voxels and taken_left.voxels.dtype == raw.dtype == np.uint8
    np.testing.assert_array_equal(taken_left.voxels, raw)
    assert taken_left.extent == layer.GetExtent()
    assert set(np.unique(taken_left.voxels)) == {0, taken_left.label, taken_right.label} and taken_left.label != taken_right.label
    assert not np.shares_memory(taken_left.voxels, raw)  # a copy: painting on cannot change it under the thread
    # The masks need no scene any more: it can be cleared before they are made.
    core.clear()
    masks = mrml.masks_from_arrays(arrays)
    np.testing.assert_array_equal(masks.edit, left)
    np.testing.assert_array_equal(masks.keep, right)
