"""The ``radedit`` command run in the test process (issue 18: the suite's time).

A ``radedit`` subprocess pays about 12 s of imports (torch, diffusers, transformers) before it
does anything; most CLI tests check what the command does, not the process boundary.
:func:`radedit` runs :func:`radedit_core.cli.main` here, with the environment, working folder,
torch threads and umask of a fresh process put back afterwards, and returns what
:func:`subprocess.run` would (``returncode``, ``stdout``, ``stderr``), so a test can switch
between the two.  Tests of the process itself (the console entry point, signals, locks held by
two processes, torchrun ranks, the bundle's ``python -m monai.bundle``) keep subprocesses.

Differences from a process: warnings that go through :mod:`logging` reach pytest's log capture,
not ``stderr`` (the root logger already has pytest's handlers, so ``logging.basicConfig`` is a
no-op), and modules stay imported between calls.  So that a test can still check what a process
would have written to ``stderr``, :func:`radedit` also returns the warnings logged during the call
as ``logged``: lines ``LEVEL: message`` (the CLI's logging format).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Mapping

import torch


@contextlib.contextmanager
def process_state(env: Mapping[str, str] | None = None, cwd: Path | str | None = None, replace: bool = False):
    """Run the body with ``env`` added to ``os.environ`` (``replace``: as the whole environment)
    and in ``cwd``, with the environment's ``PYTHONPATH`` on ``sys.path`` as a process started
    with it would have it; put back the environment, ``sys.path``, folder, torch threads and
    umask afterwards (what the CLI may change)."""
    saved_env, saved_path, saved_modules = dict(os.environ), sys.path[:], dict(sys.modules)
    saved_cwd = os.getcwd()
    saved_threads = torch.get_num_threads()
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    try:
        if replace:
            os.environ.clear()
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        _put_back_modules(saved_modules, saved_path)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        torch.set_num_threads(saved_threads)
        os.umask(saved_umask)


def _put_back_modules(saved: dict, search_path: list[str]) -> None:
    """Modules a call imported from outside the interpreter's search path (a bundle's ``scripts``
    package from a copy of the bundle that the call put on ``sys.path``) end with it, as they
    would with a process: a later import of the same name gets what it got before.  Modules
    found on the search path (site-packages, the repository) stay loaded."""
    for name in stray_modules(saved, search_path):
        if name in saved:
            sys.modules[name] = saved[name]
        else:
            del sys.modules[name]


def stray_modules(saved: dict, search_path: list[str]) -> list[str]:
    """Names in ``sys.modules`` that are new since ``saved`` and that an import with ``search_path``
    would not find by their own name: ``scripts`` from ``<repo>/monai_bundle/scripts`` lies inside
    the repository, but only a search path holding ``monai_bundle`` finds it there, so a later
    call running another copy of the bundle would get this one's."""
    roots = [Path(p or ".").resolve() for p in search_path]
    stray = []
    for name, module in list(sys.modules.items()):
        if saved.get(name) is module:
            continue
        file = getattr(module, "__file__", None)
        if file and not any(_found_in(Path(file).resolve(), name, root) for root in roots):
            stray.append(name)
    return stray


def _found_in(file: Path, name: str, root: Path) -> bool:
    """Whether importing ``name`` with ``root`` on the search path finds ``file``: the top-level
    package's folder or module file lies directly in ``root``."""
    top = name.split(".")[0]
    return file.is_relative_to(root / top) or (file.parent == root and file.name.split(".")[0] == top)


class _LoggedLines(logging.Handler):
    """Warnings and errors logged during a call, formatted as the CLI's ``basicConfig`` would."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname}: {record.getMessage()}")


def radedit(*args, home: Path | str | None = None, cwd: Path | str | None = None,
            env: Mapping[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """``radedit ARGS`` in this process: a :class:`subprocess.CompletedProcess` with text output.

    ``home``: ``RADEDIT_HOME`` for the call; ``-q`` anywhere in ARGS is moved before the
    sub-command (argparse wants it there); ``check``: raise AssertionError with stderr on a
    non-zero exit.  The result also has ``logged``: the lines a process would have logged to
    ``stderr`` (warnings and errors through :mod:`logging`).
    """
    from radedit_core.cli import main

    argv = [str(a) for a in args]
    if "-q" in argv:
        argv.remove("-q")
        argv.insert(0, "-q")
    extra = dict(env or {})
    extra.setdefault("HF_HUB_OFFLINE", "1")
    if home is not None:
        extra["RADEDIT_HOME"] = str(home)
    out, err = io.StringIO(), io.StringIO()
    logged = _LoggedLines()
    root = logging.getLogger()
    root.addHandler(logged)
    try:
        with process_state(extra, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=err)
    finally:
        root.removeHandler(logged)
    proc = subprocess.CompletedProcess(["radedit", *argv], code, out.getvalue(), err.getvalue())
    proc.logged = logged.lines
    if check and code != 0:
        raise AssertionError(proc.stderr)
    return proc


def python_m(module: str, *args, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in this process (e.g. ``python_m("monai.bundle", "run", "edit", ...)``);
    see :func:`python`."""
    return python("-m", module, *args, cwd=cwd, env=env, check=check)


def python(*argv, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
           check: bool = False) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS``, ``python -c CODE ARGS`` or ``python SCRIPT.py ARGS`` in this process.

    :mod:`runpy` runs the module or script as ``__main__`` with ``sys.argv`` and ``sys.path[0]`` as
    the interpreter sets them (the working folder for ``-m``/``-c``, the script's folder for a
    script), so code that asks how it was started (``__main__.__spec__``) sees what a process
    would.  Put back afterwards, besides :func:`process_state`: ``sys.argv``, ``sys.path`` (the
    bundle machinery adds the bundle folder) and the root logger's handlers and level
    (``ConfigWorkflow`` applies the bundle's ``logging.conf``).  Its handlers write to the
    ``stdout``/``stderr`` of the call, which come back in the result, as in :func:`radedit`.
    """
    argv = [str(a) for a in argv]
    if len(argv) >= 2 and argv[0] in ("-m", "-c"):
        mode, target, rest = argv[0], argv[1], argv[2:]
    elif argv and argv[0].endswith(".py"):
        mode, target, rest = "script", argv[0], argv[1:]
    else:
        raise ValueError(f"python {' '.join(argv)}: only -m MODULE, -c CODE or SCRIPT.py run in this process")
    extra = dict(env or {})
    extra.setdefault("HF_HUB_OFFLINE", "1")
    root = logging.getLogger()
    saved = sys.argv[:], sys.path[:], list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        with process_state(extra, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sys.argv = {"-m": [target], "-c": ["-c"], "script": [target]}[mode] + rest
            first = str(Path(target).resolve().parent) if mode == "script" else os.getcwd()
            sys.path.insert(0, first)
            try:
                if mode == "-m":
                    runpy.run_module(target, run_name="__main__", alter_sys=True)
                elif mode == "script":
                    runpy.run_path(target, run_name="__main__")
                else:
                    exec(compile(target, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102 - python -c
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=err)
            except Exception:  # what the interpreter does with an uncaught exception
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv, sys.path[:], root.handlers[:], root.level = saved[0], saved[1], saved[2], saved[3]
    proc = subprocess.CompletedProcess(["python", *argv], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"{proc.args} failed ({code}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def bundle_run_error(config_file: Path | str, error_type: type[BaseException], **overrides):
    """Run the bundle's ``edit`` id through MONAI's ``ConfigWorkflow`` in this process, expecting it to fail.

    Returns ``(raised, cause)``: what ``run()`` raised (MONAI wraps what a component raises in
    RuntimeError) and the first ``error_type`` on its ``__cause__`` chain (None where there is none).
    Raises AssertionError when the run succeeds.
    """
    from monai.bundle import ConfigWorkflow

    with process_state():  # the workflow puts the bundle on sys.path and imports its scripts
        wf = ConfigWorkflow(config_file=str(config_file), run_id="edit", workflow_type=None, logging_file=False,
                            **overrides)  # fmt: skip
        wf.initialize()
        try:
            wf.run()
        except Exception as raised:  # noqa: BLE001 - any failure; the caller checks its cause
            cause = raised
            while cause is not None and not isinstance(cause, error_type):
                cause = cause.__cause__
            return raised, cause
    raise AssertionError(f"{config_file}: the bundle run succeeded")
