"""Shared fixtures: the tiny model (real classes, loaded through the real loader),
pipelines on the CPU, and synthetic chest X-rays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests never reach the network; the loaders must work from local files alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# OMP_NUM_THREADS decides when set: on a shared 2-core machine two threads per process make the
# UNet calls 10-25 times slower than one.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1))))


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


@pytest.fixture(scope="session")
def components(tiny_model_dir):
    from radedit_core.models.loading import load_components
    from radedit_core.models.spec import ModelSpec

    return load_components(ModelSpec.from_folder(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def edit_pipe(components):
    from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

    pipe = RadEditPipeline.from_components(components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def editor(components):
    from radedit_core.workflow import RadEditor

    ed = RadEditor(components)
    ed.set_progress(False)
    return ed


@pytest.fixture(scope="session")
def phantom():
    from radedit_core.synthetic import chest_phantom

    return chest_phantom(600, 520, seed=3)


@pytest.fixture(scope="session")
def model_inputs(phantom):
    """Model-space image and masks of the phantom: (image, lung, pacemaker)."""
    from radedit_core.imaging.image import SourceImage
    from radedit_core.imaging.transform import ModelSpaceTransform
    from radedit_core.synthetic import quantise

    src = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    tf = ModelSpaceTransform.fit(src)
    image = tf.image_to_model(src.array)
    lung = tf.mask_to_model(phantom.mask("left_lung").astype(np.float32))
    device = tf.mask_to_model(phantom.mask("pacemaker").astype(np.float32))
    return image, lung, device


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
