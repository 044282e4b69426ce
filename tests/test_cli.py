"""The ``radedit`` command as users type it (CPU).

The commands run in this process (:mod:`cli_runner`: a subprocess pays ~12 s of imports) on the
micro model: these tests check what the command does with files, options and errors, not what an
edit looks like.  One test runs the installed console script ``radedit`` as a process: the entry
point, its exit code and a stderr of exactly one line (logging would add lines there).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from cli_runner import radedit
from radedit_core.demo import sample_dir

#: The plumbing tests add ``--model <micro_model_dir>`` (conftest).
MECHANICS = ["--steps", "20", "--device", "cpu", "-q"]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def inputs(tmp_path):
    src = sample_dir()
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        (folder / name).write_bytes((src / name).read_bytes())
    return folder


def test_edit_png_writes_image_and_provenance(inputs, tmp_path, radedit_home, micro_model_dir):
    out = tmp_path / "out" / "edited.png"
    proc = radedit(
        "edit", "--image", inputs / "cxr.png", "--edit-mask", inputs / "lungs_mask.png",
        "--keep-mask", inputs / "pacemaker_mask.png", "--prompt", "Moderate pulmonary edema",
        "--keep-mode", "pixel", "--dilate", "5", "--seed", "3", "--output", out, *MECHANICS,
        "--model", micro_model_dir,
        home=radedit_home, check=True,
    )
    assert "wrote" in proc.stdout
    src = np.asarray(Image.open(inputs / "cxr.png"))
    edited = np.asarray(Image.open(out))
    assert edited.shape == src.shape and edited.dtype == src.dtype
    keep = np.asarray(Image.open(inputs / "pacemaker_mask.png")) > 0
    assert np.array_equal(edited[keep], src[keep])  # pixel keep mode: bit-identical
    assert not np.array_equal(edited, src)
    meta = json.loads((out.parent / "edited.png.json").read_text())
    s = meta["settings"]
    assert s["prompts"] == ["Moderate pulmonary edema"] and s["weights"] == [15.0]
    assert (s["steps"], s["skip_ratio"], s["seed"], s["eta"], s["keep_mode"]) == (20, 0.3, 3, 1.0, "pixel")
    assert meta["model"]["components"]["unet"]["class"] == "UNet2DConditionModel"
    assert meta["version"] and meta["result"]["unet_evaluations"] == 2 * 14
    assert "total" in meta["result"]["timings_s"]
    assert meta["input"]["sha256"] == hashlib.sha256((inputs / "cxr.png").read_bytes()).hexdigest()


def test_edit_nifti_keeps_geometry_and_dtype(tmp_path, radedit_home, micro_model_dir):
    from radedit_core.synthetic import chest_phantom, quantise

    ph = chest_phantom(300, 260, seed=1)
    img = sitk.GetImageFromArray(quantise(ph.image, 12).astype(np.int16)[None])
    img.SetSpacing((0.5, 0.4, 1.0))
    img.SetOrigin((-10.0, 20.0, 5.0))
    sitk.WriteImage(img, str(tmp_path / "cxr.nii.gz"))
    mask = sitk.GetImageFromArray(ph.mask("right_lung").astype(np.uint8)[None])
    mask.CopyInformation(img)
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    out = tmp_path / "edited.nii.gz"
    radedit("edit", "--image", tmp_path / "cxr.nii.gz", "--edit-mask", tmp_path / "mask.nii.gz",
            "--prompt", "New right upper lobe consolidation", "--output", out, *MECHANICS, "--model", micro_model_dir,
            home=radedit_home, check=True)
    res = sitk.ReadImage(str(out))
    assert res.GetSize() == img.GetSize() and res.GetPixelID() == img.GetPixelID()
    assert res.GetSpacing() == pytest.approx(img.GetSpacing()) and res.GetOrigin() == pytest.approx(img.GetOrigin())


def test_generate(tmp_path, radedit_home, micro_model_dir):
    out = tmp_path / "gen"
    radedit("generate", "--prompt", "No acute cardiopulmonary process", "--prompt", "Left pectoral pacemaker",
            "--steps", "10", "--model", micro_model_dir, "--device", "cpu", "--output", out, "-q",
            home=radedit_home, check=True)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["sample_000.png", "sample_001.png", "samples.json"]
    # the model space of the model (the micro model's VAE: 128 x 128)
    size = json.loads((micro_model_dir / "vae" / "config.json").read_text())["sample_size"]
    assert np.asarray(Image.open(out / "sample_000.png")).shape == (size, size) == (128, 128)
    # --overwrite with fewer samples: the folder holds one run (the earlier run's extra sample goes,
    # a file radedit did not write stays)
    (out / "notes.txt").write_text("mine")
    radedit("generate", "--prompt", "x", "--steps", "2", "--model", micro_model_dir, "--device", "cpu",
            "--output", out, "-q", "--overwrite", home=radedit_home, check=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "sample_000.png", "samples.json"]
    assert [s["prompt"] for s in json.loads((out / "samples.json").read_text())["samples"]] == ["x"]


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("mask shape", ["--edit-mask", "{tmp}/small.png"], "small.png: mask size 10x10"),
        ("missing image", ["--image", "{tmp}/nope.png"], "nope.png: file does not exist"),
        ("unreadable", ["--image", "{tmp}/junk.png"], "junk.png: not a readable PNG file (truncated, corrupt or not an image"),
        ("nan image", ["--image", "{tmp}/nan.nii.gz", "--edit-mask", "{tmp}/nanmask.nii.gz"], "nan.nii.gz: contains NaN"),
        ("empty mask", ["--edit-mask", "{tmp}/empty.png"], "empty.png: edit mask is empty"),
        ("no mask", ["--edit-mask", None], "give --edit-mask, or --global-edit"),
        ("bad model", ["--model", "{tmp}/no-model"], "model not found"),
        ("exists", ["--output", "{tmp}/exists.png"], "exists.png: output already exists"),
        ("bad dtype", ["--dtype", "int8"], "--dtype: must be one of auto, float32"),
    ],
)
def test_bad_input_is_a_clear_error_with_no_output(inputs, tmp_path, radedit_home, micro_model_dir, case, args, message):
    Image.fromarray(np.ones((10, 10), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((640, 560), np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    nan = np.full((64, 64), np.nan, np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(nan), str(tmp_path / "nan.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((64, 64), np.uint8)), str(tmp_path / "nanmask.nii.gz"))
    (tmp_path / "exists.png").write_bytes(b"old")
    opts = {
        "--image": inputs / "cxr.png",
        "--edit-mask": inputs / "lungs_mask.png",
        "--output": tmp_path / "result" / "out.png",
        "--prompt": "No acute cardiopulmonary process",
    }
    extra = []
    for key, value in zip(args[::2], args[1::2]):
        if key in opts:
            opts[key] = None if value is None else Path(value.format(tmp=tmp_path))
        else:
            extra += [key, value.format(tmp=tmp_path)]
    before_in, before_tmp = digest(inputs), digest(tmp_path)
    cli = ["edit"] + [x for k, v in opts.items() if v is not None for x in (k, v)] + extra
    model = [] if "--model" in extra else ["--model", micro_model_dir]
    proc = radedit(*cli, *MECHANICS, *model, home=radedit_home)
    assert proc.returncode != 0, case
    assert message in proc.stderr, proc.stderr
    assert digest(inputs) == before_in and digest(tmp_path) == before_tmp  # inputs untouched
    assert not (tmp_path / "result").exists() or not any((tmp_path / "result").iterdir())


def test_version_and_help():
    assert radedit("--version").stdout.startswith("radedit_core ")
    help_text = radedit("edit", "--help").stdout
    for flag in ("--keep-mode", "--keep-scope", "--reference-compat", "--skip-ratio", "--invert-prompt", "--dilate"):
        assert flag in help_text


def test_train_and_phantom_are_sub_commands_with_one_line_errors(tmp_path):
    proc = radedit("train", "--datalist", tmp_path / "none.json", "--output-dir", tmp_path / "run", "--learning-rate", "nan")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["radedit: error: --learning-rate: must be a finite number > 0, got nan"]
    assert not (tmp_path / "run").exists()
    proc = radedit("phantom", "--out", tmp_path / "world", "--n", "2", "--seed", "3")
    assert proc.returncode == 0 and (tmp_path / "world" / "datalist.json").is_file(), proc.stderr


def test_the_console_script_is_the_command_with_its_exit_code_and_one_stderr_line(tmp_path):
    """The one process test of the entry point: the ``radedit`` script pip installed (not
    ``python -m``) runs :func:`radedit_core.cli.main`, exits with its code and writes ONE line to
    stderr (in a process, a logging warning would be a second line; in-process it is not seen).
    ``edit`` refuses a missing image before importing torch: ~4 s instead of ~15."""
    script = Path(sys.executable).with_name("radedit")
    assert script.is_file(), f"{script}: the console script is not installed"
    out = tmp_path / "out" / "edited.png"
    proc = subprocess.run([str(script), "edit", "--image", str(tmp_path / "nope.png"), "--global-edit",
                           "--prompt", "x", "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"radedit: error: {tmp_path / 'nope.png'}: file does not exist"]
    assert proc.stdout == "" and not out.parent.exists()
