"""The shipped demo model (`--model tiny`): what it is, that it loads, and that its edits do what they say.

The sample is a phantom-world case, so the world can draw the *true*
counterfactual of an edit: the same patient without the pneumothorax.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radedit_core.demo import sample_dir, sample_phantom_case
from radedit_core.imaging.io import read_image
from radedit_core.models.tiny import DEMO_MODEL_DIR, TINY_UNET, TINY_VAE
from radedit_core.phantom_world import render_case
from radedit_core.replication.experiments import dilate
from radedit_core.settings import PAPER_PROMPTS, EditSettings


def _mask(name: str) -> np.ndarray:
    return np.asarray(Image.open(sample_dir() / f"{name}_mask.png")) > 0


def test_demo_model_is_the_tiny_architecture_trained_on_the_phantom_world(tiny_model_dir):
    assert tiny_model_dir == DEMO_MODEL_DIR
    unet = json.loads((tiny_model_dir / "unet" / "config.json").read_text())
    vae = json.loads((tiny_model_dir / "vae" / "config.json").read_text())
    for key in ("block_out_channels", "down_block_types", "up_block_types", "cross_attention_dim", "layers_per_block"):
        assert unet[key] == (list(TINY_UNET[key]) if isinstance(TINY_UNET[key], tuple) else TINY_UNET[key]), key
    assert vae["block_out_channels"] == list(TINY_VAE["block_out_channels"])
    size = sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file())
    assert size <= 20 * 2**20, f"demo model is {size / 2**20:.1f} MB"
    readme = (tiny_model_dir / "README.md").read_text()
    assert "phantom world" in readme and "scripts/train_demo_model.py" in readme
    training = json.loads((tiny_model_dir / "training.json").read_text())
    assert training["settings"]["stage"] == "unet" and training["global_step"] >= 1000


def test_tiny_random_is_the_seeded_initialisation_of_the_same_architecture(radedit_home, tiny_model_dir):
    from radedit_core.models.spec import ModelSpec

    random_dir = Path(ModelSpec.resolve("tiny-random").unet.source)
    for part in ("unet", "vae", "text_encoder"):
        ours = json.loads((tiny_model_dir / part / "config.json").read_text())
        theirs = json.loads((random_dir / part / "config.json").read_text())
        drop = {"_name_or_path", "_diffusers_version", "transformers_version", "dtype", "torch_dtype"}
        assert {k: v for k, v in ours.items() if k not in drop} == {k: v for k, v in theirs.items() if k not in drop}, part
    # The text encoder is frozen at the seeded initialisation: the demo model's is the random one.
    from safetensors.numpy import load_file

    a = load_file(str(tiny_model_dir / "text_encoder" / "model.safetensors"))
    b = load_file(str(random_dir / "text_encoder" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_demo_model_removes_the_sample_pneumothorax_and_keeps_the_drain(editor):
    image = read_image(sample_dir() / "cxr.png")
    ptx, drain = _mask("pneumothorax"), _mask("drain")
    settings = EditSettings(prompts=[PAPER_PROMPTS["no-pneumothorax"]], steps=50, keep_mode="pixel")
    result = editor.edit(image, ptx, drain, settings)
    edited = result.image.array.astype(np.float64)
    source = image.array.astype(np.float64)
    # The world draws the same patient without the pneumothorax: the edit's target.
    case = sample_phantom_case()
    truth = render_case(case.parameters, exclude=["pneumothorax"]).stored(12, "MONOCHROME2").astype(np.float64)
    # The world draws this very sample: equal up to the last stored value of a handful of pixels, where
    # another numpy/scipy build rounds the rendering's floats differently (8 pixels of 358,400 seen).
    redrawn = case.stored(12, "MONOCHROME2").astype(np.int64) - image.array.astype(np.int64)
    assert np.abs(redrawn).max() <= 1 and np.count_nonzero(redrawn) <= 1e-4 * redrawn.size
    region = ptx & ~dilate(drain, 6)
    # The pneumothorax's air is darker than the lung it replaced: the edit closes most of that gap
    # (measured: mean -212 -> +62 stored values at 50 steps) ...
    gap_before = (source - truth)[region].mean()
    gap_after = (edited - truth)[region].mean()
    assert gap_before < -100 and abs(gap_after) < 0.4 * abs(gap_before), (gap_before, gap_after)
    # ... and comes closer pixel by pixel, down to the lung markings it cannot know (222 -> 156).
    before = np.abs(source - truth)[region].mean()
    after = np.abs(edited - truth)[region].mean()
    assert after < 0.85 * before, f"mean distance to the counterfactual {before:.0f} -> {after:.0f}"
    assert np.array_equal(edited[drain], source[drain])  # pixel keep mode
    far = ~dilate(ptx | drain, 24)
    assert np.abs(edited - source)[far].mean() < 0.1 * np.abs(edited - source)[region].mean()


@pytest.mark.parametrize("prompt, mask, sign", [(PAPER_PROMPTS["edema"], "lungs", 1.0)])
def test_demo_model_adds_edema_haze_inside_the_lungs(editor, prompt, mask, sign):
    image = read_image(sample_dir() / "cxr.png")
    lungs = _mask(mask) & ~_mask("pneumothorax") & ~dilate(_mask("drain") | _mask("pacemaker"), 6)
    result = editor.edit(image, lungs, _mask("drain") | _mask("pacemaker"), EditSettings(prompts=[prompt], steps=50))
    change = result.image.array.astype(np.float64) - image.array.astype(np.float64)
    # Edema is density: the lungs get brighter on average.
    assert sign * change[lungs].mean() > 20.0, change[lungs].mean()


def test_radedit_demo_removes_the_pneumothorax_of_the_sample_and_keeps_the_drain(tmp_path, radedit_home):
    # In this process (tests/cli_runner.py): what is checked is what the command writes, not the
    # process boundary, and a subprocess would spend ~12 s importing before it starts.
    from cli_runner import radedit

    out = tmp_path / "demo"
    proc = radedit("-q", "demo", "--output", out, "--steps", "20", "--device", "cpu", home=radedit_home,
                   env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "edited.png", "edited.png.json"]
    sidecar = json.loads((out / "edited.png.json").read_text())
    assert sidecar["settings"]["prompts"] == [PAPER_PROMPTS["no-pneumothorax"]]
    assert sidecar["masks"]["edit"].endswith("pneumothorax_mask.png") and sidecar["masks"]["keep"].endswith("drain_mask.png")
    source = np.asarray(Image.open(sample_dir() / "cxr.png")).astype(np.int64)
    edited = np.asarray(Image.open(out / "edited.png")).astype(np.int64)
    drain, ptx = _mask("drain"), _mask("pneumothorax")
    assert np.array_equal(edited[drain], source[drain]) and (edited[ptx & ~drain] != source[ptx & ~drain]).mean() > 0.5
    # the comparison picture: three named panels at the source's size, the prompt, the masks outlined
    picture = np.asarray(Image.open(out / "comparison.png").convert("RGB")).astype(int)
    assert picture.shape[0] >= source.shape[0] and picture.shape[1] >= 3 * source.shape[1]
    for colour in ((0xFF, 0xD0, 0x00), (0x00, 0xD0, 0xFF)):  # edit mask (yellow), keep mask (cyan)
        assert (np.abs(picture - np.array(colour)).sum(axis=2) < 40).sum() > 200, colour
