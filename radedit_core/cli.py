"""The ``radedit`` command line: edit, generate, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from ._version import __version__
from .errors import RadEditError

log = logging.getLogger("radedit")


def _quiet_libraries() -> None:
    # Library chatter (load reports, dtype notes) drowns the one line users need.
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as dlog  # noqa: PLC0415
        from transformers.utils import logging as tlog  # noqa: PLC0415

        dlog.set_verbosity_error()
        tlog.set_verbosity_error()
        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
    except ImportError:
        pass


def _add_model_options(p: argparse.ArgumentParser, default_model: str = "radedit") -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=default_model,
        help="'radedit' (published weights from the HF cache), 'tiny' (offline demo model), "
        "a model folder or a spec file (.json/.yaml) [default: %(default)s]",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N [default: auto]")
    g.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="UNet and text encoder precision; auto = bf16 on GPU, fp32 on CPU",
    )
    g.add_argument("--vae-dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    g.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the text encoder's custom code (BioViL-T) to run, from its pinned revision",
    )
    g.add_argument("--offline", action="store_true", help="never contact the hub (like HF_HUB_OFFLINE=1)")
    g.add_argument("--compile", action="store_true", help="torch.compile the UNet (GPU fast path)")


def _add_edit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("editing")
    g.add_argument("--prompt", action="append", required=True, help="edit prompt; repeat for several prompts")
    g.add_argument(
        "--guidance",
        action="append",
        type=float,
        help="guidance weight inside the edit mask; one for all prompts or one per prompt [default: 15]",
    )
    g.add_argument("--steps", type=int, default=200, help="diffusion steps T [default: 200]")
    g.add_argument("--skip-ratio", type=float, default=0.3, help="fraction of steps skipped [default: 0.3]")
    g.add_argument("--invert-prompt", default="", help="prompt of the inversion [default: '' (unconditional)]")
    g.add_argument("--invert-guidance", type=float, default=3.5, help="guidance of a non-empty invert prompt")
    g.add_argument("--eta", type=float, default=1.0, help="DDPM noise scale [default: 1]")
    g.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    g.add_argument("--inversion", choices=["ddpm", "ddim"], default="ddpm")
    g.add_argument(
        "--keep-mode",
        choices=["latent", "pixel"],
        default="latent",
        help="pixel: also copy source pixels inside the keep mask after decoding (bit-identical)",
    )
    g.add_argument("--dilate", type=int, default=0, metavar="PX", help="dilate both masks by PX pixels (paper: 5)")
    g.add_argument("--soft-masks", action="store_true", help="treat masks as soft weights in [0, 1]")
    g.add_argument(
        "--detail",
        choices=["outside-edit", "everywhere", "none"],
        default="outside-edit",
        help="where the source's full-resolution detail is kept when mapping back",
    )
    g.add_argument(
        "--reference-compat",
        action="store_true",
        help="reproduce the released pipeline's keep-mask behaviour (see README)",
    )
    g.add_argument("--inversion-batch-size", type=int, default=None, help="timesteps per UNet call when inverting")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radedit",
        description="RadEdit: mask-constrained diffusion editing of chest X-rays for stress-testing models.",
    )
    parser.add_argument("--version", action="version", version=f"radedit_core {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("edit", help="edit one image inside a mask")
    p.add_argument("--image", required=True, type=Path, help="PNG, NIfTI, NRRD or DICOM input")
    p.add_argument("--edit-mask", type=Path, help="where to edit (same grid as the image)")
    p.add_argument("--global-edit", action="store_true", help="no edit mask: edit everywhere (LANCE-style)")
    p.add_argument("--keep-mask", type=Path, help="what must not change (devices, markers)")
    p.add_argument("--output", required=True, type=Path, help="output file (.png/.nii.gz/.nrrd)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_edit_options(p)
    _add_model_options(p)

    p = sub.add_parser("generate", help="text-to-image sampling")
    p.add_argument("--prompt", action="append", required=True, help="repeat for several images")
    p.add_argument("--output", required=True, type=Path, help="output folder for PNGs")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bits", type=int, choices=[8, 16], default=8, help="PNG bit depth")
    p.add_argument("--overwrite", action="store_true")
    _add_model_options(p)

    from .pacs import add_pacs_parser  # noqa: PLC0415 - lives with the PACS code

    add_pacs_parser(sub, _add_edit_options, _add_model_options)

    p = sub.add_parser("demo", help="offline demo: tiny model on the bundled sample image")
    p.add_argument("--output", type=Path, default=Path("radedit-demo"), help="output folder [default: %(default)s]")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--overwrite", action="store_true")
    _add_model_options(p, default_model="tiny")
    return parser


def _editor(args):
    from .workflow import RadEditor  # noqa: PLC0415 - torch import only when needed

    return RadEditor.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        vae_dtype=args.vae_dtype,
        trust_remote_code=args.trust_remote_code,
        local_files_only=True if args.offline else None,
        compile_unet=args.compile,
    )


def _settings(args):
    from .workflow import EditSettings  # noqa: PLC0415

    guidance = args.guidance
    if guidance and len(guidance) == 1:
        guidance = guidance * len(args.prompt)
    return EditSettings(
        prompts=args.prompt,
        weights=guidance,
        steps=args.steps,
        skip_ratio=args.skip_ratio,
        invert_prompt=args.invert_prompt,
        invert_guidance=args.invert_guidance,
        eta=args.eta,
        seed=args.seed,
        inversion=args.inversion,
        keep_mode=args.keep_mode,
        dilate=args.dilate,
        soft_masks=args.soft_masks,
        detail=args.detail,
        reference_compat=args.reference_compat,
        inversion_batch_size=args.inversion_batch_size,
    )


def cmd_edit(args) -> int:
    from .errors import ConfigError  # noqa: PLC0415
    from .workflow import edit_file  # noqa: PLC0415

    if args.edit_mask is None and not args.global_edit:
        raise ConfigError("give --edit-mask, or --global-edit to edit the whole image")
    if args.edit_mask is not None and args.global_edit:
        raise ConfigError("--edit-mask and --global-edit exclude each other")
    settings = _settings(args)
    editor = _editor(args)
    editor.set_progress(not args.quiet)
    result = edit_file(
        editor,
        args.image,
        args.output,
        settings,
        edit_mask_path=args.edit_mask,
        keep_mask_path=args.keep_mask,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.output} ({result.unet_evaluations} UNet evaluations, "
        f"{result.timings['total']:.1f} s, {result.provenance['result']['changed_pixels']} pixels changed)"
    )
    return 0


def cmd_generate(args) -> int:
    from .fileio import check_writable, write_json  # noqa: PLC0415
    from .imaging.image import Geometry  # noqa: PLC0415
    from .imaging.io import write_image  # noqa: PLC0415
    from .workflow import model_image_to_array  # noqa: PLC0415

    out_dir = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(args.prompt) * args.num_images
    paths = [out_dir / f"sample_{k:03d}.png" for k in range(n)]
    for path in paths + [out_dir / "samples.json"]:
        check_writable(path, args.overwrite)
    editor = _editor(args)
    editor.set_progress(not args.quiet)
    out = editor.generate(
        args.prompt,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        num_images_per_prompt=args.num_images,
    )
    for path, image in zip(paths, out.images):
        write_image(path, model_image_to_array(image, args.bits), Geometry(), overwrite=args.overwrite)
    write_json(
        out_dir / "samples.json",
        {
            "tool": "radedit_core",
            "version": __version__,
            "model": editor.components.provenance(),
            "settings": {
                "steps": args.steps,
                "guidance": args.guidance,
                "negative_prompt": args.negative_prompt,
                "seed": args.seed,
                "scheduler": "DDIM, eta 0",
            },
            "samples": [{"path": p.name, "prompt": pr} for p, pr in zip(paths, out.prompts)],
            "timings_s": out.timings,
        },
    )
    print(f"wrote {n} images to {out_dir}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo  # noqa: PLC0415

    editor = _editor(args)
    editor.set_progress(not args.quiet)
    written = run_demo(editor, args.output, steps=args.steps, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_pacs_edit(args) -> int:
    from .pacs import run_pacs_edit  # noqa: PLC0415

    return run_pacs_edit(args, _editor, _settings)


COMMANDS = {"edit": cmd_edit, "generate": cmd_generate, "demo": cmd_demo, "pacs-edit": cmd_pacs_edit}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    _quiet_libraries()
    if args.quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return COMMANDS[args.command](args)
    except RadEditError as exc:
        print(f"radedit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("radedit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
