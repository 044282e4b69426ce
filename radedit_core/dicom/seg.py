"""DICOM SEG masks: reading chosen segments onto an image, writing edit/keep masks.

A SEG mask must reference the very image being edited (its SOPInstanceUID) and
lie on its pixel grid; anything else is a :class:`MaskError`, never a
resample.  Segments are chosen by number or by label (case-insensitive); the
mask is the union of the chosen segments (all of them when none are chosen).

A FRACTIONAL SEG (probabilities or occupancies, PS3.3 C.8.20.2) holds
fractions, not a region: used as a binary mask, a pixel is inside where its
fraction is at least :data:`FRACTIONAL_THRESHOLD` (0.5) of the Maximum
Fractional Value (a faint background probability is outside); soft masks
get the fractions themselves.  The image's ``metadata["notes"]`` records
which was used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes

from .._version import __version__
from ..errors import InputError, MaskError
from ..imaging.image import SourceImage
from .charset import encoded_size, fit_text, output_character_set
from .sop import (
    MULTIFRAME_SC_SOP_CLASSES,
    RADEDIT_MANUFACTURER,
    RADEDIT_MODEL_NAME,
    SECONDARY_CAPTURE,
    SEGMENTATION,
    sop_class_name,
)

#: (category, type) codes of segment names radedit writes or the sample study holds.
SEGMENT_CODES: dict[str, tuple[Any, Any]] = {
    "lungs": (codes.SCT.AnatomicalStructure, codes.SCT.Lung),
    "left_lung": (codes.SCT.AnatomicalStructure, codes.SCT.Lung),
    "right_lung": (codes.SCT.AnatomicalStructure, codes.SCT.Lung),
    "heart": (codes.SCT.AnatomicalStructure, codes.SCT.Heart),
    "pacemaker": (codes.SCT.PhysicalObject, codes.SCT.CardiacPacemaker),
    "pneumothorax": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Pneumothorax),
    "drain": (codes.SCT.PhysicalObject, codes.SCT.TubeDevice),
}
_PATIENT_COORDINATES = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
#: Edit and keep regions are image regions, not anatomy.
REGION_CODES = (codes.SCT.SpatialAndRelationalConcept, codes.DCM.ImageRegion)
MANUFACTURER = RADEDIT_MANUFACTURER
MODEL_NAME = RADEDIT_MODEL_NAME
#: A FRACTIONAL segment used as a binary mask: inside where fraction >= this share of the maximum.
FRACTIONAL_THRESHOLD = 0.5


def _select_tokens(select: Any) -> list[str] | None:
    """None, a label/number, a comma-separated string or a sequence -> tokens."""
    if select is None:
        return None
    if isinstance(select, (int, np.integer)):
        return [str(int(select))]
    if isinstance(select, str):
        return [select.strip()] if select.strip() else []
    return [str(s).strip() for s in select]


def select_tokens(select: Any, names: Iterable[str] = ()) -> list[str] | None:
    """Split a selection; a whole string that is itself a name is kept whole."""
    tokens = _select_tokens(select)
    if tokens is None:
        return None
    lowered = {n.strip().lower() for n in names}
    out: list[str] = []
    for token in tokens:
        if token.lower() in lowered or "," not in token:
            out.append(token)
        else:
            out.extend(t.strip() for t in token.split(",") if t.strip())
    return out


def _read_seg(path: Path) -> hd.seg.Segmentation:
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder; expected a DICOM SEG file")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise MaskError(path, "not a DICOM file") from exc
    except Exception as exc:  # noqa: BLE001 - truncated files fail in many ways
        raise MaskError(path, f"truncated or corrupt DICOM file ({str(exc).strip()[:200]})") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != SEGMENTATION:
        raise MaskError(
            path,
            f"is a {sop_class_name(sop_class)} object, not a DICOM Segmentation; " "DICOM masks must be SEG objects",
        )
    _complete_pixel_measures(ds)
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:  # noqa: BLE001 - highdicom validates with many exception types
        raise MaskError(path, f"is not a valid DICOM SEG ({str(exc).strip()[:200]})") from exc


def _complete_pixel_measures(ds: Dataset) -> None:
    """Give in-memory Pixel Measures items a SliceThickness where they lack one.

    A SEG of a projection radiograph has no slice thickness, and highdicom
    writes its Pixel Measures that way (dciodvfy accepts it), yet highdicom's
    parser insists on the attribute.  Only the copy in memory is touched; the
    value is never used because spatial locations are ignored when reading.
    """
    groups = list(ds.get("SharedFunctionalGroupsSequence", [])) + list(ds.get("PerFrameFunctionalGroupsSequence", []))
    for group in groups:
        for item in group.get("PixelMeasuresSequence", []):
            if "PixelSpacing" in item and "SliceThickness" not in item:
                item.SliceThickness = 1.0


def segment_table(seg: hd.seg.Segmentation) -> dict[int, str]:
    """{segment number: label} of a SEG."""
    return {int(item.SegmentNumber): str(item.get("SegmentLabel", "")) for item in seg.SegmentSequence}


def _describe_segments(table: Mapping[int, str]) -> str:
    return ", ".join(f"{n} '{label}'" for n, label in sorted(table.items()))


def resolve_segments(path: Path, table: Mapping[int, str], select: Any) -> list[int]:
    """Segment numbers chosen by number or label (case-insensitive)."""
    tokens = select_tokens(select, table.values())
    if tokens is None:
        return sorted(table)
    if not tokens:
        raise MaskError(path, "empty segment selection")
    chosen: list[int] = []
    by_label: dict[str, list[int]] = {}
    for number, label in table.items():
        by_label.setdefault(label.strip().lower(), []).append(number)
    for token in tokens:
        if token.lower() in by_label:
            chosen.extend(by_label[token.lower()])
        elif token.isdigit() and int(token) in table:
            chosen.append(int(token))
        else:
            raise MaskError(path, f"no segment '{token}' (segments: {_describe_segments(table)})")
    return sorted(dict.fromkeys(chosen))


def _seg_spacing(seg: Dataset) -> tuple[float, float] | None:
    try:
        measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        row, col = (float(v) for v in measures.PixelSpacing)
        return col, row
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None


def read_dicom_mask(path: str | Path, like: SourceImage, select: Any = None, *, soft: bool = False) -> np.ndarray:
    """The union of the chosen segments of a DICOM SEG, on ``like``'s pixel grid.

    Args:
        path: the SEG file.
        like: the image being edited, as :func:`read_dicom_image` returns it;
            the SEG must reference its SOPInstanceUID.
        select: None (all segments), a segment number, a label, a
            comma-separated string of them, or a sequence of them.
        soft: for a FRACTIONAL SEG, return the fractions (soft masks)
            instead of the binary mask thresholded at
            :data:`FRACTIONAL_THRESHOLD` of the maximum fractional value.

    Returns:
        uint8 0/1 (BINARY SEG, or FRACTIONAL thresholded); float32 fractions
        in [0, 1] for a FRACTIONAL SEG with ``soft``.  A FRACTIONAL SEG adds
        a note to ``like.metadata["notes"]`` saying which was used.
    """
    path = Path(path)
    seg = _read_seg(path)
    source = like.metadata.get("dataset") if like.format == "dicom" else None
    if source is None:
        raise MaskError(
            path,
            "a DICOM SEG mask needs a DICOM image: it is tied to the instance it references, but the "
            f"image {like.path} is {like.format}",
        )
    sop_uid = str(source.SOPInstanceUID)
    referenced = sorted({str(uids[2]) for uids in seg.get_source_image_uids()})
    if sop_uid not in referenced:
        shown = ", ".join(referenced[:3]) + (" ..." if len(referenced) > 3 else "") if referenced else "no image"
        raise MaskError(
            path,
            f"SEG references {shown}, not the image being edited ({sop_uid}); "
            "a SEG of another image cannot be used as its mask",
        )
    rows, cols = int(seg.Rows), int(seg.Columns)
    if (rows, cols) != like.shape:
        raise MaskError(
            path,
            f"SEG size {cols}x{rows} (columns x rows) does not match the image's {like.shape[1]}x{like.shape[0]}",
        )
    spacing = _seg_spacing(seg)
    if spacing is not None and not _spacing_matches(spacing, like):
        raise MaskError(
            path,
            f"SEG pixel spacing {spacing[0]:g} x {spacing[1]:g} mm differs from the image's "
            f"{like.geometry.spacing[0]:g} x {like.geometry.spacing[1]:g} mm",
        )
    table = segment_table(seg)
    numbers = resolve_segments(path, table, select)
    try:
        pixels = seg.get_pixels_by_source_instance([sop_uid], segment_numbers=numbers, ignore_spatial_locations=True)
    except Exception as exc:  # noqa: BLE001
        raise MaskError(path, f"cannot read segments {numbers} for image {sop_uid} ({str(exc).strip()[:200]})") from exc
    stack = np.asarray(pixels)[0]  # (rows, cols, segments)
    if str(seg.SegmentationType).upper() == "FRACTIONAL":
        fractions = stack.max(axis=-1).astype(np.float32)
        kind = str(seg.get("SegmentationFractionalType", "") or "fractional").lower()
        maximum = int(seg.get("MaximumFractionalValue", 255) or 255)
        if soft:
            _note(like, f"{path.name}: FRACTIONAL ({kind}) segmentation used as a soft mask (its fractions, "
                  f"stored values / {maximum})")
            return fractions
        # highdicom gives stored value / maximum; compare stored values, free of float rounding.
        mask = (np.rint(fractions * maximum) >= FRACTIONAL_THRESHOLD * maximum).astype(np.uint8)
        _note(
            like,
            f"{path.name}: FRACTIONAL ({kind}) segmentation used as a binary mask: inside where the fraction is at "
            f"least {FRACTIONAL_THRESHOLD:g} of the maximum fractional value {maximum} ({int(mask.sum())} pixels; "
            f"{int(np.count_nonzero(fractions))} are non-zero); soft masks use the fractions",
        )
        return mask
    return np.any(stack > 0, axis=-1).astype(np.uint8)


def _note(image: SourceImage, note: str) -> None:
    notes = image.metadata.setdefault("notes", [])
    if note not in notes:
        notes.append(note)


def _spacing_matches(spacing: tuple[float, float], like: SourceImage, tol: float = 1e-4) -> bool:
    candidates = [tuple(like.geometry.spacing[:2])] + [tuple(s) for s in like.metadata.get("alternative_spacings", [])]
    return any(np.allclose(spacing, c, atol=tol, rtol=0) for c in candidates)


# -- writing --------------------------------------------------------------------------


def _codes_for(name: str) -> tuple[Any, Any]:
    return SEGMENT_CODES.get(name.strip().lower().replace(" ", "_"), REGION_CODES)


def build_segmentation(
    image: Dataset,
    masks: Mapping[str, np.ndarray],
    *,
    series_uid: str,
    sop_uid: str,
    series_number: int,
    series_description: str,
    algorithm: str = "MANUAL",
    algorithm_name: str | None = None,
    content_label: str = "MASKS",
    content_description: str | None = None,
    fractional: bool = False,
    dimension_organization_uid: str | None = None,
    contribution_datetime: str | None = None,
) -> hd.seg.Segmentation:
    """A SEG of named masks on ``image``'s grid that references ``image``.

    ``masks`` maps segment labels to 2D arrays (non-zero = inside, or
    fractions in [0, 1] with ``fractional``); empty masks are skipped, and
    segment numbers follow the order of the remaining ones.
    ``dimension_organization_uid`` replaces the UID highdicom draws from its
    own root (every new UID then comes from the caller's root), and
    ``contribution_datetime`` the time stamp highdicom puts in its
    Contributing Equipment item (for reproducible files).
    """
    names = [n for n, m in masks.items() if np.any(np.asarray(m) > 0)]
    if not names:
        raise ValueError("no non-empty mask to store in a SEG")
    # highdicom copies the source's SpecificCharacterSet and checks it against a list without
    # the empty first value of the ISO 2022 forms ('\\ISO 2022 IR 87', PS3.3 C.12.1.1.2): it
    # gets none, and the SEG the set that encodes its own texts too.  LO's 64 count bytes in it.
    charset = output_character_set(
        image, [*names, series_description, content_label, content_description or "", algorithm_name or ""]
    )
    size = encoded_size(charset)
    descriptions = []
    algorithm_id = None
    if algorithm != "MANUAL":
        algorithm_id = hd.AlgorithmIdentificationSequence(
            name=algorithm_name or MODEL_NAME,
            version=__version__,
            family=codes.cid7162.ArtificialIntelligence,
        )
    for number, name in enumerate(names, start=1):
        category, prop = _codes_for(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=fit_text(name, 64, size),
                segmented_property_category=category,
                segmented_property_type=prop,
                algorithm_type=algorithm,
                algorithm_identification=algorithm_id,
            )
        )
    if fractional:
        stack = np.stack([np.clip(np.asarray(masks[n], dtype=np.float32), 0, 1) for n in names], axis=-1)
    else:
        stack = np.stack([np.asarray(masks[n]) > 0 for n in names], axis=-1)
    # highdicom treats every multi-frame SOP class as an enhanced image with
    # functional groups, and any image with a frame of reference as a slice
    # with a thickness.  Projection images (CR, DX, SC) are neither: highdicom
    # gets a single-frame view without patient coordinates, and the
    # references are put right afterwards.
    one_frame = str(image.SOPClassUID) in MULTIFRAME_SC_SOP_CLASSES
    dropped = {"NumberOfFrames", *_PATIENT_COORDINATES} & {e.keyword for e in image}
    source = image
    if one_frame or dropped:
        # A new data set: assigning to a shallow copy would change the image's elements.
        source = Dataset()
        for element in image:
            if element.keyword not in dropped and element.keyword != "SOPClassUID":
                source.add(element)
        source.SOPClassUID = SECONDARY_CAPTURE if one_frame else image.SOPClassUID
    seg = hd.seg.Segmentation(
        source_images=[source],
        specific_character_set=None,
        pixel_array=stack[None],
        segmentation_type="FRACTIONAL" if fractional else "BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        content_label=content_label,
        content_description=fit_text(content_description, 64, size) if content_description else None,
        series_description=fit_text(series_description, 64, size),
        omit_empty_frames=False,
    )
    if one_frame:
        for series in seg.get("ReferencedSeriesSequence", []):
            for ref in series.ReferencedInstanceSequence:
                ref.ReferencedSOPClassUID = image.SOPClassUID
        for group in seg.get("PerFrameFunctionalGroupsSequence", []):
            for derivation in group.get("DerivationImageSequence", []):
                for ref in derivation.get("SourceImageSequence", []):
                    # Image references into a multi-frame instance name the frame.
                    ref.ReferencedSOPClassUID = image.SOPClassUID
                    ref.ReferencedFrameNumber = 1
    if dimension_organization_uid is not None:
        for keyword in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
            for item in seg.get(keyword, []):
                if "DimensionOrganizationUID" in item:
                    item.DimensionOrganizationUID = dimension_organization_uid
    if contribution_datetime is not None:
        for item in seg.get("ContributingEquipmentSequence", []):
            if "ContributionDateTime" in item:
                item.ContributionDateTime = contribution_datetime
    if charset:
        seg.SpecificCharacterSet = charset
    # The General Image module wants PatientOrientation (Type 2C) when there is
    # no patient coordinate system; carry the image's (possibly empty) value.
    if "ImageOrientationPatient" not in seg:
        seg.PatientOrientation = image.get("PatientOrientation", "")
    return seg


__all__ = [
    "REGION_CODES",
    "SEGMENT_CODES",
    "build_segmentation",
    "read_dicom_mask",
    "resolve_segments",
    "segment_table",
    "select_tokens",
]
