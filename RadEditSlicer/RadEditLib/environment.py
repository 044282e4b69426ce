"""Which Python runs the worker, with which environment, and what it lacks.

Two set-ups (chosen in the module's Settings section):

* **Slicer's Python**: ``PythonSlicer`` runs the worker; radedit_core is
  bundled with the extension (found beside ``RadEdit.py`` and put on
  ``PYTHONPATH``), torch comes from the PyTorch extension and the rest from
  ``Resources/requirements.txt`` via ``slicer.util.pip_install``, with a pip
  constraints file that keeps every distribution already installed (Slicer's
  own pydicom, numpy, pillow, ...) at its version.
* **External environment**: any Python with radedit_core installed (this
  repository's ``.venv`` from ``bash scripts/setup.sh``, or a venv/conda env
  with ``pip install /path/to/radedit`` and a CUDA torch; radedit_core is not
  published on PyPI) runs the worker.  It is started with the environment
  Slicer itself was started with, so Slicer's ``PYTHONHOME``/``PYTHONPATH`` do
  not leak into it.

The default is Slicer's Python where it can run radedit_core without
replacing anything Slicer ships (:func:`slicer_python_problems`: Python 3.10+
and every installed distribution already satisfying the requirements, e.g.
Slicer 5.12 with pydicom 3.0.2), else the external environment (Slicer 5.10
ships pydicom 2.4.4, which radedit_core and highdicom cannot use; Slicer 5.6 and 5.8
ships Python 3.9).

Plain Python: no Qt, no Slicer import at module level.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

SETTINGS_GROUP = "RadEdit"
SETTINGS_MODE = "RadEdit/PythonMode"  # "slicer" | "external"
SETTINGS_PYTHON = "RadEdit/PythonExecutable"
MODES = ("slicer", "external")

#: radedit_core's ``requires-python`` (pyproject.toml; a test keeps them equal).
MIN_PYTHON = (3, 10)
#: radedit_core's torch requirement (pyproject.toml); the specifier goes to the
#: PyTorch extension's ``installTorch(torchVersionRequirement=...)``.
TORCH_SPECIFIER = ">=2.3"
TORCH_REQUIREMENT = "torch" + TORCH_SPECIFIER
#: What the module itself (not the worker) needs in Slicer's Python, in every mode:
#: psutil ends the worker's whole process tree on Cancel (PythonSlicer is a launcher
#: that forwards no signal).  Slicer ships no psutil; until it is installed the
#: worker's process group (POSIX) or ``taskkill /T`` (Windows) stands in.
MODULE_REQUIREMENTS = ["psutil>=5.9"]
#: The documented way to make an external environment (docs/slicer.md, "Supported Slicer versions"): a checkout of
#: the RadEdit repository, ``bash scripts/setup.sh`` there, then its ``.venv`` Python.
EXTERNAL_SETUP = (
    "set one up with 'bash scripts/setup.sh' in a RadEdit checkout and choose its "
    ".venv/bin/python (Windows: .venv\\Scripts\\python.exe) as the external Python"
)

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


@dataclass(frozen=True)
class Conflict:
    """An installed distribution that does not satisfy a requirement: pip would replace it."""

    requirement: str
    name: str
    installed: str

    def __str__(self) -> str:
        return f"{self.name} {self.installed} is installed, RadEdit needs {self.requirement}"


def installed_versions() -> dict[str, str]:
    """Canonical distribution name -> version of every distribution this Python can import.

    The first one on ``sys.path`` wins, as for imports.
    """
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def requirement_conflicts(
    requirements: Iterable[str],
    installed: Mapping[str, str],
    python_version: Sequence[int] | None = None,
) -> list[Conflict]:
    """The requirements an installed version violates (PEP 440, via ``packaging``).

    ``installed`` maps distribution names to versions (any spelling);
    requirements whose environment marker excludes ``python_version``
    (default: this Python) are ignored, and so are distributions not installed.
    """
    versions = {canonicalize_name(name): version for name, version in installed.items()}
    python = tuple(python_version or sys.version_info[:3])
    marker_env = {
        "python_version": ".".join(str(p) for p in python[:2]),
        "python_full_version": ".".join(str(p) for p in python),
    }
    conflicts = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(marker_env):
            continue
        name = canonicalize_name(requirement.name)
        if name not in versions:
            continue
        try:
            ok = requirement.specifier.contains(Version(versions[name]), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            conflicts.append(Conflict(text, name, versions[name]))
    return conflicts


def slicer_python_problems(
    requirements: Iterable[str],
    installed: Mapping[str, str] | None = None,
    python_version: Sequence[int] | None = None,
) -> list[str]:
    """Why Slicer's own Python cannot run radedit_core as it is (empty: it can).

    ``requirements``: ``Resources/requirements.txt`` and :data:`TORCH_REQUIREMENT`;
    ``installed``/``python_version`` default to this Python's.  Installing
    would have to replace each conflicting distribution, and Slicer's own
    modules were built and tested with the versions it ships.
    """
    python = tuple(python_version or sys.version_info[:3])
    problems = []
    if python[:2] < MIN_PYTHON:
        problems.append(
            "Python {} is older than the {} radedit_core needs".format(
                ".".join(str(p) for p in python[:3]), ".".join(str(p) for p in MIN_PYTHON)
            )
        )
    installed = installed_versions() if installed is None else installed
    problems.extend(str(c) for c in requirement_conflicts(requirements, installed, python))
    return problems


def default_mode(
    requirements: Iterable[str],
    installed: Mapping[str, str] | None = None,
    python_version: Sequence[int] | None = None,
) -> str:
    """``"slicer"`` where Slicer's Python can run radedit_core unchanged, else ``"external"``."""
    return "external" if slicer_python_problems(requirements, installed, python_version) else "slicer"


def constraints_text(installed: Mapping[str, str]) -> str:
    """A pip constraints file that keeps every installed distribution at its version.

    Passed as ``pip install -c`` with the requirements, it lets pip add what
    is missing but never upgrade or replace what Slicer (or another extension)
    installed: a dependency that would need that fails to resolve instead.
    """
    pins = {canonicalize_name(name): version for name, version in installed.items()}
    lines = []
    for name, version in sorted(pins.items()):
        try:
            Version(version)
            lines.append(f"{name}=={version}")
        except InvalidVersion:  # not PEP 440: only arbitrary equality can name it
            lines.append(f"{name}==={version}")
    return "\n".join(lines) + "\n"
