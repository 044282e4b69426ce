"""``radedit stress build|evaluate|report|run``: stress-test sets (paper Sec. 5), thin over :mod:`radedit_core.stress`.

* ``build``: :class:`~radedit_core.stress.build.StressBuild` (recipes on a datalist -> a set);
* ``evaluate`` and ``report``: :mod:`radedit_core.stress.commands`;
* ``run``: all three from one config (:mod:`radedit_core.stress.run`).

``build`` (and ``run``) may be started under ``torchrun``: each edit is made
on exactly one rank and rank 0 writes the set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..batch.distributed import destroy_distributed, init_distributed
from ..settings import DETAIL_HELP
from ..settings import EDIT_DEFAULTS as D
from ..stress.build import StressBuild
from ..stress.commands import add_evaluate_parser, add_report_parser
from ..stress.run import load_stress_config, run_stress
from .common import dashed, options_as_typed
from .options import add_model_options, add_split_option

_BUILD_EDIT_KEYS = ("guidance", "steps", "skip_ratio", "invert_prompt", "invert_guidance", "eta", "seed", "inversion",
                    "keep_mode", "dilate", "keep_scope", "detail", "inversion_batch_size")  # fmt: skip


def _add_build_edit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("editing (over every recipe's settings; a recipe's sweep wins for what it sweeps)")
    g.add_argument("--guidance", action="append", help=f"guidance weight [default: the recipe's, else {D.weights[0]:g}]")
    g.add_argument("--steps", help=f"diffusion steps T [default: the recipe's, else {D.steps}]")
    g.add_argument("--skip-ratio", help=f"fraction of the steps skipped [default: the recipe's, else {D.skip_ratio}]")
    g.add_argument("--seed", help=f"random seed [default: the recipe's, else {D.seed}]")
    g.add_argument("--eta", help=f"DDPM noise scale [default: {D.eta:g}]")
    g.add_argument("--invert-prompt", help="prompt of the inversion [default: '']")
    g.add_argument("--invert-guidance", help=f"guidance of a non-empty invert prompt [default: {D.invert_guidance:g}]")
    g.add_argument("--inversion", help=f"ddpm or ddim [default: {D.inversion}]")
    g.add_argument("--keep-mode", help=f"pixel or latent [default: {D.keep_mode}]")
    g.add_argument("--dilate", metavar="PX", help=f"dilate both masks by PX pixels [default: the recipe's, else {D.dilate}]")
    g.add_argument("--keep-scope", help=f"device or mask: what of the dilated keep mask is kept inside the edit mask "
                   f"[default: {D.keep_scope}]")
    g.add_argument("--detail", help=f"{DETAIL_HELP} [default: {D.detail}]")
    g.add_argument("--inversion-batch-size", help="timesteps per UNet call when inverting")


def _add_build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datalist", required=True, type=Path,
                   help="real images (JSON/CSV): image, mask_<label> columns, 0/1 label columns, a report column")  # fmt: skip
    add_split_option(p)
    p.add_argument("--recipes", required=True, type=Path, help="recipe file (YAML/JSON; see docs/stress-tests.md, 'Building a set: recipes')")
    p.add_argument("--output", required=True, help="the set folder (an interrupted build resumes in it)")
    p.add_argument("--task", default="classification", choices=["classification", "segmentation"],
                   help="what the set tests [default: classification]")  # fmt: skip
    p.add_argument("--classes", help="the set's classes, comma-separated [default: the labels the recipes set]")
    p.add_argument("--subgroups", help="datalist columns copied as subgroups (e.g. site), comma-separated")
    p.add_argument("--id-column", default="id", help="the datalist column naming rows [default: id, else the image name]")
    p.add_argument("--text-column", default="report",
                   help="the column with each image's report (editing score, sham edits) [default: report]")  # fmt: skip
    p.add_argument("--score", default="auto", choices=["auto", "required", "off"],
                   help="BioViL-T editing score: auto (when available), required, off [default: auto]")  # fmt: skip
    p.add_argument("--score-weights", help="folder with BioViL-T in its published layout [default: the HF cache]")
    p.add_argument("--name", help="the set's name [default: the folder's]")
    p.add_argument("--output-format", default="auto", help="auto (the source's), png, nifti, nrrd, dicom [default: auto]")
    p.add_argument("--overwrite", action="store_true", help="redo edits made with other settings")
    p.add_argument("--self-contained", action="store_true", default=None,
                   help="copy the real images and their masks into the set (<set>/real/), so that the set folder "
                   "alone can be moved or shared [default: off: the set refers to them by paths relative to it]")  # fmt: skip
    p.add_argument("--max-items", help="refuse to plan more edits than this [default: 100000]")
    p.add_argument("--max-sweep-points", help="refuse a recipe sweep of more combinations [default: 1000]")
    _add_build_edit_options(p)
    add_model_options(p, default_model="tiny")


def run_build(args: argparse.Namespace) -> int:
    settings = {k: getattr(args, k) for k in _BUILD_EDIT_KEYS}
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        init_distributed(args.device or "auto")
    # The build names options as the library and the bundle spell them; here as typed (every option's
    # flag is its dest with dashes; the library's output_dir is --output).
    names = {**dashed(*vars(args)), "output_dir": "--output"}
    try:
        with options_as_typed(names):
            summary = StressBuild(
                datalist=args.datalist, split=args.split, self_contained=args.self_contained, recipes=args.recipes,
                task=args.task, classes=args.classes, subgroups=args.subgroups, id_column=args.id_column,
                text_column=args.text_column, score=args.score, score_weights=args.score_weights, settings=settings,
                output_format=args.output_format, name=args.name, model=args.model, device=args.device,
                dtype=args.dtype, vae_dtype=args.vae_dtype, trust_remote_code=args.trust_remote_code,
                offline=args.offline, compile=args.compile, output_dir=args.output, overwrite=args.overwrite,
                progress=not args.quiet, max_items=args.max_items, max_sweep_points=args.max_sweep_points,
            ).run()  # fmt: skip
    finally:
        if distributed:
            destroy_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary)
    return 0


def run_stress_config(args: argparse.Namespace) -> int:
    options = load_stress_config(args.config)
    if args.quiet:
        options["progress"] = False
    done = run_stress(options)
    print(f"set {done.set}\nresults {done.results}\nreport {done.report}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "stress",
        help="stress-test sets: build (edit recipes), evaluate a model, report",
        description="Stress-test a classifier or segmenter with edited images (paper Sec. 5).",
    )
    stress = p.add_subparsers(dest="stress_command", required=True)
    b = stress.add_parser(
        "build",
        help="apply edit recipes to a datalist: the edits, their provenance and QC, the set's datalist",
        description="Build a stress-test set: every recipe on every datalist row it applies to, resumable.",
    )
    _add_build_arguments(b)
    b.set_defaults(handler=run_build)
    add_evaluate_parser(stress)
    add_report_parser(stress)
    r = stress.add_parser(
        "run",
        help="build, evaluate and report from one config file",
        description="Build the set, evaluate the predictor on it and write the report, as the config says.",
    )
    r.add_argument("--config", required=True, type=Path, help="stress config (YAML/JSON; see docs/stress-tests.md, 'One command: build, evaluate, report')")
    r.set_defaults(handler=run_stress_config)


def run(args: argparse.Namespace) -> int:
    return args.handler(args)
