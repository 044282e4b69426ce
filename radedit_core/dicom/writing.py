"""An edit -> a derived DICOM series of the source's study (and optionally a SEG).

The derived instance is built module by module (PS3.3), never by copying the
source and patching it:

* Patient, Clinical Trial Subject, General Study, Patient Study and Clinical
  Trial Study modules: the listed attributes are copied unchanged (missing
  Type 2 attributes are added empty).
* General Series: same Modality, new SeriesInstanceUID, a SeriesNumber the
  study does not use (:func:`choose_series_number`), a SeriesDescription that
  names the edit (<= 64 characters).
* General Image / General Reference: ImageType DERIVED\\SECONDARY, a
  DerivationDescription with prompts, masks, model and seed, and a
  SourceImageSequence pointing at the source with purpose of reference
  (121322, DCM, "Source image for image processing operation"); the Common
  Instance Reference module lists the source series.
* Image Pixel, CR/DX/SC modules: same SOP class, modality, Rows/Columns,
  spacing attributes, bits, pixel representation, padding and rescale as
  the source; the pixels are the edit, stored as the source stores them;
  written uncompressed (Explicit VR Little Endian); no private tags.
* Polarity: the derived image displays like its source.  Photometric
  Interpretation and Presentation LUT Shape are written as a pair the IODs
  allow (MONOCHROME1 with INVERSE, MONOCHROME2 with IDENTITY): a source that
  displays inverted (MONOCHROME1, or MONOCHROME2 with INVERSE) becomes
  MONOCHROME1, one that does not (MONOCHROME2, or MONOCHROME1 with
  IDENTITY) MONOCHROME2, stored values unchanged.  Multi-frame grayscale SC
  allows MONOCHROME2 only: an inverted one gets inverted stored values.
* HighBit: CR and single-frame SC keep the source's bit layout (values in
  the upper bits stay there); DX and multi-frame SC, whose IODs require
  HighBit = BitsStored - 1, get the same values in that layout.
* VOI: the source's window or VOI LUT is kept while it is still valid for the
  edited values, otherwise a window is recomputed (:func:`derived_voi`);
  Modality and VOI LUT items are rebuilt from their decoded entries
  (:mod:`radedit_core.dicom.luts`), never copied byte for byte, and binary
  values of a big-endian source are byte-swapped.
* Nothing is invented for the source's clinical attributes: what the source
  gets wrong there is copied unchanged and listed by the reader
  (:mod:`radedit_core.dicom.conformance`); the modules radedit builds itself
  (equipment, references, pixels, VOI) validate.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterable

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_ROOT_UID, UID, ExplicitVRLittleEndian, generate_uid

from .._version import __version__
from ..errors import ConfigError
from ..fileio import OutputGroup, atomic_directory
from ..settings import (
    MAX_SERIES_DESCRIPTION,
    MAX_SERIES_NUMBER,
    Namer,
    range_problem,
    series_description_problem,
    uid_root_problem,
)
from ..imaging.image import SourceImage
from .attributes import (  # the module lists shared with the reader's conformance checks
    ACQUISITION_EQUIPMENT,
    CLINICAL_TRIAL_STUDY_MODULE,
    CLINICAL_TRIAL_SUBJECT_MODULE,
    CR_SERIES_AND_IMAGE,
    DX_MODULES_COPIED,
    GENERAL_ACQUISITION,
    GENERAL_IMAGE_COPIED,
    GENERAL_SERIES_COPIED,
    GENERAL_STUDY_MODULE,
    PATIENT_AND_STUDY_ATTRIBUTES,
    PATIENT_GEOMETRY,
    PATIENT_MODULE,
    PATIENT_STUDY_MODULE,
    PIXEL_SPACING_ATTRIBUTES,
)
from .charset import encoded_size, fit_text, output_character_set, utf8_size
from .decoding import high_bit_shift
from .luts import encode_lut_item, is_little_endian, read_lut, widen
from .reading import (
    LAYOUT_KEEPING_SOP_CLASSES,
    ModalityMap,
    is_radedit_output,
    read_voi,
    stored_value_range,
    voi_lut,
)
from .seg import MANUFACTURER, MODEL_NAME, build_segmentation
from .sop import (
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    DX_SOP_CLASSES,
    EDITABLE_SOP_CLASSES,
    MF_GRAYSCALE_BYTE_SC,
    MULTIFRAME_SC_SOP_CLASSES,
    RADEDIT_DERIVATION_PREFIX,
    SC_SOP_CLASSES,
    SEGMENTATION,
    sop_class_name,
)

# -- the writer's own ----------------------------------------------------------------

_TYPE2_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip

SOURCE_IMAGE_PURPOSE = codes.DCM.SourceImageForImageProcessingOperation  # (121322, DCM)
ACQUISITION_EQUIPMENT_PURPOSE = codes.DCM.AcquisitionEquipment  # (109101, DCM)
RESEARCH_NOTICE = "RadEdit synthetic edit for stress-testing AI; research use only, not for diagnosis"
#: Extra fraction of pixels a kept VOI may saturate compared with the source.
VOI_EXTRA_SATURATION = 0.01
#: Percentiles of the edited values a recomputed window spans.
VOI_PERCENTILES = (0.5, 99.5)
#: Lowest automatic SeriesNumber: derived series stay clear of acquisition numbering.
FIRST_DERIVED_SERIES_NUMBER = 1000
#: Longest DerivationDescription (ST: 1024 characters, counted in encoded bytes like every text VR).
MAX_DERIVATION_DESCRIPTION = 1024


# -- small helpers --------------------------------------------------------------------


def _copy(dst: Dataset, src: Dataset, keywords: Iterable[str]) -> None:
    """Copy elements (deep); binary values of a big-endian source are swapped to little endian."""
    little = is_little_endian(src)
    for keyword in keywords:
        if keyword in src:
            dst[keyword] = copy.deepcopy(src[keyword])
            if not little:
                _swap_binary(dst[keyword])


def _code_item(code: Any) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _now() -> _dt.datetime:
    return _dt.datetime.now()


def _plain(key: str) -> str:
    return key


def uid_prefix(uid_root: str | None, name: Namer = _plain) -> str:
    """A validated UID prefix ending in '.'; pydicom's root when None.

    Raises:
        ConfigError: naming the option as ``name("uid_root")`` spells it.
    """
    if uid_root is None or not str(uid_root).strip():
        return PYDICOM_ROOT_UID
    problem = uid_root_problem(str(uid_root))
    if problem is not None:
        raise ConfigError(f"{name('uid_root')}: {problem}")
    root = str(uid_root).strip()
    return root if root.endswith(".") else root + "."


def new_uid(prefix: str) -> str:
    return str(generate_uid(prefix=prefix))


def choose_series_number(used: Iterable[int], requested: int | None = None, name: Namer = _plain) -> int:
    """The SeriesNumber of a derived series.

    ``requested`` must not be used in the study yet; otherwise the number is
    one above every SeriesNumber seen in the study, and at least
    :data:`FIRST_DERIVED_SERIES_NUMBER` so that it stays clear of acquisition
    series the scan could not see.

    Raises:
        ConfigError: naming the option as ``name("series_number")`` spells it.
    """
    used = {int(n) for n in used}
    if requested is not None:
        requested = int(requested)
        problem = range_problem(requested, 0, MAX_SERIES_NUMBER, integer=True)
        if problem is not None:
            raise ConfigError(f"{name('series_number')}: {problem}")
        if requested in used:
            raise ConfigError(
                f"{name('series_number')}: {requested} is already used in the study "
                f"(used: {', '.join(map(str, sorted(used)))})"
            )
        return requested
    return max(max(used, default=0) + 1, FIRST_DERIVED_SERIES_NUMBER)


def _clean_text(value: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f\\]+", " ", value).strip()


def default_series_description(provenance: dict[str, Any]) -> str:
    """``RadEdit: <first prompt>`` (``(+N)`` for more prompts), cut to :data:`MAX_SERIES_DESCRIPTION` bytes."""
    prompts = [p for p in (provenance.get("settings", {}) or {}).get("prompts", []) or [] if p]
    text = "RadEdit: " + (_clean_text(prompts[0]) if prompts else "edited")
    if len(prompts) > 1:
        text += f" (+{len(prompts) - 1})"
    return fit_text(text, MAX_SERIES_DESCRIPTION)


def check_series_description(value: str, name: Namer = _plain) -> str:
    """An explicit SeriesDescription, whole: one that does not fit is refused, not cut.

    Raises:
        ConfigError: naming the option as ``name("series_description")`` spells it.
    """
    problem = series_description_problem(value)
    if problem is not None:
        raise ConfigError(f"{name('series_description')}: {problem}")
    return value


def _mask_name(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return Path(text.split(" [", 1)[0]).name + (" [" + text.split(" [", 1)[1] if " [" in text else "")


def derivation_description(provenance: dict[str, Any], limit: int = MAX_DERIVATION_DESCRIPTION) -> str:
    """Prompts, masks, model and seed in words (ST: at most ``limit`` bytes in UTF-8, :func:`fit_text`)."""
    settings = provenance.get("settings", {}) or {}
    masks = provenance.get("masks", {}) or {}
    model = provenance.get("model", {}) or {}
    prompts = [str(p) for p in settings.get("prompts", []) or []]
    weights = settings.get("weights") or []
    edit = _mask_name(masks.get("edit"))
    keep = _mask_name(masks.get("keep"))
    tail_parts = [
        f"edit mask {edit}" if edit else "edit mask: whole image (global edit)",
        f"keep mask {keep} ({settings.get('keep_mode', 'latent')} keep, {settings.get('keep_scope', 'mask')} scope)"
        if keep else "no keep mask",
    ]
    if settings.get("dilate"):
        tail_parts.append(f"masks dilated {settings['dilate']} px")
    tail_parts.append(f"model {model.get('name', 'unknown')}")
    if "seed" in settings:
        tail_parts.append(f"seed {settings['seed']}")
    if "steps" in settings:
        tail_parts.append(
            f"{settings['steps']} steps, skip ratio {settings.get('skip_ratio')}, eta {settings.get('eta')}"
        )
    head = f"{RADEDIT_DERIVATION_PREFIX} (radedit_core {provenance.get('version', __version__)})"
    tail = "; ".join(tail_parts) + ". Synthetic image; research use only."
    room = limit - utf8_size(head) - utf8_size(tail) - 16
    shown = []
    for k, prompt in enumerate(prompts):
        weight = f" (guidance {weights[k]:g})" if k < len(weights) and isinstance(weights[k], (int, float)) else ""
        shown.append(f"'{_clean_text(prompt)}'{weight}")
    text_prompts = ", ".join(shown) if shown else "none recorded"
    text_prompts = fit_text(text_prompts, max(room, 3))
    text = f"{head}; prompt{'s' if len(prompts) != 1 else ''} {text_prompts}; {tail}"
    return fit_text(text, limit)


# -- VOI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiDecision:
    """What the derived image's VOI LUT module holds and why."""

    action: str  # "kept", "recomputed" or "none"
    reason: str
    center: float | None = None
    width: float | None = None


def _saturated(values: np.ndarray, low: float, high: float) -> float:
    return float(np.mean((values < low) | (values > high)))


def derived_voi(
    src: Dataset,
    source_stored: np.ndarray,
    edited_stored: np.ndarray,
    required: bool,
    image_pixels: np.ndarray | None = None,
    keep_blocked: str | None = None,
) -> VoiDecision:
    """Keep the source VOI while valid, else recompute a window.

    Rule: the source's window (or the varying input range of its VOI LUT) is
    still valid if it saturates at most :data:`VOI_EXTRA_SATURATION` (1 %) more
    of the edited image's pixels than of the source's; it is then kept as it
    is (all windows, explanation, VOI LUT function, VOI LUT Sequence).
    Otherwise, or when the source has none but the IOD requires one (DX for
    presentation), a LINEAR window over the 0.5th..99.5th percentiles of the
    edited values (in modality units) replaces it.  Values are stored values in
    the source's polarity.  ``image_pixels`` (a boolean mask, default all)
    leaves padding out of both the saturation counts and the percentiles;
    ``keep_blocked`` (a reason) forbids keeping the source VOI.
    """
    if image_pixels is not None and np.any(image_pixels):
        source_stored = source_stored[image_pixels]
        edited_stored = edited_stored[image_pixels]
    modality = ModalityMap.of(src)
    voi = read_voi(src)
    if keep_blocked is not None and (voi is not None or required):
        reason = keep_blocked
    elif voi is not None:
        ends = modality.to_stored(np.array([voi.low, voi.high]))
        if ends is not None:
            low, high = sorted(float(v) for v in ends)
            before = _saturated(source_stored, low, high)
            after = _saturated(edited_stored, low, high)
            if after <= before + VOI_EXTRA_SATURATION:
                return VoiDecision("kept", f"source {voi.kind} saturates {after:.2%} of the edit vs {before:.2%}")
            reason = f"source {voi.kind} would saturate {after:.2%} of the edit vs {before:.2%} of the source"
        else:
            reason = "source VOI cannot be mapped through a non-monotonic Modality LUT"
    elif required:
        reason = "the IOD requires a VOI and the source has none"
    else:
        return VoiDecision("none", "the source has no VOI")
    a, b = np.percentile(edited_stored.astype(np.float64), VOI_PERCENTILES)
    lo, hi = sorted(float(v) for v in modality.to_modality(np.array([a, b])))
    width = max(hi - lo + 1.0, 1.0)
    center = (lo + hi) / 2.0 + 0.5
    return VoiDecision("recomputed", reason, center=center, width=width)


def _apply_voi(ds: Dataset, src: Dataset, decision: VoiDecision) -> None:
    if decision.action == "kept":
        _copy(ds, src, ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction"))
        if src.get("VOILUTSequence"):
            items = []
            for index, item in enumerate(src.VOILUTSequence):
                try:
                    lut = voi_lut(src, index)
                    if str(src.SOPClassUID) in DX_SOP_CLASSES:
                        lut = widen(lut)  # C.8.11.3.1.5: 10 to 16 bits per entry
                    items.append(encode_lut_item(lut, item))
                except (ValueError, TypeError, AttributeError):
                    continue  # an unreadable alternative view is not carried over
            if items:
                ds.VOILUTSequence = DicomSequence(items)
    elif decision.action == "recomputed":
        ds.WindowCenter = pydicom.valuerep.DSfloat(round(decision.center, 4), auto_format=True)
        ds.WindowWidth = pydicom.valuerep.DSfloat(round(decision.width, 4), auto_format=True)
        ds.WindowCenterWidthExplanation = "RADEDIT RECOMPUTED"


# -- the derived image --------------------------------------------------------------------


def _source_dataset(source: SourceImage) -> Dataset:
    ds = source.metadata.get("dataset") if source.format == "dicom" else None
    if ds is None:
        raise ConfigError(
            f"DICOM output needs a DICOM source image (patient, study and references come from it); "
            f"{source.path or 'the input'} is {source.format}"
        )
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in EDITABLE_SOP_CLASSES:
        raise ConfigError(f"cannot derive a {sop_class_name(sop_class)} instance; only CR, DX and secondary capture")
    return ds


def to_source_polarity(
    array: np.ndarray, source: SourceImage, src: Dataset, flip: bool | None = None
) -> np.ndarray:
    """Display-polarity values (bright = dense) -> stored values as the source stores them.

    ``flip`` overrides whether values are inverted within the stored range
    (default: when the source displays inverted, ``source.monochrome1``).
    """
    vmin, vmax = stored_value_range(src)
    values = np.asarray(array, dtype=np.int64)
    if source.monochrome1 if flip is None else flip:
        values = vmax + vmin - values
    values = np.clip(values, vmin, vmax)
    signed = int(src.PixelRepresentation) == 1
    dtype = {(8, False): "u1", (8, True): "i1", (16, False): "<u2", (16, True): "<i2"}[(int(src.BitsAllocated), signed)]
    return values.astype(dtype)


def _presentation_lut_shape(photometric: str) -> str:
    return "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"


def _pixel_words(values: np.ndarray, src: Dataset, shift: int) -> bytes:
    """Stored values -> Pixel Data bytes (little endian), the BitsStored bits ending at HighBit."""
    if shift:
        bits = int(src.BitsStored)
        pattern = (values.astype(np.int64) & ((1 << bits) - 1)) << shift
        values = pattern.astype("<u2" if int(src.BitsAllocated) == 16 else "u1")
    raw = np.ascontiguousarray(values).tobytes()
    return raw + b"\x00" if len(raw) % 2 else raw


_BINARY_VRS = {"OW": 2, "OL": 4, "OD": 8, "OF": 4, "OV": 8}


def _swap_binary(element: pydicom.DataElement) -> None:
    """Byte-swap the binary values (OW, OL, OF, OD, OV) in an element copied from a big-endian source.

    pydicom keeps such values as the bytes it read; written into a
    little-endian file unswapped, the words would be read back scrambled.
    """
    elements = [element]
    if element.VR == "SQ":
        elements = [e for item in element.value for e in item.iterall()]
    for each in elements:
        size = _BINARY_VRS.get(each.VR)
        if size and isinstance(each.value, (bytes, bytearray)):
            raw = bytes(each.value)
            each.value = np.frombuffer(raw[: len(raw) // size * size], dtype=f">u{size}").astype(f"<u{size}").tobytes()


def build_derived_image(
    source: SourceImage,
    edited: np.ndarray,
    *,
    sop_uid: str,
    series_uid: str,
    series_number: int,
    series_description: str,
    derivation: str,
) -> tuple[Dataset, VoiDecision]:
    """The derived instance (see the module docstring), in memory, with its file meta."""
    src = _source_dataset(source)
    sop_class = UID(str(src.SOPClassUID))
    rows, cols = int(src.Rows), int(src.Columns)
    if edited.shape != (rows, cols):
        raise ConfigError(f"edited image {edited.shape} is not on the source grid {rows} x {cols}")
    # The derived image displays like the source, with a photometric
    # interpretation / presentation LUT shape pair the IODs allow.
    values_inverted = False
    if sop_class in MULTIFRAME_SC_SOP_CLASSES:
        photometric = "MONOCHROME2"  # the only one these IODs allow
        values_inverted = source.monochrome1
        flip = False
    else:
        photometric = "MONOCHROME1" if source.monochrome1 else "MONOCHROME2"
        flip = None
    pixels = to_source_polarity(edited, source, src, flip)
    source_pixels = to_source_polarity(source.array, source, src, flip)
    shift = high_bit_shift(src) if sop_class in LAYOUT_KEEPING_SOP_CLASSES else 0
    padding = source.padding
    image_pixels = None if padding is None else ~padding
    is_dx = sop_class in DX_SOP_CLASSES
    is_sc = sop_class in SC_SOP_CLASSES
    now = _now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    ds = Dataset()
    # Patient, Clinical Trial Subject, General Study, Patient Study, Clinical Trial Study
    _copy(ds, src, PATIENT_AND_STUDY_ATTRIBUTES)
    for keyword in _TYPE2_PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")

    # General Series (+ CR Series / DX Series)
    ds.Modality = str(src.get("Modality", "") or ("OT" if is_sc else ""))
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = series_description
    _copy(ds, src, GENERAL_SERIES_COPIED)
    if is_dx and str(src.get("ImageLaterality", "") or "").strip() and "Laterality" in ds:
        del ds.Laterality  # Type 2C, absent when Image Laterality (Type 1 in DX) is sent
    if is_dx:
        ds.PresentationIntentType = "FOR PRESENTATION" if sop_class == DX_FOR_PRESENTATION else "FOR PROCESSING"

    # General Equipment: the equipment that made this instance is radedit.
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = __version__
    if is_sc:
        # SC Equipment
        ds.ConversionType = "WSD"
        ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
        ds.SecondaryCaptureDeviceManufacturerModelName = MODEL_NAME
        ds.SecondaryCaptureDeviceSoftwareVersions = __version__

    # General Acquisition
    _copy(ds, src, GENERAL_ACQUISITION)

    # General Image
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    _copy(ds, src, GENERAL_IMAGE_COPIED)
    if "PatientOrientation" not in ds and "ImageOrientationPatient" not in src:
        ds.PatientOrientation = ""
    ds.ImageComments = RESEARCH_NOTICE
    ds.BurnedInAnnotation = src.get("BurnedInAnnotation") or "NO"
    _lossy_compression(ds, src)
    if is_dx or "PresentationLUTShape" in src or sop_class in MULTIFRAME_SC_SOP_CLASSES:
        ds.PresentationLUTShape = _presentation_lut_shape(photometric)

    # General Reference
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    ref.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(SOURCE_IMAGE_PURPOSE)])
    ds.SourceImageSequence = DicomSequence([ref])
    ds.DerivationDescription = derivation

    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = int(src.BitsAllocated)
    ds.BitsStored = int(src.BitsStored)
    ds.HighBit = int(src.BitsStored) - 1 + shift
    ds.PixelRepresentation = int(src.PixelRepresentation)
    _copy(ds, src, PIXEL_SPACING_ATTRIBUTES)
    _copy(ds, src, PATIENT_GEOMETRY)
    # Pixel Padding Value (General Equipment) and Range Limit (Image Pixel) describe these pixels.
    _copy(ds, src, ("PixelPaddingValue", "PixelPaddingRangeLimit"))
    if values_inverted:
        vmin, vmax = stored_value_range(src)
        for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
            if keyword in ds:
                ds[keyword].value = vmax + vmin - int(ds[keyword].value)
    ds.PixelData = _pixel_words(pixels, src, shift)
    ds["PixelData"].VR = "OB" if int(src.BitsAllocated) == 8 else "OW"

    # Modality-specific image modules
    if sop_class in MULTIFRAME_SC_SOP_CLASSES:
        # One frame: Frame Increment Pointer is Type 1C and must then be absent.
        ds.NumberOfFrames = 1
    if is_sc:
        ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = date, time
    elif is_dx:
        _copy(ds, src, DX_MODULES_COPIED)
        ds.PixelIntensityRelationship = src.get("PixelIntensityRelationship") or "OTHER"
        sign = src.get("PixelIntensityRelationshipSign")
        ds.PixelIntensityRelationshipSign = (
            int(sign) if sign in (1, -1) else (1 if photometric == "MONOCHROME1" else -1)
        )
        if "DetectorType" not in ds:
            ds.DetectorType = ""
        if "PositionerType" not in ds:
            ds.PositionerType = ""
        # Acquisition Context module (mandatory in the DX IODs, Type 2 sequence)
        _copy(ds, src, ("AcquisitionContextSequence",))
        if "AcquisitionContextSequence" not in ds:
            ds.AcquisitionContextSequence = DicomSequence([])
    else:
        _copy(ds, src, CR_SERIES_AND_IMAGE)

    # Modality LUT
    if src.get("ModalityLUTSequence"):
        item = src.ModalityLUTSequence[0]
        lut = read_lut(item, is_little_endian(src), int(src.PixelRepresentation) == 1)
        ds.ModalityLUTSequence = DicomSequence([encode_lut_item(lut, item)])
    else:
        _copy(ds, src, ("RescaleIntercept", "RescaleSlope", "RescaleType"))
        if is_dx or sop_class == MF_GRAYSCALE_BYTE_SC or "RescaleSlope" in ds:
            ds.RescaleIntercept = src.get("RescaleIntercept", 0) or 0
            ds.RescaleSlope = src.get("RescaleSlope", 1) or 1
            ds.RescaleType = src.get("RescaleType") or "US"

    # VOI LUT (a DX image for processing may not have one)
    if sop_class == DX_FOR_PROCESSING:
        decision = VoiDecision("none", "DX images for processing carry no VOI")
    else:
        decision = derived_voi(
            src,
            source_pixels,
            pixels,
            required=sop_class == DX_FOR_PRESENTATION,
            image_pixels=image_pixels,
            keep_blocked="stored values inverted for the MONOCHROME2-only multi-frame SC IOD"
            if values_inverted
            else None,
        )
    _apply_voi(ds, src, decision)

    # SOP Common
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    _copy(ds, src, ("TimezoneOffsetFromUTC",))
    # Contributing Equipment: the source's items and its acquisition device.
    # Manufacturer is Type 1 in an item; a source whose (Type 2) Manufacturer
    # is empty cannot be listed without inventing one (the reader notes it).
    copied = Dataset()
    _copy(copied, src, ("ContributingEquipmentSequence",))
    equipment = [
        item
        for item in copied.get("ContributingEquipmentSequence", [])
        if _has_value(item, "Manufacturer") and item.get("PurposeOfReferenceCodeSequence")
    ]
    if _has_value(src, "Manufacturer"):
        item = Dataset()
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(ACQUISITION_EQUIPMENT_PURPOSE)])
        _copy(item, src, ACQUISITION_EQUIPMENT)
        equipment.append(_sorted_item(item))
    if equipment:
        ds.ContributingEquipmentSequence = DicomSequence(equipment)

    # Common Instance Reference: the source lives in another series of this study.
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = src.SeriesInstanceUID
    instance_ref = Dataset()
    instance_ref.ReferencedSOPClassUID = sop_class
    instance_ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    series_ref.ReferencedInstanceSequence = DicomSequence([instance_ref])
    ds.ReferencedSeriesSequence = DicomSequence([series_ref])

    charset = output_character_set(src, (series_description, derivation, RESEARCH_NOTICE))
    if charset:
        ds.SpecificCharacterSet = charset
    # The limits count bytes in the character set written; the texts were fitted in UTF-8, which a
    # code-extension set (ISO 2022 escapes) may still exceed.
    size = encoded_size(charset)
    ds.SeriesDescription = fit_text(ds.SeriesDescription, MAX_SERIES_DESCRIPTION, size)
    ds.DerivationDescription = fit_text(ds.DerivationDescription, MAX_DERIVATION_DESCRIPTION, size)
    ds.remove_private_tags()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    return _sorted(ds), decision


def _has_value(ds: Dataset, keyword: str) -> bool:
    return str(ds.get(keyword, "") or "").strip() != ""


def _sorted_item(item: Dataset) -> Dataset:
    out = Dataset()
    for element in sorted(item, key=lambda e: e.tag):
        out.add(element)
    return out


def _lossy_compression(ds: Dataset, src: Dataset) -> None:
    """Once lossy, always flagged (PS3.3 C.7.6.1.1.5), even though we write uncompressed."""
    syntax = UID(str(getattr(src, "file_meta", Dataset()).get("TransferSyntaxUID", "") or ExplicitVRLittleEndian))
    lossy_method = None
    if syntax.is_compressed and not syntax.is_deflated:
        lossy_method = {
            "1.2.840.10008.1.2.4.50": "ISO_10918_1",
            "1.2.840.10008.1.2.4.51": "ISO_10918_1",
            "1.2.840.10008.1.2.4.81": "ISO_14495_1",
            "1.2.840.10008.1.2.4.91": "ISO_15444_1",
            "1.2.840.10008.1.2.4.203": "ISO_15444_15",
        }.get(str(syntax))
    if str(src.get("LossyImageCompression", "")) == "01" or lossy_method:
        ds.LossyImageCompression = "01"
        _copy(ds, src, ("LossyImageCompressionRatio", "LossyImageCompressionMethod"))
        if "LossyImageCompressionMethod" not in ds and lossy_method:
            ds.LossyImageCompressionMethod = lossy_method
    else:
        ds.LossyImageCompression = "00"


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"RADEDIT_{__version__}"[:16]
    return meta


def _sorted(ds: Dataset) -> Dataset:
    out = Dataset()
    out.file_meta = ds.file_meta
    for element in sorted(ds, key=lambda e: e.tag):
        out.add(element)
    return out


# -- the series on disk -----------------------------------------------------------------

IMAGE_FILE = "edited.dcm"
SEG_FILE = "masks.dcm"
#: ContentLabel of the SEG of the applied masks (``masks.dcm``): what tells it from other SEGs of radedit.
MASKS_CONTENT_LABEL = "RADEDIT_MASKS"
#: What :func:`is_series_file` accepts, as messages say it.
SERIES_FILES_WRITTEN = f"{IMAGE_FILE}/{SEG_FILE} written by radedit"


def is_series_file(path: Path) -> bool:
    """Whether ``path`` is a file of a series :func:`write_derived_series` wrote, by the evidence the
    writer leaves in it: ``edited.dcm`` a DERIVED image whose own header says radedit made it
    (:func:`~radedit_core.dicom.reading.is_radedit_output`: radedit's General Equipment and
    DerivationDescription), ``masks.dcm`` a SEG of radedit's equipment labelled
    :data:`MASKS_CONTENT_LABEL`.  A user's file of either name (an acquired CR copied as
    ``edited.dcm``, a study's SEG as ``masks.dcm``) is not: ``--overwrite`` never deletes it.
    Reads the header only (pixel data not read)."""
    if path.name not in (IMAGE_FILE, SEG_FILE) or path.is_symlink() or not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not readable DICOM, whatever pydicom raised: not ours
        return False
    if not is_radedit_output(ds):
        return False
    is_seg = str(ds.get("SOPClassUID", "")) == SEGMENTATION
    if path.name == SEG_FILE:
        return is_seg and str(ds.get("ContentLabel", "") or "") == MASKS_CONTENT_LABEL
    return not is_seg


def write_derived_series(
    result: Any,
    out_dir: str | Path,
    *,
    uid_root: str | None = None,
    series_number: int | None = None,
    series_description: str | None = None,
    write_seg: bool = False,
    overwrite: bool = False,
    name: Namer = _plain,
    group: OutputGroup | None = None,
) -> "DerivedSeries":
    """Write an edit as a new derived series of the source's study.

    Args:
        result: an :class:`radedit_core.workflow.EditResult` whose source was
            read by :func:`read_dicom_image` (``result.image.array`` holds the
            edited stored values in MONOCHROME2 polarity; ``result.provenance``
            feeds the DerivationDescription).
        out_dir: the folder to create (atomically: it appears complete or not
            at all; an existing one is an error unless ``overwrite``).
        uid_root: prefix of the new UIDs (default: pydicom's registered root
            ``1.2.826.0.1.3680043.8.498.``); at most 40 characters.
        series_number: the image series' SeriesNumber; default: above every
            number seen in the study and >= 1000 (:func:`choose_series_number`).
            A number the study already uses is an error.
        series_description: default "RadEdit: <first prompt>", cut to 64 bytes
            (:func:`fit_text`); a given one is refused when it does not fit
            (:func:`radedit_core.settings.series_description_problem`).
        write_seg: also write a DICOM SEG (its own series) with the edit and
            keep masks as applied (after dilation), referencing the new image.
        group: the :class:`~radedit_core.fileio.OutputGroup` the series is one
            output of (with its sidecar): a later failure of the group removes
            it and puts back the series it replaced.

    Returns:
        A :class:`DerivedSeries`: the written files (``out_dir/edited.dcm`` and,
        with ``write_seg``, ``out_dir/masks.dcm``), the new UIDs, the
        SeriesNumber and what was done with the VOI.

    Raises:
        ConfigError: a bad option, named as ``name`` spells it (default: the
            argument's name).
    """
    out_dir = Path(out_dir)
    source: SourceImage = result.source
    src = _source_dataset(source)
    prefix = uid_prefix(uid_root, name)
    used = set(source.metadata.get("study_series_numbers", []))
    if src.get("SeriesNumber") not in (None, ""):
        used.add(int(src.SeriesNumber))
    number = choose_series_number(used, series_number, name)
    provenance = dict(getattr(result, "provenance", {}) or {})
    description = (
        check_series_description(series_description, name)
        if series_description is not None
        else default_series_description(provenance)
    )
    image_ds, decision = build_derived_image(
        source,
        np.asarray(result.image.array),
        sop_uid=new_uid(prefix),
        series_uid=new_uid(prefix),
        series_number=number,
        series_description=description,
        derivation=derivation_description(provenance),
    )
    files: list[tuple[str, Dataset]] = [(IMAGE_FILE, image_ds)]
    if write_seg:
        files.append((SEG_FILE, _masks_seg(result, image_ds, prefix, used | {number})))
    folder = (
        atomic_directory(out_dir, overwrite=overwrite, own_file=is_series_file)
        if group is None
        else group.directory(out_dir, overwrite, own_file=is_series_file)
    )
    with folder as tmp:
        for name, ds in files:
            ds.save_as(tmp / name, enforce_file_format=True)
    return DerivedSeries(
        files=[out_dir / name for name, _ in files],
        series_instance_uid=str(image_ds.SeriesInstanceUID),
        sop_instance_uid=str(image_ds.SOPInstanceUID),
        series_number=number,
        voi={"action": decision.action, "reason": decision.reason},
        seg_series_instance_uid=str(files[1][1].SeriesInstanceUID) if write_seg else None,
    )


@dataclass(frozen=True)
class DerivedSeries(Sequence):
    """What :func:`write_derived_series` wrote; as a sequence, its files (the image first)."""

    files: list[Path]
    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    voi: dict[str, Any]
    seg_series_instance_uid: str | None = None

    def __getitem__(self, index):
        return self.files[index]

    def __len__(self) -> int:
        return len(self.files)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "series_instance_uid": self.series_instance_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "series_number": self.series_number,
            "voi": dict(self.voi),
        }
        if self.seg_series_instance_uid is not None:
            out["seg_series_instance_uid"] = self.seg_series_instance_uid
        return out


def _masks_seg(result: Any, image_ds: Dataset, prefix: str, used: set[int]) -> Dataset:
    masks = result.masks
    segments = {"edit": masks.edit}
    if masks.keep is not None and np.any(masks.keep > 0):
        segments["keep"] = masks.keep
    number = int(image_ds.SeriesNumber) + 1
    while number in used:
        number += 1
    seg = build_segmentation(
        image_ds,
        segments,
        series_uid=new_uid(prefix),
        sop_uid=new_uid(prefix),
        series_number=number,
        series_description="RadEdit edit and keep masks",
        algorithm="MANUAL",
        content_label=MASKS_CONTENT_LABEL,
        content_description="RadEdit edit and keep masks as applied (dilated)",
        fractional=bool(getattr(masks, "soft", False)),
        dimension_organization_uid=new_uid(prefix),
    )
    seg.remove_private_tags()
    return seg


__all__ = [
    "FIRST_DERIVED_SERIES_NUMBER",
    "PATIENT_AND_STUDY_ATTRIBUTES",
    "DerivedSeries",
    "VoiDecision",
    "build_derived_image",
    "check_series_description",
    "choose_series_number",
    "default_series_description",
    "derivation_description",
    "derived_voi",
    "is_series_file",
    "to_source_polarity",
    "uid_prefix",
    "write_derived_series",
]
