"""Write a phantom-world data set: images, one mask per structure, a MONAI datalist, provenance.

Layout of ``write_dataset(folder, ...)``::

    folder/
      datalist.json      {"training": [...], "validation": [...], "testing": [...]} (MONAI decathlon style)
      datalist.csv       the same rows with a "split" column
      dataset.json       provenance: tool, version, config, seed, counts, measured correlations
      world.yaml         the world config (reusable with --config)
      images/case_00000.png (16- or 8-bit, bright = dense) or .dcm (CR, 12-bit, the site's photometric)
      masks/case_00000/<structure>.png   0/1 label masks, one per structure, plus lungs.png (the union)
      seg/case_00000.dcm                 DICOM SEG of the non-empty structures (DICOM with seg=True)
      cases/case_00000.json              the row and the sampled parameters (render_case re-renders them)

Rows are flat (the same rows are the CSV): ``id``, ``image``, ``report``,
``site``, ``seed``, one 0/1 column per finding and device (``pneumothorax``,
``effusion``, ``edema``, ``consolidation``, ``drain``, ``pacemaker``,
``ecg``), and ``mask_<structure>`` paths; paths are relative to the
datalist's folder (``monai.data.load_decathlon_datalist`` joins them).

The folder appears whole or not at all: cases are written into a hidden
sibling ``.<name>.partial`` that is renamed at the end.  An interrupted run
resumes there (same arguments: finished cases are kept, the rest are
written), since every case is a pure function of (config, seed, index).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .._version import __version__
from ..errors import ConfigError, OutputError
from ..fileio import (
    check_outputs_apart,
    check_replaceable_folder,
    check_writable,
    is_storage_error,
    output_path,
    storage_error,
)
from ..runlock import run_lock
from .devices import DEVICES
from .findings import FINDINGS
from .world import STRUCTURES, WorldConfig, case_seed, quantise, sample_case

FORMATS = ("png", "dicom")
SPLITS = ("training", "validation", "testing")
DEFAULT_SPLITS = {"training": 0.8, "validation": 0.1, "testing": 0.1}
LABELS = FINDINGS + DEVICES
#: Mask files per case: every structure and the union of the lungs.
MASK_NAMES = STRUCTURES + ("lungs",)
_STAMP = ".stamp.json"
#: What a data set folder holds (``--overwrite`` deletes nothing else: a stress-test set or results
#: written into it stop the replacement).
DATASET_CONTENTS = ("images", "masks", "cases", "seg", "datalist.json", "datalist.csv", "dataset.json", "world.yaml")


@dataclass
class DatasetSummary:
    """What :func:`write_dataset` wrote."""

    folder: Path
    rows: list[dict[str, Any]]
    provenance: dict[str, Any]

    @property
    def datalist(self) -> Path:
        return self.folder / "datalist.json"


def case_id(index: int, n: int) -> str:
    return f"case_{index:0{max(5, len(str(max(n - 1, 0))))}d}"


def assign_splits(n: int, fractions: Mapping[str, float], seed: int) -> list[str]:
    """A split name per case: counts by largest remainder, order shuffled with ``seed``."""
    total = sum(fractions.values())
    exact = {k: n * v / total for k, v in fractions.items()}
    counts = {k: int(np.floor(v)) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    names = [k for k in fractions for _ in range(counts[k])]
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B117])).permutation(n)
    out = [""] * n
    for position, index in enumerate(order):
        out[int(index)] = names[position]
    return out


#: The most cases ``write_dataset`` writes unless ``max_cases`` (``--max-cases``) raises it: about 40 GB of PNGs.
MAX_CASES = 100_000


def _check_arguments(
    n: Any, seed: Any, format: str, bits: int, splits: Mapping[str, float], max_cases: int = MAX_CASES
) -> None:
    if not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ConfigError(f"--seed: must be a non-negative integer, got {seed!r}")
    if not isinstance(n, (int, np.integer)) or int(n) < 1:
        raise ConfigError(f"--n: the number of cases must be a positive integer, got {n!r}")
    if int(n) > max_cases:
        raise ConfigError(
            f"--n {n}: more than {max_cases} cases (the limit; pass --max-cases {n} to raise it, after checking "
            "the disk space: about 0.4 MB per 16-bit PNG case)"
        )
    if format not in FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "png" and bits not in (8, 16):
        raise ConfigError(f"--bits: PNG images are 8- or 16-bit, got {bits!r}")
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ConfigError(f"--splits: unknown split(s) {sorted(unknown)} (use {', '.join(SPLITS)})")
    if any((not isinstance(v, (int, float))) or v < 0 for v in splits.values()) or sum(splits.values()) <= 0:
        raise ConfigError(f"--splits: fractions must be non-negative and not all 0, got {dict(splits)}")


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image  # noqa: PLC0415

    # uint8 -> 8-bit grayscale, uint16 -> 16-bit grayscale ("I;16") PNG.
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)


def _write_case(job: tuple[Path, WorldConfig, int, int, int, str, str, int, bool]) -> dict[str, Any]:
    """Render case ``index`` and write its files into ``staging``; returns its row (also saved as cases/<id>.json)."""
    staging, config, seed, index, n, split, format, bits, seg = job
    cid = case_id(index, n)
    record_path = staging / "cases" / f"{cid}.json"
    if record_path.exists():  # finished by an earlier, interrupted run
        return json.loads(record_path.read_text())["row"]
    case = sample_case(config, case_seed(seed, index))
    mask_dir = staging / "masks" / cid
    mask_dir.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"id": cid, "split": split, "seed": case.seed}
    for name in MASK_NAMES:
        mask = case.mask(name).astype(np.uint8)
        _save_png(mask_dir / f"{name}.png", mask)
    if format == "png":
        image_rel = f"images/{cid}.png"
        _save_png(staging / image_rel, quantise(case.image, bits))
    else:
        from .dicom import case_seg, case_to_dicom  # noqa: PLC0415

        uid_seed = f"radedit phantom world {seed} {cid}"
        image_rel = f"images/{cid}.dcm"
        ds = case_to_dicom(case, cid, uid_seed)
        ds.save_as(staging / image_rel, enforce_file_format=True)
        if seg:
            case_seg(case, ds, uid_seed).save_as(staging / "seg" / f"{cid}.dcm", enforce_file_format=True)
            row["seg"] = f"seg/{cid}.dcm"
    row.update({"image": image_rel, "report": case.report, "site": case.site})
    row.update({label: int(case.labels[label]) for label in LABELS})
    row.update({f"mask_{name}": f"masks/{cid}/{name}.png" for name in MASK_NAMES})
    # The record is written last and renamed into place: its presence means the case is complete.
    tmp = record_path.with_suffix(".json.part")
    tmp.write_text(json.dumps({"row": row, "parameters": case.parameters.to_dict()}, indent=1) + "\n")
    os.replace(tmp, record_path)
    return row


def _rate(rows: Iterable[Mapping[str, Any]], label: str, given: tuple[str, int] | None = None) -> dict[str, Any]:
    pool = [r for r in rows if given is None or r[given[0]] == given[1]]
    k = sum(int(r[label]) for r in pool)
    return {"count": k, "of": len(pool), "rate": (k / len(pool)) if pool else None}


def measured_statistics(rows: list[Mapping[str, Any]], config: WorldConfig) -> dict[str, Any]:
    """Counts and the correlations the world is configured with, as measured in ``rows``."""
    sites = config.site_names()
    return {
        "splits": {s: sum(r["split"] == s for r in rows) for s in SPLITS},
        "sites": {s: sum(r["site"] == s for r in rows) for s in sites},
        "labels": {label: sum(int(r[label]) for r in rows) for label in LABELS},
        "drain_given_pneumothorax": _rate(rows, "drain", ("pneumothorax", 1)),
        "drain_given_no_pneumothorax": _rate(rows, "drain", ("pneumothorax", 0)),
        "finding_given_site": {
            finding: {site: _rate(rows, finding, ("site", site)) for site in sites} for finding in FINDINGS
        },
        "pacemaker": _rate(rows, "pacemaker"),
        "ecg": _rate(rows, "ecg"),
    }


def _stamp(config: WorldConfig, n: int, seed: int, format: str, bits: int, seg: bool, splits: Mapping[str, float]) -> dict:
    return {
        "version": __version__,
        "config": config.to_dict(),
        "n": int(n),
        "seed": int(seed),
        "format": format,
        "bits": int(bits),
        "seg": bool(seg),
        "splits": dict(splits),
    }


def _csv_text(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_dataset(
    folder: str | Path,
    n: int,
    config: WorldConfig | None = None,
    seed: int = 0,
    format: str = "png",
    splits: Mapping[str, float] | None = None,
    *,
    bits: int = 16,
    seg: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    max_cases: int = MAX_CASES,
    inputs: Mapping[str, str | Path | None] | None = None,
) -> DatasetSummary:
    """Write ``n`` cases of ``config`` (default world) as a data set in ``folder`` (see the module docstring).

    Args:
        folder: the data set folder; it must not exist unless ``overwrite``.
        n: number of cases.
        seed: the data set seed; case ``i`` is ``sample_case(config, case_seed(seed, i))``.
        format: "png" (``bits`` 16 or 8) or "dicom" (CR, 12 bits stored).
        splits: fractions per split name ("training", "validation", "testing"),
            default 0.8/0.1/0.1; cases are assigned by a seeded shuffle.
        seg: with DICOM, also write a DICOM SEG per case (slow: about 0.7 s each).
        workers: processes rendering cases in parallel (the result does not depend on it).
        max_cases: the most cases allowed (:data:`MAX_CASES`), so a typo in ``n`` cannot fill a disk.
        inputs: files the run reads (``{"--config": path}``): the folder may not hold them.

    ``overwrite`` replaces only a data set folder this function wrote (its
    ``dataset.json`` says so, and it holds nothing but :data:`DATASET_CONTENTS`)
    or an empty one.  One run at a time writes ``folder``
    (:func:`radedit_core.runlock.run_lock`); an interrupted run resumes.

    Raises:
        ConfigError: a bad argument; OutputError: the folder exists (or, with
            ``overwrite``, is not a data set), holds an input, is being written
            by another run, or cannot be written (a full disk).
    """
    config = config or WorldConfig()
    splits = dict(splits or DEFAULT_SPLITS)
    _check_arguments(n, seed, format, bits, splits, max_cases)
    n, seed = int(n), int(seed)
    folder = check_writable(output_path(folder, "--out"), overwrite=overwrite)
    check_outputs_apart({"--out": folder}, dict(inputs or {}), folders=("--out",))
    if overwrite:
        check_replaceable_folder(folder, manifests=("dataset.json",), contents=DATASET_CONTENTS)
    try:
        with run_lock(folder, "radedit phantom"):
            return _write_dataset(folder, n, config, seed, format, splits, bits, seg, overwrite, progress, workers)
    except OSError as exc:
        if is_storage_error(exc):
            raise storage_error(getattr(exc, "filename", None) or folder, exc) from exc
        raise


def _write_dataset(folder, n, config, seed, format, splits, bits, seg, overwrite, progress, workers) -> DatasetSummary:
    staging = folder.parent / f".{folder.name}.partial"
    stamp = _stamp(config, n, seed, format, bits if format == "png" else 12, seg, splits)
    if staging.exists():
        try:
            previous = json.loads((staging / _STAMP).read_text())
        except (OSError, ValueError):
            previous = None
        if previous != json.loads(json.dumps(stamp)):
            shutil.rmtree(staging)
    for sub in ("images", "masks", "cases") + (("seg",) if format == "dicom" and seg else ()):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    (staging / _STAMP).write_text(json.dumps(stamp, indent=1) + "\n")

    split_of = assign_splits(n, splits, seed)
    jobs = [(staging, config, seed, i, n, split_of[i], format, bits, seg) for i in range(n)]
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=n, desc=f"phantom world -> {folder.name}", unit="case", disable=not progress)
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                rows = []
                for row in pool.map(_write_case, jobs, chunksize=4):
                    rows.append(row)
                    bar.update()
        else:
            rows = []
            for job in jobs:
                rows.append(_write_case(job))
                bar.update()
    finally:
        bar.close()

    datalist = {split: [{k: v for k, v in r.items() if k != "split"} for r in rows if r["split"] == split] for split in SPLITS}
    statistics = measured_statistics(rows, config)
    provenance = {
        "tool": "radedit_core.phantom_world",
        "version": __version__,
        "seed": seed,
        "n": n,
        "format": format,
        "bits_stored": bits if format == "png" else 12,
        "dicom_seg": bool(format == "dicom" and seg),
        "splits": splits,
        "structures": list(MASK_NAMES),
        "labels": list(LABELS),
        "case_seed": "numpy.random.SeedSequence([seed, index]).generate_state(1, uint64)[0] >> 11",
        "statistics": statistics,
        "config": config.to_dict(),
    }
    (staging / "datalist.json").write_text(json.dumps(datalist, indent=1) + "\n")
    (staging / "datalist.csv").write_text(_csv_text(rows))
    (staging / "dataset.json").write_text(json.dumps(provenance, indent=1) + "\n")
    (staging / "world.yaml").write_text(config.to_yaml())
    (staging / _STAMP).unlink()
    if folder.exists():
        if not overwrite:
            raise OutputError(f"{folder}: output appeared while writing; not replaced (the cases stay in {staging})")
        check_replaceable_folder(folder, manifests=("dataset.json",), contents=DATASET_CONTENTS)
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return DatasetSummary(folder=folder, rows=rows, provenance=provenance)


__all__ = [
    "MAX_CASES",
    "DEFAULT_SPLITS",
    "DatasetSummary",
    "FORMATS",
    "LABELS",
    "MASK_NAMES",
    "SPLITS",
    "assign_splits",
    "case_id",
    "measured_statistics",
    "write_dataset",
]
