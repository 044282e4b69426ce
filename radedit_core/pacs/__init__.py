"""PACS round trips: find, fetch and store studies over DIMSE or DICOMweb.

A :class:`PacsServer` describes either a DIMSE peer (host, port, called and
calling AE titles) or a DICOMweb service (base URL).  The same four functions
work with both:

- :func:`find_study` (C-FIND / QIDO-RS): the study and its series, or a
  :class:`~radedit_core.errors.PacsError` when the server does not hold it;
- :func:`find_instances` (C-FIND / QIDO-RS): the instances of a series;
- :func:`fetch_study` (C-GET / WADO-RS): every instance of a study into a folder;
- :func:`store_instances` (C-STORE / STOW-RS): a folder's instances to the server.

Every DIMSE status and HTTP answer is checked; a failure is a ``PacsError``
that names the server and says what went wrong in words.  ``radedit
pacs-edit`` (:func:`run_pacs_edit`) chains them: fetch a study into a
temporary folder, edit one image, write the derived series, store it, verify
the server lists it, and print its SeriesInstanceUID.
"""


from .operations import fetch_study, find_instances, find_study, store_instances
from .server import (
    DEFAULT_AET,
    DEFAULT_TIMEOUT,
    IMAGE_SOP_CLASSES,
    RECEIVE_SOP_CLASSES,
    SEGMENTATION,
    InstanceInfo,
    PacsServer,
    SeriesInfo,
    StudyInfo,
)

__all__ = [
    "DEFAULT_AET",
    "DEFAULT_TIMEOUT",
    "IMAGE_SOP_CLASSES",
    "InstanceInfo",
    "PacsServer",
    "RECEIVE_SOP_CLASSES",
    "SEGMENTATION",
    "SeriesInfo",
    "StudyInfo",
    "fetch_study",
    "find_instances",
    "find_study",
    "store_instances",
]
