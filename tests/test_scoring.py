"""Edit quality control: locality of an edit and the directional (BioViL-T-style) score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radedit_core.imaging.image import SourceImage
from radedit_core.scoring import BioViLTScorer, directional_score, edit_locality
from radedit_core.synthetic import quantise
from radedit_core.workflow import EditSettings


def test_directional_score_is_cosine_of_the_changes():
    real_i, real_t = torch.zeros(1, 4), torch.zeros(1, 4)
    edited = torch.tensor([[1.0, 0, 0, 0]])
    assert directional_score(real_i, edited, real_t, torch.tensor([[2.0, 0, 0, 0]])).item() == pytest.approx(1.0)
    assert directional_score(real_i, edited, real_t, torch.tensor([[0, 3.0, 0, 0]])).item() == pytest.approx(0.0)
    assert directional_score(real_i, edited, real_t, torch.tensor([[-1.0, 0, 0, 0]])).item() == pytest.approx(-1.0)


def test_locality_of_a_real_edit(editor, phantom):
    src = SourceImage.from_array(quantise(phantom.image, 12), value_range=(0, 4095))
    settings = EditSettings(["Moderate pulmonary edema"], steps=12, keep_mode="pixel")
    res = editor.edit(src, phantom.mask("left_lung"), phantom.mask("pacemaker"), settings)
    report = edit_locality(src.array, res.image.array, res.masks)
    assert report["keep"]["max_abs_change"] == 0.0  # pixel keep mode
    assert report["edit"]["mean_abs_change"] > report["outside"]["mean_abs_change"]
    assert -1 <= report["ssim"] <= 1 and report["ssim_outside_edit"] >= report["ssim"]


def test_scorer_preprocessing_matches_biovil_t():
    x = BioViLTScorer.preprocess(np.random.default_rng(0).integers(0, 4096, (700, 600)).astype(np.uint16))
    assert x.shape == (1, 3, 448, 448) and float(x.min()) >= 0 and float(x.max()) <= 1


def test_scorer_with_given_encoders():
    # the scorer composes encoders; here linear maps stand in for BioViL-T's
    w = torch.randn(3 * 448 * 448, 8, generator=torch.Generator().manual_seed(0)) / 1000
    scorer = BioViLTScorer(lambda x: x.flatten(1) @ w, lambda texts: torch.stack([torch.full((8,), float(len(t))) for t in texts]))
    a = np.random.default_rng(1).random((512, 512))
    s = scorer.score(a, a + 0.1 * np.random.default_rng(2).random((512, 512)), "a", "abc")
    assert -1 <= s <= 1
