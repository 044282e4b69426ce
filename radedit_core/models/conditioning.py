"""Prompts -> UNet cross-attention conditioning (the text encoder's last hidden state)."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .spec import TextSettings


@torch.no_grad()
def encode_prompts(
    prompts: list[str],
    tokenizer,
    text_encoder,
    settings: TextSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """[N, max_length, hidden] embeddings; "" gives the unconditional embedding.

    Prompts are padded to ``max_length`` (128 for BioViL-T) and truncated past
    it, as during training.  The attention mask is passed to the encoder only
    when ``settings.pass_attention_mask`` (see :class:`TextSettings`).
    """
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ConfigError("prompts must be a list of strings")
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=settings.max_length,
        truncation=True,
        return_tensors="pt",
    )
    input_ids = tokens["input_ids"].to(device)
    attention_mask = tokens["attention_mask"].to(device) if settings.pass_attention_mask else None
    out = text_encoder(input_ids=input_ids, attention_mask=attention_mask)
    hidden = getattr(out, "last_hidden_state", None)
    if hidden is None:
        hidden = out[0]
    return hidden.to(dtype)


def count_tokens(prompt: str, tokenizer) -> int:
    """Tokens including [CLS]/[SEP], to warn about truncation."""
    return len(tokenizer(prompt, add_special_tokens=True, truncation=False)["input_ids"])
