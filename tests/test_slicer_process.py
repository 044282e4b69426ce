"""Cancel through a launcher: the worker's whole process tree ends, and the GUI never waits for it.

Slicer's ``PythonSlicer`` is a launcher: it starts the real Python as its
child and forwards no signal, so a SIGTERM to it alone would leave the edit
running.  The launcher here does the same (it ignores SIGTERM and waits for
its child); the module's cancel must still end every process of the tree
within :data:`CANCEL_GRACE_S` (plus a poll), while ``cancel()`` itself
returns at once.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import psutil
import pytest
import slicer_bootstrap as sb
from slicer_polling import poll_until, wait_for_stage

from RadEditLib import protocol
from RadEditLib.logic import RadEditCoreLogic
from RadEditLib.protocol import CANCEL_GRACE_S, PAPER_PROMPTS, EditParameters, WorkerProcess
from radedit_core.synthetic import chest_phantom, quantise

#: What the GUI may spend in one cancel() call (it runs on Slicer's GUI thread).
GUI_BUDGET_S = 0.3

LAUNCHER = """\
import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like PythonSlicer: nothing is forwarded
child = subprocess.Popen([sys.executable, *sys.argv[1:]])
sys.exit(child.wait())
"""


@pytest.fixture
def launcher(tmp_path):
    path = tmp_path / "PythonSlicer"
    path.write_text(f"#!{sys.executable}\n" + LAUNCHER)
    path.chmod(0o755)
    return path


def _descendants_once_started(process: WorkerProcess, count: int, timeout: float = 60.0) -> list[psutil.Process]:
    tree: list[psutil.Process] = []

    def started() -> bool:
        tree[:] = psutil.Process(process.pid).children(recursive=True)
        return len(tree) >= count

    poll_until(started, timeout=timeout, what="the launcher's child")
    return tree


def _cancel_and_time(process: WorkerProcess) -> tuple[float, float]:
    """(seconds cancel() took, seconds until poll() settled the run)."""
    t0 = time.perf_counter()
    process.cancel()
    call = time.perf_counter() - t0

    def timed_poll() -> None:
        slow = time.perf_counter()
        process.poll()
        assert time.perf_counter() - slow < GUI_BUDGET_S  # poll never blocks either

    poll_until(lambda: process.finished, timed_poll, CANCEL_GRACE_S + 2.0, "the end of the whole tree")
    return call, time.perf_counter() - t0


def _gone(procs) -> bool:
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


@pytest.mark.parametrize("with_psutil", [True, False], ids=["psutil", "process-group"])
def test_a_stubborn_tree_behind_a_launcher_is_killed_after_the_grace(launcher, monkeypatch, with_psutil):
    if not with_psutil:  # the module before psutil is installed into Slicer's Python
        monkeypatch.setattr(protocol, "psutil", None)
    # The child ignores SIGTERM too (inherited from the launcher): only the kill after the grace ends it.
    process = WorkerProcess([str(launcher), "-c", "import time; print('up', flush=True); time.sleep(600)"])
    process.start()
    tree = [psutil.Process(process.pid), *_descendants_once_started(process, 1)]
    call, total = _cancel_and_time(process)
    assert call < GUI_BUDGET_S
    assert CANCEL_GRACE_S - 0.2 <= total < CANCEL_GRACE_S + 1.0
    assert process.state == "cancelled"
    assert _gone(tree)


@pytest.mark.slow
def test_cancel_through_a_launcher_stops_the_real_worker(launcher, tmp_path, radedit_home, micro_model_dir):
    core = sb.bootstrap()
    phantom = chest_phantom(128, 112, seed=3)
    volume = sb.add_cxr_volume(core.scene, quantise(phantom.image, 12).astype(np.int16), "CXR")
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    lungs = sb.paint_segment(segmentation, volume, "lungs", phantom.mask("left_lung", "right_lung"))
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic, python=launcher, work_root=tmp_path / "work")
    # The micro model (conftest): the process tree is under test, not the edit; 100 steps keep its
    # edit stage running well past the cancel.
    parameters = EditParameters(prompt=PAPER_PROMPTS["normal"], steps=100, model=str(micro_model_dir), device="cpu",
                                dtype="float32", dilate=0)  # fmt: skip
    run = logic.startEdit(volume, segmentation, [lungs], [], parameters)
    wait_for_stage(run.process, "edit")
    tree = [psutil.Process(run.process.pid), *psutil.Process(run.process.pid).children(recursive=True)]
    assert len(tree) == 2  # the launcher and the Python that runs the edit
    call, _ = _cancel_and_time(run.process)
    assert call < GUI_BUDGET_S
    assert run.state == "cancelled" and _gone(tree)
    # The worker got the SIGTERM the launcher would not forward, and reported its cancel itself.
    assert run.process.events[-1].kind == "cancelled"
    logic.discard(run)
    assert not run.job_dir.exists() and not run.output_path.exists()
