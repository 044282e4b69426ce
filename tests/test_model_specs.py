"""What a model spec may say, and how models load: scheduler and text settings the maths honour,
one-folder models with remote code or fp16-only weights, the offline cache, non-finite outputs.

Models are the test-only micro model's components (conftest: the demo model's classes, configurations
and folder layout, a fraction of its compute), saved again with ``save_pretrained`` in the layouts
under test (real diffusers/transformers classes); what is checked here (loading, settings, the
maths the scheduler settings select, exactness bit for bit) does not depend on what the weights
edit.  The spec-checking tests read the demo model's own ``radedit_model.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from radedit_core.diffusion.schedule import make_schedule
from radedit_core.errors import ConfigError, ModelNotFoundError, NumericalError
from radedit_core.models.loading import load_components
from radedit_core.models.spec import RADEDIT_SCHEDULER, ModelSpec
from radedit_core.pipelines.pipeline_radedit import RadEditPipeline

CXR_BERT_CONFIG = '''
from transformers import BertConfig


class CXRBertTestConfig(BertConfig):
    model_type = "cxr-bert-test"
'''
CXR_BERT_MODEL = '''
from transformers import BertModel

from .configuration_cxrbert import CXRBertTestConfig


class CXRBertTestModel(BertModel):
    config_class = CXRBertTestConfig
'''


def copy_model(model_dir: Path, dest: Path) -> Path:
    shutil.copytree(model_dir, dest)
    (dest / "radedit_model.json").unlink()  # a plain one-folder model, found by its layout
    return dest


def edit_once(components) -> torch.Tensor:
    pipe = RadEditPipeline.from_components(components)
    pipe.set_progress_bar_config(disable=True)
    image = torch.zeros(1, 1, pipe.model_resolution, pipe.model_resolution)
    return pipe(image, "No pneumothorax", num_inference_steps=4, generator=0).images


# -- scheduler settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [7, 30, 200, 1000])
def test_trailing_schedule_steps_to_the_next_listed_timestep_and_ends_at_x0(steps):
    scheduler = DDIMScheduler(**RADEDIT_SCHEDULER)
    sched = make_schedule(scheduler, steps)
    alphas = scheduler.alphas_cumprod.double()
    assert sched.timesteps == tuple(int(t) for t in scheduler.timesteps) and sched.timesteps[0] == 999
    for i in range(steps - 1):
        assert sched.abar_prev[i] == float(alphas[sched.timesteps[i + 1]])
    assert sched.abar_prev[-1] == 1.0 and sched.sigma(steps - 1) == 0.0


def test_reference_compat_keeps_diffusers_previous_timestep_rule():
    scheduler = DDIMScheduler(**RADEDIT_SCHEDULER)
    sched = make_schedule(scheduler, 7, reference_compat=True)
    alphas = scheduler.alphas_cumprod.double()
    stride = 1000 // 7
    for t, prev in zip(sched.timesteps, sched.abar_prev):
        assert prev == (float(alphas[t - stride]) if t - stride >= 0 else float(scheduler.final_alpha_cumprod))
    # the rule and the list disagree when T does not divide 1000, and the last step ends short of abar = 1
    assert sched.abar_prev[-1] < 1.0 and make_schedule(scheduler, 7).abar_prev[0] != sched.abar_prev[0]


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_other_spacings_use_their_own_timestep_lists(spacing):
    scheduler = DDIMScheduler(**{**RADEDIT_SCHEDULER, "timestep_spacing": spacing, "steps_offset": 0})
    sched = make_schedule(scheduler, 30)
    alphas = scheduler.alphas_cumprod.double()
    assert all(sched.abar_prev[i] == float(alphas[sched.timesteps[i + 1]]) for i in range(29))


def test_leading_with_offset_at_1000_steps_is_a_clear_error_not_an_index_error():
    scheduler = DDIMScheduler(**{**RADEDIT_SCHEDULER, "timestep_spacing": "leading", "steps_offset": 1})
    with pytest.raises(ConfigError, match=r"'leading' with steps_offset 1 gives timestep 1000 outside 0..999"):
        make_schedule(scheduler, 1000)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"thresholding": True}, r"thresholding=True is not supported \(it breaks exact inversion\)"),
        ({"clip_sample": True}, r"clip_sample=True is not supported"),
        ({"rescale_betas_zero_snr": True}, r"rescale_betas_zero_snr=True is not supported"),
        ({"timestep_spacing": "karras"}, r"timestep_spacing='karras' is not supported"),
        ({"prediction_typ": "epsilon"}, r"unknown scheduler setting 'prediction_typ'; supported: num_train_timesteps"),
    ],
)
def test_scheduler_settings_the_maths_does_not_honour_are_refused(tiny_model_dir, tmp_path, change, message):
    spec = json.loads((tiny_model_dir / "radedit_model.json").read_text())
    spec["scheduler"] = {**spec["scheduler"], **change}
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        spec[part]["source"] = str(tiny_model_dir)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=message):
        ModelSpec.resolve(path)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_v_and_sample_prediction_are_honoured_and_inversion_stays_exact(micro_components, prediction_type):
    components = micro_components
    from dataclasses import replace

    config = {**dict(components.scheduler.config), "prediction_type": prediction_type}
    other = replace(components, scheduler=DDIMScheduler.from_config(config))
    pipe = RadEditPipeline.from_components(other)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, pipe.model_resolution, pipe.model_resolution, generator=gen) * 2 - 1
    same = pipe(image, "No pneumothorax", invert_prompt="No pneumothorax", weights=3.5, invert_guidance=3.5,
                num_inference_steps=12, generator=1, inversion_batch_size=1, batch_conditions=False)  # fmt: skip
    assert torch.equal(same.latents, same.source_latents)
    edited = pipe(image, "No pneumothorax", num_inference_steps=12, generator=1)
    eps = RadEditPipeline.from_components(components)
    eps.set_progress_bar_config(disable=True)
    as_epsilon = eps(image, "No pneumothorax", num_inference_steps=12, generator=1)
    assert not torch.allclose(edited.latents, as_epsilon.latents)  # the prediction type changes the maths


# -- text settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ({"max_length": "long"}, r"text.max_length: expected an integer, got 'long'"),
        ({"max_length": 0}, r"text.max_length must be >= 1 tokens, got 0"),
        ({"pass_attention_mask": "perhaps"}, r"text.pass_attention_mask: expected true or false"),
        ({"max_len": 10}, r"unknown text settings \['max_len'\]"),
    ],
)
def test_text_settings_are_checked(tiny_model_dir, tmp_path, text, message):
    spec = json.loads((tiny_model_dir / "radedit_model.json").read_text())
    spec["text"] = text
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_file(path)


def test_text_settings_parse_strictly_and_fit_the_encoder(tiny_model_dir):
    spec = ModelSpec.from_dict({**json.loads((tiny_model_dir / "radedit_model.json").read_text()),
                                "text": {"pass_attention_mask": "false"}}, base=tiny_model_dir)  # fmt: skip
    assert spec.text.pass_attention_mask is False
    too_long = spec.with_text(max_length=256)  # the encoder has 128 position embeddings
    with pytest.raises(ConfigError, match=r"text.max_length 256 exceeds the text encoder's 128 position embeddings"):
        load_components(too_long, device="cpu")


def test_long_prompts_are_reported_truncated(micro_editor, phantom):
    editor = micro_editor
    from radedit_core.imaging.image import SourceImage
    from radedit_core.settings import EditSettings
    from radedit_core.synthetic import quantise

    source = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    prompt = " ".join(["small left pleural effusion"] * 50)
    result = editor.edit(source, phantom.mask("left_lung"), None, EditSettings(prompts=[prompt], steps=3))
    (text,) = result.text
    assert text["truncated"] and text["tokens"] > 128 and text["max_length"] == 128
    assert any("tokens; the text encoder reads the first 128" in note for note in result.notes)
    assert result.provenance["text"] == result.text and result.provenance["notes"] == result.notes


# -- loading layouts -------------------------------------------------------------------------------


def test_one_folder_model_whose_text_encoder_ships_remote_code(micro_model_dir, tmp_path):
    folder = copy_model(micro_model_dir, tmp_path / "remote")
    encoder = folder / "text_encoder"
    (encoder / "configuration_cxrbert.py").write_text(CXR_BERT_CONFIG)
    (encoder / "modeling_cxrbert.py").write_text(CXR_BERT_MODEL)
    config = json.loads((encoder / "config.json").read_text())
    config.update(model_type="cxr-bert-test", architectures=["CXRBertTestModel"],
                  auto_map={"AutoConfig": "configuration_cxrbert.CXRBertTestConfig",
                            "AutoModel": "modeling_cxrbert.CXRBertTestModel"})  # fmt: skip
    (encoder / "config.json").write_text(json.dumps(config))
    spec = ModelSpec.resolve(folder)
    assert spec.text_encoder.trust_remote_code and not spec.unet.trust_remote_code
    with pytest.raises(ConfigError, match="needs remote code .* pass --trust-remote-code"):
        load_components(folder, device="cpu")
    components = load_components(folder, device="cpu", trust_remote_code=True)
    assert type(components.text_encoder).__name__ == "CXRBertTestModel"
    reference = load_components(micro_model_dir, device="cpu")
    assert torch.equal(edit_once(components), edit_once(reference))  # same weights, same edit


def test_one_folder_model_with_fp16_variant_weights_only(micro_model_dir, tmp_path):
    reference = load_components(micro_model_dir, device="cpu")
    folder = tmp_path / "fp16"
    reference.unet.save_pretrained(folder / "unet", variant="fp16")
    reference.vae.save_pretrained(folder / "vae", variant="fp16")
    reference.text_encoder.save_pretrained(folder / "text_encoder", variant="fp16")
    reference.tokenizer.save_pretrained(folder / "tokenizer")
    reference.scheduler.save_pretrained(folder / "scheduler")
    assert not (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()
    spec = ModelSpec.resolve(folder)
    assert spec.unet.variant == spec.vae.variant == spec.text_encoder.variant == "fp16"
    components = load_components(folder, device="cpu")
    assert torch.equal(edit_once(components), edit_once(reference))


def test_published_model_offline_with_an_empty_cache_fails_at_once(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"UNet not found: hub repository microsoft/radedit/unet .*hf download"):
        load_components("radedit", device="cpu", trust_remote_code=True)
    assert time.perf_counter() - t0 < 10  # no network retries (they take ~30 s)


# -- non-finite results ----------------------------------------------------------------------------


def test_a_vae_that_overflows_is_an_error_naming_the_stage_and_nothing_is_written(micro_model_dir, tmp_path, phantom):
    from radedit_core.settings import EditSettings
    from radedit_core.workflow import RadEditor, edit_file
    from radedit_core.imaging.io import write_image
    from radedit_core.imaging.image import Geometry
    from radedit_core.synthetic import quantise

    editor = RadEditor(load_components(micro_model_dir, device="cpu"))
    editor.set_progress(False)
    with torch.no_grad():
        conv_out = editor.components.vae.decoder.conv_out
        conv_out.weight.mul_(1e38)  # float32 overflow, like float16 in the SDXL VAE
        conv_out.bias.fill_(3e38)
    image = tmp_path / "cxr.png"
    write_image(image, quantise(phantom.image, 16), Geometry())
    out = tmp_path / "out" / "edited.png"
    with pytest.raises(NumericalError, match=r"VAE decode produced NaN or infinite values; .*--vae-dtype float32"):
        edit_file(editor, image, out, EditSettings(prompts=["x"], steps=3), edit_mask_path=None)
    assert not (tmp_path / "out").exists()
