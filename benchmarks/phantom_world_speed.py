"""Seconds per phantom-world case: sampling and rendering, and writing a data set.

Printed (median over the cases, CPU time of this process so that other load
on the machine does not count): sampling the parameters, rendering the
layers, forming the image, and writing one case of a PNG data set (image and
18 mask PNGs) and of a DICOM data set (without SEG).

    python benchmarks/phantom_world_speed.py [--n 20] [--size 512]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from radedit_core.phantom_world import WorldConfig, sample_parameters, write_dataset
from radedit_core.phantom_world.acquisition import expose
from radedit_core.phantom_world.rendering import attenuation
from radedit_core.phantom_world.world import render_layers


def cpu_seconds(fn) -> tuple[float, object]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="cases to time (default 20)")
    parser.add_argument("--size", type=int, default=512, help="image rows and columns (default 512)")
    args = parser.parse_args()
    config = WorldConfig(rows=args.size, columns=args.size)
    render_layers(sample_parameters(config, 0))  # imports and first-call set-up
    times: dict[str, list[float]] = {"sample": [], "layers": [], "image": []}
    for seed in range(1, args.n + 1):
        t, params = cpu_seconds(lambda s=seed: sample_parameters(config, s))
        times["sample"].append(t)
        t, (scene, layers) = cpu_seconds(lambda p=params: render_layers(p))
        times["layers"].append(t)
        t, _ = cpu_seconds(lambda: expose(attenuation(layers.values(), scene.shape), params.acquisition))
        times["image"].append(t)
    for name, values in times.items():
        print(f"{name:>8}: {1000 * statistics.median(values):7.1f} ms per case (median of {len(values)})")
    render = sum(statistics.median(v) for v in times.values())
    print(f"{'render':>8}: {1000 * render:7.1f} ms per case")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("png", "dicom"):
            t, _ = cpu_seconds(lambda f=fmt: write_dataset(Path(tmp) / f, args.n, config, seed=1, format=f, progress=False))
            print(f"{'write ' + fmt:>8}: {1000 * t / args.n:7.1f} ms per case (rendering included, {args.n} cases)")


if __name__ == "__main__":
    main()
