"""Outputs: file modes follow the umask, failed runs leave no folders, every output has its own sidecar,
JSON is strict."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from radedit_core.errors import OutputError
from radedit_core.fileio import OutputGroup, atomic_directory, atomic_path, check_writable, write_json, write_marker
from radedit_core.outputs import format_name, legacy_sidecar_path, output_format_for_path, sidecar_path


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    before = os.umask(0o022)
    os.umask(before)
    yield set_mask
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_and_folders_get_the_mode_a_plain_write_would(tmp_path, umask, mask):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_path(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"png")
    with atomic_directory(tmp_path / "series") as tmp:
        (tmp / "edited.dcm").write_bytes(b"dcm")
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.png") == mode(plain) == 0o666 & ~mask
    assert mode(tmp_path / "series") == 0o777 & ~mask


def test_an_edit_and_a_batch_write_with_the_umask(tmp_path, umask, micro_editor):
    from radedit_core.batch import EditBatch
    from radedit_core.demo import sample_dir

    umask(0o027)
    sample = sample_dir()
    out = tmp_path / "batch"
    EditBatch(input=sample / "cxr.png", edit_mask=sample / "lungs_mask.png", settings={"prompt": "x", "steps": 3},
              output_dir=out, editor=micro_editor).run()  # fmt: skip
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".png", ".json", ".csv"}
    assert {mode(p) for p in files} == {0o640}


def test_check_writable_creates_nothing_and_a_failed_write_leaves_no_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.png"
    check_writable(target)
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("the writer failed")
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError):
        with OutputGroup() as group:
            group.json(tmp_path / "c" / "d" / "x.json", {"a": 1})
            with group.file(tmp_path / "c" / "e" / "y.png") as tmp:
                raise RuntimeError("second file failed")
    assert not (tmp_path / "c").exists()


def test_a_group_that_fails_puts_back_what_it_replaced_and_one_that_ends_deletes_it(tmp_path):
    image, sidecar, series = tmp_path / "a.png", tmp_path / "a.png.json", tmp_path / "series"
    image.write_bytes(b"old image")
    sidecar.write_text("old sidecar")
    series.mkdir()
    (series / "edited.dcm").write_bytes(b"old series")
    write_marker(series)
    with pytest.raises(RuntimeError):
        with OutputGroup() as group:
            with group.file(image, overwrite=True) as tmp:
                tmp.write_bytes(b"new image")
            with group.directory(series, overwrite=True) as tmp:
                (tmp / "edited.dcm").write_bytes(b"new series")
            assert image.read_bytes() == b"new image" and (series / "edited.dcm").read_bytes() == b"new series"
            with group.file(sidecar, overwrite=True) as tmp:
                raise RuntimeError("the disk filled up")
    assert (image.read_bytes(), sidecar.read_text(), (series / "edited.dcm").read_bytes()) == (
        b"old image", "old sidecar", b"old series")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.png.json", "series"]
    with OutputGroup() as group:
        for path in (image, sidecar):
            with group.file(path, overwrite=True) as tmp:
                tmp.write_text("new")
        with group.directory(series, overwrite=True) as tmp:
            (tmp / "edited.dcm").write_text("new")
    assert {p.name: p.read_text() for p in (image, sidecar, series / "edited.dcm")} == dict.fromkeys(
        ("a.png", "a.png.json", "edited.dcm"), "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.png.json", "series"]  # nothing set aside left


def test_a_folder_that_appears_at_a_file_output_is_never_set_aside(tmp_path):
    path = tmp_path / "a.png"
    with pytest.raises(OSError):
        with OutputGroup() as group:
            with group.file(path, overwrite=True) as tmp:
                tmp.write_bytes(b"new")
                path.mkdir()  # another program, while the edit ran
                (path / "mine.txt").write_text("mine")
    assert (path / "mine.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_what_a_killed_overwrite_set_aside_is_put_back_or_removed(tmp_path):
    from radedit_core.fileio import remove_replaced_leftovers

    path = tmp_path / "series"
    aside = tmp_path / ".series.x1y2.replaced"
    (aside / "series").mkdir(parents=True)
    (aside / "series" / "edited.dcm").write_bytes(b"earlier")
    remove_replaced_leftovers(path)  # killed between setting it aside and renaming the new one in
    assert (path / "edited.dcm").read_bytes() == b"earlier" and sorted(os.listdir(tmp_path)) == ["series"]
    (aside / "series").mkdir(parents=True)
    remove_replaced_leftovers(path)  # killed after: the new one is there
    assert sorted(os.listdir(tmp_path)) == ["series"]
    (aside / "series").mkdir(parents=True)
    with OutputGroup() as group:  # an overwrite clears what an earlier, killed one left
        with group.directory(path, overwrite=True, own_file=lambda p: True) as tmp:
            (tmp / "edited.dcm").write_bytes(b"new")
    assert sorted(os.listdir(tmp_path)) == ["series"] and (path / "edited.dcm").read_bytes() == b"new"


def test_read_only_output_folder_is_one_line(tmp_path, monkeypatch):
    import radedit_core.fileio as fileio

    folder = tmp_path / "ro"
    folder.mkdir()
    # root may write anywhere: ask the permission check as an ordinary user would be answered
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: Path(path) != folder)
    with pytest.raises(OutputError, match=r"ro: output folder is not writable"):
        check_writable(folder / "sub" / "x.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(OutputError, match=r"x.png: output is not writable \(.*blocker is a file, not a folder\)"):
        check_writable(blocker / "x.png")


def test_every_output_has_its_own_sidecar():
    assert sidecar_path("x.nii.gz") == Path("x.nii.gz.json")
    assert sidecar_path("x") == Path("x.json")  # a DICOM series folder
    assert sidecar_path("x.png") != sidecar_path("x.nii.gz") != sidecar_path("x")
    assert legacy_sidecar_path("x.nii.gz") == Path("x.json")


def test_nifti_and_dicom_outputs_of_one_name_both_run(tmp_path, micro_editor):
    from radedit_core.dicom.synthetic import write_study
    from radedit_core.outputs import DicomOutputOptions
    from radedit_core.settings import EditSettings
    from radedit_core.workflow import edit_file

    study = write_study(tmp_path / "study", seg=True)
    settings = EditSettings(prompts=["x"], steps=3)
    seg = f"{study.seg}#lungs"
    edit_file(micro_editor, study.images[0], tmp_path / "x.nii.gz", settings, edit_mask_path=seg)
    edit_file(micro_editor, study.images[0], tmp_path / "x", settings, edit_mask_path=seg, dicom=DicomOutputOptions())
    assert json.loads((tmp_path / "x.nii.gz.json").read_text())["output"]["format"] == "nifti"
    assert json.loads((tmp_path / "x.json").read_text())["output"]["format"] == "dicom"


def test_one_vocabulary_of_output_formats():
    assert [format_name(x) for x in ("auto", "nii.gz", "NIFTI", "png", "dicom")] == ["auto", "nifti", "nifti", "png", "dicom"]
    assert output_format_for_path(Path("a.nii")) == output_format_for_path(Path("a.nii.gz")) == "nifti"
    assert output_format_for_path(Path("series")) == "dicom"
    with pytest.raises(Exception, match=r"--output-format png needs an --output ending in .png"):
        output_format_for_path(Path("a.nrrd"), "png")


def test_json_is_strict():
    with pytest.raises(ValueError, match=r"non-finite number at settings.weights\[1\]"):
        write_json("/nonexistent/never.json", {"settings": {"weights": [1.0, math.nan]}})
    assert json.loads(json.dumps({"a": np.float32(1.5).item()})) == {"a": 1.5}
