"""``radedit stress evaluate`` and ``radedit stress report``: argparse wiring only.

The CLI adds the sub-commands with :func:`add_evaluate_parser` and
:func:`add_report_parser` (or both with :func:`add_stress_parsers`) to its
``stress`` sub-parsers; each parser's ``handler`` default is the function to
call with the parsed arguments.  The logic lives in
:func:`~radedit_core.stress.evaluate.evaluate_set` and
:func:`~radedit_core.stress.report.write_report`; errors are
:class:`~radedit_core.errors.RadEditError` subclasses for the CLI to print as
one line with their exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..runlock import run_lock
from .stress_set import read_stress_set


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", required=True, type=Path, help="the stress-test set folder (with set.json)")
    p.add_argument(
        "--predictor",
        required=True,
        help="the model under test: a MONAI bundle folder, a TorchScript file (with its .json/.yaml sidecar), "
        "a Python entry point package.module:factory, torchxrayvision:<weights> (e.g. densenet121-res224-all), "
        "huggingface:<folder or hub id> or timm:<folder, hub id or architecture>",
    )
    p.add_argument(
        "--predictor-config",
        type=Path,
        help="predictor sidecar (JSON/YAML: task, classes, input_size, intensity, output, ...); for a TorchScript "
        "file [default: <file>.json/.yaml beside it], overrides for a bundle, the spec of an entry point; for "
        "torchxrayvision:, huggingface:, timm: the classes to keep (or a mapping set label: class name), threshold, "
        "window, cache_dir, revision, checkpoint",
    )
    p.add_argument("--task", choices=["auto", "classification", "segmentation"], default="auto",
                   help="must match the set's task [default: auto, the set's]")  # fmt: skip
    p.add_argument("--output", required=True, type=Path, help="results folder (results.json, predictions.csv)")
    p.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda, cuda:N [default: auto]")
    p.add_argument("--batch-size", type=int, help="images per forward pass [default: sized to the GPU's free memory; 16 on CPU]")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the source images [default: 2000]")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals [default: 0.95]")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed [default: 0]")
    p.add_argument("--overwrite", action="store_true", help="replace existing results")
    p.add_argument("--report", action="store_true", help="also write <output>/report.html")
    p.add_argument("--no-images", action="store_true", help="with --report: leave the pictures of images out")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, type=Path, help="the folder radedit stress evaluate wrote")
    p.add_argument("--output", type=Path, help="the HTML file [default: <results>/report.html]")
    p.add_argument("--set", type=Path, help="the set, if it moved since the evaluation [default: as evaluated]")
    p.add_argument("--no-images", action="store_true", help="leave every picture of an image out (for sharing)")
    p.add_argument("--gallery-size", type=int, default=8, help="largest prediction changes shown [default: 8]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")


def run_evaluate(args: argparse.Namespace) -> int:
    """Check the set, load the predictor, evaluate; prints the results folder."""
    from .evaluate import check_evaluate_options, check_results_folder, evaluate_set  # noqa: PLC0415
    from .predictor_forms import load_predictor  # noqa: PLC0415

    # Options and the set first: bad input is reported before a model is loaded.
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be at least 1")
    check_evaluate_options(args.resamples, args.seed, args.confidence)
    stress_set = read_stress_set(args.set)
    check_results_folder(args.output, stress_set)
    predictor = load_predictor(args.predictor, args.predictor_config, device=args.device)
    if args.batch_size is not None:
        predictor.set_batch_size(args.batch_size)
    with run_lock(args.output, "radedit stress evaluate"):
        evaluation = evaluate_set(
            stress_set,
            predictor,
            task=args.task,
            output=args.output,
            n_resamples=args.resamples,
            seed=args.seed,
            confidence=args.confidence,
            overwrite=args.overwrite,
            progress=not getattr(args, "quiet", False),
        )
        print(evaluation.results_path)
        if args.report:
            from .report import write_report  # noqa: PLC0415

            print(write_report(args.output, include_images=not args.no_images, overwrite=args.overwrite))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .report import write_report  # noqa: PLC0415

    if args.gallery_size < 0:
        raise ConfigError(f"--gallery-size {args.gallery_size}: must be 0 or more")
    path = write_report(
        args.results,
        args.output,
        set_dir=args.set,
        include_images=not args.no_images,
        gallery_size=args.gallery_size,
        overwrite=args.overwrite,
    )
    print(path, file=sys.stdout)
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="run a model on a stress-test set: metrics with confidence intervals, flip rates, breakdowns",
        description="Evaluate a classifier or segmenter on the real and synthetic images of a stress-test set.",
    )
    add_evaluate_arguments(p)
    p.set_defaults(handler=run_evaluate)
    return p


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="self-contained HTML report of an evaluation",
        description="Write a self-contained HTML report (tables, plots, galleries, provenance) of an evaluation.",
    )
    add_report_arguments(p)
    p.set_defaults(handler=run_report)
    return p


def add_stress_parsers(subparsers) -> None:
    """Add ``evaluate`` and ``report`` to the ``radedit stress`` sub-parsers."""
    add_evaluate_parser(subparsers)
    add_report_parser(subparsers)


__all__ = [
    "add_evaluate_arguments",
    "add_evaluate_parser",
    "add_report_arguments",
    "add_report_parser",
    "add_stress_parsers",
    "run_evaluate",
    "run_report",
]
