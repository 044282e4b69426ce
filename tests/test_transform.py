"""Source grid <-> model space: the centred crop, intensity mapping, resizing both ways, masks.

How an edit comes back onto the source grid is tested in ``test_compositing.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
def test_forward_is_the_centred_square_resized_into_the_unit_range(shape, bits):
    src = make_source(shape, bits)
    tf = ModelSpaceTransform.fit(src)
    r0, c0, size = tf.crop
    assert size == min(shape) and (r0, c0) == ((shape[0] - size) // 2, (shape[1] - size) // 2)
    model = tf.image_to_model(src.array)
    assert model.shape == (1, 1, 512, 512) and model.dtype == torch.float32
    assert model.min() >= -1 and model.max() <= 1
    crop = torch.from_numpy(src.array[r0 : r0 + size, c0 : c0 + size].astype(np.float64))[None, None]
    expected = F.interpolate((crop - tf.low) / tf.scale - 1, size=(512, 512), mode="bilinear", antialias=True)
    assert torch.allclose(model.double(), expected.clamp(-1, 1), atol=1e-6)


@pytest.mark.parametrize("shape", [(601, 517), (300, 257), (2049, 1535)])
def test_model_to_crop_resizes_like_the_forward_map_and_keeps_zeros(shape):
    src = make_source(shape, 12)
    tf = ModelSpaceTransform.fit(src)
    size = tf.crop[2]
    model = tf.image_to_model(src.array)
    back = tf.model_to_crop(model)
    assert back.shape == (size, size) and back.dtype == np.float64
    expected = F.interpolate(model.double(), size=(size, size), mode="bilinear", antialias=True)[0, 0].numpy()
    assert np.allclose(back, expected, atol=1e-12)
    # a map of zeros stays exact zeros (a null change), a non-negative map non-negative
    assert not np.any(tf.model_to_crop(np.zeros((512, 512))))
    assert tf.model_to_crop(np.abs(model.numpy())).min() >= 0
    # stored values: the unit range spans [low, high]
    assert np.allclose(tf.to_values(np.array([-1.0, 1.0])), [tf.low, tf.high])


def test_outside_crop_fraction():
    src = make_source((600, 500), 12)  # crop rows 50..549
    tf = ModelSpaceTransform.fit(src)
    mask = np.zeros(src.shape, np.float32)
    mask[:100, :] = 1  # rows 0..49 are outside: half of it
    assert tf.outside_crop_fraction(mask) == pytest.approx(0.5)
    mask[:] = 0
    mask[300, 200] = 1
    assert tf.outside_crop_fraction(mask) == 0.0 and tf.outside_crop_fraction(np.zeros(src.shape)) == 0.0


def test_window_maps_to_unit_range():
    src = make_source((512, 512), 12)
    src.window = (1000.0, 3000.0)
    tf = ModelSpaceTransform.fit(src)
    assert (tf.low, tf.high) == (1000.0, 3000.0)
    model = tf.image_to_model(src.array)
    inside = (src.array > 1000) & (src.array < 3000)
    assert np.allclose(model[0, 0].numpy()[inside], (src.array[inside] - 1000.0) / 1000.0 - 1, atol=1e-6)
    assert model.min() == -1 and model.max() == 1  # clipped outside the window


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
