"""``radedit phantom``: write a phantom chest world data set (images, structure masks, MONAI datalist)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..phantom_world import WorldConfig, write_dataset
from ..phantom_world.dataset import MAX_CASES, SPLITS


def _splits(text: str) -> dict[str, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(SPLITS):
        raise argparse.ArgumentTypeError(f"give {len(SPLITS)} fractions for {', '.join(SPLITS)}, e.g. 0.8,0.1,0.1")
    try:
        return {name: float(p) for name, p in zip(SPLITS, parts)}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {exc}") from exc


def add_parser(sub) -> None:
    p = sub.add_parser(
        "phantom",
        help="write a phantom chest world data set",
        description="Procedural chest radiographs with one mask per structure, labels, site cues and reports, "
        "as PNG or DICOM plus a MONAI datalist (radedit_core.phantom_world). --print-config prints the "
        "default world as YAML, to edit and pass back with --config.",
    )
    p.add_argument("--out", help="data set folder to create")
    p.add_argument("--n", type=int, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="data set seed [default: %(default)s]")
    p.add_argument("--format", choices=("png", "dicom"), default="png", help="image format [default: %(default)s]")
    p.add_argument("--config", help="world config YAML [default: the built-in world]")
    p.add_argument("--bits", type=int, choices=(8, 16), default=16, help="PNG bit depth [default: %(default)s]")
    p.add_argument("--seg", action="store_true", help="with --format dicom, also a DICOM SEG per case (slow)")
    p.add_argument("--splits", type=_splits, help="training,validation,testing fractions [default: 0.8,0.1,0.1]")
    p.add_argument("--workers", type=int, default=1, help="processes [default: %(default)s]")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out data set folder (only one radedit phantom wrote)")  # fmt: skip
    p.add_argument("--max-cases", type=int,
                   help="refuse --n above this, so a typo cannot fill the disk [default: 100000]")  # fmt: skip
    p.add_argument("--print-config", action="store_true", help="print the world config as YAML and exit")


def run(args) -> int:
    config = WorldConfig.from_yaml(args.config) if args.config else WorldConfig()
    if args.print_config:
        sys.stdout.write(config.to_yaml())
        return 0
    if args.out is None or args.n is None:
        raise ConfigError("--out and --n are required (or --print-config)")
    summary = write_dataset(
        args.out, args.n, config, seed=args.seed, format=args.format, splits=args.splits, bits=args.bits,
        seg=args.seg, overwrite=args.overwrite, progress=not args.quiet, workers=args.workers,
        max_cases=args.max_cases or MAX_CASES, inputs={"--config": args.config},
    )  # fmt: skip
    stats = summary.provenance["statistics"]
    splits = ", ".join(f"{k} {v}" for k, v in stats["splits"].items())
    print(f"wrote {len(summary.rows)} cases to {summary.folder} ({splits})")
    return 0
