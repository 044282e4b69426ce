"""Write a phantom chest world data set (images, structure masks, MONAI datalist, provenance).

    python scripts/make_phantom_world.py --out phantom --n 1000 [--seed 0] [--format png|dicom]
        [--config world.yaml] [--bits 16|8] [--seg] [--splits 0.8,0.1,0.1] [--workers 2] [--overwrite]
    python scripts/make_phantom_world.py --print-config > world.yaml   # the default world, to edit

A thin command line over :func:`radedit_core.phantom_world.write_dataset`;
see that module for the folder layout and :mod:`radedit_core.phantom_world`
for the default world.
"""

from __future__ import annotations

import argparse
import sys

from radedit_core.errors import RadEditError
from radedit_core.phantom_world import WorldConfig, write_dataset
from radedit_core.phantom_world.dataset import SPLITS


def parse_splits(text: str) -> dict[str, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(SPLITS):
        raise argparse.ArgumentTypeError(f"give {len(SPLITS)} fractions for {', '.join(SPLITS)}, e.g. 0.8,0.1,0.1")
    try:
        return {name: float(p) for name, p in zip(SPLITS, parts)}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make_phantom_world", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="data set folder to create")
    parser.add_argument("--n", type=int, help="number of cases")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument("--format", choices=("png", "dicom"), default="png", help="image format (default png)")
    parser.add_argument("--config", help="world config YAML (default: the built-in world)")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=16, help="PNG bit depth (default 16)")
    parser.add_argument("--seg", action="store_true", help="with --format dicom, also write a DICOM SEG per case (slow)")
    parser.add_argument("--splits", type=parse_splits, default=None, help="training,validation,testing fractions (default 0.8,0.1,0.1)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the world config (--config or the default) as YAML and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = WorldConfig.from_yaml(args.config) if args.config else WorldConfig()
        if args.print_config:
            sys.stdout.write(config.to_yaml())
            return 0
        if args.out is None or args.n is None:
            parser.error("--out and --n are required")
        summary = write_dataset(
            args.out,
            args.n,
            config,
            seed=args.seed,
            format=args.format,
            splits=args.splits,
            bits=args.bits,
            seg=args.seg,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            workers=args.workers,
        )
    except RadEditError as exc:
        print(f"make_phantom_world: error: {exc}", file=sys.stderr)
        return exc.exit_code
    stats = summary.provenance["statistics"]
    print(f"wrote {len(summary.rows)} cases to {summary.folder} ({', '.join(f'{k} {v}' for k, v in stats['splits'].items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
