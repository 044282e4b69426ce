"""PACS round trips: find, fetch and store studies over DIMSE or DICOMweb.

A :class:`PacsServer` describes either a DIMSE peer (host, port, called and
calling AE titles) or a DICOMweb service (base URL).  The same four functions
work with both:

- :func:`find_study` (C-FIND / QIDO-RS): the study and its series, or a
  :class:`~radedit_core.errors.PacsError` when the server does not hold it;
- :func:`find_instances` (C-FIND / QIDO-RS): the instances of a series;
- :func:`fetch_study` (C-GET / WADO-RS): every instance of a study into a folder;
- :func:`store_instances` (C-STORE / STOW-RS): a folder's instances to the server.

Every DIMSE status and HTTP answer is checked; a failure is a ``PacsError``
that names the server and says what went wrong in words.  ``radedit
pacs-edit`` (:func:`run_pacs_edit`) chains them: fetch a study into a
temporary folder, edit one image, write the derived series, store it, verify
the server lists it, and print its SeriesInstanceUID.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

from .errors import ConfigError, InputError, OutputError, PacsError

log = logging.getLogger("radedit")

DEFAULT_AET = "RADEDIT"
DEFAULT_TIMEOUT = 30.0

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

# SOP classes (by UID) that hold a single grayscale radiograph radedit can edit.
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MF_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
MF_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
IMAGE_SOP_CLASSES = frozenset(
    {
        COMPUTED_RADIOGRAPHY,
        DX_FOR_PRESENTATION,
        DX_FOR_PROCESSING,
        SECONDARY_CAPTURE,
        MF_GRAYSCALE_BYTE_SC,
        MF_GRAYSCALE_WORD_SC,
    }
)

# What a chest X-ray study typically holds besides the images: masks, display
# states, reports and key-image notes.  C-GET can only deliver instances whose
# SOP class we take the storage SCP role for, so this list is the limit of what
# a fetch brings back.
RECEIVE_SOP_CLASSES = (
    *sorted(IMAGE_SOP_CLASSES),
    SEGMENTATION,
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
)
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

_STORE_WARNINGS = {0xB000, 0xB006, 0xB007}


# -- server description ---------------------------------------------------------------


def _check_aet(value: str, what: str) -> str:
    if not value or len(value) > 16 or "\\" in value or not value.isprintable() or value.strip() != value:
        raise ConfigError(f"{what} {value!r}: an AE title has 1 to 16 printable characters, no backslash")
    return value


@dataclass(frozen=True)
class PacsServer:
    """Where the studies live: a DIMSE peer or a DICOMweb service.

    DIMSE: ``host``, ``port``, ``called_aet`` (the server's AE title) and
    ``calling_aet`` (ours, which the server must know for C-FIND/C-GET).
    DICOMweb: ``url``, the service root (``http://host:8042/dicom-web``).
    ``timeout`` bounds every connection attempt and every wait for an answer.
    """

    host: str | None = None
    port: int | None = None
    called_aet: str | None = None
    calling_aet: str = DEFAULT_AET
    url: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.url is not None:
            if self.host is not None or self.port is not None or self.called_aet is not None:
                raise ConfigError("a PACS is either DIMSE (host, port, AE title) or DICOMweb (URL), not both")
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"DICOMweb URL {self.url!r}: expected http(s)://host[:port]/path")
            object.__setattr__(self, "url", self.url.rstrip("/"))
            return
        if not self.host or self.port is None or self.called_aet is None:
            raise ConfigError("a DIMSE PACS needs a host, a port and the server's AE title")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"DIMSE port {self.port} is out of range 1..65535")
        _check_aet(self.called_aet, "server AE title")
        _check_aet(self.calling_aet, "our AE title (--aet)")

    @classmethod
    def parse(cls, spec: str, *, calling_aet: str = DEFAULT_AET, timeout: float = DEFAULT_TIMEOUT) -> "PacsServer":
        """``dimse://AET@host:port`` or ``http(s)://host:port/dicom-web``."""
        parts = urlsplit(spec.strip())
        if parts.scheme in ("http", "https"):
            return cls(url=spec.strip(), timeout=timeout)
        if parts.scheme != "dimse":
            raise ConfigError(
                f"PACS address {spec!r}: expected dimse://AET@host:port or a DICOMweb http(s):// URL"
            )
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.username or not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ConfigError(f"PACS address {spec!r}: expected dimse://AET@host:port (e.g. dimse://ORTHANC@127.0.0.1:4242)")
        return cls(host=parts.hostname, port=port, called_aet=parts.username, calling_aet=calling_aet, timeout=timeout)

    @property
    def protocol(self) -> str:
        return "dicomweb" if self.url is not None else "dimse"

    def __str__(self) -> str:
        if self.url is not None:
            return self.url
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"dimse://{self.called_aet}@{host}:{self.port}"


@dataclass(frozen=True)
class SeriesInfo:
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    instances: int | None = None


@dataclass(frozen=True)
class StudyInfo:
    study_uid: str
    patient_id: str = ""
    accession_number: str = ""
    study_date: str = ""
    description: str = ""
    series: tuple[SeriesInfo, ...] = ()


@dataclass(frozen=True)
class InstanceInfo:
    sop_uid: str
    sop_class_uid: str
    series_uid: str


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "") if ds is not None else ""
    return "" if value is None else str(value)


def _int(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword) if ds is not None else None
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _sop_name(uid: str) -> str:
    from pydicom.uid import UID  # noqa: PLC0415

    name = UID(uid).name
    return name if name and name != uid else f"SOP class {uid}"


# -- public API ---------------------------------------------------------------------


def find_study(server: PacsServer, study_uid: str) -> StudyInfo:
    """The study and its series; ``PacsError`` if the server does not hold it."""
    if server.protocol == "dimse":
        studies = _dimse_find(server, _identifier("STUDY", study_uid), f"C-FIND of study {study_uid}")
        series = _dimse_find(server, _identifier("SERIES", study_uid), f"C-FIND of the series of study {study_uid}")
    else:
        studies = _web_search(server, "search_for_studies", f"QIDO-RS search for study {study_uid}",
                              search_filters={"StudyInstanceUID": study_uid})
        series = (
            _web_search(server, "search_for_series", f"QIDO-RS search for the series of study {study_uid}",
                        study_instance_uid=study_uid)
            if studies
            else []
        )
    studies = [s for s in studies if _text(s, "StudyInstanceUID") == study_uid]
    if not studies:
        raise PacsError(server, f"study {study_uid} not found (the server holds no study with this StudyInstanceUID)")
    st = studies[0]
    return StudyInfo(
        study_uid=study_uid,
        patient_id=_text(st, "PatientID"),
        accession_number=_text(st, "AccessionNumber"),
        study_date=_text(st, "StudyDate"),
        description=_text(st, "StudyDescription"),
        series=tuple(
            SeriesInfo(
                series_uid=_text(s, "SeriesInstanceUID"),
                modality=_text(s, "Modality"),
                number=_int(s, "SeriesNumber"),
                description=_text(s, "SeriesDescription"),
                instances=_int(s, "NumberOfSeriesRelatedInstances"),
            )
            for s in series
            if _text(s, "SeriesInstanceUID")
        ),
    )


def find_instances(server: PacsServer, study_uid: str, series_uid: str) -> list[InstanceInfo]:
    """The instances the server lists in one series (empty if none)."""
    if server.protocol == "dimse":
        ident = _identifier("IMAGE", study_uid, series_uid)
        found = _dimse_find(server, ident, f"C-FIND of the instances of series {series_uid}")
    else:
        found = _web_search(
            server, "search_for_instances", f"QIDO-RS search for the instances of series {series_uid}",
            study_instance_uid=study_uid, series_instance_uid=series_uid, fields=["SOPClassUID"],
        )
    return [
        InstanceInfo(_text(d, "SOPInstanceUID"), _text(d, "SOPClassUID"), _text(d, "SeriesInstanceUID") or series_uid)
        for d in found
        if _text(d, "SOPInstanceUID")
    ]


def fetch_study(
    server: PacsServer, study_uid: str, dest: str | Path, series: Sequence[SeriesInfo] | None = None
) -> list[Path]:
    """Retrieve the instances of a study into ``dest`` (created; must not exist).

    ``series`` (from :func:`find_study`; queried when not given) are the
    series to fetch; over DIMSE each is a C-GET of its own.  Files are named
    ``<SOPInstanceUID>.dcm``.  A series the server could not send is a
    warning; getting nothing at all is a ``PacsError``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    if server.protocol == "dimse":
        if series is None:
            series = find_study(server, study_uid).series
        paths = _dimse_get(server, study_uid, dest, series)
    elif series is None:
        paths = _web_retrieve(server, study_uid, dest)
    else:
        paths = [p for info in series for p in _web_retrieve(server, study_uid, dest, info.series_uid)]
    if not paths:
        raise PacsError(server, f"study {study_uid}: the server returned no instances")
    return paths


def store_instances(server: PacsServer, paths: Sequence[str | Path]) -> list[str]:
    """Send DICOM files to the server; returns their SOPInstanceUIDs.

    Every file is read and every transfer checked; a failure names the
    instance, the status and how many instances were already stored.
    """
    from pydicom import dcmread  # noqa: PLC0415
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    datasets = []
    for path in map(Path, paths):
        try:
            ds = dcmread(path)
        except (InvalidDicomError, OSError) as exc:
            raise InputError(path, f"cannot be read as DICOM ({exc})") from exc
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if not _text(ds, keyword):
                raise InputError(path, f"has no {keyword}; not a storable DICOM instance")
        if not _text(getattr(ds, "file_meta", None), "TransferSyntaxUID"):
            raise InputError(path, "has no file meta information (TransferSyntaxUID); write it as a DICOM file")
        datasets.append((path, ds))
    if not datasets:
        return []
    if server.protocol == "dimse":
        return _dimse_store(server, datasets)
    return _web_store(server, datasets)


# -- DIMSE --------------------------------------------------------------------------


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
    from pynetdicom import AE  # noqa: PLC0415

    _quiet_pynetdicom()
    ae = AE(ae_title=server.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    ae.connection_timeout = server.timeout
    ae.requested_contexts = contexts
    assoc = ae.associate(
        server.host, int(server.port), ae_title=server.called_aet, ext_neg=roles or None,
        evt_handlers=handlers or None,
    )
    if not assoc.is_established:
        if assoc.is_rejected:
            rj = assoc.acceptor.primitive
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


# -- DICOMweb -----------------------------------------------------------------------


def _web_client(server: PacsServer):
    from dicomweb_client.api import DICOMwebClient  # noqa: PLC0415

    client = DICOMwebClient(url=server.url, timeout=server.timeout)
    # Its default retries every failure with exponential back-off (30 s for a
    # refused connection); one attempt bounded by the timeout is clearer.
    client.set_http_retry_params(retry=False)
    # ... and the retry library still logs each failed attempt with a traceback,
    # which would bury the one-line PacsError.
    logging.getLogger("retrying").setLevel(logging.CRITICAL)
    return client


def _http_reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if match:
        return match.group(0).strip()
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return type(exc).__name__


@contextlib.contextmanager
def _web_errors(server: PacsServer, purpose: str) -> Iterator[None]:
    import requests  # noqa: PLC0415
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    try:
        yield
    except requests.exceptions.Timeout as exc:
        raise PacsError(server, f"{purpose}: no answer within {server.timeout:g} s") from exc
    except requests.exceptions.ConnectionError as exc:
        raise PacsError(server, f"{purpose}: cannot connect ({_http_reason(exc)})") from exc
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        code = getattr(response, "status_code", "?")
        reason = getattr(response, "reason", "") or ""
        hint = {401: "; the server wants credentials", 403: "; access refused",
                404: "; check the DICOMweb root URL (e.g. http://host:8042/dicom-web) and the UIDs"}.get(code, "")
        detail = _stow_failures(response) if response is not None else ""
        raise PacsError(server, f"{purpose}: HTTP {code} {reason}{hint}{detail}") from exc
    except requests.exceptions.RequestException as exc:
        raise PacsError(server, f"{purpose}: {_http_reason(exc)}") from exc
    except (InvalidDicomError, ValueError, KeyError) as exc:
        raise PacsError(server, f"{purpose}: unexpected answer ({exc})") from exc


def _web_search(server: PacsServer, method: str, purpose: str, **kwargs) -> list:
    from pydicom.dataset import Dataset  # noqa: PLC0415

    with _web_errors(server, purpose):
        found = getattr(_web_client(server), method)(**kwargs)
        return [Dataset.from_json(item) for item in found or []]


def _web_retrieve(server: PacsServer, study_uid: str, dest: Path, series_uid: str | None = None) -> list[Path]:
    paths: list[Path] = []
    what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
    with _web_errors(server, f"WADO-RS retrieval of {what}"):
        client = _web_client(server)
        found = client.iter_study(study_uid) if series_uid is None else client.iter_series(study_uid, series_uid)
        for ds in found:
            sop = _text(ds, "SOPInstanceUID")
            path = dest / (f"{sop}.dcm" if _UID_RE.match(sop) else f"instance_{len(list(dest.iterdir())):05d}.dcm")
            try:
                ds.save_as(path, enforce_file_format=True)
            except OSError as exc:
                raise OutputError(f"{path}: cannot save a retrieved instance ({exc.strerror or exc})") from exc
            paths.append(path)
    return paths


def _stow_failures(response) -> str:
    """The FailedSOPSequence of a STOW-RS answer, in words ('' if none)."""
    from pydicom.dataset import Dataset  # noqa: PLC0415

    try:
        body = Dataset.from_json(response.json())
    except Exception:  # noqa: BLE001 - any unparsable body just means no detail
        return ""
    return _failed_sop_text(body)


def _failed_sop_text(body) -> str:
    failed = body.get("FailedSOPSequence") or []
    items = [f"{_text(it, 'ReferencedSOPInstanceUID')} (reason 0x{_int(it, 'FailureReason') or 0:04X})" for it in failed]
    return f"; failed instance(s): {', '.join(items)}" if items else ""


def _web_store(server: PacsServer, datasets: list) -> list[str]:
    study_uids = {_text(ds, "StudyInstanceUID") for _, ds in datasets}
    purpose = f"STOW-RS of {len(datasets)} instance(s)"
    with _web_errors(server, purpose):
        body = _web_client(server).store_instances(
            [ds for _, ds in datasets], study_instance_uid=study_uids.pop() if len(study_uids) == 1 else None
        )
    failures = _failed_sop_text(body) if body is not None else ""
    if failures:
        raise PacsError(server, f"{purpose} failed{failures}")
    referenced = {_text(it, "ReferencedSOPInstanceUID") for it in (body.get("ReferencedSOPSequence") or [])} \
        if body is not None else set()
    missing = [_text(ds, "SOPInstanceUID") for _, ds in datasets if _text(ds, "SOPInstanceUID") not in referenced]
    if missing:
        raise PacsError(server, f"{purpose}: the server did not confirm instance(s) {', '.join(missing)}")
    return [_text(ds, "SOPInstanceUID") for _, ds in datasets]


# -- the pacs-edit command ----------------------------------------------------------


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


def add_pacs_parser(sub, add_edit_options, add_model_options) -> None:
    """Register ``radedit pacs-edit`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "pacs-edit",
        help="fetch a study from a PACS, edit one image, store the result as a new series",
        description=(
            "Fetch a study (C-GET or WADO-RS), edit one chest X-ray, write the edit as a new derived "
            "series of the same study and store it (C-STORE or STOW-RS). Prints the new SeriesInstanceUID. "
            "Nothing is left behind locally unless --output is given; on any error nothing is."
        ),
    )
    g = p.add_argument_group("PACS")
    where = g.add_mutually_exclusive_group(required=True)
    where.add_argument("--pacs", metavar="dimse://AET@HOST:PORT", help="DIMSE peer: C-FIND, C-GET, C-STORE")
    where.add_argument("--dicomweb", metavar="URL", help="DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
    g.add_argument("--aet", default=DEFAULT_AET, metavar="AET", help="our AE title (the PACS must know it) [default: %(default)s]")
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help="seconds to wait for a connection or an answer [default: %(default)s]")
    g.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID of the study to edit")
    g.add_argument("--select", metavar="UID",
                   help="SOPInstanceUID or SeriesInstanceUID of the image, when the study holds several")
    m = p.add_argument_group("masks")
    m.add_argument("--edit-mask", metavar="MASK",
                   help="where to edit: a PNG/NIfTI/NRRD/DICOM SEG file, or study:SEG_SERIES_UID[:segment label]")
    m.add_argument("--global-edit", action="store_true", help="no edit mask: edit everywhere (LANCE-style)")
    m.add_argument("--keep-mask", metavar="MASK", help="what must not change; same forms as --edit-mask")
    o = p.add_argument_group("derived series")
    o.add_argument("--series-description", metavar="TEXT", help="SeriesDescription of the new series [default: 'RadEdit: <first prompt>']")
    o.add_argument("--series-number", type=int, metavar="N", help="SeriesNumber of the new series [default: above the study's, >= 1000]")
    o.add_argument("--uid-root", metavar="ROOT", help="UID root for the new UIDs [default: pydicom's]")
    o.add_argument("--write-seg", action="store_true", help="also store the masks as a DICOM SEG")
    o.add_argument("--output", type=Path, metavar="DIR", help="also keep the stored series in this local folder (+ .json sidecar)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_edit_options(p)
    add_model_options(p)


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


__all__ = [
    "DEFAULT_AET",
    "FetchedInstance",
    "IMAGE_SOP_CLASSES",
    "InstanceInfo",
    "PacsServer",
    "SeriesInfo",
    "StudyInfo",
    "add_pacs_parser",
    "fetch_study",
    "find_instances",
    "find_study",
    "index_instances",
    "pick_image",
    "run_pacs_edit",
    "store_instances",
]
