"""Stress-test verdicts a researcher can defend (issue 17, sections 1-3).

* The README's stress commands on a small phantom world (24 cases, 5 with a pneumothorax, 6 steps), as a
  user types them (run in this process, ``cli_runner.radedit``: what the commands do, not their process):
  the datalist's rows are read by the one rule (every list by default, ``--split`` to choose) and the
  console says which; the set refers to its images relative to the set folder (or copies them in);
  the drain detector's shortcut effect is about -100 points with an interval that excludes 0.
* Intervals at the boundaries: 0/6 and 6/6 keep a width (Wilson, checked against scipy's own);
  clustering widens them; a model that follows the finding has a shortcut effect near 0;
  no table pools edits with shams.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from cli_runner import radedit

from radedit_core.stress import intervals
from radedit_core.stress.metrics import ClassificationTable, Outcomes, SourceBootstrap, summarise

REPO = Path(__file__).resolve().parent.parent
MANIFESTATION = REPO / "radedit_core" / "data" / "recipes" / "phantom_world" / "manifestation.yaml"


# -- intervals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, n", [(0, 6), (6, 6), (3, 6), (1, 20), (40, 40)])
def test_wilson_is_scipys_and_keeps_a_width_at_0_and_1(k, n):
    lo, hi = intervals.wilson(k / n, n, 0.95)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert hi - lo > 0.05
    clusters = np.arange(n)
    est = intervals.proportion(np.r_[np.ones(k), np.zeros(n - k)], clusters, 0.95)
    assert est["ci"] == pytest.approx([ref.low, ref.high]) and "Wilson" in est["method"]
    if k == 0 and n == 6:
        assert hi >= 0.39  # [0, 39.0] %
    if k == 6 and n == 6:
        assert lo <= 0.61


def test_clustered_copies_carry_the_information_of_one():
    rng = np.random.default_rng(0)
    x = (rng.random(50) < 0.3).astype(float)
    one = intervals.proportion(x, np.arange(50), 0.95)
    three = intervals.proportion(np.repeat(x, 3), np.repeat(np.arange(50), 3), 0.95)
    assert three["design_effect"] == pytest.approx(3, rel=0.05)
    assert three["ci"] == pytest.approx(one["ci"], abs=0.01)
    # at the boundary the clustering cannot be estimated: the worst case (every copy the same) is taken
    zero = intervals.proportion(np.zeros(18), np.repeat(np.arange(6), 3), 0.95)
    assert zero["n_effective"] == pytest.approx(6) and zero["ci"][1] >= 0.39


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs():
    test = intervals.mcnemar_exact(np.zeros(6), np.ones(6))
    assert test["p_value"] == pytest.approx(2 * 0.5**6) and test["discordant"] == 6
    assert intervals.mcnemar_exact(np.ones(6), np.ones(6))["p_value"] == 1.0


def _sham_world(model: str, n: int = 6) -> Outcomes:
    """n sources with a pneumothorax and a drain, one edit each (finding removed, drain kept, label 0) and one
    sham each (label 1).  ``drain``: says 1 wherever the drain is; ``finding``: says what the image shows."""
    ids, kinds, sources, recipes, labels, says = [], [], [], [], [], []
    for i in range(n):
        for kind, recipe, label, suffix in (("real", None, 1, ""), ("synthetic", "remove-ptx", 0, "-e"),
                                            ("synthetic", "remove-ptx:sham", 1, "-s")):  # fmt: skip
            ids.append(f"s{i}{suffix}")
            kinds.append(kind)
            sources.append(f"s{i}")
            recipes.append(recipe)
            labels.append(label)
            says.append(1 if model == "drain" else label)
    # two negatives without a drain, so that the real set holds both classes
    for i in range(2):
        ids.append(f"n{i}"), kinds.append("real"), sources.append(f"n{i}"), recipes.append(None)
        labels.append(0), says.append(0)
    site = ["A" if k % 2 else "B" for k in range(len(ids))]
    out = Outcomes("classification", ["pneumothorax"], ids, np.array(kinds), sources, recipes, {"site": site})
    d = np.array(says, dtype=float)
    out.classification["pneumothorax"] = ClassificationTable(np.array(labels, dtype=float), 0.05 + 0.9 * d, d)
    return out


@pytest.mark.parametrize("model", ["drain", "finding"])
def test_shortcut_effect_of_a_drain_detector_and_of_a_model_following_the_finding(model):
    out = _sham_world(model)
    result = summarise(out, SourceBootstrap(out.sources, n_resamples=200, seed=0), subgroups=["site"])
    (effect,) = result["shortcut"]
    lo, hi = effect["effect"]["ci"]
    if model == "drain":
        assert effect["effect"]["value"] == pytest.approx(-1.0)  # -100 points
        assert hi < 0, "the interval must exclude 0"
        assert effect["edits"]["mcnemar"]["p_value"] < 0.05
        assert effect["verdict"].startswith("relies on something the edit kept")
    else:
        assert effect["effect"]["value"] == pytest.approx(0.0)
        assert lo < -0.5 and hi > 0.5  # 6 pairs cannot rule out a large effect
        assert effect["verdict"].startswith("cannot be read yet")
        world = _sham_world(model, n=60)
        (many,) = summarise(world, SourceBootstrap(world.sources, n_resamples=200, seed=0))["shortcut"]
        assert many["effect"]["value"] == pytest.approx(0.0) and -0.5 < many["effect"]["ci"][0] < 0 < many["effect"]["ci"][1] < 0.5
        assert many["verdict"].startswith("follows the finding") and not many["too_small"]
    assert effect["too_small"]  # 6 pairs
    groups = {g["group"]: g for g in result["groups"]["pneumothorax"]}
    edits = groups["recipe:remove-ptx"]["metrics"]["accuracy"]
    assert edits["ci"][1] - edits["ci"][0] > 0.3 and "Wilson" in edits["method"]  # 0/6 or 6/6: never [0, 0]
    assert groups["recipe:remove-ptx"]["too_small"]
    # no group and no subgroup row pools the edits with their shams
    assert groups["pooled"]["n"] == 6 + 2 + 6  # real images and edits, not the shams
    assert groups["recipe:remove-ptx:sham"]["n"] == 6 and groups["recipe:remove-ptx"]["n"] == 6
    for row in result["subgroups"]["pneumothorax"]["site"]:
        assert row["test_data"] in ("real", "remove-ptx", "remove-ptx:sham")


# -- the README's commands on a small phantom world ------------------------------------------------
#: The world's size and the edits' steps: enough positives (5 with seed 0) for a shortcut effect whose interval
#: excludes 0, with the demo model (whose edits must remove the finding for the strong predictor to hold).
CASES, STEPS = 24, 6


def _radedit(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return radedit(*args, cwd=cwd, home=home, env={"PYTHONWARNINGS": "ignore"})


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory, radedit_home):
    """The README's 'Stress tests' commands, typed in a fresh folder: world, build, evaluate, report."""
    from stress_phantom_predictors import drain_detector, train, world_images, save, UNBIASED

    work = tmp_path_factory.mktemp("readme")
    # scripts/make_phantom_world.py is this command (`radedit phantom`)
    _radedit(["phantom", "--out", "phantom", "--n", str(CASES), "--seed", "0"], work, radedit_home).check_returncode()
    (work / "predictors").mkdir()
    # the drain detector posing as a pneumothorax classifier; 300 draws see every drain of this world
    weak = drain_detector(work / "predictors", n=300)
    strong = save(train(*world_images(150, seed=2, **UNBIASED)), work / "predictors" / "strong.ts", "strong")
    build = _radedit(["stress", "build", "--datalist", "phantom/datalist.json", "--recipes", str(MANIFESTATION),
                      "--output", "stress_set/", "--subgroups", "site", "--steps", str(STEPS)], work, radedit_home)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    runs = {}
    for name, predictor in (("weak", weak), ("strong", strong)):
        ev = _radedit(["-q", "stress", "evaluate", "--set", "stress_set/", "--predictor", str(predictor), "--output",
                       f"results-{name}/", "--resamples", "200"], work, radedit_home)  # fmt: skip
        assert ev.returncode == 0, ev.stderr[-3000:]
        rep = _radedit(["stress", "report", "--results", f"results-{name}/"], work, radedit_home)
        assert rep.returncode == 0, rep.stderr[-3000:]
        runs[name] = json.loads((work / f"results-{name}" / "results.json").read_text())
    return work, build, runs


@pytest.mark.slow
def test_the_readme_build_reads_every_list_and_says_so(readme_run):
    work, build, _ = readme_run
    lists = json.loads((work / "phantom" / "datalist.json").read_text())
    counts = {k: len(lists[k]) for k in ("training", "validation", "testing")}
    assert sum(counts.values()) == CASES
    said = ", ".join(f"{k} ({v} row{'s' * (v != 1)})" for k, v in counts.items())
    assert f"read lists {said}" in build.stderr, build.stderr[-2000:]
    data = json.loads((work / "stress_set" / "set.json").read_text())
    rows = data["testing"]
    positives = sum(int(r["pneumothorax"]) for k in counts for r in lists[k])
    assert len([r for r in rows if r["kind"] == "real"]) == CASES
    assert len([r for r in rows if r.get("recipe") == "remove-pneumothorax"]) == positives >= 3
    assert len([r for r in rows if r.get("recipe") == "remove-pneumothorax:sham"]) == positives
    # every path relative to the set folder; the provenance's steps a number
    for r in rows:
        for column in ("image", "edit_mask", "keep_mask"):
            if r.get(column):
                assert not Path(r[column]).is_absolute(), r[column]
    assert data["provenance"]["edit_settings"]["remove-pneumothorax"]["steps"] == STEPS
    assert data["provenance"]["settings_overrides"]["steps"] == STEPS


@pytest.mark.slow
def test_split_chooses_lists_and_an_empty_choice_says_what_it_looked_at(readme_run, radedit_home, tmp_path):
    work, _, _ = readme_run
    lists = json.loads((work / "phantom" / "datalist.json").read_text())
    testing_positives = sum(int(r["pneumothorax"]) for r in lists["testing"])
    run = _radedit(["stress", "build", "--datalist", "phantom/datalist.json", "--split", "testing", "--recipes",
                    str(MANIFESTATION), "--output", str(tmp_path / "set"), "--steps", "2"], work, radedit_home)  # fmt: skip
    n = len(lists["testing"])
    if testing_positives == 0:
        assert run.returncode == 2 and "applies to no row" in run.stderr
        assert f"looked at list testing ({n} rows)" in run.stderr and run.stderr.count("\n") == 1
    else:
        assert run.returncode == 0 and f"read list testing ({n} rows) (as split chose)" in run.stderr
    bad = _radedit(["stress", "build", "--datalist", "phantom/datalist.json", "--split", "test", "--recipes",
                    str(MANIFESTATION), "--output", str(tmp_path / "set2")], work, radedit_home)  # fmt: skip
    assert bad.returncode != 0 and "no list 'test' in the datalist (its lists: training, validation, testing)" in bad.stderr
    assert not (tmp_path / "set2").exists()


@pytest.mark.slow
def test_the_drain_detector_relies_on_the_drain_and_the_report_says_so_first(readme_run):
    work, _, runs = readme_run
    (weak,) = runs["weak"]["shortcut"]
    lo, hi = weak["effect"]["ci"]
    print("weak shortcut effect", weak["effect"], "strong", runs["strong"]["shortcut"][0]["effect"])
    assert weak["effect"]["value"] <= -0.8 and hi < 0  # about -100 points, the interval excludes 0
    assert weak["effect"]["method"] and weak["edits"]["method"]
    strong = runs["strong"]["shortcut"][0]["effect"]
    assert strong["value"] > weak["effect"]["value"] + 0.3
    html = (work / "results-weak" / "report.html").read_text(encoding="utf-8")
    assert html.index("Shortcut effect") < html.index("<h2>Summary</h2>")
    assert "relies on something the edit kept" in html
    for r in runs["weak"]["groups"]["pneumothorax"]:
        for name in ("accuracy", "sensitivity", "specificity"):
            est = r["metrics"].get(name)
            if est:
                assert est["ci"][1] - est["ci"][0] > 0.01, (r["label"], name)  # no zero-width interval for a proportion
    status = runs["weak"]["qc"]["score_status"] or ""
    if status.startswith("unavailable"):  # BioViL-T not installed or not cached: the banner, not "0 filtered out"
        assert 'id="qc-banner"' in html and "Filter not applied: min_score" in html
    # the set and its sources move together
    moved = work.parent / (work.name + "-moved")
    shutil.copytree(work / "stress_set", moved / "stress_set")
    shutil.copytree(work / "phantom", moved / "phantom")
    from radedit_core.stress.stress_set import read_stress_set

    assert len(read_stress_set(moved / "stress_set").rows) == len(read_stress_set(work / "stress_set").rows)


@pytest.mark.slow
def test_a_self_contained_export_copies_the_real_images_in(readme_run, radedit_home, tmp_path):
    work, _, _ = readme_run
    # the finished edits are reused (the same items): only the set is written again, with copies
    run = _radedit(["-q", "stress", "build", "--datalist", "phantom/datalist.json", "--recipes", str(MANIFESTATION),
                    "--output", "stress_set/", "--subgroups", "site", "--steps", str(STEPS), "--self-contained"],
                   work, radedit_home)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    alone = tmp_path / "alone"
    shutil.copytree(work / "stress_set", alone)
    rows = json.loads((alone / "set.json").read_text())["testing"]
    for r in rows:
        for column in ("image", "edit_mask", "keep_mask"):
            if r.get(column):
                assert not r[column].startswith(".."), r[column]
                assert (alone / r[column].split("#")[0]).exists(), r[column]
    from radedit_core.stress.stress_set import read_stress_set

    assert len(read_stress_set(alone).rows) == len(rows)
    assert re.search(r"real/images?/", json.dumps(rows)) or (alone / "real").is_dir()


def test_stress_build_and_edit_describe_detail_with_one_vocabulary():
    from radedit_core.cli import build_parser
    from radedit_core.settings import DETAIL_MODES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    stress_build = next(a for a in sub["stress"]._actions if a.dest == "stress_command").choices["build"]

    def detail_help(p):
        return next(a.help for a in p._actions if a.dest == "detail")

    assert detail_help(stress_build) == detail_help(sub["edit"])
    assert all(mode in detail_help(stress_build) for mode in DETAIL_MODES)
