"""Reading and writing image files: PNG, JPEG, NIfTI and NRRD (SimpleITK, Pillow, pypng).

DICOM files and folders are routed to :mod:`radedit_core.dicom`.  NIfTI, NRRD
and PNG go through SimpleITK, which keeps spacing, origin and direction.  A
one-slice 3D volume (as Slicer writes a chest X-ray) is read as 2D and written
back as a one-slice volume with the same geometry.

Everyday image files (docs/editing.md, "Inputs"):

* **PNG** with an alpha channel (grey + alpha, RGBA; 8 or 16 bits: pypng
  reads every PNG layout exactly, SimpleITK reads no grey + alpha PNG) is
  grayscale when the alpha is fully opaque (every value 2^bits - 1); any
  transparency is an error that says so.  RGB(A) PNGs must have identical
  channels (PNG is lossless).
* **JPEG** (``.jpg``, ``.jpeg``; 8-bit, Pillow/libjpeg): grayscale files are
  read as stored.  A colour-coded file whose decoded R, G, B agree within
  :data:`JPEG_GRAY_TOLERANCE` at every pixel is grayscale and its luma is
  taken: Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as JFIF defines
  YCbCr), i.e. the file's own Y plane, which libjpeg decodes without the
  colour conversion; a note records it.  More colour than that is an error.
  Masks must not be JPEG (its compression noise would put every edge pixel
  inside).  Written only with an explicit quality: JPEG is lossy.

A file a reader cannot read (empty, truncated, corrupt, another kind of file
under the extension) is an :class:`InputError` (:class:`MaskError` for a
mask) that says so in one line: an empty file is named as such; a PNG's chunk
structure is checked (pypng) before the C reader sees it; a NIfTI file's data
is read whole by nibabel (ITK fills a truncated file's missing voxels with 0);
what SimpleITK's readers print on the process's standard error (libpng,
MetaIO) is kept out of it and becomes part of the message instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..dicom import read_dicom_image, read_dicom_mask
from ..dicom.reading import add_note, reader_convention_geometries
from ..errors import InputError, MaskError, OutputError
from ..fileio import atomic_path, full_suffix
from .image import Geometry, SourceImage, dtype_value_range
from .mask_ref import MaskRef

#: Extensions handled by SimpleITK, mapped to the ``format`` name we report.
SITK_FORMATS = {
    ".png": "png",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".seg.nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
}
DICOM_SUFFIXES = (".dcm", ".dicom", "")
#: Extensions read and written with Pillow.
JPEG_SUFFIXES = (".jpg", ".jpeg")
#: Largest difference between the R, G and B values of one pixel of a colour-coded JPEG that is still
#: grayscale: encoding a grey image whose channels were 1 apart at quality 90 to 100 leaves them up to
#: 7 apart; colour (a coloured annotation, a photograph) differs by tens to hundreds.
JPEG_GRAY_TOLERANCE = 8
#: SimpleITK readers that print to standard error themselves (PNG is checked by pypng first, so
#: libpng has nothing left to print).
PRINTING_READERS = ("nrrd", "metaimage")
#: What each format is called in messages.
FORMAT_NAMES = {"png": "PNG", "nifti": "NIfTI", "nrrd": "NRRD", "metaimage": "MetaImage", "jpeg": "JPEG", "dicom": "DICOM"}


def _sitk_geometry(image: sitk.Image) -> Geometry:
    """Spacing, origin and direction of a SimpleITK image, as read (before dropping a slice axis)."""
    return Geometry(
        spacing=tuple(image.GetSpacing()),
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        dimension=image.GetDimension(),
    )


def image_format(path: Path) -> str:
    suffix = full_suffix(path)
    if suffix in JPEG_SUFFIXES:
        return "jpeg"
    if suffix in SITK_FORMATS:
        return SITK_FORMATS[suffix]
    if path.is_dir() or suffix in DICOM_SUFFIXES or _has_dicom_preamble(path):
        return "dicom"
    raise InputError(
        path,
        f"unsupported file type '{suffix}'; expected PNG, JPEG, NIfTI (.nii/.nii.gz), NRRD or DICOM",
    )


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_sitk(path: str | Path, png_checked: bool = False) -> sitk.Image:
    """Read with SimpleITK, turning its exceptions into an :class:`InputError`.

    ``png_checked``: the caller has already walked the PNG's chunks (:func:`check_png`); the
    walk reads the whole file, so it is not done twice.

    Raises:
        InputError: a missing, empty, truncated or corrupt file, in one line (module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder; expected an image file")
    fmt = SITK_FORMATS.get(full_suffix(path))
    check_not_empty(path, fmt)
    if fmt == "png" and not png_checked:
        check_png(path)
    if fmt == "nifti":
        _check_nifti(path)
    # Only the readers that print get file descriptor 2 swapped: the swap is process-wide.
    with _stderr_captured() if fmt in PRINTING_READERS else contextlib.nullcontext(lambda: "") as printed:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            problem = _unreadable(fmt, _reader_detail(str(exc), printed(), path))
            raise InputError(path, problem) from exc
    # Lines a reader prints while it succeeds (warnings) still reach the user.
    text = printed()
    if text:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
    return image


def check_not_empty(path: Path, fmt: str | None, error: type[InputError] = InputError) -> None:
    """An empty file is named as such, whatever its extension promises."""
    if path.is_file() and path.stat().st_size == 0:
        expected = f"; expected a {FORMAT_NAMES[fmt]} image" if fmt in FORMAT_NAMES else ""
        raise error(path, f"is an empty file (0 bytes){expected}")


def _unreadable(fmt: str | None, detail: str) -> str:
    kind = f"{FORMAT_NAMES[fmt]} " if fmt in FORMAT_NAMES else "image "
    return f"not a readable {kind}file (truncated, corrupt or not an image{': ' + detail if detail else ''})"


@contextlib.contextmanager
def _stderr_captured():
    """Catch what C libraries write to file descriptor 2 while the body runs (libpng, MetaIO print there).

    Yields a function that returns the text caught (so far inside the body, all of it after).
    """
    sys.stderr.flush()
    caught: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:

        def text() -> str:
            if caught:
                return caught[0]
            sink.flush()
            sink.seek(0)
            return sink.read().decode("utf-8", "replace")

        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2: nothing to keep apart
            yield lambda: ""
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.append(text())


#: Lines of SimpleITK's exception text and of what its readers print that say nothing the message does
#: not: where in ITK's source it was thrown, a stale errno, "cannot read", the reader's call chain.
_ITK_NOISE = re.compile(
    r"^Exception thrown in SimpleITK|^Reason: |trouble|Error reading|cannot be read|Failed$|Cannot parse file|"
    r"Error parsing file|Error while reading file|^\S+:$",
    re.IGNORECASE,
)


def _reader_detail(message: str, printed: str, path: Path) -> str:
    """The useful part of a SimpleITK reader's exception and of what its C library printed, on one line."""
    lines: list[str] = []
    for line in [*message.splitlines(), *printed.splitlines()]:
        line = re.sub(r"^(ITK|itk|sitk)(::)?\s*ERROR:\s*(\w+\(0x[0-9a-f]+\):\s*)?", "", line.strip())
        line = re.sub(r"^\[nrrd\] |^MetaImage: |^libpng error: ", "", line)
        line = line.replace(f'"{path}"', "the file").replace(str(path), "the file").strip()
        if "Unable to determine ImageIO reader" in line:
            line = "no image reader recognises its content"
        if line and not _ITK_NOISE.search(line) and line not in lines:
            lines.append(line.rstrip(".:"))
    return " ".join("; ".join(lines).split())


def sitk_to_array(image: sitk.Image, path: Path) -> tuple[np.ndarray, Geometry]:
    """2D array and geometry of a 2D image or a one-slice volume."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = sitk.GetArrayFromImage(image)
        channels = array.shape[-1]
        # Grayscale saved as RGB(A) is common for PNG exports: accept it only
        # when the colour channels agree, otherwise refuse to guess.
        colour = array[..., : min(channels, 3)]
        if channels >= 3 and np.array_equal(colour, np.repeat(colour[..., :1], colour.shape[-1], axis=-1)):
            if channels == 4 and np.any(array[..., 3] != array[..., 3].flat[0]):
                raise InputError(path, "image has a non-uniform alpha channel; save it as grayscale")
            array = np.ascontiguousarray(colour[..., 0])
        else:
            raise InputError(
                path,
                f"colour image with {channels} channels; RadEdit edits grayscale chest X-rays",
            )
    else:
        array = sitk.GetArrayViewFromImage(image).copy()
    dim = image.GetDimension()
    if dim == 3:
        if array.shape[0] != 1:
            raise InputError(
                path,
                f"3D volume with {array.shape[0]} slices; RadEdit edits single 2D images",
            )
        array = array[0]
    elif dim != 2:
        raise InputError(path, f"{dim}D image; RadEdit edits single 2D images")
    geometry = _sitk_geometry(image)
    return array, geometry


def read_image(path: str | Path) -> SourceImage:
    """Read one 2D grayscale image from PNG, JPEG, NIfTI, NRRD or DICOM."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    fmt = image_format(path)
    check_not_empty(path, fmt)
    if fmt == "dicom":
        return read_dicom_image(path)
    notes: list[str] = []
    if fmt == "jpeg":
        array, geometry = read_jpeg(path, notes)
    elif fmt == "png" and check_png(path):
        array, geometry = read_png_with_alpha(path, "image")
    else:
        array, geometry = sitk_to_array(read_sitk(path, png_checked=fmt == "png"), path)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    metadata = {"notes": notes} if notes else {}
    return SourceImage.from_array(array, geometry=geometry, path=path, format=fmt, metadata=metadata)


def check_png(path: Path, error: type[InputError] = InputError) -> bool:
    """Check a PNG's structure before a C reader sees it; whether its colour type has an alpha channel.

    pypng walks the chunks (signature, lengths, CRCs, up to the end chunk IEND), so an empty,
    truncated or foreign file is an error in user terms, and libpng never prints its own
    ``libpng error: ...`` line on standard error.

    Raises:
        ``error`` (InputError, or MaskError for a mask): what is wrong with the file, in one line.
    """
    import png  # noqa: PLC0415

    check_not_empty(path, "png", error)
    try:
        with open(path, "rb") as fh:
            chunks = png.Reader(file=fh).chunks()
            for kind, _ in chunks:
                if kind == b"IEND":
                    break
        reader = png.Reader(filename=str(path))
        reader.preamble()
        return bool(reader.alpha)
    except png.FormatError as exc:
        if "signature" in str(exc):
            raise error(path, "not a PNG file (it does not start with the PNG signature)") from exc
        raise error(path, _unreadable("png", _pypng_detail(exc, path))) from exc
    except (png.Error, EOFError, ValueError) as exc:
        raise error(path, _unreadable("png", _pypng_detail(exc, path))) from exc
    except OSError as exc:
        raise error(path, f"cannot be read ({exc.strerror or exc})") from exc


def _pypng_detail(exc: BaseException, path: Path) -> str:
    text = re.sub(r"^(ChunkError|FormatError|ChecksumError|ProtocolError): ", "", str(exc)).strip().rstrip(".")
    size = path.stat().st_size
    if isinstance(exc, EOFError) or text == "No more chunks":
        return f"it ends after {size} bytes, before the PNG's end chunk IEND"
    cut = re.match(r"Chunk b(['\"])(.*)\1 too short for required (\d+) octets", text)
    if cut:
        return f"it ends after {size} bytes, inside a chunk '{cut.group(2)}' of {cut.group(3)} bytes"
    return text


def read_png_with_alpha(path: Path, what: str = "image") -> tuple[np.ndarray, Geometry]:
    """A grey + alpha or RGBA PNG (8 or 16 bits) as a 2D array, when its alpha is fully opaque.

    Raises:
        InputError (MaskError for ``what="mask"``): any transparent pixel, colour, an unreadable file.
    """
    import png  # noqa: PLC0415

    error = MaskError if what == "mask" else InputError
    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        planes, bits = int(info["planes"]), int(info["bitdepth"])
        pixels = np.vstack([np.asarray(row, dtype=np.uint16 if bits > 8 else np.uint8) for row in rows])
    except (png.Error, OSError, ValueError, EOFError) as exc:
        raise error(path, _unreadable("png", _pypng_detail(exc, path))) from exc
    pixels = pixels.reshape(height, width, planes)
    values, alpha = pixels[..., :-1], pixels[..., -1]
    opaque = 2**bits - 1
    if np.any(alpha != opaque):
        count = int(np.count_nonzero(alpha != opaque))
        # a share that rounds to 0.0 % would read as none: say the count then
        share = f"{100 * count / alpha.size:.1f}% of its pixels are"
        if share.startswith("0.0%"):
            share = f"{count} of its {alpha.size} pixels {'is' if count == 1 else 'are'}"
        if not np.any(values):
            raise error(
                path,
                f"{what} is drawn in the PNG's alpha channel (transparency) and its grey values are all 0; "
                f"save the {what} as a grayscale PNG without alpha",
            )
        raise error(
            path,
            f"{what} has an alpha channel that is not fully opaque ({share} "
            f"transparent or partly transparent), so its grey values are not what a viewer shows; save the "
            f"{what} as a grayscale PNG without alpha",
        )
    if values.shape[-1] == 3:
        if not (np.array_equal(values[..., 0], values[..., 1]) and np.array_equal(values[..., 0], values[..., 2])):
            raise error(path, f"colour image with {planes} channels; RadEdit edits grayscale chest X-rays")
    return np.ascontiguousarray(values[..., 0]), Geometry()


def read_jpeg(path: Path, notes: list[str] | None = None) -> tuple[np.ndarray, Geometry]:
    """An 8-bit JPEG as a 2D uint8 array (module docstring: grayscale, or the luma of a grey colour-coded file).

    ``notes`` receives one-line remarks (the luma taken, an ignored EXIF orientation).

    Raises:
        InputError: unreadable file, real colour, CMYK.
    """
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(path) as image:
            image.load()
            mode, size = image.mode, image.size
            orientation = image.getexif().get(0x0112, 1)
            rgb = np.asarray(image) if mode == "RGB" else None
            gray = np.asarray(image) if mode == "L" else None
        if rgb is not None:
            spread = int((rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)).max())
            if spread > JPEG_GRAY_TOLERANCE:
                raise InputError(
                    path,
                    f"colour JPEG (its red, green and blue differ by up to {spread} levels; a grayscale image "
                    f"stored as colour differs by at most {JPEG_GRAY_TOLERANCE}); RadEdit edits grayscale chest "
                    "X-rays",
                )
            with Image.open(path) as image:
                # libjpeg's grayscale output of a YCbCr file is its Y plane, without the colour conversion
                image.draft("L", size)
                image.load()
                if image.mode != "L" or image.size != size:
                    raise InputError(path, "the JPEG's luma could not be decoded at full size")
                gray = np.asarray(image)
            if notes is not None:
                notes.append(
                    f"colour-coded JPEG whose red, green and blue agree within {spread} of 255 levels: read as "
                    "grayscale, its luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the file's Y plane)"
                )
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow's "cannot identify image file" repeats the path: say what it means instead
        detail = "not a JPEG file" if type(exc).__name__ == "UnidentifiedImageError" else str(exc)
        raise InputError(path, f"cannot be read as a JPEG image ({detail})") from exc
    if gray is None:
        raise InputError(path, f"{mode} JPEG; RadEdit reads 8-bit grayscale JPEG (or colour-coded grey)")
    if orientation not in (1, None) and notes is not None:
        notes.append(
            f"the EXIF Orientation tag ({orientation}) is ignored: the pixels are read as stored, so masks must "
            "be drawn on the stored grid"
        )
    return np.ascontiguousarray(gray), Geometry()


def _check_nifti(path: Path) -> np.ndarray:
    """Read a NIfTI file's data with nibabel before ITK does: ITK's reader turns NaN into 0 (a NaN mask
    would be silently empty) and fills the missing voxels of a truncated file with 0.

    Called by :func:`read_sitk` for every NIfTI image and mask, and on every NIfTI file written
    (:func:`_check_nifti_written`).  Returns the stored values as nibabel reads them.

    Raises:
        InputError: not a NIfTI file, truncated, or NaN or infinite values.
    """
    import nibabel as nib  # noqa: PLC0415
    from nibabel.filebasedimages import ImageFileError  # noqa: PLC0415

    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj)
    except ImageFileError as exc:
        said = str(exc).replace(str(path), "the file")
        if "not a gzip file" in said:
            detail = "a .nii.gz file must be gzip-compressed"
        elif "Empty file" in said:
            detail = "the file is empty"
        else:
            detail = "no NIfTI header"
        raise InputError(path, _unreadable("nifti", detail)) from exc
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        detail = " ".join(str(exc).replace(str(path), "the file").split()) or type(exc).__name__
        raise InputError(path, _unreadable("nifti", detail)) from exc
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise InputError(path, "contains NaN or infinite values; images and masks hold finite numbers")
    return data


def array_to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    if geometry.dimension == 3:
        image = sitk.GetImageFromArray(array[None])
    else:
        image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def write_image_file(path: str | Path, array: np.ndarray, geometry: Geometry, jpeg_quality: int | None = None) -> Path:
    """Write a 2D array with the given geometry, in place (not atomic); the format follows the suffix.

    Use :func:`write_image` for a final output; this is the writer inside an
    atomic write (:class:`radedit_core.fileio.OutputGroup`).  JPEG (8-bit
    grayscale, no geometry) needs ``jpeg_quality`` (1-100): it is lossy.
    """
    path = Path(path)
    suffix = full_suffix(path)
    if suffix in JPEG_SUFFIXES:
        return _write_jpeg(path, array, jpeg_quality)
    if suffix not in SITK_FORMATS:
        raise OutputError(
            f"{path}: cannot write '{suffix}' files; use .png, .jpg, .nii, .nii.gz or .nrrd "
            "(DICOM output is a folder: see radedit edit --help)"
        )
    if suffix == ".png":
        if array.dtype not in (np.uint8, np.uint16):
            raise OutputError(f"{path}: PNG stores 8- or 16-bit unsigned pixels, not {array.dtype}")
        geometry = Geometry(dimension=2)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise OutputError(f"{path}: the image to write holds NaN or infinite values; nothing was written")
    image = array_to_sitk(array, geometry)
    try:
        sitk.WriteImage(image, str(path), useCompression=suffix != ".png")
    except RuntimeError as exc:
        raise OutputError(f"{path}: writing failed ({str(exc).strip().splitlines()[-1]})") from exc
    if SITK_FORMATS[suffix] == "nifti":
        _check_nifti_written(path, array)
    return path


def _check_nifti_written(path: Path, array: np.ndarray) -> None:
    """ITK's NIfTI writer reports a short write (a full disk) only on standard error
    ("** ERROR: NWAD: wrote only N of M bytes") and returns: read the file back whole
    (:func:`_check_nifti`, the reader's own check).

    Raises:
        OSError: ENOSPC, where the file is incomplete and its disk has no space left (the atomic
            writer turns it into the one-line full-disk error naming the output).
        OutputError: the file is incomplete for another reason.
    """
    import errno  # noqa: PLC0415

    try:
        complete = _check_nifti(path).size == array.size
        problem = "it holds fewer values than were written"
    except InputError as exc:
        complete, problem = False, str(exc)
    if complete:
        return
    stat = os.statvfs(path.parent)
    if stat.f_bavail * stat.f_frsize < 64 * 1024:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    raise OutputError(f"{path}: writing failed (the file written is incomplete: {problem})")


def _write_jpeg(path: Path, array: np.ndarray, quality: int | None) -> Path:
    from PIL import Image  # noqa: PLC0415

    if quality is None:
        raise OutputError(f"{path}: JPEG output is lossy and needs an explicit quality (1-100)")
    if array.dtype != np.uint8:
        raise OutputError(f"{path}: JPEG stores 8-bit pixels, not {array.dtype}; write PNG, NIfTI or NRRD")
    try:
        Image.fromarray(np.ascontiguousarray(array), mode="L").save(path, format="JPEG", quality=int(quality))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: writing failed ({exc})") from exc
    return path


def write_image(
    path: str | Path,
    array: np.ndarray,
    geometry: Geometry,
    overwrite: bool = False,
) -> Path:
    """Write a 2D array atomically with the given geometry; format from the suffix."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        write_image_file(tmp, array, geometry)
    return path


def write_like(path: str | Path, array: np.ndarray, like: SourceImage, overwrite: bool = False) -> Path:
    """Write ``array`` (on ``like``'s grid and in its dtype) next to the source's format."""
    if array.shape != like.shape:
        raise ValueError(f"array {array.shape} is not on the source grid {like.shape}")
    return write_image(path, array, like.geometry, overwrite=overwrite)


def read_mask_array(path: str | Path | MaskRef, like: SourceImage, select: Any = None, soft: bool = False) -> np.ndarray:
    """Read a mask file and check it lies on ``like``'s grid (no silent resampling).

    ``select`` restricts the mask to chosen labels (a value, a comma-separated
    string or a sequence); None keeps every non-zero pixel:

    * label maps (NIfTI, NRRD, PNG, ...): integer label values;
    * Slicer ``.seg.nrrd``: segment names (or IDs), from the ``SegmentN_Name``,
      ``SegmentN_LabelValue`` and ``SegmentN_Layer`` header fields, also for
      overlapping segments stored in several layers (a 4D NRRD);
    * DICOM SEG: segment numbers or labels (:func:`radedit_core.dicom.read_dicom_mask`).

    The result is 0/1 (uint8) when labels were chosen, else the stored values.
    """
    if isinstance(path, MaskRef):
        if path.path is None:
            raise MaskError(str(path), "a study:SERIES_UID mask is read from the PACS study (radedit pacs-edit)")
        select = path.select if select is None else select
        path = path.path
    path = Path(path)
    fmt = image_format(path)
    check_not_empty(path, fmt, MaskError)
    if fmt == "dicom":
        return read_dicom_mask(path, like, select=select, soft=soft)
    if fmt == "jpeg":
        raise MaskError(
            path,
            "a mask must not be JPEG: its lossy compression puts noise around every edge, where each non-zero "
            "value would count as inside; save the mask as PNG",
        )
    if fmt == "png" and path.is_file() and check_png(path, MaskError):
        image, segments = None, []
        array, geometry = read_png_with_alpha(path, "mask")
    else:
        image = read_sitk(path, png_checked=fmt == "png" and path.is_file())
        segments = _slicer_segments(image) if full_suffix(path) == ".seg.nrrd" else []
    if segments:
        array, geometry = _slicer_mask(image, segments, select, path)
    else:
        if image is not None:
            array, geometry = sitk_to_array(image, path)
        if select is not None:
            array = _select_label_values(array, select, path)
    if array.shape != like.shape:
        hint = ""
        if segments and image.HasMetaDataKey("Segmentation_ReferenceImageExtentOffset"):
            offset = image.GetMetaData("Segmentation_ReferenceImageExtentOffset").split()
            if any(v != "0" for v in offset):
                hint = "; Slicer saved the segmentation cropped to its extent (offset " + " ".join(offset) + ")"
        raise MaskError(
            path,
            f"mask size {array.shape[1]}x{array.shape[0]} (columns x rows) does not match "
            f"the image's {like.shape[1]}x{like.shape[0]}{hint}",
        )
    # PNG carries no geometry; NIfTI/NRRD masks must sit on the image's grid.
    if fmt != "png" and like.format != "png" and not _same_grid(geometry, like):
        raise MaskError(
            path,
            "mask geometry (spacing/origin/direction) differs from the image's: "
            f"mask {geometry.to_dict()} vs image {like.geometry.to_dict()}; resample it on the image grid first",
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise MaskError(path, f"unsupported mask pixel type {array.dtype}")
    return array


def _tokens(select: Any) -> list[str]:
    if isinstance(select, (str, int, np.integer)):
        items = [select]
    else:
        items = list(select)
    out: list[str] = []
    for item in items:
        out.extend(t.strip() for t in str(item).split(",") if t.strip())
    return out


def _select_label_values(array: np.ndarray, select: Any, path: Path) -> np.ndarray:
    """Pixels whose value is one of the chosen integer labels, as 0/1."""
    values = []
    for token in _tokens(select):
        try:
            values.append(int(token))
        except ValueError:
            raise MaskError(
                path, f"label '{token}' is not an integer label value; a label map is selected by value"
            ) from None
    if not values:
        raise MaskError(path, "empty label selection")
    present = np.unique(array)
    missing = [v for v in values if v not in present]
    if missing:
        shown = ", ".join(str(v) for v in present[:20].tolist()) + (" ..." if present.size > 20 else "")
        listed = ", ".join(map(str, missing))
        raise MaskError(path, f"label value(s) {listed} do not occur in the mask (values: {shown})")
    return np.isin(array, values).astype(np.uint8)


def _slicer_segments(image: sitk.Image) -> list[dict[str, str]]:
    """``SegmentN_*`` header fields of a Slicer segmentation, in N order."""

    def field(index: int, key: str) -> str:
        name = f"Segment{index}_{key}"
        return image.GetMetaData(name).strip() if image.HasMetaDataKey(name) else ""

    segments = []
    index = 0
    while field(index, "ID") or field(index, "Name"):
        segments.append(
            {
                "id": field(index, "ID"),
                "name": field(index, "Name"),
                "label": field(index, "LabelValue") or "1",
                "layer": field(index, "Layer") or "0",
            }
        )
        index += 1
    return segments


def _slicer_mask(
    image: sitk.Image, segments: list[dict[str, str]], select: Any, path: Path
) -> tuple[np.ndarray, Geometry]:
    """Union of the chosen segments of a (possibly multi-layer) Slicer ``.seg.nrrd``."""
    data = sitk.GetArrayFromImage(image)
    layers = image.GetNumberOfComponentsPerPixel()
    # Several layers (overlapping segments) come back as vector pixels: layer last.
    stack = np.moveaxis(data, -1, 0) if layers > 1 else data[None]
    dim = image.GetDimension()
    if dim == 3:
        if stack.shape[1] != 1:
            raise MaskError(path, f"segmentation has {stack.shape[1]} slices; a chest X-ray mask has one")
        stack = stack[:, 0]
    elif dim != 2:
        raise MaskError(path, f"{dim}D segmentation; expected a 2D image or a one-slice volume")
    geometry = _sitk_geometry(image)
    if select is None:
        # One layer: the label map as stored (as before selections existed);
        # several layers: every labelled pixel of any layer.
        return (stack[0] if layers == 1 else np.any(stack != 0, axis=0).astype(np.uint8)), geometry
    tokens = _tokens(select) if not (isinstance(select, str) and _find_segment(segments, select)) else [select]
    if not tokens:
        raise MaskError(path, "empty segment selection")
    mask = np.zeros(stack.shape[1:], dtype=bool)
    for token in tokens:
        chosen = _find_segment(segments, token)
        if not chosen:
            names = ", ".join(f"'{s['name'] or s['id']}'" for s in segments)
            raise MaskError(path, f"no segment named '{token}' (segments: {names})")
        for segment in chosen:
            layer, label = int(segment["layer"]), int(segment["label"])
            if layer >= stack.shape[0]:
                raise MaskError(path, f"segment '{token}' is in layer {layer} but the file has {stack.shape[0]}")
            mask |= stack[layer] == label
    return mask.astype(np.uint8), geometry


def _find_segment(segments: list[dict[str, str]], token: str) -> list[dict[str, str]]:
    key = token.strip().lower()
    by_name = [s for s in segments if s["name"].strip().lower() == key]
    return by_name or [s for s in segments if s["id"].strip().lower() == key]


def _same_grid(a: Geometry, like: SourceImage) -> bool:
    """Same grid as ``like``, allowing the spacing conventions of other DICOM readers.

    A mask of a DICOM image may carry another reader's idea of the physical
    grid while lying on the same pixels: ITK (and so Slicer and SimpleITK)
    takes ImagerPixelSpacing for CR/DX even when PixelSpacing is present, and
    reports 1 mm pixels for a CR with PixelSpacing only.  Such a match is
    accepted with a note in ``like.metadata["notes"]``.
    """
    if _same_placement(a, like.geometry):
        return True
    if like.format != "dicom":
        return False
    for x, y in like.metadata.get("alternative_spacings", []):
        spacing = (x, y) + tuple(like.geometry.spacing[2:])
        if _same_placement(a, replace(like.geometry, spacing=spacing)):
            add_note(
                like,
                f"a mask with the image's other declared pixel spacing ({x:g} x {y:g} mm, as ITK reads it) was "
                "accepted: same pixel grid",
            )
            return True
    for geometry, note in reader_convention_geometries(like):
        if _same_placement(a, geometry):
            add_note(like, note)
            return True
    return False


def _same_placement(a: Geometry, b: Geometry) -> bool:
    if a.dimension == b.dimension:
        return a.matches(b)
    # A 2D image and a one-slice volume describe the same grid when their
    # in-plane parts agree.
    return a.in_plane().matches(b.in_plane())


__all__ = [
    "MaskRef",
    "image_format",
    "JPEG_GRAY_TOLERANCE",
    "read_image",
    "read_jpeg",
    "read_mask_array",
    "read_png_with_alpha",
    "write_image",
    "write_like",
    "dtype_value_range",
]
