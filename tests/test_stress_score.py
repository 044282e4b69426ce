"""The BioViL-T editing score (paper Sec. 4.4) with hi-ml-multimodal's real classes, and what the build
records where they cannot be used.

hi-ml-multimodal is a default dependency (the set-up installs a torch and torchvision that import
together), so these tests run everywhere: BioViL-T with random weights in the published file layout,
its score checked against hi-ml's own inference engines, the recipes' ``min_score`` filter applied to a
set built on a small phantom world; and, with the import made to fail, the score recorded as
unavailable with its reason (``--score required`` stops before any edit, ``--score off`` asks nothing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from radedit_core.scoring import BIOVIL_T_IMAGE_WEIGHTS, BioViLTScorer, biovil_t_status

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "acute", "cardiopulmonary", "process", "small", "left",
         "right", "pneumothorax", "chest", "drain", "in", "place", ".", "moderate", "pulmonary", "edema"]  # fmt: skip


def _write_published_layout(folder):
    """BioViL-T with random weights, saved as microsoft/BiomedVLP-BioViL-T publishes it."""
    from health_multimodal.image.model.model import ImageModel
    from health_multimodal.image.model.types import ImageEncoderType
    from health_multimodal.text.model import CXRBertConfig, CXRBertModel, CXRBertTokenizer

    torch.manual_seed(0)
    folder.mkdir()
    image_model = ImageModel(img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE, joint_feature_size=128)
    torch.save(image_model.state_dict(), folder / BIOVIL_T_IMAGE_WEIGHTS)
    config = CXRBertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, projection_size=128)  # fmt: skip
    CXRBertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")  # the published tokenizer's file
    CXRBertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    return folder


def test_score_with_hi_ml_classes_equals_hi_ml_inference_engines(tmp_path):
    from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
    from health_multimodal.image.inference_engine import ImageInferenceEngine
    from health_multimodal.image.model.model import ImageModel
    from health_multimodal.image.model.types import ImageEncoderType
    from health_multimodal.text.inference_engine import TextInferenceEngine
    from health_multimodal.text.model import CXRBertModel, CXRBertTokenizer
    from PIL import Image

    folder = _write_published_layout(tmp_path / "BiomedVLP-BioViL-T")
    assert biovil_t_status(folder) is None
    scorer = BioViLTScorer.load(source=folder, device="cpu")

    rng = np.random.default_rng(0)
    real = rng.integers(0, 4096, (300, 260)).astype(np.uint16)
    edited = real.copy()
    edited[100:200, 60:160] = np.clip(edited[100:200, 60:160].astype(int) + 900, 0, 4095).astype(np.uint16)
    texts = ("Small left pneumothorax. Left chest drain in place.", "No acute cardiopulmonary process.")
    score = scorer.score(real, edited, *texts)

    # hi-ml's own engines, from image files, as get_image_inference / get_bert_inference build them
    for name, array in (("real", real), ("edited", edited)):
        Image.fromarray(array).save(tmp_path / f"{name}.png")
    image_engine = ImageInferenceEngine(
        ImageModel(img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE, joint_feature_size=128,
                   pretrained_model_path=folder / BIOVIL_T_IMAGE_WEIGHTS),  # fmt: skip
        create_chest_xray_transform_for_inference(resize=512, center_crop_size=448),
    )
    tokenizer = CXRBertTokenizer.from_pretrained(folder)
    if not hasattr(tokenizer, "batch_encode_plus"):
        # transformers 5 removed the method hi-ml 0.2.2's TextInput calls; give it back (its documented
        # equivalent, __call__) so that hi-ml's engine code runs unchanged as the reference.
        tokenizer.batch_encode_plus = lambda batch_text_or_text_pairs, **kw: tokenizer(batch_text_or_text_pairs, **kw)
    text_engine = TextInferenceEngine(tokenizer, CXRBertModel.from_pretrained(folder).eval())
    d_image = image_engine.get_projected_global_embedding(tmp_path / "edited.png") - image_engine.get_projected_global_embedding(tmp_path / "real.png")
    t = text_engine.get_embeddings_from_prompt(list(texts), verbose=False)
    expected = float(torch.nn.functional.cosine_similarity(d_image[None], (t[1] - t[0])[None])[0])
    assert score == pytest.approx(expected, abs=1e-5)
    assert -1.0 <= score <= 1.0 and abs(score) > 1e-4  # random weights still give a direction


# -- the filter on a built set --------------------------------------------------------------------
PTX = {"shift": "manifestation", "when": {"pneumothorax": 1}, "prompt": "No pneumothorax.", "edit": "pneumothorax",
       "keep": ["drain"], "labels": {"pneumothorax": 0}}  # fmt: skip
#: The paper's threshold, and one no edit can pass (a cosine is at most 1): both sides of the filter.
RECIPES = {
    "defaults": {"steps": 4, "skip_ratio": 0.3, "dilate": 3},
    "recipes": {
        "remove-pneumothorax": {**PTX, "filters": {"min_score": 0.2}, "sham": True},
        "remove-pneumothorax-strict": {**PTX, "filters": {"min_score": 0.999}},
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from radedit_core.phantom_world import WorldConfig, write_dataset

    folder = tmp_path_factory.mktemp("score_world") / "world"
    config = WorldConfig.from_dict({"prevalence": {"pneumothorax": 0.5}})
    write_dataset(folder, n=5, config=config, seed=3, splits={"testing": 1.0}, progress=False)
    return folder


@pytest.fixture(scope="module")
def biovil_t(tmp_path_factory):
    return _write_published_layout(tmp_path_factory.mktemp("score_weights") / "BiomedVLP-BioViL-T")


@pytest.fixture()
def recipes(tmp_path):
    path = tmp_path / "recipes.yaml"
    path.write_text(yaml.safe_dump(RECIPES, sort_keys=False))
    return path


# The edits' quality does not matter to the filter (the weights are random too): the test-only micro model.
@pytest.mark.slow
def test_min_score_filters_a_built_set_with_the_score_of_the_published_layout(world, biovil_t, recipes, micro_editor,
                                                                             tmp_path):  # fmt: skip
    editor = micro_editor
    from radedit_core.batch.datalist import read_datalist
    from radedit_core.imaging.io import read_image
    from radedit_core.stress.build import StressBuild
    from radedit_core.stress.stress_set import read_stress_set

    summary = StressBuild(datalist=world / "datalist.json", recipes=recipes, score="required", score_weights=biovil_t,
                          editor=editor, device="cpu", output_dir=tmp_path / "set", progress=False).run()  # fmt: skip
    s = read_stress_set(tmp_path / "set")
    assert summary.score == "available" == s.qc["score_status"] and "filters_not_applied" not in s.qc
    reports = {r.values["id"]: r.values["report"] for r in read_datalist(world / "datalist.json")}
    edits = [r for r in s.rows if not r.is_real and not r.recipe.endswith(":sham")]
    shams = [r for r in s.rows if not r.is_real and r.recipe.endswith(":sham")]
    assert len(edits) >= 2 and len(shams) == len(edits) // 2
    scorer = BioViLTScorer.load(source=biovil_t, device="cpu")  # a second, independent load of the same files
    for r in edits:
        sidecar = json.loads(Path(str(r.image) + ".json").read_text())
        assert sidecar["qc"]["score_status"] == "computed" and isinstance(r.score, float)
        if r is edits[0]:  # the score of the files as written: the source and the edit on the source grid
            source = read_image(s.row(r.source).image)
            again = scorer.score(source.array, read_image(r.image).array, reports[r.source], "No pneumothorax.")
            assert r.score == pytest.approx(again, abs=1e-4)
        threshold = RECIPES["recipes"][r.recipe]["filters"]["min_score"]
        assert r.accepted == (r.score >= threshold), (r.id, r.score)
        assert (f"editing score {r.score:.3f} < min_score {threshold:g}" in r.values["reason"]) == (not r.accepted)
    assert not any(r.accepted for r in edits if r.recipe == "remove-pneumothorax-strict")
    assert all(r.score is None and r.accepted for r in shams)  # a sham changes no text: never scored, never filtered
    assert summary.rejected == sum(not r.accepted for r in edits)


# -- where hi-ml-multimodal cannot be used ----------------------------------------------------------
@pytest.fixture(params=["missing", "torchvision"])
def hi_ml_broken(request, monkeypatch):
    """hi-ml-multimodal made unimportable: not installed, or a torchvision built for another torch."""
    import builtins

    for name in [m for m in sys.modules if m.split(".")[0] == "health_multimodal"]:
        monkeypatch.delitem(sys.modules, name)
    if request.param == "missing":
        monkeypatch.setitem(sys.modules, "health_multimodal", None)  # import -> ModuleNotFoundError
        return "hi-ml-multimodal is not installed"
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name.split(".")[0] == "health_multimodal":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    return "hi-ml-multimodal does not import here: RuntimeError: operator torchvision::nms does not exist"


def test_unavailable_score_says_why(hi_ml_broken, biovil_t):
    from radedit_core.errors import ConfigError

    reason = biovil_t_status(biovil_t)
    assert reason is not None and reason.startswith(hi_ml_broken) and "\n" not in reason
    with pytest.raises(ConfigError, match="hi-ml-multimodal"):
        BioViLTScorer.load(source=biovil_t)


def test_missing_files_of_the_layout_are_named(tmp_path):
    reason = biovil_t_status(tmp_path / "nowhere")
    assert "BioViL-T files missing" in reason and BIOVIL_T_IMAGE_WEIGHTS in reason and "vocab.txt" in reason


@pytest.fixture()
def hi_ml_missing(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "health_multimodal"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "health_multimodal", None)
    return "hi-ml-multimodal is not installed"


def test_a_build_without_the_score_records_it_unavailable_and_applies_no_score_filter(hi_ml_missing, world, biovil_t,
                                                                                       recipes, micro_editor, tmp_path, capsys):  # fmt: skip
    hi_ml_broken, editor = hi_ml_missing, micro_editor
    recipes.write_text(yaml.safe_dump({"defaults": RECIPES["defaults"], "recipes": {"remove-pneumothorax": {
        **PTX, "filters": {"min_score": 0.2}}}}, sort_keys=False))  # fmt: skip
    from radedit_core.cli import main
    from radedit_core.stress.build import StressBuild
    from radedit_core.stress.stress_set import read_stress_set

    # required: one line, exit 2, before any edit
    code = main(["-q", "stress", "build", "--datalist", str(world / "datalist.json"), "--recipes", str(recipes),
                 "--output", str(tmp_path / "required"), "--score", "required", "--score-weights", str(biovil_t),
                 "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "score required but the BioViL-T editing score is unavailable" in err
    assert hi_ml_broken in err and not (tmp_path / "required").exists()
    # auto: the set is built, the score unavailable with its reason, the min_score filter reported as not applied
    for mode in ("auto", "off"):
        summary = StressBuild(datalist=world / "datalist.json", recipes=recipes, score=mode, score_weights=biovil_t,
                              editor=editor, device="cpu", output_dir=tmp_path / mode, progress=False).run()  # fmt: skip
        s = read_stress_set(tmp_path / mode)
        edits = [r for r in s.rows if not r.is_real]
        assert edits and all(r.score is None and r.accepted for r in edits)  # nothing faked, nothing filtered on it
        if mode == "auto":
            assert summary.score == s.qc["score_status"] == f"unavailable: {biovil_t_status(biovil_t)}"
            assert hi_ml_broken in summary.score
        else:
            assert summary.score == s.qc["score_status"] == "off"
        assert s.qc["filters_not_applied"] == f"min_score ({s.qc['score_status']})"


def test_hi_ml_imports_quietly_and_under_warnings_as_errors():
    """hi-ml-multimodal imports timm.models.layers, which timm deprecates: the note printed on every build
    is none of the user's business, and under ``-W error`` it made the import fail and the score unavailable."""
    import subprocess

    code = "from radedit_core.scoring import _hi_ml; print(sorted(vars(_hi_ml())))"
    proc = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ImageModel" in proc.stdout, proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "timm.models.layers" not in proc.stderr, proc.stderr[-2000:]
