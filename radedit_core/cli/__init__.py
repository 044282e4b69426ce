"""The ``radedit`` command line: edit, generate, pacs-edit, stress, train, phantom, demo.

Each sub-command lives in its own module (its options and what it runs); the
work itself is done by the library (:mod:`radedit_core.workflow`,
:mod:`radedit_core.batch`, :mod:`radedit_core.pacs`), so that every front end
behaves the same.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from .._version import __version__
from ..errors import RadEditError
from ..fileio import is_storage_error, storage_error
from . import demo, edit, generate, pacs_edit, phantom, stress, train

#: Sub-command name -> module with ``add_parser(subparsers)`` and ``run(args) -> exit code``.
COMMANDS = {
    "edit": edit, "generate": generate, "pacs-edit": pacs_edit, "stress": stress, "train": train,
    "phantom": phantom, "demo": demo,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radedit",
        description="RadEdit: mask-constrained diffusion editing of chest X-rays for stress-testing models.",
    )
    parser.add_argument("--version", action="version", version=f"radedit_core {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return COMMANDS[args.command].run(args)
    except RadEditError as exc:
        print(f"radedit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A write the library did not wrap (a full disk in a third-party writer): still one line, exit 4.

        if not is_storage_error(exc):
            raise
        error = storage_error(exc.filename or "output", exc)
        print(f"radedit: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("radedit: interrupted", file=sys.stderr)
        return 130

