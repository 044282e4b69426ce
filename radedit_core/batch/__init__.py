"""Many edits (or generated images) in one run, on one process or many.

- :mod:`.datalist`: the rows of a JSON/CSV datalist and the problems found in them;
- :mod:`.items`: rows -> items with deterministic ids and output paths;
- :mod:`.manifest`: which items are done (resume) and the run's manifest;
- :mod:`.distributed`: torch.distributed ranks (each item on exactly one rank);
- :mod:`.runner`: the edit and generate runs (``EditBatch``, ``GenerateBatch``).
"""

from __future__ import annotations

from .datalist import Row, read_datalist
from .distributed import Ranks, destroy_distributed, init_distributed, rank_device
from .items import Item, edit_items, generate_items
from .manifest import item_state, read_manifest, write_manifest
from .runner import BatchSummary, EditBatch, GenerateBatch, batch_from_options

__all__ = [
    "BatchSummary",
    "EditBatch",
    "GenerateBatch",
    "batch_from_options",
    "Item",
    "Ranks",
    "Row",
    "destroy_distributed",
    "edit_items",
    "generate_items",
    "init_distributed",
    "item_state",
    "rank_device",
    "read_datalist",
    "read_manifest",
    "write_manifest",
]
