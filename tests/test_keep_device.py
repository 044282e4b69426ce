"""Keep the device, not its neighbourhood (keep scope ``device``, :func:`radedit_core.imaging.masks.device_keep`).

Phantom cases whose drain crosses a pneumothorax are edited with the demo
model ("No pneumothorax" in the pneumothorax, the drain kept, dilation 5 px)
and measured against the world's true counterfactual
(:mod:`radedit_core.replication.keep_ring`): the finding's darkness must go
as much beside the drain as over the whole finding, in pixel and latent keep
mode, with the exact drain mask, one that misses the drain's border and one
drawn much larger; in pixel mode the drain stays bit for bit.  Few steps:
the ring figure compares two regions of the same edit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from radedit_core.errors import ConfigError
from radedit_core.imaging.masks import dominated_cells, device_keep, make_masks
from radedit_core.phantom_world import WorldConfig
from radedit_core.replication.data import case_image
from radedit_core.replication.keep_ring import KEEP_MASKS, crossing_cases, keep_mask, ring, run_cases
from radedit_core.settings import EDIT_DEFAULTS, PAPER_PROMPTS, EditSettings, cli_name, row_name

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = PAPER_PROMPTS["no-pneumothorax"]
STEPS = 20
#: share of the finding's darkness removed in the ring / over the whole finding (the issue's goal)
RING_RATIO = 0.8


@pytest.fixture(scope="module")
def demo_editor():
    from radedit_core.workflow import RadEditor

    editor = RadEditor.load("tiny", device="cpu", dtype="float32")  # the demo model: these edits need its quality
    editor.set_progress(False)
    return editor


@pytest.fixture(scope="module")
def case():
    return crossing_cases(WorldConfig(), 1)[0]


def test_the_default_keeps_the_device_and_the_old_rule_stays_selectable():
    assert EDIT_DEFAULTS.keep_scope == "mask" and EDIT_DEFAULTS.dilate == 5 and EDIT_DEFAULTS.keep_mode == "pixel"
    assert EditSettings(["x"], keep_scope="mask").keep_scope == "mask"
    with pytest.raises(ConfigError, match="keep_scope: must be one of device, mask, got 'ring'"):
        EditSettings(["x"], keep_scope="ring")
    # Every front end names it its own way, through the one settings layer.
    with pytest.raises(ConfigError, match="^--keep-scope: must be one of device, mask"):
        EditSettings.from_mapping({"prompt": "x", "keep_scope": "all"}, cli_name)
    with pytest.raises(ConfigError, match="^row 3: keep_scope: must be one of device, mask"):
        EditSettings.from_mapping({"prompt": "x", "keep_scope": "all"}, row_name("row 3"))


def test_device_keep_finds_the_drain_in_each_keep_mask_and_drops_the_finding_beside_it(case):
    image = case_image(case)
    drain, ptx, near = case.masks["drain"], case.masks["pneumothorax"], ring(case)
    for name in KEEP_MASKS:
        masks = make_masks(image, ptx, keep_mask(case, name), dilate_px=5, keep_scope="device")
        kept, dilated = masks.keep > 0, masks.keep_dilated > 0
        assert kept[drain].all(), name  # nothing of the drain is given to the edit
        # The dilation's band of the finding is not kept.  A mask drawn much larger takes in chest wall
        # and rib edges that stand out from the background as a device does: some of those stay.
        assert kept[near].mean() < (0.5 if name == "too_large" else 0.2), name
        assert kept[near].mean() < 0.75 * dilated[near].mean() or name == "misses_border", name
        assert not (kept & ~dilated).any()
        assert masks.summary()["keep_scope"] == "device" and masks.summary()["keep_dilated_pixels"] == dilated.sum()
    # Outside the edit mask the keep mask is kept whole: nothing there is to change.
    masks = make_masks(image, ptx, drain, dilate_px=5, keep_scope="device")
    outside = (masks.keep_dilated > 0) & (masks.edit <= 0)
    assert outside.any() and (masks.keep[outside] > 0).all()
    old = make_masks(image, ptx, drain, dilate_px=5, keep_scope="mask")
    assert np.array_equal(old.keep, masks.keep_dilated) and old.keep_dilated is None


def test_a_keep_mask_with_nothing_in_it_that_stands_out_is_kept_whole_with_a_note():
    flat = np.full((64, 64), 1000.0)
    keep = np.zeros((64, 64), np.float32)
    keep[20:40, 20:40] = 1
    out, notes = device_keep(flat, keep)
    assert np.array_equal(out, keep) and "whole keep mask is kept" in notes[0]


def test_the_latent_keep_pins_only_cells_the_device_dominates():
    mask = np.zeros((16, 16))
    mask[0:8, 0:8] = 1  # a cell all device
    mask[8:16, 0:3] = 1  # a cell 3/8 device: mostly background
    mask[0:8, 8:13] = 1  # 5/8
    assert dominated_cells(mask, 8).tolist() == [[1, 1], [0, 0]]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pixel", "latent"])
def test_the_finding_goes_beside_the_kept_drain_as_everywhere_else(demo_editor, case, mode):
    settings = EditSettings([PROMPT], steps=STEPS, keep_mode=mode, keep_scope="device")  # CLI defaults but steps and scope
    out = run_cases(lambda im, e, k: demo_editor.edit(im, e, k, settings).image.array, [case])
    for name, (f,) in out.items():
        assert f["whole_share"] >= 0.3, (name, f)  # the edit removes the finding
        assert f["ring_share"] >= RING_RATIO * f["whole_share"], (name, f)
        assert f["device_contrast_kept"] >= 0.5, (name, f)  # the drain is there
        if mode == "pixel":
            assert f["device_exact"], (name, f)


def test_the_paper_rule_keeps_a_band_of_the_finding_and_the_sidecar_says_which_rule(demo_editor, case, tmp_path):
    # What keep scope "device" fixes, in latent keep mode: every latent cell the dilated mask
    # touches is pinned, so the pneumothorax stays beside the drain.
    old = EditSettings([PROMPT], steps=STEPS, keep_mode="latent", keep_scope="mask")
    result = demo_editor.edit(case_image(case), case.masks["pneumothorax"], case.masks["drain"], old)
    (f,) = run_cases(lambda im, e, k: result.image.array, [case], ("exact",))["exact"]
    assert f["ring_share"] < RING_RATIO * f["whole_share"], f
    prov = json.loads(json.dumps(result.provenance))
    assert prov["settings"]["keep_scope"] == "mask" and prov["masks"]["keep_scope"] == "mask"
