"""Atomic output: a result appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputError

#: Multi-part suffixes that writers choose their format by.
_COMPOUND_SUFFIXES = (".nii.gz", ".seg.nrrd")


def full_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def check_writable(path: str | Path, overwrite: bool = False) -> Path:
    """Fail early (before any computation) if ``path`` cannot be created."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output already exists (pass --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create output folder ({exc.strerror})") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: output folder is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` that is renamed onto it on success.

    The temporary name keeps the suffix so that writers which choose the
    format by extension (SimpleITK, nibabel) write the right format.  On any
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = check_writable(path, overwrite)
    suffix = full_suffix(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: output appeared while writing; not replaced")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder of files (a DICOM series)."""
    path = check_writable(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise OutputError(f"{path}: output appeared while writing; not replaced")
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: Any, overwrite: bool = True) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)
