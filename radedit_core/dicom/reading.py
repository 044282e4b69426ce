"""DICOM file, series folder or study folder -> :class:`SourceImage`.

Rules (docs/dicom-pacs.md, "Reading"):

* Editable: single-frame grayscale CR, DX (for presentation and for
  processing) and secondary-capture images (including one-frame multi-frame
  grayscale SC); anything else is an :class:`InputError` that says what the
  file is.
* A folder is searched recursively; other DICOM objects (SEG, SR,
  presentation states) and non-DICOM files are ignored.  Several images need
  ``select`` (a SOPInstanceUID or a SeriesInstanceUID matching exactly one).
* Instances radedit wrote itself (an earlier edit in the same study,
  :func:`is_radedit_output`) are not candidates unless ``select`` names them.
* Objects that are not images (SR, RT Structure Set, key objects, ...) are
  reported as such, also without file meta or preamble.
* StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID (Type 1) must be
  present: a derived series references all three.
* ``SourceImage.array`` holds *stored values* (before rescale; the
  ``BitsStored`` bits ending at ``HighBit``, see
  :mod:`radedit_core.dicom.decoding`) in display polarity "bright = dense":
  an image that displays inverted is flipped within its stored range,
  ``vmax + vmin - stored``, and ``monochrome1`` tells the writer to flip
  back.  What displays inverted follows the grayscale pipeline (PS3.3
  C.11.6, PS3.4 N.2): a Presentation LUT Shape in the image decides (INVERSE:
  high values dark, IDENTITY: high values bright), else the Photometric
  Interpretation (MONOCHROME1: high values dark).  MONOCHROME2 with INVERSE
  and MONOCHROME1 with IDENTITY (pairs the DX and CR modules do not allow)
  are read that way and noted.
* Pixel Padding Value (and Pixel Padding Range Limit, PS3.3 C.7.5.1.1.2)
  become ``SourceImage.padding_range``.
* ``window`` is the source's VOI converted to stored values (and flipped for
  MONOCHROME1): WindowCenter/Width by the LINEAR formula of PS3.3
  C.11.2.1.2 (LINEAR_EXACT, and SIGMOID as its centre +- width/2), or, with
  only a VOI LUT Sequence, the input interval over which the LUT rises from
  its first to its last output value.
* Geometry: PixelSpacing, else ImagerPixelSpacing, else
  NominalScannedPixelSpacing (else 1 mm); with ImagePositionPatient and
  ImageOrientationPatient a one-slice 3D placement as ITK builds it.
* ``metadata["notes"]``: one line per thing a user should know about how
  the file was read (polarity, HighBit layout, padding, decoder
  disagreements) and per problem inherited from the source that the
  derived instance will carry (:mod:`radedit_core.dicom.conformance`).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from ..errors import InputError
from ..imaging.image import Geometry, SourceImage
from .conformance import inherited_problems
from .decoding import _short, decode_stored_values, high_bit_shift, stored_value_range
from .luts import Lut, is_little_endian, read_lut
from .sop import (
    EDITABLE_SOP_CLASSES,
    RADEDIT_DERIVATION_PREFIX,
    RADEDIT_MANUFACTURER,
    RADEDIT_MODEL_NAME,
    SEGMENTATION,
    count_sop_classes,
    describe_instances,
    sop_class_name,
)

#: Header attributes read when indexing a folder (pixel data is never read there).
_INDEX_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "NumberOfFrames",
    "InstanceNumber",
    # what tells radedit's own output apart (is_radedit_output)
    "Manufacturer",
    "ManufacturerModelName",
    "ImageType",
    "DerivationDescription",
]
#: SOP classes whose IODs let HighBit differ from BitsStored - 1 (DX, C.8.11.3.1.x, and
#: multi-frame grayscale SC, C.8.6.3, require HighBit = BitsStored - 1).
LAYOUT_KEEPING_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.7"})
#: Files looked at beside a single input file to learn the study's series numbers.
_MAX_SIBLINGS = 2000
#: Spacing attributes in order of preference (PS3.3 10.7.1.3: PixelSpacing is
#: calibrated to the patient plane, ImagerPixelSpacing is at the detector).
SPACING_ATTRIBUTES = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


@dataclass(frozen=True)
class InstanceHeader:
    """What a folder scan learns about one DICOM file."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    frames: int
    written_by_radedit: bool = False

    @property
    def editable(self) -> bool:
        return self.sop_class_uid in EDITABLE_SOP_CLASSES

    def describe(self) -> str:
        number = "" if self.series_number is None else f" {self.series_number}"
        what = f"series{number} '{self.series_description}'" if self.series_description else f"series{number}"
        return f"{self.sop_instance_uid} ({what}, {self.modality or '?'}, file {self.path.name})"


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def is_radedit_output(ds: Dataset) -> bool:
    """Whether an instance was written by this toolkit (an earlier edit, or its SEG).

    Recognised by radedit's own General Equipment (Manufacturer
    ``radedit_core``, model ``RadEdit``) together with its derivation: a
    DERIVED image whose DerivationDescription starts with "RadEdit diffusion
    edit", or a SEG radedit made of the masks it applied.  Other derived
    images (processed DX, secondary captures) are not radedit outputs.
    """
    if str(ds.get("Manufacturer", "") or "").strip() != RADEDIT_MANUFACTURER:
        return False
    if str(ds.get("ManufacturerModelName", "") or "").strip() != RADEDIT_MODEL_NAME:
        return False
    if str(ds.get("SOPClassUID", "")) == SEGMENTATION:
        return True
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    description = str(ds.get("DerivationDescription", "") or "")
    return bool(image_type) and image_type[0] == "DERIVED" and description.startswith(RADEDIT_DERIVATION_PREFIX)


def read_header(path: Path) -> InstanceHeader | None:
    """The indexing attributes of a DICOM file, or None if it is not readable DICOM."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_INDEX_TAGS)
    except Exception:  # noqa: BLE001 - an unreadable file is skipped, whatever pydicom raised
        return None
    sop_class = str(ds.get("SOPClassUID", "") or ds.get("file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    # An image without its SOPInstanceUID is still indexed: reading it then
    # says what is missing, instead of the folder seeming to hold no image.
    if not sop_class or not (sop_uid or sop_class in EDITABLE_SOP_CLASSES):
        return None
    return InstanceHeader(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        written_by_radedit=is_radedit_output(ds),
    )


def _candidate_files(folder: Path, recursive: bool) -> list[Path]:
    files: list[Path] = []
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, dirs, names in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(root) / name
            if path.is_file():
                files.append(path)
    return files


def scan_folder(
    folder: str | Path, recursive: bool = True, limit: int | None = None
) -> tuple[list[InstanceHeader], int]:
    """Headers of the DICOM files under ``folder`` and the number of other files."""
    folder = Path(folder)
    headers: list[InstanceHeader] = []
    skipped = 0
    files = _candidate_files(folder, recursive)
    if limit is not None:
        files = files[:limit]
    for path in files:
        header = read_header(path)
        if header is None:
            skipped += 1
        else:
            headers.append(header)
    return headers, skipped


def _listing(headers: list[InstanceHeader]) -> str:
    return describe_instances(headers)


def _contents(headers: list[InstanceHeader]) -> str:
    return count_sop_classes(h.sop_class_uid for h in headers)


class NoImageChoice(ValueError):
    """Why no single editable image could be chosen (the caller names the folder or the study)."""


def choose_image(
    headers: list[InstanceHeader],
    select: str | None = None,
    *,
    where: str = "folder",
    option: str = "select",
    skipped: int = 0,
) -> InstanceHeader:
    """The one editable image among ``headers`` (a folder's files, a fetched PACS study).

    ``select`` (a SOPInstanceUID or SeriesInstanceUID) picks one; without it
    there must be exactly one candidate.  Earlier radedit edits are results,
    not sources: they are candidates only when ``select`` names them.

    Raises:
        NoImageChoice: the problem in words, with ``where`` ("folder", "study
            1.2.3") and ``option`` ("select", "--select") as the user knows them.
    """
    editable = [h for h in headers if h.editable]
    images = [h for h in editable if not h.written_by_radedit]
    earlier = [h for h in editable if h.written_by_radedit]
    if select is not None:
        images = editable
        matched = [h for h in headers if select in (h.sop_instance_uid, h.series_uid)]
        if not matched:
            raise NoImageChoice(
                f"no instance or series with UID {select} in the {where.split()[0]} "
                f"(editable images: {_listing(images) if images else 'none'})"
            )
        chosen = [h for h in matched if h.editable]
        if not chosen:
            raise NoImageChoice(f"{select} holds {_contents(matched)}, not a CR, DX or secondary-capture image to edit")
        if len(chosen) > 1:
            raise NoImageChoice(
                f"series {select} holds {len(chosen)} images; choose one by SOPInstanceUID with {option}: "
                f"{_listing(chosen)}"
            )
        return chosen[0]
    if not images:
        if not headers:
            raise NoImageChoice(f"{where} holds no DICOM files ({skipped} other files)")
        if len(earlier) == 1:
            # A derived series on its own (an output folder read back, a stress set's image) is that image.
            return earlier[0]
        if earlier:
            raise NoImageChoice(
                f"{where} holds only images radedit wrote (earlier edits: {_listing(earlier)}); "
                f"choose one with {option} (a SOPInstanceUID or SeriesInstanceUID) to edit an edit"
            )
        raise NoImageChoice(
            f"{where} holds no CR, DX or secondary-capture image to edit (it holds {_contents(headers)})"
        )
    if len(images) > 1:
        also = f" ({len(earlier)} earlier radedit edits are not candidates)" if earlier else ""
        raise NoImageChoice(
            f"{where} holds {len(images)} images{also}; choose one with {option} "
            f"(a SOPInstanceUID or SeriesInstanceUID): {_listing(images)}"
        )
    return images[0]


def _choose(folder: Path, headers: list[InstanceHeader], skipped: int, select: str | None) -> InstanceHeader:
    try:
        return choose_image(headers, select, skipped=skipped)
    except NoImageChoice as exc:
        raise InputError(folder, str(exc)) from None


def locate_dicom_image(path: str | Path, select: str | None = None) -> tuple[Path, list[InstanceHeader]]:
    """The file to edit under ``path`` and the headers of its study seen on the way.

    For a folder, every file under it is indexed; for a single file, its
    siblings are (so that a derived series can get a SeriesNumber that the
    study does not use yet).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        headers, skipped = scan_folder(path, recursive=True)
        chosen = _choose(path, headers, skipped, select)
        return chosen.path, [h for h in headers if h.study_uid == chosen.study_uid]
    if select is not None:
        header = read_header(path)
        if header is not None and select not in (header.sop_instance_uid, header.series_uid):
            raise InputError(path, f"is instance {header.sop_instance_uid} of series {header.series_uid}, not {select}")
    try:
        siblings, _ = scan_folder(path.parent, recursive=False, limit=_MAX_SIBLINGS)
    except OSError:
        siblings = []
    return path, siblings


# -- reading one instance ---------------------------------------------------------


def _read_dataset(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        ds = _read_without_preamble(path)
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt DICOM file ({_short(exc)})") from exc
    _check_complete(ds, path)
    _check_is_image(ds, path)
    return ds


def _sop_class(ds: Dataset) -> str:
    return str(ds.get("SOPClassUID", "") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))


def _holds_pixels(sop_class: str) -> bool:
    """SOP classes whose instances have Pixel Data (images, SEG, RT Dose); SR, RT plans and the like do not."""
    name = sop_class_name(sop_class)
    return sop_class in EDITABLE_SOP_CLASSES or sop_class == SEGMENTATION or "Image" in name or "Dose" in name


def _check_is_image(ds: Dataset, path: Path) -> None:
    """A valid object that is not an image (SR, RT Structure Set, ...) is said to be one.

    Such objects end in sequences, whose end the truncation check does not
    measure (it looks for cut pixel data in images only).
    """
    sop_class = _sop_class(ds)
    if "PixelData" in ds or _holds_pixels(sop_class):
        return
    modality = str(ds.get("Modality", "") or "")
    if not sop_class:
        what = f"a DICOM data set without a SOP Class UID{f' (modality {modality})' if modality else ''}"
    else:
        what = f"a {sop_class_name(sop_class)} object{f' (modality {modality})' if modality else ''}"
    raise InputError(
        path, f"not an image: it is {what}; radedit edits CR, DX and secondary-capture images"
    )


_UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITER = {True: b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", False: b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"}


def _check_complete(ds: Dataset, path: Path) -> None:
    """Refuse a file that ends before its data set does.

    pydicom stops quietly at the end of a truncated file, leaving a short last
    value or no later elements at all; the declared lengths tell.
    """
    size = path.stat().st_size
    meta = getattr(ds, "file_meta", None)
    group_length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    meta_length = None
    if group_length is not None:
        try:
            meta_length = int(group_length)
        except (TypeError, ValueError):
            meta_length = -1
        if meta_length < 0 or size < 132 + 12 + meta_length:
            raise InputError(path, f"truncated file: it ends inside the file meta information ({size} bytes)")
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    # Element positions are file offsets unless the data set was inflated first.
    positions_are_offsets = syntax != str(DeflatedExplicitVRLittleEndian)
    last_tag = max(ds.keys(), default=None)
    end = 132 + 12 + meta_length if meta_length is not None else 0
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, pydicom.dataelem.RawDataElement):
            continue
        if raw.length == _UNDEFINED_LENGTH:
            # Encapsulated pixel data ends with a sequence delimiter; when it is
            # the last element, a file cut short has lost that delimiter.
            if tag == 0x7FE00010 and tag == last_tag and positions_are_offsets:
                with open(path, "rb") as fh:
                    fh.seek(max(size - 8, 0))
                    tail = fh.read(8)
                if tail != _SEQUENCE_DELIMITER[raw.is_little_endian]:
                    raise InputError(path, "truncated file: the encapsulated pixel data has no end delimiter")
            continue
        got = 0 if raw.value is None else len(raw.value)
        if got < raw.length or (positions_are_offsets and raw.value_tell + raw.length > size):
            name = pydicom.datadict.keyword_for_tag(tag) or str(pydicom.tag.Tag(tag))
            raise InputError(
                path, f"truncated file: element {name} declares {raw.length} bytes but the file holds {got}"
            )
        end = max(end, raw.value_tell + raw.length)
    image_expected = _holds_pixels(_sop_class(ds))
    if positions_are_offsets and end and image_expected and "PixelData" not in ds and end < size:
        # Bytes after the last element that pydicom could read: an element
        # (typically encapsulated pixel data) that the file cuts off.
        raise InputError(path, f"truncated file: {size - end} bytes after the last readable element")


def _read_without_preamble(path: Path) -> Dataset:
    """Old files without the 128-byte preamble; anything else is not DICOM."""
    try:
        ds = pydicom.dcmread(path, force=True)
        ok = _looks_like_uid(ds.get("SOPClassUID"))
    except Exception:  # noqa: BLE001 - force-reading arbitrary bytes fails in arbitrary ways
        ok = False
    if not ok:
        raise InputError(path, "not a DICOM file (no DICM preamble and no readable data set)")
    meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else pydicom.dataset.FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        # Without file meta the syntax is the encoding the parser detected.
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else (pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        )
        ds.file_meta = meta
    return ds


def _looks_like_uid(value: Any) -> bool:
    """A SOP Class UID as force-reading real DICOM gives it (random bytes rarely parse as one)."""
    text = str(value or "").strip()
    return 8 <= len(text) <= 64 and all(part.isdigit() for part in text.split(".")) and text.count(".") >= 3


def _check_editable(ds: Dataset, path: Path) -> None:
    sop_class = _sop_class(ds)
    if not sop_class:
        raise InputError(
            path, "has no SOP Class UID, so what kind of object it is is unknown; radedit edits CR, DX and "
            "secondary-capture images"
        )
    if sop_class == SEGMENTATION:
        raise InputError(path, "is a DICOM Segmentation (a mask), not an image; pass it as an edit or keep mask")
    if sop_class not in EDITABLE_SOP_CLASSES:
        modality = ds.get("Modality", "")
        raise InputError(
            path,
            f"SOP class {sop_class_name(sop_class)}{f' (modality {modality})' if modality else ''} is not a "
            "chest X-ray image radedit can edit (CR, DX or secondary capture)",
        )
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        if other:
            raise InputError(path, f"has {other[0]} (floating-point pixels); expected integer Pixel Data")
        raise InputError(path, "has no pixel data (no Pixel Data element)")
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    if frames > 1:
        raise InputError(path, f"multi-frame image with {frames} frames; radedit edits single-frame 2D images")
    samples = _int_or_none(ds.get("SamplesPerPixel")) or 1
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            path,
            f"colour image (PhotometricInterpretation {photometric or 'missing'}, {samples} samples per pixel); "
            "radedit edits grayscale (MONOCHROME1/MONOCHROME2) chest X-rays",
        )
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation"):
        if ds.get(keyword) in (None, ""):
            raise InputError(path, f"Image Pixel module is incomplete: {keyword} is missing")
    allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    if allocated not in (8, 16) or not 8 <= stored <= allocated:
        raise InputError(
            path,
            f"BitsAllocated {allocated} / BitsStored {stored} is not supported; "
            "radedit reads 8 to 16 stored bits in 8- or 16-bit words",
        )
    if int(ds.PixelRepresentation) not in (0, 1):
        raise InputError(path, f"PixelRepresentation {ds.PixelRepresentation} must be 0 or 1")
    if int(ds.Rows) < 1 or int(ds.Columns) < 1:
        raise InputError(path, f"image of {ds.Columns}x{ds.Rows} pixels has no pixels")
    high = _int_or_none(ds.get("HighBit"))
    if high is not None and not stored - 1 <= high < allocated:
        raise InputError(
            path,
            f"HighBit {high} cannot hold BitsStored {stored} in BitsAllocated {allocated} "
            f"(PS3.5 8.1.1: BitsStored - 1 <= HighBit < BitsAllocated)",
        )


#: Type 1 identifiers a derived series copies or references (PS3.3 C.7.2.1, C.7.3.1, C.12.1).
REQUIRED_IDENTIFIERS = (
    ("StudyInstanceUID", "(0020,000D)", "the derived series joins the source's study"),
    ("SeriesInstanceUID", "(0020,000E)", "the derived series references the source's series"),
    ("SOPInstanceUID", "(0008,0018)", "the derived image references the source instance"),
)


def _check_identifiers(ds: Dataset, path: Path) -> None:
    """Missing Type 1 UIDs are an error now, not a traceback (or a study-less series) after the edit."""
    missing = [(k, tag, why) for k, tag, why in REQUIRED_IDENTIFIERS if not str(ds.get(k, "") or "").strip()]
    if missing:
        names = " and ".join(f"{k} {tag}" for k, tag, _ in missing)
        raise InputError(
            path,
            f"{names} {'is' if len(missing) == 1 else 'are'} missing or empty; "
            f"{'it is' if len(missing) == 1 else 'they are'} Type 1 and {missing[0][2]}",
        )


def _check_decodable(ds: Dataset, path: Path) -> UID:
    from pydicom.pixels import get_decoder  # noqa: PLC0415

    meta = getattr(ds, "file_meta", Dataset())
    syntax = UID(str(meta.get("TransferSyntaxUID", "") or "1.2.840.10008.1.2"))
    label = f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else str(syntax)
    if not syntax.is_transfer_syntax:
        raise InputError(path, f"unknown transfer syntax {label}; cannot decode its pixel data")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(
            path, f"transfer syntax {label} is not supported: no pixel data decoder exists for it"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise InputError(
            path,
            f"transfer syntax {label} needs a pixel data decoder plugin that is not installed ({missing})",
        )
    return syntax


# -- value transforms -----------------------------------------------------------------


def _signed_input(ds: Dataset) -> bool:
    return int(ds.get("PixelRepresentation", 0) or 0) == 1


@dataclass(frozen=True)
class ModalityMap:
    """Stored value <-> modality (rescaled) value, linear or through a Modality LUT."""

    slope: float = 1.0
    intercept: float = 0.0
    lut: Lut | None = None

    @classmethod
    def of(cls, ds: Dataset) -> "ModalityMap":
        """The data set's Modality LUT (first item) or rescale.

        Raises:
            ValueError: a Modality LUT Sequence whose item cannot be read.
        """
        seq = ds.get("ModalityLUTSequence")
        if seq:
            return cls(lut=read_lut(seq[0], is_little_endian(ds), _signed_input(ds)))
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        return cls(slope=slope, intercept=intercept)

    def to_modality(self, values: np.ndarray | float) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.lut is not None:
            return self.lut.apply(values).astype(np.float64)
        return values * self.slope + self.intercept

    def to_stored(self, values: np.ndarray | float) -> np.ndarray | None:
        """Inverse map; None when a Modality LUT is not monotonic."""
        values = np.asarray(values, dtype=np.float64)
        if self.lut is not None:
            lut = self.lut.entries.astype(np.float64)
            inputs = self.lut.first + np.arange(len(lut), dtype=np.float64)
            if np.all(np.diff(lut) >= 0):
                return np.interp(values, lut, inputs)
            if np.all(np.diff(lut) <= 0):
                return np.interp(values, lut[::-1], inputs[::-1])
            return None
        if self.slope == 0:
            return None
        return (values - self.intercept) / self.slope


def voi_lut(ds: Dataset, index: int = 0) -> Lut | None:
    """Item ``index`` of the VOI LUT Sequence, decoded; None if absent.

    Its input is the modality output, signed when the image is signed or a
    rescale/Modality LUT can give negative values.

    Raises:
        ValueError: the item cannot be read (see :func:`radedit_core.dicom.luts.read_lut`).
    """
    seq = ds.get("VOILUTSequence")
    if not seq or len(seq) <= index:
        return None
    signed = _signed_input(ds) or float(ds.get("RescaleIntercept", 0) or 0) < 0
    return read_lut(seq[index], is_little_endian(ds), signed)


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if not value:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Voi:
    """The source's VOI: its kind and its input interval in modality units."""

    kind: str  # "window" or "lut"
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high}


def read_voi(ds: Dataset) -> Voi | None:
    """The first window (preferred: it is a linear map) or the first VOI LUT, in modality units.

    None without a usable VOI (no window, a window of no width, a VOI LUT
    that is flat or cannot be read).
    """
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function == "LINEAR" and width >= 1:
            return Voi("window", center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2)
        if function in ("LINEAR_EXACT", "SIGMOID") and width > 0:
            return Voi("window", center - width / 2, center + width / 2)
    try:
        lut = voi_lut(ds)
    except (ValueError, TypeError, AttributeError):
        return None
    if lut is None:
        return None
    entries = lut.entries
    if entries.size < 2 or entries.min() == entries.max():
        return None
    # The LUT varies between the last entry still at its first value and
    # the first entry already at its last value.
    start = int(np.flatnonzero(entries != entries[0])[0]) - 1
    stop = int(np.flatnonzero(entries != entries[-1])[-1]) + 1
    return Voi("lut", float(lut.first + start), float(lut.first + stop))


def _window_in_stored(
    voi: Voi | None, modality: ModalityMap, vmin: int, vmax: int, mono1: bool
) -> tuple[float, float] | None:
    if voi is None:
        return None
    ends = modality.to_stored(np.array([voi.low, voi.high]))
    if ends is None:
        return None
    low, high = sorted(float(v) for v in ends)
    if mono1:
        low, high = vmax + vmin - high, vmax + vmin - low
    # A window beyond the stored range, or of no width, cannot scale the model input.
    if not high > low or high < vmin or low > vmax:
        return None
    return low, high


# -- geometry ------------------------------------------------------------------------


def _pair(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    value = ds.get(keyword)
    try:
        if value is not None and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
            return float(value[0]), float(value[1])
    except (TypeError, ValueError):
        pass
    return None


def read_geometry(ds: Dataset) -> tuple[Geometry, str | None, list[tuple[float, float]]]:
    """(geometry, spacing attribute used, other declared in-plane spacings (x, y))."""
    spacings = {k: _pair(ds, k) for k in SPACING_ATTRIBUTES}
    used = next((k for k in SPACING_ATTRIBUTES if spacings[k] is not None), None)
    # DICOM gives (row spacing, column spacing); ITK wants (x = column, y = row).
    row_sp, col_sp = spacings[used] if used else (1.0, 1.0)
    others = [(v[1], v[0]) for k, v in spacings.items() if v is not None and k != used]
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    try:
        ipp = [float(v) for v in position] if position is not None else []
        iop = [float(v) for v in orientation] if orientation is not None else []
    except (TypeError, ValueError):
        ipp, iop = [], []
    if len(ipp) == 3 and len(iop) == 6:
        row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
        if np.linalg.norm(row_dir) > 0 and np.linalg.norm(col_dir) > 0:
            row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
            normal = np.cross(row_dir, col_dir)
            # ITK's direction matrix has the axis directions as columns.
            matrix = np.stack([row_dir, col_dir, normal], axis=1)
            return (
                Geometry(
                    spacing=(col_sp, row_sp, 1.0),
                    origin=tuple(ipp),
                    direction=tuple(float(v) for v in matrix.ravel()),
                    dimension=3,
                ),
                used,
                others,
            )
    return (
        Geometry(spacing=(col_sp, row_sp), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0), dimension=2),
        used,
        others,
    )


# -- the public reader ------------------------------------------------------------------


def read_dicom_dataset(path: str | Path) -> Dataset:
    """Read and check one DICOM image file (decodable, single-frame grayscale CR/DX/SC)."""
    path = Path(path)
    ds = _read_dataset(path)
    _check_editable(ds, path)
    _check_decodable(ds, path)
    return ds


# -- presentation: polarity and padding --------------------------------------------------


@dataclass(frozen=True)
class Polarity:
    """How stored values display: ``inverted`` when high stored values are dark.

    PS3.3 C.11.6 / PS3.4 N.2: a Presentation LUT Shape in the image decides
    (INVERSE: the VOI output is inverted before display); without one the
    Photometric Interpretation does (MONOCHROME1: minimum value is white).
    """

    photometric: str
    presentation_lut_shape: str | None
    inverted: bool

    @property
    def consistent(self) -> bool:
        """Whether the pair is one the DX and CR modules allow (MONOCHROME1/INVERSE, MONOCHROME2/IDENTITY)."""
        if self.presentation_lut_shape is None:
            return True
        return self.inverted == (self.photometric == "MONOCHROME1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "photometric_interpretation": self.photometric,
            "presentation_lut_shape": self.presentation_lut_shape,
            "displayed": "high values dark" if self.inverted else "high values bright",
        }


def read_polarity(ds: Dataset) -> Polarity:
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper() or None
    if shape in ("INVERSE", "IDENTITY"):
        return Polarity(photometric, shape, shape == "INVERSE")
    return Polarity(photometric, shape, photometric == "MONOCHROME1")


def _polarity_note(polarity: Polarity) -> str | None:
    if polarity.consistent:
        return None
    equivalent = "MONOCHROME1 with INVERSE" if polarity.inverted else "MONOCHROME2 with IDENTITY"
    return (
        f"PhotometricInterpretation {polarity.photometric} with Presentation LUT Shape "
        f"{polarity.presentation_lut_shape}: the shape decides what displays bright (PS3.3 C.11.6), so high "
        f"values display {'dark' if polarity.inverted else 'bright'} and the model sees the image that way; "
        f"a derived image is written as the conformant equivalent {equivalent} (stored values unchanged)"
    )


def read_padding(
    ds: Dataset, vmin: int, vmax: int, inverted: bool
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """Pixel Padding Value/Range Limit as (range in stored values, range in display-polarity values).

    PS3.3 C.7.5.1.1.2: the padding pixels are those equal to Pixel Padding
    Value or, with Pixel Padding Range Limit, between the two (inclusive, in
    either order), in stored values.
    """
    value = ds.get("PixelPaddingValue")
    if value in (None, ""):
        return None, None
    values = [_padding_int(ds, "PixelPaddingValue")]
    if ds.get("PixelPaddingRangeLimit") not in (None, ""):
        values.append(_padding_int(ds, "PixelPaddingRangeLimit"))
    low, high = min(values), max(values)
    stored = (float(low), float(high))
    shown = (float(vmax + vmin - high), float(vmax + vmin - low)) if inverted else stored
    return stored, shown


def _padding_int(ds: Dataset, keyword: str) -> int:
    value = int(ds[keyword].value if not isinstance(ds[keyword].value, (list, tuple)) else ds[keyword].value[0])
    # US/SS ambiguous: a US value above 32767 in a signed image is negative.
    if int(ds.PixelRepresentation) == 1 and ds[keyword].VR != "SS" and value > 32767:
        value -= 65536
    return value


# -- what other readers make of the grid ----------------------------------------------------


def itk_geometry(path: str | Path) -> Geometry | None:
    """The grid ITK's GDCM reader (and so 3D Slicer and SimpleITK) reports for a DICOM file.

    Header only; None if GDCM cannot read it.  GDCM takes ImagerPixelSpacing
    for CR/DX and reports 1 mm pixels for a CR with PixelSpacing only.
    """
    import SimpleITK as sitk  # noqa: PLC0415

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return Geometry(
        spacing=tuple(reader.GetSpacing()),
        origin=tuple(reader.GetOrigin()),
        direction=tuple(reader.GetDirection()),
        dimension=reader.GetDimension(),
    )


def reader_convention_geometries(image: SourceImage) -> list[tuple[Geometry, str]]:
    """Other grids a mask of this DICOM image may carry, each with the note that explains it.

    The pixel grid is the same; only the physical spacing (origin,
    direction) that another reader derives from the file differs: ITK/GDCM
    (and so 3D Slicer, which saves segmentations on that grid) reports 1 mm
    pixels for a CR with PixelSpacing only.
    """
    files = image.metadata.get("files") or []
    if image.format != "dicom" or not files or not Path(files[0]).is_file():
        return []
    geometry = itk_geometry(files[0])
    if geometry is None:
        return []
    ours = image.geometry
    attribute = image.metadata.get("spacing_attribute") or "no spacing attribute"
    note = (
        f"a mask on the grid ITK/GDCM (and so 3D Slicer) reports for {Path(files[0]).name} "
        f"({geometry.spacing[0]:g} x {geometry.spacing[1]:g} mm pixels; radedit reads "
        f"{ours.spacing[0]:g} x {ours.spacing[1]:g} mm from {attribute}) was accepted: same pixel grid, "
        "another reader's spacing convention"
    )
    return [(geometry, note)]


def add_note(image: SourceImage, note: str) -> None:
    """Append a one-line note for the sidecar and the console (once)."""
    notes = image.metadata.setdefault("notes", [])
    if note not in notes:
        notes.append(note)


# -- the public reader ------------------------------------------------------------------


def read_dicom_image(path: str | Path, select: str | None = None) -> SourceImage:
    """Read one chest X-ray from a DICOM file, a series folder or a study folder.

    Args:
        path: a DICOM file, or a folder searched recursively for CR, DX and
            secondary-capture images (earlier radedit edits are skipped
            unless ``select`` names one).
        select: a SOPInstanceUID or SeriesInstanceUID that picks exactly one
            image when a folder holds several (or checks a single file).

    Returns:
        A :class:`SourceImage` of stored values in display polarity (bright =
        dense) with ``value_range`` the stored range, ``window`` the VOI in
        stored units, ``monochrome1`` set when the source displays inverted
        (MONOCHROME1, or a Presentation LUT Shape INVERSE),
        ``padding_range`` from Pixel Padding Value/Range Limit,
        ``format="dicom"`` and metadata: ``dataset`` (the source data set
        without its pixel data), ``files`` (the file read),
        ``transfer_syntax``, ``decoding`` (plugins used, set aside, failed),
        ``polarity``, ``padding`` (stored-value range and pixel count),
        ``voi`` (kind and modality-unit interval), ``study_series_numbers``
        (SeriesNumbers seen in the same study), ``spacing_attribute``,
        ``alternative_spacings``, ``high_bit`` and ``notes`` (one-line
        remarks for the sidecar and console, see the module docstring).

    Raises:
        InputError: naming the file (or folder) and the problem.
    """
    file, context = locate_dicom_image(path, select)
    ds = _read_dataset(file)
    _check_editable(ds, file)
    _check_identifiers(ds, file)
    syntax = _check_decodable(ds, file)
    decoded = decode_stored_values(ds, file, syntax)
    notes: list[str] = list(decoded.notes)
    stored = decoded.stored
    vmin, vmax = stored_value_range(ds)
    shift = high_bit_shift(ds)
    if shift:
        notes.append(
            f"HighBit {int(ds.HighBit)} with BitsStored {int(ds.BitsStored)}: the stored values occupy bits "
            f"{shift}..{int(ds.HighBit)} of each {int(ds.BitsAllocated)}-bit word and were read from there; "
            + (
                "a derived image keeps that layout"
                if str(ds.SOPClassUID) in LAYOUT_KEEPING_SOP_CLASSES
                else f"a derived {sop_class_name(str(ds.SOPClassUID))} image stores the same values with "
                f"HighBit {int(ds.BitsStored) - 1}, as its IOD requires"
            )
        )
    polarity = read_polarity(ds)
    if (note := _polarity_note(polarity)) is not None:
        notes.append(note)
    mono1 = polarity.inverted
    array = (vmax + vmin - stored.astype(np.int64)).astype(stored.dtype) if mono1 else stored
    try:
        modality = ModalityMap.of(ds)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(file, f"Modality LUT Sequence cannot be read ({exc})") from None
    if modality.lut is None and modality.slope == 0:
        raise InputError(file, "RescaleSlope is 0: stored values cannot be mapped to modality values")
    voi = read_voi(ds)
    if voi is None and ds.get("VOILUTSequence"):
        try:
            voi_lut(ds)
            notes.append("VOI LUT Sequence maps every input to one value: ignored for the model's intensity range")
        except (ValueError, TypeError, AttributeError) as exc:
            notes.append(f"VOI LUT Sequence cannot be read ({exc}): ignored for the model's intensity range")
    window = _window_in_stored(voi, modality, vmin, vmax, mono1)
    padding_stored, padding_range = read_padding(ds, vmin, vmax, mono1)
    padding_info = None
    if padding_stored is not None:
        count = int(np.count_nonzero((stored >= padding_stored[0]) & (stored <= padding_stored[1])))
        shown = f"{padding_stored[0]:g}" + (
            f"..{padding_stored[1]:g}" if padding_stored[1] != padding_stored[0] else ""
        )
        notes.append(
            f"Pixel Padding Value {shown}: {count / stored.size:.1%} of the pixels are padding (e.g. a collimation "
            "border); they stay out of the model's intensity range and unchanged, and edited pixels never take "
            "the padding value"
        )
        padding_info = {"stored_range": list(padding_stored), "pixels": count}
    geometry, spacing_attribute, alternatives = read_geometry(ds)
    study_uid = str(ds.get("StudyInstanceUID", ""))
    numbers = {h.series_number for h in context if h.study_uid == study_uid and h.series_number is not None}
    if _int_or_none(ds.get("SeriesNumber")) is not None:
        numbers.add(int(ds.SeriesNumber))
    try:
        first_voi_lut = voi_lut(ds)
    except (ValueError, TypeError, AttributeError):
        first_voi_lut = None  # a VOI LUT the reader cannot decode gets no re-encoding note
    notes.extend(inherited_problems(ds, first_voi_lut))
    del ds.PixelData  # the pixels live in the array; the header is what writers need
    return SourceImage(
        array=array,
        value_range=(float(vmin), float(vmax)),
        geometry=geometry,
        window=window,
        path=file,
        format="dicom",
        monochrome1=mono1,
        padding_range=padding_range,
        metadata={
            "dataset": ds,
            "files": [file],
            "transfer_syntax": str(syntax),
            "decoding": decoded.to_dict(),
            "polarity": polarity.to_dict(),
            "padding": padding_info,
            "high_bit": int(ds.get("HighBit", int(ds.BitsStored) - 1)),
            "voi": None if voi is None else voi.to_dict(),
            "study_series_numbers": sorted(numbers),
            "spacing_attribute": spacing_attribute,
            "alternative_spacings": alternatives,
            "notes": notes,
        },
    )


__all__ = [
    "InstanceHeader",
    "NoImageChoice",
    "choose_image",
    "LAYOUT_KEEPING_SOP_CLASSES",
    "ModalityMap",
    "Polarity",
    "REQUIRED_IDENTIFIERS",
    "add_note",
    "is_radedit_output",
    "itk_geometry",
    "read_padding",
    "read_polarity",
    "reader_convention_geometries",
    "voi_lut",
    "SPACING_ATTRIBUTES",
    "Voi",
    "locate_dicom_image",
    "read_dicom_dataset",
    "read_dicom_image",
    "read_geometry",
    "read_header",
    "read_voi",
    "scan_folder",
    "stored_value_range",
]
