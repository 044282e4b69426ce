"""Real DICOM files: pydicom's test files and PyPI's ``pydicom-data`` (the ``dev`` extra).

Every file either goes through read -> edit (the test-only micro model of
conftest, a few steps: what is checked is the file's path, not the edit) ->
write -> dciodvfy, or is refused with the right one-line error.  The tables
below say which file does what, and why; every file of both collections
must match exactly one rule, so a new test file forces a decision here.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radedit_core.dicom import read_dicom_image, write_derived_series
from radedit_core.dicom.decoding import lossy_tolerance
from radedit_core.dicom.validate import dciodvfy_executable
from radedit_core.errors import InputError
from radedit_core.workflow import EditSettings

from dicom_checks import assert_valid_or_inherited

# pydicom warns about the very defects some of these files hold; the tests assert what radedit makes of them.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data_folder() -> Path | None:
    try:
        import data_store  # noqa: PLC0415 - the pydicom-data package

        return Path(data_store.__file__).parent / "data"
    except ImportError:
        return None


PYDICOM_DATA = _pydicom_data_folder()

#: Files that are edited and written: (why they are interesting).
EDITED = {
    "RG1_UNCR.dcm": "CR MONOCHROME1, 15 of 16 bits, window; PixelSpacing 0\\0 (inherited, listed)",
    "RG1_J2KI.dcm": "the same radiograph, JPEG 2000 lossy (decoders agree within rounding)",
    "RG3_UNCR.dcm": "CR MONOCHROME1, 10 bits, lossy history (LossyImageCompression 01 kept), Laterality R",
    "RG3_J2KI.dcm": "the same radiograph, JPEG 2000 lossy",
    "mlut_18.dcm": "SC, signed 12 bits, Modality LUT Sequence (re-encoded on write)",
    "vlut_04.dcm": "SC, 8 bits, VOI LUT Sequence (re-encoded on write)",
    "JPEG-LL.dcm": "SC (NM), signed 16 bits, JPEG Lossless (gdcm and pylibjpeg agree)",
    "JPEG2000.dcm": "SC (NM), JPEG 2000 lossy",
    "JPEG2000_UNC.dcm": "SC (NM), uncompressed twin of JPEG2000.dcm",
    "JPGExtended.dcm": "SC (NM), 12-bit JPEG Extended (only pylibjpeg decodes it)",
    "image_dfl.dcm": "SC, deflated explicit VR little endian",
}
#: The same pixels in another encoding (uncompressed from reversible/irreversible JPEG 2000): a file
#: read to the same values as its edited twin goes the same way through the edit and the writer.
TWINS = {
    "RG1_J2KR.dcm": "RG1_UNCR.dcm",
    "RG1_UNCI.dcm": "RG1_J2KI.dcm",
    "RG3_J2KR.dcm": "RG3_UNCR.dcm",
    "RG3_UNCI.dcm": "RG3_J2KI.dcm",
}

#: Refused files: glob pattern -> (fragment of the one-line error, why). First match wins.
REFUSED = {
    "liver*.dcm": ("is a DICOM Segmentation (a mask), not an image", "SEG given as the image"),
    "SC_rgb*2frame.dcm": ("multi-frame image with 2 frames", "multi-frame (and colour)"),
    "SC_*": ("colour image (PhotometricInterpretation", "RGB/YBR secondary captures"),
    "GDCMJ2K_TextGBR.dcm": ("colour image (PhotometricInterpretation YBR_RCT", "colour JPEG 2000"),
    "OT-PAL-8-face.dcm": ("colour image (PhotometricInterpretation PALETTE COLOR", "palette colour"),
    "JPEGLSNearLossless_*.dcm": (
        "StudyInstanceUID (0020,000D) and SeriesInstanceUID (0020,000E) are missing or empty",
        "test fragments without study and series: a derived series could not join them",
    ),
    "JPEG-lossy.dcm": ("pixel data cannot be decoded", "a JPEG stream no installed decoder accepts"),
    "JPEG2000-embedded-sequence-delimiter.dcm": ("pixel data cannot be decoded", "a J2K header no decoder reads"),
    "MR_truncated.dcm": ("truncated file: element PixelData declares 8192 bytes", "cut pixel data"),
    "emri_small_jpeg_2k_lossless_too_short.dcm": ("truncated file:", "cut encapsulated pixel data"),
    "rtplan_truncated.dcm": ("truncated file: element BeamSequence", "a cut RT plan"),
    "UN_sequence.dcm": ("truncated file:", "a fragment whose last element cannot be parsed"),
    "no_meta.dcm": ("not a DICOM file", "a fragment of one private element, no SOP class"),
    "meta_missing_tsyntax.dcm": ("has no SOP Class UID", "pixel data but no SOP class"),
    "nested_priv_SQ.dcm": ("has no SOP Class UID", "private sequences only"),
    "empty_charset_LEI.dcm": ("not an image: it is a DICOM data set without a SOP Class UID", "no SOP class"),
    "rtstruct.dcm": ("not an image: it is a RT Structure Set Storage object (modality RTSTRUCT)", "valid non-image"),
    "rtplan.dcm": ("not an image: it is a RT Plan Storage object (modality RTPLAN)", "valid non-image"),
    "ExplVR_*NoMeta.dcm": (
        "not an image: it is a RT Ion Plan Storage object (modality RTPLAN)",
        "valid non-image without preamble and file meta",
    ),
    "test-SR.dcm": ("not an image: it is a Comprehensive SR Storage object (modality SR)", "valid non-image"),
    "reportsi*.dcm": ("not an image: it is a Basic Text SR Storage object (modality SR)", "valid non-image"),
    "waveform_ecg.dcm": ("not an image: it is a 12-lead ECG Waveform Storage object", "valid non-image"),
    "badVR.dcm": ("SOP class RT Dose Storage", "not an X-ray image"),
    "rtdose*.dcm": ("SOP class RT Dose Storage (modality RTDOSE) is not a chest X-ray image", "dose grid"),
    "no_meta_group_length.dcm": ("SOP class RT Image Storage is not a chest X-ray image", "RT image"),
    "*": ("is not a chest X-ray image radedit can edit", "CT, MR and ultrasound images"),
}


def _collection() -> dict[str, Path]:
    files = {p.name: p for p in sorted(PYDICOM_FILES.glob("*.dcm"))}
    if PYDICOM_DATA is not None:
        files.update({p.name: p for p in sorted(PYDICOM_DATA.glob("*.dcm"))})
    return files


FILES = _collection()


def _rule(name: str) -> tuple[str, str]:
    return next(rule for pattern, rule in REFUSED.items() if fnmatch.fnmatch(name, pattern))


def test_pydicom_data_is_installed():
    assert PYDICOM_DATA is not None and (PYDICOM_DATA / "RG1_UNCR.dcm").is_file(), (
        "pydicom-data is missing: pip install -e '.[dev]'"
    )
    assert set(EDITED) | set(TWINS) <= set(FILES)


@pytest.mark.parametrize("name", sorted(set(FILES) - set(EDITED) - set(TWINS)))
def test_refused_with_the_right_one_line_error(name):
    fragment, _why = _rule(name)
    path = FILES[name]
    with pytest.raises(InputError) as info:
        read_dicom_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message, message


@pytest.mark.parametrize("name", list(TWINS))
def test_other_encodings_read_the_same_values(name):
    """Uncompressed and JPEG 2000 copies of a radiograph: equal, lossy ones within decoder rounding."""
    image, twin = read_dicom_image(FILES[name]), read_dicom_image(FILES[TWINS[name]])
    syntaxes = [pydicom.uid.UID(i.metadata["transfer_syntax"]) for i in (image, twin)]
    tolerance = max(lossy_tolerance(image.metadata["dataset"], s) for s in syntaxes)
    assert image.shape == twin.shape and image.window == twin.window and image.monochrome1 == twin.monochrome1
    assert int(np.abs(image.array.astype(np.int64) - twin.array.astype(np.int64)).max()) <= tolerance


@pytest.mark.parametrize("name", list(EDITED))
def test_read_edit_write_validate(tmp_path, micro_editor, name):
    editor = micro_editor
    if dciodvfy_executable() is None:
        pytest.fail("dciodvfy not found: install dicom3tools (scripts/install_system_packages.sh)", pytrace=False)
    path = FILES[name]
    source = pydicom.dcmread(path)
    expected = source.pixel_array.astype(np.int64)  # pydicom's reading, in stored values
    image = read_dicom_image(path)
    vmin, vmax = image.value_range
    stored = (vmax + vmin - image.array.astype(np.int64)) if image.monochrome1 else image.array.astype(np.int64)
    syntax = pydicom.uid.UID(image.metadata["transfer_syntax"])
    assert int(np.abs(stored - expected).max()) <= lossy_tolerance(source, syntax)
    if syntax.is_encapsulated:  # cross-checked, or said why not
        decoders = image.metadata["decoding"]["plugins"]
        assert len(decoders) >= 2 or any(f"only {decoders[0]} decodes" in n for n in image.metadata["notes"])
    rows, cols = image.shape
    mask = np.zeros(image.shape, bool)
    mask[rows // 3 : rows // 2, cols // 3 : cols // 2] = True
    result = editor.edit(image, mask, None, EditSettings(["No acute cardiopulmonary process"], steps=2, skip_ratio=0.0))
    assert np.any(result.image.array[mask] != image.array[mask])
    out = write_derived_series(result, tmp_path / "out")[0]
    assert_valid_or_inherited(out, image.metadata.get("notes", []))
    back = read_dicom_image(out)
    np.testing.assert_array_equal(back.array, result.image.array)
    assert back.monochrome1 == image.monochrome1
