"""``radedit edit``: one image (PNG, NIfTI, NRRD, DICOM) in, the edit out, with its provenance sidecar."""

from __future__ import annotations

from pathlib import Path

from .options import add_edit_options, add_model_options
from .common import editor_from_args, settings_from_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "edit",
        help="edit one image inside a mask",
        description=(
            "Edit one chest X-ray inside an edit mask. The output format follows --output: .png, .nii/.nii.gz "
            "or .nrrd write a file with the source's geometry; a path without suffix (or --output-format dicom) "
            "writes a derived DICOM series folder of the source's study (DICOM input only)."
        ),
    )
    p.add_argument(
        "--image",
        required=True,
        type=Path,
        help="PNG, NIfTI, NRRD or DICOM input (a DICOM file, series or study folder)",
    )
    p.add_argument(
        "--select", metavar="UID", help="DICOM folder input: the SOPInstanceUID or SeriesInstanceUID of the image"
    )
    p.add_argument(
        "--edit-mask",
        type=Path,
        help="where to edit (same grid as the image; PNG, NIfTI, NRRD, Slicer .seg.nrrd, DICOM SEG)",
    )
    p.add_argument("--global-edit", action="store_true", help="no edit mask: edit everywhere (LANCE-style)")
    p.add_argument("--keep-mask", type=Path, help="what must not change (devices, markers)")
    p.add_argument(
        "--edit-labels",
        action="append",
        metavar="LABELS",
        help="use only these labels of the edit mask, comma-separated or repeated: label values of a label map, "
        "segment names of a Slicer .seg.nrrd, segment numbers or labels of a DICOM SEG [default: all non-zero]",
    )
    p.add_argument("--keep-labels", action="append", metavar="LABELS", help="the same for the keep mask")
    p.add_argument(
        "--output",
        required=True,
        type=Path,
        help="output file (.png/.nii/.nii.gz/.nrrd) or, without suffix, a DICOM series folder to create",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    d = p.add_argument_group("DICOM output")
    d.add_argument(
        "--output-format",
        choices=["auto", "dicom", "png", "nifti", "nrrd"],
        default="auto",
        help="auto: from the --output suffix (none = DICOM series folder) [default: auto]",
    )
    d.add_argument(
        "--uid-root", help="UID root for the new UIDs (<= 40 characters) [default: pydicom's 1.2.826.0.1.3680043.8.498]"
    )
    d.add_argument(
        "--series-description",
        help="SeriesDescription of the derived series (<= 64 characters) [default: RadEdit: <prompt>]",
    )
    d.add_argument(
        "--series-number",
        type=int,
        help="SeriesNumber of the derived series [default: above all in the study, >= 1000]",
    )
    d.add_argument("--write-seg", action="store_true", help="also write the edit and keep masks as a DICOM SEG")
    add_edit_options(p)
    add_model_options(p)



_SUFFIX_FORMATS = {".png": "png", ".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".seg.nrrd": "nrrd"}
_DICOM_ONLY_OPTIONS = ("uid_root", "series_description", "series_number", "write_seg")


def _output_format(args) -> str:
    """'dicom', 'png', 'nifti' or 'nrrd' for ``radedit edit --output``."""
    from ..errors import ConfigError  # noqa: PLC0415
    from ..fileio import full_suffix  # noqa: PLC0415

    suffix = full_suffix(args.output)
    if args.output_format != "auto":
        expected = {"png": (".png",), "nifti": (".nii", ".nii.gz"), "nrrd": (".nrrd",)}.get(args.output_format)
        if expected and suffix not in expected:
            endings = " or ".join(expected)
            raise ConfigError(f"--output-format {args.output_format} needs an --output ending in {endings}")
        return args.output_format
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if suffix in (".dcm", ".dicom"):
        raise ConfigError(
            f"--output {args.output}: DICOM output is a series folder; give a path without suffix "
            "(or --output-format dicom)"
        )
    if suffix == "" or args.output.is_dir():
        return "dicom"
    raise ConfigError(
        f"--output {args.output}: unknown suffix '{suffix}'; use .png, .nii, .nii.gz, .nrrd or a folder "
        "without suffix for a DICOM series"
    )


def _labels(values):
    if not values:
        return None
    return [token.strip() for value in values for token in value.split(",") if token.strip()] or None


def _mask_source(path, labels):
    from ..imaging.io import MaskRef  # noqa: PLC0415

    if path is None:
        return None
    return path if labels is None else MaskRef(path, labels)


def _check_edit_inputs(args, output_format: str, edit_source, keep_source):
    """What can be wrong with the inputs and outputs, found before the model loads (seconds to minutes).

    Returns (image path to edit, DICOM series number or None).
    """
    from ..errors import ConfigError  # noqa: PLC0415
    from ..fileio import check_writable  # noqa: PLC0415
    from ..imaging.io import image_format, read_image, read_mask_array  # noqa: PLC0415
    from ..imaging.masks import make_masks  # noqa: PLC0415

    if output_format != "dicom":
        given = [
            f"--{name.replace('_', '-')}" for name in _DICOM_ONLY_OPTIONS if getattr(args, name) not in (None, False)
        ]
        if given:
            raise ConfigError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to DICOM series output only")
    # The sidecar is checked by edit_file: importing the workflow here would
    # cost seconds of torch/diffusers imports before a one-line error.
    check_writable(args.output, args.overwrite)
    image_path = args.image
    series_number = None
    headers: list = []
    is_dicom = image_path.exists() and image_format(image_path) == "dicom"
    if args.select is not None and not is_dicom:
        raise ConfigError("--select picks an image in a DICOM folder; the input is not DICOM")
    if is_dicom:
        from ..dicom import choose_series_number, locate_dicom_image  # noqa: PLC0415

        image_path, headers = locate_dicom_image(args.image, args.select)
    image = read_image(image_path)
    if output_format == "dicom":
        from ..dicom.writing import check_series_description, uid_prefix  # noqa: PLC0415

        if image.format != "dicom":
            raise ConfigError(
                f"DICOM series output needs a DICOM input (patient, study and references come from it); "
                f"{args.image} is {image.format}; give --output a .png, .nii.gz or .nrrd name"
            )
        uid_prefix(args.uid_root)
        if args.series_description is not None:
            check_series_description(args.series_description)
        study = str(image.metadata["dataset"].get("StudyInstanceUID", ""))
        used = set(image.metadata.get("study_series_numbers", []))
        used |= {h.series_number for h in headers if h.study_uid == study and h.series_number is not None}
        series_number = choose_series_number(used, args.series_number)
    edit = None if edit_source is None else read_mask_array(edit_source, image)
    keep = None if keep_source is None else read_mask_array(keep_source, image)
    make_masks(image, edit, keep, soft=args.soft_masks, edit_path=edit_source, keep_path=keep_source)
    return image_path, series_number


def run(args) -> int:
    from ..errors import ConfigError  # noqa: PLC0415

    if args.edit_mask is None and not args.global_edit:
        raise ConfigError("give --edit-mask, or --global-edit to edit the whole image")
    if args.edit_mask is not None and args.global_edit:
        raise ConfigError("--edit-mask and --global-edit exclude each other")
    edit_labels, keep_labels = _labels(args.edit_labels), _labels(args.keep_labels)
    if edit_labels and args.edit_mask is None:
        raise ConfigError("--edit-labels needs --edit-mask")
    if keep_labels and args.keep_mask is None:
        raise ConfigError("--keep-labels needs --keep-mask")
    output_format = _output_format(args)
    edit_source = _mask_source(args.edit_mask, edit_labels)
    keep_source = _mask_source(args.keep_mask, keep_labels)
    image_path, series_number = _check_edit_inputs(args, output_format, edit_source, keep_source)
    from ..workflow import edit_file  # noqa: PLC0415 - torch and diffusers: seconds to import

    settings = settings_from_args(args)
    write_output = None
    written: list = []
    if output_format == "dicom":
        from ..dicom import write_derived_series  # noqa: PLC0415

        def write_output(result, output, overwrite):
            written.extend(
                write_derived_series(
                    result,
                    output,
                    uid_root=args.uid_root,
                    series_number=series_number,
                    series_description=args.series_description,
                    write_seg=args.write_seg,
                    overwrite=overwrite,
                )
            )
            return written

    editor = editor_from_args(args)
    editor.set_progress(not args.quiet)
    result = edit_file(
        editor,
        image_path,
        args.output,
        settings,
        edit_mask_path=edit_source,
        keep_mask_path=keep_source,
        overwrite=args.overwrite,
        write_output=write_output,
    )
    what = f"{args.output}"
    if written:
        dicom = result.provenance.get("dicom", {})
        what += f" (DICOM series {dicom.get('series_number')}: {', '.join(p.name for p in written)})"
    print(
        f"wrote {what} ({result.unet_evaluations} UNet evaluations, "
        f"{result.timings['total']:.1f} s, {result.provenance['result']['changed_pixels']} pixels changed)"
    )
    return 0
