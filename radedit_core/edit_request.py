"""An edit checked and ready for the model: step 1 of the route (docs/editing.md, "Command line").

:func:`prepare_edit` checks everything that needs no model, in a second and
without importing torch: the output (writable, format, DICOM-only options,
a JPEG output's quality), the image (located in a DICOM folder, read), the
masks (on the image's grid, not empty, the edit mask mostly inside the
centred square the model edits) and the DICOM series number.  Nothing is
written.  Then
:func:`radedit_core.workflow.run_edit` edits and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .dicom import choose_series_number, locate_dicom_image
from .dicom.writing import SERIES_FILES_WRITTEN, is_series_file
from .errors import ConfigError
from .fileio import check_outputs_apart, check_replaceable_folder, check_writable, output_path
from .imaging.compositing import check_edit_mask_in_crop
from .imaging.image import SourceImage
from .imaging.io import image_format, read_image, read_mask_array
from .imaging.mask_ref import MaskRef, parse_mask_ref
from .imaging.masks import make_masks
from .imaging.transform import ModelSpaceTransform
from .outputs import (
    DICOM_ONLY_OPTIONS,
    DicomOutputOptions,
    check_output_settings,
    output_format_for_path,
    sidecar_path,
)
from .settings import EditSettings, cli_name


@dataclass
class EditRequest:
    """An edit checked and ready for the model: everything :func:`run_edit` needs.

    ``image`` is the source as read (stored values, MONOCHROME2 polarity),
    ``edit``/``keep`` the mask arrays on its grid (``edit=None``: a global
    edit), ``output`` and ``sidecar`` the paths to create, ``output_format``
    one of :data:`radedit_core.outputs.OUTPUT_FORMATS`.
    """

    image: SourceImage
    edit_ref: MaskRef | None
    keep_ref: MaskRef | None
    edit: np.ndarray | None
    keep: np.ndarray | None
    settings: EditSettings
    output: Path
    output_format: str
    sidecar: Path
    overwrite: bool = False
    dicom: DicomOutputOptions | None = None


def prepare_edit(
    image: str | Path,
    edit_mask: Any,
    keep_mask: Any,
    settings: EditSettings,
    output: str | Path,
    *,
    output_format: Any = "auto",
    overwrite: bool = False,
    global_edit: bool = False,
    select: str | None = None,
    dicom: DicomOutputOptions | None = None,
    name: Callable[[str], str] = cli_name,
    model: Any = None,
) -> EditRequest:
    """Check an edit's inputs and outputs before any model loads; nothing is written.

    ``edit_mask``/``keep_mask``: paths, ``PATH#LABELS`` strings or
    :class:`MaskRef` (see :mod:`radedit_core.imaging.mask_ref`). ``select``:
    the SOPInstanceUID or SeriesInstanceUID of the image in a DICOM folder.
    ``dicom``: options of a derived DICOM series (DICOM output only).
    ``name`` spells the options in messages (default: the CLI's ``--option``).
    ``model``: the model option (a name, spec file, model folder or :class:`ModelSpec`): its files
    are inputs too, which no output (the sidecar included) may replace.

    Raises:
        ConfigError, InputError, MaskError (exit code 2) or OutputError (4),
        naming the option or the file and the problem.
    """
    edit_ref = parse_mask_ref(edit_mask, name=name("edit_mask"))
    keep_ref = parse_mask_ref(keep_mask, name=name("keep_mask"))
    if edit_ref is None and not global_edit:
        raise ConfigError(f"give {name('edit_mask')}, or {name('global_edit')} to edit the whole image")
    if edit_ref is not None and global_edit:
        raise ConfigError(f"{name('edit_mask')} and {name('global_edit')} exclude each other")
    output = output_path(
        output, name("output"), "give a file name (e.g. edited.png) or a new folder name for a DICOM series"
    )
    fmt = output_format_for_path(output, output_format, name("output"))
    given = [name(k) for k in DICOM_ONLY_OPTIONS if dicom is not None and getattr(dicom, k) not in (None, False)]
    if fmt != "dicom" and given:
        raise ConfigError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to DICOM series output only")
    # first: the working folder (``.``) or a folder above it is refused before its name makes a sidecar name
    check_writable(output, overwrite, folder=fmt == "dicom")
    sidecar = sidecar_path(output)
    check_writable(sidecar, overwrite, folder=False)
    check_edit_outputs_apart(
        {name("output"): output, f"{name('output')}'s sidecar": sidecar},
        image, edit_ref, keep_ref, name, model,
        folders=(name("output"),) if fmt == "dicom" else (),
    )  # fmt: skip
    if fmt == "dicom" and overwrite:
        check_replaceable_folder(output, option=name("overwrite"), own_file=is_series_file,
                                 own_what=SERIES_FILES_WRITTEN)  # fmt: skip

    image_path = Path(image)
    headers: list = []
    is_dicom = image_path.exists() and image_format(image_path) == "dicom"
    if select is not None and not is_dicom:
        raise ConfigError(f"{name('select')} picks an image in a DICOM folder; {image_path} is not DICOM")
    if is_dicom:
        image_path, headers = locate_dicom_image(image_path, select)
    source = read_image(image_path)
    if fmt == "dicom":
        dicom = _dicom_output(source, image, headers, dicom or DicomOutputOptions(), name)
    check_output_settings(fmt, source, settings.jpeg_quality, name)
    soft = settings.soft_masks  # a FRACTIONAL SEG gives its fractions, else its 0.5 threshold
    edit = None if edit_ref is None else read_mask_array(edit_ref, source, soft=soft)
    keep = None if keep_ref is None else read_mask_array(keep_ref, source, soft=soft)
    # Dilation never makes an empty or misplaced mask usable: checked without it.
    masks = make_masks(source, edit, keep, soft=settings.soft_masks, edit_path=edit_ref, keep_path=keep_ref)
    if keep is not None and settings.dilate:  # ... but dilation may let the keep mask cover the edit mask
        make_masks(source, edit, keep, soft=soft, dilate_px=settings.dilate, edit_path=edit_ref, keep_path=keep_ref)
    if edit_ref is not None:
        # The model sees the centred square only (the crop does not depend on the model's resolution).
        check_edit_mask_in_crop(masks.edit, ModelSpaceTransform.fit(source), edit_ref)
    return EditRequest(source, edit_ref, keep_ref, edit, keep, settings, output, fmt, sidecar, overwrite, dicom)


def edit_inputs(
    image: Any, edit_ref: MaskRef | None, keep_ref: MaskRef | None, name=cli_name, model: Any = None
) -> dict[str, Any]:
    """``{option: path}`` of the files an edit reads, for :func:`radedit_core.fileio.check_outputs_apart`.

    The model's files (:func:`radedit_core.models.spec.model_files`) are under ``name("model")``
    (a spec file or model folder) and ``name("model") + " (component folder)"``.
    """
    from .models.spec import model_files  # noqa: PLC0415

    inputs = {
        name("image"): image,
        name("edit_mask"): None if edit_ref is None else edit_ref.path,
        name("keep_mask"): None if keep_ref is None else keep_ref.path,
    }
    for k, path in enumerate(model_files(model)):
        inputs[name("model") if k == 0 else f"{name('model')} ({path.name} folder)"] = path
    return inputs


def check_edit_outputs_apart(
    outputs: dict[str, Any],
    image: Any,
    edit_ref: MaskRef | None,
    keep_ref: MaskRef | None,
    name=cli_name,
    model: Any = None,
    folders: tuple[str, ...] = (),
) -> None:
    """:func:`radedit_core.fileio.check_outputs_apart` of ``outputs`` and an edit's inputs (:func:`edit_inputs`),
    every file in the model's folders counting as an input.

    Raises:
        OutputError: an output is an input or a file of the model, or a folder output holds an input.
    """
    inputs = edit_inputs(image, edit_ref, keep_ref, name, model=model)
    model_keys = tuple(k for k in inputs if k == name("model") or k.startswith(name("model") + " ("))
    check_outputs_apart(outputs, inputs, folders=folders, input_folders=model_keys)


def _dicom_output(source: SourceImage, given: Any, headers: list, options: DicomOutputOptions, name) -> DicomOutputOptions:
    """The derived series' options (checked when made), the SeriesNumber chosen from what the study uses."""
    from dataclasses import replace  # noqa: PLC0415

    if source.format != "dicom":
        raise ConfigError(
            f"DICOM series output needs a DICOM input (patient, study and references come from it); "
            f"{given} is {source.format}; give {name('output')} a .png, .nii.gz or .nrrd name"
        )
    study = str(source.metadata["dataset"].get("StudyInstanceUID", ""))
    used = set(source.metadata.get("study_series_numbers", []))
    used |= {h.series_number for h in headers if h.study_uid == study and h.series_number is not None}
    return replace(options, series_number=choose_series_number(used, options.series_number, name))


__all__ = ["EditRequest", "check_edit_outputs_apart", "edit_inputs", "prepare_edit"]
