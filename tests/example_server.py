"""Run a documentation example's shell block with its ``radedit`` and ``python`` commands served by
the test process (issue 18: the suite's time).

A shell example runs in a real ``bash`` (its variables, pipes, ``$(...)``, ``|| status=$?`` and
``test`` lines are bash's), but each ``radedit ...`` or ``python -m/-c/script.py ...`` command in it
would start a Python process that pays about 10 s of imports (torch, diffusers, transformers)
before it does anything.  So the block's ``PATH`` starts with a folder of two small launchers,
``radedit`` and ``python``: each sends its command line, working folder and environment over a
Unix socket to the test process, which runs the command there (:mod:`tests.cli_runner`: the same
entry point, argv, environment and folder, put back afterwards) and sends back what a process
would have written and its exit code; the launcher writes those and exits with that code.
``python`` with anything else (another option first, no arguments) runs the real interpreter.

What a process has that this does not: a fresh interpreter (modules stay imported) and output
written by C code or child processes straight to file descriptors 1 and 2 (not captured here);
warnings that go through :mod:`logging` are appended to ``stderr`` as a process's CLI logger would
write them.  The console script itself, the README's literal ``.venv/bin/python -m monai.bundle``
and the commands whose process is the point are tested as real processes elsewhere; with
``RADEDIT_EXAMPLES_IN_PROCESS=0`` the examples run every command as a process too.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import cli_runner

#: the launcher both commands share (``python -S``: no site import, it starts in milliseconds)
LAUNCHER = '''#!{python} -S
import json, os, socket, sys
name, argv = os.path.basename(sys.argv[0]), sys.argv[1:]
if name == "python" and not (argv and (argv[0] in ("-m", "-c") or argv[0].endswith(".py"))):
    os.execv({python!r}, [{python!r}, *argv])
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(os.environ["RADEDIT_EXAMPLE_SERVER"])
request = {{"program": name, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}
connection.sendall(json.dumps(request).encode())
connection.shutdown(socket.SHUT_WR)
reply = json.loads(b"".join(iter(lambda: connection.recv(1 << 16), b"")).decode())
sys.stdout.write(reply["stdout"])
sys.stdout.flush()
sys.stderr.write(reply["stderr"])
sys.exit(reply["returncode"])
'''


def in_process() -> bool:
    return os.environ.get("RADEDIT_EXAMPLES_IN_PROCESS", "1") != "0"


def serve(request: dict) -> subprocess.CompletedProcess:
    """Run one launcher's command in this process.

    The command sees the block's environment less the launchers: a process it starts itself
    runs the real ``radedit``/``python`` (this process is busy serving it and could not
    answer a nested request)."""
    program, argv, cwd = request["program"], request["argv"], request["cwd"]
    env = dict(request["env"])
    shims = str(Path(env.pop("RADEDIT_EXAMPLE_SERVER", "")).parent / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != shims)
    with cli_runner.process_state(env, replace=True):
        if program == "radedit":
            proc = cli_runner.radedit(*argv, cwd=cwd)
            proc.stderr += "".join(line + "\n" for line in proc.logged)
            return proc
        return cli_runner.python(*argv, cwd=cwd)


def _answer(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        data = b"".join(iter(lambda: connection.recv(1 << 16), b""))
        try:
            proc = serve(json.loads(data.decode()))
            reply = {"stdout": proc.stdout, "stderr": proc.stderr, "returncode": proc.returncode}
        except Exception as exc:  # noqa: BLE001 - a failure of the server itself, shown as the command's
            reply = {"stdout": "", "stderr": f"tests/example_server.py: {exc!r}\n", "returncode": 70}
        connection.sendall(json.dumps(reply).encode())


def run_bash(source: str, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``bash -euo pipefail -c SOURCE`` in ``cwd`` with ``env``, its ``radedit``/``python`` commands run
    here (see the module docstring); what :func:`subprocess.run` returns with text output."""
    command = ["bash", "-euo", "pipefail", "-c", source]
    if not in_process():
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    # A short path of our own: a Unix socket's path has a limit of about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="rx-") as folder, \
            tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # fmt: skip
        shims = Path(folder) / "bin"
        shims.mkdir()
        for name in ("radedit", "python"):
            (shims / name).write_text(LAUNCHER.format(python=sys.executable))
            (shims / name).chmod(0o755)
        address = str(Path(folder) / "socket")
        env = {**env, "PATH": f"{shims}{os.pathsep}{env.get('PATH', '')}", "RADEDIT_EXAMPLE_SERVER": address}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(address)
            listener.listen(4)
            bash = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
            deadline = time.monotonic() + timeout
            try:
                while bash.poll() is None:
                    if time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired(command, timeout)
                    ready, _, _ = select.select([listener], [], [], 0.1)
                    if ready:
                        _answer(listener)
            finally:
                if bash.poll() is None:
                    bash.kill()
                    bash.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, bash.returncode, out.read(), err.read())
