"""One run per output folder: a lock file beside the folder, naming the run that holds it.

Two runs writing one folder at once would both do all the work and then
overwrite each other's files.  :func:`run_lock` takes ``.<folder>.lock`` next
to the output folder (beside it, so that it exists before the folder does and
never appears among the outputs), holds an exclusive ``flock`` on it for the
run's lifetime, and writes the holder's pid, host and start time into it.  A
second run is refused with a one-line :class:`~radedit_core.errors.OutputError`
naming the holder (exit code 4).  A lock left by a run that died (kill -9,
power loss) is stale: the kernel drops a dead process's ``flock``, so the next
run takes it over; on the same host a lock file whose pid is gone counts as
stale too.  Under ``torchrun`` rank 0 holds the lock for the whole run (the
other ranks write nothing of their own); if it cannot, it exits and torchrun
stops the other ranks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from ._version import __version__
from .errors import OutputError


def lock_path(folder: str | Path) -> Path:
    """The lock file of output folder ``folder``: ``runs/set`` -> ``runs/.set.lock``."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run (starting up)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"{info.get('command', 'a radedit run')} (pid {info.get('pid')} on host {info.get('host')}, since {since})"


#: Locks this process holds (lock file -> depth): a library call inside a locked run (a stress build's
#: batch) takes the same lock again without waiting for itself.
_HELD: dict[Path, int] = {}


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def run_lock(folder: str | Path | None, command: str = "radedit") -> Iterator[Path | None]:
    """Hold the lock of output folder ``folder`` while the block runs (see the module docstring).

    ``command`` is what a refused run is told holds the folder (``radedit stress build``).
    Yields the lock file (None for ``folder=None`` and on torchrun ranks other than 0, which take no lock).
    Re-entrant within one process.

    Raises:
        OutputError: another live run holds the lock (naming its pid, host and
            start), or the lock file cannot be created.
    """
    if folder is None or not _is_rank_zero():
        yield None
        return
    import fcntl  # noqa: PLC0415 - POSIX; imported here so the module imports everywhere

    path = lock_path(folder)
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield path
        finally:
            _HELD[path] -= 1
        return
    created: list[Path] = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for missing in reversed(created):
        with contextlib.suppress(FileExistsError):
            try:
                missing.mkdir()
            except OSError as exc:
                raise OutputError(f"{missing}: cannot create the output's folder ({exc.strerror})") from exc
    fd = -1
    try:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError(f"{path}: cannot create the run's lock file ({exc.strerror})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = -1
                raise OutputError(
                    f"{folder}: another run is writing this output folder: {_holder(path)}; wait for it to "
                    f"finish, or stop it (its lock is {path})"
                ) from None
            # The holder may have released (and removed) the file between our open and our flock: the lock
            # is only ours if the name still points at the file we locked.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
            fd = -1
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command,
                "version": __version__}  # fmt: skip
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        _HELD[path] = 1
        yield path
    finally:
        if _HELD.get(path) == 1:
            del _HELD[path]
        if fd >= 0:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
        for missing in created:
            with contextlib.suppress(OSError):
                missing.rmdir()


__all__ = ["lock_path", "run_lock"]
