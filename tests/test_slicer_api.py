"""Every Slicer, CTK, MRML and VTK name the module calls exists in every supported Slicer release.

The module's code (``RadEdit.py`` and ``RadEditLib``) is read with ``ast``:

* ``slicer.util.*``, ``slicer.vtk*`` and the MRML/VTK methods (CamelCase
  calls) are checked against the ``slicer-core`` wheel (Slicer 5.13's
  classes) where it has them;
* every name must also be listed in ``slicer_api_names.py``, and
  ``slicer_api_refs.json`` (written by ``scripts/slicer_api_refs.py`` from
  Slicer's and CTK's git history) must give, for each supported release, the
  source line that declares it: the GUI-only names (``slicer.app``, the
  layout manager, DICOMUtils, ...) are checked that way only;
* a method some release lacks must be called behind ``hasattr``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import slicer
import slicer.util
import vtk
from slicer_api_names import CTK_NAMES, MRML_METHODS, OPTIONAL_METHODS, QT_NAMES, SLICER_NAMES, SLICER_TAGS

REPO = Path(__file__).resolve().parents[1]
FILES = [REPO / "RadEditSlicer" / "RadEdit.py", *sorted((REPO / "RadEditSlicer" / "RadEditLib").glob("*.py"))]
REFS = json.loads((Path(__file__).with_name("slicer_api_refs.json")).read_text())
#: Receivers of GUI-only calls, by variable name, in the functions that hold them.
GUI_RECEIVERS = {"layoutManager": "layoutManager", "widget": "sliceWidget"}
GUI_FUNCTIONS = {"showComparison", "_fitViews"}


def dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call):  # slicer.app.layoutManager().layoutLogic() -> keep the tail
        inner = dotted(node.func)
        return None if inner is None else ".".join([inner + "()", *reversed(parts)])
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


class Uses:
    def __init__(self):
        self.slicer: set[str] = set()  # slicer.util.X, slicer.app.X, slicer.vtkX, ...
        self.methods: dict[str, list[tuple[Path, ast.FunctionDef | None]]] = {}
        self.gui: set[str] = set()


def read_uses() -> Uses:
    uses = Uses()
    for path in FILES:
        tree = ast.parse(path.read_text())
        modules = {
            (alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        } | {"qt"}  # panel.py's Qt helpers get Slicer's qt module as a parameter
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        owner = {}
        for function in functions:
            for node in ast.walk(function):
                owner.setdefault(id(node), function)  # outermost first: ast.walk is breadth-first
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                name = dotted(node)
                if name and name.startswith("slicer.") and not name.startswith("slicer.util.VTKObservationMixin"):
                    parts = name.split(".")
                    keep = 3 if parts[1] in ("util", "app", "modules") else 2
                    uses.slicer.add(".".join(parts[:keep]).removesuffix("()"))
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, node.func.value
            function = owner.get(id(node))
            if isinstance(receiver, ast.Name) and receiver.id in GUI_RECEIVERS and function and function.name in GUI_FUNCTIONS:
                uses.gui.add(f"{GUI_RECEIVERS[receiver.id]}.{method}")
            if not method[:1].isupper():
                continue
            base = dotted(receiver) or ""
            root = base.split(".")[0]
            if root in modules and (root != "slicer" or base.startswith("slicer.util")):
                continue  # a class of an imported module (qt.QTimer, subprocess.Popen, ...), not a method
            uses.methods.setdefault(method, []).append((path, function))
    return uses


USES = read_uses()


def test_the_reader_finds_what_the_module_calls():
    assert {"slicer.util.pip_install", "slicer.app.layoutManager", "slicer.modules.segmentations",
            "slicer.vtkSegmentation", "slicer.mrmlScene"} <= USES.slicer
    assert {"ExportSegmentsToLabelmapNode", "FitSliceToAll", "GetSourceRepresentationName"} <= set(USES.methods)
    assert {"layoutManager.setLayout", "sliceWidget.sliceLogic"} <= USES.gui
    assert "QTimer" not in USES.methods and "Popen" not in USES.methods


def test_every_slicer_name_is_known_and_exists_in_slicer_core_where_it_can():
    for name in sorted(USES.slicer):
        parts = name.split(".")
        if name in ("slicer.app", "slicer.modules", "slicer.util"):
            continue  # the namespace itself; its members are checked as they are used
        if parts[1] == "util":
            assert hasattr(slicer.util, parts[2]), name
            assert name in SLICER_NAMES, f"{name}: add it to slicer_api_names.py"
        elif parts[1].startswith("vtk"):
            assert hasattr(slicer, parts[1]), name
        else:
            assert name in SLICER_NAMES or name in QT_NAMES or name in ("slicer.app", "slicer.modules", "slicer.util"), (
                f"{name}: a GUI-only name, add it to slicer_api_names.py with where Slicer declares it"
            )
    for name in sorted(USES.gui):
        assert name in SLICER_NAMES, f"{name}: add it to slicer_api_names.py"


def test_every_mrml_and_vtk_method_exists_on_its_class():
    for method in sorted(USES.methods):
        assert method in MRML_METHODS, f"{method}: add it to MRML_METHODS (slicer_api_names.py) with its class"
    for method, cls in MRML_METHODS.items():
        klass = getattr(slicer, cls, None) or getattr(vtk, cls)
        assert hasattr(klass, method), f"{cls}.{method} is not in slicer-core"
    assert not set(MRML_METHODS) - set(USES.methods), "listed but no longer called: remove"


@pytest.mark.parametrize("tag", SLICER_TAGS)
def test_every_name_is_declared_in_each_supported_release(tag):
    assert set(REFS["tags"]) == set(SLICER_TAGS)
    for name in list(SLICER_NAMES) + list(CTK_NAMES):
        where = REFS["names"].get(name, {}).get(tag)
        assert where and where.rsplit(":", 1)[1].isdigit(), f"{name} has no source line for {tag}: rerun scripts/slicer_api_refs.py"
    for method, cls in MRML_METHODS.items():
        if not cls.startswith(("vtkMRML", "vtkSegment", "vtkSlicer", "vtkOrientedImageData")):
            continue
        where = REFS["methods"].get(f"{cls}.{method}", {}).get(tag, "missing")
        if where is None:
            assert method in OPTIONAL_METHODS, f"{cls}.{method} is not in Slicer {tag}"
        else:
            assert where != "missing" and where.startswith(("Libs/", "Modules/", "Base/")), (cls, method, tag)


def test_methods_newer_than_the_oldest_release_are_called_behind_hasattr():
    for method in OPTIONAL_METHODS:
        for path, function in USES.methods.get(method, []):
            assert function is not None
            source = ast.unparse(function)
            assert f"'{method}'" in source and "hasattr(" in source, f"{path.name}:{function.name} calls {method} unguarded"
