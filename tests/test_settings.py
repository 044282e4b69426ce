"""One settings layer for every front end (issue: one route from options to an edit).

Every bad value is refused by :mod:`radedit_core.settings` in the front end's
own input form (CLI arguments, the bundle's config ids, ``ConfigWorkflow``,
a worker job) with a one-line error naming the option, exit code 2, nothing
written, and before the model loads: the model given is a folder that would
itself fail with exit code 3, so getting 2 proves the check came first.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from cli_runner import process_state
from radedit_core.demo import sample_dir
from radedit_core.errors import ConfigError, ModelNotFoundError, RadEditError
from radedit_core.settings import (
    EDIT_DEFAULTS,
    GENERATE_DEFAULTS,
    MAX_SEED,
    EditSettings,
    GenerateSettings,
    ModelOptions,
)

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "monai_bundle"
CONFIG = BUNDLE / "configs" / "inference.json"

#: option -> (bad value, message fragment). The option is the bundle's id; the CLI spells it --option.
BAD_VALUES = [
    ("guidance", "nan", r"must be a finite number in \[-100, 100\], got nan"),
    ("guidance", "inf", r"must be a finite number in \[-100, 100\], got inf"),
    ("guidance", "1e38", r"must be a finite number in \[-100, 100\], got 1e\+38"),
    ("eta", "inf", r"must be a finite number in \(0, 1\], got inf"),
    ("eta", "0", r"must be a finite number in \(0, 1\], got 0.0"),
    ("seed", str(2**64), rf"must be an integer from 0 to {MAX_SEED}"),
    ("seed", "-1", rf"must be an integer from 0 to {MAX_SEED}, got -1"),
    ("steps", "1001", r"must be an integer from 1 to 1000, got 1001"),
    ("steps", "0", r"must be an integer from 1 to 1000, got 0"),
    ("steps", "ten", r"expected an integer, got 'ten'"),
    ("skip_ratio", "1", r"must be a finite number in \[0, 1\), got 1.0"),
    ("dilate", "-2", r"must be an integer from 0 to 256, got -2"),
    ("keep_mode", "both", r"must be one of pixel, latent, got 'both'"),
    ("keep_scope", "ring", r"must be one of device, mask, got 'ring'"),
    ("invert_guidance", "nan", r"must be a finite number in \[-100, 100\], got nan"),
    ("inversion_batch_size", "0", r"must be an integer from 1 to 4096, got 0"),
    ("prompt", "   ", r"is empty; the empty prompt is the unconditional one"),
    ("device", "gpu", r"must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("dtype", "float64", r"must be one of auto, float32, bfloat16, float16"),
]
IDS = [f"{option}={value}" for option, value, _ in BAD_VALUES]


@pytest.fixture(scope="module")
def failing_model(tmp_path_factory) -> Path:
    """A model folder with the right layout but no weights: loading it fails with ModelNotFoundError (3)."""
    folder = tmp_path_factory.mktemp("failing_model")
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        (folder / part).mkdir()
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("cxr.png", "lungs_mask.png", "pacemaker_mask.png"):
        (folder / name).write_bytes((sample_dir() / name).read_bytes())
    return folder


def cli_args(option: str, value: str, inputs: Path, out: Path, model: Path) -> list[str]:
    flag = {"prompt": "--prompt"}.get(option, "--" + option.replace("_", "-"))
    args = ["edit", "--image", str(inputs / "cxr.png"), "--edit-mask", str(inputs / "lungs_mask.png"),
            "--output", str(out / "sub" / "edited.png"), "--model", str(model), "--device", "cpu"]  # fmt: skip
    if option != "prompt":
        args += ["--prompt", "No acute cardiopulmonary process"]
    if option == "device":
        args.remove("--device"), args.remove("cpu")
    return args + [flag, value]


def nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


# -- the table, in-process, in every front end's input form ------------------------------------


@pytest.mark.parametrize("option, value, message", BAD_VALUES, ids=IDS)
def test_cli_refuses_before_the_model_loads(option, value, message, inputs, tmp_path, failing_model):
    from radedit_core.cli import main

    out = tmp_path / "out"
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(cli_args(option, value, inputs, out, failing_model))
    flag = "--prompt" if option == "prompt" else "--" + option.replace("_", "-")
    lines = stderr.getvalue().strip().splitlines()
    assert code == 2, stderr.getvalue()
    assert len(lines) == 1 and lines[0].startswith(f"radedit: error: {flag}: "), lines
    assert __import__("re").search(message, lines[0]), lines[0]
    assert nothing_written(out)


def test_the_failing_model_fails_with_exit_code_3(inputs, tmp_path, failing_model):
    # Why getting 2 above proves the check came first.
    from radedit_core.cli import main

    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(cli_args("seed", "1", inputs, tmp_path / "out", failing_model))
    assert code == 3 and "not found: local folder" in stderr.getvalue()
    assert nothing_written(tmp_path / "out")


def bundle_options(option: str, value: str, inputs: Path, out: Path, model: Path) -> dict:
    config = json.loads(CONFIG.read_text())
    options = {k: config.get(k) for k in config["edit_options"]}
    options.update(input=str(inputs / "cxr.png"), edit_mask=str(inputs / "lungs_mask.png"), keep_mask=None,
                   prompt="No pneumothorax", output_dir=str(out), model=str(model), device="cpu")  # fmt: skip
    options[option] = value
    return options


@pytest.mark.parametrize("option, value, message", BAD_VALUES, ids=IDS)
def test_bundle_options_refused_before_the_model_loads(option, value, message, inputs, tmp_path, failing_model):
    from radedit_core.batch import batch_from_options

    out = tmp_path / "out"
    job = batch_from_options("edit", bundle_options(option, value, inputs, out, failing_model))
    with pytest.raises(ConfigError, match=rf"^{option}: {message}") as info:
        job.run()
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert nothing_written(out)


@pytest.mark.parametrize("option, value, message", BAD_VALUES, ids=IDS)
def test_worker_job_refused_before_the_model_loads(option, value, message, inputs, tmp_path, failing_model):
    from radedit_core.worker import run_edit

    out = tmp_path / "out"
    settings = {"prompts": ["No acute cardiopulmonary process"]}
    model = {"name": str(failing_model), "device": "cpu"}
    if option in ("device", "dtype"):
        model[option] = value
    else:
        settings[{"prompt": "prompts", "guidance": "weights"}.get(option, option)] = value
    job = {"radedit_job": 1, "task": "edit", "image": str(inputs / "cxr.png"),
           "edit_mask": str(inputs / "lungs_mask.png"), "output": str(out / "edited.png"),
           "settings": settings, "model": model}  # fmt: skip
    with pytest.raises(ConfigError, match=rf"^{option}: {message}"):
        run_edit(job, lambda *a, **k: None)
    assert nothing_written(out)


@pytest.mark.parametrize("option, value, message", BAD_VALUES[::4], ids=IDS[::4])
def test_config_workflow_refuses_before_the_model_loads(option, value, message, inputs, tmp_path, failing_model):
    from cli_runner import bundle_run_error

    out = tmp_path / "out"
    overrides = bundle_options(option, value, inputs, out, failing_model)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    raised, cause = bundle_run_error(CONFIG, ConfigError, **overrides)
    assert cause is not None and __import__("re").match(rf"{option}: {message}", str(cause)), raised
    assert nothing_written(out)


# -- a sample through each front end's own entry ------------------------------------------------------
# The bundle runs as a process (``python -m monai.bundle``: its one-line error is what a command line
# gets, not the Python API).  The CLI and the worker run their ``main`` here (a process pays ~12 s of
# imports): tests/test_cli.py runs the installed ``radedit`` as a process and tests/test_worker.py the
# worker, with their exit codes and stdout/stderr.


def one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("radedit: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_cli_process(inputs, tmp_path, failing_model):
    from cli_runner import radedit

    out = tmp_path / "out"
    proc = radedit(*cli_args("guidance", "nan", inputs, out, failing_model))
    assert proc.returncode == 2
    assert one_error_line(proc) == "radedit: error: --guidance: must be a finite number in [-100, 100], got nan"
    assert not proc.logged, proc.logged
    assert nothing_written(out)


@pytest.mark.slow
def test_bundle_process(inputs, tmp_path, failing_model):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "edit", "--config_file", str(CONFIG), "--input", str(inputs / "cxr.png"),
         "--edit_mask", str(inputs / "lungs_mask.png"), "--output_dir", str(out), "--model", str(failing_model),
         "--eta", "0", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert one_error_line(proc) == "radedit: error: eta: must be a finite number in (0, 1], got 0.0"
    assert nothing_written(out)


def test_worker_process(inputs, tmp_path, failing_model, monkeypatch):
    from radedit_core import worker

    out = tmp_path / "out"
    job = {"radedit_job": 1, "task": "edit", "image": str(inputs / "cxr.png"), "edit_mask": str(inputs / "lungs_mask.png"),
           "output": str(out / "edited.png"), "settings": {"prompts": ["x"], "steps": 1001},
           "model": {"name": str(failing_model), "device": "cpu"}}  # fmt: skip
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job))
    stream = io.StringIO()  # the protocol stream (a duplicate of fd 1 in a process)
    monkeypatch.setattr(worker, "_protocol_stream", lambda: stream)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what main sets, undone after the test
    code = worker.main([str(job_path)])
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 2
    assert events[-1]["event"] == "error" and events[-1]["message"] == "steps: must be an integer from 1 to 1000, got 1001"
    assert not any(e.get("stage") == "load" for e in events)
    assert nothing_written(out)


# -- one set of defaults ------------------------------------------------------------------------


def _dict(settings) -> dict:
    d = settings.to_dict()
    d.pop("prompts")
    return d


def test_every_front_end_has_the_same_defaults(inputs, tmp_path):
    from radedit_core.batch import batch_from_options
    from radedit_core.cli import build_parser
    from radedit_core.cli.options import edit_settings_from_args, generate_settings_from_args
    from radedit_core.worker import check_edit

    with process_state({"PYTHONPATH": str(REPO / "RadEditSlicer")}):  # the module's library ends with it
        from RadEditLib.protocol import EditParameters
    expected = _dict(EDIT_DEFAULTS)
    assert (expected["dilate"], expected["keep_mode"], expected["weights"], expected["invert_guidance"]) == (5, "pixel", [15.0], 3.5)

    base = ["--image", "x.png", "--global-edit", "--output", "o.png", "--prompt", "p"]
    assert _dict(edit_settings_from_args(build_parser().parse_args(["edit", *base]))) == expected
    pacs = ["pacs-edit", "--pacs", "dimse://A@h:1", "--study", "1.2", "--global-edit", "--prompt", "p"]
    assert _dict(edit_settings_from_args(build_parser().parse_args(pacs))) == expected

    config = json.loads(CONFIG.read_text())
    options = {k: config.get(k) for k in config["edit_options"]}
    options.update(input=str(inputs / "cxr.png"), edit_mask=str(inputs / "lungs_mask.png"), keep_mask=None,
                   prompt="p", output_dir=str(tmp_path / "b"))  # fmt: skip
    job = batch_from_options("edit", options)
    job._check_params()
    (item,) = job.build_items()
    assert _dict(item.settings) == expected

    request, _ = check_edit({"radedit_job": 1, "task": "edit", "image": str(inputs / "cxr.png"), "edit_mask": None,
                             "output": str(tmp_path / "w.png"), "settings": {"prompts": ["p"]}, "model": {"name": "tiny"}})
    assert _dict(request.settings) == expected

    slicer = EditSettings.from_mapping(EditParameters(prompt="p").settings())
    assert _dict(slicer) == expected
    # The module's parameter node (saved with the scene) starts from the same values.
    tree = ast.parse((REPO / "RadEditSlicer" / "RadEdit.py").read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "RadEditParameterNode")
    values = {t.target.id: ast.literal_eval(t.value) for t in node.body if isinstance(t, ast.AnnAssign) and t.value
              is not None and isinstance(t.value, ast.Constant)}  # fmt: skip
    assert values["guidance"] == EDIT_DEFAULTS.weights[0] and values["steps"] == EDIT_DEFAULTS.steps
    assert values["skipRatio"] == EDIT_DEFAULTS.skip_ratio and values["seed"] == EDIT_DEFAULTS.seed
    assert values["dilation"] == EDIT_DEFAULTS.dilate and values["keepMode"] == EDIT_DEFAULTS.keep_mode

    generate = generate_settings_from_args(build_parser().parse_args(["generate", "--output", "g", "--prompt", "p"]))
    assert _dict(generate) == _dict(GENERATE_DEFAULTS)
    assert (GENERATE_DEFAULTS.steps, GENERATE_DEFAULTS.guidance) == (100, 7.5)
    assert [config[k] for k in ("steps", "guidance", "dilate", "keep_mode", "eta", "seed")] == [None] * 6


def test_settings_parse_text_as_front_ends_give_it():
    s = EditSettings.from_mapping({"prompt": ["a", "b"], "guidance": "4", "steps": "10", "soft_masks": "false"})
    assert s.weights == [4.0, 4.0] and s.steps == 10 and s.soft_masks is False
    with pytest.raises(ConfigError, match=r"^soft_masks: expected true or false, got 'maybe'"):
        EditSettings.from_mapping({"prompt": "a", "soft_masks": "maybe"})
    with pytest.raises(ConfigError, match=r"unknown edit settings stepz; known: .*steps"):
        EditSettings.from_mapping({"prompt": "a", "stepz": 3})
    with pytest.raises(ConfigError, match=r"weights: 2 prompts but 3 guidance weights"):
        EditSettings(prompts=["a", "b"], weights=[1, 2, 3])
    with pytest.raises(ConfigError, match=r"^seed: seed \+ num_images - 1"):
        GenerateSettings(prompts=["a"], seed=MAX_SEED, num_images=2)
    assert GenerateSettings(prompts=[""]).prompts == [""]  # an unconditional sample is a real request
    assert ModelOptions.from_mapping({"name": "tiny", "offline": "true"}).local_files_only is True
    assert math.isfinite(EDIT_DEFAULTS.skip_ratio)


def test_api_errors_name_the_field():
    with pytest.raises(RadEditError, match=r"^eta: must be a finite number in \(0, 1\], got nan"):
        EditSettings(prompts=["x"], eta=float("nan"))
    with pytest.raises(ModelNotFoundError.__mro__[1], match=r"^device:"):
        ModelOptions(device="tpu")


def test_dicom_output_options_are_named_as_each_front_end_spells_them(tmp_path):
    """The derived series' options are checked in this layer like every other option (they used to say
    "series number -5 is out of range" without naming --series-number, series_number or the job field)."""
    from radedit_core.outputs import DicomOutputOptions
    from radedit_core.settings import bundle_name, cli_name, dicom_output_values, prefixed
    from radedit_core.worker import run_export

    bad = {
        "uid_root": ("1.2.abc", r"'1\.2\.abc' is not a DICOM UID prefix"),
        "series_number": ("-5", r"must be an integer from 0 to 2147483647, got -5"),
        "series_description": ("é" * 40, r"is 80 bytes in UTF-8 \(40 characters, some of them take several bytes\)"),
        "write_seg": ("maybe", r"expected true or false, got 'maybe'"),
    }
    for key, (value, message) in bad.items():
        for name, spelled in ((cli_name, cli_name(key)), (bundle_name, key), (prefixed("job"), f"job.{key}")):
            with pytest.raises(ConfigError, match=rf"^{spelled}: {message}"):
                dicom_output_values({key: value}, name)
        with pytest.raises(ConfigError, match=rf"^{key}: {message}"):
            DicomOutputOptions(**{key: value})
        with pytest.raises(ConfigError, match=rf"^{key}: {message}"):  # the Slicer worker's export job fields
            run_export({"task": "export", "source_dicom": "x.dcm", "out_dir": str(tmp_path / "o"), key: value}, print)
    assert cli_name("series_number") == "--series-number" and not (tmp_path / "o").exists()
    # blank fields of a job or a form are the defaults; a number given as text is a number
    assert dicom_output_values({"uid_root": "", "series_number": " ", "write_seg": None}) == {
        "uid_root": None, "series_number": None, "series_description": None, "write_seg": False}  # fmt: skip
    assert DicomOutputOptions.from_mapping({"series_number": "7"}, cli_name).series_number == 7
    with pytest.raises(ConfigError, match=r"^unknown DICOM output options --series"):
        dicom_output_values({"series": 1}, cli_name)


# -- options only some front ends have -----------------------------------------------------------

CLI_ONLY = [
    (["--output-format", "tiff"], r"--output-format: must be auto, dicom, png, jpeg, nifti, nrrd, got 'tiff'"),
    (["--series-number", "x"], r"--series-number: expected an integer, got 'x'"),
    (["--edit-labels", "1", "--keep-labels", "2"], r"--keep-labels: labels 2 were given but no mask"),
]


@pytest.mark.parametrize("extra, message", CLI_ONLY, ids=[" ".join(e) for e, _ in CLI_ONLY])
def test_cli_output_options_refused_before_the_model_loads(extra, message, inputs, tmp_path, failing_model):
    from radedit_core.cli import main

    out = tmp_path / "out"
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main([*cli_args("seed", "1", inputs, out, failing_model), *extra])
    assert code == 2 and __import__("re").search(message, stderr.getvalue()), stderr.getvalue()
    assert nothing_written(out)


def test_pacs_edit_options_refused_before_any_connection(inputs, tmp_path, failing_model):
    from radedit_core.cli import main

    base = ["pacs-edit", "--pacs", "dimse://ORTHANC@127.0.0.1:9", "--study", "1.2.3", "--global-edit",
            "--prompt", "x", "--model", str(failing_model)]  # fmt: skip
    for extra, message in (
        (["--timeout", "nan"], "timeout must be a finite number > 0 seconds, got nan"),
        (["--guidance", "inf"], r"--guidance: must be a finite number in \[-100, 100\], got inf"),
        (["--study", "1.2.x"], "--study '1.2.x' is not a DICOM UID"),
        (["--uid-root", "1.2.abc"], "--uid-root: '1.2.abc' is not a DICOM UID prefix"),
        (["--series-number", "-5"], "--series-number: must be an integer from 0 to 2147483647, got -5"),
        (["--series-description", "x" * 70], "--series-description: is 70 characters; DICOM allows at most 64"),
    ):
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            code = main(base + extra)
        # a connection attempt to port 9 would fail with exit code 5 (PACS error): 2 proves nothing was sent
        assert code == 2 and __import__("re").search(message, stderr.getvalue()), stderr.getvalue()


def test_bundle_output_format_and_output_dir(inputs, tmp_path, failing_model):
    from radedit_core.batch import batch_from_options

    options = bundle_options("seed", "1", inputs, tmp_path / "out", failing_model)
    with pytest.raises(ConfigError, match=r"output_format: must be auto, dicom, png, jpeg, nifti, nrrd, got 'tiff'"):
        batch_from_options("edit", {**options, "output_format": "tiff"}).run()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(RadEditError, match=r"output_dir exists and is not a folder"):
        batch_from_options("edit", {**options, "output_dir": str(blocker)}).run()
    with pytest.raises(ConfigError, match=r"unknown edit options setps"):
        batch_from_options("edit", {**options, "setps": 10})
    assert nothing_written(tmp_path / "out")
