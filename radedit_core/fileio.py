"""Atomic output: a result appears whole under its final name or not at all.

Files are written to a temporary sibling and renamed; they get the mode a
plain ``open(path, "w")`` would give them (0666 minus the umask), folders
0777 minus the umask.  Missing parent folders are created only when the
write happens, and removed again if it fails, so a failed run leaves no
empty folders behind.  :class:`OutputGroup` extends this to the several
files of one job (an image and its sidecar): all of them or none.
JSON is written strictly (no NaN or infinity: they are not JSON).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from ._version import __version__
from .errors import ConfigError, OutputError

log = logging.getLogger("radedit")

#: Multi-part suffixes that writers choose their format by.
_COMPOUND_SUFFIXES = (".nii.gz", ".seg.nrrd")


def full_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


#: errno values that mean "the storage cannot take this write" (not a bug, not bad input).
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def storage_error(path: str | Path, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for a write to ``path`` that failed with ``exc`` (a full disk, ...)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space and run the same command again to resume"
    return OutputError(f"{path}: cannot write ({reason})")


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError a write can meet on a full, read-only or failing disk."""
    return isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS


def _as_storage_error(path: Path, exc: BaseException) -> OutputError | None:
    """The :class:`OutputError` for a failed write, or None when ``exc`` is no storage problem.

    The OSError may be the cause of what the writer raised (pydicom re-raises it without its
    errno).  Writers in C++ (``torch.save``, ITK) report a full disk as a RuntimeError without an
    errno: its text ("No space left on device") or else the free space of ``path``'s disk decides.
    """
    # a library may re-raise it as another error (pydicom: "With tag (7FE0,0010) got exception: ..."
    # without the errno), with the OSError as its cause
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        if is_storage_error(seen):
            return storage_error(path, seen)  # type: ignore[arg-type]
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, (OSError, RuntimeError)):
        for code in (errno.ENOSPC, errno.EDQUOT):  # ITK names the reason in its text only
            if os.strerror(code) in str(exc):
                return storage_error(path, OSError(code, os.strerror(code)))
    if isinstance(exc, RuntimeError):
        try:
            stat = os.statvfs(_nearest_existing(path.parent))
        except OSError:
            return None
        if stat.f_bavail * stat.f_frsize < 64 * 1024:
            return storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What ``open(path, "w")`` gives a new file: 0666 minus the umask."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    return 0o777 & ~_umask()


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _spelled_out(path: Path) -> Path:
    """``path`` with its folder resolved (``new/../a.png`` through a folder that does not exist yet is
    ``a.png``), so that the temporary sibling and the final name are in one folder; the name itself is kept
    (an output that is a symlink is replaced, not followed)."""
    if ".." not in path.parts:
        return path
    if path.name == "..":  # ``x/..`` names a folder above, not an entry ``..`` to create
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def _holds_working_folder(path: Path) -> bool:
    """Whether ``path`` is the working folder or a folder above it (``.``, ``..``, ``/``, its absolute name)."""
    try:
        here = os.getcwd()
    except OSError:  # the working folder was deleted under us: nothing to protect
        return False
    return os.path.isdir(path) and _inside(Path(here), path)


def output_path(
    value: str | Path | None, option: str, hint: str = "give the name of a new folder (or one radedit wrote, with --overwrite)"
) -> Path:
    """The path an output option names; an empty one is refused.

    An argument parser's ``Path("")`` is the working folder (``.``), which an
    output never replaces, so the empty string is refused as the user typed it.

    Raises:
        ConfigError: ``value`` is None, empty or blank (names ``option``, then ``hint``).
    """
    if value is None or not str(value).strip():
        raise ConfigError(f"{option}: empty; {hint}")
    return Path(value)


def check_not_working_folder(path: str | Path) -> None:
    """An output (a file or a folder a command writes into) is never the working folder or a folder above it.

    Raises:
        OutputError: ``path`` is ``.``, ``..``, ``/`` or the absolute name of one of them.
    """
    path = _spelled_out(Path(path))
    if _holds_working_folder(path):
        raise OutputError(
            f"{path}: is the working folder{'' if same_file(path, '.') else ' or holds it'}; an output never "
            "replaces it: give a new name"
        )


def check_writable(path: str | Path, overwrite: bool = False, folder: bool | None = None) -> Path:
    """Fail early (before any computation) if ``path`` cannot be created; creates nothing.

    ``folder``: the output is a folder (a DICOM series, a model); False: a file, and an
    existing folder of that name is never replaced by it, ``overwrite`` or not; None: either.

    Raises:
        OutputError: the path is the working folder or a folder above it, a symlink
            (with or without ``overwrite``), a file output's path is an existing folder, the path exists (without
            ``overwrite``), a parent is a file, or the nearest existing folder is
            not writable.
    """
    path = _spelled_out(Path(path))
    check_not_working_folder(path)
    if path.is_symlink():
        raise OutputError(
            f"{path}: is a symlink to {os.readlink(path)}; an output never replaces a symlink or what it points "
            "to: choose another name"
        )
    if folder is False and path.is_dir() and not path.is_symlink():
        raise OutputError(
            f"{path}: is a folder and this output is a file; --overwrite replaces only a file, never a folder: "
            "choose another name"
        )
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output already exists (pass --overwrite, or overwrite=True in Python, to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        raise OutputError(f"{path}: output is not writable ({existing} is a file, not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{existing}: output folder is not writable")
    return path


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of ``path``; return them, outermost first."""
    missing: list[Path] = []
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    missing.reverse()
    for folder in missing:
        try:
            folder.mkdir(mode=0o777)
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_empty(missing)
            raise OutputError(f"{folder}: cannot create output folder ({exc.strerror})") from exc
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def _storage_errors(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """A full disk (or quota) while writing ``path``, wherever it is raised: one line, exit 4.

    The message names ``path``, the output asked for, never the temporary sibling ``tmp`` the
    writer wrote to: also when the writer already turned the failure into an :class:`OutputError`
    naming the file it was given (an image writer reporting ITK's "No space left on device").
    """
    try:
        yield
    except OutputError as exc:
        error = None if exc.__cause__ is None else _as_storage_error(path, exc.__cause__)
        if error is None and tmp is not None and str(tmp) in str(exc):
            error = OutputError(str(exc).replace(str(tmp), str(path)))
        if error is not None:
            raise error from exc
        raise
    except (OSError, RuntimeError) as exc:
        error = _as_storage_error(path, exc)
        if error is not None:
            raise error from exc
        raise


#: Suffix of the hidden sibling folder that holds what an :class:`OutputGroup` replaced until it ends.
REPLACED_SUFFIX = ".replaced"


def _set_aside(path: Path, replaced: list[tuple[Path, Path]], keep_in_place: bool) -> None:
    """Keep what sits at ``path`` in a hidden sibling folder, noted in ``replaced`` (see :class:`OutputGroup`).

    ``keep_in_place`` (a file): a hard link, so ``path`` itself stays until the new file is
    renamed onto it (a reader never finds it missing); where the file system has no hard
    links, nothing is kept (the replacement is then final, as without a group).  Otherwise
    (a folder) ``path`` is renamed.
    """
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=REPLACED_SUFFIX, dir=path.parent))
    target = aside / path.name
    replaced.append((path, target))  # noted first: an interruption after the rename still finds it
    try:
        if keep_in_place:
            os.link(path, target)
        else:
            os.replace(path, target)
    except OSError:
        replaced.pop()
        aside.rmdir()
        if keep_in_place:
            return
        raise


@contextlib.contextmanager
def atomic_path(
    path: str | Path, overwrite: bool = False, replaced: list[tuple[Path, Path]] | None = None
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` that is renamed onto it on success.

    The temporary name keeps the suffix so that writers which choose the
    format by extension (SimpleITK, nibabel) write the right format.  On any
    error the temporary file (and any parent folder made for it) is removed
    and ``path`` is left as it was.  ``replaced`` given (an :class:`OutputGroup`'s),
    the file ``overwrite`` replaces is set aside there, not deleted.
    """
    path = check_writable(path, overwrite, folder=False)
    created = _make_parents(path)
    suffix = full_suffix(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    except OSError as exc:
        _remove_empty(created)
        raise storage_error(path, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _storage_errors(path, tmp):
            yield tmp
            if path.exists() and not overwrite:
                raise OutputError(f"{path}: output appeared while writing; not replaced")
            # mkstemp makes private (0600) files; an output gets a normal file's mode.
            os.chmod(tmp, file_mode())
            if replaced is not None and path.is_file() and not path.is_symlink():
                _set_aside(path, replaced, keep_in_place=True)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
            _remove_empty(created)


@contextlib.contextmanager
def atomic_directory(
    path: str | Path,
    overwrite: bool = False,
    own_file: Callable[[Path], bool] | None = None,
    replaced: list[tuple[Path, Path]] | None = None,
) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder of files (a DICOM series, a model).

    ``overwrite`` replaces only a folder radedit wrote: one holding :data:`MARKER`
    (written into every such folder) or, when ``own_file`` is given (a DICOM series:
    whether a file is one of its instances, from the file's own header), one holding
    nothing but files ``own_file`` accepts; no marker is written then.  ``replaced``:
    as for :func:`atomic_path`.
    """
    path = check_writable(path, overwrite, folder=True)
    created = _make_parents(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    except OSError as exc:
        _remove_empty(created)
        raise storage_error(path, exc) from exc
    try:
        with _storage_errors(path, tmp):
            yield tmp
            if path.exists():
                if not overwrite:
                    raise OutputError(f"{path}: output appeared while writing; not replaced")
                check_replaceable_folder(path, own_file=own_file)
                if replaced is not None:
                    _set_aside(path, replaced, keep_in_place=False)
                else:
                    shutil.rmtree(path)
            if own_file is None:
                write_marker(tmp)
            os.chmod(tmp, folder_mode())
            _follow_umask(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            _remove_empty(created)


def _follow_umask(folder: Path) -> None:
    """Give every file under ``folder`` the umask's mode: some writers (safetensors) make private 0600 files."""
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), folder_mode())
        for name in files:
            os.chmod(os.path.join(root, name), file_mode())


# -- what is an input, what the toolkit wrote ---------------------------------

#: The file the toolkit leaves in every folder it writes as a whole (a DICOM series, a data set, a model):
#: ``--overwrite`` replaces a folder only when it holds this marker (or a manifest the toolkit wrote).
MARKER = ".radedit-output"


def write_marker(folder: str | Path, what: str = "output") -> None:
    """Mark ``folder`` as written by radedit_core (see :data:`MARKER`), listing what it holds now
    (``contents``: the top-level names), so that a later ``--overwrite`` can tell them from files
    added since."""
    folder = Path(folder)
    contents = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    record = {"tool": "radedit_core", "version": __version__, "what": what, "contents": contents}
    (folder / MARKER).write_text(json.dumps(record) + "\n")


def toolkit_record(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` if radedit_core wrote it (its ``tool`` is ``radedit_core`` or
    ``radedit_core.<part>``), else None: a file of the same name from another tool (the
    ``dataset.json`` of a Medical Segmentation Decathlon, MONAI or nnU-Net data set) or a symlink
    is no evidence."""
    data = json_object(path)
    tool = data.get("tool") if data is not None else None
    return data if isinstance(tool, str) and (tool == "radedit_core" or tool.startswith("radedit_core.")) else None


def json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, a regular file (a symlink is none), or None where there is no
    such file or it holds no JSON object: how a file is recognised as one the toolkit wrote."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def csv_header(path: str | Path) -> list[str] | None:
    """The first row of CSV file ``path`` (None: unreadable or empty): how a CSV the toolkit wrote is recognised."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def written_by_toolkit(
    folder: str | Path, manifests: tuple[str, ...] = (), own_file: Callable[[Path], bool] | None = None
) -> bool:
    """Whether ``folder`` holds :data:`MARKER` or one of ``manifests`` (the files a toolkit command writes there)
    written by radedit_core (:func:`toolkit_record`), or (``own_file`` given) only files that ``own_file`` says
    the toolkit wrote (symlinks never count)."""
    folder = Path(folder)
    if any(toolkit_record(folder / name) is not None for name in (MARKER, *manifests)):
        return True
    return own_file is not None and all(
        p.is_file() and not p.is_symlink() and own_file(p) for p in folder.iterdir()
    )


def foreign_entries(folder: str | Path, contents: Collection[str] | None = None) -> list[str]:
    """Top-level names in ``folder`` that the toolkit did not write there: not in ``contents`` (what
    the writer puts there) or, without it, not in the :data:`MARKER`'s list.  Empty when neither
    says (a marker from before the list was kept)."""
    folder = Path(folder)
    if contents is None:
        listed = (toolkit_record(folder / MARKER) or {}).get("contents")
        if not isinstance(listed, list):
            return []
        contents = listed
    allowed = {*contents, MARKER}
    return sorted(p.name for p in folder.iterdir() if p.name not in allowed)


def check_replaceable_folder(
    folder: str | Path,
    manifests: tuple[str, ...] = (),
    option: str = "--overwrite",
    own_file: Callable[[Path], bool] | None = None,
    own_what: str = "",
    contents: Collection[str] | None = None,
) -> None:
    """``option`` may clear ``folder`` only if it is empty or the toolkit wrote it (see :func:`written_by_toolkit`)
    and it holds nothing added since (see :func:`foreign_entries`; ``contents``: the names the writer puts there).

    ``own_what`` says in the message what ``own_file`` accepts (e.g. "edited.dcm/masks.dcm written by radedit").

    Raises:
        OutputError: ``folder`` is a symlink (never followed or replaced), a file, a non-empty folder
            without the marker, a manifest or (``own_file``) only files the toolkit wrote, or a folder
            the toolkit wrote that holds files it did not write (naming a few).
    """
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink():
        raise OutputError(
            f"{folder}: is a symlink; {option} never replaces a symlink or the folder it points to: "
            "choose a new or empty folder"
        )
    if not folder.is_dir():
        raise OutputError(f"{folder}: {option} replaces only a folder radedit wrote; this is a file")
    if not any(folder.iterdir()):
        return
    if not written_by_toolkit(folder, manifests, own_file):
        evidence = "/".join(manifests) or own_what or "manifest"
        raise OutputError(
            f"{folder}: not a folder radedit wrote (no {MARKER} or {evidence} written by radedit in it); "
            f"{option} does not delete other folders: choose a new or empty folder"
        )
    extra = foreign_entries(folder, contents)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputError(
            f"{folder}: holds {shown}, which radedit did not write there; {option} does not delete them: "
            "move them out or choose a new folder"
        )


def check_run_files(
    folder: str | Path, files: dict[str, Callable[[Path], bool]], inputs: dict[str, Any], command: str
) -> None:
    """Before anything is written: the files a run writes at fixed names in its output ``folder``
    (a batch's ``manifest.json``/``manifest.csv``, a stress-test set's ``set.json``/``set.csv``) are
    no input, and each may replace only a file of that name this toolkit wrote, ``--overwrite`` or not.

    ``files``: ``{name: whether a file is the toolkit's own}``; ``inputs``: as for
    :func:`check_outputs_apart`; ``command`` names the run in messages ("a stress-build run").

    Raises:
        OutputError: one of them is an input (naming both), a symlink, or a file radedit did not write.
    """
    folder = Path(folder)
    check_outputs_apart({f"{command}'s {name}": folder / name for name in files}, inputs)
    for name, own in files.items():
        path = folder / name
        if path.is_symlink() or (path.exists() and not (path.is_file() and own(path))):
            what = "a symlink" if path.is_symlink() else f"not a {name} radedit wrote"
            raise OutputError(
                f"{path}: {what}; {command} writes its {name} there and never replaces another file: "
                "move it or choose another output folder"
            )


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same existing file or folder (symlinks, ``..``, hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (resolved, symlinks followed) lies inside ``folder`` or is it."""
    try:
        real, top = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    except OSError:
        return False
    if real == top or top in real.parents:
        return True
    # a hard link or bind mount: compare by identity along the path
    probe = real
    while probe != probe.parent:
        if same_file(probe, top):
            return True
        probe = probe.parent
    return False


def check_outputs_apart(
    outputs: dict[str, Any], inputs: dict[str, Any], folders: tuple[str, ...] = (), input_folders: tuple[str, ...] = ()
) -> None:
    """Before anything is written: no output is an input, and no folder output holds one.

    ``outputs``/``inputs``: ``{name shown in messages: path}`` (None values are skipped);
    ``folders``: the names in ``outputs`` that are folders the run may clear or replace;
    ``input_folders``: the names in ``inputs`` that are folders every file of which is an input
    (a model folder): an output that exists inside one would replace a file of it (new names
    inside it are fine).

    Raises:
        OutputError: naming both, e.g. ``--output a.png is the input --image ../x/a.png``.
    """
    given_inputs = [(n, _spelled_out(Path(p))) for n, p in inputs.items() if p not in (None, "")]
    for out_name, out in outputs.items():
        if out in (None, ""):
            continue
        out = _spelled_out(Path(out))
        for in_name, src in given_inputs:
            if same_file(out, src):
                raise OutputError(
                    f"{out_name} {out} is the same file as the input {in_name} {src}; an input is never "
                    "overwritten: choose another output"
                )
            # the name itself may be a symlink in the folder: replacing it changes the folder too
            if in_name in input_folders and src.is_dir() and os.path.lexists(out) and _inside(out.parent, src):
                raise OutputError(
                    f"{out_name} {out} is a file of the input {in_name} {src}; an input is never overwritten: "
                    "choose another output"
                )
            if out_name in folders and out.exists() and src.exists() and _inside(src, out):
                raise OutputError(
                    f"{out_name} {out} holds the input {in_name} {src}; replacing the folder would delete it: "
                    "choose another output folder"
                )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def to_json(data: Any) -> str:
    """Strict JSON text of ``data`` (paths and numpy scalars converted).

    Raises:
        ValueError: for NaN or infinity anywhere in ``data``, naming where.
    """
    try:
        return json.dumps(data, indent=2, sort_keys=False, default=_jsonable, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError(f"not JSON: a non-finite number at {_non_finite(data) or 'an unknown place'}") from None


def _non_finite(data: Any, where: str = "") -> str | None:
    if isinstance(data, float) and not math.isfinite(data):
        return where or "the top level"
    if isinstance(data, dict):
        for key, value in data.items():
            found = _non_finite(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    if isinstance(data, (list, tuple)):
        for k, value in enumerate(data):
            found = _non_finite(value, f"{where}[{k}]")
            if found:
                return found
    return None


def write_json(path: str | Path, data: Any, overwrite: bool = True) -> Path:
    """Write ``data`` as indented strict JSON, atomically."""
    text = to_json(data)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def remove(path: str | Path) -> None:
    """Remove a file or a folder tree, if present."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_replaced_leftovers(path: str | Path, restore: bool = True) -> None:
    """Tidy the hidden folders a killed :class:`OutputGroup` left beside ``path``: the earlier
    version goes back to ``path`` where nothing is there (``restore``), else it is deleted."""
    path = Path(path)
    for aside in sorted(path.parent.glob(f".{glob.escape(path.name)}.*{REPLACED_SUFFIX}")):
        kept = aside / path.name
        if restore and (kept.exists() or kept.is_symlink()) and not (path.exists() or path.is_symlink()):
            with contextlib.suppress(OSError):
                os.replace(kept, path)
        remove(aside)


class OutputGroup:
    """The outputs of one job: if any write of the group fails, the ones already written go too.

    Use as a context manager (only inside ``with``: what the group replaced is
    deleted when the block ends); files written through :meth:`file`,
    :meth:`directory` and :meth:`json` are removed when the block raises
    (a cancelled job included), together with the folders made for them, and
    what they replaced (with ``overwrite``) is put back: an earlier run's
    image and sidecar stay a pair.  Until the block ends, what was replaced
    waits in a hidden sibling folder ``.<name>.<random>.replaced``; a process
    killed in that moment (SIGKILL) leaves it there, the earlier version
    inside (:func:`remove_replaced_leftovers`).
    """

    def __init__(self) -> None:
        self.written: list[Path] = []
        self._created: list[Path] = []
        self._replaced: list[tuple[Path, Path]] = []

    def track(self, path: str | Path) -> None:
        """Note the folders a write of ``path`` is about to create (call before writing it by other means)."""
        missing: list[Path] = []
        parent = Path(os.path.abspath(path)).parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        self._created.extend(reversed(missing))

    @contextlib.contextmanager
    def file(self, path: str | Path, overwrite: bool = False) -> Iterator[Path]:
        path = Path(path)
        self.track(path)
        if overwrite:  # what an earlier, killed overwrite of this path set aside is being replaced too
            remove_replaced_leftovers(path, restore=False)
        with atomic_path(path, overwrite, self._replaced) as tmp:
            yield tmp
        self.written.append(path)

    @contextlib.contextmanager
    def directory(
        self, path: str | Path, overwrite: bool = False, own_file: Callable[[Path], bool] | None = None
    ) -> Iterator[Path]:
        path = Path(path)
        self.track(path)
        if overwrite:
            remove_replaced_leftovers(path, restore=False)
        with atomic_directory(path, overwrite, own_file, replaced=self._replaced) as tmp:
            yield tmp
        self.written.append(path)

    def json(self, path: str | Path, data: Any, overwrite: bool = False) -> Path:
        text = to_json(data)
        with self.file(path, overwrite) as tmp:
            tmp.write_text(text)
        return Path(path)

    def rollback(self) -> None:
        for path in reversed(self.written):
            with contextlib.suppress(OSError):
                remove(path)
        self.written.clear()
        for path, aside in reversed(self._replaced):
            if not (aside.exists() or aside.is_symlink()):
                remove(aside.parent)
                continue
            try:
                remove(path)
                os.replace(aside, path)
                aside.parent.rmdir()
            except OSError as exc:
                log.warning("%s: could not be put back (%s); the earlier version is in %s", path,
                            exc.strerror or exc, aside)
        self._replaced.clear()
        _remove_empty(self._created)

    def _discard_replaced(self) -> None:
        for _, aside in self._replaced:
            remove(aside.parent)
        self._replaced.clear()

    def __enter__(self) -> "OutputGroup":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            self.rollback()
        else:
            self._discard_replaced()


__all__ = [
    "MARKER",
    "OutputGroup",
    "REPLACED_SUFFIX",
    "remove_replaced_leftovers",
    "check_not_working_folder",
    "check_outputs_apart",
    "check_replaceable_folder",
    "check_run_files",
    "is_storage_error",
    "same_file",
    "storage_error",
    "csv_header",
    "foreign_entries",
    "json_object",
    "toolkit_record",
    "write_marker",
    "written_by_toolkit",
    "atomic_directory",
    "atomic_path",
    "check_writable",
    "file_mode",
    "folder_mode",
    "full_suffix",
    "remove",
    "to_json",
    "write_json",
]
