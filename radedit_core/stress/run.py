"""``radedit stress run``: build the set, evaluate a predictor on it and write the report, from one config.

A stress config (YAML or JSON; relative paths are relative to its folder)::

    datalist: phantom/datalist.json      # real images with masks, labels and reports
    recipes: recipes/phantom_world.yaml  # the edits (radedit_core.stress.recipes)
    set: out/set                         # the set folder to build (or to complete: it resumes)
    predictor: weak.ts                   # the model under test (bundle folder, TorchScript, entry point)
    predictor_config: null               # its sidecar, if not beside it
    results: out/results                 # evaluation folder [default: <set>-results]
    report: out/report.html              # [default: <results>/report.html]
    task: classification                 # or segmentation
    classes: [pneumothorax]              # [default: the labels the recipes set]
    subgroups: [site]
    model: tiny                          # the editing model and how it runs
    device: auto
    dtype: auto
    settings: {steps: 200}               # edit settings over the recipes'
    score: auto                          # BioViL-T editing score: auto | required | off
    score_weights: null                  # BioViL-T folder [default: the Hugging Face cache]
    steps: 50                            # edit settings that override the recipes' (and settings:)
    resamples: 2000                      # bootstrap of the evaluation
    bootstrap_seed: 0
    confidence: 0.95
    include_images: true                 # pictures of images in the report
    overwrite: false

Order: the config, the predictor (loaded, its classes against the set's,
and the trial forward pass on the datalist's first image) and the recipes
against the datalist are all checked before any edit, so a bad recipe or a
predictor with the wrong output shape or NaN outputs stops in seconds with a
one-line error.  Then :class:`~radedit_core.stress.build.StressBuild`,
:func:`~radedit_core.stress.evaluate.evaluate_set` and
:func:`~radedit_core.stress.report.write_report`, each resuming what an
interrupted run left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..batch.datalist import read_datalist
from ..errors import ConfigError, InputError
from ..runlock import run_lock
from ..settings import EDIT_SPECS, coerce, is_missing, parse_split
from ..yamlio import load_yaml

#: Keys of a stress config and their defaults (None: required or derived).
STRESS_DEFAULTS: dict[str, Any] = {
    "datalist": None, "split": None, "self_contained": False, "recipes": None, "set": None, "predictor": None, "predictor_config": None, "results": None,
    "report": None, "task": "classification", "classes": None, "subgroups": None, "id_column": "id",
    "text_column": "report", "name": None, "model": "tiny", "device": "auto", "dtype": "auto", "vae_dtype": "float32",
    "trust_remote_code": False, "offline": None, "compile": False, "settings": None, "output_format": "auto",
    "score": "auto", "score_weights": None, "resamples": 2000, "bootstrap_seed": 0, "confidence": 0.95,
    "batch_size": None, "include_images": True, "overwrite": False, "progress": True,
    "max_items": None, "max_sweep_points": None,  # the build's limits (checked by StressBuild)
    # edit settings as keys of their own (over ``settings``): the bundle's top-level ids
    "steps": None, "guidance": None, "skip_ratio": None, "seed": None, "dilate": None, "keep_mode": None,
    "keep_scope": None,
}  # fmt: skip
#: Keys that are edit settings (into ``settings``).
EDIT_KEYS = ("steps", "guidance", "skip_ratio", "seed", "dilate", "keep_mode", "keep_scope")
_PATHS = ("datalist", "recipes", "set", "predictor_config", "results", "report", "score_weights")


@dataclass
class StressRun:
    set: Path
    results: Path
    report: Path
    build: Any
    evaluation: Any


def load_stress_config(path: str | Path) -> dict[str, Any]:
    """A stress config file with its defaults filled in and relative paths resolved (see the module docstring)."""
    import yaml  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "stress config not found")
    try:
        data = load_yaml(path.read_text(encoding="utf-8-sig"), path)
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML/JSON ({str(exc).strip().splitlines()[0]})") from None
    if not isinstance(data, Mapping):
        raise InputError(path, "expected a mapping of options (datalist, recipes, set, predictor, ...)")
    return stress_options(data, base=path.parent, source=str(path))


def stress_options(data: Mapping[str, Any], base: str | Path | None = None, source: str = "stress config",
                   need: tuple[str, ...] = ("datalist", "recipes", "set", "predictor")) -> dict[str, Any]:  # fmt: skip
    """Options checked against :data:`STRESS_DEFAULTS`, defaults filled in, paths resolved against ``base``.

    ``need``: the keys that must be given (``build`` needs no predictor, ``evaluate`` no recipes).
    """
    unknown = sorted(set(data) - set(STRESS_DEFAULTS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]}; known: {', '.join(STRESS_DEFAULTS)}")
    options = {**STRESS_DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
    for key in need:
        if is_missing(options[key]):
            raise ConfigError(f"{source}: {key}: missing")
    for key in _PATHS:
        if not is_missing(options[key]) and base is not None and not Path(str(options[key])).expanduser().is_absolute():
            options[key] = str(Path(base) / str(options[key]))
    predictor = None if is_missing(options["predictor"]) else str(options["predictor"])
    if predictor is not None and base is not None and ":" not in predictor and not Path(predictor).is_absolute():
        options["predictor"] = str(Path(base) / predictor)
    elif predictor is not None:
        from .library_predictors import resolve_library_ref  # noqa: PLC0415

        # huggingface:<folder> and timm:<folder> relative to the config file, like the other paths
        options["predictor"] = resolve_library_ref(predictor, base)
    settings = options["settings"] or {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{source}: settings: expected a mapping of edit settings")
    settings = {**settings, **{k: options.pop(k) for k in EDIT_KEYS if options.get(k) is not None}}
    for k in EDIT_KEYS:
        options.pop(k, None)
    for key in settings:
        if key not in EDIT_SPECS and key not in ("guidance", "prompt"):
            raise ConfigError(f"{source}: settings.{key}: unknown edit setting")
    options["settings"] = dict(settings)
    if is_missing(options["results"]) and not is_missing(options["set"]):
        options["results"] = str(Path(options["set"]).with_name(Path(options["set"]).name + "-results"))
    if is_missing(options["report"]) and not is_missing(options["results"]):
        options["report"] = str(Path(options["results"]) / "report.html")
    for key, kind in (("resamples", "int"), ("bootstrap_seed", "int"), ("confidence", "float"), ("include_images", "bool"),
                      ("overwrite", "bool"), ("progress", "bool"), ("self_contained", "bool")):  # fmt: skip
        options[key] = coerce(f"{source}: {key}", options[key], kind)
    from .evaluate import check_evaluate_options  # noqa: PLC0415

    check_evaluate_options(options["resamples"], options["bootstrap_seed"], options["confidence"],
                           tuple(f"{source}: {k}" for k in ("resamples", "bootstrap_seed", "confidence")))
    options["split"] = parse_split(options["split"], f"{source}: split")
    if options["batch_size"] is not None:
        options["batch_size"] = coerce(f"{source}: batch_size", options["batch_size"], "int")
        if options["batch_size"] < 1:
            raise ConfigError(f"{source}: batch_size: must be at least 1")
    return options


def check_predictor_before_editing(predictor: Any, datalist: str | Path, id_column: str = "id", split: Any = None) -> None:
    """The trial forward pass on the datalist's first image (wrong output shape, NaN outputs: one-line errors)."""
    from .build import _source_image  # noqa: PLC0415

    rows = read_datalist(datalist, split)  # the build says what it read
    first = next((r for r in rows if not is_missing(r.values.get("image"))), None)
    if first is None:
        raise InputError(datalist, "no row has an image")
    image = Path(str(first.values["image"]).strip())
    image = image if image.is_absolute() else Path(datalist).parent / image
    predictor.check(_source_image(str(image)))


def _load_checked_predictor(o: Mapping[str, Any]) -> Any:
    from .predictor_forms import load_predictor  # noqa: PLC0415

    predictor = load_predictor(o["predictor"], o["predictor_config"], device=o["device"])
    if o["batch_size"] is not None:
        predictor.set_batch_size(o["batch_size"])
    if predictor.spec.task != o["task"]:
        raise ConfigError(f"{predictor.name}: a {predictor.spec.task} predictor cannot be evaluated on a {o['task']} set")
    return predictor


def stress_build(o: Mapping[str, Any], editor: Any = None, scorer: Any = None, predictor_classes: Any = None):
    """Build the set the options describe (:class:`~radedit_core.stress.build.StressBuild`)."""
    from .build import StressBuild  # noqa: PLC0415

    return StressBuild(
        datalist=o["datalist"], split=o["split"], self_contained=o["self_contained"], recipes=o["recipes"], task=o["task"], classes=o["classes"], subgroups=o["subgroups"],
        id_column=o["id_column"], text_column=o["text_column"], score=o["score"], score_weights=o["score_weights"],
        settings=o["settings"], output_format=o["output_format"], name=o["name"],
        predictor_classes=predictor_classes, scorer=scorer, editor=editor,
        model=o["model"], device=o["device"], dtype=o["dtype"], vae_dtype=o["vae_dtype"],
        trust_remote_code=o["trust_remote_code"], offline=o["offline"], compile=o["compile"], output_dir=o["set"],
        overwrite=o["overwrite"], progress=o["progress"], max_items=o["max_items"], max_sweep_points=o["max_sweep_points"],
    ).run()  # fmt: skip


def stress_evaluate(o: Mapping[str, Any], predictor: Any = None) -> tuple[Any, Path]:
    """Evaluate the predictor on the set and write the report: (evaluation, report path)."""
    from .evaluate import evaluate_set  # noqa: PLC0415
    from .report import write_report  # noqa: PLC0415


    predictor = predictor if predictor is not None else _load_checked_predictor(o)
    with run_lock(o["results"], "radedit stress evaluate"):
        evaluation = evaluate_set(
            o["set"], predictor, task=o["task"], output=o["results"], n_resamples=o["resamples"],
            seed=o["bootstrap_seed"], confidence=o["confidence"], overwrite=True, progress=o["progress"],
        )  # fmt: skip
        report = write_report(o["results"], o["report"], include_images=o["include_images"], overwrite=True)
    return evaluation, Path(report)


def run_stress(options: Mapping[str, Any], editor: Any = None, scorer: Any = None) -> StressRun:
    """Build, evaluate and report with checked options (:func:`stress_options`); see the module docstring."""
    from .evaluate import check_results_folder  # noqa: PLC0415
    from .report import check_report_output  # noqa: PLC0415

    o = dict(options)
    # 0. where the results go, before hours of edits: no working folder, nothing another tool wrote
    check_results_folder(o["results"])
    check_report_output(o["report"], overwrite=True)
    # 1. the predictor, before any edit
    predictor = _load_checked_predictor(o)
    check_predictor_before_editing(predictor, o["datalist"], o["id_column"], o["split"])
    # 2. the set (its own checks come first: recipes against the datalist, every image and mask)
    build = stress_build(o, editor=editor, scorer=scorer, predictor_classes=list(predictor.spec.classes))
    # 3. evaluation and 4. the report
    evaluation, report = stress_evaluate(o, predictor)
    return StressRun(Path(o["set"]), Path(o["results"]), report, build, evaluation)


__all__ = ["STRESS_DEFAULTS", "StressRun", "check_predictor_before_editing", "load_stress_config", "run_stress",
           "stress_build", "stress_evaluate", "stress_options"]  # fmt: skip
