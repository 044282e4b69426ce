"""Bad DICOM inputs and outputs through ``radedit edit``, as users type it.

Every case runs the real command (in this process, :mod:`cli_runner`: a subprocess
pays ~12 s of imports per case) and must end with ``radedit: error: <file>: <problem>``
as the only line a process would write to stderr (logged warnings count), a non-zero
exit code, no output (not even a partial or temporary file) and byte-identical inputs.
The command checks its inputs before loading a model; the cases name the micro model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGLosslessSV1

from cli_runner import radedit
from radedit_core.dicom.sop import MF_GRAYSCALE_WORD_SC
from radedit_core.dicom.synthetic import make_cxr, save_dataset, write_study

SHAPE = dict(rows=96, columns=80)
FAULT_CASES = Path(__file__).parent / "data" / "dicom-faults"
FAST = ["--device", "cpu", "--steps", "10"]  # and --model <the micro model>
PROMPT = "No acute cardiopulmonary process"


@dataclass
class Inputs:
    folder: Path  # in/: everything the command reads
    out: Path  # where the output would go
    study: object

    @property
    def image(self) -> Path:
        return self.study.images[0]

    @property
    def seg(self) -> Path:
        return self.study.seg


def base_inputs(root: Path) -> Inputs:
    study = write_study(
        root / "in", kinds=("CR",), seg=True, photometric="MONOCHROME1", rescale=(1.0, -1024.0), **SHAPE
    )
    return Inputs(folder=root / "in", out=root / "out" / "edited", study=study)


def default_args(i: Inputs) -> dict[str, object]:
    return {
        "--image": i.image,
        "--edit-mask": i.seg,
        "--edit-labels": "lungs",
        "--prompt": PROMPT,
        "--output": i.out,
    }


def variant(i: Inputs, name: str, change: Callable[[pydicom.Dataset], None], **make) -> Path:
    cxr = make_cxr("CR", **SHAPE, **make)
    change(cxr.dataset)
    return save_dataset(cxr.dataset, i.folder / name)


def cut(i: Inputs, name: str, keep: int | float) -> Path:
    data = i.image.read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep
    path = i.folder / name
    path.write_bytes(data[:size])
    return path


def cut_inside_an_element(i: Inputs, name: str, near: int) -> Path:
    """The image cut at the first byte from ``near`` on that lies inside an element's value.

    A cut exactly between two elements leaves a complete data set without its later elements
    (the "missing pixel data" case); the UIDs' random lengths moved a fixed cut onto such a
    boundary in about one run in twenty.
    """
    ds = pydicom.dcmread(i.image)
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, pydicom.dataelem.RawDataElement):  # read already (no file position)
            continue
        start, end = raw.value_tell, raw.value_tell + raw.length
        if end - 1 > max(start, near):
            return cut(i, name, max(start + 1, near))
    raise AssertionError(f"no element value after byte {near}")


def no_pixels(ds):
    del ds.PixelData


def rgb(ds):
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((SHAPE["rows"], SHAPE["columns"], 3), np.uint8).tobytes()
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
        delattr(ds, keyword)


def two_frames(ds):
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MF_GRAYSCALE_WORD_SC
    ds.NumberOfFrames, ds.FrameIncrementPointer = 2, 0x00181063
    ds.PixelData = ds.PixelData * 2


def mpeg4(ds):
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3 not really a video stream" * 4])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile


def mr(ds):
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.Modality = "MR"


def bits32(ds):
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelData = np.zeros(SHAPE["rows"] * SHAPE["columns"], np.uint32).tobytes()


def broken_jpeg(ds):
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame.replace(b"\xff\xc4", b"\xff\x01", 1)])  # no Huffman table


def png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def nifti(path: Path, array: np.ndarray, spacing: float) -> Path:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((spacing, spacing))
    sitk.WriteImage(image, str(path))
    return path


def unwritable(i: Inputs, args):
    if os.geteuid() == 0:
        # root writes through permission bits: use a "folder" that is a regular file.
        blocker = i.out.parent.parent / "blocker"
        blocker.write_text("a file, not a folder")
        args["--output"] = blocker / "edited"
        return str(blocker)
    locked = i.out.parent.parent / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    args["--output"] = locked / "edited"
    return str(locked)


def case_setup(name: str, i: Inputs, args: dict) -> str | None:
    """Change the inputs/arguments for case ``name``; may return text the error must name."""
    rows, cols = SHAPE["rows"], SHAPE["columns"]
    if name == "truncated pixel data":
        args["--image"] = cut(i, "half.dcm", 0.5)
    elif name == "truncated header":
        args["--image"] = cut_inside_an_element(i, "header.dcm", 600)
    elif name == "missing pixel data":
        args["--image"] = variant(i, "nopixels.dcm", no_pixels)
    elif name == "rgb":
        args["--image"] = variant(i, "colour.dcm", rgb, voi="window")
    elif name == "multi-frame":
        args["--image"] = variant(i, "cine.dcm", two_frames)
    elif name == "not dicom":
        args["--image"] = i.folder / "scan.dcm"
        args["--image"].write_text("patient list, not an image\n")
    elif name == "unsupported transfer syntax":
        args["--image"] = variant(i, "video.dcm", mpeg4)
    elif name == "undecodable pixel data":
        args["--image"] = variant(i, "broken.dcm", broken_jpeg, transfer_syntax=JPEGLosslessSV1)
    elif name == "mr image":
        args["--image"] = variant(i, "mr.dcm", mr)
    elif name == "32-bit pixels":
        args["--image"] = variant(i, "bits32.dcm", bits32)
    elif name == "seg as image":
        args["--image"] = i.seg
    elif name == "mask grid mismatch":
        mask = i.study.cxrs[0].phantom.mask("left_lung")
        args["--edit-mask"] = nifti(i.folder / "lungs.nii.gz", mask, 0.7)  # image: 0.5 mm
        del args["--edit-labels"]
    elif name == "mask size mismatch":
        args["--edit-mask"] = png(i.folder / "small.png", np.ones((10, 12), np.uint8) * 255)
        del args["--edit-labels"]
    elif name == "seg for another image":
        other = write_study(i.folder / "other", kinds=("CR",), seg=True, **SHAPE)
        args["--edit-mask"] = other.seg
    elif name == "empty mask":
        args["--edit-mask"] = png(i.folder / "empty.png", np.zeros((rows, cols), np.uint8))
        del args["--edit-labels"]
    elif name == "unknown segment":
        args["--edit-labels"] = "heart"
    elif name == "absent label value":
        labels = i.study.cxrs[0].phantom.labels
        args["--edit-mask"] = nifti(i.folder / "labels.nii.gz", labels, 0.5)
        args["--edit-labels"] = "7"
    elif name == "several images":
        make_cxr("DX", **SHAPE, study=i.study.study, series_number=2).save(i.folder / "dx.dcm")
        args["--image"] = i.folder
    elif name == "unknown select":
        args["--image"] = i.folder
        args["--select"] = "1.2.3.4.5"
    elif name == "empty folder":
        (i.folder / "nothing").mkdir()
        (i.folder / "nothing" / "readme.txt").write_text("no images here")
        args["--image"] = i.folder / "nothing"
    elif name == "dicom output from png":
        args["--image"] = png(i.folder / "cxr.png", (i.study.cxrs[0].phantom.image * 255).astype(np.uint8))
        args["--edit-mask"] = png(i.folder / "lung.png", i.study.cxrs[0].phantom.mask("left_lung").astype(np.uint8))
        del args["--edit-labels"]
    elif name == "dcm output name":
        args["--output"] = i.out.parent / "edited.dcm"
    elif name == "output exists":
        i.out.mkdir(parents=True)
        (i.out / "old.dcm").write_bytes(b"an earlier result")
    elif name == "output not writable":
        return unwritable(i, args)
    elif name == "used series number":
        args["--series-number"] = "1"
    elif name == "negative series number":
        args["--series-number"] = "-5"
    elif name == "bad uid root":
        args["--uid-root"] = "1.2.abc"
    elif name == "long uid root":
        args["--uid-root"] = "1.2." + "3" * 45
    elif name == "long series description":
        args["--series-description"] = "x" * 70
    elif name == "multi-byte series description":
        args["--series-description"] = "Pneumothorax côté droit – " + "é" * 38  # 64 characters, 106 bytes
    elif name == "no series uid":
        args["--image"] = i.folder / "no-series.dcm"
        args["--image"].write_bytes((FAULT_CASES / "A16a_no_series_uid_sc" / "image.dcm").read_bytes())
    elif name == "structured report":
        from pydicom.data import get_testdata_file

        args["--image"] = i.folder / "report.dcm"
        args["--image"].write_bytes(Path(get_testdata_file("test-SR.dcm")).read_bytes())
    else:
        raise AssertionError(name)
    return None


# (case, message fragments; "{image}", "{mask}", "{output}", "{named}" are filled in, exit code)
CASES = [
    ("truncated pixel data", ["{image}: truncated file: element PixelData declares"], 2),
    ("truncated header", ["{image}: truncated file"], 2),
    ("missing pixel data", ["{image}: has no pixel data"], 2),
    ("rgb", ["{image}: colour image (PhotometricInterpretation RGB"], 2),
    ("multi-frame", ["{image}: multi-frame image with 2 frames"], 2),
    ("not dicom", ["{image}: not a DICOM file"], 2),
    (
        "unsupported transfer syntax",
        ["{image}: transfer syntax MPEG-4 AVC/H.264 High Profile", "no pixel data decoder"],
        2,
    ),
    ("undecodable pixel data", ["{image}: pixel data cannot be decoded", "DHT marker missing"], 2),
    ("mr image", ["{image}: SOP class MR Image Storage (modality MR) is not a chest X-ray image"], 2),
    ("32-bit pixels", ["{image}: BitsAllocated 32 / BitsStored 32 is not supported"], 2),
    ("seg as image", ["{image}: is a DICOM Segmentation (a mask), not an image"], 2),
    ("mask grid mismatch", ["{mask}: mask geometry (spacing/origin/direction) differs"], 2),
    ("mask size mismatch", ["{mask}: mask size 12x10 (columns x rows) does not match the image's 80x96"], 2),
    ("seg for another image", ["{mask}: SEG references", "not the image being edited"], 2),
    ("empty mask", ["{mask}: edit mask is empty"], 2),
    ("unknown segment", ["{mask}: no segment 'heart' (segments: 1 'lungs', 2 'pacemaker')"], 2),
    ("absent label value", ["{mask}: label value(s) 7 do not occur in the mask"], 2),
    ("several images", ["{image}: folder holds 2 images; choose one with select"], 2),
    ("unknown select", ["{image}: no instance or series with UID 1.2.3.4.5"], 2),
    ("empty folder", ["{image}: folder holds no DICOM files (1 other files)"], 2),
    ("dicom output from png", ["DICOM series output needs a DICOM input", "{image} is png"], 2),
    ("dcm output name", ["--output {output}: DICOM output is a series folder"], 2),
    ("output exists", ["{output}: output already exists"], 4),
    ("output not writable", ["{named}", "not writable"], 4),
    ("used series number", ["error: --series-number: 1 is already used in the study (used: 1"], 2),
    ("negative series number", ["error: --series-number: must be an integer from 0 to 2147483647, got -5"], 2),
    ("bad uid root", ["error: --uid-root: '1.2.abc' is not a DICOM UID prefix"], 2),
    ("long uid root", ["error: --uid-root: '1.2.3333", "is 50 characters; at most 40"], 2),
    ("long series description", ["error: --series-description: is 70 characters; DICOM allows at most 64"], 2),
    (
        "multi-byte series description",
        ["error: --series-description: is 106 bytes in UTF-8 (64 characters, some of them take several bytes)"],
        2,
    ),
    ("no series uid", ["{image}: SeriesInstanceUID (0020,000E) is missing or empty; it is Type 1"], 2),
    ("structured report", ["{image}: not an image: it is a Comprehensive SR Storage object (modality SR)"], 2),
]
CASE_IDS = [name for name, _, _ in CASES]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    inputs: Inputs
    args: dict
    named: str | None
    before: dict[str, str]
    root: Path


def _run(root: Path, name: str, home: Path, model: Path) -> Run:
    inputs = base_inputs(root)
    args = default_args(inputs)
    named = case_setup(name, inputs, args)
    before = digest(root)
    cli = ["-q", "edit"]
    for key, value in args.items():
        cli += [key, str(value)]
    proc = radedit(*cli, *FAST, "--model", model, home=home)
    return Run(proc, inputs, args, named, before, root)


@pytest.fixture
def runs(request, tmp_path_factory, radedit_home, micro_model_dir) -> dict[str, Run]:
    """The test's case, run in this process (one at a time: the CLI changes the folder and environment)."""
    name = request.node.callspec.params["case"]
    return {name: _run(tmp_path_factory.mktemp(name.replace(" ", "-")), name, radedit_home, micro_model_dir)}


@pytest.mark.parametrize("case, fragments, code", CASES, ids=CASE_IDS)
def test_bad_input_is_a_clear_error_with_no_output(runs, case, fragments, code):
    run = runs[case]
    proc = run.proc
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("radedit: error: "), proc.stderr
    # one line: what a process would print to stderr is this line and any logged warning
    assert proc.stderr.count("\n") == 1 and not proc.logged and "Traceback" not in proc.stderr, (proc.stderr, proc.logged)
    values = {
        "image": run.args["--image"],
        "mask": run.args.get("--edit-mask"),
        "output": run.args["--output"],
        "named": run.named,
    }
    for fragment in fragments:
        assert fragment.format(**values) in proc.stderr, proc.stderr
    # Inputs unchanged, and nothing written: no output, no partial or temporary file.
    assert digest(run.root) == run.before
    output = Path(run.args["--output"])
    if case != "output exists":
        assert not output.exists()
        assert not output.with_suffix(".json").exists()
    leftovers = [p for p in run.root.rglob("*") if p.name.startswith(".") and ".part" in p.name]
    assert not leftovers, leftovers


def test_at_least_fifteen_cases():
    assert len(CASES) >= 15 and len(set(CASE_IDS)) == len(CASES)
