"""The README's Slicer Python-console example, run against real Slicer classes (slicer-core).

The example finds the volume and the segmentation with ``slicer.util``, the
segment ids by segment name, and calls the module logic's ``edit`` and
``exportDicom``.  Here it runs on a scene like the one the README's steps
build (a volume "Chest PA", a segmentation "Segmentation" with "Left lung"
and "Drain" painted), ``slicer.mrmlScene`` being the bootstrapped scene.  The
edit itself needs the published weights and a worker process (tens of
seconds; ``test_slicer_module.py`` runs ``edit`` and ``exportDicom`` end to
end with the tiny model): the logic given to the example binds its
arguments to ``RadEditCoreLogic.edit``/``exportDicom``'s real signatures and
prepares the job as ``edit`` does first (segment masks exported by Slicer's
segmentations logic, parameters validated, input and masks written), without
starting the worker.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import slicer
import slicer_bootstrap as sb  # imports the slicer-core wheel: missing -> these tests fail
from RadEditLib.logic import ExportOutcome, RadEditCoreLogic
from RadEditLib.protocol import EditParameters

#: As in the report to the README (keep the two the same).
CONSOLE_EXAMPLE = '''
import slicer
from RadEditLib.protocol import EditParameters

volume = slicer.util.getNode("Chest PA")  # the name in the Data module, or by class:
# volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
segmentation = slicer.util.getNode("Segmentation")
segments = segmentation.GetSegmentation()
lungId = segments.GetSegmentIdBySegmentName("Left lung")  # "" when there is no such segment
drainId = segments.GetSegmentIdBySegmentName("Drain")

logic = slicer.util.getModuleLogic("RadEdit")
run = logic.edit(volume, segmentation, [lungId], [drainId],
                 EditParameters(prompt="No acute cardiopulmonary process", model="radedit",
                                trust_remote_code=True))
outcome = logic.exportDicom(run.result_volume)
print(outcome.series_instance_uid, outcome.files)
'''


class PreparingLogic(RadEditCoreLogic):
    """The real logic up to the worker: ``edit`` prepares the job and records the calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def edit(self, *args, **kwargs):
        bound = inspect.signature(RadEditCoreLogic.edit).bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        run = self.prepareEdit(a["volumeNode"], a["segmentationNode"], a["editSegmentIds"], a["keepSegmentIds"], a["parameters"])
        self.calls.append(("edit", a, run))
        return run

    def exportDicom(self, *args, **kwargs):
        bound = inspect.signature(RadEditCoreLogic.exportDicom).bind(self, *args, **kwargs)
        self.calls.append(("exportDicom", bound.arguments, None))
        # Nothing was written: the real result type, empty, so the example reads real attribute names.
        return ExportOutcome(out_dir=self.workRoot(), files=[], series_instance_uid=None, study_instance_uid=None)


@pytest.fixture
def scene(monkeypatch, tmp_path):
    core = sb.bootstrap()
    rows, cols = 96, 80
    yy, xx = np.mgrid[:rows, :cols]
    image = (1000 + 10 * xx + yy).astype(np.int16)
    volume = sb.add_cxr_volume(core.scene, image, "Chest PA", spacing=(0.3, 0.3, 1.0))
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    lung = (xx > 45) & (xx < 70) & (yy > 15) & (yy < 80)
    drain = (xx > 55) & (xx < 58) & (yy > 20)
    ids = {
        "Left lung": sb.paint_segment(segmentation, volume, "Left lung", lung),
        "Drain": sb.paint_segment(segmentation, volume, "Drain", drain, (0.0, 1.0, 0.0)),
    }
    logic = PreparingLogic(core.scene, core.segmentations_logic, work_root=tmp_path / "work")
    monkeypatch.setattr(slicer, "mrmlScene", core.scene, raising=False)
    monkeypatch.setattr(slicer.util, "getModuleLogic", lambda name: logic if name == "RadEdit" else None)
    return {"volume": volume, "segmentation": segmentation, "ids": ids, "lung": lung, "drain": drain, "logic": logic}


def test_console_example_finds_the_nodes_and_segments_and_calls_the_logic(scene, capsys):
    namespace = {}
    exec(compile(CONSOLE_EXAMPLE, "README console example", "exec"), namespace)

    assert namespace["volume"] is scene["volume"]
    assert namespace["segmentation"] is scene["segmentation"]
    assert namespace["lungId"] == scene["ids"]["Left lung"] and namespace["drainId"] == scene["ids"]["Drain"]
    (kind, args, run), (export_kind, export_args, _) = scene["logic"].calls
    assert kind == "edit" and export_kind == "exportDicom"
    assert args["parameters"] == EditParameters(
        prompt="No acute cardiopulmonary process", model="radedit", trust_remote_code=True
    )
    # The ids select the painted regions: Slicer's export of them gives the masks back.
    np.testing.assert_array_equal(run.masks.edit, scene["lung"])
    np.testing.assert_array_equal(run.masks.keep, scene["drain"])
    assert run.job_path.is_file() and run.input_path.is_file()
    # What is exported is the run's result volume (filled in by the real edit).
    assert export_args["resultVolume"] is run.result_volume
    # The volume found by class is the same one.
    assert slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode") is scene["volume"]
    assert capsys.readouterr().out.strip() == "None []"
