"""What the sub-commands share: loading the model the options name, naming options as typed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from ..errors import ConfigError
from ..settings import ModelOptions


@contextlib.contextmanager
def options_as_typed(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`ConfigError` that names an option as the library spells it
    (``output_dir: ...``) with the command line's spelling (``--output: ...``).

    ``names``: the library's option names -> the command's flags.  Errors that name no
    option in ``names`` pass unchanged.
    """
    try:
        yield
    except ConfigError as exc:
        key, sep, problem = str(exc).partition(": ")
        if not sep or key not in names:
            raise
        raise ConfigError(f"{names[key]}: {problem}") from exc


def dashed(*keys: str) -> dict[str, str]:
    """``skip_ratio`` -> ``--skip-ratio`` for each key."""
    return {k: "--" + k.replace("_", "-") for k in keys}


def load_editor(options: ModelOptions, quiet: bool = False):
    """The :class:`~radedit_core.workflow.RadEditor` for ``options``, with progress bars unless ``quiet``."""
    from ..models.loading import quiet_model_libraries  # noqa: PLC0415 - torch import only when needed
    from ..workflow import RadEditor  # noqa: PLC0415

    quiet_model_libraries()
    editor = RadEditor.from_options(options)
    editor.set_progress(not quiet)
    return editor
