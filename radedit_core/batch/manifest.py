"""Resume and the manifest: which items are done, and the record of a run."""

from __future__ import annotations

import csv
import glob
import json
from pathlib import Path
from typing import Any

from ..fileio import (
    atomic_path,
    csv_header,
    json_object,
    remove,
    remove_replaced_leftovers,
    toolkit_record,
    write_json,
)
from ..outputs import legacy_sidecar_path
from .items import Item, _canonical

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
MANIFEST_FIELDS = (
    "id", "row", "status", "seconds", "rank", "input", "edit_mask", "keep_mask", "prompt", "output", "sidecar", "error",
)  # fmt: skip

def is_own_manifest(path: Path) -> bool:
    """Whether ``path`` is a ``manifest.json`` a batch run wrote (its ``tool`` is radedit_core, it lists items)."""
    record = toolkit_record(path)
    return record is not None and isinstance(record.get("items"), list)


def is_own_manifest_csv(path: Path) -> bool:
    """Whether ``path`` is a ``manifest.csv`` a batch run wrote: its header is :data:`MANIFEST_FIELDS`."""
    return csv_header(path) == list(MANIFEST_FIELDS)


def recorded_sidecar(item: Item) -> Path:
    """The item's sidecar; for a run made by radedit_core 0.1, where it put it (``<id>.json``)."""
    assert item.output is not None and item.sidecar is not None
    legacy = legacy_sidecar_path(item.output)
    if not item.sidecar.exists() and legacy != item.sidecar and legacy.is_file() and item.output.is_file():
        return legacy
    return item.sidecar


def item_state(item: Item, overwrite: bool = False) -> str:
    """``done``, ``pending``, ``redo`` (leftovers of an interrupted write, replaced) or ``conflict``."""
    assert item.output is not None and item.sidecar is not None
    sidecar_file = recorded_sidecar(item)
    has_output, has_sidecar = item.output.exists(), sidecar_file.exists()
    if not has_output and not has_sidecar:
        return "pending"
    if overwrite:
        return "redo"
    if has_output != has_sidecar:
        # edit_file writes the sidecar last and removes the output when it
        # fails, so a lone file is what a killed process leaves behind.
        return "redo"
    sidecar = json_object(sidecar_file)
    if sidecar is None:
        return "redo"
    recorded = (sidecar.get("batch") or {}).get("fingerprint")
    return "done" if recorded == _canonical(item.fingerprint) else "conflict"


def _conflict_message(item: Item) -> str:
    recorded = ((json_object(recorded_sidecar(item)) or {}).get("batch") or {}).get("fingerprint") or {}
    current = _canonical(item.fingerprint)
    diffs = _diff(recorded, current)
    what = "; ".join(diffs[:4]) if diffs else "it was not written by a batch run"
    where = f"{item.where}: " if item.where else ""
    return (
        f"{where}{item.output} exists from another run ({what}); use another output_dir, "
        "or set overwrite to true to replace it"
    )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _remove_leftovers(item: Item) -> None:
    """Temporary files of a killed atomic write of this item (``.<name>.*.part*``) and what a killed
    overwrite had set aside (``.<name>.*.replaced``): the item is about to be written again."""
    for target in (item.output, item.sidecar):
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part*"):
            remove(stale)
        remove_replaced_leftovers(target, restore=False)


def write_manifest(output_dir: Path, records: list[dict[str, Any]], header: dict[str, Any]) -> tuple[Path, Path]:
    """``manifest.json`` (run header + one record per item) and ``manifest.csv``, each atomically."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    json_path = write_json(output_dir / MANIFEST_JSON, {**header, "counts": counts, "items": records})
    csv_path = output_dir / MANIFEST_CSV
    with atomic_path(csv_path, overwrite=True) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for record in records:
                writer.writerow({k: record.get(k, "") for k in MANIFEST_FIELDS})
    return json_path, csv_path


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / MANIFEST_JSON).read_text())


