"""Quality control of edits: where did the image change, and does the change match the text?

* :func:`edit_locality` measures what an edit did per region (inside the edit
  mask, inside the keep mask, elsewhere) on the source grid, with MONAI's SSIM
  for the structural similarity outside the edit mask.
* :func:`model_space_psnr` is the agreement of two runs in model space (the
  fast path against float32).
* :func:`directional_score` is the paper's BioViL-T editing score (Sec. 4.4):
  ``S = cos(E_I(edited) - E_I(real), E_T(edit text) - E_T(real text))``; the
  paper keeps edits with ``S >= 0.2``.  :class:`BioViLTScorer` computes it with
  the BioViL-T image and text encoders (``hi-ml-multimodal`` and the BioViL-T
  text model, which need their own weights and remote code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
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


@dataclass
class BioViLTScorer:
    """The paper's BioViL-T editing score.

    ``image_encoder(x [B, 3, 448, 448]) -> [B, 128]`` and
    ``text_encoder(list[str]) -> [B, 128]`` return the joint-space projections.
    :meth:`load` builds both from hi-ml-multimodal's BioViL-T image model and
    the BioViL-T text model (``get_projected_text_embeddings``).
    """

    image_encoder: Any
    text_encoder: Any
    device: torch.device = torch.device("cpu")

    @classmethod
    def load(cls, device: str = "cpu", revision: str | None = None, trust_remote_code: bool = False) -> "BioViLTScorer":
        if not trust_remote_code:
            raise ConfigError("the BioViL-T text model needs remote code: pass trust_remote_code=True")
        try:
            from health_multimodal.image.utils import ImageModelType, get_image_inference  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(
                "the BioViL-T image encoder comes from hi-ml-multimodal: pip install hi-ml-multimodal "
                "(its weights are downloaded to the Hugging Face cache on first use)"
            ) from exc
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        from .models.spec import BIOVIL_T_REVISION  # noqa: PLC0415

        rev = revision or BIOVIL_T_REVISION
        dev = torch.device(device)
        engine = get_image_inference(ImageModelType.BIOVIL_T)
        image_model = engine.model.to(dev).eval()
        tokenizer = AutoTokenizer.from_pretrained("microsoft/BiomedVLP-BioViL-T", revision=rev, trust_remote_code=True)
        text_model = AutoModel.from_pretrained("microsoft/BiomedVLP-BioViL-T", revision=rev, trust_remote_code=True)
        text_model = text_model.to(dev).eval()

        def encode_images(x: torch.Tensor) -> torch.Tensor:
            return image_model.forward(x.to(dev)).projected_global_embedding

        def encode_texts(texts: list[str]) -> torch.Tensor:
            tokens = tokenizer(texts, padding="longest", return_tensors="pt").to(dev)
            return text_model.get_projected_text_embeddings(
                input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
            )

        return cls(encode_images, encode_texts, dev)

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

    @torch.no_grad()
    def score(self, real: np.ndarray, edited: np.ndarray, real_text: str, edit_text: str) -> float:
        images = torch.cat([self.preprocess(real), self.preprocess(edited)])
        img = self.image_encoder(images)
        txt = self.text_encoder([real_text, edit_text])
        return float(directional_score(img[:1], img[1:], txt[:1], txt[1:])[0])
