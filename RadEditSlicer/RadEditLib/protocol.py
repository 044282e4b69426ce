"""The front end's half of ``python -m radedit_core.worker``: jobs, events, the process.

Nothing here imports Qt, VTK or radedit_core: the worker may live in another
Python environment than Slicer's, and these pieces are tested headless.  The
process is a plain :class:`subprocess.Popen` read by two daemon threads; the
caller drains events with :meth:`WorkerProcess.poll` (from a QTimer in
Slicer, so the GUI never blocks) or waits with :meth:`WorkerProcess.wait`.
The short commands (environment probe, job check) are worker processes too,
polled the same way: nothing the module starts runs on the GUI thread.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:  # installed into Slicer's Python by the module (environment.MODULE_REQUIREMENTS)
    import psutil
except ImportError:  # until then the worker's process group stands in for its tree
    psutil = None

JOB_VERSION = 1
#: Seconds between Cancel's SIGTERM and the SIGKILL of whatever of the worker's tree is left
#: (Linux, macOS); Windows terminates the tree at once.  No process of it is alive after
#: this plus one poll interval.
CANCEL_GRACE_S = 3.0
#: Seconds a finished process's output readers get to deliver the last lines.
READER_GRACE_S = 1.0
WORKER_MODULE = "radedit_core.worker"

#: Prompts of the RadEdit paper (Sec. 5, App. 0.G).  radedit_core's
#: ``PAPER_PROMPTS`` is the reference (a test keeps the two equal); this copy
#: lets the module offer them before an environment is configured.
PAPER_PROMPTS = {
    "normal": "No acute cardiopulmonary process",
    "edema": "Moderate pulmonary edema. The heart size is normal",
    "pacemaker": (
        "Left pectoral pacemaker in place. The position of the leads is as expected. "
        "Otherwise unremarkable chest radiographic examination"
    ),
    "consolidation-left": "New left upper lobe consolidation",
    "consolidation-right": "New right upper lobe consolidation",
    "no-pneumothorax": "No pneumothorax",
}

#: Where each stage of a task lies on one 0..1 progress bar.  Model loading
#: and writing are short next to the UNet passes on a GPU but not on a CPU;
#: these spans are a compromise that keeps the bar moving forward.
STAGE_SPANS = {
    "edit": {"load": (0.0, 0.10), "invert": (0.10, 0.40), "edit": (0.40, 0.97), "write": (0.97, 1.0)},
    "export": {"read": (0.0, 0.5), "write": (0.5, 1.0)},
}
STAGE_TEXT = {
    "load": "Loading the model",
    "invert": "Inverting the image",
    "edit": "Editing",
    "write": "Writing the result",
    "read": "Reading the source DICOM",
}


# -- jobs ----------------------------------------------------------------------


@dataclass
class EditParameters:
    """What the user chose in the module, in radedit_core's terms.

    The defaults are radedit_core's (``radedit_core.settings.EDIT_DEFAULTS``;
    a test keeps them equal). Values are checked by the worker
    (``python -m radedit_core.worker --check``), the one settings layer of
    every front end, before anything runs.
    """

    prompt: str
    guidance: float = 15.0
    steps: int = 200
    skip_ratio: float = 0.3
    seed: int = 0
    dilate: int = 5
    keep_mode: str = "pixel"
    model: str = "radedit"
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    offline: bool = False
    extra_settings: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """``EditSettings`` fields."""
        return {
            "prompts": [self.prompt.strip()],
            "weights": [float(self.guidance)],
            "steps": int(self.steps),
            "skip_ratio": float(self.skip_ratio),
            "seed": int(self.seed),
            "dilate": int(self.dilate),
            "keep_mode": self.keep_mode,
            **self.extra_settings,
        }

    def model_fields(self) -> dict[str, Any]:
        return {
            "name": self.model.strip(),
            "device": self.device,
            "dtype": self.dtype,
            "trust_remote_code": bool(self.trust_remote_code),
            "offline": bool(self.offline),
        }


def edit_job(
    image: str | Path,
    edit_mask: str | Path | None,
    keep_mask: str | Path | None,
    output: str | Path,
    parameters: EditParameters,
    *,
    intensity: dict[str, Any] | None = None,
    source_dicom: str | Path | None = None,
    client: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "radedit_job": JOB_VERSION,
        "task": "edit",
        "image": str(image),
        "edit_mask": None if edit_mask is None else str(edit_mask),
        "keep_mask": None if keep_mask is None else str(keep_mask),
        "output": str(output),
        "overwrite": False,
        "settings": parameters.settings(),
        "model": parameters.model_fields(),
        "intensity": dict(intensity or {}),
        "source_dicom": None if source_dicom is None else str(source_dicom),
        "client": client,
    }


def export_job(
    source_dicom: str | Path,
    reference: str | Path,
    edited: str | Path,
    out_dir: str | Path,
    *,
    provenance: str | Path | None = None,
    edit_mask: str | Path | None = None,
    keep_mask: str | Path | None = None,
    series_description: str | None = None,
    series_number: int | None = None,
    uid_root: str | None = None,
    write_seg: bool = False,
    client: dict[str, Any] | None = None,
) -> dict[str, Any]:
    def opt(path):
        return None if path is None else str(path)

    return {
        "radedit_job": JOB_VERSION,
        "task": "export",
        "source_dicom": str(source_dicom),
        "reference": str(reference),
        "edited": str(edited),
        "out_dir": str(out_dir),
        "provenance": opt(provenance),
        "edit_mask": opt(edit_mask),
        "keep_mask": opt(keep_mask),
        "series_description": series_description,
        "series_number": series_number,
        "uid_root": uid_root,
        "write_seg": bool(write_seg),
        "overwrite": False,
        "client": client,
    }


def write_job(path: str | Path, job: dict[str, Any]) -> Path:
    """Write the job atomically: the worker never reads half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(job, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def worker_command(
    python: str | Path, job_path: str | Path | None = None, probe: bool = False, check: bool = False
) -> list[str]:
    command = [str(python), "-u", "-m", WORKER_MODULE]
    if probe:
        command.append("--probe")
    if check:
        command.append("--check")
    if job_path is not None:
        command.append(str(job_path))
    return command


# -- events --------------------------------------------------------------------


@dataclass
class WorkerEvent:
    kind: str
    fields: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def parse_event(line: str) -> WorkerEvent | None:
    """One stdout line -> event; anything that is not a protocol line -> None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None
    kind = data.pop("event")
    return WorkerEvent(kind, data)


class Progress:
    """Folds progress events into one fraction and a line of text."""

    def __init__(self, task: str = "edit"):
        self.spans = STAGE_SPANS.get(task, {})
        self.fraction = 0.0
        self.text = "Starting"

    def update(self, event: WorkerEvent) -> None:
        if event.kind == "started":
            self.text = "Started"
        elif event.kind == "progress":
            stage = str(event.get("stage", ""))
            done, total = int(event.get("done", 0)), max(int(event.get("total", 1)), 1)
            lo, hi = self.spans.get(stage, (self.fraction, self.fraction))
            # Never move backwards: a stage reported out of order keeps the bar.
            self.fraction = max(self.fraction, lo + (hi - lo) * min(done, total) / total)
            label = STAGE_TEXT.get(stage, stage.capitalize())
            self.text = label if stage in ("load", "write", "read") else f"{label}: step {done} of {total}"
        elif event.kind == "done":
            self.fraction, self.text = 1.0, "Done"
        elif event.kind == "error":
            self.text = "Failed"
        elif event.kind == "cancelled":
            self.text = "Cancelled"

    @property
    def percent(self) -> int:
        return int(round(100 * self.fraction))


# -- the process -----------------------------------------------------------------


class WorkerError(RuntimeError):
    """The worker failed; the message is the one to show the user."""


class WorkerProcess:
    """One worker run: start, poll (non-blocking), cancel (non-blocking), wait.

    ``state`` goes ``"running"`` -> ``"done"`` | ``"error"`` | ``"cancelled"``;
    ``result`` holds the fields of the ``result_kind`` event (``"done"`` for
    jobs, ``"probe"``/``"checked"`` for the short commands).

    The command may be a launcher: ``PythonSlicer`` starts the real Python
    as its child and forwards no signal.  So the worker runs in its own
    process group (POSIX: a new session) and :meth:`cancel` signals the
    whole process tree (psutil where installed, as SlicerMONAIAuto3DSeg
    does; the process group or ``taskkill /T`` otherwise).  Nothing here
    waits on the GUI thread: :meth:`cancel` signals and returns, and
    :meth:`poll` kills what is left after :data:`CANCEL_GRACE_S`.
    """

    def __init__(
        self,
        command: list[str],
        *,
        task: str = "edit",
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        on_event: Callable[[WorkerEvent], None] | None = None,
        result_kind: str = "done",
    ):
        self.command = list(command)
        self.task = task
        self.env = env
        self.cwd = None if cwd is None else str(cwd)
        self.on_event = on_event
        self.result_kind = result_kind
        self.progress = Progress(task)
        self.events: list[WorkerEvent] = []
        self.result: dict[str, Any] | None = None
        self.error_message: str | None = None
        self.state = "new"
        self.returncode: int | None = None
        self.started_at: float | None = None
        self._queue: queue.Queue = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._threads: list[threading.Thread] = []
        self._process: subprocess.Popen | None = None
        self._cancel_requested = False
        self._kill_at: float | None = None
        self._ended_at: float | None = None
        self._tree: dict[int, Any] = {}
        self._killed = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "WorkerProcess":
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            # No console window flashing up over Slicer; a group of its own for taskkill /T.
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(
                subprocess, "CREATE_NEW_PROCESS_GROUP", 0
            )
        else:
            # Its own session and process group: cancel reaches the launcher's children even without psutil.
            kwargs["start_new_session"] = True
        try:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                **kwargs,
            )
        except OSError as exc:
            self.state = "error"
            self.error_message = f"cannot start the RadEdit worker ({self.command[0]}): {exc.strerror or exc}"
            raise WorkerError(self.error_message) from exc
        self.state = "running"
        self.started_at = time.monotonic()
        for target, stream in ((self._read_stdout, self._process.stdout), (self._read_stderr, self._process.stderr)):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read_stdout(self, stream) -> None:
        for line in stream:
            event = parse_event(line)
            if event is None:
                self._stderr_tail.append(line.rstrip())
            else:
                self._queue.put(event)
        stream.close()

    def _read_stderr(self, stream) -> None:
        for line in stream:
            line = line.rstrip()
            if line:
                self._stderr_tail.append(line)
        stream.close()

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "cancelled")

    @property
    def cancelling(self) -> bool:
        """Cancel was asked for and the tree has not ended yet."""
        return self._cancel_requested and not self.finished

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def poll(self) -> list[WorkerEvent]:
        """Events since the last call; settles ``state`` once the process tree has ended. Never blocks."""
        new = self._drain()
        if self.state != "running" or self._process is None:
            return new
        now = time.monotonic()
        if self._cancel_requested:
            self._track_tree()
            if self._kill_at is not None and now >= self._kill_at:
                self._signal_tree(kill=True)
                self._kill_at = None
        if self._process.poll() is None:
            return new
        if self._ended_at is None:
            self._ended_at = now
        if self._cancel_requested and self._tree_alive():
            return new  # the launcher is gone but not yet its child: the next poll kills or settles
        # The last lines may still be in the readers; a descendant that kept the pipe open
        # (it outlived its launcher) is not waited for beyond READER_GRACE_S.
        if any(t.is_alive() for t in self._threads) and now - self._ended_at < READER_GRACE_S:
            return new
        new += self._drain()
        self._settle(self._process.returncode)
        return new

    def _drain(self) -> list[WorkerEvent]:
        new = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            self.events.append(event)
            self.progress.update(event)
            if event.kind == self.result_kind:
                self.result = event.fields
            elif event.kind == "error":
                self.error_message = str(event.get("message", "unknown error"))
            new.append(event)
            if self.on_event is not None:
                self.on_event(event)
        return new

    def _settle(self, returncode: int) -> None:
        self.returncode = returncode
        if self._cancel_requested:
            self.state = "cancelled"
        elif returncode == 0 and self.result is not None:
            self.state = "done"
        else:
            self.state = "error"
            if not self.error_message:
                tail = "\n".join(list(self._stderr_tail)[-8:])
                self.error_message = (
                    f"the RadEdit worker stopped with exit code {returncode} without a result"
                    + (f":\n{tail}" if tail else "")
                )

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> str:
        """Block until the process ends (scripts, tests; never the GUI thread); returns ``state``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll()
            if self.finished:
                break
            if deadline is not None and time.monotonic() > deadline and not self._cancel_requested:
                self.cancel()
                self._wait_cancelled(interval)
                raise WorkerError(f"the RadEdit worker did not finish within {timeout:g} s and was stopped")
            time.sleep(interval)
        return self.state

    def _wait_cancelled(self, interval: float) -> None:
        while not self.finished:
            self.poll()
            time.sleep(interval)

    # -- cancel ----------------------------------------------------------------------
    def cancel(self, grace: float | None = None) -> None:
        """Ask the whole process tree to stop, and return at once.

        Linux/macOS: SIGTERM to every process of the tree (the worker
        removes what it was writing and exits); what is still alive
        ``grace`` seconds later (default :data:`CANCEL_GRACE_S`) is killed
        by the next :meth:`poll`.  Windows has no SIGTERM: the tree is
        terminated at once (outputs are written atomically, so nothing
        half-written is left).  Keep polling until :attr:`finished`.
        """
        if self._process is None or self.finished or self._cancel_requested:
            return
        self._cancel_requested = True
        self._track_tree()
        if sys.platform == "win32":
            self._signal_tree(kill=True)
        else:
            self._signal_tree(kill=False)
            self._kill_at = time.monotonic() + (CANCEL_GRACE_S if grace is None else grace)
        self.poll()

    def tree_pids(self) -> list[int]:
        """The process and the descendants seen so far (launcher children included)."""
        self._track_tree()
        return sorted(set(self._tree) | ({self._process.pid} if self._process is not None else set()))

    def _track_tree(self) -> None:
        """Remember every descendant while its parent lives: a reparented orphan is not found later."""
        if psutil is None or self._process is None:
            return
        for pid in [self._process.pid, *self._tree]:
            try:
                proc = self._tree.get(pid) or psutil.Process(pid)
                self._tree.setdefault(pid, proc)
                for child in proc.children(recursive=True):
                    self._tree.setdefault(child.pid, child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def _tree_alive(self) -> bool:
        if psutil is not None:
            return any(_alive(proc) for proc in self._tree.values())
        if sys.platform == "win32" or self._killed:
            return False  # SIGKILL cannot be caught: what is left are zombies awaiting their reaper
        try:
            os.killpg(self._process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _signal_tree(self, kill: bool) -> None:
        self._killed = self._killed or kill
        if psutil is not None:
            for proc in list(self._tree.values()):
                try:
                    proc.kill() if kill else proc.terminate()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        if sys.platform == "win32":
            if psutil is None:
                subprocess.Popen(
                    ["taskkill", "/PID", str(self._process.pid), "/T", "/F"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                )
            return
        # The process group catches what psutil has not seen yet (started after the last look).
        try:
            os.killpg(self._process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    def raise_for_state(self) -> dict[str, Any]:
        if self.state == "done" and self.result is not None:
            return self.result
        if self.state == "cancelled":
            raise WorkerError("cancelled")
        raise WorkerError(self.error_message or f"the RadEdit worker is {self.state}")


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- the short commands: probe and check ---------------------------------------------


def probe_process(python: str | Path, env: dict[str, str] | None = None) -> WorkerProcess:
    """``worker --probe`` as a :class:`WorkerProcess` (not started): poll it, then :func:`probe_outcome`."""
    return WorkerProcess(worker_command(python, probe=True), task="probe", env=env, result_kind="probe")


def check_process(python: str | Path, job_path: str | Path, env: dict[str, str] | None = None) -> WorkerProcess:
    """``worker --check job.json`` as a :class:`WorkerProcess` (not started)."""
    return WorkerProcess(worker_command(python, job_path, check=True), task="check", env=env, result_kind="checked")


def _last_line(process: WorkerProcess) -> str:
    tail = [line for line in process.stderr_tail if line.strip()]
    return tail[-1] if tail else f"exit code {process.returncode}"


def probe_outcome(process: WorkerProcess, python: str | Path) -> dict[str, Any]:
    """What a finished probe means: the environment's facts, or a WorkerError saying what is missing."""
    if process.state == "done" and process.result is not None:
        info = process.result
        if info.get("job_version") != JOB_VERSION:
            raise WorkerError(
                f"radedit_core {info.get('version')} in {python} speaks job version "
                f"{info.get('job_version')}, this module needs {JOB_VERSION}; update one of them"
            )
        return info
    if process.state == "cancelled":
        raise WorkerError("the environment check was stopped")
    reason = process.error_message if process.events and process.error_message else _last_line(process)
    if "No module named" in reason and "radedit_core" in reason:
        reason = "radedit_core is not installed there"
    raise WorkerError(f"{python} cannot run the RadEdit worker: {reason}")


def check_outcome(process: WorkerProcess, python: str | Path) -> None:
    """What a finished job check means: nothing (the job is valid), or a WorkerError with the worker's message."""
    if process.state == "done":
        return
    if process.state == "cancelled":
        raise WorkerError("the job check was stopped")
    if process.error_message and any(e.kind == "error" for e in process.events):
        raise WorkerError(process.error_message)
    raise WorkerError(f"{python} could not check the job: {_last_line(process)}")


def _run_short(process: WorkerProcess, python: str | Path, timeout: float, what: str) -> WorkerProcess:
    try:
        process.start()
    except WorkerError as exc:
        raise WorkerError(f"Python executable not found: {python}") from exc
    try:
        process.wait(timeout=timeout)
    except WorkerError as exc:
        raise WorkerError(f"{python} did not {what} within {timeout:g} s") from exc
    return process


def probe_environment(
    python: str | Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Blocking :func:`probe_process` (scripts, tests): ask ``python`` what radedit_core it has."""
    return probe_outcome(_run_short(probe_process(python, env), python, timeout, "answer"), python)


def check_job(
    python: str | Path,
    job_path: str | Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> None:
    """Blocking :func:`check_process`: have the worker check a job without running it (no model, nothing written).

    Raises:
        WorkerError: with the worker's one-line message (an option out of
            range, an unreadable input, an existing output, ...).
    """
    check_outcome(_run_short(check_process(python, job_path, env), python, timeout, "check the job"), python)
