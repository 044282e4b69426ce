"""radedit_core's import graph, read from the source with ast: no cycle, stages in order.

Every import counts, at the top of a module and inside functions alike (an
import inside a function that closed a cycle would hide it, not remove it).
The stage order is :data:`radedit_core.STAGES`.  An import of a radedit_core
module inside a function must defer a third-party library that the importing
module does not load at import time; otherwise it belongs at the top.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import radedit_core
from radedit_core import STAGES

PACKAGE = Path(radedit_core.__file__).resolve().parent
ROOT = "radedit_core"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "radedit_core.imaging.io"
    target: str  # imported module, e.g. "radedit_core.dicom.reading"
    line: int
    lazy: bool  # inside a function (or any block but the module's top level)


def _module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _top_level_nodes(tree: ast.Module) -> set[int]:
    """Imports that run when the module is imported: module level, also under if/try (not in defs)."""
    found: set[int] = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.add(id(node))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(tree.body)
    return found


def _imports(module: str, path: Path) -> tuple[list[Import], set[str], set[str]]:
    """(radedit_core imports, third-party packages at import time, third-party packages lazily)."""
    tree = ast.parse(path.read_text(), str(path))
    top = _top_level_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    third_top: set[str] = set()
    third_lazy: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            targets = [(base_name, [alias.name for alias in node.names])]
        else:
            continue
        lazy = id(node) not in top
        for name, names in targets:
            if name == ROOT or name.startswith(ROOT + "."):
                # `from pkg import sub` imports the submodule sub; `from pkg import name` the package.
                subs = [f"{name}.{n}" for n in names or [] if f"{name}.{n}" in MODULES]
                rest = [n for n in names or [] if f"{name}.{n}" not in MODULES]
                for target in subs + ([name] if rest or names is None else []):
                    found.append(Import(module, target, node.lineno, lazy))
            elif name and name.split(".")[0] != "__future__":
                top_name = name.split(".")[0]
                if top_name not in sys.stdlib_module_names:
                    (third_lazy if lazy else third_top).add(top_name)
    return found, third_top, third_lazy


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}
EDGES = [edge for imports, _, _ in GRAPH.values() for edge in imports]


def _stage(module: str) -> int:
    relative = module.removeprefix(ROOT + ".") if module != ROOT else ""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (relative == prefix or relative.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_graph_is_read():
    # The reader must see both kinds of import, or the checks below prove nothing.
    assert len(MODULES) > 100
    assert any(e.source == f"{ROOT}.workflow" and e.target == f"{ROOT}.imaging.io" and not e.lazy for e in EDGES)
    assert any(e.source == f"{ROOT}.cli.edit" and e.target == f"{ROOT}.workflow" and e.lazy for e in EDGES)


def test_every_module_has_a_stage():
    missing = [m for m in MODULES if m != ROOT and _stage(m) is None]
    assert not missing, f"modules in no stage of radedit_core.STAGES: {missing}"


def _cycle() -> list[str] | None:
    """One cycle among radedit_core modules, or None (depth-first search)."""
    # Importing a module imports its parent packages first; an import of one's own
    # ancestor package is that same import, not a dependency of the ancestor on it.
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for edge in EDGES:
        if not _is_ancestor(edge.target, edge.source):
            graph[edge.source].add(edge.target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_check_finds_a_cycle(monkeypatch):
    # The check above can fail: an import back from a low module closes a cycle it reports.
    monkeypatch.setattr(
        sys.modules[__name__], "EDGES", EDGES + [Import(f"{ROOT}.errors", f"{ROOT}.fileio", 1, True)]
    )
    assert _cycle() is not None


def _against_stages(edges) -> list[str]:
    wrong = []
    for edge in edges:
        if _is_ancestor(edge.target, edge.source) or edge.target == ROOT:
            continue
        low, high = _stage(edge.target), _stage(edge.source)
        if low > high:
            wrong.append(
                f"{edge.source} (stage {STAGES[high][0]}) imports {edge.target} (stage {STAGES[low][0]}), "
                f"line {edge.line}{' inside a function' if edge.lazy else ''}"
            )
    return wrong


def test_imports_follow_the_stage_order():
    wrong = _against_stages(EDGES)
    assert not wrong, "imports against radedit_core.STAGES:\n" + "\n".join(wrong)


def test_stage_check_finds_an_import_upwards():
    assert _against_stages([Import(f"{ROOT}.imaging.masks", f"{ROOT}.workflow", 1, True)])


def _third_party_at_import(module: str, seen: set[str] | None = None) -> set[str]:
    """Third-party packages importing ``module`` loads (through its top-level imports)."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    imports, third_top, _ = GRAPH[module]
    found = set(third_top)
    parts = module.split(".")
    for ancestor in (".".join(parts[:i]) for i in range(1, len(parts))):
        found |= _third_party_at_import(ancestor, seen)
    for edge in imports:
        if not edge.lazy:
            found |= _third_party_at_import(edge.target, seen)
    return found


def test_imports_inside_functions_only_defer_third_party_libraries():
    needless = []
    for edge in EDGES:
        if not edge.lazy or _is_ancestor(edge.target, edge.source):
            continue
        deferred = _third_party_at_import(edge.target) - _third_party_at_import(edge.source)
        if not deferred:
            needless.append(f"{edge.source} line {edge.line}: {edge.target} defers no third-party library")
    assert not needless, "imports inside functions that belong at the top:\n" + "\n".join(needless)


@pytest.mark.parametrize("name, prefixes", STAGES)
def test_stage_prefixes_name_modules(name, prefixes):
    for prefix in prefixes:
        assert f"{ROOT}.{prefix}" in MODULES, f"stage {name}: no module radedit_core.{prefix}"


def test_command_line_loads_no_torch():
    # What the imports inside functions are for: `radedit --help` and option errors stay fast.
    import subprocess  # noqa: PLC0415

    code = "import sys, radedit_core.cli; print(sorted({'torch', 'diffusers', 'monai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_bad_training_option_is_refused_before_torch_is_imported(tmp_path):
    # `radedit train` checks every option (training/settings.py) before it imports the engine.
    import subprocess  # noqa: PLC0415

    code = (
        "import sys; from radedit_core.cli import main\n"
        f"code = main(['train', '--datalist', {str(tmp_path / 'd.json')!r}, '--output', {str(tmp_path / 'out')!r},"
        " '--learning-rate', '-1'])\n"
        "print(code, sorted({'torch', 'diffusers', 'monai'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    from radedit_core.errors import ConfigError  # noqa: PLC0415

    assert proc.stdout.strip() == f"{ConfigError.exit_code} []", proc.stdout + proc.stderr
    assert "learning" in proc.stderr and not (tmp_path / "out").exists()
