"""``radedit pacs-edit``: options of the PACS round trip (the work is :mod:`radedit_core.pacs.command`)."""

from __future__ import annotations

import sys

from ..errors import ConfigError
from ..pacs import PacsServer
from ..pacs.round_trip import pacs_edit, prepare_pacs_edit
from ..pacs.server import DEFAULT_AET, DEFAULT_TIMEOUT
from ..settings import coerce
from .common import load_editor
from .options import (
    add_edit_options,
    add_model_options,
    dicom_options_from_args,
    edit_settings_from_args,
    model_options_from_args,
)


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
    g.add_argument("--timeout", default=DEFAULT_TIMEOUT, metavar="S",
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
    o.add_argument("--series-number", metavar="N", help="SeriesNumber of the new series [default: above the study's, >= 1000]")
    o.add_argument("--uid-root", metavar="ROOT", help="UID root for the new UIDs [default: pydicom's]")
    o.add_argument("--write-seg", action="store_true", help="also store the masks as a DICOM SEG")
    o.add_argument("--output", metavar="DIR", help="also keep the stored series in this local folder (+ .json sidecar)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_edit_options(p)
    add_model_options(p)



def run(args) -> int:
    # Everything that can be checked without the network is checked first.
    settings = edit_settings_from_args(args)
    model = model_options_from_args(args)
    timeout = coerce("--timeout", args.timeout, "float")
    if args.pacs is not None:
        if not args.pacs.startswith("dimse://"):
            raise ConfigError(f"--pacs {args.pacs!r}: expected dimse://AET@host:port (use --dicomweb for URLs)")
        server = PacsServer.parse(args.pacs, calling_aet=args.aet, timeout=timeout)
    else:
        if not args.dicomweb.startswith(("http://", "https://")):
            raise ConfigError(f"--dicomweb {args.dicomweb!r}: expected an http(s):// URL")
        server = PacsServer(url=args.dicomweb, timeout=timeout)
    dicom = dicom_options_from_args(args)
    request = prepare_pacs_edit(
        server, args.study, settings, select=args.select, edit_mask=args.edit_mask, keep_mask=args.keep_mask,
        global_edit=args.global_edit, dicom=dicom, output=args.output, overwrite=args.overwrite,
    )  # fmt: skip
    done = pacs_edit(request, lambda: load_editor(model, quiet=args.quiet))
    if not args.quiet:
        print(
            f"stored {len(done.stored)} instance(s) as series {done.new_series} in study {request.study_uid} on "
            f"{server} ({done.result.unet_evaluations} UNet evaluations, {done.result.timings['total']:.1f} s)",
            file=sys.stderr,
        )
    print(done.new_series)
    return 0
