"""Reading DICOM chest X-rays and DICOM/label-map/Slicer masks onto their grid."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

from radedit_core.dicom import read_dicom_image, read_dicom_mask
from radedit_core.dicom.seg import build_segmentation
from radedit_core.dicom.sop import SECONDARY_CAPTURE
from radedit_core.dicom.synthetic import make_cxr, save_dataset, stored_range, write_study
from radedit_core.dicom.validate import dciodvfy_executable, validate_dicom
from radedit_core.errors import InputError, MaskError
from radedit_core.imaging.io import MaskRef, read_image, read_mask_array

SHAPE = dict(rows=128, columns=112)


def mono2(cxr) -> np.ndarray:
    """What the reader must return: stored values, MONOCHROME2 polarity."""
    ds = cxr.dataset
    vmin, vmax = stored_range(int(ds.BitsStored), int(ds.PixelRepresentation) == 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        return vmax + vmin - cxr.stored
    return cxr.stored


READ_VARIANTS = {
    "cr-mono1-12bit-rescale-voilut": dict(kind="CR", photometric="MONOCHROME1", rescale=(2.0, -1024.0), voi="lut"),
    "cr-mono2-16bit": dict(kind="CR", bits_stored=16),
    "cr-mono1-signed-window": dict(kind="CR", photometric="MONOCHROME1", signed=True, rescale=(1.0, -100.0)),
    "cr-8bit": dict(kind="CR", bits_stored=8),
    "cr-10bit-no-voi": dict(kind="CR", bits_stored=10, voi=None),
    "dx-presentation-mono1": dict(kind="DX", photometric="MONOCHROME1"),
    "dx-processing-14bit": dict(kind="DX-PROCESSING", bits_stored=14, voi=None),
    "sc-8bit": dict(kind="SC", bits_stored=8),
    "sc-signed-16bit": dict(kind="SC", bits_stored=16, signed=True),
    "mf-sc-word": dict(kind="MF-SC", bits_stored=12),
    "jpeg-lossless-mono1": dict(kind="CR", transfer_syntax=JPEGLosslessSV1, photometric="MONOCHROME1", voi="lut"),
    "jpeg-lossless-signed": dict(kind="CR", transfer_syntax=JPEGLosslessSV1, signed=True, bits_stored=16),
    "jpeg2000-lossless": dict(kind="DX", transfer_syntax=JPEG2000Lossless),
    "rle": dict(kind="SC", transfer_syntax=RLELossless, bits_stored=16),
    "deflated": dict(kind="CR", transfer_syntax=DeflatedExplicitVRLittleEndian),
    "implicit-vr": dict(kind="CR", transfer_syntax=ImplicitVRLittleEndian),
}


@pytest.mark.parametrize("variant", list(READ_VARIANTS))
def test_read_variants_give_monochrome2_stored_values(tmp_path, variant):
    options = dict(READ_VARIANTS[variant])
    cxr = make_cxr(options.pop("kind"), **SHAPE, **options)
    path = cxr.save(tmp_path / "image.dcm")
    image = read_dicom_image(path)
    ds = cxr.dataset
    signed = int(ds.PixelRepresentation) == 1
    assert image.format == "dicom" and image.path == path
    assert image.monochrome1 == (ds.PhotometricInterpretation == "MONOCHROME1")
    assert image.value_range == tuple(float(v) for v in stored_range(int(ds.BitsStored), signed))
    assert (
        image.array.dtype
        == {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}[(int(ds.BitsAllocated), signed)]
    )
    np.testing.assert_array_equal(image.array, mono2(cxr))
    assert image.geometry.spacing == (0.5, 0.5) and image.geometry.dimension == 2
    assert "PixelData" not in image.metadata["dataset"]
    assert image.metadata["dataset"].SOPInstanceUID == ds.SOPInstanceUID
    assert image.metadata["files"] == [path]
    assert image.metadata["transfer_syntax"] == str(ds.file_meta.TransferSyntaxUID)
    assert (image.window is None) == (options.get("voi", "window") is None)
    if image.window is not None:
        low, high = image.window
        assert image.value_range[0] - 1 <= low < high <= image.value_range[1] + 1
    # read_image dispatches DICOM to the same reader
    np.testing.assert_array_equal(read_image(path).array, image.array)


def _window_case(tmp_path, **voi):
    cxr = make_cxr("CR", **SHAPE, photometric="MONOCHROME1", rescale=(2.0, -1024.0), voi=None)
    ds = cxr.dataset
    for key, value in voi.items():
        setattr(ds, key, value)
    return read_dicom_image(save_dataset(ds, tmp_path / "w.dcm"))


def test_window_is_converted_to_flipped_stored_values(tmp_path):
    # LINEAR: [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] = [-0.5, 1999.5] in modality units,
    # (x + 1024) / 2 in stored units = [511.75, 1511.75], flipped in 0..4095.
    image = _window_case(tmp_path, WindowCenter=1000, WindowWidth=2001)
    assert image.window == pytest.approx((4095 - 1511.75, 4095 - 511.75))
    exact = _window_case(tmp_path, WindowCenter=[1000, 50], WindowWidth=[2000, 10], VOILUTFunction="LINEAR_EXACT")
    assert exact.window == pytest.approx((4095 - 1512.0, 4095 - 512.0))
    assert exact.metadata["voi"] == {"kind": "window", "low": 0.0, "high": 2000.0}


def test_voi_lut_window_is_the_varying_input_range(tmp_path):
    item = pydicom.Dataset()
    lut = np.concatenate([np.zeros(100), np.linspace(0, 65535, 801), np.full(100, 65535)]).astype(np.uint16)
    item.LUTDescriptor = [lut.size, -24, 16]
    item["LUTDescriptor"].VR = "SS"
    item.LUTData = lut.tolist()
    item["LUTData"].VR = "US"
    image = _window_case(tmp_path, VOILUTSequence=pydicom.Sequence([item]))
    # Entries 0..100 are 0 and 900.. are 65535: the LUT varies over inputs
    # -24+100 .. -24+900 (modality) -> stored (x + 1024) / 2 -> flipped.
    low, high = (76 + 1024) / 2, (876 + 1024) / 2
    assert image.window == pytest.approx((4095 - high, 4095 - low))
    assert image.metadata["voi"]["kind"] == "lut"


def test_no_voi_means_no_window(tmp_path):
    assert _window_case(tmp_path).window is None


@pytest.mark.parametrize(
    "name, reference",
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("MR_small_expb.dcm", "MR_small.dcm"),
        ("MR_small_implicit.dcm", "MR_small.dcm"),
        ("JPGExtended.dcm", None),
        ("JPEG2000.dcm", None),
        ("image_dfl.dcm", None),
    ],
)
def test_pydicom_bundled_transfer_syntaxes(tmp_path, name, reference):
    """Third-party encodings (pydicom's test files) re-labelled as secondary capture."""
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = get_testdata_file(name)
        expected_file = get_testdata_file(reference or name)
    if source is None or expected_file is None:
        pytest.skip(f"pydicom test file {name} is not available offline")
    ds = pydicom.dcmread(source)
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.Modality = "OT"
    path = tmp_path / name
    ds.save_as(path)  # same transfer syntax, pixel data untouched
    image = read_dicom_image(path)
    expected = pydicom.dcmread(expected_file).pixel_array
    assert image.metadata["transfer_syntax"] == str(ds.file_meta.TransferSyntaxUID)
    np.testing.assert_array_equal(image.array, expected)


def test_file_without_preamble_and_meta(tmp_path):
    cxr = make_cxr("CR", **SHAPE, transfer_syntax=ImplicitVRLittleEndian)
    ds = cxr.dataset
    del ds.file_meta
    ds.save_as(tmp_path / "legacy.dcm", implicit_vr=True, little_endian=True)
    assert (tmp_path / "legacy.dcm").read_bytes()[128:132] != b"DICM"
    image = read_dicom_image(tmp_path / "legacy.dcm")
    np.testing.assert_array_equal(image.array, mono2(cxr))
    assert image.metadata["transfer_syntax"] == ImplicitVRLittleEndian


def test_jpeg_lossless_streams_decode_identically_with_gdcm(tmp_path):
    """Our JPEG Lossless test data is standard: GDCM (via SimpleITK) decodes it to the same values."""
    cxr = make_cxr("CR", **SHAPE, bits_stored=16, transfer_syntax=JPEGLosslessSV1)
    path = cxr.save(tmp_path / "jl.dcm")
    via_gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]
    np.testing.assert_array_equal(via_gdcm, cxr.stored)
    np.testing.assert_array_equal(read_dicom_image(path).array, cxr.stored)


def test_patient_geometry_matches_simpleitk(tmp_path):
    cxr = make_cxr("CR", **SHAPE, patient_geometry=True)
    path = cxr.save(tmp_path / "geo.dcm")
    image = read_dicom_image(path)
    ref = sitk.ReadImage(str(path))
    assert image.geometry.dimension == 3
    assert image.geometry.spacing == pytest.approx(ref.GetSpacing())
    assert image.geometry.origin == pytest.approx(ref.GetOrigin())
    assert image.geometry.direction == pytest.approx(ref.GetDirection())
    # A mask written on SimpleITK's reading of the image lies on its grid; a shifted one does not.
    mask = sitk.GetImageFromArray(cxr.phantom.mask("left_lung").astype(np.uint8)[None])
    mask.CopyInformation(ref)
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    assert read_mask_array(tmp_path / "mask.nii.gz", image).sum() == cxr.phantom.mask("left_lung").sum()
    mask.SetOrigin(tuple(np.add(ref.GetOrigin(), (0.0, 0.0, 3.0))))
    sitk.WriteImage(mask, str(tmp_path / "shifted.nii.gz"))
    with pytest.raises(MaskError, match="shifted.nii.gz: mask geometry"):
        read_mask_array(tmp_path / "shifted.nii.gz", image)


def test_pixel_spacing_preferred_and_itk_imager_spacing_accepted_for_masks(tmp_path):
    cxr = make_cxr("CR", **SHAPE, pixel_spacing=0.55)
    cxr.dataset.PixelSpacing = [0.5, 0.5]  # calibrated to the patient plane
    path = cxr.save(tmp_path / "cal.dcm")
    image = read_dicom_image(path)
    assert image.geometry.spacing == (0.5, 0.5)
    assert image.metadata["spacing_attribute"] == "PixelSpacing"
    assert sitk.ReadImage(str(path)).GetSpacing()[:2] == pytest.approx((0.55, 0.55))  # ITK's choice
    for spacing, ok in ((0.5, True), (0.55, True), (0.6, False)):
        mask = sitk.GetImageFromArray(cxr.phantom.mask("heart").astype(np.uint8))
        mask.SetSpacing((spacing, spacing))
        sitk.WriteImage(mask, str(tmp_path / "m.nrrd"))
        if ok:
            assert read_mask_array(tmp_path / "m.nrrd", image).any()
        else:
            with pytest.raises(MaskError, match="geometry"):
                read_mask_array(tmp_path / "m.nrrd", image)


# -- folders ----------------------------------------------------------------------------


@pytest.fixture
def two_image_study(tmp_path):
    study = write_study(
        tmp_path / "study", kinds=("CR", "DX"), seg=True, image_names=("s1/cr.dcm", "s2/dx.dcm"), **SHAPE
    )
    (study.folder / "notes.txt").write_text("not DICOM")
    return study


def test_folder_with_several_images_needs_select(two_image_study):
    study = two_image_study
    with pytest.raises(InputError) as info:
        read_dicom_image(study.folder)
    message = str(info.value)
    assert message.startswith(str(study.folder)) and "holds 2 images" in message
    for cxr in study.cxrs:
        assert cxr.dataset.SOPInstanceUID in message and str(cxr.dataset.SeriesDescription) in message
    cr, dx = study.cxrs
    by_sop = read_dicom_image(study.folder, select=dx.dataset.SOPInstanceUID)
    assert by_sop.metadata["dataset"].Modality == "DX"
    by_series = read_dicom_image(study.folder, select=cr.dataset.SeriesInstanceUID)
    assert by_series.metadata["dataset"].SOPInstanceUID == cr.dataset.SOPInstanceUID
    assert by_series.metadata["study_series_numbers"] == [1, 2, 100]
    with pytest.raises(InputError, match="no instance or series with UID 1.2.3.4"):
        read_dicom_image(study.folder, select="1.2.3.4")
    seg_uid = pydicom.dcmread(study.seg).SOPInstanceUID
    with pytest.raises(InputError, match="Segmentation Storage, not a CR, DX or secondary-capture image"):
        read_dicom_image(study.folder, select=seg_uid)


def test_study_folder_with_one_image_and_file_siblings(tmp_path):
    study = write_study(tmp_path / "study", kinds=("CR",), seg=True, **SHAPE)
    image = read_dicom_image(study.folder)  # the SEG and other objects are not candidates
    assert image.path == study.images[0]
    # A single file learns the study's series numbers from its folder.
    assert read_dicom_image(study.images[0]).metadata["study_series_numbers"] == [1, 100]
    assert read_image(study.folder).shape == (SHAPE["rows"], SHAPE["columns"])


# -- masks ---------------------------------------------------------------------------------


@pytest.fixture
def seg_study(tmp_path):
    study = write_study(tmp_path / "study", kinds=("CR",), seg=True, photometric="MONOCHROME1", **SHAPE)
    return study, read_dicom_image(study.images[0])


def test_seg_segments_by_number_and_label(seg_study):
    study, image = seg_study
    phantom = study.cxrs[0].phantom
    lungs = phantom.mask("left_lung", "right_lung") & ~phantom.mask("pacemaker")
    pacemaker = phantom.mask("pacemaker")
    np.testing.assert_array_equal(read_dicom_mask(study.seg, image), lungs | pacemaker)
    np.testing.assert_array_equal(read_dicom_mask(study.seg, image, select="Lungs"), lungs)
    np.testing.assert_array_equal(read_dicom_mask(study.seg, image, select=2), pacemaker)
    np.testing.assert_array_equal(read_dicom_mask(study.seg, image, select="1,pacemaker"), lungs | pacemaker)
    np.testing.assert_array_equal(read_mask_array(study.seg, image, select=["pacemaker"]), pacemaker)
    np.testing.assert_array_equal(read_mask_array(MaskRef(study.seg, "lungs"), image), lungs)
    assert str(MaskRef(study.seg, "lungs")).endswith("seg.dcm [labels: lungs]")
    with pytest.raises(MaskError, match=r"no segment 'heart' \(segments: 1 'lungs', 2 'pacemaker'\)"):
        read_dicom_mask(study.seg, image, select="heart")


def test_seg_of_another_image_or_for_a_non_dicom_image_is_rejected(seg_study, tmp_path):
    study, image = seg_study
    other = read_dicom_image(make_cxr("CR", **SHAPE).save(tmp_path / "other.dcm"))
    with pytest.raises(MaskError, match="not the image being edited"):
        read_dicom_mask(study.seg, other)
    png = tmp_path / "image.png"
    Image.fromarray(np.zeros((SHAPE["rows"], SHAPE["columns"]), np.uint8)).save(png)
    with pytest.raises(MaskError, match="needs a DICOM image"):
        read_mask_array(study.seg, read_image(png))


def test_fractional_seg_gives_fractions_for_soft_masks_and_a_threshold_for_binary(seg_study, tmp_path):
    study, image = seg_study
    soft = np.zeros(image.shape, np.float32)
    soft[10:60, 10:90] = 0.02  # a faint background probability
    soft[20:40, 30:50] = 0.6
    soft[25:30, 35:40] = 1.0
    soft[50:55, 60:70] = 0.45
    seg = build_segmentation(
        study.cxrs[0].dataset,
        {"soft": soft},
        series_uid=pydicom.uid.generate_uid(),
        sop_uid=pydicom.uid.generate_uid(),
        series_number=7,
        series_description="soft",
        fractional=True,
    )
    path = save_dataset(seg, tmp_path / "soft.dcm")
    got = read_dicom_mask(path, image, soft=True)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, soft, atol=1 / 255)
    assert "used as a soft mask" in image.metadata["notes"][-1]
    # Binary use (the default, also through read_mask_array): at least half the maximum fractional value.
    binary = read_mask_array(path, image)
    assert binary.dtype == np.uint8
    np.testing.assert_array_equal(binary, soft >= 0.5)
    assert "used as a binary mask" in image.metadata["notes"][-1] and "(400 pixels; 4000 are non-zero)" in (
        image.metadata["notes"][-1]
    )


def test_label_map_values(tmp_path, seg_study):
    _, image = seg_study
    labels = np.zeros(image.shape, np.uint8)
    labels[10:20, 10:20], labels[30:40, 30:40], labels[50:60, 50:60] = 1, 2, 3
    mask = sitk.GetImageFromArray(labels)
    mask.SetSpacing((0.5, 0.5))
    for name in ("labels.nii.gz", "labels.nrrd"):
        sitk.WriteImage(mask, str(tmp_path / name))
        np.testing.assert_array_equal(read_mask_array(tmp_path / name, image, select="1,3"), np.isin(labels, [1, 3]))
        np.testing.assert_array_equal(read_mask_array(tmp_path / name, image, select=[2]), labels == 2)
        np.testing.assert_array_equal(read_mask_array(tmp_path / name, image), labels)  # unchanged without select
        with pytest.raises(MaskError, match=r"label value\(s\) 5 do not occur in the mask \(values: 0, 1, 2, 3\)"):
            read_mask_array(tmp_path / name, image, select=5)
        with pytest.raises(MaskError, match="'lungs' is not an integer label value"):
            read_mask_array(tmp_path / name, image, select="lungs")


def _slicer_seg_nrrd(path: Path, layers: np.ndarray, segments: list[tuple[str, int, int]], spacing=0.5, offset="0 0 0"):
    """A .seg.nrrd as Slicer writes it: one-slice volume, layers on a leading list axis when > 1."""
    n_layers, rows, cols = layers.shape
    lines = ["NRRD0004", "type: unsigned char"]
    if n_layers > 1:
        lines += [
            "dimension: 4",
            "space: left-posterior-superior",
            f"sizes: {n_layers} {cols} {rows} 1",
            f"space directions: none ({spacing},0,0) (0,{spacing},0) (0,0,1)",
            "kinds: list domain domain domain",
        ]
        data = np.moveaxis(layers, 0, -1)[None]  # z, y, x, layer (layer fastest on disk)
    else:
        lines += [
            "dimension: 3",
            "space: left-posterior-superior",
            f"sizes: {cols} {rows} 1",
            f"space directions: ({spacing},0,0) (0,{spacing},0) (0,0,1)",
            "kinds: domain domain domain",
        ]
        data = layers
    lines += ["encoding: raw", "space origin: (0,0,0)", f"Segmentation_ReferenceImageExtentOffset:={offset}"]
    for k, (name, label, layer) in enumerate(segments):
        lines += [
            f"Segment{k}_ID:=Segment_{k + 1}",
            f"Segment{k}_Name:={name}",
            f"Segment{k}_LabelValue:={label}",
            f"Segment{k}_Layer:={layer}",
        ]
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + np.ascontiguousarray(data, dtype=np.uint8).tobytes())
    return path


def test_slicer_seg_nrrd_segments_by_name(tmp_path, seg_study):
    _, image = seg_study
    rows, cols = image.shape
    lung = np.zeros((rows, cols), bool)
    lung[10:60, 10:50] = True
    drain = np.zeros((rows, cols), bool)
    drain[40:45, 5:90] = True  # overlaps the lung: Slicer puts it in a second layer
    heart = np.zeros((rows, cols), bool)
    heart[70:90, 60:80] = True
    layers = np.zeros((2, rows, cols), np.uint8)
    layers[0][lung], layers[0][heart], layers[1][drain] = 1, 2, 1
    path = _slicer_seg_nrrd(
        tmp_path / "masks.seg.nrrd", layers, [("Lung", 1, 0), ("Heart", 2, 0), ("Chest drain", 1, 1)]
    )
    np.testing.assert_array_equal(read_mask_array(path, image, select="chest drain"), drain)
    np.testing.assert_array_equal(read_mask_array(path, image, select="lung,Heart"), lung | heart)
    np.testing.assert_array_equal(read_mask_array(path, image), lung | heart | drain)
    with pytest.raises(MaskError, match=r"no segment named 'Pacemaker' \(segments: 'Lung', 'Heart', 'Chest drain'\)"):
        read_mask_array(path, image, select="Pacemaker")
    single = _slicer_seg_nrrd(tmp_path / "one.seg.nrrd", layers[:1], [("Lung", 1, 0), ("Heart", 2, 0)])
    np.testing.assert_array_equal(read_mask_array(single, image, select="Heart"), heart)
    cropped = _slicer_seg_nrrd(tmp_path / "crop.seg.nrrd", layers[:1, 5:, 5:], [("Lung", 1, 0)], offset="5 5 0")
    with pytest.raises(MaskError, match="cropped to its extent"):
        read_mask_array(cropped, image, select="Lung")


# -- bundled data and conformance of the synthetic inputs --------------------------------------


def test_bundled_sample_study():
    from importlib import resources

    folder = Path(str(resources.files("radedit_core") / "data" / "sample_study"))
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["cxr.dcm", "seg.dcm"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
    image = read_dicom_image(folder)
    ds = image.metadata["dataset"]
    assert (ds.Modality, ds.PhotometricInterpretation, int(ds.BitsStored)) == ("CR", "MONOCHROME1", 12)
    assert image.shape == (640, 560) and image.monochrome1 and "RescaleIntercept" in ds and "VOILUTSequence" in ds
    assert image.window is not None
    sample = Path(str(resources.files("radedit_core") / "data" / "sample"))
    # The phantom-world case: a pneumothorax crossed by the drain that treats it, and a pacemaker.
    for segment in ("lungs", "pneumothorax", "drain", "pacemaker"):
        png = np.asarray(Image.open(sample / f"{segment}_mask.png")) > 0
        assert png.any(), segment
        np.testing.assert_array_equal(read_dicom_mask(folder / "seg.dcm", image, select=segment), png)
    masks = {name: np.asarray(Image.open(sample / f"{name}_mask.png")) > 0 for name in ("pneumothorax", "drain")}
    assert (masks["pneumothorax"] & masks["drain"]).any()
    # Same picture as the PNG sample: the PNG's 12-bit values in MONOCHROME2 polarity.
    png = np.asarray(Image.open(sample / "cxr.png")).astype(np.int64)
    assert np.corrcoef(png.ravel(), image.array.astype(np.int64).ravel())[0, 1] > 0.99


@pytest.mark.parametrize(
    "kind, options",
    [
        ("CR", dict(photometric="MONOCHROME1", rescale=(2.0, -1024.0), voi="lut")),
        ("CR", dict(transfer_syntax=JPEGLosslessSV1, signed=True)),
        ("DX", dict(photometric="MONOCHROME1")),
        ("DX-PROCESSING", dict(voi=None, bits_stored=16)),
        ("SC", dict(bits_stored=8)),
        ("MF-SC", dict(bits_stored=8)),
    ],
)
def test_synthetic_inputs_validate(tmp_path, kind, options):
    if dciodvfy_executable() is None:
        pytest.fail("dciodvfy not found: install dicom3tools (scripts/install_system_packages.sh)", pytrace=False)
    path = make_cxr(kind, **SHAPE, private_tags=False, **options).save(tmp_path / "in.dcm")
    report = validate_dicom(path)
    assert report.iod and report.ok, str(report)
