"""``radedit pacs-edit``: options of the PACS round trip (the work is :mod:`radedit_core.pacs.command`)."""

from __future__ import annotations

from pathlib import Path

from ..pacs.server import DEFAULT_AET, DEFAULT_TIMEOUT
from .common import editor_from_args, settings_from_args
from .options import add_edit_options, add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pacs-edit",
        help="fetch a study from a PACS, edit one image, store the result as a new series",
        description=(
            "Fetch a study (C-GET or WADO-RS), edit one chest X-ray, write the edit as a new derived "
            "series of the same study and store it (C-STORE or STOW-RS). Prints the new SeriesInstanceUID. "
            "Nothing is left behind locally unless --output is given; on any error nothing is."
        ),
    )
    g = p.add_argument_group("PACS")
    where = g.add_mutually_exclusive_group(required=True)
    where.add_argument("--pacs", metavar="dimse://AET@HOST:PORT", help="DIMSE peer: C-FIND, C-GET, C-STORE")
    where.add_argument("--dicomweb", metavar="URL", help="DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
    g.add_argument("--aet", default=DEFAULT_AET, metavar="AET", help="our AE title (the PACS must know it) [default: %(default)s]")
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help="seconds to wait for a connection or an answer [default: %(default)s]")
    g.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID of the study to edit")
    g.add_argument("--select", metavar="UID",
                   help="SOPInstanceUID or SeriesInstanceUID of the image, when the study holds several")
    m = p.add_argument_group("masks")
    m.add_argument("--edit-mask", metavar="MASK",
                   help="where to edit: a PNG/NIfTI/NRRD/DICOM SEG file, or study:SEG_SERIES_UID[:segment label]")
    m.add_argument("--global-edit", action="store_true", help="no edit mask: edit everywhere (LANCE-style)")
    m.add_argument("--keep-mask", metavar="MASK", help="what must not change; same forms as --edit-mask")
    o = p.add_argument_group("derived series")
    o.add_argument("--series-description", metavar="TEXT", help="SeriesDescription of the new series [default: 'RadEdit: <first prompt>']")
    o.add_argument("--series-number", type=int, metavar="N", help="SeriesNumber of the new series [default: above the study's, >= 1000]")
    o.add_argument("--uid-root", metavar="ROOT", help="UID root for the new UIDs [default: pydicom's]")
    o.add_argument("--write-seg", action="store_true", help="also store the masks as a DICOM SEG")
    o.add_argument("--output", type=Path, metavar="DIR", help="also keep the stored series in this local folder (+ .json sidecar)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_edit_options(p)
    add_model_options(p)



def run(args) -> int:
    from ..pacs import run_pacs_edit  # noqa: PLC0415

    return run_pacs_edit(args, editor_from_args, settings_from_args)
