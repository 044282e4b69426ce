"""Run David Clunie's ``dciodvfy`` (Debian package ``dicom3tools``) on DICOM files.

``dciodvfy`` checks an instance against its IOD: required modules and
attributes, value representations, enumerated values and conditions.  The
tests require zero errors for every instance radedit writes; users can run it
on their own outputs::

    from radedit_core.dicom.validate import validate_dicom
    report = validate_dicom("edited/edited.dcm")
    report.ok, report.errors, report.warnings
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: Warnings about what a DICOMDIR would need; they say nothing about the instance.
_DICOMDIR_NOTE = "needed to build DICOMDIR"


class DciodvfyNotFound(RuntimeError):
    """dciodvfy is not installed (``apt-get install dicom3tools``)."""


@dataclass
class ValidationReport:
    path: Path
    iod: str | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.iod or 'unknown IOD'}: {len(self.errors)} errors, {len(self.warnings)} warnings"]
        lines += [f"  {line}" for line in self.errors + self.warnings]
        return "\n".join(lines)


def dciodvfy_executable() -> str | None:
    """``$RADEDIT_DCIODVFY``, else ``dciodvfy`` on the PATH, else None."""
    return os.environ.get("RADEDIT_DCIODVFY") or shutil.which("dciodvfy")


def validate_dicom(path: str | Path, *, executable: str | None = None, timeout: float = 120) -> ValidationReport:
    """Validate one file; DICOMDIR-only warnings are dropped."""
    exe = executable or dciodvfy_executable()
    if exe is None:
        raise DciodvfyNotFound(
            "dciodvfy not found: install Debian's dicom3tools (sudo bash scripts/install_system_packages.sh)"
        )
    path = Path(path)
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, errors="replace", timeout=timeout)
    output = proc.stdout + proc.stderr
    report = ValidationReport(path=path, iod=None, output=output)
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(("Error", "Abort")):
            report.errors.append(line)
        elif line.startswith("Warning"):
            if _DICOMDIR_NOTE not in line:
                report.warnings.append(line)
        elif report.iod is None and " " not in line:
            report.iod = line
    return report


__all__ = ["DciodvfyNotFound", "ValidationReport", "dciodvfy_executable", "validate_dicom"]
