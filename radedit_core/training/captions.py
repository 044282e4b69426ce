"""The caption a UNet training step conditions on, made from a report impression.

Three per-sample augmentations, each drawn from the sample's own generator
(:mod:`radedit_core.training.noise`):

* sentence shuffle (``caption_sentence_shuffle``): the impression's sentences
  in a random order, as the paper trained (App. 0.D: "sentences within the
  impression are shuffled and then clipped to this length"), so that every
  sentence is also seen first, where a one-sentence editing prompt such as
  "No pneumothorax" puts it;
* final period dropped (``caption_period_dropout``): prompts are typed both ways;
* caption dropout (``caption_dropout``): "" instead, the unconditional
  embedding of classifier-free guidance (Ho and Salimans 2022).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

#: A sentence ends with a period followed by white space (the phantom world's and MIMIC's impressions).
_SENTENCE_BREAK = re.compile(r"(?<=\.)\s+")


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences (split after each period followed by white space; surrounding space removed).

    >>> split_sentences("Large right pneumothorax. Right chest drain in place.")
    ['Large right pneumothorax.', 'Right chest drain in place.']
    """
    return [s for s in _SENTENCE_BREAK.split(text.strip()) if s]


def sentence_order(text: str, generator: torch.Generator) -> list[int]:
    """A random order of ``text``'s sentences (``torch.randperm`` with ``generator``; one draw per call)."""
    return torch.randperm(max(1, len(split_sentences(text))), generator=generator).tolist()


def training_caption(text: str, dropped: bool, drop_period: bool, order: Sequence[int] | None = None) -> str:
    """The caption of one training sample.

    Args:
        text: the report impression.
        dropped: return "" (caption dropout).
        drop_period: drop the caption's final period, if it ends with one.
        order: the sentences' order (:func:`sentence_order`), or None to keep the text's.

    Returns:
        The caption: ``text`` with its sentences in ``order`` joined by single spaces,
        without its final period when ``drop_period``; "" when ``dropped``.
    """
    if dropped:
        return ""
    if order is not None:
        sentences = split_sentences(text)
        if sorted(order) != list(range(len(sentences))):
            raise ValueError(f"order {list(order)} is not a permutation of the {len(sentences)} sentence(s) of {text!r}")
        text = " ".join(sentences[i] for i in order)
    return text[:-1] if drop_period and text.endswith(".") else text


__all__ = ["sentence_order", "split_sentences", "training_caption"]
