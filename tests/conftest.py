"""Shared fixtures: the models (real classes, loaded through the real loader),
pipelines on the CPU, and synthetic chest X-rays.

Two models, both session-scoped (loaded once per test process, shared by every module):

* the **micro model** (``tests/micro_model.py``): the demo model's classes, configurations
  and folder layout at a 128 x 128 model space, written at session start in under a second,
  an edit about ten times faster than the demo model.  Use it for tests of mechanics: call
  counts, shapes, masks, I/O, DICOM writing, batching, resume, CLI plumbing, settings.
  Fixtures: ``micro_model_dir`` (the folder: ``--model <it>`` on a command line),
  ``micro_components``, ``micro_pipe`` (a ``RadEditPipeline``), ``micro_editor`` (a
  ``RadEditor``), ``micro_model_inputs`` (the phantom's image, lung and pacemaker masks
  in its model space).
* the **demo model** (``--model tiny``, ``radedit_core/data/demo_model``): for tests of what an
  edit does and of figures the documentation states (exact reconstruction, fast-path
  agreement, the replication).  Fixtures: ``tiny_model_dir``, ``components``, ``edit_pipe``,
  ``editor``, ``model_inputs`` (512 x 512).

Session fixtures are per process: under ``pytest -n 2`` each worker builds its own.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import monai.bundle  # noqa: F401 - see below
import numpy as np
import pytest
import torch

# MONAI's bundle loggers get a StreamHandler on sys.stdout when monai.bundle is first imported.
# Imported first inside a test that captures output (capsys), the handler keeps that test's stream,
# closed afterwards, and every later bundle run in the worker prints "--- Logging error ---":
# imported here, it binds to the session's stream.

# Tests never reach the network; the loaders must work from local files alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# OMP_NUM_THREADS decides when set: on a shared 2-core machine two threads per process make the
# UNet calls 10-25 times slower than one.  Under pytest-xdist (-n N) each worker is one process
# with one thread: N workers share the cores already.
_THREADS = os.environ.get("OMP_NUM_THREADS") or (1 if os.environ.get("PYTEST_XDIST_WORKER") else None)
torch.set_num_threads(int(_THREADS or max(1, min(2, os.cpu_count() or 1))))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The processes a test starts (workers, bundle runs, examples) share the cores with the other
    # xdist workers too; a test that wants another count sets it in the child's environment.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# Each test leaves sys.path and the importable modules as it found them.  Code run in this process
# (a bundle's ConfigWorkflow, in-process commands) puts folders on sys.path and imports from them;
# left behind, a later test in the same worker imports that module instead of its own (a bundle
# copy's scripts package, hence its bundle_root and output folder).  Checked from before the first
# fixture's set-up to after the last one's teardown, so module-scoped fixtures count too.  What
# counts: folders and modules the tests made or own (the repository, temporary folders) under a
# name an import finds them by; libraries' own lasting state (remote code in the Hugging Face
# cache, torchxrayvision's paths, setuptools' distutils) and files loaded under a made-up module
# name (a predictor's Python file) are what a process would keep too.
_IMPORT_STATE = pytest.StashKey[tuple]()
_OWN_FOLDERS = (Path(__file__).resolve().parent.parent, Path(tempfile.gettempdir()).resolve())
_INSTALLED = Path(sys.prefix).resolve()  # the set-up's environment lives inside the checkout, as .venv


def _own(path: Path) -> bool:
    """Made by the tests or the repository's own, not the installed libraries'."""
    return any(path.is_relative_to(folder) for folder in _OWN_FOLDERS) and not path.is_relative_to(_INSTALLED)


def _found_by_name(name: str, file: Path) -> bool:
    top = name.split(".")[0]
    return file.stem == top or any(parent.name == top for parent in file.parents)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_IMPORT_STATE] = (sys.path[:], dict(sys.modules))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    from cli_runner import stray_modules

    path, modules = item.stash[_IMPORT_STATE]
    added = [p for p in sys.path if p not in path and _own(Path(p or ".").resolve())]
    stray = [name for name in stray_modules(modules, path)
             if _own(file := Path(sys.modules[name].__file__).resolve()) and _found_by_name(name, file)]  # fmt: skip
    assert not added and not stray, (
        f"{item.nodeid} left {added} on sys.path and {stray} imported from outside it: "
        "run in-process code inside cli_runner.process_state()")
    return result


#: What an unmeasured slow test counts for when the slow tests are shared out (they take 15-100 s).
SLOW_TEST_S = 30


def pytest_collection_modifyitems(config, items):
    """Spread the slow tests over the xdist workers, each at the head of a worker's share.

    Under ``-n N --dist worksteal`` (pyproject's addopts) worker i starts with the i-th contiguous
    N-th of the list and idle workers steal from the tail of the others' queues.  A long end-to-end
    check left at the end of one share would run alone while the other worker has nothing to steal;
    put first, it runs while the rest is shared out.  The slow tests of one module stay together
    on one worker, one after the other: split between workers, a module's expensive fixture (a
    stress set built, predictors trained) would be made once on each.  Modules go to the worker
    with the least slow time so far, the longest first (``@pytest.mark.slow(seconds=N)``: a
    measured duration; otherwise :data:`SLOW_TEST_S`).  Without xdist the order changes nothing
    but which tests run first.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)

    def seconds(item) -> float:
        return item.get_closest_marker("slow").kwargs.get("seconds", SLOW_TEST_S)

    modules: dict[str, list] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    load, slow = [0.0] * workers, [[] for _ in range(workers)]
    for group in sorted(modules.values(), key=lambda g: -sum(map(seconds, g))):
        worker = min(range(workers), key=load.__getitem__)
        slow[worker].extend(group)
        load[worker] += sum(map(seconds, group))
    rest = [item for item in items if not item.get_closest_marker("slow")]
    share = -(-len(rest) // workers)
    items[:] = [item for i in range(workers) for item in (slow[i] + rest[i * share : (i + 1) * share])]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread while a module runs (modules that compare runs bit for bit or race
    subprocesses for the cores opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def radedit_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("radedit_home")
    os.environ["RADEDIT_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(radedit_home) -> Path:
    from radedit_core.models.spec import ModelSpec

    spec = ModelSpec.resolve("tiny")
    return Path(spec.unet.source)


def _load_components(model_dir: Path):
    from radedit_core.models.loading import load_components
    from radedit_core.models.spec import ModelSpec

    return load_components(ModelSpec.from_folder(model_dir), device="cpu", dtype="float32")


def _quiet_pipe(components):
    from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

    pipe = RadEditPipeline.from_components(components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _quiet_editor(components):
    from radedit_core.workflow import RadEditor

    ed = RadEditor(components)
    ed.set_progress(False)
    return ed


@pytest.fixture(scope="session")
def components(tiny_model_dir):
    return _load_components(tiny_model_dir)


@pytest.fixture(scope="session")
def edit_pipe(components):
    return _quiet_pipe(components)


@pytest.fixture(scope="session")
def editor(components):
    return _quiet_editor(components)


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory) -> Path:
    """The micro model's folder (see the module docstring and ``tests/micro_model.py``)."""
    from micro_model import write_micro_model

    return write_micro_model(tmp_path_factory.mktemp("micro_model") / "micro")


@pytest.fixture(scope="session")
def micro_components(micro_model_dir):
    return _load_components(micro_model_dir)


@pytest.fixture(scope="session")
def micro_pipe(micro_components):
    return _quiet_pipe(micro_components)


@pytest.fixture(scope="session")
def micro_editor(micro_components):
    return _quiet_editor(micro_components)


@pytest.fixture(scope="session")
def phantom():
    from radedit_core.synthetic import chest_phantom

    return chest_phantom(600, 520, seed=3)


@pytest.fixture(scope="session")
def model_inputs(phantom):
    """Model-space image and masks of the phantom: (image, lung, pacemaker)."""
    return _model_inputs(phantom, 512)


def _model_inputs(phantom, size: int):
    from radedit_core.imaging.image import SourceImage
    from radedit_core.imaging.transform import ModelSpaceTransform
    from radedit_core.synthetic import quantise

    src = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    tf = ModelSpaceTransform.fit(src, size)
    image = tf.image_to_model(src.array)
    lung = tf.mask_to_model(phantom.mask("left_lung").astype(np.float32))
    device = tf.mask_to_model(phantom.mask("pacemaker").astype(np.float32))
    return image, lung, device


@pytest.fixture(scope="session")
def micro_model_inputs(phantom, micro_pipe):
    """Like ``model_inputs``, in the micro model's model space (128 x 128)."""
    return _model_inputs(phantom, micro_pipe.model_resolution)


class UNetCallCounter:
    """Counts real forward calls of a module and the samples they carried."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self.samples = 0
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.calls += 1
        self.samples += (args[0] if args else kwargs["sample"]).shape[0]

    def close(self):
        self._handle.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def count_unet():
    counters = []

    def make(module):
        c = UNetCallCounter(module)
        counters.append(c)
        return c

    yield make
    for c in counters:
        c.close()
