"""``radedit generate``: text-to-image samples as PNGs with a provenance file."""

from __future__ import annotations

from .common import load_editor
from .options import add_generate_options, add_model_options, generate_settings_from_args, model_options_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="text-to-image sampling")
    p.add_argument("--output", required=True, help="output folder for the PNGs and samples.json")
    add_generate_options(p)
    p.add_argument("--overwrite", action="store_true")
    add_model_options(p)


def run(args) -> int:
    from ..workflow import check_generate_output, generate_files  # noqa: PLC0415

    settings = generate_settings_from_args(args)
    model = model_options_from_args(args)
    check_generate_output(settings, args.output, args.overwrite)
    editor = load_editor(model, quiet=args.quiet)
    written = generate_files(editor, settings, args.output, args.overwrite)
    print(f"wrote {len(written) - 1} images to {args.output}")
    return 0
