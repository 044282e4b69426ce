"""Source image in, edited image out: geometry, values, keep modes, provenance."""

from __future__ import annotations

import numpy as np
import pytest

from radedit_core.errors import ConfigError
from radedit_core.imaging.compositing import fade_weight
from radedit_core.imaging.image import Geometry, SourceImage
from radedit_core.settings import DETAIL_MODES
from radedit_core.synthetic import quantise
from radedit_core.workflow import EditSettings, sidecar_path

FAST = dict(steps=12)


@pytest.fixture(scope="module")
def source(phantom):
    return SourceImage.from_array(
        quantise(phantom.image, 12),
        value_range=(0, 4095),
        geometry=Geometry(spacing=(0.15, 0.15), origin=(-40.0, -45.0)),
    )


def test_output_keeps_grid_dtype_range_and_untouched_margins(micro_editor, phantom, source):
    lungs = phantom.mask("right_lung", "left_lung")
    res = micro_editor.edit(source, lungs, None, EditSettings(["Moderate pulmonary edema"], **FAST))
    out = res.image
    assert out.shape == source.shape and out.dtype == source.dtype and out.geometry == source.geometry
    assert out.array.min() >= 0 and out.array.max() <= 4095
    r0, c0, size = res.transform.crop
    margin = np.ones(source.shape, bool)
    margin[r0 : r0 + size, c0 : c0 + size] = False
    assert margin.any() and np.array_equal(out.array[margin], source.array[margin])
    assert res.unet_evaluations == 2 * (12 - int(12 * 0.3))


def test_pixel_keep_mode_is_bit_identical_inside_keep(micro_editor, phantom, source):
    keep = phantom.mask("pacemaker")
    settings = EditSettings(["No acute cardiopulmonary process"], keep_mode="pixel", dilate=2, **FAST)
    res = micro_editor.edit(source, phantom.mask("left_lung"), keep, settings)
    kept = res.masks.keep > 0
    assert kept.sum() > keep.sum()  # dilated
    assert np.array_equal(res.image.array[kept], source.array[kept])
    latent_only = micro_editor.edit(source, phantom.mask("left_lung"), keep,
                              EditSettings(["No acute cardiopulmonary process"], keep_mode="latent", dilate=2, **FAST))
    assert not np.array_equal(latent_only.image.array[kept], source.array[kept])


def test_detail_modes(micro_editor, phantom, source):
    # One formula (radedit_core.imaging.compositing): out = src + f * [(E_v - R_v) + r * (R_v - src)],
    # the modes differ only in r, where the source's detail gives way to the model's image.
    edit = phantom.mask("right_lung")
    res = {
        d: micro_editor.edit(source, edit, None, EditSettings(["New right upper lobe consolidation"], detail=d, dilate=0,
                                                        **FAST))
        for d in DETAIL_MODES
    }  # fmt: skip
    outs = {d: r.image.array.astype(np.int64) for d, r in res.items()}
    inside, outside = edit, ~edit
    rows, cols = res["decoded"].transform.crop_slices
    unfaded = np.zeros(edit.shape, bool)
    unfaded[rows, cols] = fade_weight(res["decoded"].transform)[0] == 1.0
    assert inside[~unfaded].sum() < inside.sum() // 10
    # outside the edit mask r = 0 in every mode but decoded: the source plus the change
    for d in ("unchanged", "outside-edit"):
        assert np.array_equal(outs[d][outside], outs["everywhere"][outside])
    # inside it outside-edit is the model's decoded image (r = 1), as decoded, which does not fade
    assert np.array_equal(outs["outside-edit"][inside & unfaded], outs["decoded"][inside & unfaded])
    assert not np.array_equal(outs["outside-edit"][inside], outs["everywhere"][inside])
    # unchanged: 0 <= r <= 1, so between the two (rounding aside), and both ends occur in the mask
    lo = np.minimum(outs["everywhere"], outs["outside-edit"]) - 1
    hi = np.maximum(outs["everywhere"], outs["outside-edit"]) + 1
    assert np.all((outs["unchanged"] >= lo) & (outs["unchanged"] <= hi))
    replaced = res["unchanged"].compositing["detail_replaced_pixels"]
    assert 0 < replaced < inside.sum() == res["outside-edit"].compositing["detail_replaced_pixels"]
    assert res["everywhere"].compositing["detail_replaced_pixels"] == 0


def test_progress_callback_reports_each_stage(micro_editor, phantom, source):
    events = []
    micro_editor.edit(source, phantom.mask("left_lung"), None, EditSettings(["x"], **FAST), callback=lambda *e: events.append(e))
    stages = {s for s, _, _ in events}
    assert stages == {"invert", "edit"}
    edit_events = [e for e in events if e[0] == "edit"]
    assert [d for _, d, _ in edit_events] == list(range(1, 12 - 3 + 1)) and edit_events[-1][2] == 9
    assert events[[s for s, *_ in events].index("edit") - 1] == ("invert", 9, 9)


def test_provenance_records_what_went_in(micro_editor, phantom, source):
    settings = EditSettings(["a", "b"], weights=[10.0, -2.0], seed=11, invert_prompt="c", **FAST)
    res = micro_editor.edit(source, phantom.mask("left_lung"), phantom.mask("pacemaker"), settings)
    p = res.provenance
    assert p["settings"]["prompts"] == ["a", "b"] and p["settings"]["weights"] == [10.0, -2.0]
    assert p["settings"]["seed"] == 11 and p["settings"]["invert_prompt"] == "c"
    assert p["masks"]["keep_pixels"] > 0 and p["masks"]["overlap_pixels"] >= 0
    assert p["model"]["scheduler"]["timestep_spacing"] == "trailing"
    assert p["model"]["dtype"] == "float32" and p["model"]["vae_dtype"] == "float32"
    assert p["transform"]["model_size"] == micro_editor.pipe.model_resolution == 128


def test_settings_validation():
    with pytest.raises(ConfigError, match="prompts: an edit needs a prompt"):
        EditSettings([])
    with pytest.raises(ConfigError, match="guidance weights"):
        EditSettings(["a"], weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="keep_mode"):
        EditSettings(["a"], keep_mode="both")
    with pytest.raises(ConfigError, match="skip_ratio"):
        EditSettings(["a"], skip_ratio=1.0)


def test_sidecar_names(tmp_path):
    assert sidecar_path(tmp_path / "a.nii.gz") == tmp_path / "a.nii.gz.json"
    assert sidecar_path(tmp_path / "b.png") == tmp_path / "b.png.json"
    assert sidecar_path(tmp_path / "series") == tmp_path / "series.json"
