"""The ``radedit`` command line: edit, generate, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from ._version import __version__
from .errors import RadEditError

log = logging.getLogger("radedit")


def _quiet_libraries() -> None:
    # Library chatter (load reports, dtype notes) drowns the one line users need.
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_model_libraries() -> None:
    # Importing diffusers/transformers costs seconds: done when a model loads,
    # so that a bad input is reported without that wait.
    try:
        from diffusers.utils import logging as dlog  # noqa: PLC0415
        from transformers.utils import logging as tlog  # noqa: PLC0415

        dlog.set_verbosity_error()
        tlog.set_verbosity_error()
        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
    except ImportError:
        pass


def _add_model_options(p: argparse.ArgumentParser, default_model: str = "radedit") -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=default_model,
        help="'radedit' (published weights from the HF cache), 'tiny' (offline demo model), "
        "a model folder or a spec file (.json/.yaml) [default: %(default)s]",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N [default: auto]")
    g.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="UNet and text encoder precision; auto = bf16 on GPU, fp32 on CPU",
    )
    g.add_argument("--vae-dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    g.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the text encoder's custom code (BioViL-T) to run, from its pinned revision",
    )
    g.add_argument("--offline", action="store_true", help="never contact the hub (like HF_HUB_OFFLINE=1)")
    g.add_argument("--compile", action="store_true", help="torch.compile the UNet (GPU fast path)")


def _add_edit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("editing")
    g.add_argument("--prompt", action="append", required=True, help="edit prompt; repeat for several prompts")
    g.add_argument(
        "--guidance",
        action="append",
        type=float,
        help="guidance weight inside the edit mask; one for all prompts or one per prompt [default: 15]",
    )
    g.add_argument("--steps", type=int, default=200, help="diffusion steps T [default: 200]")
    g.add_argument("--skip-ratio", type=float, default=0.3, help="fraction of steps skipped [default: 0.3]")
    g.add_argument("--invert-prompt", default="", help="prompt of the inversion [default: '' (unconditional)]")
    g.add_argument("--invert-guidance", type=float, default=3.5, help="guidance of a non-empty invert prompt")
    g.add_argument("--eta", type=float, default=1.0, help="DDPM noise scale [default: 1]")
    g.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    g.add_argument("--inversion", choices=["ddpm", "ddim"], default="ddpm")
    g.add_argument(
        "--keep-mode",
        choices=["latent", "pixel"],
        default="latent",
        help="pixel: also copy source pixels inside the keep mask after decoding (bit-identical)",
    )
    g.add_argument("--dilate", type=int, default=0, metavar="PX", help="dilate both masks by PX pixels (paper: 5)")
    g.add_argument("--soft-masks", action="store_true", help="treat masks as soft weights in [0, 1]")
    g.add_argument(
        "--detail",
        choices=["outside-edit", "everywhere", "none"],
        default="outside-edit",
        help="where the source's full-resolution detail is kept when mapping back",
    )
    g.add_argument(
        "--reference-compat",
        action="store_true",
        help="reproduce the released pipeline's keep-mask behaviour (see README)",
    )
    g.add_argument("--inversion-batch-size", type=int, default=None, help="timesteps per UNet call when inverting")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radedit",
        description="RadEdit: mask-constrained diffusion editing of chest X-rays for stress-testing models.",
    )
    parser.add_argument("--version", action="version", version=f"radedit_core {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

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
    _add_edit_options(p)
    _add_model_options(p)

    p = sub.add_parser("generate", help="text-to-image sampling")
    p.add_argument("--prompt", action="append", required=True, help="repeat for several images")
    p.add_argument("--output", required=True, type=Path, help="output folder for PNGs")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bits", type=int, choices=[8, 16], default=8, help="PNG bit depth")
    p.add_argument("--overwrite", action="store_true")
    _add_model_options(p)

    from .pacs import add_pacs_parser  # noqa: PLC0415 - lives with the PACS code

    add_pacs_parser(sub, _add_edit_options, _add_model_options)

    p = sub.add_parser("demo", help="offline demo: tiny model on the bundled sample image")
    p.add_argument("--output", type=Path, default=Path("radedit-demo"), help="output folder [default: %(default)s]")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--overwrite", action="store_true")
    _add_model_options(p, default_model="tiny")
    return parser


def _editor(args):
    from .workflow import RadEditor  # noqa: PLC0415 - torch import only when needed

    _quiet_model_libraries()

    return RadEditor.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        vae_dtype=args.vae_dtype,
        trust_remote_code=args.trust_remote_code,
        local_files_only=True if args.offline else None,
        compile_unet=args.compile,
    )


def _settings(args):
    from .workflow import EditSettings  # noqa: PLC0415

    guidance = args.guidance
    if guidance and len(guidance) == 1:
        guidance = guidance * len(args.prompt)
    return EditSettings(
        prompts=args.prompt,
        weights=guidance,
        steps=args.steps,
        skip_ratio=args.skip_ratio,
        invert_prompt=args.invert_prompt,
        invert_guidance=args.invert_guidance,
        eta=args.eta,
        seed=args.seed,
        inversion=args.inversion,
        keep_mode=args.keep_mode,
        dilate=args.dilate,
        soft_masks=args.soft_masks,
        detail=args.detail,
        reference_compat=args.reference_compat,
        inversion_batch_size=args.inversion_batch_size,
    )


_SUFFIX_FORMATS = {".png": "png", ".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".seg.nrrd": "nrrd"}
_DICOM_ONLY_OPTIONS = ("uid_root", "series_description", "series_number", "write_seg")


def _output_format(args) -> str:
    """'dicom', 'png', 'nifti' or 'nrrd' for ``radedit edit --output``."""
    from .errors import ConfigError  # noqa: PLC0415
    from .fileio import full_suffix  # noqa: PLC0415

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
    from .imaging.io import MaskRef  # noqa: PLC0415

    if path is None:
        return None
    return path if labels is None else MaskRef(path, labels)


def _check_edit_inputs(args, output_format: str, edit_source, keep_source):
    """What can be wrong with the inputs and outputs, found before the model loads (seconds to minutes).

    Returns (image path to edit, DICOM series number or None).
    """
    from .errors import ConfigError  # noqa: PLC0415
    from .fileio import check_writable  # noqa: PLC0415
    from .imaging.io import image_format, read_image, read_mask_array  # noqa: PLC0415
    from .imaging.masks import make_masks  # noqa: PLC0415

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
        from .dicom import choose_series_number, locate_dicom_image  # noqa: PLC0415

        image_path, headers = locate_dicom_image(args.image, args.select)
    image = read_image(image_path)
    if output_format == "dicom":
        from .dicom.writing import check_series_description, uid_prefix  # noqa: PLC0415

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


def cmd_edit(args) -> int:
    from .errors import ConfigError  # noqa: PLC0415

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
    from .workflow import edit_file  # noqa: PLC0415 - torch and diffusers: seconds to import

    settings = _settings(args)
    write_output = None
    written: list = []
    if output_format == "dicom":
        from .dicom import write_derived_series  # noqa: PLC0415

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

    editor = _editor(args)
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


def cmd_generate(args) -> int:
    from .fileio import check_writable, write_json  # noqa: PLC0415
    from .imaging.image import Geometry  # noqa: PLC0415
    from .imaging.io import write_image  # noqa: PLC0415
    from .workflow import model_image_to_array  # noqa: PLC0415

    out_dir = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(args.prompt) * args.num_images
    paths = [out_dir / f"sample_{k:03d}.png" for k in range(n)]
    for path in paths + [out_dir / "samples.json"]:
        check_writable(path, args.overwrite)
    editor = _editor(args)
    editor.set_progress(not args.quiet)
    out = editor.generate(
        args.prompt,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        num_images_per_prompt=args.num_images,
    )
    for path, image in zip(paths, out.images):
        write_image(path, model_image_to_array(image, args.bits), Geometry(), overwrite=args.overwrite)
    write_json(
        out_dir / "samples.json",
        {
            "tool": "radedit_core",
            "version": __version__,
            "model": editor.components.provenance(),
            "settings": {
                "steps": args.steps,
                "guidance": args.guidance,
                "negative_prompt": args.negative_prompt,
                "seed": args.seed,
                "scheduler": "DDIM, eta 0",
            },
            "samples": [{"path": p.name, "prompt": pr} for p, pr in zip(paths, out.prompts)],
            "timings_s": out.timings,
        },
    )
    print(f"wrote {n} images to {out_dir}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo  # noqa: PLC0415

    editor = _editor(args)
    editor.set_progress(not args.quiet)
    written = run_demo(editor, args.output, steps=args.steps, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_pacs_edit(args) -> int:
    from .pacs import run_pacs_edit  # noqa: PLC0415

    return run_pacs_edit(args, _editor, _settings)


COMMANDS = {"edit": cmd_edit, "generate": cmd_generate, "demo": cmd_demo, "pacs-edit": cmd_pacs_edit}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    _quiet_libraries()
    if args.quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return COMMANDS[args.command](args)
    except RadEditError as exc:
        print(f"radedit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("radedit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
