"""What the sub-commands share: loading the model the options name."""

from __future__ import annotations

from ..settings import ModelOptions


def load_editor(options: ModelOptions, quiet: bool = False):
    """The :class:`~radedit_core.workflow.RadEditor` for ``options``, with progress bars unless ``quiet``."""
    from ..models.loading import quiet_model_libraries  # noqa: PLC0415 - torch import only when needed
    from ..workflow import RadEditor  # noqa: PLC0415

    quiet_model_libraries()
    editor = RadEditor.from_options(options)
    editor.set_progress(not quiet)
    return editor
