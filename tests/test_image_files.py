"""Everyday image files: JPEG in (and, when asked, out), PNG with an alpha channel."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import SimpleITK as sitk

import numpy as np
import png
import pytest
from PIL import Image

from radedit_core.cli import main as radedit_main
from radedit_core.edit_request import prepare_edit
from radedit_core.errors import ConfigError, InputError, MaskError
from radedit_core.imaging.io import JPEG_GRAY_TOLERANCE, read_image, read_mask_array
from radedit_core.outputs import format_name, output_format_for_path, output_format_for_source
from radedit_core.synthetic import chest_phantom, quantise
from radedit_core.workflow import EditSettings

from cli_runner import radedit

A11 = Path(__file__).parent / "data" / "png-alpha"


@pytest.fixture(scope="module")
def gray8():
    return quantise(chest_phantom(320, 288, seed=2).image, 8)


def write_png(path, array, alpha=None, bitdepth=8):
    """A PNG written by pypng, which writes every colour type and depth (grey + alpha at 16 bits too)."""
    planes = [array] if array.ndim == 2 else [array[..., k] for k in range(array.shape[-1])]
    if alpha is not None:
        planes.append(alpha)
    stacked = np.stack(planes, axis=-1)
    h, w, n = stacked.shape
    writer = png.Writer(w, h, greyscale=n in (1, 2), alpha=alpha is not None, bitdepth=bitdepth)
    with open(path, "wb") as fh:
        writer.write(fh, stacked.reshape(h, w * n).tolist())
    return path


# -- PNG with alpha ---------------------------------------------------------------------------------


def test_handed_gray_alpha_png_is_grayscale_and_a_mask_in_the_alpha_channel_is_refused():
    image = read_image(A11 / "image_gray_alpha.png")
    assert image.array.dtype == np.uint8 and np.array_equal(image.array, read_image(A11 / "image8.png").array)
    assert read_mask_array(A11 / "mask8.png", image).max() == 255
    with pytest.raises(MaskError, match=r"mask_in_alpha\.png: mask is drawn in the PNG's alpha channel "
                                        r"\(transparency\) and its grey values are all 0; save the mask as a "
                                        r"grayscale PNG without alpha"):  # fmt: skip
        read_mask_array(A11 / "mask_in_alpha.png", image)
    with pytest.raises(InputError, match="image is drawn in the PNG's alpha channel"):
        read_image(A11 / "mask_in_alpha.png")


@pytest.mark.parametrize("bitdepth", [8, 16])
def test_opaque_alpha_is_grayscale_at_either_depth(tmp_path, gray8, bitdepth):
    values = gray8.astype(np.uint16) * 257 if bitdepth == 16 else gray8
    values = values.copy()
    values[0, :3] = [0, 1, 2**bitdepth - 2]  # every value survives, nothing is scaled to 8 bits
    opaque = np.full(values.shape, 2**bitdepth - 1, dtype=values.dtype)
    la = read_image(write_png(tmp_path / "la.png", values, opaque, bitdepth))
    assert la.array.dtype == (np.uint16 if bitdepth == 16 else np.uint8) and np.array_equal(la.array, values)
    rgba = read_image(write_png(tmp_path / "rgba.png", np.stack([values] * 3, -1), opaque, bitdepth))
    assert np.array_equal(rgba.array, values)


@pytest.mark.parametrize("layout", ["la8", "la16", "rgba8", "uniform-half"])
def test_any_transparency_is_an_error_that_says_so(tmp_path, gray8, layout):
    alpha = np.full(gray8.shape, 255, np.uint8)
    alpha[:32] = 0  # a transparent band: 10 % of the pixels
    if layout == "la8":
        path = write_png(tmp_path / "x.png", gray8, alpha)
    elif layout == "la16":
        path = write_png(tmp_path / "x.png", gray8.astype(np.uint16) * 257, alpha.astype(np.uint16) * 257, 16)
    elif layout == "rgba8":
        path = write_png(tmp_path / "x.png", np.stack([gray8] * 3, -1), alpha)
    else:
        alpha[:] = 128  # uniformly half transparent: what a viewer shows depends on the background
        path = write_png(tmp_path / "x.png", gray8, alpha)
    share = "100.0" if layout == "uniform-half" else "10.0"
    with pytest.raises(InputError, match=rf"x\.png: image has an alpha channel that is not fully opaque \({share}% "
                                         r"of its pixels are transparent or partly transparent\)"):  # fmt: skip
        read_image(path)


def test_colour_rgba_png_is_refused(tmp_path, gray8):
    colour = np.stack([gray8, gray8, np.roll(gray8, 3, axis=1)], -1)
    with pytest.raises(InputError, match="colour image with 4 channels"):
        read_image(write_png(tmp_path / "c.png", colour, np.full(gray8.shape, 255, np.uint8)))


def test_cli_reports_a_transparent_png_in_one_line_before_the_model(tmp_path, gray8, capsys):
    alpha = np.full(gray8.shape, 255, np.uint8)
    alpha[5, 5] = 0
    image = write_png(tmp_path / "t.png", gray8, alpha)
    code = radedit_main(["edit", "--image", str(image), "--global-edit", "--prompt", "x", "--model", "no-such-model",
                         "--output", str(tmp_path / "o.png")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"radedit: error: {image}: image has an alpha channel")
    assert not (tmp_path / "o.png").exists()


def test_one_transparent_pixel_is_counted_not_rounded_to_zero_percent(tmp_path, gray8):
    alpha = np.full(gray8.shape, 255, np.uint8)
    alpha[5, 5] = 0
    with pytest.raises(InputError, match=rf"\(1 of its {gray8.size} pixels is transparent or partly transparent\)"):
        read_image(write_png(tmp_path / "one.png", gray8, alpha))
    alpha[5, 6:8] = 100
    with pytest.raises(MaskError, match=rf"\(3 of its {gray8.size} pixels are transparent or partly transparent\)"):
        read_mask_array(write_png(tmp_path / "three.png", gray8, alpha), read_image(write_png(tmp_path / "g.png", gray8)))


# -- unreadable files ----------------------------------------------------------------------------------


def _corrupt_idat(data: bytes) -> bytes:
    """The PNG with its pixel data scrambled but every chunk length and CRC valid (only zlib can tell)."""
    at = data.index(b"IDAT") - 4
    n = struct.unpack(">I", data[at : at + 4])[0]
    bad = bytes(b ^ 0x5A for b in data[at + 8 : at + 8 + n])
    chunk = struct.pack(">I", n) + b"IDAT" + bad + struct.pack(">I", zlib.crc32(b"IDAT" + bad))
    return data[:at] + chunk + data[at + 12 + n :]


# (fault, what the file holds given the bytes of a good file of its format)
FAULTS = {
    "empty": lambda good: b"",
    "signature only": lambda good: good[:8],
    "cut to 100 bytes": lambda good: good[:100],
    "cut in half": lambda good: good[: len(good) // 2],
    "text": lambda good: b"patient list, not an image\n" * 4,
    "gzipped text": lambda good: gzip.compress(b"patient list, not an image\n" * 4),
}
# (suffix, fault, message after "<file>: ")
UNREADABLE = [
    (".png", "empty", "is an empty file (0 bytes); expected a PNG image"),
    (".png", "signature only", "not a readable PNG file (truncated, corrupt or not an image: it ends after 8 bytes, "
                               "before the PNG's end chunk IEND)"),
    (".png", "cut to 100 bytes", "not a readable PNG file (truncated, corrupt or not an image: it ends after 100 bytes, "
                                 "inside a chunk 'IDAT' of"),
    (".png", "cut in half", "not a readable PNG file (truncated, corrupt or not an image: it ends after"),
    (".png", "text", "not a PNG file (it does not start with the PNG signature)"),
    (".png", "corrupt pixel data", "not a readable PNG file (truncated, corrupt or not an image)"),
    (".nii", "empty", "is an empty file (0 bytes); expected a NIfTI image"),
    (".nii", "text", "not a readable NIfTI file (truncated, corrupt or not an image: no NIfTI header)"),
    (".nii", "cut in half", "not a readable NIfTI file (truncated, corrupt or not an image: Expected 4096 bytes, got"),
    (".nii.gz", "empty", "is an empty file (0 bytes); expected a NIfTI image"),
    (".nii.gz", "text", "not a readable NIfTI file (truncated, corrupt or not an image: a .nii.gz file must be "
                        "gzip-compressed)"),
    (".nii.gz", "gzipped text", "not a readable NIfTI file (truncated, corrupt or not an image: no NIfTI header)"),
    (".nii.gz", "cut in half", "not a readable NIfTI file (truncated, corrupt or not an image: Compressed file ended"),
    (".nrrd", "empty", "is an empty file (0 bytes); expected a NRRD image"),
    (".nrrd", "cut in half", "not a readable NRRD file (truncated, corrupt or not an image: _nrrdEncodingRaw_read: "
                             "fread got only"),
    (".nrrd", "text", "not a readable NRRD file (truncated, corrupt or not an image: no image reader recognises"),
    (".mha", "empty", "is an empty file (0 bytes); expected a MetaImage image"),
    (".mha", "cut to 100 bytes", "not a readable MetaImage file (truncated, corrupt or not an image: DimSize required"),
    (".mha", "cut in half", "not a readable MetaImage file (truncated, corrupt or not an image: M_ReadElementsData: "
                            "data not read completely; ideal = 4096 : actual ="),
    (".jpg", "empty", "is an empty file (0 bytes); expected a JPEG image"),
    (".jpg", "cut in half", "cannot be read as a JPEG image (image file is truncated"),
    (".dcm", "empty", "is an empty file (0 bytes); expected a DICOM image"),
    (".dcm", "text", "not a DICOM file"),
]


def _bad_file(folder: Path, suffix: str, fault: str) -> Path:
    good = folder / f"good{suffix}"
    array = quantise(chest_phantom(64, 64, seed=2).image, 8)
    if suffix == ".jpg":
        jpeg(good, array)
    elif suffix != ".dcm":
        sitk.WriteImage(sitk.GetImageFromArray(array), str(good))
    data = b"" if suffix == ".dcm" else good.read_bytes()
    bad = folder / f"{fault.replace(' ', '-')}{suffix}"
    bad.write_bytes(_corrupt_idat(data) if fault == "corrupt pixel data" else FAULTS[fault](data))
    return bad


@pytest.mark.parametrize("role", ["--image", "--edit-mask"])
@pytest.mark.parametrize("suffix, fault, message", UNREADABLE, ids=[f"{s}-{f}" for s, f, _ in UNREADABLE])
def test_an_unreadable_file_is_one_line_naming_it_exit_2(tmp_path, capfd, radedit_home, role, suffix, fault, message):
    """Empty, truncated and foreign files, as the image and as the mask: one line, exit 2, nothing written,
    and nothing a C library prints on file descriptor 2 (libpng, MetaIO) besides it."""
    if role == "--edit-mask" and suffix in (".jpg", ".dcm"):
        pytest.skip("a JPEG mask is refused for its format; a DICOM mask's faults are tests/test_dicom_bad_input.py's")
    bad = _bad_file(tmp_path, suffix, fault)
    image = write_png(tmp_path / "image.png", quantise(chest_phantom(64, 64, seed=2).image, 8))
    inputs = {"--image": image, "--edit-mask": write_png(tmp_path / "mask.png", np.ones((64, 64), np.uint8))}
    inputs[role] = bad
    before = bad.read_bytes()
    out = tmp_path / "out" / "a.png"
    proc = radedit("-q", "edit", "--model", "tiny", "--image", inputs["--image"], "--edit-mask", inputs["--edit-mask"],
                   "--prompt", "x", "--steps", "4", "--output", out, home=radedit_home)  # fmt: skip
    printed = capfd.readouterr().err
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"radedit: error: {bad}: {message}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and printed == "", (proc.stderr, printed)
    assert not out.parent.exists() and bad.read_bytes() == before


def test_a_truncated_nifti_is_not_read_as_zeros(tmp_path, gray8):
    """ITK's NIfTI reader fills a truncated file's missing voxels with 0: nibabel reads the data first."""
    path = tmp_path / "cut.nii"
    sitk.WriteImage(sitk.GetImageFromArray(gray8), str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])  # the last 100 voxels
    with pytest.raises(InputError, match=r"cut\.nii: not a readable NIfTI file .*Expected 92160 bytes, got 92060"):
        read_image(path)


# -- JPEG in ------------------------------------------------------------------------------------------


def jpeg(path, array, **kw):
    Image.fromarray(array).save(path, format="JPEG", **kw)
    return path


def test_grayscale_jpeg_is_read_as_decoded(tmp_path, gray8):
    path = jpeg(tmp_path / "g.jpg", gray8, quality=95)
    image = read_image(path)
    assert image.format == "jpeg" and image.array.dtype == np.uint8 and image.value_range == (0, 255)
    assert np.array_equal(image.array, np.asarray(Image.open(path)))
    assert np.abs(image.array.astype(int) - gray8).mean() <= 2  # the same picture, at quality 95
    assert "notes" not in image.metadata


@pytest.mark.parametrize("quality", [75, 95, 100])
def test_colour_coded_grey_jpeg_is_its_luma_with_a_note(tmp_path, gray8, quality):
    # grey whose channels were 1 apart (as a colour pipeline leaves them), saved as a colour JPEG
    rng = np.random.default_rng(quality)
    rgb = np.clip(np.stack([gray8] * 3, -1).astype(int) + rng.integers(-1, 2, (*gray8.shape, 3)), 0, 255).astype(np.uint8)
    path = jpeg(tmp_path / "c.jpeg", rgb, quality=quality, subsampling=0)
    decoded = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    spread = int((decoded.max(-1) - decoded.min(-1)).max())
    assert 0 < spread <= JPEG_GRAY_TOLERANCE or quality == 75
    image = read_image(path)
    luma = np.rint(decoded @ [0.299, 0.587, 0.114])  # ITU-R BT.601
    assert image.array.dtype == np.uint8 and np.abs(image.array - luma).max() <= 1
    assert image.metadata["notes"] == [
        f"colour-coded JPEG whose red, green and blue agree within {spread} of 255 levels: read as grayscale, its "
        "luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the file's Y plane)"
    ]


def test_colour_jpeg_cmyk_jpeg_and_broken_jpeg_are_refused(tmp_path, gray8):
    colour = np.stack([gray8, gray8, gray8], -1).copy()
    colour[100:140, 100:200] = [200, 30, 30]  # a red annotation
    with pytest.raises(InputError, match=r"c\.jpg: colour JPEG \(its red, green and blue differ by up to \d+ levels"):
        read_image(jpeg(tmp_path / "c.jpg", colour, quality=90))
    Image.fromarray(np.stack([gray8] * 3, -1)).convert("CMYK").save(tmp_path / "k.jpg", format="JPEG")
    with pytest.raises(InputError, match=r"k\.jpg: CMYK JPEG; RadEdit reads 8-bit grayscale JPEG"):
        read_image(tmp_path / "k.jpg")
    (tmp_path / "b.jpg").write_bytes(jpeg(tmp_path / "ok.jpg", gray8).read_bytes()[:200])
    with pytest.raises(InputError, match=r"b\.jpg: cannot be read as a JPEG image"):
        read_image(tmp_path / "b.jpg")


def test_a_jpeg_mask_is_refused(tmp_path, gray8):
    image = read_image(jpeg(tmp_path / "g.jpg", gray8))
    with pytest.raises(MaskError, match=r"m\.jpg: a mask must not be JPEG: its lossy compression"):
        read_mask_array(jpeg(tmp_path / "m.jpg", (gray8 > 128).astype(np.uint8) * 255), image)


# -- output formats -----------------------------------------------------------------------------------


def test_jpeg_output_needs_a_quality_and_8_bits_png_is_the_default_for_jpeg_input(tmp_path, gray8):
    src = jpeg(tmp_path / "in.jpg", gray8)
    assert output_format_for_source("jpeg", ".jpg") == ("png", ".png")
    assert output_format_for_source("jpeg", ".jpg", "jpeg") == ("jpeg", ".jpg")
    assert format_name("jpg") == "jpeg" and output_format_for_path(tmp_path / "o.jpeg") == "jpeg"
    with pytest.raises(ConfigError, match=r"--output: JPEG output is lossy .*: give --jpeg-quality \(1-100\)"):
        prepare_edit(src, None, None, EditSettings(["x"]), tmp_path / "o.jpg", global_edit=True)
    with pytest.raises(ConfigError, match="--jpeg-quality applies to JPEG output only; the output format is png"):
        prepare_edit(src, None, None, EditSettings(["x"], jpeg_quality=90), tmp_path / "o.png", global_edit=True)
    Image.fromarray(gray8.astype(np.uint16) * 16).save(tmp_path / "in16.png")
    with pytest.raises(ConfigError, match="JPEG stores 8-bit pixels and the image holds uint16"):
        prepare_edit(tmp_path / "in16.png", None, None, EditSettings(["x"], jpeg_quality=90), tmp_path / "o.jpg",
                     global_edit=True)  # fmt: skip
    with pytest.raises(ConfigError, match="jpeg_quality: must be an integer from 1 to 100"):
        EditSettings(["x"], jpeg_quality=0)
    request = prepare_edit(src, None, None, EditSettings(["x"]), tmp_path / "o.png", global_edit=True)
    assert request.output_format == "png" and not list(tmp_path.glob("o.*"))


def test_jpeg_in_and_out_with_a_quality_says_it_is_lossy(tmp_path, gray8, radedit_home, capsys):
    src = jpeg(tmp_path / "in.jpg", gray8, quality=90)
    out = tmp_path / "edited.jpg"
    code = radedit_main(["-q", "edit", "--image", str(src), "--global-edit", "--prompt", "Moderate pulmonary edema",
                         "--model", "tiny", "--device", "cpu", "--steps", "4", "--jpeg-quality", "92",
                         "--output", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    written = Image.open(out)
    assert written.format == "JPEG" and written.mode == "L" and written.size == (gray8.shape[1], gray8.shape[0])
    sidecar = json.loads((tmp_path / "edited.jpg.json").read_text())
    assert sidecar["output"]["format"] == "jpeg" and sidecar["output"]["jpeg_quality"] == 92
    assert sidecar["settings"]["jpeg_quality"] == 92 and sidecar["input"]["format"] == "jpeg"
    assert any(n.startswith("written as JPEG at quality 92: lossy") for n in sidecar["notes"])
