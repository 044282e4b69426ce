"""radedit_core.batch in one process: datalists, checks before work, ids, resume, manifest."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radedit_core import batch
from radedit_core.settings import edit_settings
from radedit_core.batch import EditBatch, GenerateBatch, Ranks, edit_items, generate_items, read_manifest
from radedit_core.demo import sample_dir
from radedit_core.errors import ConfigError, InputError, MaskError, OutputError, RadEditError

SETTINGS = {"prompt": "Moderate pulmonary edema", "steps": 6}


# Two intra-op threads on two shared cores spin against other processes (an edit then takes
# seconds instead of a fraction of one): one torch thread for the module (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def data(tmp_path) -> Path:
    """The bundled sample image and masks in a folder of their own, with a 3-row datalist."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        shutil.copy(sample_dir() / name, folder / name)
    rows = [
        {"image": "cxr.png", "edit_mask": "lungs_mask.png", "keep_mask": "pacemaker_mask.png", "prompt": "No pneumothorax"},
        {"image": "cxr.png", "edit_mask": "lungs_mask.png", "keep_mask": "", "prompt": "Small effusion", "seed": 4},
        {"image": "cxr.png", "edit_mask": "lungs_mask.png", "keep_mask": "pacemaker_mask.png", "prompt": "", "guidance": 9},
    ]
    (folder / "list.json").write_text(json.dumps(rows))
    with open(folder / "list.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "edit_mask", "keep_mask", "prompt", "seed", "guidance"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def run_edit(micro_editor, **kwargs):
    kwargs.setdefault("settings", SETTINGS)
    return EditBatch(editor=micro_editor, **kwargs).run()


def test_json_and_csv_datalists_give_the_same_items(data, tmp_path):
    a = edit_items(datalist=data / "list.json", settings=SETTINGS, output_dir=tmp_path / "out")
    b = edit_items(datalist=data / "list.csv", settings=SETTINGS, output_dir=tmp_path / "out")
    assert [i.id for i in a] == [i.id for i in b]
    assert len({i.id for i in a}) == 3
    first, second, third = a
    # relative paths are relative to the datalist's folder
    assert first.image == str(data / "cxr.png") and first.keep_mask == str(data / "pacemaker_mask.png")
    assert second.keep_mask is None and second.settings.seed == 4
    assert third.settings.prompts == ["Moderate pulmonary edema"]  # empty cell: the run's prompt
    assert third.settings.weights == [9.0]
    assert first.output == tmp_path / "out" / f"{first.id}.png" and first.sidecar == tmp_path / "out" / f"{first.id}.png.json"
    assert first.id.startswith("cxr-")


def test_ids_do_not_depend_on_row_order_or_on_where_the_data_lives(data, tmp_path):
    rows = json.loads((data / "list.json").read_text())
    (data / "reversed.json").write_text(json.dumps(rows[::-1]))
    forward = [i.id for i in edit_items(datalist=data / "list.json", settings=SETTINGS)]
    backward = [i.id for i in edit_items(datalist=data / "reversed.json", settings=SETTINGS)]
    assert forward == backward[::-1]
    moved = shutil.copytree(data, tmp_path / "moved")
    assert [i.id for i in edit_items(datalist=moved / "list.json", settings=SETTINGS)] == forward
    # the run's settings (the how) are not part of the id; prompts and row overrides (the what) are
    assert [i.id for i in edit_items(datalist=data / "list.json", settings={**SETTINGS, "steps": 9})] == forward
    assert edit_items(datalist=data / "list.json", settings={**SETTINGS, "prompt": "x"})[2].id != forward[2]


def test_dicom_input_gets_a_series_folder_and_a_sidecar_beside_it(tmp_path):
    (item,) = edit_items(input=tmp_path / "study" / "cr.dcm", edit_mask=tmp_path / "lungs.png",
                         settings=SETTINGS, output_dir=tmp_path / "out")  # fmt: skip
    assert item.output_format == "dicom"
    assert item.output == tmp_path / "out" / item.id and item.sidecar == tmp_path / "out" / f"{item.id}.json"
    (nifti,) = edit_items(input=tmp_path / "cxr.nii.gz", edit_mask=tmp_path / "m.nii.gz", settings=SETTINGS,
                          output_dir=tmp_path / "out")  # fmt: skip
    assert nifti.output.name == f"{nifti.id}.nii.gz" and nifti.id.startswith("cxr-")


def test_an_input_ending_in_csv_is_a_datalist(data):
    assert len(edit_items(input=data / "list.csv", settings=SETTINGS)) == 3


def test_every_bad_row_is_reported_at_once_naming_file_and_row(data, tmp_path):
    (data / "bad.csv").write_text(
        "image,edit_mask,keep_mask,prompt,seed,steps\n"
        "cxr.png,lungs_mask.png,,ok,1,\n"
        ",lungs_mask.png,,no image,,\n"
        "cxr.png,lungs_mask.png,,bad seed,one,\n"
        "cxr.png,,,no mask,,\n"
        "cxr.png,lungs_mask.png,,ok,1,\n"
        "cxr.png,lungs_mask.png,,bad steps,2,0\n"
    )
    with pytest.raises(InputError) as err:
        EditBatch(datalist=data / "bad.csv", settings=SETTINGS, output_dir=tmp_path / "out", model="tiny").run()
    text = str(err.value)
    assert text.startswith(f"{data / 'bad.csv'}: 5 problems")
    assert "row 2 (line 3): no image" in text
    assert "row 3 (line 4): seed: expected an integer, got 'one'" in text
    assert "row 4 (line 5): no edit_mask (set global_edit to true" in text
    assert "row 5 (line 6): repeats row 1 (line 2)" in text
    assert "row 6 (line 7): steps: must be an integer from 1 to 1000, got 0" in text
    assert not (tmp_path / "out").exists()


def test_a_row_without_a_prompt_needs_the_runs_prompt(data, tmp_path):
    # list.csv's row 3 has an empty prompt cell: with a run prompt it takes that one (above), without one it is an error
    no_prompt = {"steps": 6}
    with pytest.raises(ConfigError) as err:
        edit_items(datalist=data / "list.csv", settings=no_prompt, output_dir=tmp_path / "out")
    assert str(err.value) == (
        f"{data / 'list.csv'}: row 3 (line 4): no prompt: fill in the row's prompt, or give the run a prompt "
        "for the rows without one"
    )
    # one image: the run's prompt is its only one
    with pytest.raises(ConfigError, match=r"^prompt: an edit needs a prompt \(none was given\)$"):
        edit_items(input=data / "cxr.png", edit_mask=data / "lungs_mask.png", settings=no_prompt)


def test_a_missing_image_without_an_edit_mask_is_said_to_be_missing(data, tmp_path):
    with pytest.raises(InputError, match=rf"^{tmp_path / 'nope.png'}: file does not exist$"):
        edit_items(input=tmp_path / "nope.png", settings=SETTINGS)
    (data / "gone.csv").write_text("image,prompt\ngone.png,x\ncxr.png,x\n")
    with pytest.raises(InputError) as err:
        edit_items(datalist=data / "gone.csv", settings=SETTINGS)
    assert str(err.value) == (
        f"{data / 'gone.csv'}: 2 problems:\n  row 1 (line 2): {data / 'gone.png'}: file does not exist\n"
        "  row 2 (line 3): no edit_mask (set global_edit to true to edit the whole image)"
    )


def test_a_problem_whose_names_carry_the_row_names_it_once():
    from radedit_core.batch.datalist import Problems

    problems = Problems()
    problems.add("row 1 (line 2)", OutputError("row 1 (line 2): output /o/c.png is the same file as the input "
                                               "row 1 (line 2): image /o/c.png"))  # fmt: skip
    problems.add("row 2", "no image")
    assert problems == ["row 1 (line 2): output /o/c.png is the same file as the input image /o/c.png",
                        "row 2: no image"]  # fmt: skip


def test_unknown_columns_and_bad_json_are_errors(data):
    (data / "typo.csv").write_text("image,edit_msk,prompt\ncxr.png,lungs_mask.png,x\n")
    with pytest.raises(InputError, match=r"typo.csv: row 1 \(line 2\): unknown columns \['edit_msk'\]"):
        edit_items(datalist=data / "typo.csv", settings=SETTINGS)
    (data / "broken.json").write_text("[{")
    with pytest.raises(InputError, match="broken.json: not valid JSON"):
        edit_items(datalist=data / "broken.json", settings=SETTINGS)
    with pytest.raises(InputError, match="nope.json: datalist does not exist"):
        edit_items(datalist=data / "nope.json", settings=SETTINGS)
    (data / "empty.csv").write_text("image,edit_mask,prompt\n")
    with pytest.raises(InputError, match="empty.csv: the datalist has no rows"):
        edit_items(datalist=data / "empty.csv", settings=SETTINGS)
    (data / "bad_id.json").write_text(json.dumps([{"id": "../x", "image": "cxr.png", "edit_mask": "lungs_mask.png"}]))
    with pytest.raises(InputError, match=r"bad_id.json: row 1: id '../x' must be"):
        edit_items(datalist=data / "bad_id.json", settings=SETTINGS)


def test_bad_run_settings_are_config_errors():
    with pytest.raises(ConfigError, match="steps: expected an integer, got 'ten'"):
        edit_settings({"prompt": "x", "steps": "ten"})
    with pytest.raises(ConfigError, match=r"unknown edit settings stepz; known: "):
        edit_settings({"prompt": "x", "stepz": 3})
    with pytest.raises(ConfigError, match="keep_mode: must be one of pixel, latent, got 'both'"):
        edit_settings({"prompt": "x", "keep_mode": "both"})
    assert edit_settings({"prompt": ["a", "b"], "guidance": [4]}).weights == [4.0, 4.0]


def test_a_mask_of_another_size_in_any_row_stops_the_run_before_any_output(data, tmp_path, micro_editor):
    Image.fromarray(np.ones((10, 12), np.uint8)).save(data / "small.png")
    rows = json.loads((data / "list.json").read_text())
    rows[2]["edit_mask"] = "small.png"
    (data / "mismatch.json").write_text(json.dumps(rows))
    with pytest.raises(MaskError) as err:
        run_edit(micro_editor, datalist=data / "mismatch.json", output_dir=tmp_path / "out")
    assert str(err.value).startswith(f"{data / 'mismatch.json'}: row 3: {data / 'small.png'}: mask size 12x10")
    assert not (tmp_path / "out").exists()  # not even the first, valid rows


def test_rerun_skips_done_items_and_a_changed_setting_is_a_conflict(data, tmp_path, micro_editor):
    out = tmp_path / "out"
    first = run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    assert (first.done, first.skipped, first.failed) == (3, 0, 0)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    for record in first.records:
        sidecar = json.loads(Path(record["sidecar"]).read_text())
        assert sidecar["batch"]["id"] == record["id"] and sidecar["output"]["path"] == record["output"]
        assert sidecar["settings"]["steps"] == 6
        assert Path(record["output"]).exists()

    again = run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    assert (again.done, again.skipped) == (0, 3)
    assert all(stamps[p.name] == p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("cxr"))

    with pytest.raises(OutputError) as err:
        run_edit(micro_editor, datalist=data / "list.json", output_dir=out, settings={**SETTINGS, "steps": 7})
    assert "exists from another run (settings.steps: 6 -> 7)" in str(err.value)
    assert "overwrite" in str(err.value)

    replaced = run_edit(micro_editor, datalist=data / "list.json", output_dir=out, settings={**SETTINGS, "steps": 7}, overwrite=True)
    assert replaced.done == 3
    assert json.loads(Path(replaced.records[0]["sidecar"]).read_text())["settings"]["steps"] == 7


def test_leftovers_of_a_killed_run_are_redone(data, tmp_path, micro_editor):
    out = tmp_path / "out"
    summary = run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    a, b, c = (Path(r["output"]) for r in summary.records)
    Path(summary.records[0]["sidecar"]).unlink()  # killed between output and sidecar
    a.with_name(f".{a.name}.x1y2.part.png").write_bytes(b"half")  # killed inside an atomic write
    b.unlink()  # lost output, stale sidecar
    resumed = run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    assert [r["status"] for r in resumed.records] == ["done", "done", "skipped"]
    assert not list(out.glob(".*part*"))
    assert a.exists() and b.exists() and c.exists()


def test_a_failing_item_is_recorded_the_others_finish_and_a_rerun_retries_it(data, tmp_path, micro_editor, monkeypatch):
    out = tmp_path / "out"
    items = edit_items(datalist=data / "list.json", settings=SETTINGS, output_dir=out)
    doomed = items[1].id
    real = EditBatch.process

    def flaky(self, editor_, item, overwrite):
        if item.id == doomed:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self, editor_, item, overwrite)

    monkeypatch.setattr(EditBatch, "process", flaky)
    with pytest.raises(RadEditError, match=rf"1 of 3 items failed \(first: {doomed}: RuntimeError"):
        run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    manifest = read_manifest(out)
    assert [r["status"] for r in manifest["items"]] == ["done", "failed", "done"]
    assert manifest["counts"] == {"done": 2, "failed": 1}
    assert not items[1].output.exists() and not items[1].sidecar.exists()

    monkeypatch.setattr(EditBatch, "process", real)
    retry = run_edit(micro_editor, datalist=data / "list.json", output_dir=out)
    assert [r["status"] for r in retry.records] == ["skipped", "done", "skipped"]


def test_manifest_json_and_csv_agree(data, tmp_path, micro_editor):
    out = tmp_path / "out"
    summary = run_edit(micro_editor, datalist=data / "list.csv", output_dir=out)
    manifest = read_manifest(out)
    assert manifest["kind"] == "edit" and manifest["world_size"] == 1 and manifest["processed_per_rank"] == [3]
    assert manifest["source"] == str(data / "list.csv")
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [r["id"] for r in manifest["items"]] == [r["id"] for r in summary.records]
    assert [r["status"] for r in rows] == ["done"] * 3
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert [int(r["row"]) for r in rows] == [1, 2, 3]


def test_single_image_run_matches_edit_file(tmp_path, micro_editor):
    from radedit_core.workflow import edit_file

    sample = sample_dir()
    summary = run_edit(
        micro_editor, input=sample / "cxr.png", edit_mask=sample / "lungs_mask.png",
        keep_mask=sample / "pacemaker_mask.png", output_dir=tmp_path / "out",
    )  # fmt: skip
    record = summary.records[0]
    assert record["row"] == 0 and record["status"] == "done"
    direct = tmp_path / "direct.png"
    edit_file(micro_editor, sample / "cxr.png", direct, edit_settings(SETTINGS),
              sample / "lungs_mask.png", sample / "pacemaker_mask.png")  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(record["output"])), np.asarray(Image.open(direct)))


def test_bad_parameters_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    sample = sample_dir()
    one = dict(input=sample / "cxr.png", edit_mask=sample / "lungs_mask.png", settings=SETTINGS, output_dir=out)
    with pytest.raises(ConfigError, match="dtype: must be one of auto, float32, bfloat16, float16, fp32, bf16, fp16, got 'float64'"):
        EditBatch(model="tiny", device="cpu", dtype="float64", **one).run()
    with pytest.raises(ConfigError, match=r"no-such-model: model not found"):
        EditBatch(model="no-such-model", **one).run()
    with pytest.raises(InputError, match="nope.png: file does not exist"):
        EditBatch(model="tiny", device="cpu", **{**one, "input": tmp_path / "nope.png"}).run()
    with pytest.raises(ConfigError, match="output_format dicom needs a DICOM input"):
        EditBatch(model="tiny", device="cpu", output_format="dicom", **one).run()
    with pytest.raises(ConfigError, match="overwrite: expected true or false"):
        EditBatch(model="tiny", device="cpu", overwrite="maybe", **one).run()
    assert not out.exists()


def test_sharding_gives_every_item_to_exactly_one_rank():
    items = list(range(11))
    for world in (1, 2, 3, 4):
        shards = [Ranks(rank, world).shard(items) for rank in range(world)]
        assert sorted(x for s in shards for x in s) == items
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_torchrun_without_the_distributed_overlay_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="multi_gpu_inference.json"):
        Ranks.current()
    monkeypatch.delenv("WORLD_SIZE")
    assert Ranks.current() == Ranks()
    assert batch.init_distributed("cpu").world == 1  # no torchrun variables: one process


def test_generate_batch_items_seeds_and_resume(tmp_path, micro_editor):
    items = generate_items(prompt=["No acute process", "Small effusion"], num_images=2, settings={"steps": 4, "seed": 5})
    assert [i.settings.seed for i in items] == [5, 6, 5, 6]
    assert len({i.id for i in items}) == 4
    out = tmp_path / "gen"
    job = dict(prompt="No acute process", num_images=2, settings={"steps": 4}, output_dir=out, editor=micro_editor)
    first = GenerateBatch(**job).run()
    assert first.done == 2
    image = np.asarray(Image.open(first.records[0]["output"]))
    assert image.shape == (micro_editor.pipe.model_resolution,) * 2 and image.dtype == np.uint8
    sidecar = json.loads(Path(first.records[0]["sidecar"]).read_text())
    assert sidecar["prompt"] == "No acute process" and sidecar["settings"]["guidance"] == 7.5
    assert GenerateBatch(**job).run().skipped == 2
    with pytest.raises(ConfigError, match="generation needs at least one prompt"):
        generate_items(prompt="  ")


def test_mask_specs_choose_seg_segments(tmp_path):
    from radedit_core.imaging.mask_ref import MaskRef, parse_mask_ref

    assert parse_mask_ref("study/seg.dcm#lungs") == MaskRef("study/seg.dcm", "lungs")
    assert parse_mask_ref("study/seg.dcm::1,2") == MaskRef("study/seg.dcm", ["1", "2"])  # as MONAI passes '#' on
    assert parse_mask_ref("masks/lungs.png") == MaskRef("masks/lungs.png")
    assert parse_mask_ref("lungs.png", ["1", "3"]).spec() == "lungs.png#1,3"  # --edit-labels
    assert parse_mask_ref("None") is None and parse_mask_ref("") is None
    odd = tmp_path / "case#1.png"
    odd.write_bytes(b"")
    assert parse_mask_ref(str(odd)) == MaskRef(odd)  # an existing file is taken as named
    with pytest.raises(ConfigError, match=r"--keep-labels: labels 4 were given but no mask"):
        parse_mask_ref(None, "4", name="--keep-labels")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from radedit_core.dicom.synthetic import write_study

    return write_study(tmp_path_factory.mktemp("study"), kinds=("CR",), seg=True, seg_segments=("lungs", "pacemaker"))


def test_seg_segments_as_edit_and_keep_masks_give_a_derived_series(study, tmp_path, micro_editor):
    import pydicom

    out = tmp_path / "out"
    rows = [{"image": study.images[0].name, "edit_mask": f"{study.seg.name}#lungs",
             "keep_mask": f"{study.seg.name}::pacemaker"}]  # fmt: skip
    (study.folder / "list.json").write_text(json.dumps(rows))
    summary = run_edit(micro_editor, datalist=study.folder / "list.json", output_dir=out,
                       settings={**SETTINGS, "keep_mode": "pixel", "dilate": 0})  # fmt: skip
    record = summary.records[0]
    assert record["edit_mask"] == f"{study.seg}#lungs" and record["keep_mask"] == f"{study.seg}#pacemaker"
    sidecar = json.loads(Path(record["sidecar"]).read_text())
    assert sidecar["masks"]["edit"] == f"{study.seg} [labels: lungs]"
    phantom = study.cxrs[0].phantom
    lungs = phantom.mask("right_lung", "left_lung") & ~phantom.mask("pacemaker")
    assert sidecar["masks"]["edit_pixels"] == int(lungs.sum())
    assert sidecar["masks"]["keep_pixels"] == int(phantom.mask("pacemaker").sum())
    (edited,) = [pydicom.dcmread(p) for p in Path(record["output"]).glob("*.dcm")]
    source = pydicom.dcmread(study.images[0])
    keep = phantom.mask("pacemaker")
    assert np.array_equal(edited.pixel_array[keep], source.pixel_array[keep])
    assert edited.StudyInstanceUID == source.StudyInstanceUID


def test_an_unknown_segment_or_label_is_an_error_before_any_output(study, tmp_path, micro_editor):
    out = tmp_path / "out"
    with pytest.raises(MaskError, match=r"seg.dcm: no segment 'lung' \(segments: 1 'lungs', 2 'pacemaker'\)"):
        run_edit(micro_editor, input=study.folder, edit_mask=f"{study.seg}#lung", output_dir=out)
    with pytest.raises(MaskError, match=r"lungs_mask.png: label value\(s\) 1 do not occur in the mask"):
        run_edit(micro_editor, input=sample_dir() / "cxr.png", edit_mask=f"{sample_dir() / 'lungs_mask.png'}#1", output_dir=out)
    assert not out.exists()


def test_resuming_a_run_made_with_the_old_defaults_reports_the_settings_difference(data, tmp_path, micro_editor):
    # radedit_core 0.1 wrote <id>.json beside <id>.png, and its defaults were dilate 0 and keep mode latent.
    out = tmp_path / "out"
    old = {**SETTINGS, "dilate": 0, "keep_mode": "latent"}
    run_edit(micro_editor, datalist=data / "list.json", output_dir=out, settings=old)
    for sidecar in out.glob("*.png.json"):
        sidecar.rename(out / sidecar.name.replace(".png.json", ".json"))
    with pytest.raises(OutputError) as err:
        run_edit(micro_editor, datalist=data / "list.json", output_dir=out)  # today's defaults
    text = str(err.value)
    assert "settings.dilate: 0 -> 5" in text and "settings.keep_mode: 'latent' -> 'pixel'" in text
    again = run_edit(micro_editor, datalist=data / "list.json", output_dir=out, settings=old)
    assert again.skipped == 3 and again.done == 0  # the old sidecars still mark those items done
