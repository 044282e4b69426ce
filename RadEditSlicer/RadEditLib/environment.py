"""Which Python runs the worker, with which environment, and what it lacks.

Two set-ups (chosen in the module's Settings section):

* **Slicer's Python** (default): ``PythonSlicer`` runs the worker; radedit_core
  is bundled with the extension (found beside ``RadEdit.py`` and put on
  ``PYTHONPATH``), torch comes from the PyTorch extension and the rest from
  ``Resources/requirements.txt`` via ``slicer.util.pip_install``.
* **External environment**: any Python (a venv or conda env with
  ``pip install radedit-core`` and a CUDA torch, for example) runs the worker.
  It is started with the environment Slicer itself was started with, so
  Slicer's ``PYTHONHOME``/``PYTHONPATH`` do not leak into it.

Plain Python: no Qt, no Slicer import at module level.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path

SETTINGS_GROUP = "RadEdit"
SETTINGS_MODE = "RadEdit/PythonMode"  # "slicer" | "external"
SETTINGS_PYTHON = "RadEdit/PythonExecutable"
MODES = ("slicer", "external")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def slicer_python() -> str:
    """Path of ``PythonSlicer`` (Slicer's Python with its libraries), else this Python."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    return str(candidate) if candidate.exists() else sys.executable


def bundled_core_parent(module_dir: str | Path) -> Path | None:
    """The folder that holds the bundled ``radedit_core`` package, if any.

    Installed extensions have it beside ``RadEdit.py``; a source checkout has
    it one level up (``RadEditSlicer/`` sits next to ``radedit_core/``).
    """
    module_dir = Path(module_dir)
    for parent in (module_dir, module_dir.parent):
        if (parent / "radedit_core" / "worker.py").is_file():
            return parent
    return None


def with_pythonpath(env: dict[str, str] | None, *paths: str | Path) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) with ``paths`` first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    parts = [str(p) for p in paths if p]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def external_environment(startup_env: dict[str, str] | None) -> dict[str, str]:
    """The environment for an external Python: Slicer's startup one, minus Python overrides."""
    env = dict(os.environ if startup_env is None else startup_env)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    return env


def read_requirements(path: str | Path) -> list[str]:
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements whose distribution is not installed in this Python.

    Versions are left to pip: it upgrades what is too old when asked to
    install the requirement.
    """
    missing = []
    for requirement in requirements:
        try:
            importlib.metadata.version(requirement_name(requirement))
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def torch_installed() -> bool:
    try:
        importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
