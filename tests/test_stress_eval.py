"""Stress tests, evaluation: the set format, the three predictor forms, MONAI metrics,
the bootstrap over sources, and evaluate_set on phantom sets with known answers."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from radedit_core.errors import ConfigError, InputError, OutputError, RadEditError
from radedit_core.imaging.image import SourceImage
from radedit_core.imaging.io import read_image
from radedit_core.stress.evaluate import PARTIAL, evaluate_set
from radedit_core.stress.metrics import (
    ClassificationTable,
    Outcomes,
    SourceBootstrap,
    auroc,
    classification_group,
    confusion_metric,
    confusion_rows,
    iter_estimates,
    segmentation_scores,
    summarise,
)
from radedit_core.stress.predictors import (
    Predictor,
    PredictorSpec,
    load_entry_point,
    load_monai_bundle,
    load_torchscript,
    to_contract,
)
from radedit_core.stress.predictor_forms import load_predictor
from radedit_core.stress.stress_set import SET_JSON, read_stress_set, write_stress_set
from stress_sets import classification_set, segmentation_set
from stress_toy_models import (
    CLASSIFIER_SPEC,
    SEGMENTER_SPEC,
    DeviceShortcutClassifier,
    LungOpacityClassifier,
    ThresholdLungSegmenter,
)

TESTS = Path(__file__).parent
RESAMPLES = 300


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cls_set(tmp_path_factory) -> Path:
    return classification_set(tmp_path_factory.mktemp("stress") / "cls")


@pytest.fixture(scope="module")
def seg_set(tmp_path_factory) -> Path:
    return segmentation_set(tmp_path_factory.mktemp("stress") / "seg")


def _torchscript(folder: Path, module: torch.nn.Module, spec: dict, name: str = "model") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    torch.jit.script(module).save(str(path))
    (folder / f"{name}.json").write_text(json.dumps(spec))
    return path


def _bundle(folder: Path, module: torch.nn.Module, target: str, outputs: dict, extra_meta: dict | None = None,
            preprocessing: dict | None = None) -> Path:  # fmt: skip
    """A MONAI bundle in model-zoo layout whose network code lives in its scripts/ package."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "scripts").mkdir()
    (folder / "scripts" / "__init__.py").write_text("")
    shutil.copy(TESTS / "stress_toy_models.py", folder / "scripts" / "toy_models.py")
    meta = {
        "version": "0.1.0",
        "monai_version": "1.4.0",
        "pytorch_version": "2.3.0",
        "numpy_version": "1.26.0",
        "name": "toy",
        "task": "phantom stress test",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "CR", "num_channels": 1,
                                 "spatial_shape": [64, 64], "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": False, "channel_def": {"0": "image"}}},
            "outputs": {"pred": outputs},
        },
        **(extra_meta or {}),
    }  # fmt: skip
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta))
    config = {"imports": ["$import torch"], "network_def": {"_target_": f"scripts.toy_models.{target}"}}
    if preprocessing is not None:
        config["preprocessing"] = preprocessing
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    torch.save(module.state_dict(), folder / "models" / "model.pt")
    return folder


def _images(set_dir: Path) -> list[SourceImage]:
    return [read_image(r.image) for r in read_stress_set(set_dir).accepted]


def _direct(module: torch.nn.Module, spec: dict, images: list[SourceImage], transform=None) -> np.ndarray:
    """The model called by hand on the documented contract."""
    s = PredictorSpec.from_mapping(spec, "test")
    x = [to_contract(im, s) for im in images]
    if transform is not None:
        x = [transform(t) for t in x]
    with torch.no_grad():
        return torch.sigmoid(module.eval()(torch.stack(x))).numpy()


# -- the set format ---------------------------------------------------------------------
def test_set_round_trip_normalises_labels_and_writes_the_manifest(cls_set, tmp_path):
    s = read_stress_set(cls_set)
    assert s.task == "classification" and s.classes == ["opacity"] and s.subgroups == ["site"]
    assert len(s.rows) == 21 and len(s.rejected) == 1 and s.rejected[0].reason.startswith("editing score")
    edit = s.row("case00-no-opacity-g5")
    assert (edit.kind, edit.source, edit.recipe, edit.labels) == ("synthetic", "case00", "remove-opacity", {"opacity": 0})
    assert s.row("case00").source == "case00" and s.row("case00").recipe is None
    assert edit.image == cls_set / "edits" / "case00-no-opacity-g5.png" and edit.regions["keep_mask"].is_file()
    stored = json.loads((cls_set / SET_JSON).read_text())["testing"]
    assert stored[0]["image"] == "real/case00.png"  # relative to the set folder
    with open(cls_set / "set.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == [r.id for r in s.rows]
    assert table[1]["label_opacity"] == "0" and json.loads(table[1]["locality"]) == {"ssim_outside_edit": 0.99}

    # every label form: class index, class name, {class: 0/1}
    image = cls_set / "real" / "case00.png"
    rows = [
        {"id": "a", "image": image, "kind": "real", "label": 1},
        {"id": "b", "image": image, "kind": "real", "label": "normal"},
        {"id": "c", "image": image, "kind": "real", "label": {"opacity": True}},
    ]
    out = write_stress_set(tmp_path / "forms", rows, task="classification", classes=["normal", "opacity"])
    assert [r.labels for r in out.rows] == [{"normal": 0, "opacity": 1}, {"normal": 1, "opacity": 0}, {"opacity": 1}]
    # outside the set folder: stored relative to it (a set moves with its sources), read back as the same file
    assert out.rows[0].image == image and not Path(out.rows[0].values["image"]).is_absolute()


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda rows: rows[0].update(label={"effusion": 1}), "row 1 (id case00): unknown label 'effusion'"),
        (lambda rows: rows[0].update(image="real/missing.png"), "row 1 (id case00): image 'real/missing.png' does not exist"),
        (lambda rows: rows[1].pop("source"), "row 2 (id case00-no-opacity-g5): a synthetic row needs 'source'"),
        (lambda rows: rows[1].update(id="case00"), "row 2 (id case00): id repeats row 1"),
        (lambda rows: rows[0].update(accepted=False), "a real image cannot be filtered out"),
        (lambda rows: rows[1].update(source="case00-no-opacity-g15"), "is a synthetic row; a source must be a real image"),
        (lambda rows: rows[1].update(label={"opacity": 2}), "label of class 'opacity' must be 0 or 1"),
        (lambda rows: rows[1].update(score="high"), "score must be a number"),
    ],
)
def test_bad_sets_stop_with_one_line_naming_the_row(cls_set, tmp_path, change, problem):
    rows = json.loads((cls_set / SET_JSON).read_text())["testing"]
    change(rows)
    folder = tmp_path / "bad"
    shutil.copytree(cls_set, folder)
    (folder / SET_JSON).unlink()
    with pytest.raises(InputError) as err:
        write_stress_set(folder, rows, task="classification", classes=["opacity"])
    message = str(err.value)
    assert problem in message and "\n" not in message and message.startswith(str(folder))
    assert not (folder / SET_JSON).exists()  # a set that does not check out is not written


def test_segmentation_set_needs_its_masks(seg_set, tmp_path):
    rows = json.loads((seg_set / SET_JSON).read_text())["testing"]
    folder = tmp_path / "seg"
    shutil.copytree(seg_set, folder)
    (folder / SET_JSON).unlink()
    missing = [dict(r) for r in rows]
    missing[1]["mask_lungs"] = "masks/nowhere.nii.gz"
    with pytest.raises(InputError, match=r"row 2 \(id lung00-add-consolidation\): mask 'masks/nowhere.nii.gz' of class 'lungs' does not exist"):
        write_stress_set(folder, missing, task="segmentation", classes=["lungs"])
    unknown = [dict(r) for r in rows]
    unknown[0]["mask_heart"] = unknown[0]["mask_lungs"]
    with pytest.raises(InputError, match="unknown label 'heart'"):
        write_stress_set(folder, unknown, task="segmentation", classes=["lungs"])
    none = [dict(r) for r in rows]
    del none[0]["mask_lungs"]
    with pytest.raises(InputError, match="missing mask"):
        write_stress_set(folder, none, task="segmentation", classes=["lungs"])


# -- predictors: the three forms ---------------------------------------------------------
def test_each_classifier_form_gives_the_direct_predictions(cls_set, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    images = _images(cls_set)
    weak = DeviceShortcutClassifier(gain=350.0, bias=-1.5)  # not the defaults: the weights must be loaded
    expected = _direct(weak, CLASSIFIER_SPEC, images)

    ts = load_torchscript(_torchscript(tmp_path / "ts", weak, CLASSIFIER_SPEC), device="cpu")
    bundle_dir = _bundle(
        tmp_path / "bundle", weak, "DeviceShortcutClassifier",
        {"type": "probabilities", "format": "classes", "num_channels": 1, "spatial_shape": [1], "dtype": "float32",
         "value_range": [], "is_patch_data": False, "channel_def": {"0": "opacity"}},
        extra_meta={"radedit_predictor": {"window": [0, 4095]}},
    )  # fmt: skip
    bundle = load_predictor(bundle_dir, device="cpu")
    entry = load_entry_point("stress_toy_models:weak_classifier", device="cpu")
    default = _direct(DeviceShortcutClassifier(), CLASSIFIER_SPEC, images)  # what the factory builds
    for predictor, want in ((ts, expected), (bundle, expected), (entry, default)):
        predictor.check(images[0])
        got = np.stack(predictor.predict(images))
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=predictor.description["form"])
    assert np.abs(expected - default).max() > 0.01  # so loading the saved weights is what makes them agree
    assert bundle.spec.to_dict() == {**PredictorSpec.from_mapping(CLASSIFIER_SPEC, "x").to_dict(), "name": "toy"}
    assert (ts.description["form"], bundle.description["form"], entry.description["form"]) == (
        "torchscript", "monai_bundle", "entry_point")  # fmt: skip
    assert expected.min() < 0.5 < expected.max()  # both decisions occur: the comparison is not vacuous

    # an entry point without an attached spec takes the sidecar, and its factory_kwargs
    sidecar = tmp_path / "strong.yaml"
    sidecar.write_text("task: classification\nclasses: [opacity]\ninput_size: [64, 64]\nwindow: [0, 4095]\n")
    strong = load_entry_point("stress_toy_models:strong_classifier", sidecar, device="cpu")
    np.testing.assert_allclose(np.stack(strong.predict(images)), _direct(LungOpacityClassifier(), CLASSIFIER_SPEC, images), atol=1e-6)
    sidecar.write_text(json.dumps({**CLASSIFIER_SPEC, "factory_kwargs": {"gain": 350.0}}))
    kw = load_entry_point("stress_toy_models:weak_classifier", sidecar, device="cpu")
    np.testing.assert_allclose(np.stack(kw.predict(images)), _direct(DeviceShortcutClassifier(gain=350.0), CLASSIFIER_SPEC, images), atol=1e-6)


def test_segmenter_bundle_spec_from_metadata_and_preprocessing(seg_set, tmp_path):
    from monai.transforms import ScaleIntensity

    images = _images(seg_set)[:4]
    seg = ThresholdLungSegmenter(gain=30.0, level=0.4)
    outputs = {"type": "image", "format": "classes", "num_channels": 1, "spatial_shape": [64, 64], "dtype": "float32",
               "value_range": [], "is_patch_data": False, "channel_def": {"0": "lungs"}}  # fmt: skip
    preprocessing = {"_target_": "Compose", "transforms": [
        {"_target_": "ScaleIntensityd", "keys": "image", "minv": 0.0, "maxv": 0.9}]}  # fmt: skip
    bundle = load_monai_bundle(_bundle(tmp_path / "seg", seg, "ThresholdLungSegmenter", outputs,
                                       preprocessing=preprocessing), device="cpu")  # fmt: skip
    assert (bundle.spec.task, bundle.spec.classes, bundle.spec.output, bundle.spec.activation) == (
        "segmentation", ("lungs",), "logits", "sigmoid")  # fmt: skip
    expected = _direct(seg, SEGMENTER_SPEC, images, ScaleIntensity(minv=0.0, maxv=0.9))
    got = np.stack(bundle.predict(images))
    assert got.shape == (4, 1, 64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    without = _direct(seg, SEGMENTER_SPEC, images)
    assert np.abs(without - expected).max() > 0.05  # the preprocessing was applied, not skipped
    # the TorchScript form of the same network, and back on the source grid
    ts = load_torchscript(_torchscript(tmp_path / "ts", seg, SEGMENTER_SPEC), device="cpu")
    probs = ts.predict(images[:1])[0]
    np.testing.assert_allclose(probs, _direct(seg, SEGMENTER_SPEC, images[:1])[0], atol=1e-6)
    masks = ts.to_source_grid(probs, images[0])
    assert masks.shape == (1, *images[0].shape) and masks.dtype == np.uint8 and 0 < masks.mean() < 0.5


def test_input_contract_polarity_intensity_and_size(tmp_path):
    from radedit_core.dicom import read_dicom_image
    from radedit_core.dicom.synthetic import make_cxr

    spec = PredictorSpec.from_mapping({"task": "classification", "classes": ["x"], "input_size": [48, 40]}, "t")
    mono1 = read_dicom_image(make_cxr("CR", rows=96, columns=80, photometric="MONOCHROME1", seed=2).save(tmp_path / "m1.dcm"))
    mono2 = read_dicom_image(make_cxr("CR", rows=96, columns=80, photometric="MONOCHROME2", seed=2).save(tmp_path / "m2.dcm"))
    a, b = to_contract(mono1, spec), to_contract(mono2, spec)
    assert a.shape == (1, 48, 40) and a.dtype == torch.float32 and type(a) is torch.Tensor
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)  # MONOCHROME1 is flipped: bright = dense
    assert a.min() >= 0 and a.max() <= 1
    # unit: the DICOM VOI window maps to [0, 1] (values beyond it clip)
    low, high = mono2.window
    full = PredictorSpec.from_mapping({"task": "classification", "classes": ["x"], "input_size": [96, 80]}, "t")
    expected = np.clip((mono2.array.astype(np.float64) - low) / (high - low), 0, 1)
    np.testing.assert_allclose(to_contract(mono2, full)[0].numpy(), expected, atol=1e-6)
    # stored: raw stored values (MONOCHROME2 polarity), only resized
    stored = PredictorSpec.from_mapping({"task": "classification", "classes": ["x"], "input_size": [96, 80], "intensity": "stored"}, "t")
    np.testing.assert_array_equal(to_contract(mono1, stored)[0].numpy(), mono1.array.astype(np.float32))
    # no window: the image's own minimum and maximum
    plain = SourceImage.from_array(np.arange(96 * 80, dtype=np.uint16).reshape(96, 80) + 100)
    x = to_contract(plain, full)[0].numpy()
    assert x.min() == 0.0 and x.max() == 1.0


class _Wrong(torch.nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.kind == "shape":
            return torch.zeros(b, 3)
        if self.kind == "nan":
            return torch.full((b, 1), float("nan"))
        return torch.full((b, 1), 3.0)  # "probabilities" above 1


@pytest.mark.parametrize(
    "kind, spec_change, problem",
    [
        ("shape", {}, "output has shape [1, 3], expected [1, 1]"),
        ("nan", {}, "output holds 1 NaN or infinite value(s)"),
        ("range", {"output": "probabilities"}, "declares output 'probabilities' but returned values in [3, 3]"),
    ],
)
def test_bad_predictor_outputs_stop_at_the_trial_pass(cls_set, tmp_path, kind, spec_change, problem):
    path = _torchscript(tmp_path / kind, _Wrong(kind), {**CLASSIFIER_SPEC, **spec_change})
    predictor = load_torchscript(path, device="cpu")
    out = tmp_path / "results"
    with pytest.raises(InputError) as err:
        evaluate_set(cls_set, predictor, "classification", out, n_resamples=RESAMPLES, progress=False)
    assert problem in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_nan_on_a_later_image_names_that_image(cls_set, tmp_path):
    detector = DeviceShortcutClassifier()

    def model(x: torch.Tensor) -> torch.Tensor:
        logits = detector(x)
        return torch.where(logits < 0, torch.full_like(logits, float("nan")), logits)  # NaN without a device

    predictor = Predictor(model, PredictorSpec.from_mapping(CLASSIFIER_SPEC, "t"), description={"ref": "flaky"})
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        evaluate_set(cls_set, predictor, None, out, n_resamples=RESAMPLES, progress=False)
    assert str(err.value) == f"{cls_set / 'real' / 'case01.png'}: predictor flaky: output holds 1 NaN or infinite value(s)"
    assert not (out / "results.json").exists() and not (out / "predictions.csv").exists()


@pytest.mark.parametrize(
    "sidecar, problem",
    [
        (None, "no sidecar model.json/.yaml next to it"),
        ({**CLASSIFIER_SPEC, "colour": "red"}, "unknown predictor key(s) ['colour']"),
        ({**CLASSIFIER_SPEC, "classes": ["a", "b"], "activation": None}, "needs 'activation'"),
        ({**CLASSIFIER_SPEC, "activation": "softmax"}, "softmax over one class is always 1"),
        ({**CLASSIFIER_SPEC, "input_size": [64]}, "input_size must be [H, W]"),
        ({k: v for k, v in CLASSIFIER_SPEC.items() if k != "classes"}, "missing predictor key(s) ['classes']"),
    ],
)
def test_bad_sidecars_are_config_errors(tmp_path, sidecar, problem):
    path = tmp_path / "model.pt"
    torch.jit.script(DeviceShortcutClassifier()).save(str(path))
    if sidecar is not None:
        (tmp_path / "model.json").write_text(json.dumps(sidecar))
    with pytest.raises(ConfigError) as err:
        load_torchscript(path, device="cpu")
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_predictor_not_found_and_bad_entry_points(tmp_path):
    with pytest.raises(InputError, match="predictor not found"):
        load_predictor(tmp_path / "nothing.pt")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        load_predictor("no_such_module_xyz:make")
    with pytest.raises(ConfigError, match="no predictor spec"):
        load_entry_point("stress_toy_models:strong_classifier")
    (tmp_path / "configs").mkdir()
    with pytest.raises(InputError, match="not a MONAI bundle"):
        load_predictor(tmp_path)


def test_batches_halve_when_memory_runs_out(cls_set):
    images = _images(cls_set)[:7]
    module = DeviceShortcutClassifier()
    sizes = []

    def model(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        if x.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return module(x)

    predictor = Predictor(model, PredictorSpec.from_mapping(CLASSIFIER_SPEC, "t"))
    predictor.set_batch_size(8)
    got = np.stack(predictor.predict(images))
    np.testing.assert_allclose(got, _direct(module, CLASSIFIER_SPEC, images), atol=1e-6)
    assert sizes == [7, 3, 3, 1] and predictor.batch_size == 3


# -- metrics -----------------------------------------------------------------------------
def test_monai_metrics_give_the_textbook_values():
    decisions = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 1, 0, 1, 0])
    counts = confusion_rows(decisions, labels).sum(axis=0)
    np.testing.assert_array_equal(counts, [2, 1, 2, 1])  # TP, FP, TN, FN
    assert confusion_metric("accuracy", counts) == pytest.approx(4 / 6)
    assert confusion_metric("sensitivity", counts) == pytest.approx(2 / 3)
    assert confusion_metric("specificity", counts) == pytest.approx(2 / 3)
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert np.isnan(auroc(np.array([0.1, 0.9]), np.array([1, 1])))

    truth = np.zeros((64, 64), bool)
    truth[10:30, 10:30] = True
    shifted = np.zeros_like(truth)
    shifted[10:30, 12:32] = True  # 2 columns to the right
    s = segmentation_scores(shifted, truth, spacing=(0.7, 0.5))
    assert s["dice"] == pytest.approx(2 * 18 * 20 / 800)
    assert s["hd95"] == pytest.approx(2 * 0.5)  # two pixels of 0.5 mm along the columns
    assert 0 < s["asd"] < 1.0
    empty = segmentation_scores(np.zeros_like(truth), truth)
    assert empty["dice"] == 0 and empty["empty"] == 1 and np.isnan(empty["hd95"])


def _outcomes(correct_real: np.ndarray, correct_edit: np.ndarray, copies: int) -> Outcomes:
    """Real rows (label 1) and ``copies`` identical edits per source (label 0)."""
    n = correct_real.size
    ids = [f"s{i}" for i in range(n)] + [f"s{i}-e{c}" for i in range(n) for c in range(copies)]
    sources = [f"s{i}" for i in range(n)] + [f"s{i}" for i in range(n) for c in range(copies)]
    kinds = np.array(["real"] * n + ["synthetic"] * n * copies)
    labels = np.r_[np.ones(n), np.zeros(n * copies)]
    right_edit = np.repeat(correct_edit, copies)
    decisions = np.r_[correct_real.astype(float), 1.0 - right_edit]
    probs = np.r_[np.where(correct_real, 0.9, 0.1), np.where(right_edit, 0.1, 0.9)]
    out = Outcomes("classification", ["c"], ids, kinds, sources, [None] * n + ["r"] * n * copies, {})
    out.classification["c"] = ClassificationTable(labels, probs, decisions)
    return out


def test_bootstrap_resamples_source_images_not_rows():
    rng = np.random.default_rng(1)
    n = 300
    correct = rng.random(n) < 0.5
    one = _outcomes(correct, correct, copies=1)
    three = _outcomes(correct, correct, copies=3)
    mask_one, mask_three = one.kinds == "synthetic", three.kinds == "synthetic"
    width = lambda entry: entry["metrics"]["accuracy"]["ci"][1] - entry["metrics"]["accuracy"]["ci"][0]  # noqa: E731
    by_source = SourceBootstrap(three.sources, n_resamples=1000, seed=0)
    weights = by_source.weights(np.array([0, n, n + 1, 1]))
    assert np.array_equal(weights[:, 0], weights[:, 1]) and np.array_equal(weights[:, 1], weights[:, 2])  # a source moves with its edits
    assert not np.array_equal(weights[:, 0], weights[:, 3])
    w1 = width(classification_group(one.classification["c"], mask_one, SourceBootstrap(one.sources, 1000, 0))[0])
    w3 = width(classification_group(three.classification["c"], mask_three, by_source)[0])
    by_row = SourceBootstrap(three.ids, n_resamples=1000, seed=0)  # as if every edit were independent
    w_rows = width(classification_group(three.classification["c"], mask_three, by_row)[0])
    # three identical edits per source carry the information of one: the interval must not shrink
    assert w3 == pytest.approx(w1, rel=0.15)
    assert w3 / w_rows > 1.4
    # and it has the width of the textbook interval for a proportion: 2 * 1.96 * sqrt(p (1 - p) / n)
    p = correct.mean()
    assert w1 == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / n), rel=0.15)


def test_paired_differences_and_flip_rates_are_exact_on_known_pairs():
    correct_real = np.array([True] * 8 + [False] * 2)
    correct_edit = np.array([True] * 3 + [False] * 7)
    out = _outcomes(correct_real, correct_edit, copies=2)
    result = summarise(out, SourceBootstrap(out.sources, n_resamples=RESAMPLES, seed=0))
    groups = {g["group"]: g for g in result["groups"]["c"]}
    real, edits = groups["real"], groups["recipe:r"]
    assert real["metrics"]["accuracy"]["value"] == pytest.approx(0.8)
    assert edits["metrics"]["accuracy"]["value"] == pytest.approx(0.3)
    assert edits["delta_vs_real"]["accuracy"]["value"] == pytest.approx(-0.5)
    lo, hi = edits["delta_vs_real"]["accuracy"]["ci"]
    assert lo <= -0.5 <= hi < 0
    # decisions: real says 1 where correct, edit says 1 where wrong; flip where those differ
    real_says = correct_real.astype(int)
    edit_says = 1 - correct_edit.astype(int)
    assert edits["flip_rate"]["value"] == pytest.approx(np.mean(real_says != edit_says))
    assert edits["flip_rate"]["pairs"] == 20
    assert "sensitivity" not in edits["metrics"] and "auroc" not in edits["metrics"]  # one class only
    assert groups["pooled"]["metrics"]["auroc"]["value"] == pytest.approx(
        auroc(out.classification["c"].probabilities, out.classification["c"].labels))
    for path, est in iter_estimates(result):
        if est["ci"] is not None:
            assert est["ci"][0] <= est["value"] + 1e-9 and est["value"] - 1e-9 <= est["ci"][1], path


def test_the_paired_interval_is_newcombes_published_one_and_never_collapses():
    from radedit_core.stress.intervals import paired_difference

    def table(both, only_a, only_b, neither):
        a = np.r_[np.ones(both + only_a), np.zeros(only_b + neither)]
        b = np.r_[np.ones(both), np.zeros(only_a), np.ones(only_b), np.zeros(neither)]
        return paired_difference(a, b, np.arange(a.size), 0.95)

    # Cavo et al. 2012, as Fagerland, Lydersen & Laake's "Statistical analysis of contingency tables"
    # (ch. 8, R package contingencytables) computes it: -0.0621 (95% CI -0.1186 to -0.0046)
    cavo = table(59, 6, 16, 80)
    assert cavo["value"] == pytest.approx(-0.0621, abs=5e-5)
    assert cavo["ci"] == pytest.approx([-0.1186, -0.0046], abs=5e-5)
    # no discordant pair: the estimate is 0, its interval is not (the uncorrected phi of 1 gave [0, 0])
    for counts in ((25, 0, 0, 25), (49, 0, 0, 1), (50, 0, 0, 0)):
        lo, hi = table(*counts)["ci"]
        assert lo < 0 < hi, counts


# -- evaluate_set ------------------------------------------------------------------------
def _groups(results: dict, cls: str) -> dict:
    return {g["group"]: g for g in results["groups"][cls]}


def _strict_json(path: Path) -> dict:
    def no_constants(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=no_constants)


def test_weak_and_strong_classifiers_on_the_manifestation_shift(cls_set, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    weak = load_predictor("stress_toy_models:weak_classifier", device="cpu")
    ev = evaluate_set(cls_set, weak, "classification", tmp_path / "weak", n_resamples=RESAMPLES, progress=False)
    results = _strict_json(ev.results_path)
    g = _groups(results, "opacity")
    assert [k for k in g] == ["real", "recipe:remove-opacity", "pooled"]
    real, synthetic = g["real"], g["recipe:remove-opacity"]
    assert (real["n"], real["n_positive"], synthetic["n"]) == (10, 5, 10)
    for name in ("accuracy", "sensitivity", "specificity", "auroc"):
        assert real["metrics"][name]["value"] == 1.0, name  # the shortcut works on the biased real set
    assert synthetic["metrics"]["accuracy"]["value"] == 0.0  # every edit keeps the device: all wrong
    assert synthetic["delta_vs_real"]["accuracy"]["value"] == -1.0
    assert synthetic["flip_rate"]["value"] == 0.0  # the prediction never moves with the finding
    assert synthetic["delta_vs_sources"]["accuracy"]["value"] == -1.0
    assert (results["set"]["rejected"], results["set"]["sources"], results["qc"]["reasons"]) == (
        1, 10, {"editing score 0.12 < 0.2": 1})  # fmt: skip
    assert results["qc"]["score_threshold"] == 0.2 and len(results["qc"]["scores"]) == 11
    assert results["predictor"]["form"] == "entry_point" and results["provenance"]["packages"]["monai"]
    with open(ev.predictions_path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 20 and {"probability_opacity", "prediction_opacity", "site"} <= set(table[0])

    strong = load_entry_point("stress_toy_models:strong_classifier", _sidecar(tmp_path), device="cpu")
    ev = evaluate_set(cls_set, strong, "auto", tmp_path / "strong", n_resamples=RESAMPLES, progress=False)
    results = ev.results
    g = _groups(results, "opacity")
    assert g["real"]["metrics"]["accuracy"]["value"] == 1.0
    assert g["recipe:remove-opacity"]["metrics"]["accuracy"]["value"] == 0.5  # right at guidance 15 only
    (curve,) = results["dose_response"]
    assert (curve["recipe"], curve["parameter"]) == ("remove-opacity", "guidance")
    points = {p["value"]: p for p in curve["points"]}
    assert points[5.0]["metrics"]["accuracy"]["value"] == 0.0 and points[15.0]["metrics"]["accuracy"]["value"] == 1.0
    assert points[5.0]["flip_rate"]["value"] == 0.0 and points[15.0]["flip_rate"]["value"] == 1.0
    sites = {(r["value"], r["kind"]): r for r in results["subgroups"]["opacity"]["site"]}
    assert sites[("A", "real")]["n"] == 5 and sites[("A", "real")]["metrics"]["accuracy"]["value"] == 1.0
    assert sites[("B", "synthetic")]["n"] == f"<{5}" and sites[("B", "synthetic")]["suppressed"]


def _sidecar(tmp_path: Path) -> Path:
    path = tmp_path / "strong.json"
    path.write_text(json.dumps({**CLASSIFIER_SPEC, "name": "strong (lung patch)"}))
    return path


def test_segmentation_against_the_original_masks(seg_set, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    predictor = load_predictor("stress_toy_models:lung_segmenter", device="cpu")
    ev = evaluate_set(seg_set, predictor, "segmentation", tmp_path / "seg", n_resamples=RESAMPLES, progress=False)
    results = _strict_json(ev.results_path)
    g = _groups(results, "lungs")
    real, consolidation, edema = g["real"], g["recipe:add-consolidation"], g["recipe:add-edema"]
    assert results["evaluation"]["distance_unit"] == "mm"
    assert real["metrics"]["dice"]["value"] > 0.95 and real["empty_predictions"] == 0
    assert consolidation["metrics"]["dice"]["value"] < real["metrics"]["dice"]["value"] - 0.03
    assert consolidation["delta_vs_real"]["dice"]["ci"][1] < 0  # the drop is beyond the bootstrap noise
    assert consolidation["delta_vs_real"]["hd95"]["value"] > 0
    assert consolidation["dice_change"]["pairs"] == 6 and consolidation["dice_change"]["value"] < -0.03
    # edema (a slight haze) costs less than consolidation, as in the paper's Table 3
    assert consolidation["metrics"]["dice"]["value"] < edema["metrics"]["dice"]["value"] < real["metrics"]["dice"]["value"]
    # HD95 in mm: the real images' boundary errors are sub-pixel to a few pixels of 0.5 mm
    assert 0 < real["metrics"]["hd95"]["value"] < 3.0
    masks = np.load(ev.output / "masks" / "lung00-add-consolidation.npz")
    assert masks["masks"].shape == (1, 96, 80) and list(masks["classes"]) == ["lungs"]
    assert set(results["subgroups"]["lungs"]) == {"sex"}


def test_an_interrupted_evaluation_resumes(cls_set, tmp_path):
    spec = PredictorSpec.from_mapping(CLASSIFIER_SPEC, "t")
    module = LungOpacityClassifier()
    seen: list[int] = []

    def failing(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        if sum(seen) > 9:  # trial pass (1) and the first batch of 8, then the power goes
            raise KeyboardInterrupt
        return module(x)

    predictor = Predictor(failing, spec, description={"form": "test", "ref": "lung patch"})
    predictor.set_batch_size(8)
    out = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):
        evaluate_set(cls_set, predictor, None, out, n_resamples=RESAMPLES, progress=False)
    assert not (out / "results.json").exists() and (out / PARTIAL).is_file()

    again = Predictor(module, spec, description={"form": "test", "ref": "lung patch"})
    ev = evaluate_set(cls_set, again, None, out, n_resamples=RESAMPLES, progress=False)
    assert (ev.reused, ev.evaluated) == (8, 12) and not (out / PARTIAL).exists()
    fresh = evaluate_set(cls_set, again, None, tmp_path / "fresh", n_resamples=RESAMPLES, progress=False)
    assert ev.results["groups"] == fresh.results["groups"]
    assert (out / "predictions.csv").read_text() == (tmp_path / "fresh" / "predictions.csv").read_text()
    with pytest.raises(OutputError, match="already exists"):
        evaluate_set(cls_set, again, None, out, n_resamples=RESAMPLES, progress=False)


def _cli(argv: list[str]) -> int:
    from radedit_core.stress.commands import add_stress_parsers

    parser = argparse.ArgumentParser(prog="radedit stress")
    add_stress_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_helpers_evaluate_and_stop_on_bad_input(cls_set, seg_set, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(TESTS))
    ts = _torchscript(tmp_path / "weak", DeviceShortcutClassifier(), CLASSIFIER_SPEC)
    out = tmp_path / "cli"
    assert _cli(["evaluate", "--set", str(cls_set), "--predictor", str(ts), "--output", str(out),
                 "--resamples", "200", "--device", "cpu", "--batch-size", "4", "--report", "--no-images"]) == 0  # fmt: skip
    assert capsys.readouterr().out.split() == [str(out / "results.json"), str(out / "report.html")]
    assert json.loads((out / "results.json").read_text())["predictor"]["batch_size"] == 4
    assert "around the edit region" not in (out / "report.html").read_text()
    assert _cli(["report", "--results", str(out), "--output", str(tmp_path / "r.html"), "--gallery-size", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text().count('alt="edited, around the edit region"') == 1
    # bad input: one line, the project's exit code, nothing written
    cases = [
        (["--set", str(seg_set), "--predictor", str(ts)], ConfigError, "a classification predictor cannot be evaluated on the segmentation set"),
        (["--set", str(cls_set), "--predictor", "stress_toy_models:lung_segmenter"], ConfigError, "segmentation predictor"),
        (["--set", str(tmp_path / "nowhere"), "--predictor", str(ts)], InputError, "stress-test set not found"),
        (["--set", str(cls_set), "--predictor", str(ts), "--batch-size", "0"], ConfigError, "--batch-size 0"),
        (["--set", str(cls_set), "--predictor", str(ts), "--task", "segmentation"], ConfigError, "--task segmentation"),
    ]  # fmt: skip
    for k, (argv, error, problem) in enumerate(cases):
        target = tmp_path / f"bad{k}"
        with pytest.raises(RadEditError) as err:
            _cli(["evaluate", *argv, "--output", str(target), "--resamples", "200", "--device", "cpu"])
        assert isinstance(err.value, error) and problem in str(err.value) and "\n" not in str(err.value)
        assert err.value.exit_code == 2 and not target.exists()


def test_unknown_label_for_the_predictor_stops_before_predicting(cls_set, tmp_path):
    spec = {**CLASSIFIER_SPEC, "classes": ["pneumothorax"]}
    calls = []
    predictor = Predictor(lambda x: calls.append(x) or torch.zeros(x.shape[0], 1), PredictorSpec.from_mapping(spec, "t"),
                          description={"ref": "ptx"})  # fmt: skip
    with pytest.raises(InputError, match=r"set.json: unknown label 'opacity': the predictor ptx has classes \['pneumothorax'\]"):
        evaluate_set(cls_set, predictor, None, tmp_path / "out", n_resamples=RESAMPLES, progress=False)
    assert calls == [] and not (tmp_path / "out").exists()
