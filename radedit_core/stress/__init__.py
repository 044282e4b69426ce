"""Stress tests (paper Sec. 5): evaluate a user's model on real images and their edits, and report.

* :mod:`.stress_set`: the set on disk (``set.json`` datalist + ``set.csv``), read and written;
* :mod:`.predictors`: the model under test (MONAI bundle, TorchScript + sidecar, entry point)
  and its input contract;
* :mod:`.metrics`: MONAI metrics, the bootstrap over source images, flip rates, breakdowns;
* :mod:`.evaluate`: :func:`evaluate_set` -> ``results.json`` and ``predictions.csv``;
* :mod:`.report`: :func:`write_report` -> one self-contained HTML file;
* :mod:`.privacy`: keeps patient identifiers out of reports;
* :mod:`.commands`: the ``radedit stress evaluate|report`` argument parsers.
"""

from __future__ import annotations

from .stress_set import SetRow, StressSet, read_stress_set, write_stress_set

__all__ = ["SetRow", "StressSet", "read_stress_set", "write_stress_set"]
