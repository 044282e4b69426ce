"""Small callables that ``configs/inference.json`` instantiates.

Everything that decides what is computed lives in :mod:`radedit_core`
(:mod:`radedit_core.batch` for datalists, resume, sharding and the manifest);
these functions only connect the MONAI bundle machinery to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from radedit_core.errors import RadEditError


def bundle_root() -> str:
    """The bundle folder, wherever ``python -m monai.bundle`` is started from."""
    return str(Path(__file__).resolve().parent.parent)


def _started_as_bundle_cli() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.startswith("monai.bundle")


def run_job(job: Any) -> Any:
    """``job.run()``; from the command line a radedit error is one line and an exit code, not a traceback.

    Through the Python API (``ConfigWorkflow``) the exception propagates as is.
    """
    try:
        return job.run()
    except RadEditError as exc:
        if not _started_as_bundle_cli():
            raise
        # Every rank stops with the same agreed error; one copy of it is enough.
        if os.environ.get("RANK", "0") == "0":
            print(f"radedit: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
