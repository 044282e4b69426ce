"""RadEdit: stress-test chest X-ray models with mask-constrained diffusion image editing.

The package's stages, in the order the data flows through them.  A module may
import modules of its own stage and of the stages before it, never of a later
stage, and no import (at the top of a module or inside a function) closes a
cycle; ``tests/test_import_graph.py`` checks both from the source with ``ast``.
An import inside a function is for deferring a heavy third-party library (so
``radedit --help`` does not load torch); it never holds a cycle apart.

=====  ==============  =====================================================================
stage  name            modules
=====  ==============  =====================================================================
0      foundation      ``_version``, ``errors``, ``fileio``, ``settings``, ``yamlio``, ``runlock``
1      images          ``imaging`` (but ``imaging.io``), ``synthetic``, ``diffusion``
2      dicom           ``dicom``
3      files           ``imaging.io`` (routes DICOM to ``dicom``, the rest to SimpleITK/Pillow)
4      models          ``models``
5      pipelines       ``pipelines``
6      edit            ``scoring``, ``provenance``, ``outputs``, ``edit_request``, ``workflow``
7      datasets        ``phantom_world``, ``batch``, ``pacs``
8      studies         ``stress``, ``training``, ``replication``, ``demo``
9      front ends      ``cli``, ``worker``
=====  ==============  =====================================================================
"""

#: (stage name, module prefixes) from first to last: see the table above.  A
#: prefix names a module and everything under it; the longest matching prefix
#: decides a module's stage (``imaging.io`` is a stage of its own).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("_version", "errors", "fileio", "settings", "yamlio", "runlock")),
    ("images", ("imaging", "synthetic", "diffusion")),
    ("dicom", ("dicom",)),
    ("files", ("imaging.io",)),
    ("models", ("models",)),
    ("pipelines", ("pipelines",)),
    ("edit", ("scoring", "provenance", "outputs", "edit_request", "workflow")),
    ("datasets", ("phantom_world", "batch", "pacs")),
    ("studies", ("stress", "training", "replication", "demo")),
    ("front ends", ("cli", "worker")),
)
