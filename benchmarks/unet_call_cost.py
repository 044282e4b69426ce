"""Milliseconds per UNet call of one or more models, interleaved on the same inputs (CPU by default).

    python benchmarks/unet_call_cost.py --model old_demo_model/ --model tiny [--batch 2] [--repeats 15]

Times one reverse-step call (``--batch`` latents: 2 = unconditional +
conditional of one image) and one inversion call (8 timesteps, the CPU
default ``inversion_batch_size``) per model, round-robin so that other load
on the machine hits every model alike; prints the minimum and median over
``--repeats`` and each model's ratio to the first.  Also the parameter count
and the size of the model folder.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from radedit_core.models.loading import load_components
from radedit_core.models.spec import ModelSpec


def folder_mb(model: str) -> float | None:
    source = Path(str(ModelSpec.resolve(model).unet.source))
    if not source.is_dir():
        return None
    return sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="model name, folder or spec (repeat)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--inversion-batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    unets = {m: load_components(m, device=args.device, dtype="float32").unet.eval() for m in args.model}
    times: dict[str, dict[str, list[float]]] = {m: {"step": [], "inversion": []} for m in unets}
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, unet in unets.items():
            c = unet.config
            for kind, batch in (("step", args.batch), ("inversion", args.inversion_batch)):
                x = torch.randn(batch, c.in_channels, c.sample_size, c.sample_size, generator=gen)
                t = torch.full((batch,), 500, dtype=torch.long)
                h = torch.randn(batch, 128, c.cross_attention_dim, generator=gen)
                with torch.inference_mode():
                    start = time.perf_counter()
                    unet(x, t, encoder_hidden_states=h)
                    times[name][kind].append(time.perf_counter() - start)
    first = None
    for name, unet in unets.items():
        step = times[name]["step"][1:]
        inv = times[name]["inversion"][1:]
        params = sum(q.numel() for q in unet.parameters()) / 1e6
        size = folder_mb(name)
        ratio = "" if first is None else f"  x{statistics.median(step) / first:.2f} of the first"
        first = first or statistics.median(step)
        print(f"{name}: {params:.2f}M UNet parameters, folder {size:.1f} MB" if size is not None else f"{name}: {params:.2f}M")
        print(f"  reverse step (batch {args.batch}): min {1000 * min(step):.1f} ms, median {1000 * statistics.median(step):.1f} ms{ratio}")
        print(f"  inversion call (batch {args.inversion_batch}): min {1000 * min(inv):.1f} ms, "
              f"median {1000 * statistics.median(inv):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
