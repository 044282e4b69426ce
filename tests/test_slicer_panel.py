"""The module panel's decisions (``RadEditLib.panel``) on real Slicer classes and real Qt.

The panel's logic is a set of functions of the parameter node and the
segmentation (the ``slicer-core`` wheel gives both); the segment list items
are built by the same function the module calls, here with PyQt5 on the
offscreen platform: they must show a check box and toggle on a click and
on Space (before the fix they had no check-state data, so Qt drew no box
and ignored both).
"""

from __future__ import annotations

import os
import threading
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
import slicer
import slicer_bootstrap as sb
import vtk
from slicer_polling import poll_until
from vtk.util import numpy_support

from RadEditLib import mrml, panel
from RadEditLib.logic import RadEditCoreLogic


@dataclass
class Parameters:
    """The fields of ``RadEditParameterNode`` the panel reads (the wrapper needs Slicer's GUI)."""

    inputVolume: object = None
    segmentation: object = None
    editSegmentIds: list = field(default_factory=list)
    keepSegmentIds: list = field(default_factory=list)
    prompt: str = "No acute cardiopulmonary process"


@pytest.fixture(scope="module")
def core():
    return sb.bootstrap()


@pytest.fixture
def painted(core):
    core.clear()
    volume = sb.add_cxr_volume(core.scene, np.zeros((64, 48), np.int16), "CXR")
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    lungs = np.zeros((64, 48), bool)
    lungs[10:30, 5:20] = True
    drain = np.zeros((64, 48), bool)
    drain[20:60, 10:12] = True
    lungs_id = sb.paint_segment(segmentation, volume, "lungs", lungs)
    drain_id = sb.paint_segment(segmentation, volume, "drain", drain)
    return Parameters(volume, segmentation), lungs_id, drain_id, lungs, drain


def paint_stroke(segmentation_node, volume_node, segment_id, mask2d) -> list[str]:
    """What a Segment Editor paint stroke does: merge into the segment's source labelmap.

    Returns the vtkSegmentation events it fired.
    """
    fired = []
    segmentation = segmentation_node.GetSegmentation()
    tags = [
        segmentation.AddObserver(getattr(slicer.vtkSegmentation, name), lambda c, e, name=name: fired.append(name))
        for name in ("SegmentModified", "SourceRepresentationModified")
    ]
    rows, cols = mask2d.shape
    stroke = slicer.vtkOrientedImageData()
    stroke.SetDimensions(cols, rows, 1)
    stroke.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask2d.astype(np.uint8).ravel(), deep=True))
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    stroke.SetImageToWorldMatrix(matrix)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        stroke, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MAX
    )
    for tag in tags:
        segmentation.RemoveObserver(tag)
    return fired


def module_segmentation_events() -> set[str]:
    """The vtkSegmentation events RadEdit.py's widget observes (its SEGMENTATION_EVENTS), read without Qt."""
    import ast

    tree = ast.parse((sb.MODULE_DIR / "RadEdit.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SEGMENTATION_EVENTS" for t in node.targets):
            names = ast.literal_eval(node.value)
            assert all(hasattr(slicer.vtkSegmentation, name) for name in names)
            return set(names)
    raise AssertionError("RadEdit.py has no SEGMENTATION_EVENTS")


# -- pure functions on slicer-core ------------------------------------------------------


def test_segment_rows_follow_the_segmentation_and_the_choice(painted):
    pn, lungs, drain, *_ = painted
    assert panel.segment_rows(pn) == [
        panel.SegmentRow(lungs, "lungs", False, False),
        panel.SegmentRow(drain, "drain", False, False),
    ]
    pn.editSegmentIds, pn.keepSegmentIds = [lungs], [drain]
    rows = panel.segment_rows(pn)
    assert [(r.edit, r.keep) for r in rows] == [(True, False), (False, True)]
    assert panel.chosen_after_toggle(rows, "keep", lungs, True) == [lungs, drain]  # display order
    assert panel.chosen_after_toggle(rows, "edit", lungs, False) == []
    pn.segmentation.GetSegmentation().GetSegment(drain).SetName("chest tube")
    assert [r.name for r in panel.segment_rows(pn)] == ["lungs", "chest tube"]
    pn.segmentation.GetSegmentation().RemoveSegment(lungs)
    assert [r.segment_id for r in panel.segment_rows(pn)] == [drain]
    assert panel.segment_rows(Parameters()) == [] and panel.segment_rows(None) == []


def test_apply_is_enabled_only_with_everything_chosen_and_nothing_running(painted):
    pn, lungs, drain, *_ = painted
    assert panel.apply_enabled(pn, busy=False) == (False, "Choose at least one edit segment")
    pn.keepSegmentIds = [drain]
    assert panel.apply_enabled(pn, busy=False)[0] is False  # keep alone edits nothing
    pn.editSegmentIds = [lungs]
    assert panel.apply_enabled(pn, busy=False) == (True, "Edit the input volume in the background")
    assert panel.apply_enabled(pn, busy=True)[0] is False
    pn.prompt = "   "
    assert panel.apply_enabled(pn, busy=False) == (False, "Choose a prompt")
    pn.prompt = "No pneumothorax"
    pn.segmentation.GetSegmentation().RemoveSegment(lungs)  # a chosen segment deleted in the Segment Editor
    assert panel.apply_enabled(pn, busy=False) == (False, "Choose at least one edit segment")
    assert panel.apply_enabled(Parameters(), busy=False) == (
        False, "Choose the input volume, a segmentation, at least one edit segment"
    )


def test_pixel_counts_follow_a_paint_stroke_and_nothing_else(core, painted):
    pn, lungs, drain, lungs_mask, drain_mask = painted
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic)
    cache = panel.MaskCache(logic.takeSegmentArrays)
    pn.editSegmentIds, pn.keepSegmentIds = [lungs], [drain]
    masks, problem = cache.get(pn)
    assert problem is None and masks.edit_pixels == lungs_mask.sum() and masks.keep_pixels == drain_mask.sum()
    overlap = int((lungs_mask & drain_mask).sum())
    assert panel.masks_text(masks) == (
        f"Edit: {lungs_mask.sum()} px, keep: {drain_mask.sum()} px. "
        f"{overlap} px are in both an edit and a keep segment: they are kept (keep wins)."
    )
    computed = cache.computed
    # Typing a prompt or moving a slider changes no mask: nothing is exported again.
    pn.prompt = "Moderate pulmonary edema"
    assert cache.current(pn) and cache.get(pn)[0] is masks and cache.computed == computed

    stroke = np.zeros_like(lungs_mask)
    stroke[40:50, 30:40] = True
    fired = paint_stroke(pn.segmentation, pn.inputVolume, lungs, stroke)
    # A stroke into a painted segment fires SourceRepresentationModified, not SegmentModified:
    # the module must observe it (it did not, and the counts went stale).
    assert "SourceRepresentationModified" in fired and "SegmentModified" not in fired
    assert "SourceRepresentationModified" in module_segmentation_events()
    assert not cache.current(pn)
    masks, _ = cache.get(pn)
    assert masks.edit_pixels == (lungs_mask | stroke).sum() and cache.computed == computed + 1
    # Painting another segment may reorganise the shared labelmap layers (the key is conservative:
    # at worst one more export), but the counts stay those of the chosen segments.
    other = sb.paint_segment(pn.segmentation, pn.inputVolume, "heart", stroke)
    paint_stroke(pn.segmentation, pn.inputVolume, other, ~stroke)
    masks, _ = cache.get(pn)
    assert masks.edit_pixels == (lungs_mask | stroke).sum() and masks.keep_pixels == drain_mask.sum()
    assert cache.current(pn)


def test_mask_problems_are_shown_in_words(core, painted):
    pn, lungs, drain, *_ = painted
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic)
    cache = panel.MaskCache(logic.takeSegmentArrays)
    assert cache.get(pn) == (None, "choose at least one edit segment: the region to change")
    empty = pn.segmentation.GetSegmentation().AddEmptySegment("", "nothing yet")
    pn.editSegmentIds = [empty]
    masks, problem = cache.get(pn)
    assert masks is None and panel.masks_text(masks, problem) == problem and "paint the region" in problem
    assert panel.masks_text(None) == "Choose the input volume, the segmentation and at least one edit segment."


def test_masks_are_made_in_the_background_and_an_outdated_result_is_dropped(core, painted):
    """The panel's path: the GUI thread only takes the arrays, a background thread makes the masks,
    a QTimer polls; the user paints while it runs, so that result is never shown and the masks are
    made again for what is painted now."""
    pn, lungs, drain, lungs_mask, drain_mask = painted
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic)
    release, threads, made = threading.Event(), [], []

    def finish(arrays):
        threads.append(threading.current_thread())
        assert release.wait(60)
        made.append(mrml.masks_from_arrays(arrays))
        return made[-1]

    cache = panel.MaskCache(logic.takeSegmentArrays, finish)
    pn.editSegmentIds, pn.keepSegmentIds = [lungs], [drain]
    assert cache.request(pn) and cache.computing and cache.computed == 1
    assert cache.masks is None and not cache.current(pn)
    assert panel.masks_text(cache.masks, cache.problem, computing=True) == "Computing masks..."
    assert cache.request(pn) and cache.poll(pn) and cache.computed == 1  # the same key: it waits for the running one
    stroke = np.zeros_like(lungs_mask)
    stroke[40:50, 30:40] = True
    paint_stroke(pn.segmentation, pn.inputVolume, lungs, stroke)  # the user paints on meanwhile
    release.set()
    shown = []
    poll_until(lambda: not cache.poll(pn), lambda: shown.append(cache.masks), timeout=60, what="the masks")
    assert cache.computed == 2 and len(made) == 2  # the first result was made, dropped, and made again
    assert made[0].edit_pixels == lungs_mask.sum() and all(m is not made[0] for m in shown)
    assert cache.masks is made[1] and cache.problem is None and cache.current(pn)
    assert cache.masks.edit_pixels == (lungs_mask | stroke).sum() and cache.masks.keep_pixels == drain_mask.sum()
    assert threads and threading.main_thread() not in threads
    # Settled: nothing runs, nothing more is taken, and the synchronous path agrees.
    assert not cache.request(pn) and not cache.poll(pn) and cache.get(pn) == (made[1], None) and cache.computed == 2

    # A problem the numeric half finds comes back as the text to show.
    pn.editSegmentIds = [pn.segmentation.GetSegmentation().AddEmptySegment("", "nothing yet")]
    assert cache.request(pn)
    poll_until(lambda: not cache.poll(pn), timeout=60, what="the masks' problem")
    assert cache.masks is None and "paint the region" in cache.problem and cache.computed == 3
    cache.shutdown()


def test_worker_outcomes_mean_what_the_panel_says():
    assert panel.edit_outcome("done", {"changed_pixels": 120, "seconds": 3.2}, None) == panel.Outcome(
        "done", "Done: 120 pixels changed in 3.2 s."
    )
    assert panel.edit_outcome("cancelled", None, None) == panel.Outcome("cancelled", "Cancelled; nothing was written.")
    failed = panel.edit_outcome("error", None, "prompt: is empty")
    assert failed.kind == "error" and failed.error == "prompt: is empty"
    assert panel.edit_outcome("error", None, None).error
    assert panel.environment_text(None) == "Checking the environment..."
    assert panel.environment_text(None, "python3 cannot run the RadEdit worker: radedit_core is not installed there") == (
        "Not configured: python3 cannot run the RadEdit worker: radedit_core is not installed there"
    )
    # Where the worker is not configured, the line says what sets it up in the chosen mode.
    external = panel.environment_text(None, "/opt/py cannot run the RadEdit worker", "external")
    assert "bash scripts/setup.sh" in external and external.startswith("Not configured: /opt/py")
    assert panel.environment_text(None, "no torch", "slicer") == "Not configured: no torch; press 'Install dependencies'"
    text = panel.environment_text({"version": "0.1", "torch": None, "cuda": False, "executable": "/py"})
    assert text == "radedit_core 0.1, torch missing, CUDA not available (/py)"


# -- the items, with real Qt -------------------------------------------------------------------


@pytest.fixture(scope="module")
def qt():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    # The names the module uses from Slicer's PythonQt ``qt``, from PyQt5.
    yield types.SimpleNamespace(QListWidgetItem=QtWidgets.QListWidgetItem, Qt=QtCore.Qt, app=app)


def _list_with_items(qt, rows, which):
    from PyQt5 import QtWidgets

    widget = QtWidgets.QListWidget()
    for row in rows:
        widget.addItem(panel.segment_item(qt, row, which))
    widget.resize(240, 120)
    widget.show()
    qt.app.processEvents()
    return widget


def test_segment_items_are_checkable_and_toggle(qt):
    from PyQt5 import QtCore, QtTest, QtWidgets

    rows = [panel.SegmentRow("s1", "lungs", True, False), panel.SegmentRow("s2", "drain", False, True)]
    widget = _list_with_items(qt, rows, "edit")
    changed = []
    widget.itemChanged.connect(lambda item: changed.append((item.text(), item.checkState())))
    lungs, drain = widget.item(0), widget.item(1)
    assert lungs.data(QtCore.Qt.UserRole) == "s1"
    assert (lungs.checkState(), drain.checkState()) == (QtCore.Qt.Checked, QtCore.Qt.Unchecked)
    # Qt draws a check box only for an item with check-state data; an unchecked item needs it too.
    for item in (lungs, drain):
        assert item.data(QtCore.Qt.CheckStateRole) is not None

    # A click on the check box of the unchecked item checks it ...
    option = QtWidgets.QStyleOptionViewItem()
    option.initFrom(widget)
    option.rect = widget.visualItemRect(drain)
    option.features |= QtWidgets.QStyleOptionViewItem.HasCheckIndicator
    box = widget.style().subElementRect(QtWidgets.QStyle.SE_ItemViewItemCheckIndicator, option, widget)
    assert box.isValid() and box.width() > 0
    QtTest.QTest.mouseClick(widget.viewport(), QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, box.center())
    assert drain.checkState() == QtCore.Qt.Checked
    # ... and Space on the current item toggles it back.
    widget.setCurrentItem(drain)
    widget.setFocus()
    QtTest.QTest.keyClick(widget, QtCore.Qt.Key_Space)
    assert drain.checkState() == QtCore.Qt.Unchecked
    assert changed == [("drain", QtCore.Qt.Checked), ("drain", QtCore.Qt.Unchecked)]

    # Mirroring the parameter node into existing items sets state without spurious signals.
    panel.mirror_check_state(qt, lungs, True)
    assert len(changed) == 2
    panel.mirror_check_state(qt, lungs, False)
    assert lungs.checkState() == QtCore.Qt.Unchecked and changed[-1] == ("lungs", QtCore.Qt.Unchecked)
    widget.close()
