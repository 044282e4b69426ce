"""Checks shared by the DICOM tests: dciodvfy with the reader's list of inherited problems."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom

from radedit_core.dicom.validate import validate_dicom


def note_keywords(notes: list[str]) -> set[str]:
    """Lower-cased CamelCase words (attribute keywords) named in the reader's notes."""
    return {word.lower() for note in notes for word in re.findall(r"[A-Z][A-Za-z]+", note)}


def error_attribute(error: str) -> str | None:
    """The attribute a dciodvfy error is about, as a keyword-like word (spaces and quotes dropped)."""
    tag = re.search(r"\(0x([0-9a-fA-F]{4}),0x([0-9a-fA-F]{4})\)", error)
    if tag:
        return pydicom.datadict.keyword_for_tag(int(tag.group(1) + tag.group(2), 16)) or None
    named = re.search(r"(?:Element=|attribute )<([^>]+)>", error)
    return re.sub(r"[^A-Za-z]", "", named.group(1)) if named else None


def assert_valid_or_inherited(path: Path, notes: list[str]) -> None:
    """dciodvfy: no errors, except in attributes the reader listed as inherited from the source.

    Every output radedit writes must pass; an error is allowed only when it is
    about an attribute that one of ``notes`` (the source image's
    ``metadata["notes"]``) names, i.e. a problem copied unchanged from the
    source and reported to the user.
    """
    report = validate_dicom(path)
    assert report.iod, str(report)
    named = note_keywords(notes)
    for error in report.errors:
        if "dataset contains invalid data values" in error:
            continue  # dciodvfy's summary of the value errors it lists one by one
        attribute = error_attribute(error)
        assert attribute is not None, error
        assert attribute.lower() in named, (error, notes)
