"""Reading and writing PNG, NIfTI and NRRD images and masks with SimpleITK.

DICOM files and folders are routed to :mod:`radedit_core.dicom`; everything
else goes through SimpleITK, which keeps spacing, origin and direction.  A
one-slice 3D volume (as Slicer writes a chest X-ray) is read as 2D and written
back as a one-slice volume with the same geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, MaskError, OutputError
from ..fileio import atomic_path, full_suffix
from .image import Geometry, SourceImage, dtype_value_range

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


def image_format(path: Path) -> str:
    suffix = full_suffix(path)
    if suffix in SITK_FORMATS:
        return SITK_FORMATS[suffix]
    if path.is_dir() or suffix in DICOM_SUFFIXES or _has_dicom_preamble(path):
        return "dicom"
    raise InputError(
        path,
        f"unsupported file type '{suffix}'; expected PNG, NIfTI (.nii/.nii.gz), NRRD or DICOM",
    )


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_sitk(path: str | Path) -> sitk.Image:
    """Read with SimpleITK, turning its exceptions into an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder; expected an image file")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "ERROR" in line or "exception" in line.lower()), "")
        raise InputError(path, f"cannot be read as an image ({detail.strip() or 'unreadable or corrupt'})") from exc


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
    geometry = Geometry(
        spacing=tuple(image.GetSpacing()),
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        dimension=dim,
    )
    return array, geometry


def read_image(path: str | Path) -> SourceImage:
    """Read one 2D grayscale image from PNG, NIfTI, NRRD or DICOM."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    fmt = image_format(path)
    if fmt == "dicom":
        from ..dicom import read_dicom_image  # noqa: PLC0415 - optional heavy import

        return read_dicom_image(path)
    array, geometry = sitk_to_array(read_sitk(path), path)
    if fmt == "nifti":
        _check_nifti_finite(path)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return SourceImage.from_array(array, geometry=geometry, path=path, format=fmt)


def _check_nifti_finite(path: Path) -> None:
    """ITK's NIfTI reader turns NaN into 0; nibabel reads the stored values."""
    import nibabel as nib  # noqa: PLC0415

    image = nib.load(str(path))
    if np.issubdtype(image.get_data_dtype(), np.floating) and not np.all(np.isfinite(np.asarray(image.dataobj))):
        raise InputError(path, "image contains NaN or infinite values")


def array_to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    if geometry.dimension == 3:
        image = sitk.GetImageFromArray(array[None])
    else:
        image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def write_image(
    path: str | Path,
    array: np.ndarray,
    geometry: Geometry,
    overwrite: bool = False,
) -> Path:
    """Write a 2D array atomically with the given geometry; format from the suffix."""
    path = Path(path)
    suffix = full_suffix(path)
    if suffix not in SITK_FORMATS:
        raise OutputError(
            f"{path}: cannot write '{suffix}' files; use .png, .nii, .nii.gz or .nrrd "
            "(DICOM output is a folder: see radedit edit --help)"
        )
    if suffix == ".png":
        if array.dtype not in (np.uint8, np.uint16):
            raise OutputError(f"{path}: PNG stores 8- or 16-bit unsigned pixels, not {array.dtype}")
        geometry = Geometry(dimension=2)
    image = array_to_sitk(array, geometry)
    with atomic_path(path, overwrite=overwrite) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=suffix != ".png")
        except RuntimeError as exc:
            raise OutputError(f"{path}: writing failed ({str(exc).strip().splitlines()[-1]})") from exc
    return path


def write_like(path: str | Path, array: np.ndarray, like: SourceImage, overwrite: bool = False) -> Path:
    """Write ``array`` (on ``like``'s grid and in its dtype) next to the source's format."""
    if array.shape != like.shape:
        raise ValueError(f"array {array.shape} is not on the source grid {like.shape}")
    return write_image(path, array, like.geometry, overwrite=overwrite)


def read_mask_array(path: str | Path, like: SourceImage) -> np.ndarray:
    """Read a mask file and check it lies on ``like``'s grid (no silent resampling)."""
    path = Path(path)
    fmt = image_format(path)
    if fmt == "dicom":
        from ..dicom import read_dicom_mask  # noqa: PLC0415

        return read_dicom_mask(path, like)
    array, geometry = sitk_to_array(read_sitk(path), path)
    if array.shape != like.shape:
        raise MaskError(
            path,
            f"mask size {array.shape[1]}x{array.shape[0]} (columns x rows) does not match "
            f"the image's {like.shape[1]}x{like.shape[0]}",
        )
    # PNG carries no geometry; NIfTI/NRRD masks must sit on the image's grid.
    if fmt != "png" and like.format != "png" and not _same_grid(geometry, like.geometry):
        raise MaskError(
            path,
            "mask geometry (spacing/origin/direction) differs from the image's: "
            f"mask {geometry.to_dict()} vs image {like.geometry.to_dict()}; resample it on the image grid first",
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise MaskError(path, f"unsupported mask pixel type {array.dtype}")
    return array


def _same_grid(a: Geometry, b: Geometry) -> bool:
    if a.dimension == b.dimension:
        return a.matches(b)
    # A 2D image and a one-slice volume describe the same grid when their
    # in-plane parts agree.
    return a.in_plane().matches(b.in_plane())


__all__ = [
    "image_format",
    "read_image",
    "read_mask_array",
    "write_image",
    "write_like",
    "dtype_value_range",
]
