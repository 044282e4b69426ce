"""A throw-away Orthanc PACS for tests: loopback only, temporary storage.

``run_orthanc(folder)`` starts Debian's ``Orthanc`` with a generated JSON
configuration (free loopback ports, storage and index in ``folder``, no
authentication, the DICOMweb plugin, our SCU AE titles registered as
modalities), waits until both its REST API and its DICOM port answer, and
stops it (terminate, then kill) on exit.  The ``orthanc`` fixture wraps it for
a whole test session.  A missing Orthanc is a test failure, not a skip: CI
installs it (``scripts/install_system_packages.sh``).

Three AE titles are registered for our side: ``RADEDIT`` may do everything;
``RADEDIT-RO`` may query and retrieve, but a Lua filter makes Orthanc refuse
its C-STOREs (status 0xA700); ``RADEDIT-NOGET`` is known but may neither query
nor retrieve (Orthanc aborts such associations); any other AE title is
rejected at association.  The filter also refuses instances whose
SeriesDescription is ``REJECT-ME`` and silently drops those with ``DROP-ME``
(over any protocol), so tests can provoke real store failures over DICOMweb.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

ORTHANC_BIN = os.environ.get("RADEDIT_TEST_ORTHANC") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path(os.environ.get("RADEDIT_TEST_ORTHANC_DICOMWEB", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"))
SERVER_AET = "ORTHANC_TEST"
SCU_AET = "RADEDIT"
READONLY_AET = "RADEDIT-RO"
NOGET_AET = "RADEDIT-NOGET"
REJECTED_DESCRIPTION = "REJECT-ME"
DROPPED_DESCRIPTION = "DROP-ME"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 20.0

# An error raised in ReceivedInstanceFilter makes Orthanc answer a C-STORE with
# 0xA700 (Refused: Out of Resources), what a full archive answers, and a
# STOW-RS with neither success nor failure for the instance.  Returning false
# drops the instance although C-STORE and STOW-RS report it stored: the silent
# loss a client only catches by querying afterwards.  (Orthanc 1.10's
# ReceivedCStoreInstanceFilter would be the direct way, but what its return
# value means changed between releases.)
_LUA_FILTER = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if origin["RequestOrigin"] == "DicomProtocol" and origin["RemoteAet"] == "{READONLY_AET}" then
    error("{READONLY_AET} may not store")
  end
  if dicom["SeriesDescription"] == "{REJECTED_DESCRIPTION}" then
    error("series refused by the test filter")
  end
  return dicom["SeriesDescription"] ~= "{DROPPED_DESCRIPTION}"
end
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class OrthancHandle:
    """A running Orthanc: where to reach it and a few REST helpers."""

    url: str  # REST root, http://127.0.0.1:PORT
    dicom_port: int
    aet: str
    folder: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def dimse(self, called_aet: str | None = None) -> str:
        return f"dimse://{called_aet or self.aet}@{LOOPBACK}:{self.dicom_port}"

    # -- REST ------------------------------------------------------------------------
    def request(self, method: str, path: str, data: bytes | None = None,
                content_type: str = "application/json") -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as rsp:  # noqa: S310 - loopback only
            return rsp.read()

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", path))

    def upload(self, data: bytes) -> dict:
        """POST one DICOM file to /instances; returns Orthanc's answer (ID, Status, ...)."""
        return json.loads(self.request("POST", "/instances", data, "application/dicom"))

    def lookup(self, uid: str, level: str) -> str | None:
        """Orthanc's ID of the study/series/instance with this DICOM UID (None if absent)."""
        found = json.loads(self.request("POST", "/tools/lookup", uid.encode(), "text/plain"))
        ids = [f["ID"] for f in found if f["Type"].lower() == level.lower()]
        return ids[0] if ids else None

    def study(self, study_uid: str) -> dict | None:
        oid = self.lookup(study_uid, "Study")
        return None if oid is None else self.get(f"/studies/{oid}")

    def series_of_study(self, study_uid: str) -> list[dict]:
        """Each series of the study with its MainDicomTags and Instances (IDs)."""
        study = self.study(study_uid)
        return [] if study is None else [self.get(f"/series/{sid}") for sid in study["Series"]]

    def instance_tags(self, instance_id: str) -> dict:
        return self.get(f"/instances/{instance_id}/simplified-tags")

    def instance_file(self, instance_id: str) -> bytes:
        return self.request("GET", f"/instances/{instance_id}/file")

    def instance_count(self) -> int:
        return len(self.get("/instances"))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _config(folder: Path, http_port: int, dicom_port: int) -> dict:
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lua = folder / "filter.lua"
    lua.write_text(_LUA_FILTER)
    # Orthanc 1.10 has no bind-address option: both servers listen on every
    # interface.  So remote HTTP access is refused, and over DICOM nothing is
    # allowed but our AE titles from 127.0.0.1 (DicomCheckModalityHost).  The
    # modalities' ports are never dialled (C-GET, not C-MOVE); Orthanc just
    # wants complete entries.
    return {
        "Name": "radedit-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,
        "HttpPort": http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "HttpCompressionEnabled": False,
        "HttpThreadsCount": 4,
        "HttpTimeout": 10,
        "HttpRequestTimeout": 30,
        "WebDavEnabled": False,
        "ExecuteLuaEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": SERVER_AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomThreadsCount": 2,
        "DicomScpTimeout": 10,
        "DicomScuTimeout": 10,
        "UnknownSopClassAccepted": False,
        "DicomModalities": {
            "radedit": {"AET": SCU_AET, "Host": LOOPBACK, "Port": 1},
            "radedit-ro": {"AET": READONLY_AET, "Host": LOOPBACK, "Port": 1},
            "radedit-noget": {"AET": NOGET_AET, "Host": LOOPBACK, "Port": 1, "AllowEcho": True,
                              "AllowFind": False, "AllowGet": False, "AllowMove": False, "AllowStore": True},
        },
        "DicomModalitiesInDatabase": False,
        "OrthancPeers": {},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "OverwriteInstances": False,
        "LuaScripts": [str(lua)],
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }


def _wait_until_up(handle: OrthancHandle, deadline: float) -> None:
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {handle.process.returncode}:\n{handle.log_tail()}")
        try:
            system = json.loads(handle.request("GET", "/system"))
            plugins = handle.get("/plugins")
            with socket.create_connection((LOOPBACK, handle.dicom_port), timeout=1.0):
                pass
            if "dicom-web" not in plugins:
                raise RuntimeError(f"Orthanc started without the DICOMweb plugin ({DICOMWEB_PLUGIN})")
            if system.get("DicomAet") == handle.aet:
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S:g} s:\n{handle.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def run_orthanc(folder: str | Path, attempts: int = 3) -> Iterator[OrthancHandle]:
    """Start Orthanc in ``folder`` (config, storage, log) and stop it afterwards."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not Path(ORTHANC_BIN).is_file():
        raise FileNotFoundError(
            f"Orthanc not found ({ORTHANC_BIN}); install it: sudo bash scripts/install_system_packages.sh"
        )
    if not DICOMWEB_PLUGIN.is_file():
        raise FileNotFoundError(
            f"Orthanc's DICOMweb plugin not found ({DICOMWEB_PLUGIN}); install orthanc-dicomweb: "
            "sudo bash scripts/install_system_packages.sh"
        )
    last_error: Exception | None = None
    # A free port can be taken by someone else before Orthanc binds it: retry.
    for attempt in range(attempts):
        http_port, dicom_port = free_port(), free_port()
        config_path = folder / "orthanc.json"
        config_path.write_text(json.dumps(_config(folder, http_port, dicom_port), indent=2))
        log_path = folder / f"orthanc-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [ORTHANC_BIN, "--no-jobs", str(config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
            )
        handle = OrthancHandle(
            url=f"http://{LOOPBACK}:{http_port}", dicom_port=dicom_port, aet=SERVER_AET,
            folder=folder, log_path=log_path, process=process,
        )
        try:
            _wait_until_up(handle, time.monotonic() + START_TIMEOUT_S)
        except RuntimeError as exc:
            _stop(process)
            last_error = exc
            continue
        try:
            yield handle
        finally:
            _stop(process)
        return
    raise RuntimeError(f"Orthanc could not be started after {attempts} attempts: {last_error}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Iterator[OrthancHandle]:
    """One Orthanc for the test session (tests use distinct studies)."""
    folder = tmp_path_factory.mktemp("orthanc")
    try:
        server = run_orthanc(folder)
        handle = server.__enter__()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield handle
    finally:
        server.__exit__(None, None, None)
