"""The paper's experiments reproduced in the phantom world (``benchmarks/phantom_replication.py``).

Modules: :mod:`.worlds` (the worlds and disjoint splits), :mod:`.data`
(cases as the networks see them: the stress module's input contract),
:mod:`.networks` (judges, predictors and segmenters: small MONAI networks
trained on their own splits), :mod:`.experiments` (the four experiments and
the DiffEdit mask baseline, editing through :class:`radedit_core.workflow.RadEditor`),
:mod:`.report` (the table beside the paper's figures, the goals).

Use::

    from radedit_core.replication import ReplicationConfig, run_replication, table
    results = run_replication(ReplicationConfig.quick(), model="tiny", cache="replication-cache")
    print(table(results))
"""

from __future__ import annotations

from .experiments import JUDGE_CLASSES, Replication, ReplicationConfig, run_replication
from .report import PAPER, goals, table

__all__ = ["JUDGE_CLASSES", "PAPER", "Replication", "ReplicationConfig", "goals", "run_replication", "table"]
