"""Training data: a MONAI datalist, images in model space, a layout-independent batch order.

The datalist is MONAI's JSON form, ``{"training": [...], "validation": [...],
"testing": [...]}`` of flat rows (``id``, ``image``, ``report``, ``site``,
finding columns, mask paths, ...), read with
:func:`monai.data.load_decathlon_datalist` so that paths are resolved against
the datalist's folder.  Only the image and text columns (configurable) are
used.  Images become model space exactly as the editing path maps them
(:class:`radedit_core.imaging.transform.ModelSpaceTransform`: centre crop of
the largest square, antialiased bilinear resize, min-max or the DICOM window
to [-1, 1]) in :class:`LoadModelSpaced`, a MONAI ``MapTransform`` whose
results :class:`monai.data.CacheDataset` keeps.

The batch order is a per-epoch permutation of the training rows seeded by
``(seed, epoch)``; optimizer step ``k`` of an epoch uses permutation entries
``[k G, (k + 1) G)`` with ``G = world x batch_size x accumulation`` the
global batch, whatever the number of ranks (:class:`GlobalBatchSampler`).
With the noise and timesteps seeded per sample
(:mod:`radedit_core.training.noise`) this makes 2 ranks x batch ``b`` train
like 1 process x batch ``2b``, and a resume restart at any step.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputError
from ..imaging.io import read_image
from ..imaging.transform import ModelSpaceTransform
from .noise import seed_for

_MAX_REPORTED = 3
log = logging.getLogger("radedit")


@dataclass(frozen=True)
class TrainingRows:
    """The usable rows of a datalist: ``{"index", "image", "text", "id"}`` per split.

    ``index`` is the row's position in its split (it seeds the sample's noise);
    ``image`` an absolute path; ``text`` the report ("" if the stage needs none).
    """

    path: Path
    training: list[dict[str, Any]]
    validation: list[dict[str, Any]]


def read_training_datalist(
    path: str | Path,
    image_key: str = "image",
    text_key: str | None = "report",
    train_split: str = "training",
    validation_split: str | None = "validation",
) -> TrainingRows:
    """Read and check every row (files exist, text present) before anything heavy happens.

    ``text_key=None``: the rows need no text (VAE stage).  A missing
    validation list is allowed (no validation metrics); a missing or empty
    training list is not.

    Raises:
        InputError: naming the datalist, the split and row number, and the
            problem (first few of them, with a count).
    """
    from monai.data import load_decathlon_datalist  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "datalist does not exist" if not path.exists() else "datalist is not a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the datalist as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, "expected a MONAI datalist: an object with 'training' and 'validation' lists")
    splits = {}
    for split, required in ((train_split, True), (validation_split, False)):
        if split is None:
            splits[split] = []
            continue
        entries = data.get(split)
        if entries is None and not required:
            splits[split] = []
            continue
        if not isinstance(entries, list) or (required and not entries):
            present = sorted(k for k, v in data.items() if isinstance(v, list))
            raise InputError(path, f"no non-empty '{split}' list of rows (lists present: {present})")
        if not all(isinstance(e, dict) for e in entries):
            raise InputError(path, f"'{split}': every row must be an object with '{image_key}' and '{text_key}'")
        # MONAI joins 'image' (and existing relative paths in other columns) to the datalist's folder;
        # the text is read as written (MONAI would turn a report "" or one naming a file beside the
        # datalist into a path).
        rows = load_decathlon_datalist(path, is_segmentation=False, data_list_key=split)
        rows = [{**row, **({text_key: raw[text_key]} if text_key in raw else {})}
                for row, raw in zip(rows, entries, strict=True)]  # fmt: skip
        splits[split] = _check_rows(path, split, rows, image_key, text_key)
    return TrainingRows(path=path, training=splits[train_split], validation=splits[validation_split])


def _check_rows(
    path: Path, split: str, rows: list[dict[str, Any]], image_key: str, text_key: str | None
) -> list[dict[str, Any]]:
    base = path.parent
    problems: list[str] = []
    out = []
    for k, row in enumerate(rows):
        where = f"'{split}' row {k + 1}" + (f" (id {row['id']})" if "id" in row else "")
        image = row.get(image_key)
        if not isinstance(image, str) or not image.strip():
            problems.append(f"{where}: no '{image_key}' path")
            continue
        image_path = Path(image).expanduser()
        if not image_path.is_absolute():
            image_path = base / image_path
        if not image_path.exists():
            problems.append(f"{where}: {image_key} file {image_path} does not exist")
            continue
        text = ""
        if text_key is not None:
            value = row.get(text_key)
            if not isinstance(value, str):
                problems.append(f"{where}: '{text_key}' must be a text, got {value!r}")
                continue
            text = value
        out.append({"index": k, "image": str(image_path.resolve()), "text": text, "id": str(row.get("id", k))})
    if problems:
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise InputError(path, "; ".join(problems[:_MAX_REPORTED]) + more)
    empty = sum(not row["text"].strip() for row in out) if text_key is not None else 0
    if empty and empty == len(out):
        raise InputError(path, f"every '{split}' row's '{text_key}' is empty: the model would learn no text "
                               "(is the text in another column? the text key option names it)")
    if empty and os.environ.get("RANK", "0") == "0":
        # An empty text is what caption dropout feeds the model: legitimate, but a silent surplus of it
        # (a column half filled) weakens what the prompts do.
        log.warning("%s: %d of %d '%s' rows have an empty '%s'; they train as unconditional samples, as caption "
                    "dropout's do", path, empty, len(out), split, text_key)
    return out


class LoadModelSpaced(MapTransform):
    """Replace each key's image path by the image in model space: float32 [1, S, S] in [-1, 1].

    Reads with :func:`radedit_core.imaging.io.read_image` (PNG, NIfTI, NRRD,
    DICOM with its VOI window) and maps with
    :class:`~radedit_core.imaging.transform.ModelSpaceTransform` at
    ``model_size``: the same pixels the editing path gives the model.

    Raises:
        InputError: for a file that cannot be read or has nothing to learn
            (constant intensities), naming it.
    """

    def __init__(self, keys: KeysCollection, model_size: int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.model_size = int(model_size)

    def __call__(self, data: Mapping[Any, Any]) -> dict[Any, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = read_image(d[key])
            d[key] = ModelSpaceTransform.fit(image, self.model_size).image_to_model(image.array)[0]
        return d


def model_space_dataset(rows: list[dict[str, Any]], model_size: int, cache_rate: float, progress: bool = False):
    """A :class:`monai.data.CacheDataset` of the rows with their images in model space."""
    from monai.data import CacheDataset  # noqa: PLC0415

    return CacheDataset(
        data=rows,
        transform=LoadModelSpaced("image", model_size),
        cache_rate=cache_rate,
        num_workers=1,
        progress=progress,
        copy_cache=False,  # nothing mutates the cached tensors
    )


class GlobalBatchSampler(torch.utils.data.Sampler[int]):
    """This rank's share of each epoch's seeded permutation, in global-batch order.

    Epoch ``e`` permutes the ``n`` rows with a generator seeded by
    ``(seed, e)`` and keeps ``steps_per_epoch x global_batch`` of them; rank
    ``r`` of ``world`` yields entries ``r, r + world, ...`` from
    ``start_step x global_batch`` on.  Batched by ``batch_size`` on every
    rank, micro-batch ``m`` of all ranks together is permutation entries
    ``[m W b, (m + 1) W b)``, so each optimizer step sees the same samples for
    any ``world x batch_size`` with the same product.
    """

    def __init__(self, num_rows: int, global_batch: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not a multiple of world size {world}")
        self.num_rows = int(num_rows)
        self.global_batch = int(global_batch)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world = int(world)
        self.shuffle = shuffle
        self.epoch = 0
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_rows // self.global_batch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = int(epoch)
        self.start_step = int(start_step)

    def order(self) -> list[int]:
        """The epoch's global order (all ranks), before sharding."""
        if not self.shuffle:
            return list(range(self.num_rows))
        gen = torch.Generator().manual_seed(seed_for(self.seed, "order", self.epoch))
        return torch.randperm(self.num_rows, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        used = self.order()[self.start_step * self.global_batch : self.steps_per_epoch * self.global_batch]
        return iter(used[self.rank :: self.world])

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_step) * self.global_batch // self.world


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and indices; texts and ids stay lists."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "index": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
        "text": [it["text"] for it in items],
        "id": [it["id"] for it in items],
    }


def make_loader(dataset, sampler: GlobalBatchSampler, batch_size: int, num_workers: int):
    """A DataLoader over ``sampler`` that never touches the global RNG (it has its own generator)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=False,  # the sampler already yields whole batches
        generator=torch.Generator().manual_seed(sampler.seed),
        persistent_workers=False,
    )
