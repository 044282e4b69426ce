"""Random draws seeded per sample, so that batch layout never changes what a sample gets.

Every random quantity of a training sample (its timestep, noise, caption
dropout, posterior sample, crop) comes from a CPU generator seeded by
``(seed, stream, epoch, row index)``, not from a batch-wide generator.  A
sample therefore gets the same draws whether it is trained in a batch of 4 on
one process or a batch of 2 on each of two ranks, and after a resume from any
step; the draws are made on the CPU and moved, so they are the same on every
device.  The validation stream is fixed across epochs (comparable losses).
"""

from __future__ import annotations

import numpy as np
import torch

#: Independent streams of draws.
STREAMS = {"train": 1, "validation": 2, "samples": 3, "init": 4, "order": 5}


def seed_for(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed from ``(seed, stream, keys)`` (numpy's SeedSequence hashing)."""
    entropy = [int(seed), STREAMS[stream], *(int(k) for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def sample_generator(seed: int, stream: str, *keys: int) -> torch.Generator:
    """A CPU generator of its own for one sample (see :func:`seed_for`)."""
    return torch.Generator(device="cpu").manual_seed(seed_for(seed, stream, *keys))


def batch_generators(seed: int, stream: str, epoch: int, indices: torch.Tensor) -> list[torch.Generator]:
    """One generator per row index of a batch."""
    return [sample_generator(seed, stream, epoch, int(i)) for i in indices.tolist()]


def stacked_randn(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """[B, *shape] standard normal noise, row b from generator b (float32, CPU)."""
    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])


def stacked_rand(generators: list[torch.Generator]) -> torch.Tensor:
    """[B] uniform [0, 1) numbers, one per generator."""
    return torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])


def stacked_randint(generators: list[torch.Generator], high: int) -> torch.Tensor:
    """[B] integers in [0, high), one per generator."""
    return torch.cat([torch.randint(0, high, (1,), generator=g) for g in generators])
