"""The training workflow (``radedit_core.training``) on a tiny phantom datalist, on the CPU.

Runs use the demo model's VAE and text encoder and a very small UNet trained
from scratch (8 x 8 latents, 64 x 64 model images), a handful of steps, one
intra-op thread (float sums split over another number of threads round
differently, and the comparisons below are exact or near it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from radedit_core.errors import ConfigError, InputError, OutputError
from radedit_core.synthetic import chest_phantom, quantise
from radedit_core.training import Trainer, TrainSettings, add_train_arguments, options_from_args, train_from_mapping

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "monai_bundle"
TRAIN_CONFIG = BUNDLE / "configs" / "train.json"

#: The tiny architecture (radedit_core.models.tiny) cut down to two levels on 8 x 8 latents.
SMALL_UNET = {
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 32], "attention_head_dim": [8, 8], "norm_num_groups": 8,
}  # fmt: skip
REPORTS = ["No acute cardiopulmonary process.", "Left pectoral pacemaker in place.", "Small left pleural effusion."]


# One torch thread for the whole module (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A phantom-world-style datalist: 8 training and 4 validation rows (PNG 16/8-bit and one DICOM)."""
    from radedit_core.dicom.synthetic import make_cxr

    folder = tmp_path_factory.mktemp("phantoms")
    (folder / "images").mkdir()
    rows = []
    for i in range(12):
        phantom = chest_phantom(72 + 4 * (i % 3), 68, seed=i, pacemaker=i % 3 == 1)
        name = f"images/p{i}.png"
        bits = 8 if i == 9 else 12  # one 8-bit PNG
        Image.fromarray(quantise(phantom.image, bits, np.uint8 if bits == 8 else np.uint16)).save(folder / name)
        rows.append({"id": f"p{i}", "image": name, "report": REPORTS[i % 3], "site": "a", "effusion": int(i % 3 == 2),
                     "mask_lungs": name})  # fmt: skip
    # a DICOM CR (MONOCHROME1, VOI window) in the validation list
    make_cxr("CR", rows=80, columns=72, photometric="MONOCHROME1", seed=20).save(folder / "images" / "cr.dcm")
    rows[11] = dict(rows[11], image="images/cr.dcm", id="cr")
    (folder / "datalist.json").write_text(json.dumps({"training": rows[:8], "validation": rows[8:], "testing": []}))
    return folder / "datalist.json"


def options(data: Path, out: Path, **changes) -> dict:
    base = dict(
        datalist=str(data), output_dir=str(out), unet_config=SMALL_UNET, batch_size=2, max_train_steps=7,
        learning_rate=1e-3, lr_scheduler="cosine", lr_warmup_steps=2, ema_decay=0.9, checkpointing_steps=2,
        checkpoints_total_limit=2, validation_timesteps=4, sample_steps=4, num_sample_images=2, log_every=1,
        progress=False, device="cpu",
    )  # fmt: skip
    return {**base, **changes}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(next(path.glob("*.safetensors")))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def records(run: Path, event: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


@pytest.fixture(scope="module")
def feature_extractor(tmp_path_factory) -> Path:
    """A TorchScript feature extractor: each image's mean and standard deviation."""

    class MeanStd(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return torch.stack([flat.mean(dim=1), flat.std(dim=1)], dim=1)

    path = tmp_path_factory.mktemp("fid") / "features.pt"
    torch.jit.save(torch.jit.script(MeanStd()), str(path))
    return path


@pytest.fixture(scope="module")
def uninterrupted(data, feature_extractor, tmp_path_factory, radedit_home):
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    result = train_from_mapping(options(data, out, fid_feature_extractor=str(feature_extractor), fid_num_images=4))
    return out, result


# -- settings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learing_rate": 1e-4}, "unknown training option 'learing_rate' (did you mean 'learning_rate'?)"),
        ({"learning_rate": float("nan")}, "learning_rate: must be a finite number > 0, got nan"),
        ({"max_grad_norm": "inf"}, "max_grad_norm: must be a finite number"),
        ({"learning_rate": 0}, "learning_rate: must be a finite number > 0, got 0.0"),
        ({"caption_dropout": 1.5}, "caption_dropout: must be a finite number in [0, 1], got 1.5"),
        ({"batch_size": 0}, "batch_size: must be an integer >= 1, got 0"),
        ({"max_train_steps": "ten"}, "max_train_steps: expected an integer, got 'ten'"),
        ({"max_train_steps": 2.5}, "max_train_steps: expected an integer, got 2.5"),
        ({"use_ema": "maybe"}, "use_ema: expected true or false, got 'maybe'"),
        ({"caption_sentence_shuffle": "often"}, "caption_sentence_shuffle: expected true or false, got 'often'"),
        ({"stage": "text"}, "stage: must be one of unet, vae, got 'text'"),
        ({"lr_scheduler": "exponential"}, "lr_scheduler: must be one of constant, constant_with_warmup"),
        ({"cache_latents": True}, "cache_latents: a cached latent cannot be re-sampled"),
        ({"datalist": None}, "datalist: a training datalist is required"),
        ({"unet_config": "/nonexistent/unet"}, "unet_config: /nonexistent/unet does not exist"),
        ({"fid_feature_extractor": "/nonexistent.pt"}, "fid_feature_extractor: /nonexistent.pt is not a file"),
        ({"resume": "sometimes"}, "resume: 'sometimes' is neither 'auto', 'never' nor a checkpoint folder"),
        ({"validation_split": "training"}, "validation_split: the validation list must differ"),
    ],
)
def test_bad_settings_are_one_line_config_errors_before_any_model_loads_or_output_exists(
    data, tmp_path, monkeypatch, change, message
):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("radedit_core.training.engine.load_start_components", no_loading)
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        train_from_mapping(options(data, out, **change))
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_data_and_output_folders_fail_before_any_model_loads(data, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("radedit_core.training.engine.load_start_components", no_loading)
    listing = json.loads(data.read_text())
    for row in listing["training"] + listing["validation"]:
        row["image"] = str(data.parent / row["image"])
    listing["training"][3]["image"] = "images/missing.png"  # relative to the datalist's folder
    del listing["validation"][0]["report"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(listing))
    with pytest.raises(InputError, match=r"'training' row 4 \(id p3\): image file .*missing.png does not exist"):
        train_from_mapping(options(bad, tmp_path / "a"))
    listing["training"][3]["image"] = str(data.parent / "images" / "p3.png")
    bad.write_text(json.dumps(listing))
    with pytest.raises(InputError, match=r"'validation' row 1 \(id p8\): 'report' must be a text, got None"):
        train_from_mapping(options(bad, tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"global batch \(1 rank\(s\) x batch_size 16 x .* = 16\) is larger than the 8"):
        train_from_mapping(options(data, tmp_path / "a", batch_size=16))
    finished = tmp_path / "finished"  # a finished run: its settings record and model/
    (finished / "model").mkdir(parents=True)
    (finished / "train_settings.json").write_text(json.dumps({"tool": "radedit_core", "settings": {}}))
    with pytest.raises(OutputError, match="already holds a trained model"):
        train_from_mapping(options(data, finished))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "finished"]


def test_reports_are_read_as_written_never_as_paths(data, caplog):
    """MONAI's datalist loader joins any string naming something beside the datalist to its folder;
    a report is text: "" stays "" and "images" stays "images".  Empty reports are said (they train
    unconditionally); a split with nothing but empty reports is an error."""
    from radedit_core.training.data import read_training_datalist

    listing = json.loads(data.read_text())
    listing["training"][0]["report"], listing["training"][1]["report"] = "", "images"
    odd = data.parent / "odd-reports.json"
    odd.write_text(json.dumps(listing))
    try:
        with caplog.at_level(logging.WARNING, logger="radedit"):
            rows = read_training_datalist(odd).training
        for row in listing["training"]:
            row["report"] = " "
        odd.write_text(json.dumps(listing))
        with pytest.raises(InputError, match=r"odd-reports.json: every 'training' row's 'report' is empty"):
            read_training_datalist(odd)
        assert read_training_datalist(odd, text_key=None).training  # the VAE stage reads no text
    finally:
        odd.unlink()
    assert [r["text"] for r in rows[:3]] == ["", "images", REPORTS[2]]
    assert rows[0]["image"] == str((data.parent / "images" / "p0.png").resolve())
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        f"1 of {len(rows)} 'training' rows have an empty 'report'; they train as unconditional samples, as caption "
        "dropout's do"
    ]


def test_settings_from_a_command_line(data, tmp_path):
    import argparse

    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--datalist", str(data), "--output-dir", str(tmp_path), "--batch-size", "3",
                              "--no-use-ema", "--unet-config", json.dumps(SMALL_UNET), "--sample-prompts", "a", "b",
                              "--max-train-steps", "none"])  # fmt: skip
    s = TrainSettings.from_mapping(options_from_args(args))
    assert (s.batch_size, s.use_ema, s.unet_config, s.sample_prompts) == (3, False, SMALL_UNET, ["a", "b"])
    assert s.max_train_steps is None and s.learning_rate == 1e-4  # not given: the default


# -- data ----------------------------------------------------------------------------
def test_rows_are_model_space_images_exactly_as_the_editing_path_maps_them(data):
    from radedit_core.imaging.io import read_image
    from radedit_core.imaging.transform import ModelSpaceTransform
    from radedit_core.training.data import model_space_dataset, read_training_datalist

    rows = read_training_datalist(data)
    assert [r["index"] for r in rows.validation] == [0, 1, 2, 3]
    assert rows.validation[3]["image"] == str(data.parent / "images" / "cr.dcm") and rows.validation[3]["id"] == "cr"
    dataset = model_space_dataset(rows.validation, 64, cache_rate=1.0)
    for k in (1, 3):  # the 8-bit PNG and the MONOCHROME1 DICOM with its window
        image = read_image(rows.validation[k]["image"])
        expected = ModelSpaceTransform.fit(image, 64).image_to_model(image.array)[0]
        assert torch.equal(dataset[k]["image"], expected) and dataset[k]["text"] == REPORTS[(8 + k) % 3]
    assert image.format == "dicom" and image.window is not None


def test_ranks_together_see_the_same_samples_per_step_as_one_process():
    from radedit_core.training.data import GlobalBatchSampler

    one = GlobalBatchSampler(11, global_batch=4, seed=3)
    one.set_epoch(2)
    ranks = [GlobalBatchSampler(11, global_batch=4, seed=3, rank=r, world=2) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2, start_step=1)
    single = list(one)
    assert len(single) == 8 and len(set(single)) == 8  # 2 steps of 4, the remainder dropped
    shards = [list(s) for s in ranks]  # from step 1 on: each rank's batch of 2
    assert sorted(shards[0] + shards[1]) == sorted(single[4:8])
    one.set_epoch(3)
    assert list(one) != single  # each epoch its own order


def test_a_sample_gets_the_same_loss_in_any_batch(data, radedit_home):
    """The per-sample seeding that makes 2 ranks x b equal 1 process x 2b: a batch's mean loss is the
    mean of its samples' losses computed alone."""
    from radedit_core.training.components import load_start_components, noise_scheduler_from, scheduler_settings
    from radedit_core.training.data import collate, model_space_dataset, read_training_datalist
    from radedit_core.training.denoising import DenoisingObjective

    settings = TrainSettings.from_mapping(options(data, "unused", prediction_type="v_prediction", snr_gamma=5.0))
    components = load_start_components(settings, torch.device("cpu"))
    scheduler = noise_scheduler_from(scheduler_settings(components.spec.scheduler, "v_prediction"))
    objective = DenoisingObjective(components, settings, scheduler)
    dataset = model_space_dataset(read_training_datalist(data).training, 64, 1.0)
    items = [dataset[i] for i in (5, 2, 7)]
    with torch.no_grad():
        together = objective.loss(components.unet, collate(items), epoch=1)
        alone = torch.stack([objective.loss(components.unet, collate([it]), epoch=1) for it in items]).mean()
        other_epoch = objective.loss(components.unet, collate(items), epoch=2)
    assert float(abs(together - alone)) <= 1e-6 * float(alone)
    assert float(abs(together - other_epoch)) > 1e-3  # fresh draws every epoch

    # the fast paths: gradient checkpointing recomputes the same numbers; bf16 autocast stays within 0.5 %
    unet = components.unet.train().requires_grad_(True)

    def gradients() -> list[torch.Tensor]:
        unet.zero_grad(set_to_none=True)
        objective.loss(unet, collate(items), epoch=1).backward()
        return [p.grad.clone() for p in unet.parameters()]

    plain = gradients()
    unet.enable_gradient_checkpointing()
    assert all(torch.equal(a, b) for a, b in zip(plain, gradients(), strict=True))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = objective.loss(unet, collate(items), epoch=1)
    assert bf16.dtype == torch.float32 and float(abs(bf16 - together)) <= 5e-3 * float(together)


def test_sentence_shuffle_reorders_only_the_captions_sentences(data, radedit_home):
    """The paper's caption recipe (App. 0.D): sentences shuffled per sample; every other draw stays as it was."""
    from radedit_core.training.captions import sentence_order, split_sentences, training_caption
    from radedit_core.training.components import load_start_components, noise_scheduler_from, scheduler_settings
    from radedit_core.training.data import collate, model_space_dataset, read_training_datalist
    from radedit_core.training.denoising import DenoisingObjective

    text = "Large right pneumothorax. Right chest drain in place.  ECG leads overlie the chest."
    assert split_sentences(text) == ["Large right pneumothorax.", "Right chest drain in place.", "ECG leads overlie the chest."]
    assert training_caption(text, False, True, [2, 0, 1]) == (
        "ECG leads overlie the chest. Large right pneumothorax. Right chest drain in place"
    )
    assert training_caption(text, True, False, [2, 0, 1]) == "" and training_caption("No pneumothorax.", False, True) == "No pneumothorax"
    with pytest.raises(ValueError, match="not a permutation of the 3 sentence"):
        training_caption(text, False, False, [0, 0, 1])
    generator = torch.Generator().manual_seed(0)
    assert len({tuple(sentence_order(text, generator)) for _ in range(300)}) == 6
    # numbered impressions keep their markers; a sentence typed without its period gains one when moved
    assert split_sentences("1. Small left pneumothorax. 2. No edema?") == ["1. Small left pneumothorax.", "2. No edema?"]
    assert training_caption("No edema. No pneumothorax", False, False, [1, 0]) == "No pneumothorax. No edema."
    # a report without any sentence is what it was ("" once stripped), whatever the order drawn
    assert sentence_order("   ", generator) == [0] and training_caption("   ", False, True, [0]) == ""

    def objective(shuffle: bool) -> DenoisingObjective:
        settings = TrainSettings.from_mapping(options(data, "unused", caption_sentence_shuffle=shuffle))
        components = load_start_components(settings, torch.device("cpu"))
        scheduler = noise_scheduler_from(scheduler_settings(components.spec.scheduler, "epsilon"))
        return DenoisingObjective(components, settings, scheduler)

    plain, shuffled = objective(False), objective(True)
    dataset = model_space_dataset(read_training_datalist(data).training, 64, 1.0)
    items = [dataset[i] for i in (5, 2, 7)]
    with torch.no_grad():
        # One-sentence reports: the same loss to the bit (timesteps, dropouts and noise drawn as before).
        assert torch.equal(plain.loss(plain.unet, collate(items), 1), shuffled.loss(shuffled.unet, collate(items), 1))
        longer = [dict(it, text=text) for it in items]
        together = shuffled.loss(shuffled.unet, collate(longer), 1)
        alone = torch.stack([shuffled.loss(shuffled.unet, collate([it]), 1) for it in longer]).mean()
        assert float(abs(together - alone)) <= 1e-6 * float(alone)  # per-sample draws, as every other draw
        assert not torch.equal(together, plain.loss(plain.unet, collate(longer), 1))


# -- training ------------------------------------------------------------------------
def test_gradient_accumulation_trains_like_the_whole_batch_at_once(data, tmp_path, radedit_home):
    """2 micro-batches of 2 and one batch of 4: the same samples per step, the same mean loss.
    Tolerance as for two ranks (see the gloo test): losses 1e-5 relative, weights 1e-4."""
    runs = {}
    for name, batch, accumulation in (("whole", 4, 1), ("accumulated", 2, 2)):
        out = tmp_path / name
        train_from_mapping(options(data, out, batch_size=batch, gradient_accumulation_steps=accumulation,
                                   max_train_steps=2, lr_warmup_steps=0, sample_epochs=0))  # fmt: skip
        runs[name] = out
    whole, accumulated = (records(runs[n], "train") for n in ("whole", "accumulated"))
    assert [r["loss"] for r in whole] == pytest.approx([r["loss"] for r in accumulated], rel=1e-5)
    part = "checkpoints/checkpoint-0000002/unet"
    assert max_difference(weights(runs["whole"] / part), weights(runs["accumulated"] / part)) <= 1e-4


def test_a_few_steps_write_a_model_folder_that_loads_and_edits(uninterrupted, tiny_model_dir):
    from radedit_core.imaging.image import SourceImage
    from radedit_core.models.loading import load_components
    from radedit_core.workflow import EditSettings, RadEditor

    out, result = uninterrupted
    model = out / "model"
    assert result.model_dir == model and result.global_step == 7
    assert sorted(p.name for p in model.iterdir()) == sorted(
        ["unet", "vae", "text_encoder", "tokenizer", "scheduler", "radedit_model.json", "training.json", "README.md",
         ".radedit-output"]  # the marker: --overwrite replaces only folders radedit wrote
    )
    # the frozen components are the start model's, bit for bit; the UNet is the new architecture
    assert max_difference(weights(model / "vae"), weights(tiny_model_dir / "vae")) == 0.0
    assert max_difference(weights(model / "text_encoder"), weights(tiny_model_dir / "text_encoder")) == 0.0
    components = load_components(str(model), device="cpu", dtype="float32")
    assert list(components.unet.config.block_out_channels) == [16, 32] and components.unet.config.sample_size == 8
    assert components.spec.name == "radedit-demo-unet" and components.scheduler.config.prediction_type == "epsilon"
    # the EMA weights were saved, not the last iterate (checkpoint-7 holds the raw ones)
    raw = weights(out / "checkpoints" / "checkpoint-0000007" / "unet")
    assert max_difference(weights(model / "unet"), raw) > 1e-4

    editor = RadEditor(components)
    editor.set_progress(False)
    phantom = chest_phantom(90, 80, seed=5)
    source = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    edited = editor.edit(source, phantom.mask("left_lung"), None, EditSettings(prompts=[REPORTS[2]], steps=8))
    assert edited.image.array.shape == (90, 80) and edited.image.array.dtype == np.uint16
    assert edited.model_output.shape == (64, 64) and np.isfinite(edited.model_output).all()

    # the log: every step's loss, evaluations at the epoch ends (4 steps) and the end, FID from the extractor
    train = records(out, "train")
    assert [r["step"] for r in train] == list(range(1, 8)) and all(np.isfinite(r["loss"]) for r in train)
    assert [r["lr"] for r in train][:3] == [0.0, 5e-4, 1e-3]  # linear warm-up over 2 steps, then cosine
    evaluations = records(out, "evaluation")
    assert [(e["step"], e["epoch"]) for e in evaluations] == [(4, 1), (7, 1.75)]
    for e in evaluations:
        assert e["weights"] == "ema" and np.isfinite(e["val_loss"]) and e["fid"] >= 0.0 and e["fid_images"] == 4
        grid = np.asarray(Image.open(out / e["samples"]))
        assert grid.shape == (64, 2 * 64 + 2)  # two prompts side by side
    # the newest 2 checkpoints are kept
    assert [p.name for p in result.checkpoints] == ["checkpoint-0000006", "checkpoint-0000007"]
    readme = (model / "README.md").read_text()
    assert "7 optimizer steps, global batch 2" in readme and '"val_loss"' in readme


def test_a_resume_logs_the_loss_an_uninterrupted_run_logs_when_a_checkpoint_falls_inside_a_log_window(data, tmp_path):
    """log_every 3, checkpoints every 2 steps: the checkpoint at step 4 holds step 4's loss, not logged yet; a run
    resumed there logs the mean of steps 4-6 at step 6, as the uninterrupted run does (it logged 5-6 before)."""
    settings = dict(log_every=3)
    reference = tmp_path / "reference"
    train_from_mapping(options(data, reference, **settings))

    class Crash(Exception):
        pass

    def crash_at_step_5(info):
        if info.global_step == 5:
            raise Crash

    out = tmp_path / "interrupted"
    with pytest.raises(Crash):
        Trainer(options(data, out, **settings), [crash_at_step_5]).run()
    train_from_mapping(options(data, out, **settings))
    assert [r["step"] for r in records(out, "train")] == [3, 6, 7]
    assert (out / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
    history = json.loads((out / "model" / "training.json").read_text())
    assert "loss_window" not in json.dumps(history)


def test_resume_after_a_crash_equals_the_uninterrupted_run_bit_for_bit(data, uninterrupted, feature_extractor, tmp_path):
    reference, _ = uninterrupted
    out = tmp_path / "interrupted"
    settings = options(data, out, fid_feature_extractor=str(feature_extractor), fid_num_images=4)

    class Crash(Exception):
        pass

    def crash_at_step_5(info):
        if info.global_step == 5:
            raise Crash

    with pytest.raises(Crash):
        Trainer(settings, [crash_at_step_5]).run()
    assert not (out / "model").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-0000002", "checkpoint-0000004"]
    assert records(out, "train")[-1]["step"] == 5  # logged before the crash, dropped on resume

    result = train_from_mapping(settings)
    assert result.resumed_from == out / "checkpoints" / "checkpoint-0000004"
    for part in ("model/unet", "checkpoints/checkpoint-0000007/unet"):
        assert max_difference(weights(out / part), weights(reference / part)) == 0.0
    for name in ("optimizer.pt", "ema.pt", "lr_scheduler.pt", "rng.pt"):
        mine, theirs = (torch.load(root / "checkpoints/checkpoint-0000007" / name, weights_only=True)
                        for root in (out, reference))  # fmt: skip
        assert _same_state(mine, theirs), name
    assert (out / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()

    # a resume with other recipe settings is refused, naming them
    shutil.rmtree(out / "model")
    with pytest.raises(ConfigError, match=r"resume: .*checkpoint-0000007 was written with other training settings "
                                          r"\(learning_rate: 0\.001 -> 0\.002\)"):  # fmt: skip
        train_from_mapping({**settings, "learning_rate": 2e-3})

    # a checkpoint written before an option existed (its recipe lacks it) resumes while the option
    # keeps its default, which changes nothing, and is refused once it is set otherwise
    from radedit_core.training.checkpoint import check_resumable

    checkpoint = out / "checkpoints" / "checkpoint-0000007"
    state = json.loads((checkpoint / "state.json").read_text())
    del state["recipe"]["caption_sentence_shuffle"]
    (checkpoint / "state.json").write_text(json.dumps(state))
    current = TrainSettings.from_mapping(settings)
    assert check_resumable(checkpoint, current.recipe(), 2, current.recipe_defaults()).global_step == 7
    shuffled = TrainSettings.from_mapping({**settings, "caption_sentence_shuffle": True})
    with pytest.raises(ConfigError, match=r"\(caption_sentence_shuffle: False -> True\)"):
        check_resumable(checkpoint, shuffled.recipe(), 2, shuffled.recipe_defaults())


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    return a == b


def test_vae_stage_trains_the_vae_alone_and_folds_the_latent_normalisation(data, uninterrupted, tmp_path):
    start = uninterrupted[0] / "model"  # its small UNet makes 64 x 64 model images
    out = tmp_path / "vae"
    result = train_from_mapping(options(data, out, stage="vae", model=str(start), unet_config=None, vae_crop_size=32,
                                        max_train_steps=2, use_ema=False, latent_stats_images=8))  # fmt: skip
    model = result.model_dir
    assert max_difference(weights(model / "unet"), weights(start / "unet")) == 0.0
    assert max_difference(weights(model / "vae"), weights(start / "vae")) > 0.0
    evaluation = records(out, "evaluation")[-1]
    assert np.isfinite(evaluation["val_loss"]) and np.isfinite(evaluation["val_psnr_db"])
    assert len(result.metrics["latent_std_before_fold"]) == 4
    grid = np.asarray(Image.open(out / evaluation["samples"]))
    assert grid.shape == (2 * 64 + 2, 2 * 64 + 2)  # two rows: a validation image beside its reconstruction

    # each stage records (and compares on resume) the options it uses, not the other stage's
    recorded = json.loads((model / "training.json").read_text())["settings"]
    unet_only = {"caption_dropout", "caption_sentence_shuffle", "snr_gamma", "latent_sampling", "unet_config"}
    assert recorded["vae_crop_size"] == 32 and recorded["latent_stats_images"] == 8
    assert not unet_only & set(recorded)
    checkpoint = out / "checkpoints" / "checkpoint-0000002"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["recipe"]["vae_crop_size"] == 32 and not unet_only & set(state["recipe"])
    unet_recipe = TrainSettings.from_mapping(options(data, out)).recipe()
    assert unet_recipe["caption_dropout"] == 0.1 and "vae_kl_weight" not in unet_recipe
    # a VAE checkpoint written when every stage recorded every option still resumes
    from radedit_core.training.checkpoint import check_resumable

    state["recipe"].update(caption_dropout=0.3, snr_gamma=5.0)
    (checkpoint / "state.json").write_text(json.dumps(state))
    again = TrainSettings.from_mapping(options(data, out, stage="vae", model=str(start), unet_config=None,
                                               vae_crop_size=32, max_train_steps=2, use_ema=False,
                                               latent_stats_images=8))  # fmt: skip
    assert check_resumable(checkpoint, again.recipe(), 2, again.recipe_defaults()).global_step == 2


def test_folding_the_latent_normalisation_keeps_reconstructions_and_whitens_latents(components, model_inputs):
    import copy

    from radedit_core.training.autoencoder import fold_latent_normalisation, reconstruct
    from radedit_core.training.denoising import encode_latents

    vae = copy.deepcopy(components.vae)
    image = torch.nn.functional.interpolate(model_inputs[0], size=(128, 128), mode="area")
    images = torch.cat([image, image.flip(-1), image.flip(-2)])
    before = reconstruct(vae, images)
    fold_latent_normalisation(vae, images)
    z = encode_latents(vae, images).double()
    assert float(z.mean(dim=(0, 2, 3)).abs().max()) < 1e-4 and float((z.std(dim=(0, 2, 3)) - 1).abs().max()) < 1e-4
    assert float((reconstruct(vae, images) - before).abs().max()) < 1e-4


def test_mode_latents_are_those_the_editing_pipeline_encodes(components, edit_pipe, model_inputs):
    from radedit_core.training.denoising import encode_latents

    image = model_inputs[0]
    assert torch.equal(encode_latents(components.vae, image), edit_pipe.encode_image(image))


def test_fid_is_monai_frechet_distance_of_the_extractor_features(feature_extractor):
    from radedit_core.training.fid import features, frechet_distance, load_feature_extractor

    extractor = load_feature_extractor(str(feature_extractor), torch.device("cpu"))
    real = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = features(extractor, real)
    assert f.shape == (6, 2) and frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    # equal covariances: the distance is the squared distance of the means
    assert frechet_distance(f + torch.tensor([0.3, -0.4], dtype=f.dtype), f) == pytest.approx(0.25, rel=1e-6)


# -- bundle and ranks --------------------------------------------------------------------
def bundle_env(home: Path) -> dict[str, str]:
    return dict(os.environ, RADEDIT_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))  # fmt: skip


def bundle_command(*args, nproc: int = 0) -> list[str]:
    launcher = [sys.executable, "-m", "monai.bundle", "run", "train"]
    if nproc:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", "monai.bundle", "run", "train"]  # fmt: skip
    return [*launcher, *map(str, args)]


def finish(cmd: list[str], proc: subprocess.Popen, check: bool = True) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{stdout[-3000:]}\n{stderr[-6000:]}")
    return proc.returncode, stdout, stderr


def bundle_start(cmd: list[str], home: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=BUNDLE, env=bundle_env(home), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def bundle_args(data: Path, out: Path, unet_config: Path, batch: int) -> list:
    return ["--datalist", data, "--output_dir", out, "--unet_config", unet_config, "--batch_size", batch,
            "--max_train_steps", 4, "--lr_warmup_steps", 0, "--learning_rate", 1e-3, "--validation_timesteps", 4,
            "--sample_steps", 3, "--num_sample_images", 2, "--log_every", 1, "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def unet_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "config.json"
    path.write_text(json.dumps(SMALL_UNET))
    return path


@pytest.fixture(scope="module")
def bundle_runs(data, unet_config_file, tmp_path_factory, radedit_home):
    """``python -m monai.bundle run train ...`` with batch 4, and with a bad option, in this process
    (``cli_runner.python_m``: the command line as typed, without a process's ~12 s of imports; the bundle's
    own process is tested in test_bundle.py, the ranks below are processes)."""
    from cli_runner import python_m

    folder = tmp_path_factory.mktemp("bundle")
    env = {"RADEDIT_HOME": str(radedit_home), "PYTHONWARNINGS": "ignore"}
    python_m("monai.bundle", "run", "train", "--config_file", "configs/train.json",
             *bundle_args(data, folder / "one", unet_config_file, 4), cwd=BUNDLE, env=env, check=True)  # fmt: skip
    bad = python_m("monai.bundle", "run", "train", "--config_file", "configs/train.json", "--datalist", data,
                   "--output_dir", folder / "bad", "--caption_dropout", 2, cwd=BUNDLE, env=env)  # fmt: skip
    return folder, (bad.returncode, bad.stdout, bad.stderr)


def test_bundle_train_run_id_from_the_command_line(bundle_runs, data):
    from radedit_core.models.loading import load_components

    folder, (code, _, stderr) = bundle_runs
    out = folder / "one"
    assert load_components(str(out / "model"), device="cpu").unet.config.sample_size == 8
    assert [r["step"] for r in records(out, "train")] == [1, 2, 3, 4]
    settings = json.loads((out / "train_settings.json").read_text())["settings"]
    assert settings["batch_size"] == 4 and settings["datalist"] == str(data)
    # every settings field is a top-level id of the config, and nothing else is passed
    config = json.loads(TRAIN_CONFIG.read_text())
    assert set(config["train_settings"]) == {f for f in TrainSettings.__dataclass_fields__}
    # a bad option: one line, exit code 2, nothing written
    assert code == 2 and not (folder / "bad").exists() and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("radedit: error: ")]
    assert errors == ["radedit: error: caption_dropout: must be a finite number in [0, 1], got 2.0"]


@pytest.mark.slow
def test_two_gloo_ranks_with_batch_b_train_like_one_process_with_batch_2b(
    bundle_runs, data, unet_config_file, tmp_path, radedit_home
):
    """Stated tolerance: per-step losses, gradient norms and validation losses agree to 1e-5 relative;
    the weights after 4 AdamW steps of lr 1e-3 to 1e-4 absolute (a tenth of one step's largest update:
    Adam divides by the gradients' own size, so rounding-level gradient differences of parameters with
    near-zero gradients show up at that scale).  Measured: 2.7e-5."""
    one = bundle_runs[0] / "one"
    two = tmp_path / "two"
    configs = "['configs/train.json','configs/multi_gpu_train.json']"
    cmd = bundle_command("--config_file", configs, *bundle_args(data, two, unet_config_file, 2), nproc=2)
    finish(cmd, bundle_start(cmd, radedit_home))
    settings = json.loads((two / "train_settings.json").read_text())
    assert settings["world_size"] == 2 and settings["settings"]["batch_size"] == 2
    for a, b in zip(records(one, "train"), records(two, "train"), strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    for a, b in zip(records(one, "evaluation"), records(two, "evaluation"), strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    for part in ("model/unet", "checkpoints/checkpoint-0000004/unet"):
        assert max_difference(weights(one / part), weights(two / part)) <= 1e-4
    # the sample grids are drawn by rank 0 from the same weights and seeds
    grid_one, grid_two = (np.asarray(Image.open(d / "samples" / "step-0000004.png"), np.int16) for d in (one, two))
    assert np.abs(grid_one - grid_two).max() <= 2
