"""The classifiers researchers already have, as predictors: torchxrayvision, Hugging Face and timm.

No weights can be downloaded here, so each test builds the library's real classes with random weights,
saves them in the library's own layout (torchxrayvision's cache file, ``save_pretrained`` folders,
``timm.models.save_for_hf``), loads them through ``--predictor <library>:<model>``, checks the
preprocessing against the library's own transforms on the same image file, and evaluates a small set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from radedit_core.errors import ConfigError
from radedit_core.imaging.image import Geometry
from radedit_core.imaging.io import read_image, write_image
from radedit_core.stress.predictor_forms import load_predictor, predictor_form
from stress_sets import classification_set

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stress_set(tmp_path_factory):
    return classification_set(tmp_path_factory.mktemp("library_set") / "set", sources=4)


@pytest.fixture(scope="module")
def png8(tmp_path_factory) -> Path:
    """An 8-bit grey PNG, not square (the crops and resizes matter), with a full 0-255 range."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:150, 0:120]
    image = np.clip(40 + yy + 0.5 * xx + rng.normal(0, 12, yy.shape), 0, 255).astype(np.uint8)
    return write_image(tmp_path_factory.mktemp("png8") / "cxr.png", image, Geometry())


def _sidecar(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _evaluate(stress_set, predictor, out):
    from radedit_core.stress.evaluate import evaluate_set

    ev = evaluate_set(stress_set, predictor, output=out, n_resamples=100, progress=False)
    groups = {g["group"]: g["metrics"] for g in ev.results["groups"]["opacity"]}
    assert {"real", "recipe:remove-opacity"} <= set(groups)
    assert ev.results["predictor"]["form"] == predictor.description["form"]
    return ev


# -- naming ---------------------------------------------------------------------------------------
def test_library_forms_are_named_by_prefix_before_entry_points(tmp_path):
    assert predictor_form("torchxrayvision:densenet121-res224-all") == "torchxrayvision"
    assert predictor_form("huggingface:org/model") == "huggingface"
    assert predictor_form("timm:resnet10t") == "timm"
    assert predictor_form("stress_phantom_predictors:weak") == "entry_point"
    with pytest.raises(ConfigError, match="names no model after 'timm:'"):
        predictor_form("timm:")


@pytest.mark.parametrize(
    "ref, problem",
    [
        ("torchxrayvision:densenet121-res999", "unknown torchxrayvision weights; known: densenet121-res224-all"),
        ("huggingface:{tmp}/nothing-here", "no image classifier with its image processor"),
        ("timm:not_a_model_xyz", "not a folder and not a timm architecture"),
        ("timm:resnet10t", "an architecture needs the sidecar's checkpoint"),
    ],
)
def test_bad_library_predictors_are_one_line_errors_naming_the_predictor(tmp_path, ref, problem):
    ref = ref.format(tmp=tmp_path)
    with pytest.raises(ConfigError) as err:
        load_predictor(ref, device="cpu")
    assert str(err.value).startswith(ref) and problem in str(err.value) and "\n" not in str(err.value)


def test_a_missing_library_says_which_extra_installs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ConfigError, match=r'timm:resnet10t: timm is not installed \(pip install "radedit-core\[timm\]"\)'):
        load_predictor("timm:resnet10t", device="cpu")


def test_a_stress_config_resolves_a_library_folder_against_its_own_folder(tmp_path):
    from radedit_core.stress.run import load_stress_config

    (tmp_path / "models" / "vit").mkdir(parents=True)
    config = tmp_path / "stress.yaml"
    base = {"datalist": "d.json", "recipes": "r.yaml", "set": "set"}
    config.write_text(yaml.safe_dump({**base, "predictor": "huggingface:models/vit"}))
    assert load_stress_config(config)["predictor"] == f"huggingface:{tmp_path / 'models' / 'vit'}"
    config.write_text(yaml.safe_dump({**base, "predictor": "huggingface:org/model"}))  # a hub id stays
    assert load_stress_config(config)["predictor"] == "huggingface:org/model"


# -- torchxrayvision ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def xrv_cache(tmp_path_factory) -> Path:
    """DenseNet-121 and ResNet-50 with random weights, stored as torchxrayvision stores its downloads."""
    import torchvision
    import torchxrayvision as xrv

    folder = tmp_path_factory.mktemp("xrv_cache")
    torch.manual_seed(0)
    densenet = xrv.models.DenseNet(num_classes=18)
    for m in densenet.modules():  # random running statistics, so that batch norm is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
    url = xrv.models.model_urls["densenet121-res224-all"]["weights_url"]
    torch.save(densenet, folder / Path(url).name)  # the published file is a whole pickled model
    resnet = torchvision.models.resnet50(num_classes=18, weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    url = xrv.models.model_urls["resnet50-res512-all"]["weights_url"]
    torch.save(resnet.state_dict(), folder / Path(url).name)  # ... and this one a state dict
    return folder


def _xrv_reference(path: Path, maxval: int, resolution: int) -> np.ndarray:
    """torchxrayvision's README preprocessing of an image file."""
    import skimage.io
    import torchvision
    import torchxrayvision as xrv

    img = xrv.datasets.normalize(skimage.io.imread(path), maxval)[None, ...]
    transform = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(resolution)])
    return transform(img)


def test_torchxrayvision_densenet_preprocessing_classes_and_calibrated_outputs(xrv_cache, png8, stress_set, tmp_path):
    import torchxrayvision as xrv

    ref = "torchxrayvision:densenet121-res224-all"
    sidecar = _sidecar(tmp_path / "xrv.yaml", {"cache_dir": str(xrv_cache), "classes": {"opacity": "Lung Opacity"}})
    predictor = load_predictor(ref, sidecar, device="cpu")
    assert predictor.spec.classes == ("opacity",) and predictor.spec.input_size == (224, 224)
    assert predictor.description["calibrated_classes"] == ["Lung Opacity"] and predictor.spec.threshold == 0.5
    x = predictor.prepare(read_image(png8))
    expected = _xrv_reference(png8, 255, 224)
    assert x.shape == (1, 224, 224) and np.allclose(x.numpy(), expected, atol=1e-3)
    assert -1024 <= float(x.min()) < -500 and float(x.max()) > 500
    # the probability is torchxrayvision's own calibrated output (op_norm: 0.5 at the operating point)
    library = xrv.models.get_model("densenet121-res224-all", cache_dir=str(xrv_cache)).eval()
    with torch.no_grad():
        own = library(torch.from_numpy(expected)[None])[0, library.pathologies.index("Lung Opacity")]
    assert predictor.predict([read_image(png8)])[0][0] == pytest.approx(float(own), abs=1e-5)
    # every named pathology without a sidecar; a 16-bit file is normalised over its own bit depth
    everything = load_predictor(ref, _sidecar(tmp_path / "all.yaml", {"cache_dir": str(xrv_cache)}), device="cpu")
    assert everything.spec.classes == tuple(xrv.models.model_urls["densenet121-res224-all"]["labels"])
    real = next((stress_set / "real").glob("*.png"))
    assert np.allclose(everything.prepare(read_image(real)).numpy(), _xrv_reference(real, 65535, 224), atol=1e-3)
    _evaluate(stress_set, predictor, tmp_path / "results")


def test_torchxrayvision_resnet_at_512(xrv_cache, png8, tmp_path):
    sidecar = _sidecar(tmp_path / "xrv.yaml", {"cache_dir": str(xrv_cache), "classes": ["Pneumothorax", "Effusion"]})
    predictor = load_predictor("torchxrayvision:resnet50-res512-all", sidecar, device="cpu")
    assert predictor.spec.classes == ("Pneumothorax", "Effusion") and predictor.spec.input_size == (512, 512)
    image = read_image(png8)
    assert np.allclose(predictor.prepare(image).numpy(), _xrv_reference(png8, 255, 512), atol=1e-3)
    p = predictor.check(image)
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))


def test_torchxrayvision_weights_missing_from_the_cache_are_named_and_not_downloaded(tmp_path):
    sidecar = _sidecar(tmp_path / "xrv.yaml", {"cache_dir": str(tmp_path / "empty")})
    with pytest.raises(ConfigError) as err:
        load_predictor("torchxrayvision:densenet121-res224-all", sidecar, device="cpu")
    message = str(err.value)
    assert "weights file" in message and str(tmp_path / "empty") in message and "nothing is downloaded" in message
    assert not (tmp_path / "empty").exists()


def test_a_class_the_model_lacks_is_named(xrv_cache, tmp_path):
    sidecar = _sidecar(tmp_path / "xrv.yaml", {"cache_dir": str(xrv_cache), "classes": {"opacity": "Opacity"}})
    with pytest.raises(ConfigError, match="no class 'Opacity'; the model's classes are"):
        load_predictor("torchxrayvision:densenet121-res224-all", sidecar, device="cpu")


# -- Hugging Face -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    """A tiny ViT image classifier and its image processor, as save_pretrained writes them."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("hf") / "vit-cxr"
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, num_labels=2, id2label={0: "normal", 1: "opacity"},
                       label2id={"normal": 0, "opacity": 1})  # fmt: skip
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4, 0.4, 0.4], image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)
    return folder


def test_huggingface_classifier_with_its_image_processor(hf_folder, png8, stress_set, tmp_path, capsys):
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from radedit_core.cli import main

    ref = f"huggingface:{hf_folder}"
    predictor = load_predictor(ref, device="cpu")
    assert predictor.spec.classes == ("normal", "opacity") and predictor.spec.activation == "softmax"
    assert predictor.spec.input_size == (32, 32)
    processor = AutoImageProcessor.from_pretrained(hf_folder)
    expected = processor(images=Image.open(png8).convert("RGB"), return_tensors="pt")["pixel_values"]
    x = predictor.prepare(read_image(png8))
    assert torch.allclose(x, expected[0], atol=1e-5)
    model = AutoModelForImageClassification.from_pretrained(hf_folder).eval()
    with torch.no_grad():
        own = torch.softmax(model(pixel_values=expected).logits, dim=1)[0].numpy()
    assert np.allclose(predictor.predict([read_image(png8)])[0], own, atol=1e-5)
    # the command line, as a user names it
    code = main(["-q", "stress", "evaluate", "--set", str(stress_set), "--predictor", ref, "--output",
                 str(tmp_path / "cli"), "--device", "cpu", "--resamples", "100"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["predictor"]["form"] == "huggingface" and results["classes"] == ["opacity"]


# -- timm -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory) -> tuple[Path, Path]:
    """A small timm ResNet saved with timm.models.save_for_hf, and its state dict as a plain checkpoint."""
    import timm

    folder = tmp_path_factory.mktemp("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=2)
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 64, 64), "crop_pct": 0.875,
                            "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}  # fmt: skip
    timm.models.save_for_hf(model, folder / "resnet10t-cxr", model_config={"label_names": ["opacity", "normal"]},
                            safe_serialization=True)  # fmt: skip
    torch.save(model.state_dict(), folder / "checkpoint.pth")
    return folder / "resnet10t-cxr", folder / "checkpoint.pth"


def test_timm_model_with_its_pretrained_data_config(timm_folder, png8, stress_set, tmp_path):
    import timm
    from PIL import Image

    folder, checkpoint = timm_folder
    predictor = load_predictor(f"timm:{folder}", device="cpu")
    assert predictor.spec.classes == ("opacity", "normal") and predictor.spec.input_size == (64, 64)
    assert predictor.description["data_config"]["mean"] == [0.5, 0.5, 0.5]
    own = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=own), is_training=False)
    expected = transform(Image.open(png8).convert("RGB"))
    x = predictor.prepare(read_image(png8))
    assert x.shape == (3, 64, 64) and torch.allclose(x, expected, atol=1e-5)
    with torch.no_grad():
        reference = torch.softmax(own(expected[None]), dim=1)[0].numpy()
    assert np.allclose(predictor.predict([read_image(png8)])[0], reference, atol=1e-5)
    _evaluate(stress_set, predictor, tmp_path / "results")
    # an architecture with a plain checkpoint: the architecture's own pretrained config (176 px for resnet10t)
    sidecar = _sidecar(checkpoint.parent / "timm.yaml", {"checkpoint": checkpoint.name, "classes": ["opacity", "normal"]})
    plain = load_predictor("timm:resnet10t", sidecar, device="cpu")
    arch = timm.create_model("resnet10t", num_classes=2)
    config = timm.data.resolve_data_config(model=arch)
    assert plain.spec.classes == ("opacity", "normal") and plain.spec.input_size == tuple(config["input_size"][1:])
    expected = timm.data.create_transform(**config)(Image.open(png8).convert("RGB"))
    assert torch.allclose(plain.prepare(read_image(png8)), expected, atol=1e-5)


def test_the_bundle_names_a_library_predictor_by_the_same_id(hf_folder, stress_set, tmp_path, radedit_home):
    # the bundle's command line, in this process (cli_runner.python_m): the id is what is checked, and a
    # process would add ~12 s of imports (the bundle's own process is tested in test_bundle.py)
    from cli_runner import python_m

    repo = Path(__file__).resolve().parent.parent
    proc = python_m("monai.bundle", "run", "stress_evaluate", "--config_file", repo / "monai_bundle" / "configs" / "stress.json",
                    "--set", stress_set, "--predictor", f"huggingface:{hf_folder}", "--results", tmp_path / "bundle",
                    "--device", "cpu", "--resamples", "100", cwd=repo,
                    env={"RADEDIT_HOME": str(radedit_home), "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "bundle" / "results.json").read_text())
    assert results["predictor"]["form"] == "huggingface" and results["predictor"]["ref"] == f"huggingface:{hf_folder}"


def test_an_image_processor_without_one_output_size_is_refused(hf_folder, tmp_path):
    import shutil

    from transformers import ViTImageProcessor

    folder = tmp_path / "vit-shortest-edge"
    shutil.copytree(hf_folder, folder)
    ViTImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    with pytest.raises(ConfigError, match="output size follows each image's shape"):
        load_predictor(f"huggingface:{folder}", device="cpu")
