"""Model specs and loading through the real from_pretrained code paths."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from radedit_core.errors import ConfigError, ModelNotFoundError
from radedit_core.models.conditioning import encode_prompts
from radedit_core.models.loading import load_components, resolve_dtype
from radedit_core.models.spec import BIOVIL_T_REVISION, RADEDIT_SCHEDULER, ModelSpec
from radedit_core.models.tiny import write_tiny_model


def test_tiny_factory_writes_the_published_layout(tmp_path):
    folder = write_tiny_model(tmp_path / "m", seed=1)
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / sub).is_dir()
    assert (folder / "tokenizer" / "vocab.txt").exists()
    c = load_components(ModelSpec.from_folder(folder), device="cpu")
    assert isinstance(c.unet, UNet2DConditionModel) and isinstance(c.vae, AutoencoderKL)
    assert isinstance(c.scheduler, DDIMScheduler)
    assert type(c.text_encoder).__name__ == "BertModel"
    assert c.tokenizer.model_max_length == 128
    assert c.unet.config.cross_attention_dim == c.text_encoder.config.hidden_size
    for key, value in RADEDIT_SCHEDULER.items():
        assert c.scheduler.config[key] == value
    assert c.vae.config.scaling_factor == pytest.approx(0.13025)


def test_conditioning_is_last_hidden_state_padded_to_128(components):
    emb = encode_prompts(
        ["", "No acute cardiopulmonary process"],
        components.tokenizer,
        components.text_encoder,
        components.spec.text,
        components.device,
        torch.float32,
    )
    assert emb.shape == (2, 128, components.text_encoder.config.hidden_size)
    out = components.text_encoder(
        input_ids=components.tokenizer(["", "No acute cardiopulmonary process"], padding="max_length", max_length=128, return_tensors="pt")["input_ids"]
    )
    assert torch.equal(emb, out.last_hidden_state)


def test_attention_mask_setting_is_explicit_and_matters(components):
    args = (["Small left pleural effusion"], components.tokenizer, components.text_encoder)
    without = encode_prompts(*args, components.spec.text, components.device, torch.float32)
    with_mask = encode_prompts(
        *args, components.spec.with_text(pass_attention_mask=True).text, components.device, torch.float32
    )
    assert components.spec.text.pass_attention_mask is False
    assert not torch.allclose(without, with_mask)


def test_spec_file_with_relative_sources(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "weights")
    spec_path = tmp_path / "my_model.yaml"
    spec_path.write_text(
        "name: mine\n"
        "unet: {source: ./weights, subfolder: unet}\n"
        "vae: {source: ./weights, subfolder: vae}\n"
        "text_encoder: {source: ./weights, subfolder: text_encoder}\n"
        "tokenizer: {source: ./weights, subfolder: tokenizer}\n"
        "text: {max_length: 128, pass_attention_mask: true}\n"
    )
    spec = ModelSpec.resolve(spec_path)
    assert spec.name == "mine" and spec.unet.source == str((tmp_path / "weights").resolve())
    assert spec.text.pass_attention_mask is True
    load_components(spec, device="cpu")


def test_published_spec_is_pinned_and_needs_remote_code_opt_in():
    spec = ModelSpec.radedit()
    assert spec.unet.source == "microsoft/radedit" and spec.unet.subfolder == "unet"
    assert spec.vae.source == "stabilityai/sdxl-vae"
    assert spec.text_encoder.revision == BIOVIL_T_REVISION and spec.text_encoder.trust_remote_code
    assert all(c.is_pinned for c in (spec.unet, spec.vae, spec.text_encoder, spec.tokenizer))
    with pytest.raises(ConfigError, match="needs remote code.*--trust-remote-code"):
        load_components(spec, device="cpu", local_files_only=True)


def test_remote_code_only_from_a_pinned_revision():
    data = ModelSpec.radedit().to_dict()
    data["text_encoder"]["revision"] = "main"
    spec = ModelSpec.from_dict(data)
    with pytest.raises(ConfigError, match="pinned revision"):
        load_components(spec, device="cpu", trust_remote_code=True, local_files_only=True)


def test_missing_hub_weights_say_where_and_how(radedit_home, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotFoundError) as err:
        load_components(ModelSpec.radedit(), device="cpu", trust_remote_code=True, local_files_only=True)
    msg = str(err.value)
    assert "UNet not found" in msg and "microsoft/radedit/unet" in msg
    assert "hf download microsoft/radedit" in msg and "--model" in msg


def test_local_folder_problems(tmp_path, tiny_model_dir):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "unet").mkdir()
    with pytest.raises(ConfigError, match="missing subfolders"):
        ModelSpec.resolve(tmp_path / "half")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    for f in (broken / "vae").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelNotFoundError, match="VAE not found: local folder"):
        load_components(ModelSpec.resolve(broken), device="cpu")
    with pytest.raises(ConfigError, match="model not found"):
        ModelSpec.resolve(tmp_path / "nowhere")


def test_bad_spec_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: model spec is not valid"):
        ModelSpec.from_file(bad)
    bad.write_text(json.dumps({"unet": "a/b", "vae": "c/d", "text_encoder": "e/f"}))
    with pytest.raises(ConfigError, match="missing components"):
        ModelSpec.from_file(bad)


def test_dtype_policy():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="unknown dtype"):
        resolve_dtype("int8", cpu)


def test_vae_stays_fp32_when_unet_runs_in_bf16(tiny_model_dir):
    c = load_components(ModelSpec.from_folder(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert c.unet.dtype == torch.bfloat16 and c.text_encoder.dtype == torch.bfloat16
    assert c.vae.dtype == torch.float32


def test_loading_a_model_leaves_the_global_random_stream_alone(tiny_model_dir):
    # The demo UNet's text addition embedding draws torch.randn in __init__ even when its weights are loaded.
    from radedit_core.models.loading import load_components

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    load_components(tiny_model_dir, device="cpu", dtype="float32")
    assert torch.equal(torch.random.get_rng_state(), before)
