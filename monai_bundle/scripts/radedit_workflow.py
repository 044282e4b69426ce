"""Small callables that ``configs/inference.json`` instantiates.

Everything that decides what is computed lives in :mod:`radedit_core`
(:mod:`radedit_core.batch` for datalists, resume, sharding and the manifest);
these functions only connect the MONAI bundle machinery to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

from radedit_core.errors import ConfigError, RadEditError


def bundle_root() -> str:
    """The bundle folder, wherever ``python -m monai.bundle`` is started from."""
    return str(Path(__file__).resolve().parent.parent)


def bundled_sample() -> dict[str, str]:
    """What the bundle edits with no overrides: the sample study's image and its SEG's lungs and pacemaker."""
    from importlib import resources  # noqa: PLC0415

    study = Path(str(resources.files("radedit_core") / "data" / "sample_study"))
    seg = study / "seg.dcm"
    return {"input": str(study), "edit_mask": f"{seg}#lungs", "keep_mask": f"{seg}#pacemaker"}


def find_model(model: Any, search_dirs: Sequence[str | Path] = ()) -> str:
    """``radedit``/``tiny``, an existing folder or spec file, or a name/path inside one of ``search_dirs``.

    The bundle passes its ``models/`` folder, so ``model=my_weights`` finds
    ``models/my_weights/`` from any working directory.
    """
    if model is None or not str(model).strip():
        raise ConfigError("model: give 'radedit', 'tiny', a model folder or a spec file")
    text = str(model).strip()
    if text in ("radedit", "tiny", "tiny-random") or Path(text).expanduser().exists():
        return text
    tried = []
    for folder in search_dirs:
        candidate = Path(str(folder)).expanduser() / text
        tried.append(str(candidate))
        if candidate.exists():
            return str(candidate)
    where = f" (also looked for {', '.join(tried)})" if tried else ""
    raise ConfigError(
        f"{text}: model not found{where}; use 'radedit' (published weights from the Hugging Face cache), "
        "'tiny' (offline demo model), a model folder (unet/, vae/, text_encoder/, tokenizer/) or a spec file"
    )


def _started_as_bundle_cli() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.startswith("monai.bundle")


def run_job(job: Any, model_dirs: Sequence[Any] = ()) -> Any:
    """``job.run()``; from the command line a radedit error is one line and an exit code, not a traceback.

    ``model_dirs``: folders where a model name is also looked for (the bundle's ``models/``).
    Through the Python API (``ConfigWorkflow``) the exception propagates as is.
    """
    try:
        if job.editor is None:
            job.params["model"] = find_model(job.params["model"], [d for d in model_dirs if d])
        return job.run()
    except RadEditError as exc:
        if not _started_as_bundle_cli():
            raise
        # Every rank stops with the same agreed error; one copy of it is enough.
        if os.environ.get("RANK", "0") == "0":
            print(f"radedit: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
