"""Collect and run the documentation's examples (README.md and docs/, issue 18).

Every ```python and ```bash block is an example; Sybil's Markdown lexer finds the fenced blocks
and this module gives them meaning. An HTML comment right before a block, invisible on the site
and visible in the source, says how the test runs it (`docs/contributing.md` lists the
directives)::

    <!-- example: replace "--n 1000" "--n 6"; replace "--steps 200" "--steps 4" -->

* ``replace "A" "B"``: run the block with A replaced by B (A must occur: an override that no
  longer matches the example fails instead of silently running the full size);
* ``given NAME``: provide NAME first, an input the example expects the reader to have (GIVENS);
* ``write FILE``: (any block) write the block's text to FILE in the working folder;
* ``compile-only: REASON`` (last; the reason is free text): needs what CI cannot have; Python is compiled and checked for
  undefined names (pyflakes), shell with ``bash -n``;
* ``skip: REASON`` (last): not run (the test suite itself);
* ``slow``: the page's test is marked slow.

The blocks of one page run in order in one working folder (:func:`make_workspace`) and the
Python blocks share one namespace, as a reader who follows the page top to bottom would.  Shell
blocks run in bash, their ``radedit`` and ``python`` commands served by the test process
(:mod:`tests.example_server`; ``RADEDIT_EXAMPLES_IN_PROCESS=0`` runs them as processes).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages
from sybil import Document, Region, Sybil
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

from tests.example_server import run_bash

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_LANGUAGES = {"python", "bash"}
#: what a page's working folder links to (read-only use) or copies (the bundle writes next to its configs)
LINKED = ["radedit_core", "scripts", "benchmarks", "tests", "RadEditSlicer", "docs", "mkdocs.yml", "pyproject.toml"]
COPIED = ["monai_bundle"]
BLOCK_TIMEOUT_S = 600

VALUE = re.compile(r"\{\{(\w+)\}\}")
DIRECTIVE = re.compile(r"<!--\s*example:(?P<body>(?:(?!-->).)*)-->\s*\Z", re.DOTALL)


@dataclass
class Directives:
    replacements: list[tuple[str, str]] = field(default_factory=list)
    givens: list[str] = field(default_factory=list)
    write: str | None = None
    compile_only: str | None = None
    skip: str | None = None
    slow: bool = False


def parse_directives(text: str, where: str) -> Directives:
    """``replace "A" "B"; given NAME; write FILE; compile-only: WHY; skip: WHY; slow``."""
    found = Directives()
    # compile-only and skip take the rest of the comment as their reason (free text, ";" included)
    reason = re.search(r"(?:^|;)\s*(compile-only|skip):(.*)$", text, re.DOTALL)
    if reason:
        text = text[: reason.start()]
        setattr(found, reason.group(1).replace("-", "_"), reason.group(2).strip() or "(no reason given)")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    clauses: list[list[str]] = [[]]
    for token in lexer:
        if token == ";":
            clauses.append([])
        else:
            clauses[-1].append(token)
    for clause in filter(None, clauses):
        name, args = clause[0].rstrip(":"), clause[1:]
        if name == "replace" and len(args) == 2:
            found.replacements.append((args[0], args[1]))
        elif name == "given" and len(args) == 1:
            found.givens.append(args[0])
        elif name == "write" and len(args) == 1:
            found.write = args[0]
        elif name == "slow" and not args:
            found.slow = True
        else:
            raise ValueError(f"{where}: unknown example directive {' '.join(clause)!r}")
    return found


@dataclass
class Block:
    language: str
    source: str
    directives: Directives
    where: str

    def runnable_source(self, values: dict[str, str]) -> str:
        """The block with its replacements; ``{{name}}`` in a replacement is a value a given provided
        (e.g. the address of the test's PACS)."""
        source = self.source
        for old, new in self.directives.replacements:
            if old not in source:
                raise AssertionError(f"{self.where}: directive replace {old!r}: not in the example")
            source = source.replace(old, VALUE.sub(lambda m: values[m.group(1)], new))
        return source


def parse_examples(document: Document):
    """Sybil parser: the fenced blocks that are examples, with the directive comment before them."""
    for region in FencedCodeBlockLexer(r"[\w+-]+")(document):
        language = region.lexemes["language"]
        before = document.text[: region.start].rstrip()
        match = DIRECTIVE.search(before)
        line = document.text.count("\n", 0, region.start) + 1
        where = f"{Path(document.path).relative_to(ROOT)}:{line}"
        directives = parse_directives(match.group("body"), where) if match else Directives()
        if language not in RUN_LANGUAGES and directives.write is None:
            continue
        block = Block(language, str(region.lexemes["source"]), directives, where)
        yield Region(region.start, region.end, block, evaluate_block)


SYBIL = Sybil(parsers=[parse_examples], patterns=["*.md"])


# -- inputs an example expects the reader to have -------------------------------------------------
# Each takes (working folder, name, pytest request) and returns values for ``{{name}}`` in replacements.
def _given_predictor(folder: Path, name: str, request) -> dict[str, str]:
    """The reader's model under test: a pneumothorax classifier (TorchScript + sidecar) trained in
    a second on a phantom world where the drain is the easy cue (tests/stress_phantom_predictors.py)."""
    from tests import stress_phantom_predictors as predictors

    model = predictors.train(*predictors.world_images(64, seed=1))
    predictors.save(model, folder / name, "the reader's model (phantom-world pneumothorax classifier)")
    return {}


def _given_orthanc(folder: Path, name: str, request) -> dict[str, str]:
    """The reader's PACS holding the sample study: the test session's private Orthanc
    (tests/orthanc_server.py), with radedit_core/data/sample_study stored in it."""
    server = request.getfixturevalue("orthanc")
    for path in sorted((ROOT / "radedit_core" / "data" / "sample_study").glob("*.dcm")):
        server.upload(path.read_bytes())
    return {"orthanc_dimse": server.dimse(), "orthanc_dicomweb": server.dicomweb}


GIVENS = {
    "my_model.ts": _given_predictor,
    "orthanc": _given_orthanc,
}


def provide(name: str, folder: Path, namespace: dict) -> None:
    provided = namespace.setdefault("__given__", {})
    if name in provided:
        return
    if name not in GIVENS:
        raise AssertionError(f"example directive given {name!r}: no such input in tests/doc_examples.py GIVENS")
    provided[name] = GIVENS[name](folder, name, namespace["__request__"])
    namespace.setdefault("__values__", {}).update(provided[name])


# -- running -------------------------------------------------------------------------------------
def make_workspace(folder: Path) -> Path:
    """A working folder that looks like the checkout after the set-up: links to the sources, a
    copy of the bundle (it writes beside its configs) and the test's environment as `.venv`."""
    for name in LINKED:
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("eval", "__pycache__"))
    (folder / ".venv").symlink_to(Path(sys.prefix))
    return folder


def example_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HUB_OFFLINE"] = "1"  # nothing downloads: the examples run on the bundled demo model
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def undefined_names(source: str, where: str, known: set[str]) -> list[str]:
    tree = ast.parse(source, filename=where)
    found = pyflakes_checker.Checker(tree, filename=where, builtins=known)
    return sorted({m.message_args[0] for m in found.messages if isinstance(m, pyflakes_messages.UndefinedName)})


def evaluate_block(example) -> None:
    block: Block = example.parsed
    d = block.directives
    folder: Path = example.namespace["__workspace__"]
    if d.skip:
        return
    if not d.compile_only:
        for name in d.givens:
            provide(name, folder, example.namespace)
    source = block.runnable_source(example.namespace.get("__values__", {}))
    if d.write:
        (folder / d.write).parent.mkdir(parents=True, exist_ok=True)
        (folder / d.write).write_text(source)
    if block.language not in RUN_LANGUAGES:
        return
    if block.language == "python":
        compile(source, block.where, "exec")
        known = set() if d.compile_only else {k for k in example.namespace if not k.startswith('__')}
        missing = undefined_names(source, block.where, known)
        assert not missing, f"{block.where}: undefined names {missing}"
    else:
        check = subprocess.run(["bash", "-n", "-c", source], capture_output=True, text=True)
        assert check.returncode == 0, f"{block.where}: {check.stderr}"
    if d.compile_only:
        return
    if block.language == "python":
        exec(compile(source, block.where, "exec"), example.namespace)
        return
    run = run_bash(source, folder, example_env(folder), BLOCK_TIMEOUT_S)
    output = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, f"{block.where}: exit code {run.returncode}\n{output}"
    example.namespace["__last_output__"] = run.stdout


def page_is_slow(path: Path) -> bool:
    return any(example.parsed.directives.slow for example in SYBIL.parse(path))
