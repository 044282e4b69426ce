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

#: A sentence ends with a period, question or exclamation mark followed by white space.
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+")
#: A list marker such as "1." or "2)" starts the sentence after it, not one of its own.
_LIST_MARKER = re.compile(r"^\(?\d{1,2}[.)]$")


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences: split after each ``.``, ``?`` or ``!`` followed by white space.

    Surrounding space is removed, and a numbered list's markers ("1.", "2)") stay with the
    sentence they number.  Abbreviations ("Dr.", "approx.") are taken for sentence ends: a
    report that uses them is split there too.

    >>> split_sentences("1. Large right pneumothorax. 2. Right chest drain in place.")
    ['1. Large right pneumothorax.', '2. Right chest drain in place.']
    """
    out: list[str] = []
    marker = ""
    for piece in _SENTENCE_BREAK.split(text.strip()):
        if not piece:
            continue
        if _LIST_MARKER.match(piece):
            marker += piece + " "
            continue
        out.append(marker + piece)
        marker = ""
    if marker:
        out.append(marker.strip())
    return out


def sentence_order(text: str, generator: torch.Generator) -> list[int]:
    """A random order of ``text``'s sentences (``torch.randperm`` with ``generator``; one draw per call,
    also for a text without sentences, whose order is ``[0]``)."""
    return torch.randperm(max(1, len(split_sentences(text))), generator=generator).tolist()


def training_caption(text: str, dropped: bool, drop_period: bool, order: Sequence[int] | None = None) -> str:
    """The caption of one training sample.

    Args:
        text: the report impression.
        dropped: return "" (caption dropout).
        drop_period: drop the caption's final period, if it ends with one.
        order: the sentences' order (:func:`sentence_order`), or None to keep the text's.

    Returns:
        The caption: ``text`` with its sentences in ``order`` joined by single spaces (a
        sentence without a final period gains one when another follows it), without its final
        period when ``drop_period``; "" when ``dropped``.

    Raises:
        ValueError: ``order`` is not a permutation of the text's sentences.
    """
    if dropped:
        return ""
    if order is not None:
        sentences = split_sentences(text) or [""]
        if sorted(order) != list(range(len(sentences))):
            raise ValueError(f"order {list(order)} is not a permutation of the {len(sentences)} sentence(s) of {text!r}")
        # A last sentence typed without its period gains one where another sentence follows it.
        moved = [sentences[i] if k == len(order) - 1 or sentences[i][-1:] in ".?!" else sentences[i] + "."
                 for k, i in enumerate(order)]  # fmt: skip
        text = " ".join(moved)
    return text[:-1] if drop_period and text.endswith(".") else text


__all__ = ["sentence_order", "split_sentences", "training_caption"]
