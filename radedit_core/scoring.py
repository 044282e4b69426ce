"""Quality control of edits: where did the image change, and does the change match the text?

* :func:`edit_locality` measures what an edit did per region (inside the edit
  mask, inside the keep mask, elsewhere) on the source grid, with MONAI's SSIM
  for the structural similarity outside the edit mask.
* :func:`model_space_psnr` is the agreement of two runs in model space (the
  fast path against float32).
* :func:`directional_score` is the paper's BioViL-T editing score (Sec. 4.4):
  ``S = cos(E_I(edited) - E_I(real), E_T(edit text) - E_T(real text))``; the
  paper keeps edits with ``S >= 0.2``.  :meth:`BioViLTScorer.load` computes it
  with hi-ml-multimodal's BioViL-T image model and CXR-BERT text model (a
  default dependency; it needs a torchvision that imports beside the installed
  torch) from the published files; :func:`biovil_t_status` says why it cannot
  where it cannot (hi-ml-multimodal missing or not importing, files missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, ModelNotFoundError
from .imaging.masks import EditMasks

#: The paper's filtering threshold on the BioViL-T editing score.
PAPER_SCORE_THRESHOLD = 0.2


def _normalised(a: np.ndarray, low: float, high: float) -> np.ndarray:
    return (a.astype(np.float64) - low) / max(high - low, 1e-12)


def model_space_psnr(images: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR (MONAI) of model-space images in [-1, 1] against a reference, in dB.

    The agreement measure of the fast path against float32 (benchmark and
    tests): the data range is the model space's 2.0, not each image's own.
    """
    from monai.metrics import PSNRMetric  # noqa: PLC0415

    a = images.detach().float().cpu()
    b = reference.detach().float().cpu()
    if a.shape != b.shape:
        raise ValueError(f"images {tuple(a.shape)} and reference {tuple(b.shape)} differ in shape")
    if torch.equal(a, b):
        return float("inf")
    return float(PSNRMetric(max_val=2.0, reduction="mean")(a, b).mean())


def edit_locality(source: np.ndarray, edited: np.ndarray, masks: EditMasks, ssim: bool = True) -> dict[str, Any]:
    """Per-region change of an edit, in units of the source's intensity range.

    Returns mean, 99th percentile and maximum absolute change and the
    fraction of changed pixels inside the edit mask (less the keep mask),
    inside the keep mask and elsewhere (a region with no pixel is left out),
    the range ``[low, high]`` (the source's minimum and maximum) that is the
    unit, and with ``ssim`` the SSIM (MONAI) of the whole image and of the
    image with the edit region blanked in both (so it scores only what was
    meant to stay).  SSIM is the costly part (about 10 s of one CPU core for
    a 3000 x 2500 image).
    """
    if source.shape != edited.shape:
        raise ValueError(f"source {source.shape} and edited {edited.shape} differ in shape")
    low, high = float(source.min()), float(source.max())
    src = _normalised(source, low, high)
    out = _normalised(edited, low, high)
    diff = np.abs(out - src)
    edit = masks.edit > 0
    keep = masks.keep > 0 if masks.keep is not None else np.zeros_like(edit)
    regions = {"edit": edit & ~keep, "keep": keep, "outside": ~edit & ~keep}
    report: dict[str, Any] = {}
    for name, region in regions.items():
        if region.any():
            d = diff[region]
            report[name] = {
                "pixels": int(region.sum()),
                "mean_abs_change": float(d.mean()),
                "p99_abs_change": float(np.percentile(d, 99)),
                "max_abs_change": float(d.max()),
                "changed_fraction": float(np.mean(d > 0)),
            }
    report["range"] = [low, high]
    if not ssim:
        return report
    from monai.metrics import SSIMMetric  # noqa: PLC0415

    ssim = SSIMMetric(spatial_dims=2, data_range=1.0)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]  # noqa: E731
    report["ssim"] = float(ssim(t(out), t(src)).mean())
    report["ssim_outside_edit"] = float(ssim(t(np.where(edit, 0.0, out)), t(np.where(edit, 0.0, src))).mean())
    return report


def directional_score(
    image_real: torch.Tensor,
    image_edited: torch.Tensor,
    text_real: torch.Tensor,
    text_edit: torch.Tensor,
) -> torch.Tensor:
    """cos(dI, dT) per row: how well the image change follows the text change."""
    d_image = image_edited.float() - image_real.float()
    d_text = text_edit.float() - text_real.float()
    return torch.nn.functional.cosine_similarity(d_image, d_text, dim=-1)


#: hi-ml-multimodal's BioViL-T inference settings (``get_image_inference(BIOVIL_T)``): resize the short
#: side to 512, centre crop 448, no mean/std normalisation.
BIOVIL_T_REPO = "microsoft/BiomedVLP-BioViL-T"
BIOVIL_T_RESIZE = 512
BIOVIL_T_CROP = 448
#: The published file layout of ``microsoft/BiomedVLP-BioViL-T`` that :meth:`BioViLTScorer.load` reads:
#: the image model's state dict (hi-ml-multimodal's ``BIOVIL_T_IMAGE_WEIGHTS_NAME``) and CXR-BERT's
#: ``config.json`` and ``vocab.txt`` (weights beside them as ``pytorch_model.bin`` or ``model.safetensors``).
BIOVIL_T_IMAGE_WEIGHTS = "biovil_t_image_model_proj_size_128.pt"
BIOVIL_T_FILES = (BIOVIL_T_IMAGE_WEIGHTS, "config.json", "vocab.txt")


def _hi_ml() -> Any:
    """hi-ml-multimodal's modules, or a ConfigError saying why they cannot be used here."""
    import types  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            # hi-ml-multimodal imports timm.models.layers, which timm deprecates: a note no user can act
            # on, printed on every build, and an import error under -W error (the score then lost)
            warnings.filterwarnings("ignore", message="Importing from timm.models.layers", category=FutureWarning)
            from health_multimodal.image.data.io import remap_to_uint8  # noqa: PLC0415
            from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference  # noqa: PLC0415
            from health_multimodal.image.inference_engine import ImageInferenceEngine  # noqa: PLC0415
            from health_multimodal.image.model.model import ImageModel  # noqa: PLC0415
            from health_multimodal.image.model.pretrained import JOINT_FEATURE_SIZE  # noqa: PLC0415
            from health_multimodal.image.model.types import ImageEncoderType  # noqa: PLC0415
            from health_multimodal.text.inference_engine import TextInferenceEngine  # noqa: PLC0415
            from health_multimodal.text.model import CXRBertModel, CXRBertTokenizer  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "health_multimodal":
            raise ConfigError("hi-ml-multimodal is not installed (pip install hi-ml-multimodal)") from None
        raise ConfigError(f"hi-ml-multimodal does not import here: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - torchvision built for another torch raises RuntimeError on import
        first = (str(exc).strip().splitlines() or [""])[0]
        hint = " (its torchvision must be built for the installed torch)" if "torchvision" in first else ""
        raise ConfigError(f"hi-ml-multimodal does not import here: {type(exc).__name__}: {first}{hint}") from None
    return types.SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("types", "warnings")})


def biovil_t_folder(source: Any = None, revision: str | None = None) -> Path:
    """The folder holding BioViL-T in its published layout (:data:`BIOVIL_T_FILES`).

    ``source``: such a folder, or None for the Hugging Face cache's snapshot of
    ``microsoft/BiomedVLP-BioViL-T`` at ``revision`` (default: the revision
    pinned in :mod:`radedit_core.models.spec`).  Nothing is downloaded.

    Raises:
        ModelNotFoundError: a file is missing, naming it and where it was looked for.
    """
    from .models.spec import BIOVIL_T_REVISION  # noqa: PLC0415

    if source is not None and str(source).strip():
        folder = Path(str(source)).expanduser()
        missing = [f for f in BIOVIL_T_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelNotFoundError(f"{folder}: BioViL-T files missing: {', '.join(missing)} (the layout of {BIOVIL_T_REPO})")
        return folder
    from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

    rev = revision or BIOVIL_T_REVISION
    found = [try_to_load_from_cache(BIOVIL_T_REPO, f, revision=rev) for f in BIOVIL_T_FILES]
    missing = [f for f, p in zip(BIOVIL_T_FILES, found) if not isinstance(p, str)]
    if missing:
        raise ModelNotFoundError(
            f"BioViL-T is not in the Hugging Face cache ({', '.join(missing)} of {BIOVIL_T_REPO} at {rev[:12]}); "
            f"on a connected machine: hf download {BIOVIL_T_REPO} --revision {rev}, or give a folder"
        )
    return Path(str(found[0])).parent


def biovil_t_status(source: Any = None, revision: str | None = None) -> str | None:
    """None when the editing score can be computed here, else the reason (one line) it cannot."""
    try:
        _hi_ml()
        biovil_t_folder(source, revision)
    except (ConfigError, ModelNotFoundError) as exc:
        return str(exc)
    return None


@dataclass
class BioViLTScorer:
    """The paper's BioViL-T editing score (Sec. 4.4).

    ``image_encoder(x [B, 3, 448, 448]) -> [B, D]`` and
    ``text_encoder(list[str]) -> [B, D]`` give joint-space embeddings;
    ``transform`` maps one grey image (any numeric 2D array, bright = dense)
    to the encoder's ``[3, 448, 448]`` input (default :meth:`preprocess`).
    :meth:`load` builds all three from hi-ml-multimodal's BioViL-T classes.
    """

    image_encoder: Any
    text_encoder: Any
    device: torch.device = torch.device("cpu")
    transform: Any = None

    @classmethod
    def load(cls, source: Any = None, device: str = "cpu", revision: str | None = None) -> "BioViLTScorer":
        """BioViL-T from its published files, with hi-ml-multimodal's own classes and inference settings.

        ``source``: a folder in the layout of ``microsoft/BiomedVLP-BioViL-T``
        (:data:`BIOVIL_T_FILES`), or None for the Hugging Face cache at the
        pinned revision (:func:`biovil_t_folder`).  The image model is built as
        hi-ml's ``get_biovil_t_image_encoder`` builds it (a ResNet-50
        multi-image encoder, 128-d projection, the state dict file), the text
        model and tokenizer are hi-ml's ``CXRBertModel``/``CXRBertTokenizer``
        (so no remote code runs), and embeddings are what hi-ml's
        ``ImageInferenceEngine``/``TextInferenceEngine`` return: L2-normalised
        global image and projected [CLS] text embeddings (with transformers 5,
        which removed the ``batch_encode_plus`` hi-ml 0.2.2 calls, the engine's
        tokenisation through the tokenizer's ``__call__``).  Images go through
        hi-ml's ``remap_to_uint8`` (min/max to 0..255) and its inference
        transform (resize 512, centre crop 448, three channels).

        Raises:
            ConfigError: hi-ml-multimodal is missing or does not import (the reason).
            ModelNotFoundError: a file of the layout is missing.
        """
        from PIL import Image  # noqa: PLC0415

        hi = _hi_ml()
        folder = biovil_t_folder(source, revision)
        dev = torch.device(device if device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu"))
        image_model = hi.ImageModel(
            img_encoder_type=hi.ImageEncoderType.RESNET50_MULTI_IMAGE,
            joint_feature_size=hi.JOINT_FEATURE_SIZE,
            pretrained_model_path=folder / BIOVIL_T_IMAGE_WEIGHTS,
        )
        transform = hi.create_chest_xray_transform_for_inference(resize=BIOVIL_T_RESIZE, center_crop_size=BIOVIL_T_CROP)
        image_engine = hi.ImageInferenceEngine(image_model=image_model, transform=transform)
        image_engine.to(dev)
        tokenizer = hi.CXRBertTokenizer.from_pretrained(str(folder))
        text_engine = hi.TextInferenceEngine(tokenizer=tokenizer, text_model=hi.CXRBertModel.from_pretrained(str(folder)).eval())
        text_engine.to(dev)

        def to_input(image: np.ndarray) -> torch.Tensor:
            return transform(Image.fromarray(hi.remap_to_uint8(np.asarray(image))).convert("L"))

        def encode_images(x: torch.Tensor) -> torch.Tensor:
            embedding = image_engine.model.forward(x.to(dev)).projected_global_embedding
            return torch.nn.functional.normalize(embedding, dim=-1)

        def encode_texts(texts: list[str]) -> torch.Tensor:
            if hasattr(tokenizer, "batch_encode_plus"):  # transformers < 5: hi-ml's engine as it is
                return text_engine.get_embeddings_from_prompt(texts, normalize=True, verbose=False)
            # transformers 5 removed batch_encode_plus, which hi-ml-multimodal 0.2.2's TextInput calls;
            # this is its tokenisation (final "!?." stripped, special tokens, longest padding) through
            # the tokenizer's __call__, and the engine's own model call.
            tokens = tokenizer([t.rstrip("!?.") for t in texts], add_special_tokens=True, padding="longest",
                               return_tensors="pt")  # fmt: skip
            return text_engine.model.get_projected_text_embeddings(
                input_ids=tokens.input_ids.to(dev), attention_mask=tokens.attention_mask.to(dev), normalize_embeddings=True
            )

        return cls(encode_images, encode_texts, dev, to_input)

    @staticmethod
    def preprocess(image: np.ndarray) -> torch.Tensor:
        """Grey image -> [1, 3, 448, 448] in [0, 1]: resize 512 (short side), centre crop 448, no normalisation."""
        t = torch.from_numpy(_normalised(image, float(image.min()), float(image.max())).astype(np.float32))[None, None]
        h, w = t.shape[-2:]
        scale = 512 / min(h, w)
        t = torch.nn.functional.interpolate(
            t, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False, antialias=True
        )
        h, w = t.shape[-2:]
        top, left = (h - 448) // 2, (w - 448) // 2
        return t[..., top : top + 448, left : left + 448].expand(-1, 3, -1, -1)

    def _inputs(self, images: list[np.ndarray]) -> torch.Tensor:
        if self.transform is not None:
            return torch.stack([self.transform(a) for a in images])
        return torch.cat([self.preprocess(a) for a in images])

    @torch.no_grad()
    def score(self, real: np.ndarray, edited: np.ndarray, real_text: str, edit_text: str) -> float:
        """S = cos(E_I(edited) - E_I(real), E_T(edit_text) - E_T(real_text)), in [-1, 1]."""
        img = self.image_encoder(self._inputs([real, edited]))
        txt = self.text_encoder([real_text, edit_text])
        return float(directional_score(img[:1], img[1:], txt[:1], txt[1:])[0])
