"""``radedit generate``: text-to-image samples as PNGs with a provenance file."""

from __future__ import annotations

from pathlib import Path

from .options import add_model_options
from .._version import __version__
from .common import editor_from_args


def add_parser(sub) -> None:
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
    add_model_options(p)



def run(args) -> int:
    from ..fileio import check_writable, write_json  # noqa: PLC0415
    from ..imaging.image import Geometry  # noqa: PLC0415
    from ..imaging.io import write_image  # noqa: PLC0415
    from ..workflow import model_image_to_array  # noqa: PLC0415

    out_dir = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(args.prompt) * args.num_images
    paths = [out_dir / f"sample_{k:03d}.png" for k in range(n)]
    for path in paths + [out_dir / "samples.json"]:
        check_writable(path, args.overwrite)
    editor = editor_from_args(args)
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
