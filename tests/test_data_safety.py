"""Data safety and error boundaries (issue 16), as a careful tester tries them.

Every case runs a real command (``radedit`` in-process through :func:`radedit_core.cli.main`, the
worker in-process through :func:`radedit_core.worker.main` with its protocol stream a buffer: a
process pays ~12 s of imports, and tests/test_worker.py covers the worker as a process) and checks what matters to a user: the documented exit code, ONE line on
stderr naming the file or option, no traceback, no partial output, and every input byte-identical
(checksums) afterwards.  Variants spell one file several ways (relative with ``..``, symlinks, hard
links).  Disk-full cases run on a small tmpfs the test mounts (as root, as CI runs) and check that
the same command resumes once the disk has room; lock cases run two real processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from PIL import Image

from radedit_core.cli import main
from radedit_core.demo import sample_dir
from radedit_core.errors import ConfigError, OutputError

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ------------------------------------------------------------------------------------
def checksums(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (symlinks as their target path)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def cli(capsys, *argv) -> tuple[int, str]:
    """``radedit -q ARGV`` in this process: (exit code, stderr), stderr checked to be one line, no traceback."""
    code = main(["-q", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    if code != 0:
        # progress bars of model loaders may precede it; the error itself is one line, the last
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("radedit: error: ")]
        assert len(lines) == 1 and err.endswith(lines[0]), err
        err = lines[0]
    return code, err


def env(home: Path | None = None) -> dict[str, str]:
    extra = {"RADEDIT_HOME": str(home)} if home else {}
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
                **extra)  # fmt: skip


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        shutil.copy(sample_dir() / name, folder / name)
    return folder


EDIT = ["--prompt", "Moderate pulmonary edema", "--steps", "2", "--model", "tiny", "--device", "cpu"]


# -- 1. no command destroys data it did not write ---------------------------------------------
def _spelling(inputs: Path, tmp_path: Path, how: str, name: str = "cxr.png") -> Path:
    target = inputs / name
    if how == "same":
        return target
    if how == "dotdot":
        return Path(os.path.relpath(inputs / ".." / inputs.name / name))
    if how == "symlink":
        (tmp_path / "link.png").symlink_to(target)
        return tmp_path / "link.png"
    if how == "hardlink":
        os.link(target, tmp_path / "hard.png")
        return tmp_path / "hard.png"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("which", ["--image", "--edit-mask"])
def test_edit_output_that_is_an_input_is_refused(inputs, tmp_path, capsys, monkeypatch, how, which):
    monkeypatch.chdir(tmp_path)
    before = checksums(inputs, tmp_path)
    name = "cxr.png" if which == "--image" else "lungs_mask.png"
    output = _spelling(inputs, tmp_path, how, name)
    before = checksums(inputs, tmp_path)
    code, err = cli(capsys, "edit", "--image", inputs / "cxr.png", "--edit-mask", inputs / "lungs_mask.png",
                    "--output", output, "--overwrite", *EDIT)  # fmt: skip
    if how == "symlink":  # refused as a symlink, whatever it points to, naming it and its target
        assert code == 4 and f"{output}: is a symlink to {inputs / name}; an output never replaces" in err, err
    else:
        assert code == 4 and "is the same file as the input" in err and which in err and str(output) in err
    assert checksums(inputs, tmp_path) == before


def test_a_dicom_series_output_holding_the_input_is_refused(tmp_path, capsys):
    from radedit_core.dicom.synthetic import make_cxr

    study = tmp_path / "study"
    make_cxr("CR", rows=96, columns=80, seed=1).save(study / "cr.dcm")
    mask = np.zeros((96, 80), np.uint8)
    mask[30:60, 20:60] = 1
    Image.fromarray(mask).save(tmp_path / "mask.png")
    before = checksums(tmp_path)
    code, err = cli(capsys, "edit", "--image", study / "cr.dcm", "--edit-mask", tmp_path / "mask.png",
                    "--output", tmp_path / "x" / ".." / "study", "--overwrite", *EDIT)  # fmt: skip
    assert code == 4 and "holds the input --image" in err and "would delete it" in err
    assert checksums(tmp_path) == before


# -- outputs that are a model's files, the working folder, a folder, a user's series, a symlink -------------
STUDY = REPO / "radedit_core" / "data" / "sample_study"
EDIT_STUDY = ["--image", STUDY, "--edit-mask", STUDY / "seg.dcm", "--edit-labels", "pneumothorax", "--prompt", "x",
              "--steps", "2", "--device", "cpu"]  # fmt: skip


def forbid_model_load(monkeypatch) -> None:
    """The model must not load from here on: the checks run before it (loading raises AssertionError)."""
    from radedit_core.workflow import RadEditor

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(RadEditor, "from_options", classmethod(refuse))


@pytest.fixture
def no_model_load(monkeypatch):
    forbid_model_load(monkeypatch)


def edit_error(*argv, cwd: Path | None = None) -> tuple[int, str]:
    """``radedit -q edit ARGV`` in this process (tests/cli_runner.py): (exit code, its one error line)."""
    from cli_runner import radedit

    proc = radedit("-q", "edit", *argv, cwd=cwd)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    if proc.returncode != 0:
        assert len(err.splitlines()) == 1 and err.startswith("radedit: error: "), err
    return proc.returncode, err


@pytest.fixture
def model_copy(micro_model_dir, tmp_path) -> Path:
    """A copy of the micro model (the shared one must survive a test that fails), and a spec file
    beside it in another folder naming its components (spec/spec.json, spec/m.png.json)."""
    model = tmp_path / "mymodel"
    shutil.copytree(micro_model_dir, model)
    spec = json.loads((model / "radedit_model.json").read_text())
    for key in ("unet", "vae", "text_encoder", "tokenizer"):
        spec[key]["source"] = str(model)
    (tmp_path / "spec").mkdir()
    for name in ("spec.json", "m.png.json"):
        (tmp_path / "spec" / name).write_text(json.dumps(spec))
    return model


@pytest.mark.parametrize(
    "model, output, problem",
    [
        ("spec/spec.json", "spec/spec",  # a DICOM folder's sidecar
         "--output's sidecar {t}/spec/spec.json is the same file as the input --model {t}/spec/spec.json"),
        ("spec/m.png.json", "spec/m.png",  # an image's sidecar
         "--output's sidecar {t}/spec/m.png.json is the same file as the input --model {t}/spec/m.png.json"),
        ("mymodel", "mymodel/radedit_model",  # the folder's own spec
         "--output's sidecar {t}/mymodel/radedit_model.json is a file of the input --model {t}/mymodel"),
        ("mymodel/../mymodel", "mymodel/unet", "--output {t}/mymodel/unet is a file of the input --model"),
        ("link", "mymodel/radedit_model", "is a file of the input --model {t}/link"),  # a symlink to the folder
        ("spec/spec.json", "mymodel/unet/config",  # a folder the spec names
         "--output's sidecar {t}/mymodel/unet/config.json is a file of the input --model (unet folder)"),
        ("mymodel", "mymodel", "is the same file as the input --model"),
    ],
)
def test_no_output_or_sidecar_replaces_a_file_of_the_model(model_copy, tmp_path, no_model_load, model, output,
                                                           problem):  # fmt: skip
    (tmp_path / "link").symlink_to(model_copy)
    before = checksums(tmp_path)
    code, err = edit_error("--model", tmp_path / model, *EDIT_STUDY, "--output", tmp_path / output, "--overwrite")
    assert code == 4 and problem.format(t=tmp_path) in err, err
    assert checksums(tmp_path) == before


def test_the_demo_never_replaces_a_file_of_its_model(model_copy, tmp_path, no_model_load, capsys):
    """`radedit demo` checks its outputs against its --model's files too (its sidecar here is the spec)."""
    out = tmp_path / "demo"
    out.mkdir()
    shutil.copy(tmp_path / "spec" / "spec.json", out / "edited.png.json")
    before = checksums(tmp_path)
    code, err = cli(capsys, "demo", "--model", out / "edited.png.json", "--output", out, "--overwrite")
    assert code == 4 and f"is the same file as the input --model {out / 'edited.png.json'}" in err, err
    assert checksums(tmp_path) == before


def test_an_output_inside_a_model_folder_under_a_new_name_is_written(model_copy, tmp_path):
    code, err = edit_error("--model", model_copy, *EDIT_STUDY, "--output", model_copy / "new.png")
    assert code == 0 and (model_copy / "new.png").is_file() and (model_copy / "new.png.json").is_file(), err


@pytest.mark.parametrize(
    "output, code, problem",
    [
        ("", 2, "radedit: error: --output: empty; give a file name"),
        (".", 4, "radedit: error: .: is the working folder; an output never replaces it"),
        ("..", 4, "is the working folder or holds it"),
        ("{cwd}", 4, "radedit: error: {cwd}: is the working folder; an output never replaces it"),
        ("new/..", 4, "is the working folder"),
        ("/", 4, "radedit: error: /: is the working folder or holds it"),
    ],
)
@pytest.mark.parametrize("overwrite", [True, False])
def test_an_empty_or_working_folder_output_is_one_line(tmp_path, no_model_load, output, code, problem, overwrite):
    cwd = tmp_path / "somefolder" / "work"
    cwd.mkdir(parents=True)  # empty: nothing in it would stop --overwrite from clearing it
    output = output.format(cwd=cwd)
    got, err = edit_error("--model", "tiny", *EDIT_STUDY, "--output", output, *(["--overwrite"] * overwrite), cwd=cwd)
    assert got == code and problem.format(cwd=cwd) in err, err
    assert cwd.is_dir() and listing(tmp_path) == ["somefolder", "somefolder/work"]


@pytest.mark.parametrize("output", ["out2/a.png", "out2/a.nii.gz", "out2/b.png"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_a_file_output_that_is_a_folder_is_refused_before_the_model_loads(tmp_path, no_model_load, output,
                                                                          overwrite):  # fmt: skip
    for folder in ("a.png", "a.nii.gz", "b.png.json"):  # b.png's sidecar is a folder
        (tmp_path / "out2" / folder).mkdir(parents=True)
        (tmp_path / "out2" / folder / "note.txt").write_text("keep")
    before = checksums(tmp_path)
    code, err = edit_error("--model", "tiny", *EDIT_STUDY, "--output", tmp_path / output,
                           *(["--overwrite"] * overwrite))  # fmt: skip
    folder = tmp_path / (output if not output.endswith("b.png") else output + ".json")
    assert code == 4 and f"{folder}: is a folder and this output is a file" in err, err
    assert checksums(tmp_path) == before


def _own_series(tmp_path: Path, model: Path) -> Path:
    """A series radedit wrote (edited.dcm and masks.dcm), kept aside to copy from."""
    code, err = edit_error("--model", model, *EDIT_STUDY, "--output", tmp_path / "own", "--write-seg")
    assert code == 0, err
    return tmp_path / "own"


@pytest.mark.parametrize(
    "files",
    [
        {"edited.dcm": "study:cxr.dcm"},  # the user's ORIGINAL\PRIMARY CR named like radedit's image
        {"masks.dcm": "study:seg.dcm"},  # a study's SEG (radedit's phantom made it) named like radedit's SEG
        {"edited.dcm": "own:edited.dcm", "masks.dcm": "study:seg.dcm"},  # one of two is not radedit's
        {"edited.dcm": "own:masks.dcm"},  # radedit's SEG under the image's name
        {"edited.dcm": "text"},  # not DICOM at all
        {"edited.dcm": "link:own/edited.dcm"},  # a symlink to a radedit image: the link is not radedit's
    ],
)
def test_overwrite_never_deletes_a_users_file_named_like_a_series_file(micro_model_dir, tmp_path, monkeypatch,
                                                                       files):  # fmt: skip
    own = _own_series(tmp_path, micro_model_dir)
    forbid_model_load(monkeypatch)
    user = tmp_path / "userfolder"
    user.mkdir()
    for name, source in files.items():
        kind, _, rest = source.partition(":")
        if kind == "text":
            (user / name).write_text("years of work")
        elif kind == "link":
            (user / name).symlink_to(tmp_path / rest)
        else:
            shutil.copy((STUDY if kind == "study" else own) / rest, user / name)
    before = checksums(tmp_path)
    code, err = edit_error("--model", micro_model_dir, *EDIT_STUDY, "--output", user, "--overwrite")
    assert code == 4 and f"{user}: not a folder radedit wrote" in err and "edited.dcm/masks.dcm written by" in err
    assert checksums(tmp_path) == before


def test_overwrite_replaces_a_series_radedit_wrote(micro_model_dir, tmp_path):
    own = _own_series(tmp_path, micro_model_dir)
    copy = tmp_path / "copy"
    shutil.copytree(own, copy)  # a copy of radedit's series: the evidence is in the files' headers
    for folder in (own, copy):
        code, err = edit_error("--model", micro_model_dir, *EDIT_STUDY, "--output", folder, "--overwrite")
        assert code == 0 and sorted(os.listdir(folder)) == ["edited.dcm"], err


@pytest.mark.parametrize("target", ["notes", "own", "missing"])
def test_a_symlinked_output_folder_is_left_alone_and_the_message_says_why(micro_model_dir, tmp_path, monkeypatch,
                                                                          target):  # fmt: skip
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("years of work")
    if target == "own":
        _own_series(tmp_path, micro_model_dir)
    (tmp_path / "noteslink").symlink_to(tmp_path / target)
    forbid_model_load(monkeypatch)
    before = checksums(tmp_path)
    code, err = edit_error("--model", micro_model_dir, *EDIT_STUDY, "--output", tmp_path / "noteslink", "--overwrite")
    expected = f"{tmp_path / 'noteslink'}: is a symlink to {tmp_path / target}; an output never replaces a symlink"
    assert code == 4 and expected in err, err
    assert "not a folder" not in err and checksums(tmp_path) == before


def test_phantom_overwrite_replaces_only_a_data_set_it_wrote(tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    before = checksums(tmp_path)
    code, err = cli(capsys, "phantom", "--out", mine, "--n", "2", "--overwrite")
    assert code == 4 and str(mine) in err and "not a folder radedit wrote" in err
    assert checksums(tmp_path) == before and listing(tmp_path) == ["notes", "notes/thesis.txt"]
    # its own data set: replaced; a world config inside it: refused (clearing it would delete the config)
    assert cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "2")[0] == 0
    assert cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "3", "--overwrite")[0] == 0
    assert len(json.loads((tmp_path / "d" / "datalist.json").read_text())["training"]) == 3
    before = checksums(tmp_path)
    code, err = cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "2", "--overwrite",
                    "--config", tmp_path / "d" / "world.yaml")  # fmt: skip
    assert code == 4 and "holds the input --config" in err and checksums(tmp_path) == before


@pytest.mark.parametrize("tool", [None, "nnunet", "radedit_core_fork"])
def test_phantom_overwrite_never_takes_another_tools_dataset_json_for_its_own(tmp_path, capsys, tool):
    """Decathlon, MONAI and nnU-Net data sets keep a dataset.json at their root: its name is no evidence."""
    task = tmp_path / "Task09_Spleen"
    (task / "imagesTr").mkdir(parents=True)
    (task / "imagesTr" / "spleen_1.nii.gz").write_bytes(b"ct volume")
    record = {"name": "Spleen", "labels": {"0": "background", "1": "spleen"}, "numTraining": 41}
    (task / "dataset.json").write_text(json.dumps(record if tool is None else {**record, "tool": tool}))
    before = checksums(tmp_path)
    code, err = cli(capsys, "phantom", "--out", task, "--n", "2", "--overwrite")
    assert code == 4 and f"{task}: not a folder radedit wrote (no .radedit-output or dataset.json written by" in err
    assert checksums(tmp_path) == before


@pytest.mark.parametrize("added", [["set.json"], ["edits/a.png", "results.json", "predictions.csv", "notes.txt"]])
def test_phantom_overwrite_keeps_what_was_added_to_its_data_set(tmp_path, capsys, added):
    """A stress-test set or results written into a phantom folder stop its replacement, named."""
    world = tmp_path / "phantom"
    assert cli(capsys, "phantom", "--out", world, "--n", "2")[0] == 0
    for name in added:
        (world / name).parent.mkdir(parents=True, exist_ok=True)
        (world / name).write_text("mine")
    before = checksums(tmp_path)
    code, err = cli(capsys, "phantom", "--out", world, "--n", "3", "--overwrite")
    top = sorted({name.split("/")[0] for name in added})
    assert code == 4 and f"{world}: holds {', '.join(top[:3])}" in err and "radedit did not write there" in err, err
    assert checksums(tmp_path) == before


def test_overwrite_of_a_marked_folder_keeps_files_added_to_it(tmp_path):
    """The marker lists what the toolkit wrote; a file added since stops --overwrite (a model folder, a checkpoint)."""
    from radedit_core.fileio import MARKER, atomic_directory

    out = tmp_path / "model"
    with atomic_directory(out) as tmp:
        (tmp / "weights.bin").write_bytes(b"1")
    assert json.loads((out / MARKER).read_text())["contents"] == ["weights.bin"]
    with atomic_directory(out, overwrite=True) as tmp:  # its own files only: replaced
        (tmp / "weights.bin").write_bytes(b"2")
    (out / "my_notes.md").write_text("mine")
    before = checksums(tmp_path)
    with pytest.raises(OutputError, match=r"model: holds my_notes.md, which radedit did not write there"):
        with atomic_directory(out, overwrite=True) as tmp:
            (tmp / "weights.bin").write_bytes(b"3")
    assert checksums(tmp_path) == before and not list(tmp_path.glob(".model.*"))


def test_an_output_that_is_a_symlink_is_never_replaced(tmp_path, capsys, inputs):
    """Whatever it points to (a user's file, nothing): the link and its target stay."""
    (tmp_path / "mine.png").write_bytes(b"my figure")
    (tmp_path / "out.png").symlink_to(tmp_path / "mine.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    before = checksums(tmp_path)
    for link in ("out.png", "dangling.png"):
        code, err = cli(capsys, "edit", "--image", inputs / "cxr.png", "--edit-mask", inputs / "lungs_mask.png",
                        "--output", tmp_path / link, "--overwrite", *EDIT)  # fmt: skip
        assert code == 4 and f"{tmp_path / link}: is a symlink to" in err, err
        assert (tmp_path / link).is_symlink()
    assert checksums(tmp_path) == before and not (tmp_path / "nowhere.png").exists()


def _keep_covers_edit_masks(folder: Path, shape: tuple[int, int]) -> tuple[Path, Path]:
    """A keep mask of two blocks with a 1 px gap and an edit mask on the gap: apart until dilated."""
    rows, cols = shape
    keep = np.zeros(shape, np.uint8)
    r0, r1, c = rows // 4, 3 * rows // 4, cols // 2
    keep[r0:r1, cols // 4 : c] = 1
    keep[r0:r1, c + 1 : 3 * cols // 4] = 1
    edit = np.zeros(shape, np.uint8)
    edit[r0 + 20 : r1 - 20, c] = 1
    Image.fromarray(keep * 255).save(folder / "keep.png")
    Image.fromarray(edit * 255).save(folder / "edit.png")
    return folder / "edit.png", folder / "keep.png"


@pytest.mark.parametrize("dilate", [None, "3"])
def test_an_edit_region_inside_the_keep_region_is_refused_before_the_model_loads(inputs, tmp_path, capsys, dilate):
    shape = np.asarray(Image.open(inputs / "cxr.png")).shape
    edit, keep = _keep_covers_edit_masks(tmp_path, shape)
    if dilate is None:  # the edit mask itself inside the keep mask
        keep = inputs / "lungs_mask.png"
        edit = inputs / "lungs_mask.png"
    before = checksums(tmp_path)
    code, err = cli(capsys, "edit", "--image", inputs / "cxr.png", "--edit-mask", edit, "--keep-mask", keep,
                    "--output", tmp_path / "out.png", *(["--dilate", dilate] if dilate else ["--dilate", "0"]), *EDIT)  # fmt: skip
    assert code == 2 and "lies entirely inside the keep mask" in err and str(edit) in err
    if dilate:
        assert "dilated by 3 px" in err
    assert checksums(tmp_path) == before


def test_an_edit_that_changed_nothing_in_its_region_is_never_accepted():
    from types import SimpleNamespace

    from radedit_core.stress.build import _apply_filters

    plan = SimpleNamespace(recipe=SimpleNamespace(filters={}), sham=False)
    same = {"locality": {"edit": {"max_abs_change": 0.0, "mean_abs_change": 0.0}, "outside": {}}}
    accepted, reasons = _apply_filters(plan, same)
    assert not accepted and "no pixel of the edit region changed" in reasons[0]
    accepted, reasons = _apply_filters(plan, {"locality": {"outside": {"mean_abs_change": 0.0}}})
    assert not accepted and "edit region is empty" in reasons[0]
    assert _apply_filters(plan, {"locality": {"edit": {"max_abs_change": 0.1, "mean_abs_change": 0.01}}}) == (True, [])


# -- duplicate keys in every YAML the toolkit reads -----------------------------------------------
RECIPE_DUP = """\
defaults: {steps: 2}
recipes:
  add-effusion:
    shift: manifestation
    prompt: Small left pleural effusion.
    edit: lungs
    labels: {effusion: 1}
  add-effusion:
    shift: manifestation
    prompt: Large right pleural effusion.
    edit: lungs
    labels: {effusion: 1}
"""


def test_duplicate_keys_are_errors_naming_key_and_line(tmp_path, capsys):
    from radedit_core.models.spec import ModelSpec
    from radedit_core.phantom_world import WorldConfig
    from radedit_core.stress.recipes import load_recipes
    from radedit_core.stress.run import load_stress_config

    (tmp_path / "r.yaml").write_text(RECIPE_DUP)
    with pytest.raises(ConfigError, match=r"r.yaml: duplicate key 'add-effusion' on line 8 \(first on line 3\)"):
        load_recipes(tmp_path / "r.yaml")
    (tmp_path / "run.yaml").write_text("datalist: a.json\nrecipes: r.yaml\nset: s\ndatalist: b.json\n")
    with pytest.raises(ConfigError, match="run.yaml: duplicate key 'datalist' on line 4"):
        load_stress_config(tmp_path / "run.yaml")
    (tmp_path / "world.yaml").write_text("prevalence:\n  pneumothorax: 0.5\n  pneumothorax: 0.1\n")
    with pytest.raises(ConfigError, match="duplicate key 'pneumothorax' on line 3"):
        WorldConfig.from_yaml(tmp_path / "world.yaml")
    (tmp_path / "spec.yaml").write_text("name: a\nunet: {source: x}\nname: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'name' on line 3"):
        ModelSpec.from_file(tmp_path / "spec.yaml")
    (tmp_path / "spec.json").write_text('{"name": "a", "name": "b"}')
    with pytest.raises(ConfigError, match="spec.json: duplicate key 'name'"):
        ModelSpec.from_file(tmp_path / "spec.json")
    # YAML merge keys may override what they bring in: that is not a duplicate
    from radedit_core.yamlio import load_yaml

    assert load_yaml("base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n")["d"] == {"x": 2}
    # through the CLI: one line, exit 2, nothing written
    code, err = cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "2", "--config", tmp_path / "world.yaml")
    assert code == 2 and "line 3" in err and not (tmp_path / "d").exists()
    code, err = cli(capsys, "stress", "build", "--datalist", tmp_path / "dl.json", "--recipes", tmp_path / "r.yaml",
                    "--output", tmp_path / "set")  # fmt: skip
    assert code == 2 and "duplicate key 'add-effusion' on line 8" in err and not (tmp_path / "set").exists()


# -- 2. masks whose values are not usable, in every mask format -----------------------------------
def _mask_file(folder: Path, fmt: str, values: np.ndarray) -> Path:
    if fmt == "seg":
        pytest.skip("DICOM SEG stores 0/1 bits or fractions in [0, 1] by construction (highdicom refuses others)")
    path = folder / f"mask.{fmt}"
    if fmt == "png":
        Image.fromarray(values).save(path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    return path


@pytest.mark.parametrize(
    "fmt, kind, problem",
    [
        ("nii.gz", "nan", "NaN or infinite"),
        ("nrrd", "nan", "NaN or infinite"),
        ("nii.gz", "inf", "NaN or infinite"),
        ("nrrd", "fraction", "fractional values"),
        ("nii.gz", "tiny", "fractional values"),
        ("nrrd", "negative", "negative values"),
        ("png", "zero", "edit mask is empty"),
        ("nii.gz", "zero", "edit mask is empty"),
    ],
)
def test_mask_values_that_are_not_a_mask_are_refused(inputs, tmp_path, capsys, fmt, kind, problem):
    lungs = np.asarray(Image.open(inputs / "lungs_mask.png")) > 0
    inside = {"nan": np.nan, "inf": np.inf, "fraction": 0.5, "tiny": 1.0, "negative": -1.0, "zero": 0.0}[kind]
    outside = 1e-6 if kind == "tiny" else 0.0
    dtype = np.uint8 if fmt == "png" else np.float32
    mask = _mask_file(tmp_path, fmt, np.where(lungs, inside, outside).astype(dtype))
    before = checksums(tmp_path)
    code, err = cli(capsys, "edit", "--image", inputs / "cxr.png", "--edit-mask", mask, "--output",
                    tmp_path / "out.png", *EDIT)  # fmt: skip
    assert code == 2 and problem in err and str(mask) in err
    assert checksums(tmp_path) == before


def test_fractional_masks_are_weights_with_soft_masks(inputs, tmp_path):
    from radedit_core.edit_request import prepare_edit
    from radedit_core.settings import EditSettings

    lungs = np.asarray(Image.open(inputs / "lungs_mask.png")) > 0
    mask = _mask_file(tmp_path, "nrrd", np.where(lungs, 0.5, 0.0).astype(np.float32))
    request = prepare_edit(inputs / "cxr.png", mask, None, EditSettings.from_mapping({"prompt": "x", "soft_masks": True}),
                           tmp_path / "out.png")  # fmt: skip
    assert set(np.unique(request.edit)) == {0.0, 0.5}


# -- 2. network failures reaching a PACS (loopback and the reserved .invalid TLD only) -------------
@pytest.fixture
def dead_ports():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = closed.getsockname()[1]
    closed.close()
    yield silent.getsockname()[1], refused
    silent.close()


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
@pytest.mark.parametrize("failure, problem", [("unresolvable", "resolve"), ("refused", "refused"),
                                              ("timeout", "within 1 s")])  # fmt: skip
def test_unreachable_pacs_is_one_pacs_error(dead_ports, protocol, failure, problem):
    from radedit_core.errors import PacsError
    from radedit_core.pacs import PacsServer, find_study

    silent, refused = dead_ports
    host, port = {"unresolvable": ("pacs.invalid", 104), "refused": ("127.0.0.1", refused),
                  "timeout": ("127.0.0.1", silent)}[failure]  # fmt: skip
    spec = f"dimse://PACS@{host}:{port}" if protocol == "dimse" else f"http://{host}:{port}/dicom-web"
    started = time.monotonic()
    with pytest.raises(PacsError) as err:
        find_study(PacsServer.parse(spec, timeout=1.0), "1.2.3")
    message = str(err.value)
    assert err.value.exit_code == 5 and "\n" not in message and host in message
    assert problem in message.lower() or (failure == "unresolvable" and "not known" in message), message
    assert time.monotonic() - started < 15


# -- 3. work sized before it is planned --------------------------------------------------------------
def test_limits_are_refused_before_any_work_and_name_their_option(tmp_path, capsys):
    code, err = cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "1000000000000")
    assert code == 2 and "--max-cases" in err and not (tmp_path / "d").exists()
    recipes = yaml.safe_load(RECIPE_DUP.replace("  add-effusion:\n    shift: manifestation\n    prompt: Large", "  b:\n    shift: manifestation\n    prompt: Large"))
    recipes["recipes"]["add-effusion"]["sweep"] = {"guidance": list(range(1, 101)), "skip_ratio": [i / 1000 for i in range(1, 999)]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipes))
    started = time.monotonic()
    code, err = cli(capsys, "stress", "build", "--datalist", tmp_path / "dl.json", "--recipes", tmp_path / "r.yaml",
                    "--output", tmp_path / "set")  # fmt: skip
    assert code == 2 and "100 x 998 = 99800 combinations" in err and "--max-sweep-points" in err
    assert time.monotonic() - started < 10 and not (tmp_path / "set").exists()
    # A stress config's own limit keys reach the build: here one that lowers the sweep limit below a small sweep.
    from radedit_core.errors import ConfigError
    from radedit_core.stress.run import stress_build, stress_options

    recipes["recipes"]["add-effusion"]["sweep"] = {"guidance": [5, 10, 15]}
    (tmp_path / "r3.yaml").write_text(yaml.safe_dump(recipes))
    options = stress_options({"datalist": str(tmp_path / "dl.json"), "recipes": str(tmp_path / "r3.yaml"),
                              "set": str(tmp_path / "set3"), "max_sweep_points": 2}, need=("datalist", "recipes", "set"))  # fmt: skip
    with pytest.raises(ConfigError, match="max-sweep-points"):
        stress_build(options)
    assert not (tmp_path / "set3").exists()


def test_item_ids_carry_64_bits_of_hash():
    from radedit_core.batch.items import item_id

    ident = item_id("case-1", {"a": 1})
    assert len(ident.rsplit("-", 1)[1]) == 16


def test_an_id_collision_is_reported_as_a_collision(small_world, tmp_path, monkeypatch):
    from radedit_core.stress import build
    from radedit_core.stress.build import StressBuild

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BUILD_RECIPES))
    monkeypatch.setattr(build, "item_id", lambda label, content: "same-0123456789abcdef")  # a 64-bit hash collision
    stress_build = StressBuild(datalist=small_world / "datalist.csv", recipes=tmp_path / "r.yaml", score="off",
                               output_dir=tmp_path / "set")  # fmt: skip
    stress_build._check_params()
    with pytest.raises(ConfigError, match="item id collision with row 1 .*same id same-0123456789abcdef"):
        stress_build.build_items()


# -- the worker: jobs that point at their own inputs, strings where objects belong, '..' ----------------
def _job(folder: Path, **fields) -> Path:
    job = {"radedit_job": 1, "task": "edit", "image": "cxr.png", "edit_mask": "lungs_mask.png",
           "output": "edited.png", "settings": {"prompt": "x", "steps": 2}, "model": {"name": "tiny", "device": "cpu"}}  # fmt: skip
    job.update(fields)
    path = folder / "job.json"
    path.write_text(json.dumps({k: v for k, v in job.items() if v is not None}))
    return path


def _worker(job: Path, *args: str, cwd: Path, monkeypatch, capsys) -> tuple[int, list[dict], str]:
    """The worker on ``job`` in this process, run from ``cwd``: (exit code, events, stderr)."""
    import io

    from radedit_core import worker

    stream = io.StringIO()
    monkeypatch.setattr(worker, "_protocol_stream", lambda: stream)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what main sets, undone after the test
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = worker.main([*args, str(job)])
    return code, [json.loads(line) for line in stream.getvalue().splitlines()], capsys.readouterr().err


@pytest.mark.parametrize(
    "fields, code, problem",
    [
        ({"settings": "prompt: x"}, 2, "job field 'settings' must be a JSON object, got str"),
        ({"model": ["tiny"]}, 2, "job field 'model' must be a JSON object"),
        ({"output": "../escaped.png"}, 2, "leaves the job's folder"),
        ({"sidecar": "../x/../../s.json"}, 2, "leaves the job's folder"),
        ({"output": "cxr.png", "overwrite": True}, 4, "is the same file as the input image"),
        ({"sidecar": "cxr.png", "overwrite": True}, 4, "is the same file as the input image"),
        ({"sidecar": "lungs_mask.png", "overwrite": True}, 4, "is the same file as the input edit_mask"),
        ({"output": "hard.png", "overwrite": True}, 4, "is the same file as the input image"),
        ({"output": "link.png", "overwrite": True}, 4, "link.png: is a symlink to cxr.png; an output never replaces"),
    ],
)
def test_worker_jobs_that_would_lose_data_are_refused(inputs, monkeypatch, capsys, fields, code, problem):
    os.link(inputs / "cxr.png", inputs / "hard.png")
    (inputs / "link.png").symlink_to("cxr.png")
    job = _job(inputs, **fields)
    before = checksums(inputs.parent)
    # --check: the job's checks, no model; from the repository, not the job's folder
    rc, events, stderr = _worker(job, "--check", cwd=REPO, monkeypatch=monkeypatch, capsys=capsys)
    assert rc == code, (events, stderr)
    assert events[-1]["event"] == "error" and problem in events[-1]["message"] and "Traceback" not in stderr
    assert checksums(inputs.parent) == before


@pytest.mark.parametrize("fields", [{"sidecar": "mymodel/radedit_model.json"}, {"output": "mymodel/radedit_model.png",
                                                                               "sidecar": "mymodel/README.md"}])
def test_worker_jobs_never_replace_a_file_of_their_model(inputs, micro_model_dir, monkeypatch, capsys, fields):
    shutil.copytree(micro_model_dir, inputs / "mymodel")
    job = _job(inputs, overwrite=True, model={"name": str(inputs / "mymodel"), "device": "cpu"}, **fields)
    before = checksums(inputs.parent)
    rc, events, stderr = _worker(job, "--check", cwd=REPO, monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 4 and "is a file of the input model" in events[-1]["message"], (events, stderr)
    assert checksums(inputs.parent) == before


def test_worker_paths_count_from_the_job_folder_and_dotdot_through_a_new_folder_works(
        inputs, tmp_path, radedit_home, micro_model_dir, monkeypatch, capsys):
    for name in ("cxr.png", "lungs_mask.png"):  # 128 x 128: the worker's whole run in a few seconds
        image = Image.open(inputs / name)
        image.resize((128, 128), Image.NEAREST if "mask" in name else Image.BILINEAR).save(inputs / name)
    job = _job(inputs, output="new/../edited.png", model={"name": str(micro_model_dir), "device": "cpu"})
    (tmp_path / "elsewhere").mkdir()
    # another working folder: relative paths are the job's
    rc, events, stderr = _worker(job, cwd=tmp_path / "elsewhere", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0, stderr
    assert events[-1]["event"] == "done" and events[-1]["output"] == str(inputs / "edited.png")
    assert (inputs / "edited.png").is_file() and (inputs / "edited.png.json").is_file()
    assert not (inputs / "new").exists() and not [p for p in listing(inputs) if ".part" in p]


# -- 2. predictor failures and bundle configs: one line naming the call --------------------------------
CLASSIFIER = {"task": "classification", "classes": ["opacity"], "input_size": [64, 64], "output": "logits",
              "activation": "sigmoid"}  # fmt: skip


@pytest.fixture(scope="module")
def cls_set(tmp_path_factory) -> Path:
    sys.path.insert(0, str(TESTS))
    from stress_sets import classification_set

    return classification_set(tmp_path_factory.mktemp("stress") / "cls", sources=4)


def _script(folder: Path, source: str, name: str) -> Path:
    """A TorchScript predictor compiled from ``source`` (a module class ``Net``)."""
    import importlib.util

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_net.py").write_text(source)  # TorchScript compiles from a source file
    spec = importlib.util.spec_from_file_location(f"{name}_net_{abs(hash(str(folder)))}", folder / f"{name}_net.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    torch.jit.script(module.Net()).save(str(folder / f"{name}.pt"))
    (folder / f"{name}.json").write_text(json.dumps(CLASSIFIER))
    return folder / f"{name}.pt"


THREE_CHANNELS = """
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3)
    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))
"""
LATER_BATCH = """
import torch
class Net(torch.nn.Module):
    def forward(self, x):
        if x.shape[0] < 2:
            return x.mean(dim=(2, 3))
        raise RuntimeError("CUDA error: device-side assert triggered")
"""


@pytest.mark.parametrize("source, problem", [(THREE_CHANNELS, "expected input"), (LATER_BATCH, "device-side assert")])
def test_a_failing_predictor_is_one_line_naming_the_call(cls_set, tmp_path, capsys, source, problem):
    predictor = _script(tmp_path / "p", source, "net")
    before = checksums(cls_set, tmp_path / "p")
    code, err = cli(capsys, "stress", "evaluate", "--set", cls_set, "--predictor", predictor, "--output",
                    tmp_path / "results", "--device", "cpu", "--batch-size", "4", "--resamples", "100")  # fmt: skip
    assert code == 2 and "the model raised" in err and problem in err and "[N, 1, H, W]" in err
    assert not (tmp_path / "results" / "results.json").exists() and checksums(cls_set, tmp_path / "p") == before


def test_a_bundle_predictor_with_broken_inference_json_is_one_line(cls_set, tmp_path, capsys):
    import torch

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    meta = {"name": "toy", "version": "0.1.0", "network_data_format": {"inputs": {"image": {"num_channels": 1,
            "spatial_shape": [64, 64]}}, "outputs": {"pred": {"num_channels": 1, "channel_def": {"0": "opacity"}}}},
            "radedit_predictor": CLASSIFIER}  # fmt: skip
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    (bundle / "configs" / "inference.json").write_text('{"network_def": {"_target_": "torch.nn.Identity"},')
    torch.save({}, bundle / "models" / "model.pt")
    code, err = cli(capsys, "stress", "evaluate", "--set", cls_set, "--predictor", bundle, "--output",
                    tmp_path / "results", "--device", "cpu")  # fmt: skip
    assert code == 2 and "inference.json" in err and not (tmp_path / "results").exists()


# -- 3. one run per output folder ---------------------------------------------------------------------
LOCK_HOLDER = """
import sys, time
from radedit_core.runlock import run_lock
with run_lock(sys.argv[1], "radedit test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path):
    """Another process holds ``folder``'s run lock while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env=env())  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_second_run_into_a_locked_folder_says_who_holds_it(cls_set, tmp_path, capsys, monkeypatch):
    from radedit_core.batch import EditBatch

    monkeypatch.syspath_prepend(str(TESTS))
    predictor = _script(tmp_path / "p", LATER_BATCH.replace("raise RuntimeError", "return x.mean(dim=(2, 3))\n        raise RuntimeError"), "ok")  # fmt: skip
    commands = {
        "phantom": ["phantom", "--out", tmp_path / "out", "--n", "2"],
        "stress build": ["stress", "build", "--datalist", tmp_path / "none.json", "--recipes", tmp_path / "r.yaml",
                         "--output", tmp_path / "out"],
        "stress evaluate": ["stress", "evaluate", "--set", cls_set, "--predictor", predictor, "--output",
                            tmp_path / "out", "--device", "cpu", "--resamples", "100"],
        "train": ["train", "--datalist", tmp_path / "none.json", "--output-dir", tmp_path / "out", "--max-train-steps",
                  "1", "--device", "cpu"],
    }  # fmt: skip
    with lock_held_elsewhere(tmp_path / "out") as pid:
        for name, argv in commands.items():
            code, err = cli(capsys, *argv)
            assert code == 4 and "another run is writing this output folder" in err and f"pid {pid}" in err, (name, err)
        with pytest.raises(OutputError, match=f"pid {pid}"):
            EditBatch(input=sample_dir() / "cxr.png", edit_mask=sample_dir() / "lungs_mask.png",
                      settings={"prompt": "x"}, output_dir=tmp_path / "out").run()  # fmt: skip
        assert not (tmp_path / "out").exists()
    # the holder died (kill -9): its lock file stays, the kernel dropped its flock: the next run proceeds
    from radedit_core.runlock import lock_path

    assert lock_path(tmp_path / "out").exists()
    assert cli(capsys, "phantom", "--out", tmp_path / "out", "--n", "2")[0] == 0
    assert not lock_path(tmp_path / "out").exists()


def test_two_concurrent_phantom_runs_into_one_folder(tmp_path):
    argv = [sys.executable, "-m", "radedit_core.cli", "-q", "phantom", "--out", str(tmp_path / "d"), "--n", "12"]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env()) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read().strip()) for p in procs)
    (ok, _), (refused, err) = results
    assert ok == 0 and refused == 4 and "\n" not in err
    assert "another run is writing" in err or "already exists" in err, err
    rows = json.loads((tmp_path / "d" / "datalist.json").read_text())
    assert sum(len(v) for v in rows.values()) == 12
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no lock, no staging folder left


# -- 2 and 3. a full disk: one line, exit 4, no partial file, and the same command resumes -------------------
@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 2 MiB at tmp_path/disk, and a function growing it to 64 MiB (needs root: CI runs as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a tmpfs needs root (the CI runs as root); test_full_disk_injected covers the logic")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)

    try:
        yield disk, grow
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` up to ``leave`` free bytes with one file (removed by the test to make room)."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def _no_partials(folder: Path) -> list[str]:
    return [p for p in listing(folder) if ".part" in p or p.endswith(".tmp")]


def test_full_disk_phantom_resumes(small_disk, capsys):
    disk, grow = small_disk
    out = disk / "world"
    code, err = cli(capsys, "phantom", "--out", out, "--n", "16")
    assert code == 4 and "No space left on device" in err and "run the same command again" in err
    assert not out.exists()
    staged = [p for p in listing(disk) if p.startswith(".world.partial/cases/") and p.endswith(".json")]
    grow()
    assert cli(capsys, "phantom", "--out", out, "--n", "16")[0] == 0
    assert len(json.loads((out / "datalist.json").read_text())["training"]) + 0 >= 1
    assert sorted(os.listdir(disk)) == ["world"] and len(list((out / "cases").iterdir())) == 16
    assert staged, "the first run wrote some cases, which the second one reused"


def test_full_disk_evaluate_and_report_resume(small_disk, cls_set, tmp_path, capsys):
    disk, grow = small_disk
    predictor = _script(tmp_path / "p", LATER_BATCH.replace("raise RuntimeError", "return x.mean(dim=(2, 3))\n        raise RuntimeError"), "ok")  # fmt: skip
    filler = fill(disk, 0)
    argv = ["stress", "evaluate", "--set", cls_set, "--predictor", predictor, "--output", disk / "results",
            "--device", "cpu", "--resamples", "100"]  # fmt: skip
    code, err = cli(capsys, *argv)
    assert code == 4 and "No space left on device" in err, err
    assert not (disk / "results" / "results.json").exists() and not _no_partials(disk)
    filler.unlink()
    grow()
    assert cli(capsys, *argv)[0] == 0
    # predictions.csv without results.json (a failure between the two): the run's own output, resumed
    (disk / "results" / "results.json").unlink()
    assert cli(capsys, *argv)[0] == 0 and (disk / "results" / "results.json").is_file()
    filler = fill(disk, 4096)
    code, err = cli(capsys, "stress", "report", "--results", disk / "results", "--output", disk / "report.html")
    assert code == 4 and "report.html" in err and not (disk / "report.html").exists() and not _no_partials(disk)
    filler.unlink()
    assert cli(capsys, "stress", "report", "--results", disk / "results", "--output", disk / "report.html")[0] == 0


def test_full_disk_injected(tmp_path, capsys, monkeypatch):
    """Where no tmpfs can be mounted: ENOSPC raised by the atomic writer's rename, same promises."""
    import errno

    from radedit_core import fileio

    real_replace = os.replace

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(fileio.os, "replace", full)
    code, err = cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "2")
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    assert code == 4 and "No space left on device" in err and not (tmp_path / "d").exists()
    assert cli(capsys, "phantom", "--out", tmp_path / "d", "--n", "2")[0] == 0


@pytest.mark.parametrize("output", ["sub/a.png", "sub/a.nrrd", "sub/series"])
def test_full_disk_edit_names_the_output_not_its_temporary_file(small_disk, micro_model_dir, output):
    disk, _grow = small_disk
    filler = fill(disk, 0)
    argv = ["--model", micro_model_dir, *EDIT_STUDY, "--output", disk / output]
    code, err = edit_error(*argv)
    assert code == 4 and err == (f"radedit: error: {disk / output}: cannot write (No space left on device; free "
                                 "some space and run the same command again to resume)"), err  # fmt: skip
    assert listing(disk) == ["filler"]  # no partial file, no folder made for it
    filler.unlink()
    assert edit_error(*argv)[0] == 0 and (disk / output).exists()


@pytest.mark.parametrize("output", ["a.png", "series"])
def test_an_overwrite_that_fails_half_way_leaves_the_earlier_output_whole(micro_model_dir, tmp_path, capsys,
                                                                          monkeypatch, output):  # fmt: skip
    """--overwrite of an earlier edit whose new sidecar cannot be written (the disk filled up after the image):
    the earlier image and sidecar stay, as a pair (the image used to be gone, its sidecar left)."""
    import errno
    import pathlib

    out = tmp_path / output
    sidecar = tmp_path / ("a.png.json" if output == "a.png" else "series.json")
    argv = ["edit", "--model", micro_model_dir, *EDIT_STUDY, "--output", out, "--overwrite"]
    assert cli(capsys, *argv)[0] == 0
    before = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    write_text = pathlib.Path.write_text

    def full_at_the_sidecar(self, *args, **kwargs):
        if self.name.startswith(f".{sidecar.name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_at_the_sidecar)
    code, err = cli(capsys, *argv)
    assert code == 4 and err.startswith(f"radedit: error: {sidecar}: cannot write (No space left"), err
    assert {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    assert cli(capsys, *argv)[0] == 0
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(before)


@pytest.mark.parametrize("output", ["sub/a.nii", "sub/a.nii.gz"])
def test_a_short_nifti_write_is_the_full_disk_error(small_disk, micro_model_dir, output):
    """ITK's NIfTI writer only prints a short write ("NWAD: wrote only N of M bytes") and returns:
    the file is read back, and a disk with room for the file's start but not its end fails the
    same way as a disk with no room at all."""
    disk, _grow = small_disk
    filler = fill(disk, 256 * 1024)  # room for the header and part of the data
    argv = ["--model", micro_model_dir, *EDIT_STUDY, "--output", disk / output]
    code, err = edit_error(*argv)
    assert code == 4 and err == (f"radedit: error: {disk / output}: cannot write (No space left on device; free "
                                 "some space and run the same command again to resume)"), err  # fmt: skip
    assert listing(disk) == ["filler"]
    filler.unlink()
    assert edit_error(*argv)[0] == 0
    assert np.asarray(nib.load(str(disk / output)).dataobj).size == 640 * 560  # the sample study's image, whole


@pytest.mark.parametrize("writer", ["itk", "pydicom"])
def test_full_disk_injected_edit_names_the_output(micro_model_dir, tmp_path, monkeypatch, writer):
    """Where no tmpfs can be mounted: the writers' own ways of reporting a full disk, raised while writing."""
    import errno

    import pydicom
    import SimpleITK

    def itk_full(image, path, *args, **kwargs):  # what SimpleITK raises: a RuntimeError with the text only
        raise RuntimeError(f"Exception thrown in SimpleITK WriteImage: itk::ERROR: PNGImageIO: Could not write "
                           f"file: {path}\nReason: {os.strerror(errno.ENOSPC)}")  # fmt: skip

    def pydicom_full(self, path, *args, **kwargs):  # pydicom re-raises without the errno, the OSError its cause
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise OSError(f"With tag (7FE0,0010) got exception: {exc}") from exc

    if writer == "itk":
        monkeypatch.setattr(SimpleITK, "WriteImage", itk_full)
    else:
        monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", pydicom_full)
    output = tmp_path / "sub" / ("a.png" if writer == "itk" else "series")
    code, err = edit_error("--model", micro_model_dir, *EDIT_STUDY, "--output", output)
    assert code == 4 and err.startswith(f"radedit: error: {output}: cannot write (No space left on device; free some "
                                        "space and run the same command again"), err  # fmt: skip
    assert listing(tmp_path) == []


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    """Four 128 x 128 phantom cases (datalist.json), all in the training split."""
    from radedit_core.phantom_world import WorldConfig, write_dataset

    folder = tmp_path_factory.mktemp("small_world") / "world"
    config = WorldConfig.from_dict({"rows": 128, "columns": 128, "prevalence": {"pneumothorax": 0.5}})
    write_dataset(folder, n=4, config=config, seed=1, splits={"training": 1.0}, progress=False)
    return folder


SMALL_UNET = {
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 32], "attention_head_dim": [8, 8], "norm_num_groups": 8,
}  # fmt: skip


def test_full_disk_train_resumes_and_its_files_follow_the_umask(small_disk, small_world, capsys, radedit_home):
    disk, grow = small_disk
    argv = ["train", "--datalist", small_world / "datalist.json", "--output-dir", disk / "run", "--unet-config",
            json.dumps(SMALL_UNET), "--batch-size", "2", "--max-train-steps", "2", "--checkpointing-steps", "1",
            "--validation-split", "", "--num-sample-images", "1", "--sample-steps", "2", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    previous = os.umask(0o022)
    try:
        code, err = cli(capsys, *argv)
        assert code == 4 and "No space left on device" in err, err
        assert not (disk / "run" / "model").exists() and not _no_partials(disk)
        grow()
        code, err = cli(capsys, *argv)
        assert code == 0, err
    finally:
        os.umask(previous)
    weights = list((disk / "run").rglob("*.safetensors"))
    assert weights and {oct(p.stat().st_mode & 0o777) for p in weights} == {"0o644"}  # safetensors alone: 0o600
    assert not list((disk / "run").rglob(".*.lock")) and not (disk / ".run.lock").exists()
    # a checkpoint whose safetensors file was cut short (a copy interrupted, a disk that filled up elsewhere)
    checkpoint = sorted((disk / "run" / "checkpoints").iterdir())[0]  # step 1 of 2: resumable
    cut = next(checkpoint.rglob("*.safetensors"))
    cut.write_bytes(cut.read_bytes()[:1000])
    resume = ["--resume", checkpoint, "--output-dir", disk / "run2"]
    code, err = cli(capsys, *argv[:argv.index("--output-dir")], *argv[argv.index("--output-dir") + 2:], *resume)
    assert code == 2 and str(checkpoint) in err and "cannot restore the checkpoint" in err, err


def _train_argv(world: Path, out: Path, *extra) -> list:
    return ["train", "--datalist", world / "datalist.json", "--output-dir", out, "--unet-config", json.dumps(SMALL_UNET),
            "--batch-size", "2", "--max-train-steps", "2", "--checkpointing-steps", "1", "--validation-split", "",
            "--num-sample-images", "1", "--sample-steps", "2", "--device", "cpu", "--no-progress", *extra]  # fmt: skip


def test_a_training_run_prints_only_its_own_lines(small_world, tmp_path, capsys, radedit_home):
    """transformers' "Loading weights" and "Writing model shards" bars came through -q and --no-progress."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    modules = (transformers_logging, diffusers_logging)
    before = [m.is_progress_bar_enabled() for m in modules]
    try:
        for module in modules:
            module.enable_progress_bar()  # as in a new process
        code, err = cli(capsys, *_train_argv(small_world, tmp_path / "run"))
        assert code == 0 and err == "", err
        # the libraries' own settings are back as they were: Trainer.run is a library call too
        assert [m.is_progress_bar_enabled() for m in modules] == [True, True]
    finally:
        for module, enabled in zip(modules, before, strict=True):
            (module.enable_progress_bar if enabled else module.disable_progress_bar)()


@pytest.mark.parametrize("mine", [["metrics.jsonl"], ["samples/figure.png", "notes.txt"], ["model/weights.bin"]])
def test_train_never_writes_into_or_clears_a_folder_it_did_not_write(small_world, tmp_path, capsys, no_model_load,
                                                                     mine):  # fmt: skip
    """A training run folder is new, empty or an earlier run's (its train_settings.json says so), overwrite or not:
    files named like a run's entries are the user's otherwise."""
    out = tmp_path / "mine"
    for name in mine:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("mine")
    before = checksums(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, err = cli(capsys, *_train_argv(small_world, out, *extra))
        assert code == 4 and f"{out}: not a training run folder radedit wrote" in err, err
        assert checksums(tmp_path) == before


def test_train_overwrite_never_deletes_the_model_it_fine_tunes(small_world, tmp_path, capsys, radedit_home):
    out = tmp_path / "run"
    assert cli(capsys, *_train_argv(small_world, out))[0] == 0
    before = checksums(tmp_path)
    code, err = cli(capsys, *_train_argv(small_world, out, "--model", out / "model", "--overwrite"))
    assert code == 4 and f"overwrite, which deletes, {out / 'model'} is the same file as the input model" in err, err
    assert checksums(tmp_path) == before
    # the same run again with overwrite, starting from the demo model: its own entries replaced
    assert cli(capsys, *_train_argv(small_world, out, "--overwrite"))[0] == 0


BUILD_RECIPES = {
    "defaults": {"steps": 2, "skip_ratio": 0.5, "dilate": 0},
    "recipes": {"add-effusion": {"shift": "manifestation", "prompt": "Small left pleural effusion.",
                                 "edit": "lungs", "labels": {"effusion": 1}}},
}  # fmt: skip


def test_full_disk_stress_build_is_exit_4_and_resumes(small_disk, small_world, tmp_path, capsys, radedit_home,
                                                      micro_model_dir):
    disk, grow = small_disk
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BUILD_RECIPES))
    argv = ["stress", "build", "--datalist", small_world / "datalist.csv", "--recipes", tmp_path / "r.yaml",
            "--output", disk / "set", "--score", "off", "--device", "cpu", "--model", micro_model_dir]  # fmt: skip
    before = checksums(small_world)
    filler = fill(disk, 48 * 1024)  # room for the lock and some, not for the edits
    code, err = cli(capsys, *argv)
    assert code == 4 and "No space left on device" in err, err
    assert not (disk / "set" / "set.json").exists() and not _no_partials(disk)
    filler.unlink()
    grow()
    code, err = cli(capsys, *argv)
    assert code == 0, err
    assert (disk / "set" / "set.json").is_file() and checksums(small_world) == before


@pytest.mark.parametrize("name, content, problem", [
    ("manifest.csv", "image,edit_mask,prompt\ncxr.png,lungs_mask.png,No pneumothorax\n", "is the same file as the input datalist"),
    ("manifest.csv", "my,own,table\n", "not a manifest.csv radedit wrote"),
    ("manifest.json", '{"tool": "someone else", "items": []}', "not a manifest.json radedit wrote"),
    ("manifest.json", None, "a symlink"),
])  # fmt: skip
def test_a_batch_run_never_replaces_a_users_file_named_like_its_manifest(inputs, tmp_path, micro_editor, name, content,
                                                                         problem):  # fmt: skip
    """The run's manifest has fixed names in output_dir: an input there (the datalist itself) or a file of the same
    name radedit did not write stops the run before any edit, overwrite or not."""
    from radedit_core.batch import EditBatch

    rows = "image,edit_mask,prompt\ncxr.png,lungs_mask.png,No pneumothorax\n"
    datalist = inputs / ("manifest.csv" if "same file" in problem else "rows.csv")
    datalist.write_text(rows)
    if content is not None and datalist.name != name:
        (inputs / name).write_text(content)
    elif content is None:
        (tmp_path / "elsewhere.json").write_text("{}")
        (inputs / name).symlink_to(tmp_path / "elsewhere.json")
    before = checksums(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=problem):
            EditBatch(datalist=datalist, settings={"steps": 2}, output_dir=inputs, editor=micro_editor,
                      overwrite=overwrite).run()  # fmt: skip
        assert checksums(tmp_path) == before and not list(inputs.glob("*-*.png"))
    # its own manifest: a rerun replaces it (and skips the finished item)
    out = tmp_path / "out"
    for _ in range(2):
        EditBatch(datalist=inputs / "rows.csv" if (inputs / "rows.csv").exists() else datalist, settings={"steps": 2},
                  output_dir=out, editor=micro_editor).run()  # fmt: skip
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"skipped": 1}


@pytest.mark.parametrize("name", ["set.json", "set.csv", "manifest.csv"])
def test_a_stress_build_never_replaces_a_users_set_or_manifest(small_world, tmp_path, capsys, micro_model_dir, name):
    """Also when the user's file is the build's own datalist, named set.json in its output folder."""
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BUILD_RECIPES))
    out = tmp_path / "set"
    out.mkdir()
    datalist = small_world / "datalist.json"
    if name == "set.json":  # the datalist itself, copied in under the set's name, with its images beside it
        shutil.copytree(small_world, out, dirs_exist_ok=True)
        datalist = out / "set.json"
        (out / "datalist.json").rename(datalist)
        problem = "is the same file as the input datalist"
    else:
        (out / name).write_text("my,own,table\n")
        problem = f"not a {name} radedit wrote"
    before = checksums(tmp_path, small_world)
    for extra in ([], ["--overwrite"]):
        code, err = cli(capsys, "stress", "build", "--datalist", datalist, "--recipes", tmp_path / "r.yaml", "--output",
                        out, "--score", "off", "--device", "cpu", "--model", micro_model_dir, *extra)  # fmt: skip
        assert code == 4 and problem in err and "\n" not in err.strip(), err
        assert checksums(tmp_path, small_world) == before


def test_a_stress_report_never_replaces_what_it_reads(cls_set, tmp_path, capsys):
    predictor = _script(tmp_path / "p", LATER_BATCH.replace("raise RuntimeError", "return x.mean(dim=(2, 3))\n        raise RuntimeError"), "ok")  # fmt: skip
    results = tmp_path / "results"
    assert cli(capsys, "stress", "evaluate", "--set", cls_set, "--predictor", predictor, "--output", results,
               "--device", "cpu", "--resamples", "100")[0] == 0  # fmt: skip
    before = checksums(tmp_path, cls_set)
    for output, name in ((results / "results.json", "--results"), (results / "predictions.csv", "predictions"),
                         (cls_set / "set.json", "--set"), (cls_set / "masks" / "case00-keep.png", "keep_mask")):  # fmt: skip
        code, err = cli(capsys, "stress", "report", "--results", results, "--output", output, "--overwrite")
        assert code == 4 and "is the same file as the input" in err and name in err, err
        assert checksums(tmp_path, cls_set) == before
    assert cli(capsys, "stress", "report", "--results", results, "--output", tmp_path / "report.html")[0] == 0
    assert cli(capsys, "stress", "report", "--results", results, "--output", tmp_path / "report.html",
               "--overwrite")[0] == 0  # fmt: skip
    (tmp_path / "mine.html").write_text("<html>my notes</html>")  # --overwrite replaces only a report radedit wrote
    code, err = cli(capsys, "stress", "report", "--results", results, "--output", tmp_path / "mine.html", "--overwrite")
    assert code == 4 and "mine.html: not a report radedit wrote" in err, err
    assert (tmp_path / "mine.html").read_text() == "<html>my notes</html>"


@pytest.mark.parametrize("mine", ["predictions.csv", "results.json"])
def test_stress_evaluate_never_replaces_a_file_it_did_not_write(cls_set, tmp_path, capsys, mine):
    predictor = _script(tmp_path / "p", LATER_BATCH.replace("raise RuntimeError", "return x.mean(dim=(2, 3))\n        raise RuntimeError"), "ok")  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    (out / mine).write_text("my own work\n")
    argv = ["stress", "evaluate", "--set", cls_set, "--predictor", predictor, "--output", out, "--device", "cpu",
            "--resamples", "100"]  # fmt: skip
    for extra in ([], ["--overwrite"]):
        code, err = cli(capsys, *argv, *extra)
        assert code == 4 and f"{out / mine}: not a {mine} radedit wrote" in err, err
        assert sorted(os.listdir(out)) == [mine] and (out / mine).read_text() == "my own work\n"


def test_stress_evaluate_checks_its_options_and_folder_before_the_predictor_loads(cls_set, tmp_path, capsys,
                                                                                  monkeypatch):  # fmt: skip
    import radedit_core.stress.predictor_forms as forms

    monkeypatch.setattr(forms, "load_predictor", lambda *a, **k: pytest.fail("the predictor loaded"))
    argv = ["stress", "evaluate", "--set", cls_set, "--predictor", tmp_path / "p.pt", "--device", "cpu"]
    monkeypatch.chdir(tmp_path)
    for extra, problem in ((["--seed", "-1", "--output", "r"], "--seed -1: must be an integer from 0 to"),
                           (["--resamples", "10", "--output", "r"], "--resamples 10: use at least 100"),
                           (["--output", "."], "is the working folder"), (["--output", ".."], "holds it")):  # fmt: skip
        code, err = cli(capsys, *argv, *extra)
        assert code in (2, 4) and problem in err, err
    assert os.listdir(tmp_path) == []


def test_a_bundle_run_into_a_locked_output_dir_says_who_holds_it(tmp_path, radedit_home, monkeypatch):
    # The holder is another process (what the lock is for); the bundle's edit runs here through MONAI's
    # ConfigWorkflow (a `python -m monai.bundle` process pays ~20 s of imports).  How the bundle's command
    # line turns any radedit error into one line and its exit code is tests/test_settings.py::test_bundle_process.
    from cli_runner import bundle_run_error

    out = tmp_path / "out"
    monkeypatch.chdir(REPO)
    with lock_held_elsewhere(out) as pid:
        raised, cause = bundle_run_error(REPO / "monai_bundle" / "configs" / "inference.json", OutputError,
                                         steps=2, output_dir=str(out))  # fmt: skip
    assert cause is not None and cause.exit_code == 4, raised
    assert "another run is writing this output folder" in str(cause) and f"pid {pid}" in str(cause), cause
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["demo", "--output", ""], "--output: empty"),
        (["generate", "--prompt", "x", "--output", ""], "--output: empty"),
        (["pacs-edit", "--pacs", "dimse://ORTHANC@127.0.0.1:1", "--study", "1.2.3", "--global-edit", "--prompt", "x",
          "--output", " "], "--output: empty"),
        (["phantom", "--out", "", "--n", "2"], "--out: empty"),
        # the batch and training layers name options as the bundle spells them; the CLI as typed
        (["stress", "build", "--datalist", "{tmp}/dl.json", "--recipes", "{tmp}/r.yaml", "--output", ""],
         "--output: an output folder is needed"),
        (["train", "--datalist", "{tmp}/dl.json", "--output-dir", "", "--max-train-steps", "1"],
         "--output-dir: expected a non-empty string"),
    ],
)  # fmt: skip
def test_an_empty_output_folder_option_is_refused_by_every_command(tmp_path, monkeypatch, no_model_load, capsys, argv,
                                                                    problem):  # fmt: skip
    """An empty output option never means the working folder (argparse's Path("") is '.'): exit 2, one line."""
    (tmp_path / "r.yaml").write_text("recipes:\n  - {name: n, prompt: x, edit_mask: lungs}\n")
    rows = [{"image": str(sample_dir() / "cxr.png"), "report": "x", "lungs": str(sample_dir() / "lungs_mask.png")}]
    (tmp_path / "dl.json").write_text(json.dumps({"training": rows}))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and f"radedit: error: {problem}" in err, err
    assert listing(work) == []
