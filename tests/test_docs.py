"""The documentation site builds with ``mkdocs build --strict``: a broken link, anchor, image or
API reference (mkdocstrings) fails it, so the README's test command covers the site (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    # every page of the navigation was written, the API reference included
    for page in ["index.html", "getting-started/index.html", "method/index.html", "reference/editing/index.html"]:
        assert page in pages, sorted(pages)
    # mkdocstrings rendered the docstrings (not an empty page)
    assert "RadEditor" in (site / "reference" / "editing" / "index.html").read_text()


def test_mkdocs_strict_fails_on_a_broken_link(tmp_path):
    """The check can fail: the same configuration with one page linking to a missing page."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [a page that does not exist](missing.md).\n")
    config = tmp_path / "mkdocs.yml"
    text = (ROOT / "mkdocs.yml").read_text()
    text = text.split("\nnav:")[0].replace("paths: [.]", f"paths: [{ROOT}]")
    config.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0 and "missing.md" in run.stdout + run.stderr


def test_the_defaults_editing_md_states_are_the_settings_layers():
    """docs/editing.md's Settings paragraph names the defaults; they are EditSettings' (a new user
    found the page saying keep scope `device` where the default is `mask`)."""
    import re

    from radedit_core.settings import EditSettings

    text = " ".join((ROOT / "docs" / "editing.md").read_text().split())
    defaults = EditSettings(["x"])
    stated = re.search(
        r"(\d+) steps, skip ratio ([\d.]+), guidance ([\d.]+) \(per prompt\), invert guidance ([\d.]+), eta ([\d.]+), "
        r"seed (\d+), (\w+) inversion, \*\*keep mode `(\w+)`\*\*.*?\*\*masks dilated by (\d+) px\*\*.*?"
        r"\*\*keep scope `(\w+)`\*\*.*?detail `(\w+)`",
        text,
    )
    assert stated, "docs/editing.md: the Settings paragraph's list of defaults was not found"
    steps, skip, guidance, invert, eta, seed, inversion, keep_mode, dilate, keep_scope, detail = stated.groups()
    assert (int(steps), float(skip), [float(guidance)], float(invert), float(eta), int(seed)) == (
        defaults.steps, defaults.skip_ratio, defaults.weights, defaults.invert_guidance, defaults.eta, defaults.seed,
    )
    assert (inversion.lower(), keep_mode, int(dilate), keep_scope, detail) == (
        defaults.inversion, defaults.keep_mode, defaults.dilate, defaults.keep_scope, defaults.detail,
    )
