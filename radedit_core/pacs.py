"""PACS round trips (placeholder: the PACS work of the DICOM issue fills this in)."""

from __future__ import annotations


def add_pacs_parser(sub, add_edit_options, add_model_options) -> None:
    """Register ``radedit pacs-edit`` on the CLI's sub-parsers."""


def run_pacs_edit(args, make_editor, make_settings) -> int:  # pragma: no cover - placeholder
    raise NotImplementedError
