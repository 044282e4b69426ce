"""Write ``tests/slicer_api_refs.json``: where each Slicer/CTK name the RadEdit module calls is declared.

For every supported Slicer release (the tags below) and every name of
``SLICER_NAMES``/``CTK_NAMES``/the MRML methods of ``tests/test_slicer_api.py``,
this finds the declaring line in Slicer's (or, at the commit that Slicer
release builds, CTK's) source with ``git grep`` and records ``path:line``.
Only locations are written, never source text.  A name missing from a
release stops the script with the release and the name.

Usage::

    python scripts/slicer_api_refs.py /path/to/Slicer.git /path/to/CTK.git
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from slicer_api_names import CTK_NAMES, MRML_METHODS, OPTIONAL_METHODS, SLICER_NAMES, SLICER_TAGS  # noqa: E402


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def find(repo: str, rev: str, path: str, pattern: str) -> str | None:
    try:
        text = git(repo, "show", f"{rev}:{path}")
    except subprocess.CalledProcessError:
        return None
    regex = re.compile(pattern)
    for number, line in enumerate(text.splitlines(), 1):
        if regex.search(line):
            return f"{path}:{number}"
    return None


def header_of(repo: str, rev: str, cls: str, cache: dict) -> str | None:
    if (rev, cls) not in cache:
        names = git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()
        cache[(rev, cls)] = next((n for n in names if n.endswith(f"/{cls}.h")), None)
    return cache[(rev, cls)]


def ctk_commit(slicer: str, tag: str) -> str:
    text = git(slicer, "show", f"{tag}:SuperBuild/External_CTK.cmake")
    return re.search(r'Slicer_\$\{proj\}_GIT_TAG\s*\n?\s*"([0-9a-f]{40})"', text).group(1)


def main(slicer: str, ctk: str) -> int:
    refs: dict = {"tags": {}, "names": {}, "methods": {}}
    cache: dict = {}
    for tag in SLICER_TAGS:
        ctk_rev = ctk_commit(slicer, tag)
        refs["tags"][tag] = {"slicer": git(slicer, "rev-list", "-n1", tag).strip(), "ctk": ctk_rev}
        for name, (path, pattern) in SLICER_NAMES.items():
            where = find(slicer, tag, path, pattern)
            if where is None:
                raise SystemExit(f"{tag}: {name} not found ({path}: /{pattern}/)")
            refs["names"].setdefault(name, {})[tag] = where
        for name, (path, pattern) in CTK_NAMES.items():
            where = find(ctk, ctk_rev, path, pattern)
            if where is None:
                raise SystemExit(f"{tag} (CTK {ctk_rev[:10]}): {name} not found ({path}: /{pattern}/)")
            refs["names"].setdefault(name, {})[tag] = "CTK/" + where
        for method, cls in sorted(MRML_METHODS.items()):
            if not cls.startswith(("vtkMRML", "vtkSegment", "vtkSlicer", "vtkOrientedImageData")):
                continue  # VTK's own classes: checked against slicer-core's VTK by the test
            header = header_of(slicer, tag, cls, cache)
            where = header and find(slicer, tag, header, rf"\b{method}\s*\(|vtk(Set|Get|Boolean)\w*Macro\(\s*{re.escape(method[3:])}\b")
            if where is None and method not in OPTIONAL_METHODS:
                raise SystemExit(f"{tag}: {cls}::{method} not found in {header}")
            refs["methods"].setdefault(f"{cls}.{method}", {})[tag] = where
    out = REPO / "tests" / "slicer_api_refs.json"
    out.write_text(json.dumps(refs, indent=1, sort_keys=True) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
