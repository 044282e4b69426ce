"""Every example of the README and the documentation runs (issue 18): one test per page, its
blocks in order in one working folder, on the demo model and the bundled data, with the small
sizes each block's directive comment states (tests/doc_examples.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.doc_examples import (
    PAGES,
    ROOT,
    SYBIL,
    make_workspace,
    page_is_slow,
    parse_directives,
)
from tests.orthanc_server import orthanc  # noqa: F401 - the PACS examples' server (given orthanc)


def _page_param(path):
    marks = [pytest.mark.slow] if page_is_slow(path) else []
    return pytest.param(path, id=path.relative_to(ROOT).as_posix(), marks=marks)


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES])
def test_page_examples(page, tmp_path, monkeypatch, request):
    document = SYBIL.parse(page)
    folder = make_workspace(tmp_path)
    document.namespace["__workspace__"] = folder
    document.namespace["__request__"] = request
    monkeypatch.chdir(folder)
    for example in document:
        example.evaluate()


def test_every_python_and_bash_block_is_collected():
    """The collector sees every ```python/```bash fence (indented ones in lists included)."""
    for page in PAGES:
        text = page.read_text()
        fences = sum(1 for line in text.splitlines() if line.strip() in ("```python", "```bash"))
        collected = sum(1 for e in SYBIL.parse(page) if e.parsed.language in ("python", "bash"))
        assert collected == fences, page


def test_directives_are_checked():
    assert parse_directives('replace "--n 1000" "--n 6"; slow', "x").replacements == [("--n 1000", "--n 6")]
    both = parse_directives('given orthanc; compile-only: needs a GPU; and the weights', "x")
    assert both.givens == ["orthanc"] and both.compile_only == "needs a GPU; and the weights"
    with pytest.raises(ValueError, match="unknown example directive"):
        parse_directives("replce a b", "x")


MAIN_JOB = ("bash scripts/setup.sh && .venv/bin/python -m monai.bundle run edit "
            "--config_file monai_bundle/configs/inference.json")


def test_main_job_command_is_the_readmes_first():
    """getting-started.md skips its copy of the main job because README.md runs the same words."""
    readme = [e.parsed.source.strip() for e in SYBIL.parse(ROOT / "README.md") if e.parsed.language == "bash"]
    started = [e.parsed.source.strip() for e in SYBIL.parse(ROOT / "docs" / "getting-started.md")
               if e.parsed.language == "bash"]
    assert readme[0] == MAIN_JOB and started[0] == MAIN_JOB


def test_a_package_an_in_process_call_imported_from_a_folder_it_put_on_the_path_ends_with_the_call(tmp_path, monkeypatch):
    """As a bundle run does: ``python -m monai.bundle`` puts the bundle's folder on ``sys.path`` and
    imports its ``scripts``.  When that folder lies inside one on the search path (the repository's
    ``monai_bundle``), a later in-process run of another copy of the bundle (an example's workspace)
    must import its own ``scripts``, not get this one: found in the repository is not found by name."""
    import cli_runner

    for copy in ("first", "second"):
        package = tmp_path / copy / "bundle" / "pkg_of_a_bundle_copy"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"WHERE = {copy!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the repository's place: a search path above both copies
    code = "import sys; sys.path.insert(0, sys.argv[1]); import pkg_of_a_bundle_copy as p; print(p.WHERE)"
    first = cli_runner.python("-c", code, str(tmp_path / "first" / "bundle"), check=True)
    assert first.stdout.strip() == "first" and "pkg_of_a_bundle_copy" not in sys.modules
    second = cli_runner.python("-c", code, str(tmp_path / "second" / "bundle"), check=True)
    assert second.stdout.strip() == "second"


def test_shell_examples_commands_run_in_this_process_and_keep_bash_semantics(tmp_path):
    """tests/example_server.py: ``radedit`` and ``python -m/-c/script`` come back to the test process
    with their output and exit codes; bash keeps its variables, ``$(...)``, ``||`` and ``set -e``."""
    from tests.doc_examples import example_env
    from tests.example_server import in_process, run_bash

    if not in_process():
        pytest.skip("RADEDIT_EXAMPLES_IN_PROCESS=0: every command runs as a process")
    (tmp_path / "script.py").write_text("import sys, os\nprint(os.getpid(), sys.argv[1:], sys.path[0])\n")
    source = """
        version=$(radedit --version)
        echo "version [$version]"
        status=0
        radedit edit --image missing.png --prompt x --global-edit --output out.png || status=$?
        echo "edit exit $status"
        python -c "import os, sys; print('pid', os.getpid(), sys.argv)" a b
        python script.py one "two words"
        status=0
        python -c "import sys; sys.exit(3)" || status=$?
        echo "python exit $status"
        MY_SETTING=42 python -c "import os; print('env', os.environ['MY_SETTING'])"
        python --version
        python -c "import shutil; print('nested', shutil.which('radedit'))"
    """
    run = run_bash(source, tmp_path, example_env(tmp_path), 120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    from radedit_core._version import __version__

    assert any(line.startswith("version [") and __version__ in line for line in lines), lines
    assert "edit exit 2" in lines, (lines, run.stderr)
    assert "radedit: error: missing.png: file does not exist" in run.stderr and not (tmp_path / "out.png").exists()
    assert f"pid {os.getpid()} ['-c', 'a', 'b']" in lines
    assert f"{os.getpid()} ['one', 'two words'] {tmp_path}" in lines
    assert "python exit 3" in lines and "env 42" in lines
    assert "MY_SETTING" not in os.environ
    assert any(line.startswith("Python 3.") for line in lines)  # the real interpreter (no -m/-c/script)
    # a served command's own processes run the real commands (the server is busy with it)
    assert f"nested {Path(sys.executable).parent / 'radedit'}" in lines
    # set -e: a failing served command ends the block with its code
    assert run_bash("radedit edit --nonsense\necho after", tmp_path, example_env(tmp_path), 60).returncode == 2
