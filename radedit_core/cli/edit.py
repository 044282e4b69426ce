"""``radedit edit``: one image (PNG, JPEG, NIfTI, NRRD, DICOM) in, the edit out, with its provenance sidecar."""

from __future__ import annotations

from pathlib import Path

from ..imaging.mask_ref import parse_mask_ref
from ..settings import cli_name
from .common import load_editor
from .options import (
    add_edit_options,
    add_model_options,
    dicom_options_from_args,
    edit_settings_from_args,
    model_options_from_args,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "edit",
        help="edit one image inside a mask",
        description=(
            "Edit one chest X-ray inside an edit mask. The output format follows --output: .png, .nii/.nii.gz "
            "or .nrrd write a file with the source's geometry (.jpg/.jpeg too, lossy, with --jpeg-quality); a path without suffix (or --output-format dicom) "
            "writes a derived DICOM series folder of the source's study (DICOM input only)."
        ),
    )
    p.add_argument(
        "--image",
        required=True,
        type=Path,
        help="PNG, JPEG, NIfTI, NRRD or DICOM input (a DICOM file, series or study folder)",
    )
    p.add_argument(
        "--select", metavar="UID", help="DICOM folder input: the SOPInstanceUID or SeriesInstanceUID of the image"
    )
    p.add_argument(
        "--edit-mask",
        help="where to edit (same grid as the image; PNG, NIfTI, NRRD, Slicer .seg.nrrd, DICOM SEG)",
    )
    p.add_argument("--global-edit", action="store_true", help="no edit mask: edit everywhere (LANCE-style)")
    p.add_argument("--keep-mask", help="what must not change (devices, markers)")
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
        required=True,  # a string: the core refuses an empty one (Path("") would be the working folder)
        help="output file (.png/.jpg/.nii/.nii.gz/.nrrd) or, without suffix, a DICOM series folder to create",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    d = p.add_argument_group("DICOM output")
    d.add_argument(
        "--output-format",
        default="auto",
        help="auto (from the --output suffix; none = a DICOM series folder), dicom, png, jpeg, nifti, nrrd "
        "[default: auto]",
    )
    d.add_argument(
        "--uid-root", help="UID root for the new UIDs (<= 40 characters) [default: pydicom's 1.2.826.0.1.3680043.8.498]"
    )
    d.add_argument(
        "--series-description",
        help="SeriesDescription of the derived series (<= 64 characters, 64 bytes in UTF-8) [default: RadEdit: <prompt>]",
    )
    d.add_argument(
        "--series-number",
        help="SeriesNumber of the derived series [default: above all in the study, >= 1000]",
    )
    d.add_argument("--write-seg", action="store_true", help="also write the edit and keep masks as a DICOM SEG")
    add_edit_options(p)
    add_model_options(p)



def run(args) -> int:
    from ..edit_request import prepare_edit  # noqa: PLC0415

    # 1. every option, then every input and output, before the model loads
    settings = edit_settings_from_args(args)
    model = model_options_from_args(args)
    dicom = dicom_options_from_args(args)
    request = prepare_edit(
        args.image,
        parse_mask_ref(args.edit_mask, args.edit_labels, name="--edit-labels"),
        parse_mask_ref(args.keep_mask, args.keep_labels, name="--keep-labels"),
        settings,
        args.output,
        output_format=args.output_format,
        overwrite=args.overwrite,
        global_edit=args.global_edit,
        select=args.select,
        dicom=dicom,
        name=cli_name,
        model=model.model,
    )
    # 2. the model, 3. the edit and its outputs
    from ..workflow import run_edit  # noqa: PLC0415 - torch and diffusers: seconds to import

    editor = load_editor(model, quiet=args.quiet)
    result, written = run_edit(editor, request)
    what = f"{written.path}"
    if written.format == "dicom":
        what += f" (DICOM series {written.info['dicom']['series_number']}: {', '.join(p.name for p in written.files)})"
    print(
        f"wrote {what} ({result.unet_evaluations} UNet evaluations, "
        f"{result.timings['total']:.1f} s, {result.provenance['result']['changed_pixels']} pixels changed)"
    )
    return 0
