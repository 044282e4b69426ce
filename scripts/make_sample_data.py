"""Write the bundled sample image and masks (deterministic synthetic phantom).

    python scripts/make_sample_data.py [--out radedit_core/data/sample]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from radedit_core.synthetic import chest_phantom, quantise

ROWS, COLS, SEED = 640, 560, 7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "radedit_core/data/sample")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    phantom = chest_phantom(ROWS, COLS, seed=SEED)
    # 12-bit values in a 16-bit PNG, as a CR export would hold them.
    Image.fromarray(quantise(phantom.image, 12, np.uint16)).save(args.out / "cxr.png")
    lungs = phantom.mask("right_lung", "left_lung") & ~phantom.mask("pacemaker")
    Image.fromarray(lungs.astype(np.uint8) * 255).save(args.out / "lungs_mask.png")
    Image.fromarray(phantom.mask("pacemaker").astype(np.uint8) * 255).save(args.out / "pacemaker_mask.png")
    print(f"wrote sample to {args.out}")


if __name__ == "__main__":
    main()
