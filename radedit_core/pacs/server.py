"""Where the studies live: a DIMSE peer or a DICOMweb service, and what a query returns."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..dicom.sop import EDITABLE_SOP_CLASSES, SEGMENTATION
from ..errors import ConfigError

DEFAULT_AET = "RADEDIT"
DEFAULT_TIMEOUT = 30.0

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

#: SOP classes of a single grayscale radiograph radedit can edit.
IMAGE_SOP_CLASSES = EDITABLE_SOP_CLASSES

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
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"timeout must be a finite number > 0 seconds, got {self.timeout}")
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
