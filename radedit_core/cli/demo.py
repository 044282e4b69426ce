"""``radedit demo``: the offline demo on the bundled sample."""

from __future__ import annotations

from .common import load_editor
from .options import add_model_options, model_options_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="offline demo: tiny model on the bundled sample image")
    p.add_argument("--output", default="radedit-demo", help="output folder [default: %(default)s]")
    p.add_argument("--steps", default=200, help="diffusion steps [default: %(default)s]")
    p.add_argument("--overwrite", action="store_true")
    add_model_options(p, default_model="tiny")


def run(args) -> int:
    from ..demo import prepare_demo, run_demo  # noqa: PLC0415

    model = model_options_from_args(args)
    request = prepare_demo(args.output, steps=args.steps, overwrite=args.overwrite, model=model.model)
    editor = load_editor(model, quiet=args.quiet)
    for path in run_demo(editor, request):
        print(f"wrote {path}")
    return 0
