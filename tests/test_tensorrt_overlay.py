"""The bundle's TensorRT overlay (configs/inference_trt.json, MONAI's trt_compile around the UNet).

TensorRT is not installed here, so the overlay must stop the run with one
line and exit code 6 before any model loads or anything is written; its
``unet_wrapper`` expression, which MONAI's ``trt_compile`` turns into a
no-op without TensorRT, must plug into the pipeline without changing a
pixel.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch

from cli_runner import process_state
from radedit_core.errors import BackendError

BUNDLE = Path(__file__).resolve().parent.parent / "monai_bundle"
CONFIGS = [str(BUNDLE / "configs" / "inference.json"), str(BUNDLE / "configs" / "inference_trt.json")]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed: the overlay would build an engine"
)


@pytest.fixture
def bundle_on_path():
    """``scripts`` importable and logging restored, as for ``python -m monai.bundle`` run in the bundle."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with process_state({"PYTHONPATH": str(BUNDLE)}):  # scripts ends with the test
            yield
    finally:
        root.handlers[:], root.level = handlers, level


def test_the_overlay_without_tensorrt_stops_before_any_work_with_one_line(tmp_path, radedit_home, bundle_on_path):
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "out"
    wf = ConfigWorkflow(config_file=CONFIGS, run_id="edit", workflow_type=None, output_dir=str(out), device="cpu")
    wf.initialize()
    with pytest.raises(Exception) as err:  # MONAI wraps what the job raises in a RuntimeError
        wf.run()
    cause = err.value
    while cause is not None and not isinstance(cause, BackendError):
        cause = cause.__cause__
    assert isinstance(cause, BackendError), err.value
    message = str(cause)
    assert cause.exit_code == 6 and "\n" not in message
    assert message.startswith("TensorRT is not installed here (tensorrt and polygraphy cannot be imported)")
    assert not out.exists()


def test_the_overlay_parses_and_its_wrapper_runs_the_unet_unchanged_here(components, model_inputs, bundle_on_path):
    from monai.bundle import ConfigParser

    from radedit_core.pipelines.pipeline_radedit import RadEditPipeline
    from radedit_core.pipelines.tensorrt import UNetNoisePrediction, wrap_unet

    parser = ConfigParser()
    parser.read_config(CONFIGS)
    assert parser.get_parsed_content("unet_backend") == "tensorrt"
    assert parser.get_parsed_content("edit_options")["unet_backend"] == "tensorrt"
    wrapper = parser.get_parsed_content("unet_wrapper")
    assert parser.get_parsed_content("trt_base_path").endswith("monai_bundle/models/radedit_unet")

    image, lung, pacemaker = model_inputs
    plain = RadEditPipeline.from_components(components)
    wrapped = RadEditPipeline.from_components(components)
    for pipe in (plain, wrapped):
        pipe.set_progress_bar_config(disable=True)
    module = wrap_unet(wrapped, wrapper)  # trt_compile without TensorRT: a warning, the module as it was
    assert isinstance(module, UNetNoisePrediction) and module.unet is components.unet
    kw = dict(edit_mask=lung, keep_mask=pacemaker, num_inference_steps=4, generator=0)
    expected = plain(image, "Moderate pulmonary edema", **kw)
    got = wrapped(image, "Moderate pulmonary edema", **kw)
    assert torch.equal(got.images, expected.images) and got.unet_calls == expected.unet_calls
