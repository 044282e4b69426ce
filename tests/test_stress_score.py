"""The BioViL-T editing score (paper Sec. 4.4) with hi-ml-multimodal's real classes, and what the build
records where they cannot be used.

hi-ml-multimodal needs torchvision built for the installed torch: PyPI's torchvision is a CUDA build
that does not import beside the CPU build of torch this project's CI installs ("operator
torchvision::nms does not exist"), so there the first test is skipped with that reason and the toolkit
records the score as unavailable (second test).  Where it imports, the first test builds BioViL-T with
random weights in the published file layout and checks the score against hi-ml's own inference engines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radedit_core.scoring import BIOVIL_T_IMAGE_WEIGHTS, BioViLTScorer, biovil_t_status

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "acute", "cardiopulmonary", "process", "small", "left",
         "right", "pneumothorax", "chest", "drain", "in", "place", ".", "moderate", "pulmonary", "edema"]  # fmt: skip


def _hi_ml_import_error() -> str | None:
    try:
        import health_multimodal.image.model.model  # noqa: F401
        import health_multimodal.text.model  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - torchvision's RuntimeError included
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


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
    reason = _hi_ml_import_error()
    if reason is not None:
        pytest.skip(f"hi-ml-multimodal does not import here ({reason}); the build records the score as unavailable")
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


def test_unavailable_score_says_why_and_nothing_is_faked(tmp_path):
    reason = biovil_t_status(tmp_path / "nowhere")
    assert reason is not None
    if _hi_ml_import_error() is None:
        assert "BioViL-T files missing" in reason and BIOVIL_T_IMAGE_WEIGHTS in reason
    else:
        assert "hi-ml-multimodal" in reason
