"""Command-line options shared by the sub-commands (model, editing)."""

from __future__ import annotations

import argparse


def add_model_options(p: argparse.ArgumentParser, default_model: str = "radedit") -> None:
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


def add_edit_options(p: argparse.ArgumentParser) -> None:
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
