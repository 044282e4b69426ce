"""Command-line options shared by the sub-commands (model, editing, generation).

Options are read as text and left ``None`` when not given: the settings layer
(:mod:`radedit_core.settings`) parses, checks and defaults them, exactly as it
does for the bundle and the worker, so the defaults shown here are its values.
"""

from __future__ import annotations

import argparse

from ..outputs import DicomOutputOptions
from ..settings import (
    DATALIST_RULE,
    DETAIL_HELP,
    EDIT_DEFAULTS,
    GENERATE_DEFAULTS,
    MODEL_DEFAULTS,
    EditSettings,
    GenerateSettings,
    ModelOptions,
    cli_name,
)

D = EDIT_DEFAULTS


def add_model_options(p: argparse.ArgumentParser, default_model: str = MODEL_DEFAULTS.model) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=default_model,
        help="'radedit' (published weights from the HF cache), 'tiny' (offline demo model), "
        "a model folder or a spec file (.json/.yaml) [default: %(default)s]",
    )
    g.add_argument("--device", help=f"auto, cpu, cuda, cuda:N [default: {MODEL_DEFAULTS.device}]")
    g.add_argument(
        "--dtype",
        help="UNet and text encoder precision: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16 "
        f"[default: {MODEL_DEFAULTS.dtype}]",
    )
    g.add_argument(
        "--vae-dtype",
        help=f"VAE precision: float32, bfloat16 (float16 overflows in the SDXL VAE) [default: {MODEL_DEFAULTS.vae_dtype}]",
    )
    g.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="allow the text encoder's custom code (BioViL-T) to run, from its pinned revision",
    )
    g.add_argument("--offline", action="store_true", default=None, help="never contact the hub (like HF_HUB_OFFLINE=1)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the UNet (GPU fast path)")


def add_split_option(p: argparse.ArgumentParser) -> None:
    """``--split``: which lists of a MONAI datalist are read (the one rule, :data:`~radedit_core.settings.DATALIST_RULE`)."""
    p.add_argument("--split", metavar="LIST[,LIST]", help=f"datalist lists to read: {DATALIST_RULE} [default: every list]")


def add_edit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("editing")
    g.add_argument("--prompt", action="append", required=True, help="edit prompt; repeat for several prompts")
    g.add_argument(
        "--guidance",
        action="append",
        help=f"guidance weight inside the edit mask; one for all prompts or one per prompt [default: {D.weights[0]:g}]",
    )
    g.add_argument("--steps", help=f"diffusion steps T, 1 to 1000 [default: {D.steps}]")
    g.add_argument("--skip-ratio", help=f"fraction of the steps skipped, in [0, 1) [default: {D.skip_ratio}]")
    g.add_argument("--invert-prompt", help="prompt of the inversion [default: '' (unconditional)]")
    g.add_argument("--invert-guidance", help=f"guidance of a non-empty invert prompt [default: {D.invert_guidance:g}]")
    g.add_argument("--eta", help=f"DDPM noise scale, in (0, 1] [default: {D.eta:g}]")
    g.add_argument("--seed", help=f"random seed, 0 to 2^63-1 [default: {D.seed}]")
    g.add_argument("--inversion", help=f"ddpm or ddim (the paper's ablation) [default: {D.inversion}]")
    g.add_argument(
        "--keep-mode",
        help="pixel: kept regions are copied from the source bit for bit; latent: the paper's latent paste "
        f"only [default: {D.keep_mode}]",
    )
    g.add_argument("--dilate", metavar="PX", help=f"dilate both masks by PX pixels (paper: 5) [default: {D.dilate}]")
    g.add_argument(
        "--keep-scope",
        help="what of the dilated keep mask is kept where it overlaps the edit mask: device (only the pixels that "
        "differ from the background around them, and the latent cells they dominate: no band of the finding "
        f"beside the device) or mask (all of it, the paper's rule) [default: {D.keep_scope}]",
    )
    g.add_argument("--soft-masks", action="store_true", default=None, help="treat masks as soft weights in [0, 1]")
    g.add_argument("--detail", help=f"{DETAIL_HELP} [default: {D.detail}]")
    g.add_argument(
        "--reference-compat",
        action="store_true",
        default=None,
        help="reproduce the released pipeline's keep-mask behaviour (see docs/method.md, 'Differences from the released pipeline')",
    )
    g.add_argument(
        "--inversion-batch-size",
        help="at most this many timesteps per UNet call when inverting [default: GPU: all in one call up to 256 "
        "samples; CPU: 8; 1 for a null edit, so that it is bit for bit]",
    )
    g.add_argument(
        "--jpeg-quality",
        metavar="Q",
        help="write a .jpg/.jpeg output at quality Q (1-100); required for JPEG output, which is lossy",
    )


def add_generate_options(p: argparse.ArgumentParser) -> None:
    G = GENERATE_DEFAULTS
    p.add_argument("--prompt", action="append", required=True, help="repeat for several images")
    p.add_argument("--steps", help=f"DDIM steps [default: {G.steps}]")
    p.add_argument("--guidance", help=f"classifier-free guidance [default: {G.guidance:g}]")
    p.add_argument("--negative-prompt", help="prompt of the unconditional branch [default: '']")
    p.add_argument("--num-images", help=f"images per prompt [default: {G.num_images}]")
    p.add_argument("--seed", help=f"random seed; image j of a prompt uses seed + j [default: {G.seed}]")
    p.add_argument("--bits", help=f"PNG bit depth, 8 or 16 [default: {G.bits}]")


_EDIT_KEYS = (
    "prompt", "guidance", "steps", "skip_ratio", "invert_prompt", "invert_guidance", "eta", "seed", "inversion",
    "keep_mode", "dilate", "keep_scope", "soft_masks", "detail", "reference_compat", "inversion_batch_size", "jpeg_quality",
)  # fmt: skip
_GENERATE_KEYS = ("prompt", "steps", "guidance", "negative_prompt", "num_images", "seed", "bits")
_MODEL_KEYS = ("model", "device", "dtype", "vae_dtype", "trust_remote_code", "offline", "compile")


def edit_settings_from_args(args: argparse.Namespace) -> EditSettings:
    """The parsed ``radedit edit``/``pacs-edit`` options as :class:`EditSettings` (ConfigError naming ``--option``)."""
    return EditSettings.from_mapping({k: getattr(args, k) for k in _EDIT_KEYS}, cli_name)


def generate_settings_from_args(args: argparse.Namespace) -> GenerateSettings:
    return GenerateSettings.from_mapping({k: getattr(args, k) for k in _GENERATE_KEYS}, cli_name)


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions.from_mapping({k: getattr(args, k) for k in _MODEL_KEYS}, cli_name)


def dicom_options_from_args(args: argparse.Namespace):
    """The derived-series options (``--uid-root``, ``--series-number``, ``--series-description``, ``--write-seg``)."""
    keys = ("uid_root", "series_number", "series_description", "write_seg")
    return DicomOutputOptions.from_mapping({k: getattr(args, k) for k in keys}, cli_name)
