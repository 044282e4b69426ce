"""Derived DICOM series: conformance (dciodvfy), round trips (pydicom, SimpleITK), rules, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1, generate_uid

from cli_runner import radedit as run_radedit
from radedit_core.dicom import (
    choose_series_number,
    derived_voi,
    read_dicom_image,
    read_dicom_mask,
    write_derived_series,
)
from radedit_core.dicom.sop import MULTIFRAME_SC_SOP_CLASSES, SECONDARY_CAPTURE
from radedit_core.dicom.synthetic import StudyInfo, make_cxr, save_dataset, write_study
from radedit_core.workflow import make_edit_result
from radedit_core.dicom.validate import dciodvfy_executable, validate_dicom
from radedit_core.dicom.writing import FIRST_DERIVED_SERIES_NUMBER, PATIENT_AND_STUDY_ATTRIBUTES
from radedit_core.errors import ConfigError, OutputError
from radedit_core.settings import cli_name
from radedit_core.imaging.io import read_image, write_like

SHAPE = dict(rows=160, columns=144)
ROOT = "1.2.826.0.1.3680043.10.999"
PROMPT = "Moderate pulmonary edema. The heart size is normal"


def require_dciodvfy() -> None:
    if dciodvfy_executable() is None:
        pytest.fail("dciodvfy not found: install dicom3tools (scripts/install_system_packages.sh)", pytrace=False)


def assert_valid(path: Path) -> None:
    report = validate_dicom(path)
    assert report.iod and report.ok, str(report)


def stored_mono1_aware(image, values: np.ndarray) -> np.ndarray:
    """MONOCHROME2-polarity values -> the source's own stored polarity."""
    vmin, vmax = image.value_range
    return (vmax + vmin - values.astype(np.int64)) if image.monochrome1 else values.astype(np.int64)


def lung_edit(cxr, image, delta_fraction: float = 0.05, region: str = "left_lung"):
    """Denser (brighter in MONOCHROME2) inside one lung, as an edit would make it."""
    edit = cxr.phantom.mask(region)
    keep = cxr.phantom.mask("pacemaker")
    low, high = image.value_range
    values = image.array.astype(np.int64)
    values[edit] += int(delta_fraction * (high - low))
    return make_edit_result(
        image,
        np.clip(values, low, high),
        edit_mask=edit,
        keep_mask=keep,
        prompts=[PROMPT],
        seed=11,
        mask_paths=("/data/lungs.png", "/data/pacemaker.png"),
    )


WRITE_VARIANTS = {
    "cr-mono1-12bit-rescale-voilut": dict(kind="CR", photometric="MONOCHROME1", rescale=(2.0, -1024.0), voi="lut"),
    "cr-mono2-16bit": dict(kind="CR", bits_stored=16),
    "cr-mono1-signed": dict(kind="CR", photometric="MONOCHROME1", signed=True, rescale=(1.0, -100.0)),
    "dx-presentation-mono1": dict(kind="DX", photometric="MONOCHROME1"),
    "dx-presentation-voilut": dict(kind="DX", voi="lut", bits_stored=14),
    "dx-processing": dict(kind="DX-PROCESSING", voi=None),
    "sc-8bit": dict(kind="SC", bits_stored=8),
    "mf-sc-byte": dict(kind="MF-SC", bits_stored=8),
    "mf-sc-word": dict(kind="MF-SC", bits_stored=12),
    "cr-jpeg-lossless-source": dict(kind="CR", transfer_syntax=JPEGLosslessSV1, photometric="MONOCHROME1"),
    "dx-jpeg2000-source": dict(kind="DX", transfer_syntax=JPEG2000Lossless),
    "cr-patient-geometry": dict(kind="CR", patient_geometry=True),
}


@pytest.mark.parametrize("variant", list(WRITE_VARIANTS))
def test_derived_series_round_trip(tmp_path, variant):
    require_dciodvfy()
    options = dict(WRITE_VARIANTS[variant])
    study = StudyInfo.new(patient_name="Müller^Anna", character_set="ISO_IR 100")
    cxr = make_cxr(options.pop("kind"), **SHAPE, study=study, **options)
    source_path = cxr.save(tmp_path / "in" / "source.dcm")
    image = read_dicom_image(source_path)
    result = lung_edit(cxr, image)
    files = write_derived_series(result, tmp_path / "out", uid_root=ROOT, write_seg=True)
    assert [p.name for p in files] == ["edited.dcm", "masks.dcm"]
    for path in files:
        assert_valid(path)  # dciodvfy: no errors

    src = cxr.dataset
    ds = pydicom.dcmread(files[0])
    # Encoding: uncompressed, no private tags.
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not any(element.tag.is_private for element in ds.iterall())
    # Same SOP class, modality and pixel description.
    for keyword in (
        "SOPClassUID",
        "Modality",
        "Rows",
        "Columns",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "RescaleSlope",
        "RescaleIntercept",
        "RescaleType",
        "PixelSpacing",
        "ImagerPixelSpacing",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PresentationIntentType",
    ):
        assert ds.get(keyword) == src.get(keyword), keyword
    # Patient and study modules copied unchanged.
    for keyword in PATIENT_AND_STUDY_ATTRIBUTES:
        assert ds.get(keyword) == src.get(keyword), keyword
    assert str(ds.PatientName) == "Müller^Anna"
    # New identity, derived, pointing at its source.
    assert ds.SeriesInstanceUID.startswith(ROOT + ".") and ds.SOPInstanceUID.startswith(ROOT + ".")
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert int(ds.SeriesNumber) == FIRST_DERIVED_SERIES_NUMBER
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription == "RadEdit: " + PROMPT
    (ref,) = ds.SourceImageSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    (purpose,) = ref.PurposeOfReferenceCodeSequence
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
        "121322",
        "DCM",
        "Source image for image processing operation",
    )
    (series_ref,) = ds.ReferencedSeriesSequence
    assert series_ref.SeriesInstanceUID == src.SeriesInstanceUID
    assert series_ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    for text in (PROMPT, "lungs.png", "pacemaker.png", "synthetic-edit", "seed 11"):
        assert text in ds.DerivationDescription
    # Pixels: the edit, in the source's own polarity; our reader gives back the edited array.
    expected = stored_mono1_aware(image, result.image.array)
    np.testing.assert_array_equal(ds.pixel_array.astype(np.int64), expected)
    back = read_dicom_image(files[0])
    np.testing.assert_array_equal(back.array, result.image.array)
    assert back.monochrome1 == image.monochrome1 and back.value_range == image.value_range
    # SimpleITK (GDCM) reads the same grid and values: rescaled, MONOCHROME1 inverted.
    if not (image.monochrome1 and int(src.PixelRepresentation) == 1):  # GDCM cannot invert signed MONOCHROME1
        itk = sitk.ReadImage(str(files[0]))
        assert itk.GetSize()[:2] == (SHAPE["columns"], SHAPE["rows"])
        if src.SOPClassUID not in MULTIFRAME_SC_SOP_CLASSES:  # GDCM gives multi-frame SC 1 mm pixels
            itk_spacing = src.get("ImagerPixelSpacing") or src.get("PixelSpacing")
            assert itk.GetSpacing()[:2] == pytest.approx((float(itk_spacing[1]), float(itk_spacing[0])))
            assert back.geometry.spacing[:2] == pytest.approx(itk.GetSpacing()[:2])
            assert back.geometry.origin[:2] == pytest.approx(itk.GetOrigin()[:2])
            if back.geometry.dimension == 3:
                assert back.geometry.direction == pytest.approx(itk.GetDirection())
        slope, intercept = float(src.get("RescaleSlope", 1)), float(src.get("RescaleIntercept", 0))
        np.testing.assert_allclose(
            sitk.GetArrayFromImage(itk)[0].astype(np.float64), back.array.astype(np.float64) * slope + intercept
        )
    # The SEG: its own series, referencing the new image, with the masks as applied.
    seg = pydicom.dcmread(files[1])
    assert seg.StudyInstanceUID == src.StudyInstanceUID and int(seg.SeriesNumber) == FIRST_DERIVED_SERIES_NUMBER + 1
    assert seg.SeriesInstanceUID.startswith(ROOT + ".")
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    np.testing.assert_array_equal(read_dicom_mask(files[1], back, select="edit"), result.masks.edit > 0)
    np.testing.assert_array_equal(read_dicom_mask(files[1], back, select="keep"), result.masks.keep > 0)
    # The sources are untouched and the provenance records the new series.
    assert files.series_instance_uid == ds.SeriesInstanceUID and files.to_dict()["series_number"] == ds.SeriesNumber


def test_voi_kept_while_valid_else_recomputed(tmp_path):
    cxr = make_cxr("CR", **SHAPE, photometric="MONOCHROME1", rescale=(2.0, -1024.0))
    image = read_dicom_image(cxr.save(tmp_path / "cr.dcm"))
    src = cxr.dataset
    small = lung_edit(cxr, image, 0.02)
    small_series = write_derived_series(small, tmp_path / "small")
    ds = pydicom.dcmread(small_series[0])
    assert (ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation) == (
        src.WindowCenter,
        src.WindowWidth,
        src.WindowCenterWidthExplanation,
    )
    assert small_series.voi["action"] == "kept"
    # Pushing a whole lung to the densest value saturates it under the old window.
    values = image.array.copy()
    both = cxr.phantom.mask("left_lung", "right_lung")
    values[both] = image.value_range[1]
    big = make_edit_result(image, values, edit_mask=both)
    big_series = write_derived_series(big, tmp_path / "big")
    ds = pydicom.dcmread(big_series[0])
    assert ds.WindowCenterWidthExplanation == "RADEDIT RECOMPUTED"
    assert big_series.voi["action"] == "recomputed"
    stored = ds.pixel_array.astype(np.float64) * 2.0 - 1024.0
    low = float(ds.WindowCenter) - 0.5 - (float(ds.WindowWidth) - 1) / 2
    high = float(ds.WindowCenter) - 0.5 + (float(ds.WindowWidth) - 1) / 2
    assert np.mean((stored < low) | (stored > high)) <= 0.011  # 0.5 % at each end


def test_voi_lut_replaced_by_window_when_invalid(tmp_path):
    cxr = make_cxr("DX", **SHAPE, voi="lut")
    image = read_dicom_image(cxr.save(tmp_path / "dx.dcm"))
    values = image.array.copy()
    values[cxr.phantom.mask("left_lung", "right_lung", "heart")] = 0
    files = write_derived_series(make_edit_result(image, values), tmp_path / "out")
    ds = pydicom.dcmread(files[0])
    assert "VOILUTSequence" not in ds and "WindowCenter" in ds
    require_dciodvfy()
    assert_valid(files[0])  # DX for presentation keeps a VOI


def test_dx_for_processing_output_has_no_voi(tmp_path):
    require_dciodvfy()
    cxr = make_cxr("DX-PROCESSING", **SHAPE)
    cxr.dataset.WindowCenter, cxr.dataset.WindowWidth = 2048, 4096  # not allowed there, but seen in archives
    image = read_dicom_image(cxr.save(tmp_path / "dxp.dcm"))
    files = write_derived_series(lung_edit(cxr, image), tmp_path / "out")
    ds = pydicom.dcmread(files[0])
    assert "WindowCenter" not in ds and "VOILUTSequence" not in ds
    assert_valid(files[0])


def test_derived_voi_required_without_a_source_voi():
    ds = make_cxr("DX-PROCESSING", **SHAPE, voi=None).dataset
    values = np.arange(1000)
    assert derived_voi(ds, values, values, required=False).action == "none"
    decision = derived_voi(ds, values, values, required=True)
    assert decision.action == "recomputed" and decision.width > 900


def test_series_number_rule(tmp_path):
    assert choose_series_number({1, 2}) == FIRST_DERIVED_SERIES_NUMBER
    assert choose_series_number({1, 1000, 1001}) == 1002
    assert choose_series_number({1, 2}, 7) == 7
    with pytest.raises(ConfigError, match=r"^series_number: 2 is already used in the study \(used: 1, 2\)"):
        choose_series_number({1, 2}, 2)
    # the option named as the front end spells it (the settings layer's namers)
    with pytest.raises(ConfigError, match=r"^--series-number: 1 is already used in the study"):
        choose_series_number({1, 100}, 1, cli_name)
    for number in (-5, 2**31):
        with pytest.raises(ConfigError, match=rf"^series_number: must be an integer from 0 to 2147483647, got {number}"):
            choose_series_number({1}, number)
    # The study folder already holds a derived series 1000: the next edit gets 1001.
    study = write_study(tmp_path / "study", kinds=("CR",), **SHAPE)
    first = read_dicom_image(study.folder)
    write_derived_series(lung_edit(study.cxrs[0], first), study.folder / "derived1")
    again = read_dicom_image(study.folder, select=study.cxrs[0].dataset.SOPInstanceUID)
    files = write_derived_series(lung_edit(study.cxrs[0], again), tmp_path / "derived2")
    assert int(pydicom.dcmread(files[0]).SeriesNumber) == 1001
    with pytest.raises(ConfigError, match="already used"):
        write_derived_series(lung_edit(study.cxrs[0], again), tmp_path / "derived3", series_number=1000)


def test_uid_root_and_description_checks(tmp_path):
    cxr = make_cxr("CR", **SHAPE)
    image = read_dicom_image(cxr.save(tmp_path / "cr.dcm"))
    result = lung_edit(cxr, image)
    for root, message in (("1.2.abc", "not a DICOM UID prefix"), ("1.2." + "3" * 45, "at most 40")):
        with pytest.raises(ConfigError, match=rf"^uid_root: '{root}' is .*{message}"):
            write_derived_series(result, tmp_path / "bad", uid_root=root)
    with pytest.raises(ConfigError, match="^series_description: is 65 characters; DICOM allows at most 64$"):
        write_derived_series(result, tmp_path / "bad", series_description="x" * 65)
    # LO's 64 count bytes: 64 characters of which some take two bytes in UTF-8 are refused too, not cut
    for text in ("é" * 64, "Pneumothorax côté droit " + "x" * 39, "🙂" * 17):
        size = len(text.encode("utf-8"))
        with pytest.raises(ConfigError, match=rf"^series_description: is {size} bytes in UTF-8 \({len(text)} charac"):
            write_derived_series(result, tmp_path / "bad", series_description=text)
    with pytest.raises(ConfigError, match="^--series-description: is 65 characters"):
        write_derived_series(result, tmp_path / "bad", series_description="x" * 65, name=cli_name)
    assert not (tmp_path / "bad").exists()
    files = write_derived_series(result, tmp_path / "ok", uid_root="2.25.42", series_description="Lungs denser")
    ds = pydicom.dcmread(files[0])
    assert ds.SeriesDescription == "Lungs denser" and ds.SOPInstanceUID.startswith("2.25.42.")
    long_prompt = "Left pectoral pacemaker in place. The position of the leads is as expected."
    files = write_derived_series(make_edit_result(image, image.array, prompts=[long_prompt, "x"]), tmp_path / "long")
    description = pydicom.dcmread(files[0]).SeriesDescription
    assert len(description) == 64 and description.startswith("RadEdit: Left pectoral") and description.endswith("...")


def test_text_outside_the_source_charset_switches_to_utf8(tmp_path):
    require_dciodvfy()
    study = StudyInfo.new(patient_name="Müller^Anna", character_set="ISO_IR 100")
    cxr = make_cxr("CR", **SHAPE, study=study)
    image = read_dicom_image(cxr.save(tmp_path / "cr.dcm"))
    prompt = "Épanchement pleural → gauche"
    result = make_edit_result(image, image.array, prompts=[prompt])
    files = write_derived_series(result, tmp_path / "out")
    ds = pydicom.dcmread(files[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.SeriesDescription == "RadEdit: " + prompt and prompt in ds.DerivationDescription
    assert str(ds.PatientName) == "Müller^Anna"
    assert_valid(files[0])


@pytest.mark.parametrize("charset, name", [
    # PS3.5 annexes H and I: the ISO 2022 forms whose first value is empty (the default repertoire)
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    (["ISO 2022 IR 6", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동"),
])
def test_a_seg_keeps_the_sources_iso_2022_character_set(tmp_path, charset, name):
    """highdicom refuses the empty first value (and names Korean's extension wrongly): a SEG of such a
    source used to crash after the edit."""
    require_dciodvfy()
    study = StudyInfo.new(patient_name=name, character_set=charset)
    cxr = make_cxr("CR", **SHAPE, study=study)
    image = read_dicom_image(cxr.save(tmp_path / "cr.dcm"))
    files = write_derived_series(lung_edit(cxr, image), tmp_path / "out", write_seg=True)
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.SpecificCharacterSet == charset
        assert ds.PatientName == name and ds["PatientName"].value.original_string == cxr.dataset["PatientName"].value.original_string
        assert_valid(path)


def test_seg_texts_fit_their_vr_in_the_bytes_of_the_character_set(tmp_path):
    """LO (segment labels, SeriesDescription) holds 64 bytes; in ISO 2022 IR 87 a kanji takes two and
    each switch of character set three more."""
    from radedit_core.dicom.seg import build_segmentation

    require_dciodvfy()
    study = StudyInfo.new(patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", character_set=["", "ISO 2022 IR 87"])
    cxr = make_cxr("CR", **SHAPE, study=study)
    image = pydicom.dcmread(cxr.save(tmp_path / "cr.dcm"))
    label = "左肺 pneumothorax 気胸 " * 6
    seg = build_segmentation(image, {label: cxr.phantom.mask("left_lung")}, series_uid=generate_uid(),
                             sop_uid=generate_uid(), series_number=1001, series_description="マスク " + label)
    seg.save_as(tmp_path / "seg.dcm")
    back = pydicom.dcmread(tmp_path / "seg.dcm")
    encodings = pydicom.charset.convert_encodings(back.SpecificCharacterSet)
    for text in (back.SegmentSequence[0].SegmentLabel, back.SeriesDescription):
        assert text.endswith("...") and len(pydicom.charset.encode_string(text, encodings)) <= 64, text
    assert back.SegmentSequence[0].SegmentLabel.startswith("左肺 pneumothorax 気胸")
    assert_valid(tmp_path / "seg.dcm")


@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192"])
def test_text_derived_from_a_non_ascii_prompt_fits_its_vr_in_bytes(tmp_path, charset):
    """LO (SeriesDescription, 64) and ST (DerivationDescription, 1024) count encoded bytes: a prompt
    whose first 64 characters are 71 bytes in UTF-8 used to fail dciodvfy."""
    require_dciodvfy()
    study = StudyInfo.new(character_set=charset) if charset else None
    cxr = make_cxr("CR", **SHAPE, **({"study": study} if study else {}))
    image = read_dicom_image(cxr.save(tmp_path / "cr.dcm"))
    words = " ".join(f"word{k}" for k in range(1, 61))
    prompts = [f"Pas de pneumothorax – côté droit 🙂 {words}", "Épanchement " + "é" * 1200]
    files = write_derived_series(make_edit_result(image, image.array, prompts=prompts), tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom warns on reading a value longer than its VR allows
        ds = pydicom.dcmread(files[0])
        description, derivation = ds.SeriesDescription, ds.DerivationDescription
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert len(description.encode("utf-8")) <= 64 < len(("RadEdit: " + prompts[0])[:64].encode("utf-8"))
    assert description.startswith("RadEdit: Pas de pneumothorax – côté droit 🙂 word1") and description.endswith("...")
    assert len(derivation.encode("utf-8")) <= 1024 and derivation.endswith("Synthetic image; research use only.")
    assert_valid(files[0])


def test_lossy_source_stays_flagged(tmp_path):
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = get_testdata_file("JPGExtended.dcm")
    if source is None:
        pytest.skip("pydicom test file JPGExtended.dcm is not available offline")
    ds = pydicom.dcmread(source)  # 12-bit lossy JPEG, relabelled as secondary capture
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.Modality, ds.ConversionType = "OT", "WSD"
    image = read_dicom_image(save_dataset(ds, tmp_path / "lossy.dcm"))
    files = write_derived_series(make_edit_result(image, image.array), tmp_path / "out")
    out = pydicom.dcmread(files[0])
    assert out.LossyImageCompression == "01" and out.LossyImageCompressionMethod == "ISO_10918_1"
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_atomic_never_overwrites_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    cxr = make_cxr("CR", **SHAPE)
    image = read_dicom_image(cxr.save(tmp_path / "in" / "cr.dcm"))
    result = lung_edit(cxr, image)
    out = tmp_path / "out" / "series"
    out.mkdir(parents=True)
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_derived_series(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    # --overwrite replaces only a series folder radedit wrote: this one holds someone else's file
    with pytest.raises(OutputError, match="not a folder radedit wrote"):
        write_derived_series(result, out, overwrite=True)
    assert (out / "old.txt").read_text() == "keep me"
    (out / "old.txt").unlink()
    write_derived_series(result, out, write_seg=True, overwrite=True)
    files = write_derived_series(result, out, overwrite=True)  # our own series: replaced whole
    assert sorted(p.name for p in out.iterdir()) == ["edited.dcm"] and list(files) == [out / "edited.dcm"]
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # readable by archive services

    calls = []

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    original = pydicom.dataset.Dataset.save_as
    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_derived_series(result, tmp_path / "out" / "failed", write_seg=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["series"]  # no partial folder, no temp


def test_non_dicom_source_is_refused(tmp_path):
    from radedit_core.imaging.image import SourceImage

    image = SourceImage.from_array(
        np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), value_range=(0, 4095), format="png"
    )
    with pytest.raises(ConfigError, match="DICOM output needs a DICOM source image"):
        write_derived_series(make_edit_result(image, image.array), tmp_path / "out")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".png"])
def test_file_outputs_of_a_dicom_source_keep_geometry(tmp_path, suffix):
    cxr = make_cxr("CR", **SHAPE, patient_geometry=True)
    path = cxr.save(tmp_path / "cr.dcm")
    image = read_dicom_image(path)
    out = write_like(tmp_path / f"edited{suffix}", image.array, image)
    written = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(read_image(out).array, image.array)
    if suffix != ".png":  # PNG has no geometry
        ref = sitk.ReadImage(str(path))
        assert written.GetSpacing() == pytest.approx(ref.GetSpacing())
        assert written.GetOrigin() == pytest.approx(ref.GetOrigin())
        assert written.GetDirection() == pytest.approx(ref.GetDirection())


# -- the command, as users type it --------------------------------------------------------------


def radedit(*args, home: Path) -> subprocess.CompletedProcess:
    # In this process (a subprocess pays ~12 s of imports): the test checks the series written, not the process.
    return run_radedit("-q", *args, home=home)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_cli_edits_a_dicom_study_into_a_derived_series(tmp_path, radedit_home, micro_model_dir):
    require_dciodvfy()
    study = write_study(
        tmp_path / "study",
        kinds=("CR",),
        seg=True,
        rows=256,
        columns=224,
        photometric="MONOCHROME1",
        rescale=(1.0, -1024.0),
        voi="lut",
    )
    before = digest(study.folder)
    out = tmp_path / "results" / "edited"
    proc = radedit(
        "edit",
        "--image",
        study.folder,
        "--edit-mask",
        study.seg,
        "--edit-labels",
        "lungs",
        "--keep-mask",
        study.seg,
        "--keep-labels",
        "pacemaker",
        "--keep-mode",
        "pixel",
        "--dilate",
        "0",
        "--prompt",
        PROMPT,
        "--write-seg",
        "--uid-root",
        ROOT,
        "--series-description",
        "RadEdit edema",
        "--model",
        micro_model_dir,  # mechanics (files, tags, masks, keep), not what the edit looks like
        "--device",
        "cpu",
        "--steps",
        "10",
        "--seed",
        "5",
        "--output",
        out,
        home=radedit_home,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DICOM series 1000" in proc.stdout
    assert digest(study.folder) == before  # inputs untouched
    assert sorted(p.name for p in out.iterdir()) == ["edited.dcm", "masks.dcm"]
    for path in out.iterdir():
        assert_valid(path)
    ds = pydicom.dcmread(out / "edited.dcm")
    src = study.cxrs[0].dataset
    assert ds.SeriesDescription == "RadEdit edema" and ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.SOPInstanceUID.startswith(ROOT)
    edited = ds.pixel_array
    keep = study.cxrs[0].phantom.mask("pacemaker")
    np.testing.assert_array_equal(edited[keep], study.cxrs[0].stored[keep])  # pixel keep, original polarity
    assert not np.array_equal(edited, study.cxrs[0].stored)
    assert "seg.dcm [labels: lungs]" in ds.DerivationDescription and "seed 5" in ds.DerivationDescription
    sidecar = json.loads((tmp_path / "results" / "edited.json").read_text())
    assert sidecar["output"]["dicom"]["series_instance_uid"] == ds.SeriesInstanceUID
    assert sidecar["masks"]["keep"].endswith("seg.dcm [labels: pacemaker]")
    seg = read_dicom_mask(out / "masks.dcm", read_dicom_image(out / "edited.dcm"), select="keep")
    np.testing.assert_array_equal(seg, keep)
