"""``python -m radedit_core.worker``: the JSON-lines protocol front ends rely on.

The events and exit codes a front end parses, the files it loads, what an error and a Cancel
leave behind; the micro model (the protocol and files, not what an edit looks like), 10 steps.
Real processes where the process is what a front end sees: a whole job (every stdout line a
JSON event, exit code, files), SIGTERM, the probe.  The error cases run :func:`worker.main` in
this process (a process pays ~12 s of imports each) with the protocol stream a string buffer:
the same job loading, checks, error event and exit code; only the fd plumbing differs, and the
process tests cover that.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radedit_core.imaging.image import SourceImage
from radedit_core.synthetic import chest_phantom, quantise
from radedit_core.imaging.intensity import apply_intensity, stored_value_map, to_source_values
from radedit_core import worker as worker_module
from radedit_core.worker import JOB_VERSION

PROMPT = "No acute cardiopulmonary process"
# A one-slice volume as Slicer writes a DICOM radiograph: LPS, flipped in-plane axes.
GEOMETRY = {"spacing": (0.3, 0.25, 1.0), "origin": (-12.5, 40.0, 7.0), "direction": (-1, 0, 0, 0, -1, 0, 0, 0, 1)}


def write_nrrd(path: Path, array2d: np.ndarray, geometry=GEOMETRY) -> Path:
    image = sitk.GetImageFromArray(array2d[None])
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    sitk.WriteImage(image, str(path), True)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, micro_model_dir):
    folder = tmp_path_factory.mktemp("worker_inputs")
    phantom = chest_phantom(144, 128, seed=5)
    image = quantise(phantom.image, 12).astype(np.int16)
    lungs = phantom.mask("left_lung", "right_lung")
    drain = np.zeros_like(lungs)
    drain[40:110, 30:36] = True  # a tube crossing the right lung: overlaps the edit mask
    return {
        "image": write_nrrd(folder / "cxr.nrrd", image),
        "edit": write_nrrd(folder / "lungs.nrrd", lungs.astype(np.uint8)),
        "keep": write_nrrd(folder / "drain.nrrd", drain.astype(np.uint8)),
        "array": image,
        "lungs": lungs,
        "drain": drain,
        "model": str(micro_model_dir),
    }


def job_for(inputs, out_dir: Path, **changes) -> dict:
    job = {
        "radedit_job": JOB_VERSION,
        "task": "edit",
        "image": str(inputs["image"]),
        "edit_mask": str(inputs["edit"]),
        "keep_mask": str(inputs["keep"]),
        "output": str(out_dir / "edited.nrrd"),
        # keep_scope "mask": the "drain" is a mask over an image without one, so nothing in it stands out
        "settings": {"prompts": [PROMPT], "weights": [15.0], "steps": 10, "keep_mode": "pixel", "dilate": 0,
                     "keep_scope": "mask"},
        "model": {"name": inputs["model"], "device": "cpu", "dtype": "float32"},
        "intensity": {"invert": False},
    }
    job.update(changes)
    return job


def write_job(path: Path, job: dict) -> Path:
    path.write_text(json.dumps(job))
    return path


def worker(job_path: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radedit_core.worker", str(job_path)],
        capture_output=True,
        text=True,
        timeout=240,
        **kwargs,
    )


def worker_in_process(job_path: Path, monkeypatch) -> subprocess.CompletedProcess:
    """:func:`radedit_core.worker.main` here, its protocol stream a buffer (see the module docstring)."""
    stream = io.StringIO()
    monkeypatch.setattr(worker_module, "_protocol_stream", lambda: stream)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what main sets, undone after the test
    code = worker_module.main([str(job_path)])
    return subprocess.CompletedProcess(["worker", str(job_path)], code, stream.getvalue(), "")


def events(stdout: str) -> list[dict]:
    # Every stdout line is a protocol line: a stray print would break front ends.
    return [json.loads(line) for line in stdout.splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_edit_job_reports_progress_and_writes_output_on_the_source_grid(inputs, tmp_path):
    out_dir = tmp_path / "out"
    job = write_job(tmp_path / "job.json", job_for(inputs, out_dir, intensity={"invert": True}))
    proc = worker(job)
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    assert evs[0]["event"] == "started" and evs[0]["task"] == "edit"
    assert evs[-1]["event"] == "done"
    progress = [e for e in evs if e["event"] == "progress"]
    stages = [e["stage"] for e in progress]
    # Stages arrive in pipeline order, each counting up to its total.
    order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert order == ["load", "invert", "edit", "write"]
    edit_steps = [e["done"] for e in progress if e["stage"] == "edit"]
    assert edit_steps == list(range(1, 8)) and {e["total"] for e in progress if e["stage"] == "edit"} == {7}

    done = evs[-1]
    assert Path(done["output"]) == out_dir / "edited.nrrd" and Path(done["sidecar"]) == out_dir / "edited.nrrd.json"
    assert done["edit_pixels"] == int(inputs["lungs"].sum())
    assert done["overlap_pixels"] == int((inputs["lungs"] & inputs["drain"]).sum()) > 0
    assert done["changed_pixels"] > 0
    assert leftovers(out_dir) == ["edited.nrrd", "edited.nrrd.json"]  # no temporary files

    edited = sitk.ReadImage(str(out_dir / "edited.nrrd"))
    source = sitk.ReadImage(str(inputs["image"]))
    assert edited.GetSize() == source.GetSize() and edited.GetPixelID() == source.GetPixelID()
    assert np.allclose(edited.GetSpacing(), source.GetSpacing())
    assert np.allclose(edited.GetOrigin(), source.GetOrigin())
    assert np.allclose(edited.GetDirection(), source.GetDirection())
    out = sitk.GetArrayFromImage(edited)[0]
    # keep_mode "pixel": the drain is the source bit for bit, also where it crosses the edit mask,
    # and the polarity flip for the model was undone exactly.
    np.testing.assert_array_equal(out[inputs["drain"]], inputs["array"][inputs["drain"]])
    assert np.count_nonzero(out[inputs["lungs"] & ~inputs["drain"]] != inputs["array"][inputs["lungs"] & ~inputs["drain"]])

    sidecar = json.loads((out_dir / "edited.nrrd.json").read_text())
    assert sidecar["settings"]["prompts"] == [PROMPT] and sidecar["settings"]["steps"] == 10
    assert sidecar["worker"]["intensity"] == {"invert": True}
    assert sidecar["masks"]["overlap_pixels"] == done["overlap_pixels"]


@pytest.mark.parametrize(
    "change, message, code",
    [
        ({"edit_mask": "missing.nrrd"}, "missing.nrrd: file does not exist", 2),
        ({"settings": {"prompts": [PROMPT], "stepz": 3}}, "unknown edit settings stepz", 2),
        ({"model": {"name": "no-such-model"}}, "no-such-model: model not found", 2),
        ({"radedit_job": 99}, "job version 99 is not supported", 2),
        ({"task": "dance"}, "unknown task 'dance'", 2),
        ({"intensity": {"window": [5, 1]}}, "window must be (low, high) with low < high", 2),
    ],
)
def test_errors_are_one_event_a_nonzero_exit_and_no_output(inputs, tmp_path, monkeypatch, change, message, code):
    out_dir = tmp_path / "out"
    job = job_for(inputs, out_dir, **change)
    if "missing.nrrd" in str(change):
        job["edit_mask"] = str(tmp_path / "missing.nrrd")
    proc = worker_in_process(write_job(tmp_path / "job.json", job), monkeypatch)
    assert proc.returncode == code
    evs = events(proc.stdout)
    assert evs[-1]["event"] == "error" and message in evs[-1]["message"], evs
    assert not any(e["event"] == "done" for e in evs)
    assert not (out_dir / "edited.nrrd").exists() and not (out_dir / "edited.nrrd.json").exists()


def test_mask_off_the_image_grid_is_refused_before_the_model_loads(inputs, tmp_path, monkeypatch):
    shifted = dict(GEOMETRY, origin=(0.0, 0.0, 0.0))
    mask = write_nrrd(tmp_path / "moved.nrrd", inputs["lungs"].astype(np.uint8), shifted)
    job = write_job(tmp_path / "job.json", job_for(inputs, tmp_path / "out", edit_mask=str(mask)))
    proc = worker_in_process(job, monkeypatch)
    assert proc.returncode == 2
    evs = events(proc.stdout)
    assert "mask geometry" in evs[-1]["message"] and "moved.nrrd" in evs[-1]["message"]
    assert not any(e["event"] == "progress" for e in evs)


@pytest.mark.slow
def test_sigterm_cancels_and_leaves_no_partial_output(inputs, tmp_path):
    out_dir = tmp_path / "out"
    job = job_for(inputs, out_dir)
    job["settings"]["steps"] = 100  # the micro model is fast: the edit stage lasts ~1 s after the signal is sent
    proc = subprocess.Popen(
        [sys.executable, "-m", "radedit_core.worker", str(write_job(tmp_path / "job.json", job))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(json.loads(line))
            if seen[-1].get("stage") == "edit":
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stdout.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    seen += events(rest)
    assert code == 143
    assert seen[-1]["event"] == "cancelled"
    assert not any(e["event"] == "done" for e in seen)
    assert leftovers(out_dir) == []


def test_probe_reports_the_environment():
    proc = subprocess.run(
        [sys.executable, "-m", "radedit_core.worker", "--probe"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    (probe,) = events(proc.stdout)
    assert probe["event"] == "probe" and probe["job_version"] == JOB_VERSION
    assert probe["torch"] and "cpu" in probe["devices"] and probe["executable"] == sys.executable


# -- in-process pieces ---------------------------------------------------------------


def test_invert_flips_about_the_stored_range_and_back_bit_for_bit():
    array = np.array([[0, 1, 4094, 4095]] * 8, dtype=np.uint16)
    image = SourceImage.from_array(np.tile(array, (1, 2)), value_range=(0, 4095))
    flipped, undo = apply_intensity(image, {"invert": True, "window": [100, 4000]})
    assert flipped.array[0, :4].tolist() == [4095, 4094, 1, 0]
    assert flipped.window == (95.0, 3995.0)
    np.testing.assert_array_equal(undo(flipped.array), image.array)
    same, identity = apply_intensity(image, {})
    assert same is image and identity(image.array) is image.array


@pytest.mark.parametrize("slope, intercept", [(1.0, 0.0), (1.0, -1024.0), (0.5, -10.0), (-1.0, 4095.0)])
def test_stored_value_map_recovers_the_rescale_and_maps_edits_back(slope, intercept):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4096, size=(32, 24)).astype(np.uint16)
    source = SourceImage.from_array(stored, value_range=(0, 4095))
    displayed = (slope * stored.astype(np.float64) + intercept).astype(np.float32)
    a, b = stored_value_map(stored, displayed)
    assert a == pytest.approx(slope) and b == pytest.approx(intercept)
    edited = displayed.copy()
    edited[:4] = slope * 4100 + intercept  # past the stored range: clipped
    back = to_source_values(edited, source, a, b)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[4:], stored[4:])
    assert (back[:4] == 4095).all()


def test_stored_value_map_refuses_a_different_image():
    stored = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) % 4096
    with pytest.raises(Exception, match="not the DICOM image's stored values"):
        stored_value_map(stored, stored.T.copy())


def test_export_refuses_a_volume_that_is_not_the_dicom_image(inputs, tmp_path):
    from radedit_core.dicom.synthetic import make_cxr

    cxr = make_cxr("CR", rows=144, columns=128, seed=1)
    source = cxr.save(tmp_path / "cr.dcm")
    job = {
        "radedit_job": JOB_VERSION,
        "task": "export",
        "source_dicom": str(source),
        "reference": str(inputs["image"]),  # another image on a grid of the same size
        "edited": str(inputs["image"]),
        "out_dir": str(tmp_path / "series"),
    }
    proc = worker(write_job(tmp_path / "export.json", job))
    assert proc.returncode == 2
    evs = events(proc.stdout)
    assert evs[0]["event"] == "started" and evs[-1]["event"] == "error"
    assert "not the DICOM image's stored values" in evs[-1]["message"]
    assert not (tmp_path / "series").exists()
