"""Source grid <-> model space: exact inverse, geometry bookkeeping, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radedit_core.errors import InputError
from radedit_core.imaging.image import SourceImage
from radedit_core.imaging.transform import ModelSpaceTransform
from radedit_core.synthetic import chest_phantom, quantise

SHAPES = [(512, 512), (601, 517), (777, 1023), (300, 257), (2049, 1535)]


def make_source(shape, bits, seed=0):
    ph = chest_phantom(*shape, seed=seed)
    if bits == "float":
        return SourceImage.from_array((ph.image * 1000 - 300).astype(np.float32))
    if bits == "signed":
        return SourceImage.from_array((quantise(ph.image, 12).astype(np.int16) - 2048), value_range=(-2048, 2047))
    arr = quantise(ph.image, bits)
    return SourceImage.from_array(arr, value_range=(0, 2**bits - 1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [8, 12, 16, "signed", "float"])
def test_round_trip_without_edit_is_identity(shape, bits):
    src = make_source(shape, bits)
    tf = ModelSpaceTransform.fit(src)
    model = tf.image_to_model(src.array)
    assert model.shape == (1, 1, 512, 512)
    assert model.min() >= -1 and model.max() <= 1
    back = tf.model_to_image(model, src)
    assert back.dtype == src.dtype and back.shape == src.shape
    assert np.array_equal(back, src.array)
    assert np.array_equal(tf.model_to_image(model, src, detail_weight=np.ones(src.shape)), src.array)


@pytest.mark.parametrize("shape", [(601, 517), (517, 601)])
def test_crop_is_centred_square_and_outside_is_untouched(shape):
    src = make_source(shape, 12)
    tf = ModelSpaceTransform.fit(src)
    r0, c0, size = tf.crop
    assert size == min(shape)
    assert (r0, c0) == ((shape[0] - size) // 2, (shape[1] - size) // 2)
    edited = tf.model_to_image(torch.zeros(1, 1, 512, 512), src)  # an extreme "edit"
    outside = np.ones(shape, dtype=bool)
    outside[r0 : r0 + size, c0 : c0 + size] = False
    assert np.array_equal(edited[outside], src.array[outside])
    assert not np.array_equal(edited[~outside], src.array[~outside])


def test_local_change_stays_local_and_values_stay_legal():
    src = make_source((1024, 900), 12)
    tf = ModelSpaceTransform.fit(src)
    model = tf.image_to_model(src.array).clone()
    model[..., 100:150, 200:260] = 1.0  # saturate a block
    out = tf.model_to_image(model, src)
    assert out.min() >= 0 and out.max() <= 4095
    diff = out != src.array
    rows, cols = np.nonzero(diff)
    r0, c0, size = tf.crop
    s = size / 512
    # changed pixels lie within one source pixel (plus the bilinear support) of the block
    assert rows.min() >= r0 + 100 * s - 3 and rows.max() <= r0 + 150 * s + 3
    assert cols.min() >= c0 + 200 * s - 3 and cols.max() <= c0 + 260 * s + 3


def test_detail_weight_zero_gives_the_upsampled_model_image():
    src = make_source((1024, 1024), 16)
    tf = ModelSpaceTransform.fit(src)
    model = tf.image_to_model(src.array)
    smooth = tf.model_to_image(model, src, detail_weight=np.zeros(src.shape))
    up = torch.nn.functional.interpolate(model, size=(1024, 1024), mode="bilinear", align_corners=False)
    expected = np.clip(np.rint((up[0, 0].double().numpy() + 1) * tf.scale + tf.low), 0, 65535)
    assert np.abs(smooth.astype(np.int64) - expected.astype(np.int64)).max() <= 1


def test_window_maps_to_unit_range():
    src = make_source((512, 512), 12)
    src.window = (1000.0, 3000.0)
    tf = ModelSpaceTransform.fit(src)
    assert (tf.low, tf.high) == (1000.0, 3000.0)
    assert np.array_equal(tf.model_to_image(tf.image_to_model(src.array), src), src.array)


def test_mask_to_model_any_rule_never_loses_thin_structures():
    src = make_source((2048, 2048), 12)
    tf = ModelSpaceTransform.fit(src)
    mask = np.zeros(src.shape, dtype=np.float32)
    mask[1000, 300:1700] = 1  # a one-pixel wire
    any_ = tf.mask_to_model(mask, "any")
    mean = tf.mask_to_model(mask, "mean")
    assert any_.max() == 1 and int((any_ > 0).sum()) >= 1400 / 4
    assert 0 < mean.max() <= 0.25 + 1e-6


def test_constant_image_is_rejected():
    src = SourceImage.from_array(np.full((64, 64), 7, dtype=np.uint16), path="flat.png")
    with pytest.raises(InputError, match="flat.png: image intensities are constant"):
        ModelSpaceTransform.fit(src)


def test_nan_and_bad_shapes_are_rejected():
    with pytest.raises(InputError, match="NaN"):
        SourceImage.from_array(np.full((64, 64), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="2D"):
        SourceImage.from_array(np.zeros((3, 64, 64), dtype=np.uint8))
    with pytest.raises(InputError, match="too small"):
        SourceImage.from_array(np.zeros((4, 64), dtype=np.uint8))
