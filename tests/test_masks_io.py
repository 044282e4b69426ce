"""Masks (rules, dilation, validation) and PNG/NIfTI/NRRD I/O with real readers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from radedit_core.errors import InputError, MaskError, OutputError
from radedit_core.imaging.image import Geometry, SourceImage
from radedit_core.imaging.io import read_image, read_mask_array, write_image, write_like
from radedit_core.imaging.masks import dilate, make_masks, normalise_mask


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return SourceImage.from_array(rng.integers(0, 4096, (120, 100), dtype=np.uint16), value_range=(0, 4095))


def test_binary_masks_take_every_nonzero_value(image):
    m = np.zeros(image.shape, np.uint8)
    m[10:20, 10:20] = 255
    m[30, 30] = 1
    out = normalise_mask(m, image, "edit")
    assert out.dtype == np.float32 and set(np.unique(out)) == {0.0, 1.0}
    assert out.sum() == 101


def test_soft_masks_scale_integers_and_check_floats(image):
    m = np.full(image.shape, 128, np.uint8)
    assert np.allclose(normalise_mask(m, image, "edit", soft=True), 128 / 255)
    with pytest.raises(MaskError, match=r"must lie in \[0, 1\]"):
        normalise_mask(np.full(image.shape, 2.0), image, "edit", soft=True)


def test_dilation_is_a_disc_of_the_given_radius():
    m = np.zeros((41, 41), np.float32)
    m[20, 20] = 1
    d = dilate(m, 5)
    rr, cc = np.nonzero(d)
    # ITK balls reach pixel centres within radius + 1/2
    assert np.sqrt((rr - 20) ** 2 + (cc - 20) ** 2).max() <= 5.5
    assert d[20, 25] == 1 and d[25, 20] == 1 and d[24, 24] == 0  # disc, not square


def test_masks_validate_shape_nan_and_emptiness(image):
    with pytest.raises(MaskError, match=r"edit.png: edit mask shape \(10, 10\) does not match"):
        make_masks(image, np.ones((10, 10)), edit_path="edit.png")
    with pytest.raises(MaskError, match="NaN"):
        make_masks(image, np.full(image.shape, np.nan))
    with pytest.raises(MaskError, match="empty"):
        make_masks(image, np.zeros(image.shape))


def test_overlap_is_reported_not_refused(image):
    e = np.zeros(image.shape)
    e[:50] = 1
    k = np.zeros(image.shape)
    k[40:60] = 1
    masks = make_masks(image, e, k)
    assert masks.overlap_pixels == 10 * 100
    assert masks.summary()["overlap_pixels"] == 1000


def test_global_edit_mask(image):
    assert make_masks(image, None).edit.min() == 1


# -- I/O ---------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_volume_formats_keep_geometry(tmp_path, suffix):
    arr = (np.arange(60 * 50).reshape(60, 50) % 4096).astype(np.int16)
    geo = Geometry(spacing=(0.14, 0.15), origin=(-30.5, 12.25), direction=(0.0, 1.0, 1.0, 0.0))
    path = write_image(tmp_path / f"x{suffix}", arr, geo)
    back = read_image(path)
    assert np.array_equal(back.array, arr) and back.dtype == np.int16
    assert back.geometry.matches(geo)
    assert back.format in ("nifti", "nrrd")
    if suffix == ".nii.gz":
        # an independent reader agrees on values and spacing
        nii = nib.load(str(path))
        assert np.array_equal(np.asarray(nii.dataobj).T.squeeze(), arr)
        assert np.allclose(nii.header.get_zooms()[:2], (0.14, 0.15))


def test_one_slice_volume_round_trips_as_a_volume(tmp_path):
    vol = sitk.GetImageFromArray(np.arange(40 * 30, dtype=np.uint16).reshape(1, 40, 30))
    vol.SetSpacing((0.2, 0.3, 2.5))
    vol.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(vol, str(tmp_path / "v.nrrd"))
    img = read_image(tmp_path / "v.nrrd")
    assert img.shape == (40, 30) and img.geometry.dimension == 3
    write_like(tmp_path / "out.nrrd", img.array, img)
    out = sitk.ReadImage(str(tmp_path / "out.nrrd"))
    assert out.GetSize() == (30, 40, 1)
    assert out.GetSpacing() == pytest.approx((0.2, 0.3, 2.5)) and out.GetOrigin() == pytest.approx((1, 2, 3))


def test_png_16_bit_round_trip(tmp_path):
    arr = (np.arange(64 * 48).reshape(64, 48) * 13 % 65536).astype(np.uint16)
    write_image(tmp_path / "a.png", arr, Geometry())
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), arr)
    assert np.array_equal(read_image(tmp_path / "a.png").array, arr)


def test_grey_rgb_png_is_accepted_colour_is_refused(tmp_path):
    g = np.tile(np.arange(32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    Image.fromarray(g).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png").shape == (32, 32)
    c = g.copy()
    c[..., 0] = 255
    Image.fromarray(c).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour.png: colour image with 3 channels"):
        read_image(tmp_path / "colour.png")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "not a readable PNG file .*inside a chunk 'bage'"),
        (lambda p: None, "file does not exist"),
    ],
)
def test_unreadable_or_missing_files(tmp_path, make, message):
    path = tmp_path / "broken.png"
    make(path)
    with pytest.raises(InputError, match=f"broken.png: {message}"):
        read_image(path)


def test_multi_slice_volume_is_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 20, 20), np.uint8)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(InputError, match="3D volume with 3 slices"):
        read_image(tmp_path / "v.nii.gz")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported file type '.tif'; expected PNG, JPEG, NIfTI"):
        read_image(tmp_path / "a.tif")
    with pytest.raises(OutputError, match="cannot write '.tif'"):
        write_image(tmp_path / "b.tif", np.zeros((8, 8), np.uint8), Geometry())
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match=r"a\.jpg: cannot be read as a JPEG image \(not a JPEG file\)"):
        read_image(tmp_path / "a.jpg")


def test_mask_on_another_grid_is_refused(tmp_path):
    img = sitk.GetImageFromArray(np.zeros((20, 20), np.uint16))
    img.SetSpacing((0.2, 0.2))
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    mask = sitk.GetImageFromArray(np.ones((20, 20), np.uint8))
    mask.SetSpacing((0.3, 0.2))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    like = read_image(tmp_path / "img.nrrd")
    with pytest.raises(MaskError, match="mask.nrrd: mask geometry"):
        read_mask_array(tmp_path / "mask.nrrd", like)
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((21, 20), np.uint8)), str(tmp_path / "small.nrrd"))
    with pytest.raises(MaskError, match="small.nrrd: mask size 20x21"):
        read_mask_array(tmp_path / "small.nrrd", like)


def test_existing_output_is_never_overwritten_by_default(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_image(path, np.zeros((8, 8), np.uint8), Geometry())
    assert path.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left behind


def test_erode_is_the_dual_of_dilate_with_the_same_disc():
    from radedit_core.imaging.masks import dilate, erode

    yy, xx = np.mgrid[:80, :90]
    mask = ((yy - 40) ** 2 + (xx - 45) ** 2 < 25**2) | ((yy > 30) & (yy < 36))
    for radius in (1, 3, 6):
        eroded = erode(mask, radius)
        assert eroded.dtype == bool and eroded.sum() < mask.sum() and not eroded[~mask].any()
        # away from the image border, erosion of the mask = complement of the dilated complement
        dual = ~(dilate((~mask).astype(np.float32), radius) > 0)
        inner = np.zeros_like(mask)
        inner[radius:-radius, radius:-radius] = True
        assert np.array_equal(eroded[inner], dual[inner])
    assert np.array_equal(erode(mask, 0), mask)
    with pytest.raises(ValueError, match="radius"):
        erode(mask, -1)
