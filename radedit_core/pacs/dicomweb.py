"""DICOMweb transport (dicomweb-client): QIDO-RS, WADO-RS and STOW-RS, every HTTP answer checked."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Iterator

from ..errors import OutputError, PacsError
from .server import _UID_RE, PacsServer, _int, _text


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
