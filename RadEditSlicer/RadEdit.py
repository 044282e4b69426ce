"""RadEdit: edit a chest X-ray inside Segment Editor masks, write back a derived DICOM series.

The module is a front end: masks, jobs and the worker process live in the
Qt-free ``RadEditLib`` package; the edit itself and all DICOM work are
``radedit_core``'s, run by ``python -m radedit_core.worker`` in a background
process (Slicer's Python with the bundled radedit_core, or an external
environment chosen in the Settings section).
"""

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from RadEditLib import environment, mrml, panel
from RadEditLib.logic import RadEditCoreLogic
from RadEditLib.protocol import PAPER_PROMPTS, EditParameters, WorkerError, probe_environment, probe_outcome, probe_process

MODULE_DIR = Path(__file__).resolve().parent
#: A layout of three slice views side by side: original | edited | difference.
COMPARE_LAYOUT_ID = 19410
COMPARE_LAYOUT = """
<layout type="horizontal" split="true">
  <item><view class="vtkMRMLSliceNode" singletontag="Red">
    <property name="orientation" action="default">Coronal</property>
    <property name="viewlabel" action="default">R</property>
    <property name="viewcolor" action="default">#F34A33</property>
  </view></item>
  <item><view class="vtkMRMLSliceNode" singletontag="Yellow">
    <property name="orientation" action="default">Coronal</property>
    <property name="viewlabel" action="default">Y</property>
    <property name="viewcolor" action="default">#EDD54C</property>
  </view></item>
  <item><view class="vtkMRMLSliceNode" singletontag="Green">
    <property name="orientation" action="default">Coronal</property>
    <property name="viewlabel" action="default">G</property>
    <property name="viewcolor" action="default">#6EB04B</property>
  </view></item>
</layout>
"""
PRESETS = [
    (_("No finding"), PAPER_PROMPTS["normal"]),
    (_("Pulmonary edema"), PAPER_PROMPTS["edema"]),
    (_("Pacemaker"), PAPER_PROMPTS["pacemaker"]),
    (_("Left upper lobe consolidation"), PAPER_PROMPTS["consolidation-left"]),
    (_("Right upper lobe consolidation"), PAPER_PROMPTS["consolidation-right"]),
    (_("No pneumothorax"), PAPER_PROMPTS["no-pneumothorax"]),
]


#
# RadEdit
#


class RadEdit(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RadEdit")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Utilities")]
        self.parent.dependencies = []
        self.parent.contributors = ["RadEdit toolkit contributors"]
        self.parent.helpText = _(
            "Edit a chest X-ray with RadEdit (diffusion editing inside an edit mask, with keep masks "
            "for what must not change) and write the result as a derived DICOM series of the same "
            "study. Paint the region to change and the regions to protect with the Segment Editor, "
            "choose them here, type a prompt and Apply. Research use only."
        )
        self.parent.acknowledgementText = _(
            "RadEdit: Pérez-García, Bond-Taylor et al., 'RadEdit: stress-testing biomedical vision "
            "models via diffusion image editing', ECCV 2024. The editing runs in radedit_core."
        )


#
# Parameter node
#


@parameterNodeWrapper
class RadEditParameterNode:
    """What the user chose; saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    editSegmentIds: list[str]
    keepSegmentIds: list[str]
    prompt: str = PAPER_PROMPTS["normal"]
    guidance: Annotated[float, WithinRange(0.0, 50.0)] = 15.0
    steps: Annotated[int, WithinRange(1, 1000)] = 200
    skipRatio: Annotated[float, WithinRange(0.0, 0.95)] = 0.3
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    dilation: Annotated[int, WithinRange(0, 50)] = 5
    keepMode: Annotated[str, Choice(["pixel", "latent"])] = "pixel"
    model: str = "radedit"
    device: Annotated[str, Choice(["auto", "cuda", "cpu"])] = "auto"
    trustRemoteCode: bool = False
    resultVolume: vtkMRMLScalarVolumeNode


#
# RadEditWidget
#


class RadEditWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Mirrors ``RadEditLib.panel``'s decisions into the widgets; starts and polls background work.

    Nothing here blocks the GUI thread: the edit, the export, the environment
    probe and the job check are worker processes polled by QTimers (the job
    is checked by the edit worker itself, before it loads the model), and
    cancel only signals the process tree.  Masks are computed after the
    segments stop changing (debounced) and reused until a chosen segment, the
    choice or the image changes (``panel.MaskCache``).  MRML and VTK objects
    are not thread-safe, so the GUI thread only copies the chosen segments'
    labelmap arrays and extents (``takeSegmentArrays``; a segment not on the
    volume's grid is exported onto it by the segmentations logic first), and
    a background thread does the rest (cropping onto the volume's grid, the
    unions, keep-wins, the pixel counts, the problems), polled by a QTimer
    while the panel shows "Computing masks..." (the timer's Python calls
    also hand the thread Python's lock, should the event loop hold it between
    them; the worker process's readers are threads too).  For two segments
    of a 3000 x 2500 image on slicer-core the GUI thread's part takes about
    1 ms (0.5 ms for a lung and a drain, 1.3 ms with a labelmap as large as
    the image) and the background part 2 to 4 ms, where the whole
    computation held the GUI thread for 30 to 70 ms before; segments not on
    the grid still cost their export (about 50 ms for two) on the GUI thread
    (``benchmarks/slicer_masks_gui_thread.py``).  Apply waits for the
    current masks the same way.
    """

    POLL_MS = 200
    MASKS_DEBOUNCE_MS = 300
    MASKS_POLL_MS = 50

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedSegmentation = None
        self._updatingSegmentLists = False
        self._computingMasks = False
        self._applyWaiting = False  # Apply was pressed while the masks were being computed
        self._listedSegments = {}
        self._masks = None
        self._run = None
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_MS)
        self._pollTimer.connect("timeout()", self.onPoll)
        self._export = None
        self._exportTimer = qt.QTimer()
        self._exportTimer.setInterval(self.POLL_MS)
        self._exportTimer.connect("timeout()", self.onPollExport)
        self._probe = None
        self._probeTimer = qt.QTimer()
        self._probeTimer.setInterval(self.POLL_MS)
        self._probeTimer.connect("timeout()", self.onPollProbe)
        self._overlapTimer = qt.QTimer()
        self._overlapTimer.setSingleShot(True)
        self._overlapTimer.setInterval(self.MASKS_DEBOUNCE_MS)
        self._overlapTimer.connect("timeout()", self.updateOverlap)
        self._masksTimer = qt.QTimer()
        self._masksTimer.setInterval(self.MASKS_POLL_MS)
        self._masksTimer.connect("timeout()", self.onPollMasks)
        self._loadingSettings = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RadEdit.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = RadEditLogic()
        self._masks = panel.MaskCache(self.logic.takeSegmentArrays)

        self.ui.presetComboBox.addItem(_("Presets (RadEdit paper)..."), "")
        for label, prompt in PRESETS:
            self.ui.presetComboBox.addItem(label, prompt)
        self.ui.presetComboBox.connect("activated(int)", self.onPreset)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.editSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentChecked)
        self.ui.keepSegmentsList.connect("itemChanged(QListWidgetItem*)", self.onSegmentChecked)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.showComparisonButton.connect("clicked(bool)", self.onShowComparison)

        # Settings: stored in Slicer's settings, not in the scene (they belong to this computer).
        self.ui.slicerPythonRadioButton.connect("toggled(bool)", self.onPythonModeChanged)
        self.ui.externalPythonRadioButton.connect("toggled(bool)", self.onPythonModeChanged)
        self.ui.pythonPathLineEdit.connect("currentPathChanged(QString)", self.onExternalPythonChanged)
        self.ui.checkEnvironmentButton.connect("clicked(bool)", self.onCheckEnvironment)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.ui.pythonPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Executable
        self.ui.exportDirectoryLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.loadSettings()

        self.ui.progressBar.hide()
        self.ui.cancelButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self) -> None:
        # Slicer is closing: no poll follows, so the tree is killed at once (outputs are atomic).
        for process in (
            self._run.process if self._run is not None else None,
            self._export.process if self._export is not None else None,
            self._probe,
        ):
            if process is not None and not process.finished:
                process.cancel(grace=0.0)
        self._pollTimer.stop()
        self._exportTimer.stop()
        self._probeTimer.stop()
        self._overlapTimer.stop()
        self._masksTimer.stop()
        self._masks.shutdown()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Release the node (GUI connection, observer) once, through the one path that holds it:
        # enter() then takes it again without removing an observer that is already gone.
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node ------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume:
                self._parameterNode.inputVolume = volume
        if not self._parameterNode.segmentation:
            segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if segmentation:
                self._parameterNode.segmentation = segmentation

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        self.observeSegmentation(self._parameterNode.segmentation if self._parameterNode else None)
        self.updateSegmentLists()
        self.updateButtons()
        if not self._masks.current(self._parameterNode):
            self._overlapTimer.start()  # a new prompt or guidance changes no mask: nothing to redo

    # -- segments --------------------------------------------------------------------
    #: A paint stroke fires SourceRepresentationModified (SegmentModified only for the first
    #: stroke into an empty segment), as the Segment Editor's own segment list observes.
    SEGMENTATION_EVENTS = (
        "SegmentAdded",
        "SegmentRemoved",
        "SegmentModified",
        "SourceRepresentationModified",
        "RepresentationModified",
    )

    def observeSegmentation(self, segmentation) -> None:
        if segmentation is self._observedSegmentation:
            return
        events = [getattr(slicer.vtkSegmentation, name) for name in self.SEGMENTATION_EVENTS]
        if self._observedSegmentation is not None:
            for event in events:
                self.removeObserver(self._observedSegmentation, event, self.onSegmentationChanged)
        self._observedSegmentation = segmentation
        if segmentation is not None:
            for event in events:
                self.addObserver(segmentation, event, self.onSegmentationChanged)

    def onSegmentationChanged(self, caller=None, event=None) -> None:
        if self._computingMasks:
            return  # our own export of the segments, not an edit by the user
        self.updateSegmentLists()
        self.updateButtons()
        self._overlapTimer.start()  # painting fires many events: recompute once it settles

    def updateSegmentLists(self) -> None:
        """Mirror ``panel.segment_rows``: rebuilt only when the segments change, check states always."""
        rows = panel.segment_rows(self._parameterNode)
        segments = tuple((row.segment_id, row.name) for row in rows)
        self._updatingSegmentLists = True
        try:
            for which, widget in zip(("edit", "keep"), (self.ui.editSegmentsList, self.ui.keepSegmentsList)):
                # Rebuilding a list from its own itemChanged signal would delete
                # the item being reported: only rebuild when the segments differ.
                if segments != self._listedSegments.get(which):
                    widget.clear()
                    for row in rows:
                        widget.addItem(panel.segment_item(qt, row, which))
                    self._listedSegments[which] = segments
                for index, row in enumerate(rows):
                    panel.mirror_check_state(qt, widget.item(index), getattr(row, which))
        finally:
            self._updatingSegmentLists = False

    def _checked(self, widget) -> list[str]:
        return [
            widget.item(row).data(qt.Qt.UserRole)
            for row in range(widget.count)
            if widget.item(row).checkState() == qt.Qt.Checked
        ]

    def onSegmentChecked(self, item=None) -> None:
        if self._updatingSegmentLists or not self._parameterNode:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.editSegmentIds = self._checked(self.ui.editSegmentsList)
            self._parameterNode.keepSegmentIds = self._checked(self.ui.keepSegmentsList)

    def updateOverlap(self) -> None:
        """Start computing the masks of the current choice (unless cached) and show where they stand."""
        self._pollMasks(self._masks.request)

    def onPollMasks(self) -> None:
        self._pollMasks(self._masks.poll)

    def _pollMasks(self, step) -> None:
        """``step``: the cache's request or poll; both take the segments' arrays on this thread where needed."""
        self._computingMasks = True
        try:
            computing = step(self._parameterNode)
        except Exception as exc:  # a defect, not the user's choice: shown once, not polled again
            logging.getLogger(__name__).exception("RadEdit: computing the masks failed")
            self._masksTimer.stop()
            self._applyWaiting = False
            self.ui.masksLabel.text = _("The masks could not be computed: ") + str(exc)
            self.updateButtons()
            return
        finally:
            self._computingMasks = False
        if computing:
            self._masksTimer.start()
        else:
            self._masksTimer.stop()
        self.ui.masksLabel.text = panel.masks_text(self._masks.masks, self._masks.problem, computing)
        if not computing and self._applyWaiting:
            self._applyWaiting = False
            self.startEdit()

    # -- prompt ------------------------------------------------------------------------
    def onPreset(self, index: int) -> None:
        prompt = self.ui.presetComboBox.itemData(index)
        if prompt and self._parameterNode:
            self._parameterNode.prompt = prompt
        self.ui.presetComboBox.setCurrentIndex(0)

    # -- apply / cancel -------------------------------------------------------------------
    def updateButtons(self) -> None:
        pn = self._parameterNode
        editing = self._run is not None and not self._run.process.finished
        cancelling = editing and self._run.process.cancelling
        busy = editing or self._export is not None or self._applyWaiting
        enabled, tip = panel.apply_enabled(pn, busy)
        self.ui.applyButton.enabled = enabled
        self.ui.applyButton.toolTip = _(tip)
        self.ui.cancelButton.enabled = editing and not cancelling
        result = pn.resultVolume if pn else None
        has_result = bool(result and result.GetAttribute(mrml.ATTR_SOURCE_VOLUME))
        self.ui.exportButton.enabled = has_result and not busy
        self.ui.showComparisonButton.enabled = has_result
        self.ui.checkEnvironmentButton.enabled = self._probe is None

    def parameters(self) -> EditParameters:
        pn = self._parameterNode
        return EditParameters(
            prompt=pn.prompt,
            guidance=pn.guidance,
            steps=pn.steps,
            skip_ratio=pn.skipRatio,
            seed=pn.seed,
            dilate=pn.dilation,
            keep_mode=pn.keepMode,
            model=pn.model,
            device=pn.device,
            trust_remote_code=pn.trustRemoteCode,
        )

    def onApply(self) -> None:
        """Start the edit with the current masks: at once where they are ready, else once they are."""
        self._applyWaiting = True
        self.onPollMasks()  # settles or starts them, and starts the edit when they are ready
        if self._applyWaiting:  # still computing: the masks' poll starts the edit
            self.ui.statusLabel.text = _("Computing masks...")
            self.updateButtons()

    def startEdit(self) -> None:
        pn = self._parameterNode
        self.ui.statusLabel.text = ""  # no "Computing masks..." left behind if it cannot start
        with slicer.util.tryWithErrorDisplay(_("The edit could not be started."), waitCursor=True):
            masks, problem = self._masks.masks, self._masks.problem
            if not self._masks.current(pn) or masks is None:
                raise mrml.MaskProblem(problem or _("Choose the input volume, the segmentation and an edit segment."))
            # No blocking job check: the worker checks the job before it loads the model,
            # and a problem comes back through onPoll as the worker's message.
            self._run = self.logic.startEdit(
                pn.inputVolume, pn.segmentation, pn.editSegmentIds, pn.keepSegmentIds, self.parameters(),
                check=False, masks=masks,
            )
            self.ui.progressBar.value = 0
            self.ui.progressBar.format = _("Checking the job") + " %p%"
            self.ui.progressBar.show()
            self.ui.statusLabel.text = self._run.masks.summary()
            self._pollTimer.start()
        self.updateButtons()

    def onPoll(self) -> None:
        run = self._run
        if run is None:
            self._pollTimer.stop()
            return
        run.process.poll()
        progress = run.process.progress
        self.ui.progressBar.value = progress.percent
        if not run.process.cancelling:
            self.ui.progressBar.format = f"{progress.text} %p%"
        if not run.process.finished:
            return
        self._pollTimer.stop()
        self._run = None
        outcome = panel.edit_outcome(run.process.state, run.process.result, run.process.error_message)
        try:
            if outcome.kind == "done":
                result = self.logic.finishEdit(run)
                self._parameterNode.resultVolume = result
                self.logic.showComparison(result)
            else:
                self.logic.discard(run)
            self.ui.statusLabel.text = _(outcome.status)
            if outcome.error:
                slicer.util.errorDisplay(
                    _("RadEdit failed:") + "\n" + outcome.error, detailedText="\n".join(run.process.stderr_tail)
                )
        except Exception as exc:  # noqa: BLE001
            logging.exception("RadEdit: loading the result failed")
            slicer.util.errorDisplay(_("The result could not be loaded: ") + str(exc))
        finally:
            self.ui.progressBar.hide()
            self.updateButtons()

    def onCancel(self) -> None:
        """Signal the worker's process tree and return; onPoll settles it within CANCEL_GRACE_S."""
        if self._run is None:
            return
        self.logic.cancel(self._run)
        self.ui.progressBar.format = _("Cancelling") + " %p%"
        self.updateButtons()

    def onShowComparison(self) -> None:
        if self._parameterNode and self._parameterNode.resultVolume:
            self.logic.showComparison(self._parameterNode.resultVolume)

    # -- export ------------------------------------------------------------------------------
    def onExport(self) -> None:
        result = self._parameterNode.resultVolume
        description = self.ui.seriesDescriptionLineEdit.text.strip() or None
        folder = self.ui.exportDirectoryLineEdit.currentPath.strip()
        out_dir = None
        if folder:
            out_dir = os.path.join(folder, "RadEdit-" + qt.QDateTime.currentDateTime().toString("yyyyMMdd-HHmmss"))
        with slicer.util.tryWithErrorDisplay(_("Export as DICOM series failed."), waitCursor=True):
            self._export = self.logic.startExport(result, out_dir, seriesDescription=description)
            self.ui.progressBar.value = 0
            self.ui.progressBar.show()
            self._exportTimer.start()
        self.updateButtons()

    def onPollExport(self) -> None:
        run = self._export
        if run is None:
            self._exportTimer.stop()
            return
        run.process.poll()
        self.ui.progressBar.value = run.process.progress.percent
        self.ui.progressBar.format = f"{run.process.progress.text} %p%"
        if not run.process.finished:
            return
        self._exportTimer.stop()
        self._export = None
        self.ui.progressBar.hide()
        try:
            with slicer.util.tryWithErrorDisplay(_("Export as DICOM series failed."), waitCursor=True):
                outcome = self.logic.finishExport(run)
                self.ui.statusLabel.text = _(
                    "Wrote {n} DICOM file(s) (series {series}) and imported them into the DICOM database, "
                    "in the source's study."
                ).format(n=len(outcome.files), series=outcome.series_instance_uid)
                slicer.util.showStatusMessage(_("RadEdit series exported"), 5000)
        finally:
            self.updateButtons()

    # -- settings --------------------------------------------------------------------------------
    def loadSettings(self) -> None:
        # Showing the stored (or default) choice must not store it: a default
        # follows the Slicer version until the user picks a mode.
        mode = self.logic.pythonMode()
        self._loadingSettings = True
        try:
            self.ui.externalPythonRadioButton.checked = mode == "external"
            self.ui.slicerPythonRadioButton.checked = mode != "external"
            self.ui.pythonPathLineEdit.currentPath = qt.QSettings().value(environment.SETTINGS_PYTHON, "")
        finally:
            self._loadingSettings = False
        self.showPythonMode(mode)

    def showPythonMode(self, mode: str) -> None:
        self.ui.pythonPathLineEdit.enabled = mode == "external"
        self.ui.installDependenciesButton.enabled = mode == "slicer"
        problems = self.logic.slicerPythonProblems()
        self.ui.environmentLabel.text = (
            _("Slicer's Python cannot run RadEdit without replacing what Slicer ships ({problems}): "
              "use an external Python environment.").format(problems="; ".join(problems))
            if problems
            else ""
        )

    def onPythonModeChanged(self, checked=None) -> None:
        if self._loadingSettings:
            return
        mode = "external" if self.ui.externalPythonRadioButton.checked else "slicer"
        qt.QSettings().setValue(environment.SETTINGS_MODE, mode)
        self.showPythonMode(mode)

    def onExternalPythonChanged(self, path) -> None:
        if self._loadingSettings:
            return
        qt.QSettings().setValue(environment.SETTINGS_PYTHON, path)
        self.ui.environmentLabel.text = ""

    def onCheckEnvironment(self) -> None:
        """Start the probe (it imports torch and initialises CUDA: seconds) and poll it."""
        if self._probe is not None:
            return
        try:
            self._probe = self.logic.startProbe()
        except WorkerError as exc:
            self.ui.environmentLabel.text = _(panel.environment_text(None, str(exc), self.logic.pythonMode()))
            return
        self.ui.environmentLabel.text = _(panel.environment_text(None))
        self._probeTimer.start()
        self.updateButtons()

    def onPollProbe(self) -> None:
        probe = self._probe
        if probe is None:
            self._probeTimer.stop()
            return
        probe.poll()
        if not probe.finished:
            return
        self._probeTimer.stop()
        self._probe = None
        try:
            info, problem = probe_outcome(probe, probe.command[0]), None
        except WorkerError as exc:
            info, problem = None, str(exc)
        self.ui.environmentLabel.text = _(panel.environment_text(info, problem, self.logic.pythonMode()))
        self.updateButtons()

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Installing the dependencies failed."), waitCursor=True):
            if self.logic.installDependencies(askConfirmation=True):
                self.ui.environmentLabel.text = _("Dependencies installed.")


#
# RadEditLogic
#


class RadEditLogic(ScriptedLoadableModuleLogic, RadEditCoreLogic):
    """RadEditCoreLogic bound to Slicer: its scene, DICOM database, settings and layout.

    Use it from the Python console too::

        logic = slicer.util.getModuleLogic("RadEdit")
        run = logic.edit(volume, segmentation, [editId], [keepId],
                         EditParameters(prompt="No acute cardiopulmonary process"))
        logic.exportDicom(run.result_volume)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        RadEditCoreLogic.__init__(
            self,
            file_for_instance=self._fileForInstance,
            import_dicom_folder=self._importDicomFolder,
        )
        self._slicerPythonProblems = None

    def getParameterNode(self):
        return RadEditParameterNode(super().getParameterNode())

    # -- RadEditCoreLogic hooks ---------------------------------------------------
    def scene(self):
        return slicer.mrmlScene

    def segmentationsLogic(self):
        return slicer.modules.segmentations.logic()

    def workRoot(self) -> Path:
        return Path(slicer.app.temporaryPath) / "RadEdit"

    def pythonMode(self) -> str:
        """The stored choice, else Slicer's Python only where it needs no replaced package."""
        mode = qt.QSettings().value(environment.SETTINGS_MODE, "")
        if mode in environment.MODES:
            return mode
        return "external" if self.slicerPythonProblems() else "slicer"

    def requirements(self) -> list[str]:
        """What the worker needs in Slicer's Python besides torch (``Resources/requirements.txt``)."""
        return environment.read_requirements(MODULE_DIR / "Resources" / "requirements.txt")

    def slicerPythonProblems(self) -> list[str]:
        """Why Slicer's own Python cannot run the worker unchanged (empty: it can)."""
        if self._slicerPythonProblems is None:
            self._slicerPythonProblems = environment.slicer_python_problems(
                self.requirements() + [environment.TORCH_REQUIREMENT]
            )
        return self._slicerPythonProblems

    def workerPython(self) -> str:
        if self.python:
            return self.python
        if self.pythonMode() == "external":
            path = qt.QSettings().value(environment.SETTINGS_PYTHON, "")
            if not path:
                raise WorkerError(_("Choose the external Python executable in the Settings section."))
            return path
        return environment.slicer_python()

    def workerEnvironment(self):
        if self.env is not None:
            return self.env
        if self.pythonMode() == "external":
            return environment.external_environment(slicer.util.startupEnvironment())
        return environment.with_pythonpath(None, environment.bundled_core_parent(MODULE_DIR))

    def checkEnvironment(self) -> dict:
        """Blocking probe (console, self-test); the panel uses :meth:`startProbe`."""
        return probe_environment(self.workerPython(), self.workerEnvironment())

    def startProbe(self):
        """The environment probe as a started, polled WorkerProcess (``probe_outcome`` reads it)."""
        return probe_process(self.workerPython(), self.workerEnvironment()).start()

    # -- DICOM database ------------------------------------------------------------
    def _fileForInstance(self, uid: str) -> str:
        database = slicer.dicomDatabase
        if database is None or not database.isOpen:
            raise WorkerError(_("The DICOM database is not open."))
        return database.fileForInstance(uid)

    def _importDicomFolder(self, folder: Path) -> None:
        from DICOMLib import DICOMUtils

        try:
            ok = DICOMUtils.importDicom(str(folder), copyFiles=True)
        except TypeError:  # Slicer versions before copyFiles existed
            ok = DICOMUtils.importDicom(str(folder))
        if ok is False:
            raise WorkerError(_("The series was written to {folder} but could not be imported.").format(folder=folder))

    # -- dependencies ------------------------------------------------------------------
    def installDependencies(self, askConfirmation: bool = True) -> bool:
        """torch via the PyTorch extension, then the rest with pip, into Slicer's Python.

        Nothing already installed is upgraded or replaced (Slicer's pydicom,
        numpy, pillow, ... are what its own modules were built with): a
        requirement an installed version violates stops here with the
        advice to use an external environment, and pip gets a constraints
        file that pins every installed distribution.
        """
        requirements = self.requirements()
        self._slicerPythonProblems = None
        problems = self.slicerPythonProblems()
        if problems:
            raise WorkerError(
                _("Slicer's Python cannot run RadEdit without replacing what Slicer ships: {problems}. "
                  "Choose 'External Python environment' in the Settings section.").format(problems="; ".join(problems))
            )
        missing = environment.missing_requirements(environment.MODULE_REQUIREMENTS + requirements)
        need_torch = not environment.torch_installed()
        if not missing and not need_torch:
            return True
        if need_torch:
            # The PyTorch extension is not a hard dependency of RadEdit (an external environment
            # needs none): it is only needed here, where Slicer's own Python runs the worker.
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise WorkerError(
                    _("Install the PyTorch extension (Extensions Manager), restart Slicer and try again.")
                ) from exc
        if askConfirmation and not slicer.app.commandOptions().testingEnabled:
            text = _("RadEdit needs these Python packages in Slicer's Python:") + "\n\n"
            if need_torch:
                text += "torch " + _("(through the PyTorch extension)") + "\n"
            text += "\n".join(missing)
            text += "\n\n" + _("They will be downloaded and installed now; this may take several minutes.")
            if not slicer.util.confirmOkCancelDisplay(text):
                return False
        if need_torch:
            # The user has just confirmed torch too: PyTorchUtils must not ask a second time.
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=environment.TORCH_SPECIFIER
            )
            if torch is None:
                return False
        if missing:
            constraints = self.workRoot() / "constraints.txt"
            constraints.parent.mkdir(parents=True, exist_ok=True)
            constraints.write_text(environment.constraints_text(environment.installed_versions()), encoding="utf-8")
            # A list goes to pip as separate arguments (slicer.util.pip_install in 5.8, 5.10 and 5.12).
            slicer.util.pip_install(["-c", str(constraints), *missing])
        self._slicerPythonProblems = None
        return True

    # -- display ----------------------------------------------------------------------------
    def showComparison(self, resultVolume) -> None:
        """Original | edited | difference, side by side, each view on the image's own plane."""
        source = slicer.mrmlScene.GetNodeByID(resultVolume.GetAttribute(mrml.ATTR_SOURCE_VOLUME) or "")
        difference = slicer.mrmlScene.GetNodeByID(resultVolume.GetAttribute(mrml.ATTR_DIFFERENCE) or "")
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        if not layoutNode.IsLayoutDescription(COMPARE_LAYOUT_ID):
            layoutNode.AddLayoutDescription(COMPARE_LAYOUT_ID, COMPARE_LAYOUT)
        layoutManager.setLayout(COMPARE_LAYOUT_ID)
        for view, volume in (("Red", source), ("Yellow", resultVolume), ("Green", difference)):
            widget = layoutManager.sliceWidget(view)
            if widget is None or volume is None:
                continue
            composite = widget.mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(volume.GetID())
            composite.SetForegroundVolumeID(None)
            composite.SetLabelVolumeID(None)
            widget.mrmlSliceNode().RotateToVolumePlane(volume)
        # The new layout's views get their sizes when the event loop lays them out: fitting now
        # would fit the old (or zero) sizes.  A zero timer runs after the pending layout events.
        qt.QTimer.singleShot(0, lambda: self._fitViews(layoutManager, ("Red", "Yellow", "Green")))

    @staticmethod
    def _fitViews(layoutManager, views) -> None:
        for view in views:
            widget = layoutManager.sliceWidget(view)
            if widget is not None:
                widget.sliceLogic().FitSliceToAll()


#
# RadEditTest
#


class RadEditTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (``Slicer --testing``, the Extensions Index's build machines included).

    ``test_RadEdit_panel`` needs no torch and no GPU: the module loads, its
    widget builds, and the panel's decisions (segment lists and check
    states, pixel counts after a paint, Apply enabling) hold on Slicer's own
    scene and Qt.  ``test_RadEdit_masks_edit_export`` then asks the worker's
    environment: where none is configured (a build machine) it reports the
    worker as "not configured" and stops there; where one is, it runs the
    user's path with the tiny model: a synthetic chest X-ray written as DICOM
    by radedit_core, imported and loaded, two segments painted, the edit in
    the background process, the result on the input's grid, the export as a
    derived series of the same study.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RadEdit_panel()
        self.setUp()
        self.test_RadEdit_masks_edit_export()

    def _worker(self, logic, code: str) -> None:
        import subprocess

        subprocess.run(
            [logic.workerPython(), "-c", code], check=True, env=logic.workerEnvironment(), capture_output=True, text=True
        )

    def test_RadEdit_panel(self):
        import numpy as np

        self.delayDisplay("RadEdit panel without a worker")
        widget = slicer.util.getModuleWidget("RadEdit")  # loads the module and builds its panel
        self.assertIsNotNone(widget)
        volume = slicer.util.addVolumeFromArray(np.zeros((1, 64, 48), np.int16), name="CXR")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        editId = segmentation.GetSegmentation().AddEmptySegment("", "lung")
        keepId = segmentation.GetSegmentation().AddEmptySegment("", "drain")
        edit = np.zeros((1, 64, 48), np.uint8)
        edit[0, 10:30, 5:20] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(edit, segmentation, editId, volume)

        pn = RadEditLogic().getParameterNode()
        pn.inputVolume, pn.segmentation = volume, segmentation
        self.assertEqual([(r.name, r.edit, r.keep) for r in panel.segment_rows(pn)], [("lung", False, False), ("drain", False, False)])
        self.assertFalse(panel.apply_enabled(pn, busy=False)[0])
        # The items the panel builds are checkable: checking one chooses the segment.
        item = panel.segment_item(qt, panel.segment_rows(pn)[0], "edit")
        self.assertEqual(item.checkState(), qt.Qt.Unchecked)
        self.assertIsNotNone(item.data(qt.Qt.CheckStateRole))
        pn.editSegmentIds = [editId]
        self.assertTrue(panel.apply_enabled(pn, busy=False)[0])
        self.assertFalse(panel.apply_enabled(pn, busy=True)[0])

        cache = panel.MaskCache(RadEditLogic().takeSegmentArrays)
        masks, problem = cache.get(pn)
        self.assertIsNone(problem)
        self.assertEqual(masks.edit_pixels, 20 * 15)
        pn.prompt = "No pneumothorax"  # a new prompt: no export
        cache.get(pn)
        self.assertEqual(cache.computed, 1)
        edit[0, 40:50, 5:20] = 1  # a paint stroke
        slicer.util.updateSegmentBinaryLabelmapFromArray(edit, segmentation, editId, volume)
        # As the panel does it: the numeric half in a background thread, polled.
        self.assertTrue(cache.request(pn))
        deadline = time.monotonic() + 30
        while cache.poll(pn):
            self.assertLess(time.monotonic(), deadline)
            slicer.app.processEvents()
            time.sleep(0.01)
        self.assertEqual((cache.masks.edit_pixels, cache.problem, cache.computed), (30 * 15, None, 2))
        cache.shutdown()
        self.delayDisplay("Panel logic passed")

    def test_RadEdit_masks_edit_export(self):
        import numpy as np
        from DICOMLib import DICOMUtils

        self.delayDisplay("Starting the RadEdit test")
        logic = RadEditLogic()
        try:
            info = logic.checkEnvironment()
        except WorkerError as exc:
            # A build machine without torch or a worker environment: the panel test above is the test.
            self.delayDisplay(panel.environment_text(None, str(exc)) + " - the edit is not tested here")
            return
        self.assertTrue(info.get("version"))

        work = Path(slicer.app.temporaryPath) / "RadEditTest"
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        (work / "dicom").mkdir(parents=True)
        self._worker(
            logic,
            "import sys; from radedit_core.dicom.synthetic import write_synthetic_cxr_study; "
            f"write_synthetic_cxr_study({str(work / 'dicom')!r}, rows=192, columns=176)",
        )

        with DICOMUtils.TemporaryDICOMDatabase(str(work / "db")) as db:
            DICOMUtils.importDicom(str(work / "dicom"), db)
            series = [s for p in db.patients() for st in db.studiesForPatient(p) for s in db.seriesForStudy(st)]
            self.assertEqual(len(series), 1)
            study = db.studyForSeries(series[0])
            loaded = DICOMUtils.loadSeriesByUID(series)
            volume = slicer.mrmlScene.GetNodeByID(loaded[0])
            self.assertTrue(volume.GetAttribute("DICOM.instanceUIDs"))
            array = slicer.util.arrayFromVolume(volume)
            self.assertEqual(array.shape[0], 1)

            segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
            segmentation.CreateDefaultDisplayNodes()
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
            rows, cols = array.shape[1:]
            edit = np.zeros(array.shape, np.uint8)
            edit[0, rows // 4 : 3 * rows // 4, cols // 5 : cols // 2] = 1
            keep = np.zeros(array.shape, np.uint8)
            keep[0, rows // 3 : rows // 2, cols // 3 : 2 * cols // 3] = 1
            editId = segmentation.GetSegmentation().AddEmptySegment("", "lung")
            keepId = segmentation.GetSegmentation().AddEmptySegment("", "drain")
            slicer.util.updateSegmentBinaryLabelmapFromArray(edit, segmentation, editId, volume)
            slicer.util.updateSegmentBinaryLabelmapFromArray(keep, segmentation, keepId, volume)

            masks = logic.computeMasks(volume, segmentation, [editId], [keepId])
            np.testing.assert_array_equal(masks.edit, edit[0] > 0)
            np.testing.assert_array_equal(masks.keep, keep[0] > 0)
            self.assertGreater(masks.overlap_pixels, 0)
            self.delayDisplay("Masks match the painted segments")

            parameters = EditParameters(prompt=PAPER_PROMPTS["normal"], steps=10, model="tiny", device="cpu", dilate=0)
            run = logic.startEdit(volume, segmentation, [editId], [keepId], parameters)
            while not run.process.finished:
                slicer.app.processEvents()
                run.process.poll()
                time.sleep(0.05)
            self.assertEqual(run.process.state, "done", run.process.error_message)
            result = logic.finishEdit(run)
            self.assertTrue(mrml.same_grid(result, volume))
            edited = slicer.util.arrayFromVolume(result)
            self.assertEqual(edited.dtype, array.dtype)
            np.testing.assert_array_equal(edited[keep > 0], array[keep > 0])
            logic.showComparison(result)
            self.delayDisplay("Edited volume shown beside the original")

            outcome = logic.exportDicom(result, work / "export")
            self.assertTrue(outcome.files)
            self.assertEqual(outcome.study_instance_uid, study)
            self.assertIn(outcome.series_instance_uid, db.seriesForStudy(study))
        self.delayDisplay("Test passed")
