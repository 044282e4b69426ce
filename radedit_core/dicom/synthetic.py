"""Synthetic chest-X-ray DICOM instances and studies (no patient data).

Builders for conformant CR, DX (for presentation and for processing) and
secondary-capture instances around :func:`radedit_core.synthetic.chest_phantom`,
in every pixel encoding the reader supports: MONOCHROME1/2, 8 to 16 bits
stored, signed or unsigned, with or without rescale, with a window or a VOI
LUT, uncompressed (either byte order) or compressed (JPEG Lossless, JPEG
2000, RLE, deflate).  The real-world variants the reader must get right can
be made on purpose: values in the upper bits (``high_bit``), a Presentation
LUT Shape that contradicts the Photometric Interpretation
(``presentation_lut_shape``), a collimation border of Pixel Padding Value
(``padding_value``), VOI LUTs with 8-bit entries and LUT Data as US or OW
(``lut_bits``, ``lut_vr``, ``lut_packed``).
The tests, the bundled sample study and the other adapters' tests build their
inputs with it::

    from radedit_core.dicom.synthetic import make_cxr, write_study

    cxr = make_cxr("CR", photometric="MONOCHROME1", bits_stored=12, rescale=(2.0, -1024.0), voi="lut")
    cxr.save(tmp / "cr.dcm")
    cxr.phantom.mask("left_lung")          # label masks on the same grid
    study = write_study(tmp / "study", kinds=("CR", "DX"), seg=True)

Every instance validates with ``dciodvfy`` without errors (the tests check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from ..synthetic import Phantom, chest_phantom
from .jpeg_lossless import encode_jpeg_lossless
from .seg import build_segmentation
from .sop import (
    CR_IMAGE,
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    MF_GRAYSCALE_BYTE_SC,
    MF_GRAYSCALE_WORD_SC,
    SECONDARY_CAPTURE,
)

Kind = Literal["CR", "DX", "DX-PROCESSING", "SC", "MF-SC"]
VoiKind = Literal["window", "lut", "auto"]

SOP_CLASS_OF_KIND = {
    "CR": CR_IMAGE,
    "DX": DX_FOR_PRESENTATION,
    "DX-PROCESSING": DX_FOR_PROCESSING,
    "SC": SECONDARY_CAPTURE,
    "MF-SC": MF_GRAYSCALE_WORD_SC,  # Byte SC for 8-bit data
}
#: Transfer syntaxes :func:`make_cxr` can encode.
WRITABLE_TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGLosslessSV1,
    JPEG2000Lossless,
    RLELossless,
)
PRIVATE_CREATOR = "RADEDIT SYNTHETIC"


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by the instances of one synthetic study."""

    study_uid: str
    patient_name: str = "Phantom^Chest"
    patient_id: str = "RADEDIT-PHANTOM-1"
    patient_birth_date: str = "19700101"
    patient_sex: str = "O"
    study_date: str = "20240102"
    study_time: str = "093000"
    study_id: str = "1"
    accession_number: str = "RE0001"
    study_description: str = "Chest X-ray (synthetic phantom)"
    referring_physician: str = ""
    character_set: str = "ISO_IR 100"

    @classmethod
    def new(cls, uid_seed: str | None = None, **kwargs) -> "StudyInfo":
        """A study with a fresh StudyInstanceUID (reproducible from ``uid_seed``)."""
        return cls(study_uid=kwargs.pop("study_uid", None) or _uid(uid_seed, "study"), **kwargs)


@dataclass
class SyntheticCXR:
    """One synthetic instance: the dataset, the phantom drawn in it and its stored values.

    ``stored`` are the values as stored (original polarity, before rescale);
    ``phantom.mask(...)`` gives label masks on the same pixel grid.
    """

    dataset: Dataset
    phantom: Phantom
    stored: np.ndarray

    def save(self, path: str | Path) -> Path:
        return save_dataset(self.dataset, path)


@dataclass
class SyntheticStudy:
    folder: Path
    study: StudyInfo
    images: list[Path] = field(default_factory=list)
    cxrs: list[SyntheticCXR] = field(default_factory=list)
    seg: Path | None = None

    @property
    def files(self) -> list[Path]:
        return self.images + ([self.seg] if self.seg is not None else [])


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (preamble, file meta), creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def _uid(seed: str | None, *parts: object) -> str:
    """A random UID, or one derived from ``seed`` and ``parts`` (same inputs, same UID)."""
    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[str(seed), *map(str, parts)])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _patient_and_study(ds: Dataset, study: StudyInfo) -> None:
    ds.SpecificCharacterSet = study.character_set
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic phantom: no patient data"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.study_description
    ds.ReferringPhysicianName = study.referring_physician
    ds.PatientAge = "054Y"


def _pixel_values(
    phantom: Phantom, bits_stored: int, signed: bool, photometric: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """Phantom intensities -> stored values in the original polarity."""
    vmin, vmax = stored_range(bits_stored, signed)
    # Leave some headroom at both ends, as detectors do, so that an edit can
    # brighten or darken without every value hitting the stored-range limits.
    span = vmax - vmin
    values = np.rint(vmin + span * (0.04 + 0.92 * phantom.image)).astype(np.int64)
    if photometric == "MONOCHROME1":
        values = vmax + vmin - values
    return values, (vmin, vmax)


def _voi_window(values: np.ndarray, slope: float, intercept: float) -> tuple[float, float]:
    """(center, width) in modality units covering the 1st..99th percentile (linear rule)."""
    lo, hi = np.percentile(values, [1.0, 99.0])
    a, b = sorted((lo * slope + intercept, hi * slope + intercept))
    width = float(b - a + 1.0)
    return round(float(a + b) / 2.0 + 0.5, 2), round(width, 2)


def voi_lut_entries(values: np.ndarray, slope: float, intercept: float, bits: int = 16) -> tuple[int, np.ndarray]:
    """(first input mapped, entries) of a monotonic VOI LUT over the 1st..99th percentile (modality units)."""
    lo, hi = np.percentile(values * slope + intercept, [1.0, 99.0])
    first, last = int(np.floor(lo)), int(np.ceil(hi))
    return first, np.rint(np.linspace(0, (1 << bits) - 1, last - first + 1)).astype(np.int64)


def _voi_lut(
    values: np.ndarray,
    signed: bool,
    slope: float,
    intercept: float,
    bits: int = 16,
    vr: str = "US",
    packed: bool = False,
    big_endian: bool = False,
) -> Dataset:
    """A VOI LUT item; LUT Data as US values or OW bytes, 8-bit entries one per word or packed two per word."""
    first, lut = voi_lut_entries(values, slope, intercept, bits)
    entries = lut.size
    item = Dataset()
    # PS3.3 C.11.2.1.1: VOI LUT entries are 8 or 16 bits.
    item.LUTDescriptor = [entries if entries < 65536 else 0, first, bits]
    # The first mapped value is signed when the modality output can be negative.
    item["LUTDescriptor"].VR = "SS" if (signed or first < 0) else "US"
    item.LUTExplanation = "RADEDIT SYNTHETIC VOI LUT"
    if packed:
        if bits != 8:
            raise ValueError("only 8-bit LUT entries can be packed two per word")
        padded = np.append(lut, 0) if lut.size % 2 else lut
        words = padded[0::2] | (padded[1::2] << 8)  # the first entry in the low byte
    else:
        words = lut
    if vr == "US":
        item.LUTData = [int(w) for w in words]
    elif vr == "OW":
        item.LUTData = words.astype(">u2" if big_endian else "<u2").tobytes()
    else:
        raise ValueError(f"LUT Data is US or OW, not {vr!r}")
    item["LUTData"].VR = vr
    return item


def make_cxr(
    kind: Kind = "CR",
    *,
    rows: int = 320,
    columns: int = 288,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    bits_allocated: int | None = None,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    voi: VoiKind | None = "auto",
    transfer_syntax: str = ExplicitVRLittleEndian,
    study: StudyInfo | None = None,
    series_uid: str | None = None,
    series_number: int = 1,
    instance_number: int = 1,
    series_description: str | None = None,
    pixel_spacing: float = 0.5,
    patient_geometry: bool = False,
    seed: int = 0,
    pacemaker: bool = True,
    private_tags: bool = True,
    uid_seed: str | None = None,
    high_bit: int | None = None,
    presentation_lut_shape: str | None = None,
    padding_value: int | None = None,
    padding_width: int = 12,
    lut_bits: int = 16,
    lut_vr: str = "US",
    lut_packed: bool = False,
) -> SyntheticCXR:
    """A synthetic frontal chest radiograph as a conformant DICOM dataset.

    Args:
        kind: "CR" (Computed Radiography), "DX" (Digital X-Ray for
            presentation), "DX-PROCESSING" (for processing), "SC"
            (secondary capture, modality OT) or "MF-SC" (a one-frame
            multi-frame grayscale byte/word secondary capture, MONOCHROME2).
        photometric: "MONOCHROME1" (high values dark) or "MONOCHROME2".
        bits_stored: 8..16; ``bits_allocated`` defaults to 8 or 16.
        signed: PixelRepresentation 1 (two's complement); not for DX.
        rescale: (RescaleSlope, RescaleIntercept); DX always has a rescale
            (identity by default), CR/SC only when given.
        voi: "window" (WindowCenter/Width), "lut" (a VOI LUT Sequence), None,
            or "auto": a window, except for DX for processing, which may not
            have one; DX for presentation requires one.
        transfer_syntax: one of :data:`WRITABLE_TRANSFER_SYNTAXES`.
        pixel_spacing: mm; written as ImagerPixelSpacing (CR, DX) or
            PixelSpacing (SC).
        patient_geometry: also write ImagePositionPatient/ImageOrientationPatient
            (not part of the CR/DX/SC IODs, but present in some archives).
        private_tags: add a private block, to check that writers drop it.
        uid_seed: derive the UIDs from this text (reproducible files); random
            UIDs when None.  Dates and times are the study's, so a seeded
            instance is the same byte for byte every time.
        high_bit: HighBit (default BitsStored - 1); larger puts the stored
            values in the upper bits of each word (native syntaxes only).
        presentation_lut_shape: write this Presentation LUT Shape (default:
            DX gets the one that matches the photometric interpretation,
            multi-frame SC IDENTITY, others none).
        padding_value: a collimation border ``padding_width`` pixels wide
            holds this stored value, declared as Pixel Padding Value.
        lut_bits, lut_vr, lut_packed: the VOI LUT's entry size (8 or 16),
            LUT Data VR ("US" or "OW", in the file's byte order) and, for 8-bit
            entries, two entries per word.
    """
    if kind not in SOP_CLASS_OF_KIND:
        raise ValueError(f"kind must be one of {sorted(SOP_CLASS_OF_KIND)}, got {kind!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be 8..16, got {bits_stored}")
    bits_allocated = bits_allocated or (8 if bits_stored <= 8 else 16)
    if bits_allocated not in (8, 16) or bits_allocated < bits_stored:
        raise ValueError(f"bits_allocated {bits_allocated} cannot hold {bits_stored} bits")
    is_dx = kind.startswith("DX")
    is_sc = kind in ("SC", "MF-SC")
    if kind == "MF-SC" and photometric != "MONOCHROME2":
        raise ValueError("multi-frame grayscale secondary capture is MONOCHROME2 only")
    if kind == "MF-SC" and signed:
        raise ValueError("multi-frame grayscale secondary capture is unsigned")
    if is_dx and signed:
        raise ValueError("DX images are unsigned (PixelRepresentation 0)")
    if voi == "auto":
        voi = None if kind == "DX-PROCESSING" else "window"
    if kind == "DX" and voi is None:
        raise ValueError("a DX image for presentation needs a VOI (window or LUT)")
    if kind == "DX-PROCESSING" and voi is not None:
        raise ValueError("a DX image for processing has no VOI (PS3.3 C.8.11.3)")
    transfer_syntax = UID(transfer_syntax)
    if transfer_syntax not in WRITABLE_TRANSFER_SYNTAXES:
        raise ValueError(f"cannot encode transfer syntax {transfer_syntax.name}")
    high_bit = bits_stored - 1 if high_bit is None else int(high_bit)
    if not bits_stored - 1 <= high_bit < bits_allocated:
        raise ValueError(f"HighBit {high_bit} cannot hold {bits_stored} bits in {bits_allocated}")
    if high_bit != bits_stored - 1 and transfer_syntax.is_compressed:
        raise ValueError("values in the upper bits are made for native transfer syntaxes only")
    study = study or StudyInfo.new(uid_seed)
    series_uid = series_uid or _uid(uid_seed, "series", study.study_uid, series_number)
    phantom = chest_phantom(rows, columns, seed=seed, pacemaker=pacemaker)
    stored, _ = _pixel_values(phantom, bits_stored, signed, photometric)
    if padding_value is not None:
        border = np.zeros(stored.shape, bool)
        border[:padding_width], border[-padding_width:] = True, True
        border[:, :padding_width], border[:, -padding_width:] = True, True
        stored = np.where(border, padding_value, stored)
    if rescale is None and (is_dx or kind == "MF-SC"):
        rescale = (1.0, 0.0)
    slope, intercept = rescale if rescale is not None else (1.0, 0.0)

    sop_class = SOP_CLASS_OF_KIND[kind]
    if kind == "MF-SC" and bits_allocated == 8:
        sop_class = MF_GRAYSCALE_BYTE_SC
    sop_uid = _uid(uid_seed, "instance", series_uid, instance_number)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _patient_and_study(ds, study)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    date, time = study.study_date, study.study_time
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time

    # General Series (+ CR/DX Series)
    ds.Modality = "OT" if is_sc else kind[:2]
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description or f"PA chest ({kind})"
    ds.BodyPartExamined = "CHEST"
    if is_dx:
        ds.PresentationIntentType = "FOR PRESENTATION" if kind == "DX" else "FOR PROCESSING"
    if not is_sc:
        ds.ViewPosition = "PA"
    # General Equipment
    ds.Manufacturer = "RadEdit synthetic phantom"
    ds.ManufacturerModelName = "chest_phantom"
    ds.SoftwareVersions = "1"
    if is_sc:
        ds.ConversionType = "WSD"
        ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = date, time
    # General Acquisition / General Image
    ds.AcquisitionDate, ds.AcquisitionTime = study.study_date, study.study_time
    ds.ContentDate, ds.ContentTime = study.study_date, study.study_time
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if not is_sc else ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # Acquisition technique (CR Image / DX modules)
    if not is_sc:
        ds.KVP = 120
        ds.ExposureTime = 8
        ds.XRayTubeCurrent = 250
        ds.DistanceSourceToDetector = 1800
        ds.ImagerPixelSpacing = [pixel_spacing, pixel_spacing]
    else:
        ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    if is_dx:
        ds.ImageLaterality = "U"
        ds.AnatomicRegionSequence = DicomSequence([_code("43799004", "SCT", "Chest")])
        ds.DetectorType = "SCINTILLATOR"
        ds.PixelIntensityRelationship = "LOG"
        # +1: low values = less beam intensity = denser; that is MONOCHROME1 here.
        ds.PixelIntensityRelationshipSign = 1 if photometric == "MONOCHROME1" else -1
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        ds.PositionerType = ""
        ds.ViewCodeSequence = DicomSequence([_code("399348003", "SCT", "postero-anterior")])
        ds.AcquisitionContextSequence = DicomSequence([])
    if patient_geometry:
        ds.ImagePositionPatient = [-0.5 * columns * pixel_spacing, -200.0, 0.5 * rows * pixel_spacing]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        ds.FrameOfReferenceUID = generate_uid()
        ds.PositionReferenceIndicator = ""

    if kind == "MF-SC":
        # One frame: Frame Increment Pointer (Type 1C) must be absent.
        ds.NumberOfFrames = 1
        ds.PresentationLUTShape = "IDENTITY"
    if presentation_lut_shape is not None:
        ds.PresentationLUTShape = presentation_lut_shape
    if padding_value is not None:
        ds.PixelPaddingValue = int(padding_value)
        ds["PixelPaddingValue"].VR = "SS" if signed else "US"

    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = high_bit
    ds.PixelRepresentation = 1 if signed else 0
    # Modality LUT
    if rescale is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "US"
    # VOI LUT
    # The VOI is the anatomy's: padding (a collimation border) is not displayed.
    image_values = stored if padding_value is None else stored[stored != padding_value]
    if voi == "window":
        ds.WindowCenter, ds.WindowWidth = _voi_window(image_values, slope, intercept)
        ds.WindowCenterWidthExplanation = "RADEDIT SYNTHETIC"
    elif voi == "lut":
        big = transfer_syntax == ExplicitVRBigEndian
        item = _voi_lut(image_values, signed, slope, intercept, lut_bits, lut_vr, lut_packed, big)
        ds.VOILUTSequence = DicomSequence([item])
    elif voi is not None:
        raise ValueError(f"voi must be 'window', 'lut' or None, got {voi!r}")

    if private_tags:
        block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
        block.add_new(0x01, "LO", "synthetic private value")
        block.add_new(0x02, "DS", "1.5")

    _set_pixel_data(ds, stored, bits_allocated, bits_stored, signed, transfer_syntax, high_bit)
    return SyntheticCXR(dataset=ds, phantom=phantom, stored=stored)


def make_cxr_dataset(kind: Kind = "CR", **kwargs) -> Dataset:
    """Like :func:`make_cxr`, the dataset alone."""
    return make_cxr(kind, **kwargs).dataset


def _native_bytes(
    stored: np.ndarray,
    bits_allocated: int,
    signed: bool,
    big_endian: bool = False,
    shift: int = 0,
    bits_stored: int = 16,
) -> bytes:
    order = ">" if big_endian else "<"
    if shift:
        # PS3.5 8.1.1: the BitsStored bits end at HighBit; the bits below are zero.
        pattern = (np.asarray(stored, dtype=np.int64) & ((1 << bits_stored) - 1)) << shift
        stored, signed = pattern, False
    dtype = {(8, False): "u1", (8, True): "i1", (16, False): f"{order}u2", (16, True): f"{order}i2"}[
        (bits_allocated, signed)
    ]
    raw = np.ascontiguousarray(np.asarray(stored).astype(dtype)).tobytes()
    return raw + b"\x00" if len(raw) % 2 else raw


def _set_pixel_data(
    ds: Dataset,
    stored: np.ndarray,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
    syntax: UID,
    high_bit: int | None = None,
) -> None:
    shift = 0 if high_bit is None else high_bit - bits_stored + 1
    ds.PixelData = _native_bytes(stored, bits_allocated, signed, syntax == ExplicitVRBigEndian, shift, bits_stored)
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    if syntax == JPEGLosslessSV1:
        # JPEG codes the stored bit pattern; signed values as their two's complement.
        pattern = np.asarray(stored, dtype=np.int64) & ((1 << bits_stored) - 1)
        ds.PixelData = encapsulate([encode_jpeg_lossless(pattern, bits_stored)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax in (JPEG2000Lossless, RLELossless):
        ds.compress(syntax)
    else:
        ds.file_meta.TransferSyntaxUID = syntax


def make_seg_dataset(
    image: Dataset,
    masks: Mapping[str, np.ndarray],
    *,
    series_number: int = 2,
    series_description: str = "Segmentations",
    uid_seed: str | None = None,
) -> Dataset:
    """A DICOM SEG (highdicom) of named binary masks referencing ``image``.

    Known names get their SNOMED CT codes ("lungs", "pacemaker", ...); see
    :data:`radedit_core.dicom.seg.SEGMENT_CODES`.
    """
    seg = build_segmentation(
        image,
        masks,
        series_uid=_uid(uid_seed, "seg series", image.SOPInstanceUID),
        sop_uid=_uid(uid_seed, "seg instance", image.SOPInstanceUID),
        series_number=series_number,
        series_description=series_description,
        algorithm="MANUAL",
        content_label="MASKS",
        dimension_organization_uid=_uid(uid_seed, "seg dimensions", image.SOPInstanceUID),
        contribution_datetime=str(image.StudyDate) + str(image.StudyTime),
    )
    # Synthetic data is dated like its study, so seeded files are reproducible.
    for prefix in ("Series", "Content", "InstanceCreation"):
        if f"{prefix}Date" in seg:
            setattr(seg, f"{prefix}Date", image.StudyDate)
            setattr(seg, f"{prefix}Time", image.StudyTime)
    return seg


def write_study(
    folder: str | Path,
    *,
    kinds: Sequence[Kind] = ("CR",),
    seg: bool = False,
    seg_segments: Iterable[str] = ("lungs", "pacemaker"),
    study: StudyInfo | None = None,
    rows: int = 320,
    columns: int = 288,
    image_names: Sequence[str] | None = None,
    seg_name: str = "seg.dcm",
    seed: int = 1,
    uid_seed: str | None = None,
    **kwargs,
) -> SyntheticStudy:
    """Write a study folder: one image per kind (series 1, 2, ...) and optionally a SEG.

    The SEG (series 100) holds the named phantom masks of the first image and
    references it.  Image k (from 0) is drawn with phantom seed ``seed + k``;
    ``uid_seed`` makes the UIDs reproducible.  ``kwargs`` go to
    :func:`make_cxr` for every image.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study = study or StudyInfo.new(uid_seed)
    out = SyntheticStudy(folder=folder, study=study)
    if image_names is None:
        names = [f"{kind.lower()}{k + 1 if list(kinds).count(kind) > 1 else ''}.dcm" for k, kind in enumerate(kinds)]
    else:
        names = list(image_names)
    if len(names) != len(kinds):
        raise ValueError(f"{len(kinds)} kinds but {len(names)} image names")
    if len(set(names)) != len(names) or seg_name in names:
        raise ValueError(f"file names must differ: {names + [seg_name]}")
    for number, (kind, name) in enumerate(zip(kinds, names), start=1):
        cxr = make_cxr(
            kind,
            study=study,
            series_number=number,
            rows=rows,
            columns=columns,
            seed=seed + number - 1,
            uid_seed=uid_seed,
            **kwargs,
        )
        out.cxrs.append(cxr)
        out.images.append(cxr.save(folder / name))
    if seg and out.cxrs:
        first = out.cxrs[0]
        segments = {name: _phantom_segment(first.phantom, name) for name in seg_segments}
        seg_ds = make_seg_dataset(first.dataset, segments, series_number=100, uid_seed=uid_seed)
        out.seg = save_dataset(seg_ds, folder / seg_name)
    return out


def _phantom_segment(phantom: Phantom, name: str) -> np.ndarray:
    groups = {
        "lungs": ("right_lung", "left_lung"),
        "left_lung": ("left_lung",),
        "right_lung": ("right_lung",),
        "heart": ("heart",),
        "pacemaker": ("pacemaker",),
    }
    if name not in groups:
        raise ValueError(f"unknown phantom segment {name!r}; choose from {sorted(groups)}")
    mask = phantom.mask(*groups[name])
    if name == "lungs":
        mask &= ~phantom.mask("pacemaker")
    return mask


def write_synthetic_cxr_study(folder: str | Path, rows: int = 320, columns: int = 288, **kwargs) -> list[Path]:
    """One CR image (a one-instance study) in ``folder``; returns the written files."""
    return write_study(folder, kinds=("CR",), rows=rows, columns=columns, **kwargs).images


__all__ = [
    "PRIVATE_CREATOR",
    "SOP_CLASS_OF_KIND",
    "StudyInfo",
    "SyntheticCXR",
    "SyntheticStudy",
    "WRITABLE_TRANSFER_SYNTAXES",
    "make_cxr",
    "make_cxr_dataset",
    "make_seg_dataset",
    "save_dataset",
    "stored_range",
    "write_study",
    "write_synthetic_cxr_study",
]
