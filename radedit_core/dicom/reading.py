"""DICOM file, series folder or study folder -> :class:`SourceImage`.

Rules (README, "DICOM"):

* Editable: single-frame grayscale CR, DX (for presentation and for
  processing) and secondary-capture images (including one-frame multi-frame
  grayscale SC); anything else is an :class:`InputError` that says what the
  file is.
* A folder is searched recursively; other DICOM objects (SEG, SR,
  presentation states) and non-DICOM files are ignored.  Several images need
  ``select`` (a SOPInstanceUID or a SeriesInstanceUID matching exactly one).
* ``SourceImage.array`` holds *stored values* (before rescale) in MONOCHROME2
  polarity: a MONOCHROME1 image is flipped within its stored range,
  ``vmax + vmin - stored``, and ``monochrome1`` tells the writer to flip back.
* ``window`` is the source's VOI converted to stored values (and flipped for
  MONOCHROME1): WindowCenter/Width by the LINEAR formula of PS3.3
  C.11.2.1.2 (LINEAR_EXACT, and SIGMOID as its centre +- width/2), or, with
  only a VOI LUT Sequence, the input interval over which the LUT rises from
  its first to its last output value.
* Geometry: PixelSpacing, else ImagerPixelSpacing, else
  NominalScannedPixelSpacing (else 1 mm); with ImagePositionPatient and
  ImageOrientationPatient a one-slice 3D placement as ITK builds it.
"""

from __future__ import annotations

import contextlib
import logging
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
from .sop import EDITABLE_SOP_CLASSES, SEGMENTATION, count_sop_classes, describe_instances, sop_class_name

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
]
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


def read_header(path: Path) -> InstanceHeader | None:
    """The indexing attributes of a DICOM file, or None if it is not readable DICOM."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_INDEX_TAGS)
    except Exception:  # noqa: BLE001 - an unreadable file is skipped, whatever pydicom raised
        return None
    sop_class = str(ds.get("SOPClassUID", "") or ds.get("file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    if not sop_class or not sop_uid:
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


def _choose(folder: Path, headers: list[InstanceHeader], skipped: int, select: str | None) -> InstanceHeader:
    images = [h for h in headers if h.editable]
    if select is not None:
        matched = [h for h in headers if select in (h.sop_instance_uid, h.series_uid)]
        if not matched:
            raise InputError(
                folder,
                f"no instance or series with UID {select} here "
                f"(editable images: {_listing(images) if images else 'none'})",
            )
        chosen = [h for h in matched if h.editable]
        if not chosen:
            raise InputError(
                folder, f"{select} holds {_contents(matched)}, not a CR, DX or secondary-capture image to edit"
            )
        if len(chosen) > 1:
            raise InputError(
                folder,
                f"series {select} holds {len(chosen)} images; select one by SOPInstanceUID: {_listing(chosen)}",
            )
        return chosen[0]
    if not images:
        if not headers:
            raise InputError(folder, f"folder holds no DICOM files ({skipped} other files)")
        raise InputError(
            folder, f"folder holds no CR, DX or secondary-capture image to edit (it holds {_contents(headers)})"
        )
    if len(images) > 1:
        raise InputError(
            folder,
            f"folder holds {len(images)} images; choose one with select "
            f"(a SOPInstanceUID or SeriesInstanceUID): {_listing(images)}",
        )
    return images[0]


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
    return ds


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
    if positions_are_offsets and end and "PixelData" not in ds and end < size:
        # Bytes after the last element that pydicom could read: an element
        # (typically encapsulated pixel data) that the file cuts off.
        raise InputError(path, f"truncated file: {size - end} bytes after the last readable element")


def _read_without_preamble(path: Path) -> Dataset:
    """Old files without the 128-byte preamble; anything else is not DICOM."""
    try:
        ds = pydicom.dcmread(path, force=True)
        ok = "SOPClassUID" in ds and ("PixelData" in ds or "Rows" in ds)
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


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text += " " + lines[1]
    return text[:240]


def _check_editable(ds: Dataset, path: Path) -> None:
    sop_class = str(ds.get("SOPClassUID", "") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
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


@contextlib.contextmanager
def _quiet(logger_name: str):
    """pydicom logs each failing decoder plugin with a traceback; the InputError says it once."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def stored_value_range(ds: Dataset) -> tuple[int, int]:
    """Inclusive (min, max) representable in BitsStored with PixelRepresentation."""
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _decode(ds: Dataset, path: Path, syntax: UID) -> np.ndarray:
    rows, cols = int(ds.Rows), int(ds.Columns)
    if not syntax.is_encapsulated:
        expected = rows * cols * int(ds.BitsAllocated) // 8
        got = len(ds.PixelData or b"")
        if got < expected:
            raise InputError(path, f"truncated pixel data: {got} bytes for {cols} x {rows} pixels, expected {expected}")
    try:
        with _quiet("pydicom"):
            array = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise anything from ValueError to RuntimeError
        raise InputError(path, f"pixel data cannot be decoded ({_short(exc)})") from exc
    if array.shape != (rows, cols):
        raise InputError(path, f"decoded pixel data has shape {array.shape}, expected {rows} x {cols}")
    bits = int(ds.BitsStored)
    signed = int(ds.PixelRepresentation) == 1
    # Bits above HighBit are not pixel data (old files keep overlays there):
    # keep the stored bits only, sign-extended for two's complement data.
    pattern = array.astype(np.int64) & ((1 << bits) - 1)
    if signed:
        pattern = np.where(pattern >= (1 << (bits - 1)), pattern - (1 << bits), pattern)
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
        (int(ds.BitsAllocated), signed)
    ]
    return pattern.astype(dtype)


# -- value transforms -----------------------------------------------------------------


@dataclass(frozen=True)
class ModalityMap:
    """Stored value <-> modality (rescaled) value, linear or through a Modality LUT."""

    slope: float = 1.0
    intercept: float = 0.0
    lut_first: int | None = None
    lut: np.ndarray | None = None

    @classmethod
    def of(cls, ds: Dataset) -> "ModalityMap":
        seq = ds.get("ModalityLUTSequence")
        if seq:
            item = seq[0]
            entries, first, _ = (int(v) for v in item.LUTDescriptor)
            data = np.asarray(_lut_values(item), dtype=np.float64)
            return cls(lut_first=first, lut=data[: entries or 65536])
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        return cls(slope=slope, intercept=intercept)

    def to_modality(self, values: np.ndarray | float) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.lut is not None:
            index = np.clip(np.rint(values - self.lut_first), 0, len(self.lut) - 1).astype(int)
            return self.lut[index]
        return values * self.slope + self.intercept

    def to_stored(self, values: np.ndarray | float) -> np.ndarray | None:
        """Inverse map; None when a Modality LUT is not monotonic."""
        values = np.asarray(values, dtype=np.float64)
        if self.lut is not None:
            inputs = self.lut_first + np.arange(len(self.lut), dtype=np.float64)
            lut = self.lut
            if np.all(np.diff(lut) >= 0):
                return np.interp(values, lut, inputs)
            if np.all(np.diff(lut) <= 0):
                return np.interp(values, lut[::-1], inputs[::-1])
            return None
        if self.slope == 0:
            return None
        return (values - self.intercept) / self.slope


def _lut_values(item: Dataset) -> list[int]:
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(bytes(data), dtype="<u2").tolist()
    return list(data) if isinstance(data, (list, tuple, pydicom.multival.MultiValue)) else [int(data)]


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
    """The first window (preferred: it is a linear map) or the first VOI LUT, in modality units."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function == "LINEAR" and width >= 1:
            return Voi("window", center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2)
        if function in ("LINEAR_EXACT", "SIGMOID") and width > 0:
            return Voi("window", center - width / 2, center + width / 2)
    seq = ds.get("VOILUTSequence")
    if seq:
        item = seq[0]
        try:
            entries, first, _ = (int(v) for v in item.LUTDescriptor)
            lut = np.asarray(_lut_values(item), dtype=np.float64)[: entries or 65536]
        except (AttributeError, TypeError, ValueError):
            return None
        if lut.size < 2 or lut.min() == lut.max():
            return None
        # The LUT varies between the last entry still at its first value and
        # the first entry already at its last value.
        start = int(np.flatnonzero(lut != lut[0])[0]) - 1
        stop = int(np.flatnonzero(lut != lut[-1])[-1]) + 1
        return Voi("lut", float(first + start), float(first + stop))
    return None


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


def read_dicom_image(path: str | Path, select: str | None = None) -> SourceImage:
    """Read one chest X-ray from a DICOM file, a series folder or a study folder.

    Args:
        path: a DICOM file, or a folder searched recursively for CR, DX and
            secondary-capture images.
        select: a SOPInstanceUID or SeriesInstanceUID that picks exactly one
            image when a folder holds several (or checks a single file).

    Returns:
        A :class:`SourceImage` of stored values in MONOCHROME2 polarity with
        ``value_range`` the stored range, ``window`` the VOI in stored units,
        ``monochrome1`` set for MONOCHROME1 sources, ``format="dicom"`` and
        metadata: ``dataset`` (the source data set without its pixel data),
        ``files`` (the file read), ``transfer_syntax``, ``voi`` (kind and
        modality-unit interval), ``study_series_numbers`` (SeriesNumbers seen
        in the same study), ``spacing_attribute`` and ``alternative_spacings``.

    Raises:
        InputError: naming the file (or folder) and the problem.
    """
    file, context = locate_dicom_image(path, select)
    ds = _read_dataset(file)
    _check_editable(ds, file)
    syntax = _check_decodable(ds, file)
    stored = _decode(ds, file, syntax)
    vmin, vmax = stored_value_range(ds)
    mono1 = str(ds.PhotometricInterpretation).strip().upper() == "MONOCHROME1"
    array = (vmax + vmin - stored.astype(np.int64)).astype(stored.dtype) if mono1 else stored
    modality = ModalityMap.of(ds)
    if modality.lut is None and modality.slope == 0:
        raise InputError(file, "RescaleSlope is 0: stored values cannot be mapped to modality values")
    voi = read_voi(ds)
    window = _window_in_stored(voi, modality, vmin, vmax, mono1)
    geometry, spacing_attribute, alternatives = read_geometry(ds)
    study_uid = str(ds.get("StudyInstanceUID", ""))
    numbers = {h.series_number for h in context if h.study_uid == study_uid and h.series_number is not None}
    if _int_or_none(ds.get("SeriesNumber")) is not None:
        numbers.add(int(ds.SeriesNumber))
    del ds.PixelData  # the pixels live in the array; the header is what writers need
    return SourceImage(
        array=array,
        value_range=(float(vmin), float(vmax)),
        geometry=geometry,
        window=window,
        path=file,
        format="dicom",
        monochrome1=mono1,
        metadata={
            "dataset": ds,
            "files": [file],
            "transfer_syntax": str(syntax),
            "voi": None if voi is None else voi.to_dict(),
            "study_series_numbers": sorted(numbers),
            "spacing_attribute": spacing_attribute,
            "alternative_spacings": alternatives,
        },
    )


__all__ = [
    "InstanceHeader",
    "ModalityMap",
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
