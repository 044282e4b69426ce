"""Where an edit goes: the output formats, their suffixes, the sidecar, and the writers.

One vocabulary for every front end (``--output-format``, the bundle's
``output_format``, datalists):

======== ============================ =================================================
format   suffixes                     written by
======== ============================ =================================================
dicom    (a folder, no suffix)        :func:`radedit_core.dicom.write_derived_series`
png      .png                         SimpleITK (8/16-bit grayscale, no geometry)
jpeg     .jpg, .jpeg                  Pillow (8-bit grayscale, lossy: needs ``jpeg_quality``)
nifti    .nii.gz, .nii                SimpleITK (the source's spacing, origin, direction)
nrrd     .nrrd                        SimpleITK (the source's geometry)
======== ============================ =================================================

``auto`` picks the format from the output's suffix (CLI: no suffix = a DICOM
series folder) or, for batch outputs that have no name yet, from the source
(DICOM -> dicom; PNG, NIfTI, NRRD -> the same; JPEG -> png, lossless; anything
else -> nifti).  JPEG is written only when asked for, with an explicit quality
(``--jpeg-quality``), and the sidecar and console say that it is lossy.

Every output gets a provenance sidecar named after it: ``edited.png`` ->
``edited.png.json``, a DICOM series folder ``edited/`` -> ``edited.json``, so
that outputs of different formats never share one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fileio import OutputGroup, full_suffix
from .settings import Namer, cli_name, dicom_output_values

#: format -> its file suffixes (the first is the one used when a name is made).
OUTPUT_FORMATS: dict[str, tuple[str, ...]] = {
    "dicom": (),
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg"),
    "nifti": (".nii.gz", ".nii"),
    "nrrd": (".nrrd",),
}
#: Other spellings users type for the formats.
_ALIASES = {"nii": "nifti", "nii.gz": "nifti", ".nii": "nifti", ".nii.gz": "nifti", "dcm": "dicom", ".png": "png",
            ".nrrd": "nrrd", "jpg": "jpeg", ".jpg": "jpeg", ".jpeg": "jpeg"}  # fmt: skip
#: Options that only a DICOM series output takes.
DICOM_ONLY_OPTIONS = ("uid_root", "series_description", "series_number", "write_seg")


def format_name(requested: Any, name: str = "output_format") -> str:
    """``auto`` or one of :data:`OUTPUT_FORMATS` (aliases like ``nii.gz`` accepted)."""
    text = "auto" if requested is None else str(requested).strip().lower()
    text = _ALIASES.get(text, text)
    if text != "auto" and text not in OUTPUT_FORMATS:
        raise ConfigError(f"{name}: must be auto, {', '.join(OUTPUT_FORMATS)}, got {requested!r}")
    return text


def format_of_suffix(path: Path) -> str | None:
    suffix = full_suffix(path)
    if suffix == ".seg.nrrd":
        suffix = ".nrrd"
    return next((fmt for fmt, suffixes in OUTPUT_FORMATS.items() if suffix in suffixes), None)


def output_format_for_path(output: Path, requested: Any = "auto", name: str = "--output") -> str:
    """The format of a named output (``radedit edit --output``); the suffix must agree with a requested one."""
    fmt = format_name(requested, f"{name}-format" if name.startswith("--") else "output_format")
    suffix = full_suffix(output)
    by_suffix = format_of_suffix(output)
    if fmt != "auto":
        if fmt == "dicom":
            if suffix in (".dcm", ".dicom") or by_suffix is not None:
                raise ConfigError(f"{name} {output}: DICOM output is a series folder; give a path without suffix")
            return fmt
        if by_suffix != fmt:
            endings = " or ".join(OUTPUT_FORMATS[fmt])
            raise ConfigError(f"{name}-format {fmt} needs an {name} ending in {endings}")
        return fmt
    if by_suffix is not None:
        return by_suffix
    if suffix in (".dcm", ".dicom"):
        raise ConfigError(f"{name} {output}: DICOM output is a series folder; give a path without suffix")
    if suffix == "" or output.is_dir():
        return "dicom"
    raise ConfigError(
        f"{name} {output}: unknown suffix '{suffix}'; use .png, .jpg, .nii, .nii.gz, .nrrd or a folder without "
        "suffix for a DICOM series"
    )


def output_format_for_source(source_format: str, source_suffix: str, requested: Any = "auto") -> tuple[str, str]:
    """(format, suffix) of a batch output named after its item: ``auto`` mirrors the source."""
    fmt = format_name(requested)
    if fmt == "auto":
        if source_format == "dicom":
            return "dicom", ""
        if source_format == "jpeg":
            return "png", ".png"  # lossless: JPEG only when asked for, with a quality
        fmt = source_format if source_format in OUTPUT_FORMATS else "nifti"
    if fmt == "dicom" and source_format != "dicom":
        raise ConfigError(f"output_format dicom needs a DICOM input; the input is {source_format}")
    suffixes = OUTPUT_FORMATS[fmt]
    return fmt, (source_suffix if source_suffix in suffixes else (suffixes[0] if suffixes else ""))


def check_output_settings(fmt: str, source: Any, jpeg_quality: int | None, name: Any = None) -> None:
    """Before the model loads: a JPEG output has a quality and an 8-bit source.

    ``name`` spells options as the front end does (default: the CLI's).

    Raises:
        ConfigError: naming the option.
    """
    if name is None:
        name = cli_name
    if fmt != "jpeg":
        if jpeg_quality is not None:
            raise ConfigError(f"{name('jpeg_quality')} applies to JPEG output only; the output format is {fmt}")
        return
    if jpeg_quality is None:
        raise ConfigError(
            f"{name('output')}: JPEG output is lossy (pixels the edit did not change are altered too): give "
            f"{name('jpeg_quality')} (1-100) to accept that, or write a lossless .png"
        )
    if source.dtype != "uint8":
        raise ConfigError(
            f"{name('output')}: JPEG stores 8-bit pixels and the image holds {source.dtype}; write .png, .nii.gz "
            "or .nrrd"
        )


def output_notes(fmt: str, jpeg_quality: int | None) -> list[str]:
    """Notes an output format adds to the sidecar and the console."""
    if fmt == "jpeg":
        return [
            f"written as JPEG at quality {jpeg_quality}: lossy, so pixels differ from the edit by the compression "
            "error, also where the edit changed nothing"
        ]
    return []


def sidecar_path(output: str | Path) -> Path:
    """The provenance sidecar of an output: ``a.nii.gz`` -> ``a.nii.gz.json``, folder ``series`` -> ``series.json``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def legacy_sidecar_path(output: str | Path) -> Path:
    """Where radedit_core 0.1 put the sidecar (``a.nii.gz`` -> ``a.json``): read when resuming old runs."""
    output = Path(output)
    suffix = full_suffix(output) if output.suffix else ""
    return output.with_name(output.name[: len(output.name) - len(suffix)] + ".json")


@dataclass(frozen=True)
class DicomOutputOptions:
    """A derived DICOM series' options (see :func:`radedit_core.dicom.write_derived_series`).

    Checked by the settings layer (:func:`radedit_core.settings.dicom_output_values`); whether
    the series number is free in the study is checked once the study is read.

    Raises:
        ConfigError: naming the option (as :meth:`from_mapping`'s ``name`` spells it).
    """

    uid_root: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    write_seg: bool = False

    def __post_init__(self) -> None:
        for key, value in dicom_output_values(self.to_dict()).items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_mapping(cls, values: Any, name: Namer = str) -> "DicomOutputOptions":
        """The options from a front end's mapping; ``name`` spells an option as the front end does."""
        return cls(**dicom_output_values(values, name))

    def to_dict(self) -> dict[str, Any]:
        return {"uid_root": self.uid_root, "series_number": self.series_number,
                "series_description": self.series_description, "write_seg": self.write_seg}  # fmt: skip


@dataclass
class WrittenOutput:
    """What a writer wrote: the output path, its files, and format-specific facts (DICOM UIDs, VOI, ...)."""

    path: Path
    format: str
    files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "format": self.format}
        if self.files and self.files != [self.path]:
            out["files"] = [str(p) for p in self.files]
        out.update(self.info)
        return out


def write_edit(
    result: Any,
    output: Path,
    fmt: str,
    group: OutputGroup,
    *,
    overwrite: bool = False,
    dicom: DicomOutputOptions | None = None,
    jpeg_quality: int | None = None,
) -> WrittenOutput:
    """Write an edit's image as ``fmt`` at ``output``, as part of ``group`` (removed if a later write fails).

    ``jpeg_quality``: 1-100, needed for (and only for) ``fmt="jpeg"``.
    """
    if fmt == "dicom":
        from .dicom import write_derived_series  # noqa: PLC0415 - pydicom/highdicom only when needed

        options = dicom or DicomOutputOptions()
        series = write_derived_series(
            result,
            output,
            uid_root=options.uid_root,
            series_number=options.series_number,
            series_description=options.series_description,
            write_seg=options.write_seg,
            overwrite=overwrite,
            group=group,
        )
        return WrittenOutput(output, fmt, list(series.files), {"dicom": series.to_dict()})
    from .imaging.io import write_image_file  # noqa: PLC0415

    with group.file(output, overwrite) as tmp:
        write_image_file(tmp, result.image.array, result.image.geometry, jpeg_quality=jpeg_quality)
    info = {"jpeg_quality": jpeg_quality, "lossy": True} if fmt == "jpeg" else {}
    return WrittenOutput(output, fmt, [output], info)


__all__ = [
    "DICOM_ONLY_OPTIONS",
    "DicomOutputOptions",
    "OUTPUT_FORMATS",
    "WrittenOutput",
    "check_output_settings",
    "format_name",
    "legacy_sidecar_path",
    "output_format_for_path",
    "output_format_for_source",
    "output_notes",
    "sidecar_path",
    "write_edit",
]
