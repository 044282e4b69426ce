"""Errors raised by radedit_core.

Every error a user can cause derives from :class:`RadEditError`; the CLI turns
them into one line on stderr and a non-zero exit code, so the messages name the
file (or option) and the problem in words a radiology researcher can act on.
"""

from __future__ import annotations

from pathlib import Path


class RadEditError(Exception):
    """Base class of every error radedit_core raises on purpose."""

    exit_code = 2


class InputError(RadEditError):
    """An input file or value cannot be used (unreadable, wrong shape, NaN, ...)."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class MaskError(InputError):
    """A mask does not fit its image (grid, shape, values, emptiness)."""


class ConfigError(RadEditError):
    """An option or a model spec is invalid."""


class NumericalError(RadEditError):
    """A computation produced NaN or infinity (a half-precision overflow, broken weights); nothing is written."""

    exit_code = 1


class ModelNotFoundError(RadEditError):
    """Weights for a model component are not where the spec says."""

    exit_code = 3


class OutputError(RadEditError):
    """The output location cannot be written (exists, not writable, ...)."""

    exit_code = 4


class PacsError(RadEditError):
    """A PACS cannot be reached, refuses us, lacks what was asked for, or fails to store."""

    exit_code = 5

    def __init__(self, server: object, problem: str):
        self.server = str(server)
        self.problem = problem
        super().__init__(f"{server}: {problem}")


class BackendError(RadEditError):
    """An optional acceleration backend that was asked for (TensorRT) is not installed or cannot run here.

    Nothing was computed or written; the same run without the backend works.
    """

    exit_code = 6
