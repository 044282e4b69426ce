"""DIMSE transport (pynetdicom): C-FIND, C-GET (as storage SCP) and C-STORE, every status checked."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ConfigError, OutputError, PacsError
from .server import _UID_RE, RECEIVE_SOP_CLASSES, PacsServer, SeriesInfo, _int, _sop_name, _text

log = logging.getLogger("radedit")

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

_STORE_WARNINGS = {0xB000, 0xB006, 0xB007}


def _identifier(level: str, study_uid: str, series_uid: str | None = None, keys_only: bool = False):
    from pydicom.dataset import Dataset  # noqa: PLC0415

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = study_uid
    if keys_only:
        # A retrieve identifier holds unique keys only: Orthanc takes an empty
        # attribute as the key to look up and finds nothing.
        if series_uid is not None:
            ds.SeriesInstanceUID = series_uid
        return ds
    if level == "STUDY":
        for keyword in ("PatientID", "AccessionNumber", "StudyDate", "StudyDescription"):
            setattr(ds, keyword, "")
    elif level == "SERIES":
        for keyword in ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                        "NumberOfSeriesRelatedInstances"):
            setattr(ds, keyword, "")
    elif level == "IMAGE":
        ds.SeriesInstanceUID = series_uid or ""
        ds.SOPInstanceUID = ""
        ds.SOPClassUID = ""
    return ds


def _quiet_pynetdicom() -> None:
    # pynetdicom logs every refusal at ERROR level in its own words; the
    # PacsError we raise says the same once, naming the server.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


def _status_text(code: int, table: dict) -> str:
    category, text = table.get(code, ("Unknown", ""))
    return f"0x{code:04X} ({category}{': ' + text if text else ''})"


def _status_detail(status) -> str:
    comment = _text(status, "ErrorComment")
    return f", server says: {comment.strip()}" if comment.strip() else ""


def _no_answer(server: PacsServer, purpose: str, started: float) -> str:
    if time.monotonic() - started < 0.9 * server.timeout:
        return (
            f"{purpose}: the server aborted the association (does it know our AE title "
            f"'{server.calling_aet}' and allow it this operation?)"
        )
    return f"{purpose}: no answer within {server.timeout:g} s (connection lost or server too slow)"


def _connect_problem(server: PacsServer) -> str:
    """Why no association came up, in words (probing the port says which)."""
    try:
        with socket.create_connection((server.host, server.port), timeout=min(server.timeout, 10.0)):
            pass
    except socket.timeout:
        return f"cannot connect to {server.host}:{server.port} (no answer within {min(server.timeout, 10.0):g} s)"
    except OSError as exc:
        return f"cannot connect to {server.host}:{server.port} ({exc.strerror or exc})"
    return (
        f"{server.host}:{server.port} accepts connections but no DICOM association came up within "
        f"{server.timeout:g} s (is it a DICOM port?)"
    )


@contextlib.contextmanager
def _association(server: PacsServer, contexts: list, purpose: str, roles: list | None = None,
                 handlers: list | None = None) -> Iterator[Any]:
    from pynetdicom import AE, evt  # noqa: PLC0415
    from pynetdicom.pdu import A_ASSOCIATE_RJ  # noqa: PLC0415

    _quiet_pynetdicom()
    # pynetdicom 3.0 decodes a peer's A-ASSOCIATE-RJ but, when the peer closes the
    # connection right after it (DCMTK and Orthanc do), may find the socket closed
    # before it reads the answer and report an abort instead (about 1 in 20 tries
    # against Orthanc).  The PDU seen on the wire says what really happened.
    rejections: list = []

    def on_pdu(event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu.to_primitive())

    ae = AE(ae_title=server.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    ae.connection_timeout = server.timeout
    ae.requested_contexts = contexts
    try:
        # pynetdicom resolves the host name itself and lets socket.gaierror through
        socket.getaddrinfo(server.host, int(server.port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise PacsError(server, f"{purpose}: cannot resolve host name {server.host!r} ({exc.strerror or exc})") from None
    assoc = ae.associate(
        server.host, int(server.port), ae_title=server.called_aet, ext_neg=roles or None,
        evt_handlers=[*(handlers or []), (evt.EVT_PDU_RECV, on_pdu)],
    )
    if not assoc.is_established:
        if assoc.is_rejected or rejections:
            rj = rejections[0] if rejections else assoc.acceptor.primitive
            detail = f"{rj.result_str}, {rj.source_str}: {rj.reason_str}" if rj is not None else "no reason given"
            raise PacsError(
                server,
                f"{purpose}: association rejected ({detail}); check the server's AE title "
                f"'{server.called_aet}' and that it knows our AE title '{server.calling_aet}'",
            )
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            names = sorted({_sop_name(cx.abstract_syntax) for cx in assoc.rejected_contexts})
            raise PacsError(server, f"{purpose}: the server accepts none of the proposed services ({', '.join(names)})")
        raise PacsError(server, f"{purpose}: {_connect_problem(server)}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _dimse_find(server: PacsServer, identifier, purpose: str) -> list:
    from pynetdicom import build_context  # noqa: PLC0415
    from pynetdicom.status import QR_FIND_SERVICE_CLASS_STATUS  # noqa: PLC0415

    matches = []
    started = time.monotonic()
    with _association(server, [build_context(STUDY_ROOT_FIND)], purpose) as assoc:
        if not assoc.accepted_contexts:
            raise PacsError(server, f"{purpose}: the server does not offer Study Root C-FIND")
        for status, found in assoc.send_c_find(identifier, STUDY_ROOT_FIND):
            code = status.get("Status") if status else None
            if code is None:
                raise PacsError(server, _no_answer(server, purpose, started))
            if code in (0xFF00, 0xFF01):
                if found is not None:
                    matches.append(found)
            elif code == 0x0000:
                break
            else:
                raise PacsError(
                    server, f"{purpose} failed with status {_status_text(code, QR_FIND_SERVICE_CLASS_STATUS)}"
                    f"{_status_detail(status)}"
                )
    return matches


def _dimse_get(server: PacsServer, study_uid: str, dest: Path, series: Sequence[SeriesInfo]) -> list[Path]:
    from pynetdicom import build_context, build_role, evt  # noqa: PLC0415
    from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS  # noqa: PLC0415

    purpose = f"C-GET of study {study_uid}"
    received: list[Path] = []
    write_errors: list[str] = []

    def on_store(event) -> int:
        sop = str(event.request.AffectedSOPInstanceUID or "")
        name = f"{sop}.dcm" if _UID_RE.match(sop) else f"instance_{len(received) + len(write_errors):05d}.dcm"
        path = dest / name
        try:
            path.write_bytes(event.encoded_dataset())
        except OSError as exc:
            write_errors.append(f"{path}: {exc.strerror or exc}")
            return 0xA700
        received.append(path)
        return 0x0000

    contexts = [build_context(STUDY_ROOT_GET)]
    contexts += [build_context(uid, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]) for uid in RECEIVE_SOP_CLASSES]
    roles = [build_role(uid, scp_role=True) for uid in RECEIVE_SOP_CLASSES]
    problems: list[str] = []
    with _association(server, contexts, purpose, roles, [(evt.EVT_C_STORE, on_store)]) as assoc:
        if not any(cx.abstract_syntax == STUDY_ROOT_GET for cx in assoc.accepted_contexts):
            raise PacsError(server, f"{purpose}: the server does not offer Study Root C-GET")
        # Series by series: Orthanc (and others) abandon a whole C-GET at the
        # first instance of a SOP class we take no storage role for, so one
        # odd series (a PDF, an ultrasound clip) must not cost the radiograph.
        for info in series:
            what = f"series {info.series_uid}" + (f" ({info.modality})" if info.modality else "")
            ident = _identifier("SERIES", study_uid, info.series_uid, keys_only=True)
            final = None
            started = time.monotonic()
            for status, _ in assoc.send_c_get(ident, STUDY_ROOT_GET):
                code = status.get("Status") if status else None
                if code is None:
                    raise PacsError(server, _no_answer(server, f"{purpose}, {what}", started))
                if code != 0xFF00:
                    final = status
            if write_errors:
                raise OutputError(f"{purpose}: could not save a received instance: {write_errors[0]}")
            code = None if final is None else int(final.Status)
            failed = _int(final, "NumberOfFailedSuboperations") or 0
            if code is None:
                problems.append(f"{what}: no final status")
            elif code == 0xB000 or (code == 0x0000 and failed):
                problems.append(f"{what}: {failed} instance(s) not sent")
            elif code != 0x0000:
                problems.append(
                    f"{what}: status {_status_text(code, QR_GET_SERVICE_CLASS_STATUS)}{_status_detail(final)}"
                )
    if problems and not received:
        raise PacsError(server, f"{purpose} retrieved nothing: {'; '.join(problems)}")
    if problems:
        # What did arrive may well hold the image; pick_image says if not.
        log.warning("%s: %s: not everything was retrieved (%s)", server, purpose, "; ".join(problems))
    return received


def _dimse_store(server: PacsServer, datasets: list) -> list[str]:
    from pynetdicom import build_context  # noqa: PLC0415
    from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS  # noqa: PLC0415

    wanted: dict[tuple[str, str], None] = {}
    for _, ds in datasets:
        wanted[(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))] = None
    contexts = [build_context(sop, [ts]) for sop, ts in wanted]
    if len(contexts) > 128:
        raise ConfigError(f"{len(contexts)} SOP class/transfer syntax pairs exceed the 128 of one association")
    stored: list[str] = []
    purpose = f"C-STORE of {len(datasets)} instance(s)"
    with _association(server, contexts, purpose) as assoc:
        accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
        # Refuse up front rather than after storing half a series.
        for path, ds in datasets:
            key = (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
            if key not in accepted:
                raise PacsError(
                    server, f"{purpose}: the server does not accept {_sop_name(key[0])} in transfer syntax "
                    f"{_sop_name(key[1])} ({path.name}); nothing was stored"
                )
        for path, ds in datasets:
            started = time.monotonic()
            status = assoc.send_c_store(ds)
            code = status.get("Status") if status else None
            done = f"{len(stored)} of {len(datasets)} instance(s) were stored before it"
            if code is None:
                raise PacsError(server, f"{_no_answer(server, f'C-STORE of {ds.SOPInstanceUID} ({path.name})', started)}; {done}")
            if code in _STORE_WARNINGS:
                log.warning("%s: C-STORE of %s: warning %s", server, ds.SOPInstanceUID,
                            _status_text(code, STORAGE_SERVICE_CLASS_STATUS))
            elif code != 0x0000:
                raise PacsError(
                    server, f"C-STORE of {ds.SOPInstanceUID} ({path.name}) failed with status "
                    f"{_status_text(code, STORAGE_SERVICE_CLASS_STATUS)}{_status_detail(status)}; {done}"
                )
            stored.append(str(ds.SOPInstanceUID))
    return stored
