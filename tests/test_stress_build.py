"""Building stress-test sets: recipes on a phantom-world datalist, as users run it (API, CLI, torchrun).

The world is small (pneumothorax in half the cases, the default drain correlation) and the edits are
short: what the set exposes about the predictors on the tiny demo model (10 steps: the strong
predictor needs edits that remove the finding), resume and sharding on the test-only micro model
(the machinery, not the edits).  The killed build and the torchrun ranks are processes; the resumed
run is ``cli_runner.radedit`` in this process, with one torch thread like the processes, so that
the ranks' edits can be compared bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_runner import radedit
from radedit_core.cli import main
from radedit_core.errors import ConfigError
from radedit_core.stress.build import StressBuild, region_mask
from radedit_core.stress.recipes import Region, load_recipes
from radedit_core.stress.stress_set import read_stress_set

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "radedit_core" / "data" / "recipes"
PTX_RECIPES = {
    "defaults": {"steps": 10, "skip_ratio": 0.3, "dilate": 5},
    "recipes": {
        "remove-pneumothorax": {
            "shift": "manifestation", "when": {"pneumothorax": 1}, "prompt": "No pneumothorax.",
            "edit": "pneumothorax", "keep": ["drain"], "labels": {"pneumothorax": 0},
            "filters": {"min_score": 0.2, "max_keep_change": 0}, "sham": True,
        },
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from radedit_core.phantom_world import WorldConfig, write_dataset

    folder = tmp_path_factory.mktemp("stress_world") / "world"
    config = WorldConfig.from_dict({"prevalence": {"pneumothorax": 0.5}})
    write_dataset(folder, n=10, config=config, seed=3, splits={"testing": 1.0}, progress=False)
    return folder


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env(home) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), RADEDIT_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                PYTHONWARNINGS="ignore")  # fmt: skip


# -- recipes --------------------------------------------------------------------------------------
def test_shipped_recipes_load_and_document_the_three_scenarios():
    shifts = {}
    for path in sorted(RECIPES.rglob("*.yaml")):
        book = load_recipes(path)
        shifts.setdefault(path.parent.name, set()).update(r.shift for r in book)
        assert all(r.filters.get("min_score") == 0.2 for r in book), path
    assert shifts == {k: {"acquisition", "manifestation", "population"} for k in ("paper", "phantom_world")}
    ptx = load_recipes(RECIPES / "phantom_world" / "manifestation.yaml").recipes[0]
    assert ptx.keep == Region(("drain",)) and ptx.labels == {"pneumothorax": 0}
    covid = load_recipes(RECIPES / "paper" / "acquisition.yaml").recipes[0]
    assert covid.keep is None and covid.edit.box  # the paper's boxes, no keep mask


def test_derived_regions_box_erode_dilate_border_band():
    lungs = np.zeros((40, 40), bool)
    lungs[10:30, 8:20] = True
    drain = np.zeros((40, 40), bool)
    drain[5:35, 24] = True
    masks = {"lungs": lungs, "drain": drain}
    blob = np.zeros((40, 40), bool)
    blob[[12, 20, 15], [10, 14, 30]] = True
    boxed = region_mask(Region(("blob",), box=True), {"blob": blob})
    assert boxed.sum() == 3  # three single pixels are their own boxes
    two = blob.copy()
    two[12:21, 10] = True  # joins (12,10) and (20,10); (20,14) stays apart
    assert region_mask(Region(("blob",), box=True), {"blob": two}).sum() == 9 + 1 + 1
    assert region_mask(Region(("lungs",), erode=2), masks).sum() == 16 * 8
    assert region_mask(Region(("lungs",), dilate=1), masks).sum() > lungs.sum()
    border = region_mask(Region(("lungs",), border=2), masks)
    assert border[10, 12] and border[9, 12] and not border[20, 14] and not border[0, 0]
    keep = region_mask(Region(("drain",)), masks)
    edit = region_mask(Region(("lungs", "drain"), band=3), masks, keep)
    assert not edit[:, 21:28].any() and edit[20, 19]  # a 3 px free band each side of the drain


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"shift": "weather"}, "recipe remove-pneumothorax: shift: must be one of acquisition"),
        ({"labels": {"pneumothorax": 2}}, "labels.pneumothorax: a label is 0 or 1"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"sweep": {"steps": [5, 10]}}, "sweep.steps: only guidance, skip_ratio can be swept"),
        ({"settings": {"steps": 0}}, "recipe remove-pneumothorax: settings.steps: must be an integer from 1"),
        ({"edit": {"labels": ["pneumothorax"], "band": 4}}, "edit.band: the band of 4 px is closed again by settings.dilate 5"),
        ({"filters": {"min_scor": 0.2}}, "filters.min_scor: unknown filter"),
        ({"prompt": ""}, "prompt: missing"),
    ],
)
def test_bad_recipes_name_the_file_recipe_and_key(tmp_path, change, problem):
    data = json.loads(json.dumps(PTX_RECIPES))
    data["recipes"]["remove-pneumothorax"].update(change)
    with pytest.raises(ConfigError) as err:
        load_recipes(_write(tmp_path / "r.yaml", data))
    assert problem in str(err.value) and str(tmp_path / "r.yaml") in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"labels": {"tumour": 0}}, "r.yaml: recipe remove-pneumothorax: labels.tumour: unknown label 'tumour': the datalist "),
        ({"keep": ["chest_tube"]}, "keep: missing mask 'chest_tube': the datalist"),
        ({"when": {"pneumothorax": 7}}, "when: applies to no row of"),
    ],
)
def test_recipes_that_do_not_fit_the_datalist_stop_the_cli_before_any_edit(world, tmp_path, capsys, change, problem):
    data = json.loads(json.dumps(PTX_RECIPES))
    data["recipes"]["remove-pneumothorax"].update(change)
    recipes = _write(tmp_path / "r.yaml", data)
    code = main(["-q", "stress", "build", "--datalist", str(world / "datalist.json"), "--recipes", str(recipes),
                 "--output", str(tmp_path / "set")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("radedit: error: ") and "\n" not in err and problem in err
    assert not (tmp_path / "set").exists()


@pytest.mark.parametrize(
    "column, values, problem",
    [
        ("accession_no", None, "subgroups: column 'accession_no' identifies patients"),
        ("referring", None, "subgroups: column 'referring' identifies patients"),
        ("ticket", [f"T{i:04d}" for i in range(10)], "column 'ticket' holds a different value in each of its 10 rows"),
        ("image", ["images/nope.png"] + [None] * 9, "bad.json: testing row 1: "),
    ],
)
def test_datalist_problems_stop_the_build_before_any_edit(world, tmp_path, capsys, column, values, problem):
    """Identifiers under other names never become subgroups; a missing image is found up front even in
    a row no recipe edits (it is a real image of the set)."""
    data = json.loads((world / "datalist.json").read_text())
    rows = data["testing"]
    for k, row in enumerate(rows):
        row[column] = values[k] if values is not None and values[k] is not None else row.get(column, f"v{k % 2}")
    if column == "image":
        rows[0]["pneumothorax"] = 0
        problem += f"{world / 'images' / 'nope.png'}: file does not exist"
    (world / "bad.json").write_text(json.dumps(data))
    recipes = _write(tmp_path / "r.yaml", PTX_RECIPES)
    try:
        code = main(["-q", "stress", "build", "--datalist", str(world / "bad.json"), "--recipes", str(recipes),
                     "--output", str(tmp_path / "set"), *(["--subgroups", column] if column != "image" else [])])  # fmt: skip
    finally:
        (world / "bad.json").unlink()
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("radedit: error: ") and "\n" not in err and problem in err, err
    assert not (tmp_path / "set").exists()


@pytest.mark.parametrize(
    "predictor, problem",
    [
        ("stress_phantom_predictors:nan_outputs", "NaN"),
        ("stress_phantom_predictors:wrong_shape", "shape"),
        ("stress_phantom_predictors:other_classes", "unknown label 'pneumothorax'"),
    ],
)
def test_bad_predictors_stop_stress_run_before_any_edit(world, tmp_path, capsys, predictor, problem):
    config = _write(tmp_path / "stress.yaml", {
        "datalist": str(world / "datalist.json"), "recipes": str(_write(tmp_path / "r.yaml", PTX_RECIPES)),
        "set": str(tmp_path / "set"), "predictor": predictor, "device": "cpu",
    })  # fmt: skip
    code = main(["-q", "stress", "run", "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("radedit: error: ") and "\n" not in err and problem in err, err
    assert not (tmp_path / "set").exists()


# -- end to end on the phantom world ------------------------------------------------------------
@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    from stress_phantom_predictors import weak_and_strong

    return weak_and_strong(tmp_path_factory.mktemp("predictors"))


@pytest.mark.slow
def test_the_set_exposes_the_weak_predictor_and_not_the_strong_one(world, predictors, editor, tmp_path):
    from radedit_core.stress.evaluate import evaluate_set
    from radedit_core.stress.predictor_forms import load_predictor
    from radedit_core.stress.report import write_report

    recipes = _write(tmp_path / "r.yaml", PTX_RECIPES)
    summary = StressBuild(datalist=world / "datalist.json", recipes=recipes, subgroups="site", editor=editor,
                          output_dir=tmp_path / "set").run()  # fmt: skip
    s = read_stress_set(tmp_path / "set")
    real = [r for r in s.rows if r.is_real]
    edits = [r for r in s.rows if r.recipe == "remove-pneumothorax"]
    shams = [r for r in s.rows if r.recipe == "remove-pneumothorax:sham"]
    positives = [r for r in real if r.labels["pneumothorax"] == 1]
    assert len(real) == 10 and len(edits) == len(shams) == len(positives) >= 3
    assert {e.source for e in edits} == {p.id for p in positives}
    assert all(e.labels == {"pneumothorax": 0} for e in edits) and all(r.labels == {"pneumothorax": 1} for r in shams)
    assert s.subgroups == ["site"] and all(r.values["site"] in ("A", "B") for r in s.rows)
    # QC: the drain kept bit for bit; the score is not faked where BioViL-T is unavailable
    for r in edits:
        assert r.values["locality"]["keep"]["max_abs_change"] == 0.0 and r.accepted
        sidecar = json.loads(Path(str(r.image) + ".json").read_text())
        assert sidecar["qc"]["score_status"] in ("computed", s.qc["score_status"])
        assert (r.score is None) == (sidecar["qc"]["score_status"] != "computed")
    assert summary.score == s.qc["score_status"]

    figures = {}
    for name, path in zip(("weak", "strong"), predictors):
        ev = evaluate_set(s, load_predictor(path, device="cpu"), output=tmp_path / name, n_resamples=200, progress=False)
        groups = {g["group"]: g["metrics"] for g in ev.results["groups"]["pneumothorax"]}
        figures[name] = (groups["real"]["accuracy"]["value"], groups["recipe:remove-pneumothorax"]["accuracy"]["value"])
    weak_real, weak_edit = figures["weak"]
    strong_real, strong_edit = figures["strong"]
    print(f"accuracy real -> edits: weak {weak_real:.2f} -> {weak_edit:.2f}, strong {strong_real:.2f} -> {strong_edit:.2f}")
    # The weak predictor's figures depend on the drain alone (kept bit for bit), the strong one's on how
    # well the demo model's edit removes the pneumothorax (with the model of this commit: weak 0.8 -> 0.0,
    # strong 0.3 -> 0.5 on these 10 cases; the strong predictor is about 0.7 accurate on larger draws).
    assert weak_real >= 0.7  # the drain is a good cue on real images ...
    assert weak_edit <= 0.34  # ... and wrong once the pneumothorax is gone and the drain stays
    assert strong_real - strong_edit <= 0.25  # the pathology-based predictor holds
    assert (weak_real - weak_edit) >= (strong_real - strong_edit) + 0.4
    assert write_report(tmp_path / "weak", include_images=False).is_file()


# -- resume and sharding (the CLI, as users start it) ---------------------------------------------
SWEEP_RECIPES = json.loads(json.dumps(PTX_RECIPES))
SWEEP_RECIPES["defaults"]["steps"] = 6
SWEEP_RECIPES["recipes"]["remove-pneumothorax"].update(sweep={"guidance": [5, 15]}, sham=False)


def _small_datalist(world: Path, folder: Path, positives: int = 3) -> Path:
    """The world's first cases up to ``positives`` pneumothorax cases (a CSV datalist beside the world's)."""
    import csv

    rows, count = [], 0
    with open(world / "datalist.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append(row)
            count += row["pneumothorax"] == "1"
            if count == positives:
                break
    path = world / f"first-{positives}.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _build_args(datalist: Path, recipes: Path, out: Path, model: Path) -> list[str]:
    return ["-q", "stress", "build", "--datalist", str(datalist), "--recipes", str(recipes), "--output", str(out),
            "--device", "cpu", "--subgroups", "site", "--model", str(model)]  # fmt: skip


def _build_cmd(datalist: Path, recipes: Path, out: Path, model: Path, nproc: int = 0) -> list[str]:
    launcher = [sys.executable, "-m", "radedit_core.cli"]
    if nproc:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", "radedit_core.cli"]  # fmt: skip
    return [*launcher, *_build_args(datalist, recipes, out, model)]


def _finished(out: Path) -> set[str]:
    return {p.name.split(".")[0] for p in (out / "edits").glob("*.png.json") if not p.name.startswith(".")}


def _set_rows(out: Path) -> dict[str, dict]:
    rows = json.loads((out / "set.json").read_text())["testing"]
    return {r["id"]: r for r in rows}


@pytest.fixture(scope="module")
def resumed(world, tmp_path_factory, radedit_home, micro_model_dir, one_thread):
    """A build killed with SIGKILL after its first finished edit (a process), then run again to the end
    (here: the resume reads what the killed process left)."""
    folder = tmp_path_factory.mktemp("resume")
    recipes = _write(folder / "recipes.yaml", SWEEP_RECIPES)
    datalist = _small_datalist(world, folder)
    out = folder / "set"
    proc = subprocess.Popen(_build_cmd(datalist, recipes, out, micro_model_dir), env=_env(radedit_home), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not _finished(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = _finished(out)
    rerun = radedit(*_build_args(datalist, recipes, out, micro_model_dir), home=radedit_home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return out, recipes, finished, datalist


@pytest.mark.slow
def test_a_build_killed_part_way_resumes_with_every_item_exactly_once(resumed):
    from radedit_core.imaging.io import read_image

    out, _, finished, _ = resumed
    manifest = json.loads((out / "manifest.json").read_text())
    status = {r["id"]: r["status"] for r in manifest["items"]}
    assert 0 < len(finished) < len(status), "the build was not interrupted mid-way"
    assert {i for i, s in status.items() if s == "skipped"} == finished
    assert {i for i, s in status.items() if s == "done"} == set(status) - finished
    rows = _set_rows(out)
    synthetic = {i for i, r in rows.items() if r["kind"] == "synthetic"}
    assert synthetic == set(status)  # every item once in the set, nothing else
    assert len(rows) == len(json.loads((out / "set.json").read_text())["testing"])
    assert not list(out.rglob(".*part*"))  # no torn file left behind
    for record in manifest["items"]:
        image = read_image(record["output"])  # every edit reads back whole
        assert image.shape == (512, 512) and json.loads(Path(record["sidecar"]).read_text())["qc"]["locality"]
    guidance = sorted({r["guidance"] for r in rows.values() if r.get("recipe") == "remove-pneumothorax"})
    assert guidance == [5.0, 15.0]  # the sweep: one edit per value (a dose-response in the evaluation)


@pytest.mark.slow
def test_two_gloo_ranks_build_the_same_set_as_one_process(world, resumed, tmp_path, radedit_home, micro_model_dir):
    reference, recipes, _, datalist = resumed
    out = tmp_path / "set"
    proc = subprocess.run(_build_cmd(datalist, recipes, out, micro_model_dir, nproc=2), env=_env(radedit_home), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and sum(manifest["processed_per_rank"]) == len(manifest["items"])
    assert min(manifest["processed_per_rank"]) >= 1
    ours, theirs = _set_rows(out), _set_rows(reference)
    assert ours.keys() == theirs.keys()
    for key, row in ours.items():
        other = theirs[key]
        assert {k: v for k, v in row.items() if k != "image"} == {k: v for k, v in other.items() if k != "image"}
        if row["kind"] == "synthetic":
            assert (out / row["image"]).read_bytes() == (reference / other["image"]).read_bytes()
    assert (out / "set.csv").read_text() == (reference / "set.csv").read_text()


def test_the_summary_says_when_min_score_was_not_applied(world, tmp_path, radedit_home, micro_model_dir):
    """Without BioViL-T (none here) the recipes' min_score cannot be applied: the last line says so in a
    few words (the reason was logged when the build started and is in set.json's qc)."""
    recipes = _write(tmp_path / "recipes.yaml", PTX_RECIPES)
    datalist = _small_datalist(world, tmp_path, positives=1)
    out = tmp_path / "set"
    run = radedit(*_build_args(datalist, recipes, out, micro_model_dir), "--steps", "2", home=radedit_home)
    assert run.returncode == 0, run.stderr[-3000:]
    qc = json.loads((out / "set.json").read_text())["qc"]
    assert qc["score_status"].startswith("unavailable: ") and qc["filters_not_applied"].startswith("min_score (")
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith("editing score: unavailable, so the recipes' min_score was not applied (why: set.json's qc))")
    assert qc["score_status"][len("unavailable: "):] not in last
