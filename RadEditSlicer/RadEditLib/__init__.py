"""Qt-free helpers of the RadEdit Slicer module.

- :mod:`.protocol`: jobs, events and the worker process (plain Python)
- :mod:`.environment`: which Python runs the worker, and what it needs
- :mod:`.mrml`: segments -> masks, volumes <-> NRRD, result and difference volumes
- :mod:`.logic`: :class:`~.logic.RadEditCoreLogic`, the module's logic without a GUI
- :mod:`.panel`: what the panel shows, as functions of the parameter node and segmentation

Importing the package imports nothing heavy; the submodules are imported
where they are used (``mrml`` and ``logic`` need Slicer's MRML classes).
"""

__version__ = "0.1.0"
