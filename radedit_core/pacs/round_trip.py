"""The PACS round trip of ``radedit pacs-edit``: fetch a study, edit one image, write the derived series,
store it, verify the server lists it.

:func:`prepare_pacs_edit` checks every option without the network;
:func:`pacs_edit` does the round trip.  The command line is
:mod:`radedit_core.cli.pacs_edit`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..dicom import choose_series_number, read_dicom_image, read_dicom_mask, write_derived_series
from ..dicom.reading import InstanceHeader, NoImageChoice, choose_image, read_header
from ..errors import ConfigError, InputError, OutputError, PacsError
from ..fileio import OutputGroup, check_replaceable_folder, check_writable, output_path
from ..imaging.mask_ref import MaskRef, parse_mask_ref
from ..outputs import DicomOutputOptions, sidecar_path
from ..provenance import warn_notes
from ..settings import EditSettings, cli_name
from .operations import fetch_study, find_instances, find_study, store_instances
from .server import SEGMENTATION, _UID_RE, PacsServer

log = logging.getLogger("radedit")


def index_instances(paths: Iterable[Path]) -> list[InstanceHeader]:
    """Headers of fetched files, as a folder scan reads them (non-DICOM files are skipped with a warning)."""
    entries = []
    for path in paths:
        header = read_header(Path(path))
        if header is None:
            log.warning("skipping a retrieved file that is not DICOM (%s)", Path(path).name)
            continue
        entries.append(header)
    return entries


def pick_image(server: PacsServer, study_uid: str, entries: Sequence[InstanceHeader], select: str | None) -> InstanceHeader:
    """The one editable image of a fetched study (``select``: SOP or series UID), chosen as in a study folder:
    earlier radedit edits in the study are not candidates unless selected."""
    try:
        return choose_image(list(entries), select, where=f"study {study_uid}", option="--select")
    except NoImageChoice as exc:
        raise PacsError(server, str(exc) if str(exc).startswith("study ") else f"study {study_uid}: {exc}") from None


def _read_mask(server: PacsServer, study_uid: str, ref: MaskRef | None, image, entries: Sequence[InstanceHeader],
               soft: bool = False):  # fmt: skip
    if ref is None:
        return None
    if ref.path is not None:
        from ..imaging.io import read_mask_array  # noqa: PLC0415

        return read_mask_array(ref, image, soft=soft)
    segs = [e for e in entries if e.series_uid == ref.series_uid]
    if not segs:
        raise PacsError(server, f"study {study_uid}: mask series {ref.series_uid} is not in the study")
    segs = [e for e in segs if e.sop_class_uid == SEGMENTATION]
    if not segs:
        raise PacsError(server, f"study {study_uid}: mask series {ref.series_uid} holds no DICOM SEG")
    if len(segs) > 1:
        raise PacsError(
            server, f"study {study_uid}: mask series {ref.series_uid} holds {len(segs)} SEG instances; "
            "keep one per series"
        )

    with _remote_names(server, study_uid, segs[0]):
        return read_dicom_mask(segs[0].path, image, select=ref.select, soft=soft)


@contextlib.contextmanager
def _remote_names(server: PacsServer, study_uid: str, entry: InstanceHeader) -> Iterator[None]:
    """Errors about a fetched (temporary) file name the instance on the server instead."""
    try:
        yield
    except InputError as exc:
        where = f"{server} study {study_uid} instance {entry.sop_instance_uid}"
        raise type(exc)(where, exc.problem) from exc


def check_uid(value: str | None, option: str) -> str | None:
    """A DICOM UID (digits and dots, at most 64 characters), or None."""
    if value is None:
        return None
    value = value.strip()
    if not _UID_RE.match(value) or len(value) > 64:
        raise ConfigError(f"{option} {value!r} is not a DICOM UID (digits and dots, at most 64 characters)")
    return value


@dataclass
class PacsEditRequest:
    """A ``pacs-edit`` round trip, every option checked (:func:`prepare_pacs_edit`)."""

    server: PacsServer
    study_uid: str
    select: str | None
    edit_ref: MaskRef | None
    keep_ref: MaskRef | None
    settings: EditSettings
    dicom: DicomOutputOptions
    output: Path | None = None
    overwrite: bool = False


def prepare_pacs_edit(
    server: PacsServer,
    study: str,
    settings: EditSettings,
    *,
    select: str | None = None,
    edit_mask: Any = None,
    keep_mask: Any = None,
    global_edit: bool = False,
    dicom: DicomOutputOptions | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
) -> PacsEditRequest:
    """Everything that can be checked without the network: UIDs, masks, the DICOM options, the local output."""
    study_uid = check_uid(study, "--study")
    select = check_uid(select, "--select")
    edit_ref = parse_mask_ref(edit_mask, name="--edit-mask", allow_study=True)
    keep_ref = parse_mask_ref(keep_mask, name="--keep-mask", allow_study=True)
    for option, ref in (("--edit-mask", edit_ref), ("--keep-mask", keep_ref)):
        if ref is not None and ref.path is not None and not ref.path.exists():
            raise InputError(ref.path, "file does not exist")
    if edit_ref is None and not global_edit:
        raise ConfigError("give --edit-mask, or --global-edit to edit the whole image")
    if edit_ref is not None and global_edit:
        raise ConfigError("--edit-mask and --global-edit exclude each other")
    dicom = dicom or DicomOutputOptions()  # checked when it was made (DicomOutputOptions.__post_init__)
    if output is not None:
        output = output_path(output, "--output")
        check_writable(output, overwrite, folder=True)
        check_writable(sidecar_path(output), overwrite, folder=False)
        if overwrite:  # the local copy is written with radedit's marker: only such a folder is replaced
            check_replaceable_folder(output)
    return PacsEditRequest(server, study_uid, select, edit_ref, keep_ref, settings, dicom, output, overwrite)


@dataclass
class PacsEditResult:
    """The stored derived series: its SeriesInstanceUID, every stored instance, the edit."""

    new_series: str
    stored: list[str]
    result: Any
    provenance: dict[str, Any]


def pacs_edit(request: PacsEditRequest, load_editor: Callable[[], Any]) -> PacsEditResult:
    """Fetch the study, pick the image, edit it, write the derived series, store it and verify it.

    ``load_editor()`` is called once the study is fetched and the image and
    masks are read (so that a missing study or a bad mask is reported before
    the model loads). Nothing is left locally unless ``request.output`` is set.
    """
    server, study_uid = request.server, request.study_uid
    with tempfile.TemporaryDirectory(prefix="radedit-pacs-") as tmp_name:
        tmp = Path(tmp_name)
        study = find_study(server, study_uid)
        entries = index_instances(fetch_study(server, study_uid, tmp / "study", study.series))
        chosen = pick_image(server, study_uid, entries, request.select)
        with _remote_names(server, study_uid, chosen):
            # The study folder, not the file: the reader notes the study's
            # SeriesNumbers so that the derived series gets a free one.
            image = read_dicom_image(tmp / "study", select=chosen.sop_instance_uid)
        # Series that were not fetched count too.
        numbers = set(image.metadata.get("study_series_numbers", []))
        image.metadata["study_series_numbers"] = sorted(numbers | {s.number for s in study.series if s.number is not None})
        # a series number the study uses is refused before the model loads (the writer checks again)
        source_number = image.metadata["dataset"].get("SeriesNumber")
        choose_series_number([*image.metadata["study_series_numbers"], *([source_number] if source_number else [])],
                             request.dicom.series_number, cli_name)  # fmt: skip
        soft = request.settings.soft_masks
        edit = _read_mask(server, study_uid, request.edit_ref, image, entries, soft)
        keep = _read_mask(server, study_uid, request.keep_ref, image, entries, soft)

        editor = load_editor()
        result = editor.edit(image, edit, keep, request.settings, mask_paths=(request.edit_ref, request.keep_ref))
        warn_notes(result.notes, f"{server} study {study_uid}")
        source_ref = f"{server} study {study_uid} series {chosen.series_uid} instance {chosen.sop_instance_uid}"
        provenance = dict(result.provenance)
        provenance["input"] = {**provenance["input"], "path": source_ref}
        result.provenance = provenance

        d = request.dicom
        series = write_derived_series(
            result, tmp / "derived", uid_root=d.uid_root, series_number=d.series_number,
            series_description=d.series_description, write_seg=d.write_seg, name=cli_name,
        )  # fmt: skip
        new = index_instances(series.files)
        strays = sorted({e.study_uid for e in new} - {study_uid})
        if strays:
            raise OutputError(f"derived series would land in study {strays[0]}, not in {study_uid}; nothing was stored")
        new_series = series.series_instance_uid

        stored = store_instances(server, [e.path for e in new])
        for series_uid in dict.fromkeys(e.series_uid for e in new):
            listed = {i.sop_uid for i in find_instances(server, study_uid, series_uid)}
            missing = [e.sop_instance_uid for e in new if e.series_uid == series_uid and e.sop_instance_uid not in listed]
            if missing:
                raise PacsError(
                    server, f"stored series {series_uid} but the server does not list instance(s) {', '.join(missing)}"
                )

        provenance["dicom"] = series.to_dict()
        provenance["pacs"] = {
            "server": str(server),
            "protocol": server.protocol,
            "study": study_uid,
            "patient_id": study.patient_id,
            "source_series": chosen.series_uid,
            "source_instance": chosen.sop_instance_uid,
            "new_series": sorted(dict.fromkeys(e.series_uid for e in new)),
            "stored_instances": stored,
        }
        if request.output is not None:
            output = request.output
            with OutputGroup() as group:
                with group.directory(output, request.overwrite) as part:
                    for e in new:
                        shutil.copy2(e.path, part / e.path.name)
                provenance["output"] = {"path": str(output), "format": "dicom"}
                group.json(sidecar_path(output), provenance, request.overwrite)
    return PacsEditResult(new_series, stored, result, provenance)


__all__ = [
    "PacsEditRequest",
    "PacsEditResult",
    "check_uid",
    "index_instances",
    "pacs_edit",
    "pick_image",
    "prepare_pacs_edit",
]
