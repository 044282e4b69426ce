"""The MONAI bundle as users run it: ``python -m monai.bundle run ...``, ``torchrun``, ``ConfigWorkflow``.

Every run is on the CPU with few steps.  The sample's edit runs the literal command in a process
of its own, on the demo model (the default ``model`` id); the other runs check what the bundle does,
so they run ``python -m monai.bundle`` in this process (``cli_runner.python_m``: a process pays
about 12 s of imports) on the test-only micro model (``--model <folder>``), except the torchrun
ranks, which are processes.  The runs that compare pixels use one intra-op thread everywhere
(torchrun gives each worker OMP_NUM_THREADS=1): floating-point sums split over another number of
threads round differently, and random weights amplify that.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil  # installed with accelerate
import pytest
import torch
from PIL import Image

from cli_runner import process_state, python_m
from radedit_core.demo import sample_dir
from radedit_core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "monai_bundle"
CONFIG = BUNDLE / "configs" / "inference.json"
MULTI = "['configs/inference.json','configs/multi_gpu_inference.json']"
FAST = ["--steps", "10", "--device", "cpu"]
ROWS = 4  # datalist rows of the two-rank runs


# One torch thread for the whole module (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def bundle_scripts():
    """The bundle's ``scripts`` package, as ``python -m monai.bundle`` imports it (bundle root on sys.path),
    forgotten again by ``sys.modules``: a later in-process bundle run of another copy of the bundle (a
    documentation example's workspace) must import its own."""
    import importlib

    with process_state():  # puts sys.path back, and sys.modules as a process would (cli_runner)
        sys.path.insert(0, str(BUNDLE))
        return importlib.import_module("scripts.radedit_workflow")


def bundle_env(home: Path) -> dict[str, str]:
    return dict(os.environ, RADEDIT_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def bundle_run(*args, home, cwd=REPO, nproc=0, check=True, timeout=300):
    """``python -m monai.bundle run ...`` in a process, or under ``torchrun --nproc_per_node=nproc``."""
    launcher = [sys.executable, "-m", "monai.bundle", "run"]
    if nproc:
        # --standalone: a free rendezvous port, so parallel test sessions do not collide
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", "monai.bundle", "run"]  # fmt: skip
    cmd = [*launcher, *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=bundle_env(home), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def bundle_here(*args, home, cwd=REPO) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run ...`` in this process (what the command does, not its process)."""
    proc = python_m("monai.bundle", "run", *args, cwd=cwd, env={"RADEDIT_HOME": str(home), "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def bundle_error(*args, home, cwd=REPO) -> tuple[subprocess.CompletedProcess, str]:
    """``python -m monai.bundle run ...`` in this process, expected to stop with one ``radedit: error:`` line
    and no traceback: the result and that line."""
    proc = python_m("monai.bundle", "run", *args, cwd=cwd, env={"RADEDIT_HOME": str(home), "PYTHONWARNINGS": "ignore"})
    errors = [line for line in proc.stderr.splitlines() if line.startswith("radedit: error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr[-3000:])
    return proc, errors[0]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def pixels(path: Path) -> bytes:
    """Decoded pixel bytes (PNG) or the concatenated files of a series folder."""
    if path.is_dir():
        return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
    return np.asarray(Image.open(path)).tobytes()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle_data")
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        (folder / name).write_bytes((sample_dir() / name).read_bytes())
    prompts = ["No acute cardiopulmonary process", "Moderate pulmonary edema", "Small left pleural effusion",
               "New right upper lobe consolidation", "No pneumothorax", "Mild cardiomegaly"]  # fmt: skip
    rows = [
        {"image": "cxr.png", "edit_mask": "lungs_mask.png", "keep_mask": "pacemaker_mask.png" if k % 2 == 0 else "",
         "prompt": p, "seed": k}  # fmt: skip
        for k, p in enumerate(prompts[:ROWS])
    ]
    (folder / "list.json").write_text(json.dumps(rows, indent=1))
    with open(folder / "list.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "edit_mask", "keep_mask", "prompt", "seed", "guidance"])
        writer.writeheader()
        writer.writerows(rows[:3])
    Image.fromarray(np.ones((10, 12), np.uint8)).save(folder / "small.png")
    return folder


@pytest.fixture
def root_logging():
    """ConfigWorkflow applies configs/logging.conf to this process: undo it afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(scope="module")
def reference(data, radedit_home, tmp_path_factory, micro_model_dir):
    """The datalist edited by one process, through the ConfigWorkflow API (initialize/run/finalize):
    what the two-rank runs must reproduce."""
    import logging

    from monai.bundle import ConfigWorkflow

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = tmp_path_factory.mktemp("reference")
    wf = ConfigWorkflow(config_file=str(CONFIG), run_id="edit", workflow_type=None,
                        datalist=str(data / "list.json"), output_dir=str(out), steps=10, device="cpu",
                        model=str(micro_model_dir))  # fmt: skip
    try:
        with process_state():  # the workflow puts the bundle on sys.path and imports its scripts
            wf.initialize()
            result = wf.run()
            wf.finalize()
    finally:
        root.handlers[:], root.level = handlers, level
    return out, result, wf


@pytest.mark.slow
def test_edit_with_no_overrides_but_steps_runs_the_sample_from_repo_root_and_bundle_folder(tmp_path, radedit_home):
    out = tmp_path / "out"
    proc = bundle_run("edit", "--config_file", "monai_bundle/configs/inference.json", "--steps", "10",
                      "--output_dir", out, home=radedit_home)  # fmt: skip
    assert "1 done, 0 skipped, 0 failed" in proc.stdout
    record = manifest(out)["items"][0]
    assert record["status"] == "done" and record["row"] == 0
    output, sidecar = Path(record["output"]), json.loads(Path(record["sidecar"]).read_text())
    if (REPO / "radedit_core" / "data" / "sample_study").is_dir():  # the DICOM sample: a derived series
        assert output.is_dir() and any(output.glob("*.dcm")) and sidecar["input"]["format"] == "dicom"
        assert sidecar["masks"]["edit"].endswith("[labels: pneumothorax]")
        assert sidecar["masks"]["keep"].endswith("[labels: drain]")
    else:
        assert output.suffix == ".png" and output.is_file()
    assert sidecar["model"]["name"] == "radedit-demo" and sidecar["model"]["device"] == "cpu"
    s = sidecar["settings"]
    assert (s["steps"], s["skip_ratio"], s["seed"], s["eta"], s["keep_mode"], s["dilate"]) == (10, 0.3, 0, 1.0, "pixel", 5)
    assert s["prompts"] == ["No pneumothorax"] and s["weights"] == [15.0]
    assert sidecar["masks"]["keep_pixels"] > 0 and sidecar["result"]["changed_pixels"] > 0

    # the same command from inside the bundle folder finds the same sample and item: nothing to do
    # (the command's process is the one above: this one runs here)
    again = bundle_here("edit", "--config_file", "configs/inference.json", "--steps", "10", "--output_dir", out,
                        cwd=BUNDLE, home=radedit_home)  # fmt: skip
    assert "0 done, 1 skipped" in again.stdout
    assert manifest(out)["items"][0]["status"] == "skipped"


def test_edit_dicom_study_with_seg_segments_writes_a_derived_series(tmp_path, radedit_home, micro_model_dir):
    import pydicom

    from radedit_core.dicom.synthetic import write_study

    study = write_study(tmp_path / "study", kinds=("CR",), seg=True, seg_segments=("lungs", "pacemaker"))
    source = pydicom.dcmread(study.images[0])
    before = {p.name: p.read_bytes() for p in study.files}
    out = tmp_path / "out"
    # the study folder as input (its one CR image is found), masks chosen from the SEG by segment label
    args = ["edit", "--config_file", CONFIG, "--input", study.folder, "--edit_mask", f"{study.seg}#lungs",
            "--keep_mask", f"{study.seg}#pacemaker", "--prompt", "No acute cardiopulmonary process",
            "--keep_mode", "pixel", "--dilate", "0", *FAST, "--model", micro_model_dir, "--output_dir", out]  # fmt: skip
    bundle_here(*args, home=radedit_home)
    record = manifest(out)["items"][0]
    series, sidecar = Path(record["output"]), json.loads(Path(record["sidecar"]).read_text())
    assert record["status"] == "done" and series.is_dir() and series.parent == out
    assert sidecar["masks"]["edit"] == f"{study.seg} [labels: lungs]" and sidecar["masks"]["keep_pixels"] > 0
    assert sidecar["batch"]["fingerprint"]["output_format"] == "dicom"
    images = [pydicom.dcmread(p) for p in sorted(series.rglob("*.dcm"))]
    images = [ds for ds in images if ds.Modality != "SEG"]
    assert len(images) == 1
    edited = images[0]
    assert edited.StudyInstanceUID == source.StudyInstanceUID and edited.SeriesInstanceUID != source.SeriesInstanceUID
    assert (edited.Rows, edited.Columns) == (source.Rows, source.Columns) and "DERIVED" in edited.ImageType
    pacemaker = study.cxrs[0].phantom.mask("pacemaker")
    assert np.array_equal(edited.pixel_array[pacemaker], source.pixel_array[pacemaker])  # pixel keep mode
    assert not np.array_equal(edited.pixel_array, source.pixel_array)
    assert before == {p.name: p.read_bytes() for p in study.files}  # the study is untouched


def test_edit_datalist_with_every_parameter_overridden(data, tmp_path, radedit_home, micro_model_dir):
    out = tmp_path / "out"
    bundle_here(
        "edit", "--config_file", CONFIG, "--datalist", data / "list.csv", "--output_dir", out,
        "--prompt", "Moderate pulmonary edema", "--guidance", "9", "--steps", "8", "--skip_ratio", "0.25",
        "--eta", "0.8", "--seed", "7", "--device", "cpu", "--dtype", "float32", "--keep_mode", "latent",
        "--model", micro_model_dir, home=radedit_home,
    )  # fmt: skip
    m = manifest(out)
    assert m["counts"] == {"done": 3} and m["source"] == str(data / "list.csv")
    for k, record in enumerate(m["items"]):
        sidecar = json.loads(Path(record["sidecar"]).read_text())
        s = sidecar["settings"]
        assert (s["steps"], s["skip_ratio"], s["eta"], s["keep_mode"], s["weights"]) == (8, 0.25, 0.8, "latent", [9.0])
        assert s["seed"] == k  # the row's seed wins over --seed
        assert sidecar["model"]["dtype"] == "float32"
        assert np.asarray(Image.open(record["output"])).shape == (640, 560)
    with open(out / "manifest.csv", newline="") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["done"] * 3


def test_generate(tmp_path, radedit_home, micro_model_dir):
    out = tmp_path / "out"
    bundle_here("generate", "--config_file", CONFIG, "--prompt", "['No acute cardiopulmonary process','Small left pleural effusion']",
                "--steps", "6", "--device", "cpu", "--model", micro_model_dir, "--output_dir", out, home=radedit_home)  # fmt: skip
    m = manifest(out / "generated")
    assert m["kind"] == "generate" and m["counts"] == {"done": 2}
    for record in m["items"]:
        image = np.asarray(Image.open(record["output"]))
        assert image.shape == (128, 128) and image.dtype == np.uint8  # the micro model's image size
        sidecar = json.loads(Path(record["sidecar"]).read_text())
        assert sidecar["settings"]["steps"] == 6 and sidecar["settings"]["guidance"] == 7.5


def test_config_workflow_api_initialize_run_finalize(data, tmp_path, reference, root_logging, micro_model_dir):
    from monai.bundle import ConfigParser, ConfigWorkflow

    from radedit_core.batch import BatchSummary

    out, result, wf = reference
    summary = result[0]
    assert isinstance(summary, BatchSummary) and (summary.done, summary.skipped, summary.failed) == (ROWS, 0, 0)
    assert manifest(out)["counts"] == {"done": ROWS}
    for record in summary.records:
        assert Path(record["output"]).parent == out and Path(record["sidecar"]).is_file()
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert wf.parser.get_parsed_content("_meta_#version") == meta["version"] and meta["version"] in meta["changelog"]

    # the default run id is the edit; a rerun skips everything
    with process_state():  # the workflows put the bundle on sys.path and import its scripts
        wf = ConfigWorkflow(config_file=str(CONFIG), workflow_type=None, datalist=str(data / "list.json"),
                            output_dir=str(out), steps=10, device="cpu", model=str(micro_model_dir))  # fmt: skip
        wf.initialize()
        assert wf.run()[0].skipped == ROWS
        wf.finalize()

        # errors reach Python callers as exceptions (the command line prints one line instead)
        wf = ConfigWorkflow(config_file=str(CONFIG), run_id="edit", workflow_type=None, dtype="float64",
                            output_dir=str(tmp_path / "bad"), device="cpu")  # fmt: skip
        wf.initialize()
        with pytest.raises(Exception) as err:  # MONAI wraps it in "Failed to instantiate ..."
            wf.run()
        cause = err.value
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        assert cause is not None and "dtype: must be one of auto, float32, bfloat16, float16" in str(cause)
        assert not (tmp_path / "bad").exists()

        parser = ConfigParser()  # defaults: model-zoo style eval/ inside the bundle
        parser.read_config(str(CONFIG))
        assert Path(parser.get_parsed_content("output_dir")) == BUNDLE / "eval"
        assert parser.get_parsed_content("model_dirs") == [str(BUNDLE / "models")]


@pytest.mark.slow
def test_two_gloo_ranks_killed_mid_run_resume_with_only_the_rest_and_match_one_process(
    data, tmp_path, radedit_home, reference, micro_model_dir
):
    """Two torchrun ranks killed mid-run, then run again: each item once (the first run's finished items
    skipped, the rest done by the two ranks), the manifest written once, by rank 0, and every output the
    one-process reference's (a torchrun pair costs two processes' imports: one kill and one resume prove
    both properties)."""
    reference, out = reference[0], tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "edit", "--config_file", MULTI, "--datalist", str(data / "list.json"), *FAST, "--model",
           str(micro_model_dir), "--output_dir", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=BUNDLE, env=bundle_env(radedit_home), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    def sidecars() -> set[str]:  # finished items (<id>.png.json); pathlib's glob also matches ".<id>...part.json"
        return {p.name.split(".")[0] for p in out.glob("*.png.json") if not p.name.startswith(".")}

    deadline = time.monotonic() + 240
    try:
        while not sidecars() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        # torchrun starts each worker in a session of its own: kill the whole tree, mid-item
        workers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        for p in [*workers, psutil.Process(proc.pid)] if proc.poll() is None else []:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait()
        psutil.wait_procs(workers, timeout=30)
    finished = sidecars()
    assert 0 < len(finished) < ROWS, "the run was not interrupted mid-way; raise ROWS or --steps"
    assert not (out / "manifest.json").exists()

    proc = bundle_run("edit", "--config_file", MULTI, "--datalist", data / "list.json", *FAST, "--model",
                      micro_model_dir, "--output_dir", out, cwd=BUNDLE, nproc=2, home=radedit_home)  # fmt: skip
    assert "rank 0 of 2 joined the process group (gloo)" in proc.stdout
    assert proc.stdout.count(" failed; manifest ") == 1  # written once, by rank 0
    m = manifest(out)
    assert m["world_size"] == 2 and len(m["processed_per_rank"]) == 2
    assert sorted(r["id"] for r in m["items"]) == sorted(p.stem for p in reference.glob("*.png"))
    status = {r["id"]: r["status"] for r in m["items"]}
    assert {i for i, s in status.items() if s == "skipped"} == finished
    assert {i for i, s in status.items() if s == "done"} == set(status) - finished
    assert sum(m["processed_per_rank"]) == ROWS - len(finished)
    assert not list(out.glob(".*part*"))
    for record in m["items"]:
        assert pixels(Path(record["output"])) == pixels(reference / Path(record["output"]).name)
        if record["status"] == "done":  # done by the rank the manifest names
            sidecar = json.loads(Path(record["sidecar"]).read_text())
            assert sidecar["batch"]["rank"] == record["rank"] and sidecar["batch"]["world_size"] == 2


# meta_schema_20240725's top-level "required" list and the tensor fields it
# requires, written out here because the schema file cannot be downloaded in
# this environment (no network; https://github.com/Project-MONAI/MONAI-extra-test-data/
# releases/download/0.8.1/meta_schema_20240725.json).  Fields the issue asks for
# on top of the schema's are checked as well.
SCHEMA_REQUIRED = ["schema", "version", "monai_version", "pytorch_version", "numpy_version",
                   "required_packages_version", "task", "description", "authors", "copyright", "network_data_format"]  # fmt: skip
TENSOR_REQUIRED = ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range"]
STRINGS = ["schema", "version", "monai_version", "pytorch_version", "numpy_version", "task", "description",
           "authors", "copyright", "data_source", "data_type", "intended_use"]  # fmt: skip


def test_metadata_has_the_schema_fields():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    for key in SCHEMA_REQUIRED + ["changelog", "intended_use", "data_source", "references"]:
        assert key in meta, key
    for key in STRINGS:
        assert isinstance(meta[key], str) and meta[key].strip(), key
    assert meta["schema"].endswith("meta_schema_20240725.json")
    assert meta["version"] in meta["changelog"]
    assert isinstance(meta["required_packages_version"], dict) and "radedit-core" in meta["required_packages_version"]
    assert all(isinstance(r, str) for r in meta["references"])
    assert any("2312.12865" in r for r in meta["references"]) and any("huggingface.co/microsoft/radedit" in r for r in meta["references"])
    io = meta["network_data_format"]
    assert {"image", "edit_mask", "keep_mask"} <= set(io["inputs"]) and "edited" in io["outputs"]
    for tensor in [*io["inputs"].values(), *io["outputs"].values()]:
        if isinstance(tensor, dict) and tensor.get("type") == "image":
            assert set(TENSOR_REQUIRED) <= set(tensor), tensor
            assert isinstance(tensor["num_channels"], int) and isinstance(tensor["spatial_shape"], list)
            assert all(isinstance(v, (int, float)) for v in tensor["value_range"])
    import monai
    import numpy

    assert meta["monai_version"] == monai.__version__ and meta["numpy_version"] == numpy.__version__
    assert meta["pytorch_version"] == torch.__version__.split("+")[0]


def test_bundle_layout():
    for rel in ("configs/inference.json", "configs/multi_gpu_inference.json", "configs/logging.conf",
                "configs/metadata.json", "docs/README.md", "LICENSE", "large_files.yml", "models/README.md",
                "scripts/__init__.py", "scripts/radedit_workflow.py"):  # fmt: skip
        assert (BUNDLE / rel).is_file(), rel
    config = json.loads(CONFIG.read_text())
    for key in ("input", "edit_mask", "keep_mask", "prompt", "guidance", "steps", "skip_ratio", "eta", "seed",
                "device", "dtype", "keep_mode", "model", "output_dir", "datalist", "edit", "generate", "run"):  # fmt: skip
        assert key in config, key
    large = (BUNDLE / "large_files.yml").read_text()
    for revision in ("e8ebd31396ff8553c34084b98b5defb8ebea2817", "6f5909a7e596173e25d4e97b07fd19cdf9611c76",
                     "692f09e9be1bfe5fdd5f3efdd0e1eca7d2c10b23"):  # fmt: skip
        assert revision in large


BAD_OVERRIDES = [
    ("unknown model folder", ["--model", "{tmp}/no-model"], "no-model: model not found", 2),
    ("missing input", ["--input", "{tmp}/nope.png", "--edit_mask", "{data}/lungs_mask.png", "--prompt", "x"], "nope.png: file does not exist", 2),
    ("missing input, no mask", ["--input", "{tmp}/nope.png"], "nope.png: file does not exist", 2),
    # the sample's prompt is the sample's: another input needs its own
    ("input, no prompt", ["--input", "{data}/cxr.png", "--edit_mask", "{data}/lungs_mask.png"], "prompt: an edit needs a prompt", 2),
    ("mask/image mismatch", ["--input", "{data}/cxr.png", "--edit_mask", "{data}/small.png", "--prompt", "x"], "small.png: mask size 12x10", 2),
    ("invalid dtype", ["--dtype", "float64"], "dtype: must be one of auto, float32, bfloat16, float16", 2),
]  # fmt: skip


def test_bad_overrides_are_one_clear_line_and_no_output(data, tmp_path, radedit_home):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir() if p.is_file()}
    for k, (case, args, message, code) in enumerate(BAD_OVERRIDES):
        out = tmp_path / f"out{k}"
        args = [a.format(tmp=tmp_path, data=data) for a in args]
        if "--input" in args:
            args += ["--keep_mask", "None"]
        # in this process: the one-line error is the bundle's (scripts.radedit_workflow), not the process's
        proc = python_m("monai.bundle", "run", "edit", "--config_file", CONFIG, *FAST, "--output_dir", out, *args,
                        cwd=REPO, env={"RADEDIT_HOME": str(radedit_home)})  # fmt: skip
        stderr = proc.stderr
        assert proc.returncode == code, (case, stderr[-3000:])
        errors = [line for line in stderr.splitlines() if line.startswith("radedit: error: ")]
        assert len(errors) == 1 and message in errors[0], (case, stderr[-3000:])
        assert "Traceback" not in stderr, case
        assert not out.exists(), case
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir() if p.is_file()}


def test_model_names_are_looked_up_in_the_bundle_models_folder(tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine").symlink_to(tiny_model_dir)
    assert bundle_scripts().find_model("mine", [models]) == str(models / "mine")
    assert bundle_scripts().find_model("tiny", [models]) == "tiny"
    assert bundle_scripts().find_model(str(tiny_model_dir), [models]) == str(tiny_model_dir)


def test_the_bundled_sample_is_the_sample_study_with_its_pneumothorax_and_drain_segments():
    from importlib import resources

    study = Path(str(resources.files("radedit_core") / "data" / "sample_study"))
    seg = study / "seg.dcm"
    assert bundle_scripts().bundled_sample() == {
        "input": str(study), "edit_mask": f"{seg}#pneumothorax", "keep_mask": f"{seg}#drain", "prompt": "No pneumothorax"
    }


def test_the_sample_prompt_is_the_samples_not_the_runs(tmp_path, radedit_home, micro_model_dir):
    # inference.json has no run prompt: the sample brings its own, as it brings its masks
    assert json.loads(CONFIG.read_text())["prompt"] is None
    out = tmp_path / "out"
    args = ["edit", "--config_file", CONFIG, "--steps", "2", "--device", "cpu", "--model", micro_model_dir, "--output_dir", out]
    bundle_here(*args, home=radedit_home)
    assert [r["prompt"] for r in manifest(out)["items"]] == ["No pneumothorax"]
    bundle_here(*args, "--prompt", "Small right pneumothorax", home=radedit_home)
    assert [r["prompt"] for r in manifest(out)["items"]] == ["Small right pneumothorax"]


def test_a_datalist_row_without_a_prompt_is_an_error_unless_the_run_has_one(data, tmp_path, radedit_home, micro_model_dir):
    rows = tmp_path / "rows.csv"
    rows.write_text(f"id,image,edit_mask,prompt\na,{data / 'cxr.png'},{data / 'lungs_mask.png'},Small left pleural effusion\n"
                    f"b,{data / 'cxr.png'},{data / 'lungs_mask.png'},\n")  # fmt: skip
    out = tmp_path / "out"
    args = ["edit", "--config_file", CONFIG, "--datalist", rows, "--steps", "2", "--device", "cpu", "--model", micro_model_dir,
            "--output_dir", out]  # fmt: skip
    proc, line = bundle_error(*args, home=radedit_home)
    assert proc.returncode == 2 and line.startswith(f"radedit: error: {rows}: row 2 (line 3): no prompt: "), line
    assert not out.exists()
    # an explicit --prompt is the prompt of the rows without one
    bundle_here(*args, "--prompt", "No acute cardiopulmonary process", home=radedit_home)
    assert [r["prompt"] for r in manifest(out)["items"]] == ["Small left pleural effusion", "No acute cardiopulmonary process"]


def test_generate_without_a_prompt_says_one_is_needed(tmp_path, radedit_home, micro_model_dir):
    out = tmp_path / "out"
    proc, line = bundle_error("generate", "--config_file", CONFIG, "--steps", "2", "--device", "cpu", "--model", micro_model_dir,
                              "--output_dir", out, home=radedit_home)  # fmt: skip
    assert proc.returncode == 2 and line.startswith("radedit: error: prompt: generation needs at least one prompt"), line
    assert not out.exists()


def test_an_output_that_is_its_input_names_the_row_once(data, tmp_path, radedit_home, micro_model_dir):
    image = tmp_path / "c.png"
    image.write_bytes((data / "cxr.png").read_bytes())
    (tmp_path / "rows.csv").write_text(f"id,image,edit_mask,prompt\nc,c.png,{data / 'lungs_mask.png'},x\n")
    before = sorted(tmp_path.iterdir())
    proc, line = bundle_error("edit", "--config_file", CONFIG, "--datalist", tmp_path / "rows.csv", "--output_dir", tmp_path,
                              *FAST, "--model", micro_model_dir, home=radedit_home)  # fmt: skip
    assert proc.returncode == 4, line
    assert line.startswith(f"radedit: error: {tmp_path / 'rows.csv'}: row 1 (line 2): output {image} is the same file "
                           f"as the input image {image};"), line  # fmt: skip
    assert line.count("row 1") == 1
    assert sorted(tmp_path.iterdir()) == before and image.read_bytes() == (data / "cxr.png").read_bytes()


def test_ctrl_c_on_a_bundle_run_is_one_line_and_exit_code_130(data, tmp_path, radedit_home, micro_model_dir):
    out, stdout, stderr = tmp_path / "out", tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # steps enough that the run is still working when the signal comes
    cmd = [sys.executable, "-m", "monai.bundle", "run", "edit", "--config_file", str(CONFIG), "--datalist",
           str(data / "list.json"), "--steps", "100", "--device", "cpu", "--model", str(micro_model_dir),
           "--output_dir", str(out)]  # fmt: skip
    with open(stdout, "w") as fo, open(stderr, "w") as fe:
        # SIGINT as a terminal gives it: a test session started in the background (``cmd &``) ignores
        # SIGINT, its children inherit that, and Python then installs no KeyboardInterrupt handler
        proc = subprocess.Popen(cmd, cwd=REPO, env=bundle_env(radedit_home), stdout=fo, stderr=fe, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "items to do here" not in stdout.read_text() + stderr.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, stderr.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.read_text()
    assert code == 130, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("radedit")] == ["radedit: interrupted"], err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert not (out / "manifest.json").exists()


def test_ctrl_c_through_the_python_api_propagates():
    # Not started as `python -m monai.bundle`: a ConfigWorkflow caller gets the KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), bundle_scripts()._one_line_errors():
        raise KeyboardInterrupt
