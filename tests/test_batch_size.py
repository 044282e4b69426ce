"""The batch runner's ``batch_size``: grouping, resume and agreement with one edit per pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import radedit_core.workflow
from radedit_core.batch import EditBatch, batch_from_options, read_manifest
from radedit_core.demo import sample_dir
from radedit_core.errors import ConfigError

SETTINGS = {"prompt": "Moderate pulmonary edema", "steps": 4}
ROWS = 10
MAX_UNITS = 4  # 2 measured on one 2-core CPU, 3 on another (its kernels round batched sums differently)


class Killed(BaseException):
    """What SIGKILL does to the run: nothing after it happens (not an error the runner records)."""


# One torch thread for the whole module (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Ten rows: different prompts (two rows with two), seeds and keep masks, one row with other steps."""
    folder = tmp_path_factory.mktemp("batch_size_data")
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        shutil.copy(sample_dir() / name, folder / name)
    prompts = ["No pneumothorax", "Small left pleural effusion", "Mild cardiomegaly", "No acute cardiopulmonary process",
               "New right upper lobe consolidation", "Moderate pulmonary edema", "Small right pleural effusion",
               "Normal heart size", "Left lower lobe atelectasis", "No pleural effusion"]  # fmt: skip
    rows = []
    for k in range(ROWS):
        row = {"image": "cxr.png", "edit_mask": "lungs_mask.png", "prompt": prompts[k], "seed": k}
        if k % 3 == 0:
            row["keep_mask"] = "pacemaker_mask.png"
        if k in (2, 7):
            row["prompt"] = [prompts[k], "Small pneumothorax"]
            row["guidance"] = [10, -5]
        if k == 4:
            row["steps"] = 5
        rows.append(row)
    (folder / "list.json").write_text(json.dumps(rows, indent=1))
    return folder


@pytest.fixture(scope="module")
def one_per_pass(data, micro_editor, tmp_path_factory) -> Path:
    editor = micro_editor
    out = tmp_path_factory.mktemp("bs1")
    summary = EditBatch(editor=editor, datalist=data / "list.json", settings=SETTINGS, output_dir=out, batch_size=1).run()
    assert summary.done == ROWS
    return out


def pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


# On the test-only micro model (the grouping, resume and each item's own settings are mechanics; that a
# batch equals its single edits is test_batched_editing's): its random weights amplify the float32
# rounding of batched kernels to a few stored units (MAX_UNITS), while an item edited with another
# row's prompt, seed, mask or steps differs by far more.
def test_batch_size_4_killed_mid_batch_and_resumed_matches_batch_size_1(data, micro_editor, one_per_pass, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    editor = micro_editor
    out = tmp_path / "bs4"
    real = radedit_core.workflow.write_edit_result
    writes = []

    def write_then_die(result, request, *args, **kwargs):
        if len(writes) == 5:  # the second item of the second batch: its batch is half written
            raise Killed()
        writes.append(request.output)
        return real(result, request, *args, **kwargs)

    monkeypatch.setattr(radedit_core.workflow, "write_edit_result", write_then_die)
    job = dict(editor=editor, datalist=data / "list.json", settings=SETTINGS, output_dir=out, batch_size=4)
    with pytest.raises(Killed):
        EditBatch(**job).run()
    monkeypatch.setattr(radedit_core.workflow, "write_edit_result", real)
    finished = {p.name.split(".")[0] for p in out.glob("*.png.json")}
    assert len(finished) == 5 and not (out / "manifest.json").exists()

    resumed = EditBatch(**job).run()
    manifest = read_manifest(out)
    status = {r["id"]: r["status"] for r in manifest["items"]}
    assert {i for i, s in status.items() if s == "skipped"} == finished
    assert manifest["counts"] == {"skipped": 5, "done": ROWS - 5}
    reference = read_manifest(one_per_pass)
    assert [r["id"] for r in reference["items"]] == [r["id"] for r in manifest["items"]]
    for mine, theirs in zip(resumed.records, reference["items"]):
        diff = np.abs(pixels(mine["output"]) - pixels(theirs["output"]))
        assert diff.max() <= MAX_UNITS, f"{mine['id']}: {diff.max()} stored units from the batch_size 1 result"
    # the tolerance tells items apart: another row's edit is far more than MAX_UNITS away
    first, second = (pixels(r["output"]) for r in reference["items"][:2])
    assert np.abs(first - second).max() > 10 * MAX_UNITS

    # how the items were grouped: by the settings a pass shares and the number of prompts
    sizes = {}
    for record in resumed.records:
        sidecar = json.loads(Path(record["sidecar"]).read_text())
        sizes[record["row"]] = sidecar["result"].get("batch_size", 1)
        assert sidecar["batch"]["fingerprint"]["settings"]["steps"] in (4, 5)
    # one-prompt rows 1, 2, 4, 6 | 7, 9, 10 (killed after 7); two-prompt rows 3, 8; row 5 (steps 5) alone
    assert [sizes[r] for r in (1, 2, 4, 6, 7)] == [4, 4, 4, 4, 3]  # written before the kill
    assert [sizes[r] for r in (9, 10, 3, 8, 5)] == [2, 2, 2, 2, 1]  # the resumed run's passes


def test_a_resumed_run_skips_everything_whatever_the_batch_size(data, micro_editor, one_per_pass):
    editor = micro_editor
    again = EditBatch(editor=editor, datalist=data / "list.json", settings=SETTINGS, output_dir=one_per_pass,
                      batch_size=3).run()  # fmt: skip
    assert (again.done, again.skipped) == (0, ROWS)


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5", "257"])
def test_a_bad_batch_size_is_refused_before_the_model_loads(value, data, tmp_path):
    out = tmp_path / "out"
    options = {"datalist": str(data / "list.json"), "prompt": "x", "model": str(tmp_path / "no-model"),
               "output_dir": str(out), "batch_size": value}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^batch_size: must be auto or an integer from 1 to 256, got "):
        batch_from_options("edit", options).run()
    assert not out.exists()


def test_batch_size_is_a_bundle_id_of_the_edit_job():
    config = json.loads((Path(__file__).resolve().parent.parent / "monai_bundle" / "configs" / "inference.json").read_text())
    assert config["batch_size"] is None and config["edit_options"]["batch_size"] == "@batch_size"
    job = batch_from_options("edit", {"prompt": "x", "batch_size": "8", "input": "a.png", "edit_mask": "m.png"})
    job._check_params()
    assert job.batch_options.batch_size == 8
    auto = batch_from_options("edit", {"prompt": "x", "input": "a.png", "edit_mask": "m.png"})
    auto._check_params()
    assert auto.batch_options.batch_size == "auto"


def test_auto_is_one_image_per_pass_on_the_cpu(micro_pipe):
    from radedit_core.batch.sizing import auto_batch_size

    assert auto_batch_size(micro_pipe, 1) == 1
