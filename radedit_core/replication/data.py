"""Phantom cases as the replication's networks see them: the stress module's input contract.

Every image a judge, predictor or segmenter sees, real or edited, goes
through :func:`radedit_core.stress.predictors.to_contract` with
:func:`contract_spec`: 12-bit stored values (the phantom world's DICOM
storage, MONOCHROME2 polarity) mapped to [0, 1] by the fixed window
[0, 4095], then shrunk to ``size`` x ``size`` with MONAI's area ``Resize``.
So a network trained on rendered cases and applied to an edit of the same
kind of file sees the same intensities (no per-image min/max that an edit
could shift).

:func:`render_set` draws a split's cases (in worker processes) into a
:class:`RenderedSet` of contract tensors, labels, sites and lung masks at the
contract size, cached as ``.npz`` in a folder when one is given.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..imaging.image import SourceImage
from ..phantom_world import Case, WorldConfig, sample_case
from ..phantom_world.dataset import LABELS
from ..stress.predictors import PredictorSpec, to_contract
from .worlds import Split

#: Stored values of the phantom world's DICOM storage (12 bits).
BITS = 12
TOP = (1 << BITS) - 1
CACHE_VERSION = 1


def contract_spec(task: str, classes: Sequence[str], size: int, name: str | None = None) -> PredictorSpec:
    """The replication's predictor spec: fixed window [0, 4095] (12-bit stored values), ``size`` x ``size``."""
    return PredictorSpec(
        task=task,  # type: ignore[arg-type]
        classes=tuple(classes),
        input_size=(size, size),
        intensity="unit",
        window=(0.0, float(TOP)),
        output="logits",
        activation="sigmoid",
        name=name,
    )


def source_image(stored: np.ndarray) -> SourceImage:
    """12-bit stored values (uint16, MONOCHROME2) as the editing path's :class:`SourceImage`."""
    return SourceImage.from_array(np.asarray(stored, dtype=np.uint16), value_range=(0.0, float(TOP)))


def case_image(case: Case) -> SourceImage:
    """A rendered case as a 12-bit MONOCHROME2 source image."""
    return source_image(case.stored(BITS, "MONOCHROME2"))


def contract_tensor(image: SourceImage, size: int) -> np.ndarray:
    """``[1, size, size]`` float32 in [0, 1]: what every replication network sees."""
    return to_contract(image, contract_spec("classification", ("x",), size)).numpy()


def shrink_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A source-grid mask at the contract size: area average >= 0.5."""
    from monai.transforms import Resize  # noqa: PLC0415

    x = np.asarray(mask, dtype=np.float32)[None]
    return np.asarray(Resize(spatial_size=(size, size), mode="area")(x))[0] >= 0.5


@dataclass
class RenderedSet:
    """``n`` cases of a split at the contract size.

    Attributes:
        images: [N, 1, S, S] float32 in [0, 1].
        lungs: [N, S, S] bool (the lung masks at the contract size).
        labels: label name -> [N] int (0/1), one per finding and device.
        sites: [N] site names.
        seeds: [N] case seeds.
    """

    split: str
    images: np.ndarray
    lungs: np.ndarray
    labels: dict[str, np.ndarray]
    sites: np.ndarray
    seeds: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def rate(self, label: str, given: tuple[str, int] | None = None) -> float | None:
        """P(label) (optionally given another label's value), rounded for the record; None where undefined."""
        keep = np.ones(len(self), bool) if given is None else self.labels[given[0]] == given[1]
        return round(float(self.labels[label][keep].mean()), 3) if keep.any() else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cases": len(self), "site_B": float(np.mean(self.sites == "B"))}
        for name in ("pneumothorax", "drain", "consolidation", "edema", "pacemaker"):
            out[name] = self.rate(name)
        out["drain|pneumothorax"] = self.rate("drain", ("pneumothorax", 1))
        out["drain|no pneumothorax"] = self.rate("drain", ("pneumothorax", 0))
        return out


def _render_one(job: tuple[WorldConfig, int, int]) -> tuple[np.ndarray, np.ndarray, dict[str, int], str]:
    config, seed, size = job
    case = sample_case(config, seed)
    image = contract_tensor(case_image(case), size)
    return image, shrink_mask(case.lungs, size), {k: int(case.labels[k]) for k in LABELS}, case.site


def _cache_key(split: Split, config: WorldConfig, n: int, size: int) -> str:
    payload = json.dumps({"v": CACHE_VERSION, "split": split.name, "seed": split.seed, "world": config.to_dict(),
                          "n": n, "size": size}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def render_set(
    split: Split, n: int, size: int, workers: int = 1, cache: Path | None = None, progress: bool = False
) -> RenderedSet:
    """Draw ``n`` cases of ``split`` at the contract size (from the cache when it holds them)."""
    config = split.config()
    path = None if cache is None else Path(cache) / "sets" / f"{split.name}-{n}-{size}-{_cache_key(split, config, n, size)}.npz"
    if path is not None and path.is_file():
        data = np.load(path, allow_pickle=False)
        labels = {k[6:]: data[k] for k in data.files if k.startswith("label_")}
        return RenderedSet(split.name, data["images"], data["lungs"], labels, data["sites"], data["seeds"])
    seeds = split.case_seeds(n)
    jobs = [(config, s, size) for s in seeds]
    if workers > 1:
        # fork keeps the parent's imports; every case is a pure function of its seed.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = list(_progress(pool.imap(_render_one, jobs, chunksize=8), n, f"render {split.name}", progress))
    else:
        results = list(_progress(map(_render_one, jobs), n, f"render {split.name}", progress))
    out = RenderedSet(
        split=split.name,
        images=np.stack([r[0] for r in results]).astype(np.float32),
        lungs=np.stack([r[1] for r in results]),
        labels={k: np.asarray([r[2][k] for r in results], dtype=np.int64) for k in LABELS},
        sites=np.asarray([r[3] for r in results]),
        seeds=np.asarray(seeds, dtype=np.int64),
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.part.npz")
        np.savez(tmp, images=out.images, lungs=out.lungs, sites=out.sites, seeds=out.seeds,
                 **{f"label_{k}": v for k, v in out.labels.items()})  # fmt: skip
        os.replace(tmp, path)
    return out


def _progress(items, total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(items, total=total, desc=desc, disable=not enabled, leave=False)


__all__ = [
    "BITS",
    "RenderedSet",
    "TOP",
    "case_image",
    "contract_spec",
    "contract_tensor",
    "render_set",
    "shrink_mask",
    "source_image",
]
