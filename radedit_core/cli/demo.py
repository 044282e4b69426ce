"""``radedit demo``: the offline demo on the bundled sample."""

from __future__ import annotations

from pathlib import Path

from .options import add_model_options
from .common import editor_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="offline demo: tiny model on the bundled sample image")
    p.add_argument("--output", type=Path, default=Path("radedit-demo"), help="output folder [default: %(default)s]")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--overwrite", action="store_true")
    add_model_options(p, default_model="tiny")


def run(args) -> int:
    from ..demo import run_demo  # noqa: PLC0415

    editor = editor_from_args(args)
    editor.set_progress(not args.quiet)
    written = run_demo(editor, args.output, steps=args.steps, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    return 0
