"""Write a phantom chest world data set (images, structure masks, MONAI datalist, provenance).

    radedit phantom  (or python scripts/make_phantom_world.py) --out phantom --n 1000 [--seed 0] [--format png|dicom]
        [--config world.yaml] [--bits 16|8] [--seg] [--splits 0.8,0.1,0.1] [--workers 2] [--overwrite]
    python scripts/make_phantom_world.py --print-config > world.yaml   # the default world, to edit

A thin command line over :func:`radedit_core.phantom_world.write_dataset`;
see that module for the folder layout and :mod:`radedit_core.phantom_world`
for the default world.
"""

from __future__ import annotations

import sys

from radedit_core.cli import main

if __name__ == "__main__":
    # The same command as `radedit phantom` (radedit_core/cli/phantom.py).
    sys.exit(main(["phantom", *sys.argv[1:]]))
