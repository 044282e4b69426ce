"""Real-world DICOM faults (issue #9, section 3): the handed cases and our own variants.

Each kind has its right value asserted: stored values (against the case's
``true_stored`` or the synthetic generator's values), polarity, window,
attributes; written outputs validate with dciodvfy, or carry only errors that
the reader listed as inherited from the source.  The handed cases live in
``tests/data/dicom-faults`` (see its README).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLosslessSV1

from radedit_core.dicom import read_dicom_image, read_dicom_mask, write_derived_series
from radedit_core.dicom import decoding
from radedit_core.dicom.decoding import decode_stored_values
from radedit_core.dicom.luts import read_lut
from radedit_core.dicom.reading import is_radedit_output, read_header, voi_lut
from radedit_core.dicom.synthetic import make_cxr, save_dataset, voi_lut_entries, write_study
from radedit_core.workflow import make_edit_result
from radedit_core.dicom.validate import dciodvfy_executable, validate_dicom
from radedit_core.errors import InputError, MaskError
from radedit_core.imaging.io import read_mask_array
from radedit_core.imaging.intensity import to_stored
from radedit_core.imaging.transform import ModelSpaceTransform
from radedit_core.workflow import EditSettings

from dicom_checks import assert_valid_or_inherited

DATA = Path(__file__).parent / "data" / "dicom-faults"
SHAPE = dict(rows=96, columns=80)
BOX = (slice(30, 60), slice(20, 50))


def case(name: str, file: str = "image.dcm") -> Path:
    return DATA / name / file


def reference(name: str, file: str) -> np.ndarray:
    return np.load(DATA / name / file)["values"]


@pytest.fixture(autouse=True)
def _dciodvfy():
    if dciodvfy_executable() is None:
        pytest.fail("dciodvfy not found: install dicom3tools (scripts/install_system_packages.sh)", pytrace=False)


def box_edit(image, fraction: float = 0.05, box=BOX):
    """An edit without a model: the box gets denser by ``fraction`` of the stored range."""
    values = image.array.astype(np.int64)
    low, high = image.value_range
    values[box] += int(fraction * (high - low))
    mask = np.zeros(image.shape, bool)
    mask[box] = True
    return make_edit_result(image, np.clip(values, low, high), edit_mask=mask)


def voi_output(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's grayscale pipeline up to the VOI LUT output (before the presentation LUT)."""
    return apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)


def displays_inverted(ds: pydicom.Dataset) -> bool:
    """PS3.3 C.11.6: the Presentation LUT Shape decides, else the Photometric Interpretation."""
    shape = str(ds.get("PresentationLUTShape", "") or "")
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return ds.PhotometricInterpretation == "MONOCHROME1"


def consistent_pair(ds: pydicom.Dataset) -> bool:
    shape = ds.get("PresentationLUTShape")
    return shape is None or (shape == "INVERSE") == (ds.PhotometricInterpretation == "MONOCHROME1")


# -- 1. Presentation LUT Shape decides the polarity ------------------------------------------------


def test_mono2_with_inverse_reads_inverted_and_writes_monochrome1_inverse(tmp_path):
    path = case("A14a_cr_mono2_inverse")
    src = pydicom.dcmread(path)
    image = read_dicom_image(path)
    assert image.monochrome1  # high stored values display dark: the model gets them flipped
    np.testing.assert_array_equal(image.array, 4095 - src.pixel_array.astype(np.int64))
    # Window 2047/3600 LINEAR = stored [247, 3846], flipped within 0..4095.
    assert image.window == pytest.approx((4095 - 3846.0, 4095 - 247.0))
    assert image.metadata["polarity"]["presentation_lut_shape"] == "INVERSE"
    assert any("MONOCHROME2 with Presentation LUT Shape INVERSE" in n for n in image.metadata["notes"])
    out_path = write_derived_series(box_edit(image), tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    assert (out.PhotometricInterpretation, out.PresentationLUTShape) == ("MONOCHROME1", "INVERSE")
    outside = np.ones(image.shape, bool)
    outside[BOX] = False
    np.testing.assert_array_equal(out.pixel_array[outside], src.pixel_array[outside])  # stored values unchanged
    assert displays_inverted(out) and displays_inverted(src)
    np.testing.assert_array_equal(voi_output(out)[outside], voi_output(src)[outside])
    assert_valid_or_inherited(out_path, [])
    back = read_dicom_image(out_path)
    assert back.monochrome1 and not any("Presentation LUT Shape" in n for n in back.metadata["notes"])


POLARITY_VARIANTS = {
    "cr-mono2-inverse-16bit-big-endian": dict(
        kind="CR", photometric="MONOCHROME2", shape="INVERSE", bits_stored=16, transfer_syntax=ExplicitVRBigEndian
    ),
    "cr-mono1-identity-8bit": dict(kind="CR", photometric="MONOCHROME1", shape="IDENTITY", bits_stored=8),
    "dx-mono2-inverse-12bit": dict(kind="DX", photometric="MONOCHROME2", shape="INVERSE", bits_stored=12),
    "dx-mono1-identity-16bit": dict(kind="DX", photometric="MONOCHROME1", shape="IDENTITY", bits_stored=16),
    "sc-mono2-inverse-8bit": dict(kind="SC", photometric="MONOCHROME2", shape="INVERSE", bits_stored=8),
    "sc-mono1-identity-12bit-big-endian": dict(
        kind="SC", photometric="MONOCHROME1", shape="IDENTITY", bits_stored=12, transfer_syntax=ExplicitVRBigEndian
    ),
    "cr-mono1-inverse-consistent": dict(kind="CR", photometric="MONOCHROME1", shape="INVERSE", bits_stored=12),
}


@pytest.mark.parametrize("variant", list(POLARITY_VARIANTS))
def test_presentation_lut_shape_variants_display_like_the_source(tmp_path, variant):
    options = dict(POLARITY_VARIANTS[variant])
    kind, shape = options.pop("kind"), options.pop("shape")
    cxr = make_cxr(kind, **SHAPE, presentation_lut_shape=shape, private_tags=False, **options)
    path = cxr.save(tmp_path / "in.dcm")
    src = pydicom.dcmread(path)
    image = read_dicom_image(path)
    inverted = shape == "INVERSE"
    vmin, vmax = image.value_range
    expected = (vmax + vmin - cxr.stored) if inverted else cxr.stored
    np.testing.assert_array_equal(image.array, expected)
    assert image.monochrome1 == inverted
    assert any("the shape decides" in n for n in image.metadata["notes"]) == (not consistent_pair(src))
    # No edit: the derived image must display exactly like the source, in a conformant pair.
    out_path = write_derived_series(make_edit_result(image, image.array), tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    assert consistent_pair(out) and out.PhotometricInterpretation == ("MONOCHROME1" if inverted else "MONOCHROME2")
    np.testing.assert_array_equal(out.pixel_array, src.pixel_array)  # stored values unchanged
    assert displays_inverted(out) == displays_inverted(src) == inverted
    np.testing.assert_array_equal(voi_output(out), voi_output(src))
    assert_valid_or_inherited(out_path, [])


def test_multiframe_sc_with_inverse_gets_inverted_values_in_monochrome2(tmp_path):
    """The multi-frame grayscale SC IODs allow MONOCHROME2 only: same display, inverted stored values."""
    cxr = make_cxr("MF-SC", **SHAPE, presentation_lut_shape="INVERSE", private_tags=False)
    image = read_dicom_image(cxr.save(tmp_path / "in.dcm"))
    result = make_edit_result(image, image.array)
    series = write_derived_series(result, tmp_path / "out")
    out_path = series[0]
    out = pydicom.dcmread(out_path)
    assert (out.PhotometricInterpretation, out.PresentationLUTShape) == ("MONOCHROME2", "IDENTITY")
    np.testing.assert_array_equal(out.pixel_array, 4095 - cxr.stored)
    assert series.voi["action"] == "recomputed"  # the window was for the other values
    assert_valid_or_inherited(out_path, [])


# -- 2. HighBit != BitsStored - 1 ----------------------------------------------------------------------


def test_high_bit_15_case_reads_the_true_values_and_keeps_the_layout(tmp_path):
    name = "A27_highbit15_bitsstored12_cr"
    image = read_dicom_image(case(name))
    np.testing.assert_array_equal(image.array, reference(name, "true_stored.npz"))
    assert image.value_range == (0.0, 4095.0) and image.metadata["high_bit"] == 15
    assert any("bits 4..15" in n for n in image.metadata["notes"])
    # CR allows the layout: an unedited derived image has the very same pixel bytes.
    out_path = write_derived_series(make_edit_result(image, image.array), tmp_path / "same")[0]
    out = pydicom.dcmread(out_path)
    assert (int(out.BitsStored), int(out.HighBit)) == (12, 15)
    assert out.PixelData == pydicom.dcmread(case(name)).PixelData
    assert_valid_or_inherited(out_path, [])
    edited = box_edit(image)
    back = read_dicom_image(write_derived_series(edited, tmp_path / "edited")[0])
    np.testing.assert_array_equal(back.array, edited.image.array)


HIGH_BIT_VARIANTS = {
    "cr-10bit-signed-highbit13": (dict(kind="CR", bits_stored=10, high_bit=13, signed=True), 13),
    "cr-12bit-highbit15-big-endian": (
        dict(kind="CR", bits_stored=12, high_bit=15, transfer_syntax=ExplicitVRBigEndian),
        15,
    ),
    "sc-8bit-in-16-highbit15": (dict(kind="SC", bits_stored=8, bits_allocated=16, high_bit=15), 15),
    "dx-12bit-highbit15-normalised": (dict(kind="DX", bits_stored=12, high_bit=15), 11),
    "mf-sc-12bit-highbit15-normalised": (dict(kind="MF-SC", bits_stored=12, high_bit=15), 11),
}


@pytest.mark.parametrize("variant", list(HIGH_BIT_VARIANTS))
def test_high_bit_variants(tmp_path, variant):
    options, written_high_bit = HIGH_BIT_VARIANTS[variant]
    options = dict(options)
    cxr = make_cxr(options.pop("kind"), **SHAPE, private_tags=False, **options)
    image = read_dicom_image(cxr.save(tmp_path / "in.dcm"))
    np.testing.assert_array_equal(image.array, cxr.stored)
    result = box_edit(image)
    out_path = write_derived_series(result, tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    assert int(out.HighBit) == written_high_bit and int(out.BitsStored) == int(cxr.dataset.BitsStored)
    words = np.frombuffer(out.PixelData, "<u2").reshape(image.shape).astype(np.int64)
    bits = int(out.BitsStored)
    pattern = result.image.array.astype(np.int64) & ((1 << bits) - 1)
    np.testing.assert_array_equal(words, pattern << (written_high_bit - bits + 1))
    np.testing.assert_array_equal(read_dicom_image(out_path).array, result.image.array)
    assert_valid_or_inherited(out_path, [])


def test_impossible_high_bit_is_refused(tmp_path):
    cxr = make_cxr("CR", **SHAPE)
    cxr.dataset.HighBit = 9  # below BitsStored - 1 = 11
    with pytest.raises(InputError, match=r"HighBit 9 cannot hold BitsStored 12 in BitsAllocated 16"):
        read_dicom_image(save_dataset(cxr.dataset, tmp_path / "bad.dcm"))


# -- 3. decoders: cross-checked, a known fault set aside ----------------------------------------------


def test_jpeg_lossless_with_wrapped_differences_gives_the_true_values():
    name = "A07a_jpegll_wrapped_diffs_8bit"
    image = read_dicom_image(case(name))
    np.testing.assert_array_equal(image.array, reference(name, "true_stored.npz"))
    decoding_info = image.metadata["decoding"]
    assert decoding_info["plugins"] == ["gdcm"] and "pylibjpeg" in decoding_info["set_aside"]
    (note,) = [n for n in image.metadata["notes"] if "decoders disagree" in n]
    assert "pylibjpeg gives 99.8% of the pixels at 255" in note and "used gdcm" in note


def test_a_lone_decoder_with_a_white_image_is_refused():
    path = case("A07a_jpegll_wrapped_diffs_8bit")
    ds = pydicom.dcmread(path)
    refusal = r"pylibjpeg decodes the .* 99\.8% of the pixels at 255.*cannot be cross-checked"
    with pytest.raises(InputError, match=refusal):
        decode_stored_values(ds, path, ds.file_meta.TransferSyntaxUID, plugins=["pylibjpeg"])


def test_decoders_that_disagree_without_a_tell_are_refused(tmp_path, monkeypatch):
    cxr = make_cxr("CR", **SHAPE, transfer_syntax=JPEGLosslessSV1)
    path = cxr.save(tmp_path / "jl.dcm")
    image = read_dicom_image(path)  # the real decoders agree
    assert sorted(image.metadata["decoding"]["plugins"]) == ["gdcm", "pylibjpeg"]
    np.testing.assert_array_equal(image.array, cxr.stored)
    real = decoding._decode_in_child

    def off_by_seven(path, syntax, plugin):  # a decoder fault that leaves the values plausible
        words = real(path, syntax, plugin).astype(np.int64)
        words[10:20] += 7
        return words

    monkeypatch.setattr(decoding, "_decode_in_child", off_by_seven)
    with pytest.raises(InputError, match=r"decoders disagree \(pylibjpeg and gdcm differ in 10\.4% of the pixels\)"):
        read_dicom_image(path)


def test_lossy_jpeg_decoders_agree_within_rounding(tmp_path):
    """Pillow's baseline JPEG: pylibjpeg and Pillow differ by at most 1 (IDCT rounding) and are accepted."""
    import io

    cxr = make_cxr("CR", rows=128, columns=112, bits_stored=8, voi=None)
    buffer = io.BytesIO()
    Image.fromarray(cxr.stored.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    ds = cxr.dataset
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    image = read_dicom_image(save_dataset(ds, tmp_path / "baseline.dcm"))
    assert len(image.metadata["decoding"]["plugins"]) == 2
    pillow = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.int64)
    assert int(np.abs(image.array.astype(np.int64) - pillow).max()) <= 1


# -- 4. VOI LUT: word size, byte order, re-encoded on write ---------------------------------------------


def test_big_endian_ow_voi_lut_survives_into_the_little_endian_output(tmp_path):
    path = case("A03d_voilut_ow_bigendian_cr")
    src = pydicom.dcmread(path)
    item = src.VOILUTSequence[0]
    count, first, bits = (int(v) for v in item.LUTDescriptor)
    truth = np.frombuffer(item.LUTData, ">u2").astype(np.int64)[:count]  # what the file encodes
    assert (count, first, bits) == (4096, 0, 16) and item["LUTData"].VR == "OW"
    image = read_dicom_image(path)
    lut = voi_lut(image.metadata["dataset"])
    np.testing.assert_array_equal(lut.entries, truth)
    start = int(np.flatnonzero(truth != truth[0])[0]) - 1
    stop = int(np.flatnonzero(truth != truth[-1])[-1]) + 1
    assert image.metadata["voi"] == {"kind": "lut", "low": float(first + start), "high": float(first + stop)}
    assert image.window == pytest.approx((4095.0 - stop, 4095.0 - start))  # MONOCHROME1: flipped
    out_path = write_derived_series(box_edit(image, 0.01), tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    # pydicom's own VOI LUT code reads the output's LUT as the file's true entries...
    np.testing.assert_array_equal(apply_voi_lut(np.arange(count), out), truth)
    # ...and every pixel outside the edit displays as in the source.
    outside = np.ones(image.shape, bool)
    outside[BOX] = False
    np.testing.assert_array_equal(voi_output(out)[outside], voi_output(src)[outside])
    assert_valid_or_inherited(out_path, [])


LUT_ENCODINGS = {
    "16bit-US": dict(lut_bits=16, lut_vr="US"),
    "16bit-OW": dict(lut_bits=16, lut_vr="OW"),
    "8bit-US-one-per-word": dict(lut_bits=8, lut_vr="US"),
    "8bit-OW-one-per-word": dict(lut_bits=8, lut_vr="OW"),
    "8bit-US-packed": dict(lut_bits=8, lut_vr="US", lut_packed=True),
    "8bit-OW-packed": dict(lut_bits=8, lut_vr="OW", lut_packed=True),
}


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian], ids=["little", "big"])
@pytest.mark.parametrize("encoding", list(LUT_ENCODINGS))
def test_voi_lut_encodings(tmp_path, encoding, syntax):
    options = LUT_ENCODINGS[encoding]
    cxr = make_cxr("CR", **SHAPE, voi="lut", transfer_syntax=syntax, photometric="MONOCHROME1", **options)
    first, entries = voi_lut_entries(cxr.stored, 1.0, 0.0, options["lut_bits"])
    image = read_dicom_image(cxr.save(tmp_path / "in.dcm"))
    lut = voi_lut(image.metadata["dataset"])
    assert (lut.first, lut.bits) == (first, options["lut_bits"])
    np.testing.assert_array_equal(lut.entries, entries)
    start = int(np.flatnonzero(entries != entries[0])[0]) - 1
    stop = int(np.flatnonzero(entries != entries[-1])[-1]) + 1
    assert image.window == pytest.approx((4095.0 - (first + stop), 4095.0 - (first + start)))
    out_path = write_derived_series(make_edit_result(image, image.array), tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    written = read_lut(out.VOILUTSequence[0], True, False)
    inputs = np.arange(first - 3, first + entries.size + 3)
    assert written.bits == options["lut_bits"]
    np.testing.assert_array_equal(written.apply(inputs), lut.apply(inputs))  # the same function
    assert_valid_or_inherited(out_path, [])


def test_dx_voi_lut_with_8bit_entries_is_widened(tmp_path):
    cxr = make_cxr("DX", **SHAPE, voi="lut", lut_bits=8, lut_vr="OW", lut_packed=True, private_tags=False)
    image = read_dicom_image(cxr.save(tmp_path / "in.dcm"))
    assert any("16-bit entries (x 257)" in n for n in image.metadata["notes"])
    out_path = write_derived_series(make_edit_result(image, image.array), tmp_path / "out")[0]
    written = read_lut(pydicom.dcmread(out_path).VOILUTSequence[0], True, False)
    source = voi_lut(image.metadata["dataset"])
    inputs = np.arange(source.first, source.first + source.entries.size)
    assert written.bits == 16
    np.testing.assert_array_equal(written.apply(inputs), source.apply(inputs) * 257)
    assert_valid_or_inherited(out_path, [])


# -- 5. missing Type 1 identifiers -------------------------------------------------------------------


def test_missing_series_uid_is_an_error_at_read_time(tmp_path):
    path = case("A16a_no_series_uid_sc")
    message = r"image\.dcm: SeriesInstanceUID \(0020,000E\) is missing or empty; it is Type 1"
    with pytest.raises(InputError, match=message):
        read_dicom_image(path)
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(path, folder / "image.dcm")
    with pytest.raises(InputError, match="SeriesInstanceUID"):
        read_dicom_image(folder)


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SOPInstanceUID"])
def test_missing_study_or_instance_uid_is_an_error_also_in_a_folder(tmp_path, keyword):
    ds = make_cxr("CR", **SHAPE).dataset
    setattr(ds, keyword, "")
    path = save_dataset(ds, tmp_path / "study" / "cr.dcm")
    for where in (path, path.parent):  # a folder indexes it, instead of seeming empty
        with pytest.raises(InputError, match=rf"cr\.dcm: {keyword} \(\S+\) is missing or empty"):
            read_dicom_image(where)


# -- 6. Type 1 positions never get empty values; inherited errors are listed ---------------------------------


def test_empty_manufacturer_gives_a_valid_derived_series(tmp_path):
    image = read_dicom_image(case("A17_empty_manufacturer_cr"))
    assert any("Manufacturer is empty" in n and "StationName 'ROOM1'" in n for n in image.metadata["notes"])
    files = write_derived_series(box_edit(image), tmp_path / "out", write_seg=True)
    for path in files:
        report = validate_dicom(path)
        assert report.iod and report.ok, str(report)
    out = pydicom.dcmread(files[0])
    for item in out.get("ContributingEquipmentSequence", []):
        assert str(item.Manufacturer).strip()
    assert out.Manufacturer == "radedit_core"


def test_inherited_errors_are_listed_and_copied_unrepaired(tmp_path):
    cxr = make_cxr("DX", **SHAPE, private_tags=False)
    ds = cxr.dataset
    del ds.AnatomicRegionSequence
    ds.ImageLaterality = ""
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        ds.PatientBirthDate = "1970-01-01"  # DA is YYYYMMDD
    ds.BodyPartExamined = "CHEST"
    item = pydicom.Dataset()
    item.Manufacturer = ""
    ds.ContributingEquipmentSequence = pydicom.Sequence([item])
    image = read_dicom_image(save_dataset(ds, tmp_path / "in.dcm"))
    notes = image.metadata["notes"]
    for fragment in (
        "AnatomicRegionSequence is missing or empty (Type 1 in the DX IOD)",
        "ImageLaterality is missing or empty",
        "PatientBirthDate value '1970-01-01' is not a valid DA",
        "ContributingEquipmentSequence item 1 lacks Manufacturer",
    ):
        assert any(fragment in n for n in notes), (fragment, notes)
    out_path = write_derived_series(box_edit(image), tmp_path / "out")[0]
    out = pydicom.dcmread(out_path)
    assert out.PatientBirthDate == "1970-01-01" and out.ImageLaterality == ""  # not repaired
    assert "AnatomicRegionSequence" not in out  # not invented
    assert validate_dicom(out_path).errors  # the output does carry them...
    assert_valid_or_inherited(out_path, notes)  # ...and only them


# -- 7. Pixel Padding Value ------------------------------------------------------------------------------


def test_padding_case_is_kept_out_of_the_range_and_unchanged_by_an_edit(tmp_path, micro_editor):
    editor = micro_editor  # mechanics (what padding does to the range, the edit and the file): the micro model
    path = case("A15_pixel_padding_cr")
    src = pydicom.dcmread(path)
    image = read_dicom_image(path)
    padding = src.pixel_array == 0
    assert image.padding_range == (0.0, 0.0) and np.array_equal(image.padding, padding)
    assert padding.mean() > 0.2 and image.metadata["padding"]["pixels"] == int(padding.sum())
    # Without the VOI window the model's range is the image's, not the border's.
    no_window = dataclasses.replace(image, window=None)
    transform = ModelSpaceTransform.fit(no_window)
    r0, c0, size = transform.crop
    crop = no_window.array[r0 : r0 + size, c0 : c0 + size]
    assert transform.low == crop[~padding[r0 : r0 + size, c0 : c0 + size]].min() > 0
    # An edit mask reaching into the border: the border stays, nothing else becomes padding.
    edit = np.zeros(image.shape, bool)
    edit[:120, :] = True
    settings = EditSettings(["Small left pleural effusion"], steps=4, skip_ratio=0.25, detail="decoded")
    result = editor.edit(no_window, edit, None, settings)
    out = result.image.array
    assert np.array_equal(out[padding], image.array[padding])
    assert not np.any(out[~padding] == 0) and np.any(out[~padding & edit] != image.array[~padding & edit])
    out_path = write_derived_series(result, tmp_path / "out")[0]
    written = pydicom.dcmread(out_path)
    assert written.PixelPaddingValue == 0 and np.array_equal(written.pixel_array == 0, padding)
    assert_valid_or_inherited(out_path, [])


def test_padding_range_and_monochrome1_padding(tmp_path):
    cxr = make_cxr("CR", **SHAPE, photometric="MONOCHROME1", padding_value=4095, transfer_syntax=ExplicitVRBigEndian)
    ds = cxr.dataset
    ds.PixelPaddingRangeLimit = 4090  # padding is 4090..4095 in stored values
    ds["PixelPaddingRangeLimit"].VR = "US"
    image = read_dicom_image(save_dataset(ds, tmp_path / "in.dcm"))
    assert image.padding_range == (0.0, 5.0)  # in display polarity: flipped
    assert np.array_equal(image.padding, cxr.stored >= 4090)
    # Values an edit maps into the padding range move just outside it.
    wanted = image.array.astype(np.float64)
    wanted[~image.padding] = 2.0
    stored = to_stored(wanted, image)
    assert np.all(stored[~image.padding] == 6) and np.array_equal(stored[image.padding], image.array[image.padding])
    result = make_edit_result(image, stored)
    out = pydicom.dcmread(write_derived_series(result, tmp_path / "out")[0])
    assert (out.PixelPaddingValue, out.PixelPaddingRangeLimit) == (4095, 4090)
    np.testing.assert_array_equal(out.pixel_array[image.padding], cxr.stored[image.padding])


# -- 8. CR with PixelSpacing only: a Slicer mask on ITK's 1 mm grid ------------------------------------------


def test_slicer_mask_on_itk_1mm_grid_is_accepted_with_a_note(tmp_path):
    name = "A05e_cr_pixelspacing_only_slicer_mask"
    image = read_dicom_image(case(name))
    assert image.geometry.spacing == (0.5, 0.5)
    assert sitk.ReadImage(str(case(name))).GetSpacing() == (1.0, 1.0, 1.0)  # the reader convention
    mask = read_mask_array(case(name, "edit.seg.nrrd"), image)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(case(name, "edit.seg.nrrd"))))[0]
    np.testing.assert_array_equal(mask, expected)
    assert any("ITK/GDCM (and so 3D Slicer)" in n and "1 x 1 mm" in n for n in image.metadata["notes"])
    # The convention is not a licence: a mask on another grid is still refused.
    shifted = sitk.ReadImage(str(case(name, "edit.seg.nrrd")))
    shifted.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.seg.nrrd"))
    with pytest.raises(MaskError, match="geometry"):
        read_mask_array(tmp_path / "shifted.seg.nrrd", read_dicom_image(case(name)))


def test_cli_edits_the_cr_with_its_slicer_mask(tmp_path, radedit_home, micro_model_dir):
    from cli_runner import radedit  # in this process: the test checks the files, not the process

    name = "A05e_cr_pixelspacing_only_slicer_mask"
    out = tmp_path / "edited"
    proc = radedit("-q", "edit", "--image", case(name), "--edit-mask", case(name, "edit.seg.nrrd"),
                   "--prompt", "Small left pleural effusion", "--model", micro_model_dir, "--device", "cpu",
                   "--steps", "4", "--output", out, home=radedit_home)
    assert proc.returncode == 0, proc.stderr
    assert_valid_or_inherited(out / "edited.dcm", [])
    assert json.loads((tmp_path / "edited.json").read_text())["masks"]["edit_pixels"] > 0


# -- 9. FRACTIONAL SEG --------------------------------------------------------------------------------------


def test_fractional_seg_low_probability_background_is_not_edited(tmp_path):
    name = "A20_seg_fractional_lowprob"
    image = read_dicom_image(case(name))
    probability = reference(name, "prob.npz")
    stored = np.rint(probability * 255)  # as the SEG stores it (Maximum Fractional Value 255)
    binary = read_mask_array(case(name, "seg.dcm"), image)
    np.testing.assert_array_equal(binary, stored >= 127.5)
    assert np.mean(probability > 0) > 0.6 and binary.mean() < 0.03  # the 0.02 background is outside
    assert any("used as a binary mask" in n and "at least 0.5" in n for n in image.metadata["notes"])
    soft = read_dicom_mask(case(name, "seg.dcm"), image, soft=True)
    np.testing.assert_allclose(soft, probability, atol=0.5 / 255 + 1e-6)
    # The written SEG says what was used: the thresholded mask as BINARY, the fractions as FRACTIONAL.
    for mask, soft_masks, kind in ((binary, False, "BINARY"), (soft, True, "FRACTIONAL")):
        result = make_edit_result(image, image.array, edit_mask=mask, soft=soft_masks)
        seg_path = write_derived_series(result, tmp_path / kind, write_seg=True)[1]
        seg = pydicom.dcmread(seg_path)
        assert seg.SegmentationType == kind
        back = read_dicom_image(tmp_path / kind / "edited.dcm")
        written = read_dicom_mask(seg_path, back, select="edit", soft=soft_masks)
        np.testing.assert_allclose(written, mask, atol=0.5 / 255 + 1e-6)


# -- 11. earlier edits in the study are not candidates ---------------------------------------------------------


def test_a_study_with_an_earlier_edit_still_has_one_source_image(tmp_path):
    study = write_study(tmp_path / "study", kinds=("CR",), seg=True, **SHAPE)
    source = read_dicom_image(study.folder)
    files = write_derived_series(box_edit(source), study.folder / "radedit-1", write_seg=True)
    assert all(is_radedit_output(pydicom.dcmread(f)) for f in files)
    assert not is_radedit_output(pydicom.dcmread(study.images[0]))
    assert read_header(files[0]).written_by_radedit
    again = read_dicom_image(study.folder)  # not "holds 2 images"
    assert again.path == study.images[0]
    edit_uid = pydicom.dcmread(files[0]).SOPInstanceUID
    assert read_dicom_image(study.folder, select=edit_uid).path == files[0]  # an edit of an edit, on request
    # Other derived images (a processed DX from the modality) are still candidates.
    processed = make_cxr("DX", **SHAPE, study=study.study, series_number=2)
    processed.dataset.ImageType = ["DERIVED", "SECONDARY"]
    processed.dataset.DerivationDescription = "Edge enhancement"
    processed.save(study.folder / "dx.dcm")
    with pytest.raises(InputError, match=r"holds 2 images \(1 earlier radedit edits are not candidates\)"):
        read_dicom_image(study.folder)


def test_a_folder_of_radedit_outputs_only_needs_select(tmp_path):
    cxr = make_cxr("CR", **SHAPE)
    image = read_dicom_image(cxr.save(tmp_path / "source.dcm"))
    (one,) = [p for p in write_derived_series(box_edit(image), tmp_path / "only") if p.name == "edited.dcm"]
    assert read_dicom_image(tmp_path / "only").path == one  # a derived series folder read back is its image
    write_derived_series(box_edit(image), tmp_path / "only" / "again")
    with pytest.raises(InputError, match="holds only images radedit wrote .* choose one with select"):
        read_dicom_image(tmp_path / "only")
