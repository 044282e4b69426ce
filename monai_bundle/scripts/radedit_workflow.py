"""Small callables that ``configs/inference.json`` instantiates.

Everything that decides what is computed lives in :mod:`radedit_core`
(:mod:`radedit_core.settings` parses and checks every option,
:mod:`radedit_core.batch` runs datalists with resume and sharding); these
functions only connect the MONAI bundle machinery to it:

* the command line's overrides are taken as typed (MONAI's parser, through
  ``fire``, drops ``--x None``, cuts ``#...`` from a value and ignores ids the
  config does not have), so that ``--keep_mask None``, ``--prompt "effusion
  #2"`` and a misspelt ``--setps`` behave as users expect;
* the sample study (with its masks and prompt) is what gets edited when
  neither an ``input`` nor a ``datalist`` is given;
* a model name is also looked for in the bundle's ``models/`` folder.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from radedit_core.errors import ConfigError, RadEditError

#: Arguments of ``monai.bundle run`` itself, not config ids.
MONAI_RUN_ARGUMENTS = frozenset(
    {"run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking", "args_file",
     "workflow_type", "workflow_name", "properties_path"}  # fmt: skip
)


def bundle_root() -> str:
    """The bundle folder, wherever ``python -m monai.bundle`` is started from."""
    return str(Path(__file__).resolve().parent.parent)


def bundled_sample() -> dict[str, str]:
    """What the bundle edits with no input: the sample study's image, its SEG's pneumothorax (edit) and drain (keep),
    and the prompt that removes the pneumothorax."""
    from importlib import resources  # noqa: PLC0415

    study = Path(str(resources.files("radedit_core") / "data" / "sample_study"))
    seg = study / "seg.dcm"
    return {"input": str(study), "edit_mask": f"{seg}#pneumothorax", "keep_mask": f"{seg}#drain",
            "prompt": "No pneumothorax"}  # fmt: skip


def find_model(model: Any, search_dirs: Sequence[str | Path] = ()) -> str:
    """``radedit``/``tiny``, an existing folder or spec file, or a name/path inside one of ``search_dirs``.

    The bundle passes its ``models/`` folder, so ``model=my_weights`` finds
    ``models/my_weights/`` from any working directory.
    """
    if model is None or not str(model).strip():
        raise ConfigError("model: give 'radedit', 'tiny', a model folder or a spec file")
    text = str(model).strip()
    if text in ("radedit", "tiny", "tiny-random") or Path(text).expanduser().exists():
        return text
    tried = []
    for folder in search_dirs:
        candidate = Path(str(folder)).expanduser() / text
        tried.append(str(candidate))
        if candidate.exists():
            return str(candidate)
    where = f" (also looked for {', '.join(tried)})" if tried else ""
    raise ConfigError(
        f"{text}: model not found{where}; use 'radedit' (published weights from the Hugging Face cache), "
        "'tiny' (offline demo model), a model folder (unet/, vae/, text_encoder/, tokenizer/) or a spec file"
    )


def _started_as_bundle_cli() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.startswith("monai.bundle")


def command_line_overrides(argv: Sequence[str] | None = None) -> dict[str, str]:
    """``--id value`` / ``--id=value`` pairs of ``python -m monai.bundle run ...``, as typed."""
    args = list(sys.argv[1:] if argv is None else argv)
    out: dict[str, str] = {}
    k = 0
    while k < len(args):
        token = args[k]
        k += 1
        if not token.startswith("--"):
            continue
        key, eq, value = token[2:].partition("=")
        if not eq:
            if k < len(args) and not args[k].startswith("--"):
                value = args[k]
                k += 1
            else:
                value = "true"  # a bare flag, as fire reads it
        out[key.replace("-", "_") if key.replace("-", "_") in MONAI_RUN_ARGUMENTS else key] = value
    return out


def _list_or_text(value: str) -> Any:
    """``"['a', 'b']"`` (several prompts or weights, as fire reads them) -> a list; anything else as typed."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def _read_configs(config_file: str | None) -> dict[str, Any]:
    """The config file(s) ``--config_file`` names (a path or a list of paths), merged at the top level."""
    if not config_file:
        return {}
    try:
        files = ast.literal_eval(config_file) if config_file.strip().startswith("[") else [config_file]
    except (ValueError, SyntaxError):
        files = [config_file]
    merged: dict[str, Any] = {}
    for name in files:
        try:
            merged.update(json.loads(Path(name).read_text()))
        except (OSError, ValueError):
            continue
    return merged


def _apply_command_line(options: dict[str, Any], kind: str) -> dict[str, Any]:
    """The options with the command line's values as typed (text the settings layer parses); unknown ids refused.

    An override ``--id value`` replaces the option the config fills from ``@id``.
    """
    raw = command_line_overrides()
    config = _read_configs(raw.get("config_file"))
    known = set(config) | set(options)
    unknown = sorted(k for k in raw if k not in known and k not in MONAI_RUN_ARGUMENTS and "#" not in k and "::" not in k)
    if unknown:
        shown = ", ".join(f"--{k}" for k in unknown)
        listed = ", ".join(sorted(k for k in known if k not in ("imports", "edit", "generate", "run", "train", "stress", "stress_build", "stress_evaluate") and not k.endswith("_options")))
        raise ConfigError(f"unknown override {shown}; this bundle's ids are: {listed}")
    refs = config.get(f"{kind}_options") or {k: f"@{k}" for k in options}
    out = dict(options)
    for key, ref in refs.items():
        value = raw.get(ref[1:]) if isinstance(ref, str) and ref.startswith("@") else None
        # MONAI expressions and references keep MONAI's reading.
        if value is not None and key in out and not value.startswith(("$", "@", "%")):
            out[key] = _list_or_text(value)
    return out


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """From the command line a radedit error is one line and an exit code, not a traceback, and Ctrl-C is
    ``radedit: interrupted`` and 130, as in the ``radedit`` CLI; through the Python API (``ConfigWorkflow``)
    both propagate."""
    try:
        yield
    except RadEditError as exc:
        if not _started_as_bundle_cli():
            raise
        # Every rank stops with the same agreed error; one copy of it is enough.
        if os.environ.get("RANK", "0") == "0":
            print(f"radedit: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        if not _started_as_bundle_cli():
            raise
        if os.environ.get("RANK", "0") == "0":
            print("radedit: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def run(kind: str, options: dict[str, Any], model_dirs: Sequence[Any] = ()) -> Any:
    """Run the ``edit`` or ``generate`` job the options describe (:func:`radedit_core.batch.batch_from_options`)."""
    from radedit_core.batch import batch_from_options  # noqa: PLC0415

    with _one_line_errors():
        options = dict(options)
        if _started_as_bundle_cli():
            options = _apply_command_line(options, kind)
        if kind == "edit" and options.get("input") is None and options.get("datalist") is None:
            sample = bundled_sample()
            # The sample's masks and prompt belong to the sample: only a run without input gets them.
            for key in ("input", "edit_mask", "keep_mask", "prompt"):
                if options.get(key) is None:
                    options[key] = sample[key]
        job = batch_from_options(kind, options)
        job.params["model"] = find_model(job.params["model"], [d for d in model_dirs if d])
        return job.run()


def run_job(job: Any) -> Any:
    """``job.run()`` (the training workflow), with the command line's unknown ids refused and one-line errors."""
    with _one_line_errors():
        if _started_as_bundle_cli():
            _apply_command_line({}, "train")
        return job.run()


def run_stress(kind: str, options: dict[str, Any], model_dirs: Sequence[Any] = ()) -> Any:
    """``configs/stress.json``'s run ids: ``stress_build`` (the set), ``stress_evaluate`` (evaluation and
    report of a built set) and ``stress`` (all three), over :mod:`radedit_core.stress.run`."""
    from radedit_core.stress.run import run_stress as run_all  # noqa: PLC0415
    from radedit_core.stress.run import stress_build, stress_evaluate, stress_options  # noqa: PLC0415

    need = {"stress_build": ("datalist", "recipes", "set"), "stress_evaluate": ("set", "predictor"),
            "stress": ("datalist", "recipes", "set", "predictor")}[kind]  # fmt: skip
    with _one_line_errors():
        options = dict(options)
        if _started_as_bundle_cli():
            options = _apply_command_line(options, kind)
        for key in ("classes", "subgroups"):
            if isinstance(options.get(key), str):
                options[key] = [v.strip() for v in options[key].split(",") if v.strip()]
        options = stress_options(options, base=None, source="stress.json", need=need)
        if kind != "stress_evaluate":
            options["model"] = find_model(options["model"], [d for d in model_dirs if d])
        if kind == "stress_build":
            return stress_build(options)
        if kind == "stress_evaluate":
            return stress_evaluate(options)
        return run_all(options)
