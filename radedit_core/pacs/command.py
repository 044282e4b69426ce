"""``radedit pacs-edit``: fetch a study, edit one image, write the derived series, store it, verify."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..errors import ConfigError, InputError, OutputError, PacsError
from .operations import fetch_study, find_instances, find_study, store_instances
from .server import IMAGE_SOP_CLASSES, SEGMENTATION, _UID_RE, PacsServer, _int, _text

log = logging.getLogger("radedit")


@dataclass(frozen=True)
class FetchedInstance:
    """The header facts of one fetched file that choosing an image needs."""

    path: Path
    sop_uid: str
    sop_class_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    study_uid: str

    def describe(self) -> str:
        number = "" if self.series_number is None else f" {self.series_number}"
        desc = f" '{self.series_description}'" if self.series_description else ""
        return f"series{number}{desc} {self.series_uid} instance {self.sop_uid} ({self.modality or '?'})"


def index_instances(paths: Iterable[Path]) -> list[FetchedInstance]:
    """Headers of fetched files (non-DICOM files are skipped with a warning)."""
    from pydicom import dcmread  # noqa: PLC0415
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    entries = []
    for path in paths:
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError) as exc:
            log.warning("skipping a retrieved file that is not DICOM (%s: %s)", path.name, exc)
            continue
        entries.append(
            FetchedInstance(
                path=path,
                sop_uid=_text(ds, "SOPInstanceUID"),
                sop_class_uid=_text(ds, "SOPClassUID"),
                series_uid=_text(ds, "SeriesInstanceUID"),
                series_number=_int(ds, "SeriesNumber"),
                series_description=_text(ds, "SeriesDescription"),
                modality=_text(ds, "Modality"),
                study_uid=_text(ds, "StudyInstanceUID"),
            )
        )
    return entries


def _listing(entries: Sequence[FetchedInstance]) -> str:
    from .dicom.sop import describe_instances  # noqa: PLC0415

    return describe_instances(sorted(entries, key=lambda e: (e.series_number is None, e.series_number or 0, e.sop_uid)))


def _contents(entries: Sequence[FetchedInstance]) -> str:
    from .dicom.sop import count_sop_classes  # noqa: PLC0415

    return count_sop_classes(e.sop_class_uid for e in entries)


def pick_image(server: PacsServer, study_uid: str, entries: Sequence[FetchedInstance], select: str | None) -> FetchedInstance:
    """The one editable image of a fetched study (``select``: SOP or series UID)."""
    images = [e for e in entries if e.sop_class_uid in IMAGE_SOP_CLASSES]
    where = f"study {study_uid}"
    if select is not None:
        matched = [e for e in entries if select in (e.sop_uid, e.series_uid)]
        if not matched:
            raise PacsError(
                server, f"{where}: no instance or series with UID {select} (editable images: "
                f"{_listing(images) if images else 'none'})"
            )
        chosen = [e for e in matched if e.sop_class_uid in IMAGE_SOP_CLASSES]
        if not chosen:
            raise PacsError(
                server, f"{where}: {select} holds {_contents(matched)}, not a CR, DX or secondary-capture "
                "image radedit can edit"
            )
        if len(chosen) > 1:
            raise PacsError(
                server, f"{where}: series {select} holds {len(chosen)} images; pass one SOPInstanceUID "
                f"with --select: {_listing(chosen)}"
            )
        return chosen[0]
    if not images:
        raise PacsError(
            server, f"{where} holds no CR, DX or secondary-capture image to edit (it holds {_contents(entries)})"
        )
    if len(images) > 1:
        raise PacsError(
            server, f"{where} holds {len(images)} images; choose one with --select SOPInstanceUID or "
            f"SeriesInstanceUID: {_listing(images)}"
        )
    return images[0]


@dataclass(frozen=True)
class _MaskSource:
    text: str
    path: Path | None = None
    series_uid: str | None = None
    label: str | None = None


def _parse_mask(value: str | None, option: str) -> _MaskSource | None:
    if value is None:
        return None
    if value.startswith("study:"):
        series, _, label = value[len("study:"):].partition(":")
        if not _UID_RE.match(series):
            raise ConfigError(f"{option} {value!r}: expected study:SEG_SERIES_UID[:segment label]")
        return _MaskSource(value, series_uid=series, label=label or None)
    path = Path(value)
    if not path.exists():
        raise InputError(path, "file does not exist")
    return _MaskSource(value, path=path)


def _read_mask(server: PacsServer, study_uid: str, source: _MaskSource | None, image, entries: Sequence[FetchedInstance]):
    if source is None:
        return None
    if source.path is not None:
        from .imaging.io import read_mask_array  # noqa: PLC0415

        return read_mask_array(source.path, image)
    segs = [e for e in entries if e.series_uid == source.series_uid]
    if not segs:
        raise PacsError(server, f"study {study_uid}: mask series {source.series_uid} is not in the study")
    segs = [e for e in segs if e.sop_class_uid == SEGMENTATION]
    if not segs:
        raise PacsError(server, f"study {study_uid}: mask series {source.series_uid} holds no DICOM SEG")
    if len(segs) > 1:
        raise PacsError(
            server, f"study {study_uid}: mask series {source.series_uid} holds {len(segs)} SEG instances; "
            "keep one per series"
        )
    from .dicom import read_dicom_mask  # noqa: PLC0415

    with _remote_names(server, study_uid, segs[0]):
        return read_dicom_mask(segs[0].path, image, select=source.label)


@contextlib.contextmanager
def _remote_names(server: PacsServer, study_uid: str, entry: FetchedInstance) -> Iterator[None]:
    """Errors about a fetched (temporary) file name the instance on the server instead."""
    try:
        yield
    except InputError as exc:
        where = f"{server} study {study_uid} instance {entry.sop_uid}"
        raise type(exc)(where, exc.problem) from exc


def _check_uid(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _UID_RE.match(value) or len(value) > 64:
        raise ConfigError(f"{option} {value!r} is not a DICOM UID (digits and dots, at most 64 characters)")
    return value


def _server_from_args(args) -> PacsServer:
    if args.pacs is not None:
        if not args.pacs.startswith("dimse://"):
            raise ConfigError(f"--pacs {args.pacs!r}: expected dimse://AET@host:port (use --dicomweb for URLs)")
        return PacsServer.parse(args.pacs, calling_aet=args.aet, timeout=args.timeout)
    if not args.dicomweb.startswith(("http://", "https://")):
        raise ConfigError(f"--dicomweb {args.dicomweb!r}: expected an http(s):// URL")
    return PacsServer(url=args.dicomweb, timeout=args.timeout)


def run_pacs_edit(args, make_editor: Callable, make_settings: Callable) -> int:
    """``radedit pacs-edit``: fetch, edit, write the derived series, store, verify, print its UID."""
    from .fileio import atomic_directory, check_writable, write_json  # noqa: PLC0415
    from .workflow import sidecar_path  # noqa: PLC0415

    # Everything that can be checked without the network is checked first.
    server = _server_from_args(args)
    study_uid = _check_uid(args.study, "--study")
    select = _check_uid(args.select, "--select")
    edit_src = _parse_mask(args.edit_mask, "--edit-mask")
    keep_src = _parse_mask(args.keep_mask, "--keep-mask")
    if edit_src is None and not args.global_edit:
        raise ConfigError("give --edit-mask, or --global-edit to edit the whole image")
    if edit_src is not None and args.global_edit:
        raise ConfigError("--edit-mask and --global-edit exclude each other")
    settings = make_settings(args)
    output: Path | None = args.output
    if output is not None:
        check_writable(output, args.overwrite)
        check_writable(sidecar_path(output), args.overwrite)

    with tempfile.TemporaryDirectory(prefix="radedit-pacs-") as tmp_name:
        tmp = Path(tmp_name)
        study = find_study(server, study_uid)
        entries = index_instances(fetch_study(server, study_uid, tmp / "study", study.series))
        chosen = pick_image(server, study_uid, entries, select)
        from .dicom import read_dicom_image, write_derived_series  # noqa: PLC0415

        with _remote_names(server, study_uid, chosen):
            # The study folder, not the file: the reader notes the study's
            # SeriesNumbers so that the derived series gets a free one.
            image = read_dicom_image(tmp / "study", select=chosen.sop_uid)
        # Series that were not fetched count too.
        numbers = set(image.metadata.get("study_series_numbers", []))
        image.metadata["study_series_numbers"] = sorted(numbers | {s.number for s in study.series if s.number is not None})
        edit = _read_mask(server, study_uid, edit_src, image, entries)
        keep = _read_mask(server, study_uid, keep_src, image, entries)

        editor = make_editor(args)
        editor.set_progress(not args.quiet)
        result = editor.edit(
            image, edit, keep, settings, mask_paths=(edit_src and edit_src.text, keep_src and keep_src.text)
        )
        source_ref = f"{server} study {study_uid} series {chosen.series_uid} instance {chosen.sop_uid}"
        result.provenance["input"]["path"] = source_ref

        written = [Path(p) for p in write_derived_series(
            result, tmp / "derived", uid_root=args.uid_root, series_number=args.series_number,
            series_description=args.series_description, write_seg=args.write_seg,
        )]
        new = index_instances(written)
        strays = sorted({e.study_uid for e in new} - {study_uid})
        if strays:
            raise OutputError(f"derived series would land in study {strays[0]}, not in {study_uid}; nothing was stored")
        image_series = [e.series_uid for e in new if e.sop_class_uid != SEGMENTATION]
        new_series = image_series[0] if image_series else new[0].series_uid

        stored = store_instances(server, [e.path for e in new])
        for series_uid in dict.fromkeys(e.series_uid for e in new):
            listed = {i.sop_uid for i in find_instances(server, study_uid, series_uid)}
            missing = [e.sop_uid for e in new if e.series_uid == series_uid and e.sop_uid not in listed]
            if missing:
                raise PacsError(
                    server, f"stored series {series_uid} but the server does not list instance(s) {', '.join(missing)}"
                )

        result.provenance["pacs"] = {
            "server": str(server),
            "protocol": server.protocol,
            "study": study_uid,
            "patient_id": study.patient_id,
            "source_series": chosen.series_uid,
            "source_instance": chosen.sop_uid,
            "new_series": sorted(dict.fromkeys(e.series_uid for e in new)),
            "stored_instances": stored,
        }
        if output is not None:
            with atomic_directory(output, overwrite=args.overwrite) as part:
                for e in new:
                    shutil.copy2(e.path, part / e.path.name)
            try:
                result.provenance["output"] = {"path": str(output)}
                write_json(sidecar_path(output), result.provenance, overwrite=args.overwrite)
            except Exception:
                shutil.rmtree(output, ignore_errors=True)
                raise

    if not args.quiet:
        print(
            f"stored {len(stored)} instance(s) as series {new_series} in study {study_uid} on {server} "
            f"({result.unet_evaluations} UNet evaluations, {result.timings['total']:.1f} s)",
            file=sys.stderr,
        )
    print(new_series)
    return 0
