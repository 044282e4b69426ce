"""The four PACS operations, the same over DIMSE and DICOMweb: find a study, list a series' instances,
fetch a study, store instances.  Every status is checked; failures are :class:`PacsError`s naming the server."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import InputError, PacsError
from .dicomweb import _web_retrieve, _web_search, _web_store
from .dimse import _dimse_find, _dimse_get, _dimse_store, _identifier
from .server import InstanceInfo, PacsServer, SeriesInfo, StudyInfo, _int, _text


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
