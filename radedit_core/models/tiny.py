"""A tiny RadEdit model for tests and the offline demo.

Same classes and folder layout as the published weights (diffusers
``UNet2DConditionModel`` and ``AutoencoderKL``, a transformers BERT text
encoder with a WordPiece tokenizer written from a local vocabulary, the model
card's DDIM scheduler), only small: the whole model is a few MB and runs an
edit in seconds on a laptop CPU.

:func:`write_tiny_model` writes the seeded random initialisation
(``--model tiny-random``); ``scripts/train_demo_model.py`` trains its UNet
and VAE on the phantom world (:mod:`radedit_core.phantom_world`), with the
text encoder frozen at this initialisation, into the bundled demo model
(``radedit_core/data/demo_model``, ``--model tiny``).  A random UNet is a
chaotic map that amplifies float rounding and a random VAE does not
reconstruct, so tests and the demo use the trained one.  Its edits do what
their prompts say on phantom-world images (``benchmarks/phantom_replication.py``
measures it), not on radiographs; point ``--model`` at the real weights for
those.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._version import __version__
from ..fileio import atomic_directory
from .catalog import (  # DEMO_MODEL_DIR, demo_model_dir and radedit_home stay importable from here
    DEMO_MODEL_DIR,
    RADEDIT_SCHEDULER,
    SPEC_FILENAME,
    TINY_VERSION,
    demo_model_dir,
    radedit_home,
    tiny_random_dir,
)

#: Paper-shaped configuration (App. 0.D) scaled down: 64x64 latents for 512
#: images, an epsilon UNet with cross-attention, four levels (64, 32, 16 and
#: 8 latent pixels) with text cross-attention and self-attention only at the
#: two coarsest (16x16 and 8x8) to keep CPU runs fast: the full-resolution
#: level stays at 16 channels (most of the cost), the coarse levels get the
#: capacity (channels 64) the phantom world's text-conditioned findings need.
#: The text also reaches every block through diffusers' ``addition_embed_type
#: "text"`` (an attention-pooled text embedding added to the timestep
#: embedding): with a frozen random text encoder and 128 mostly-padding token
#: states, cross-attention alone learns to read the report too slowly for a
#: CPU training budget (after 750 steps the prediction did not depend on the
#: text at all), the pooled path from the first steps.
TINY_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 32, 64, 64),
    layers_per_block=1,
    attention_head_dim=(1, 1, 1, 1),
    cross_attention_dim=32,
    addition_embed_type="text",
    addition_embed_type_num_heads=4,
    norm_num_groups=8,
)
#: SDXL-VAE-shaped (4 blocks, x8 downsampling, 4 latent channels, RGB in/out);
#: the full-resolution block stays narrow (cost), the coarse ones are wider
#: (the phantom world's fine lung markings and thin devices need the capacity).
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(16, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=512,
    scaling_factor=0.13025,
)
TINY_TEXT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
)

_WORDS = """
no acute cardiopulmonary process moderate mild severe small large pulmonary edema the heart
size is normal left right bilateral upper lower lobe consolidation new pectoral pacemaker in
place position of leads as expected otherwise unremarkable chest radiographic examination
pleural effusion effusions pneumothorax findings finding cardiomegaly atelectasis opacity
opacities nodule mass pneumonia tube drain line catheter with and or without a an are be has
have there lung lungs base bases apex mediastinum stable unchanged increased decreased
""".split()


def _vocabulary() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,;:-/()[]'\"%")
    pieces = [f"##{c}" for c in chars]
    words = list(dict.fromkeys(w for w in _WORDS if w not in chars))
    return specials + words + chars + pieces


def write_tiny_model(
    folder: str | Path,
    seed: int = 0,
    *,
    unet: dict | None = None,
    vae: dict | None = None,
    name: str | None = None,
) -> Path:
    """Write the tiny model into ``folder`` (created; must not exist).

    ``unet``/``vae``: other configurations of the same classes (default
    :data:`TINY_UNET`, :data:`TINY_VAE`; the tests' micro model is smaller);
    ``name``: the spec's model name.  Text encoder, tokenizer and scheduler are
    always the tiny model's.
    """
    import torch  # noqa: PLC0415 - only when a model is written
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: PLC0415
    from transformers import BertConfig, BertModel, BertTokenizerFast  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        UNet2DConditionModel(**(TINY_UNET if unet is None else unet)).save_pretrained(folder / "unet")
        torch.manual_seed(seed + 1)
        AutoencoderKL(**(TINY_VAE if vae is None else vae)).save_pretrained(folder / "vae")
        vocab = _vocabulary()
        torch.manual_seed(seed + 2)
        BertModel(BertConfig(vocab_size=len(vocab), **TINY_TEXT)).save_pretrained(folder / "text_encoder")
    finally:
        torch.random.set_rng_state(gen_state)
    tok_dir = folder / "tokenizer"
    tok_dir.mkdir()
    (tok_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # from_pretrained on a folder holding only vocab.txt builds the WordPiece
    # tokenizer the same way across transformers 4 and 5.
    BertTokenizerFast.from_pretrained(str(tok_dir), do_lower_case=True, model_max_length=128).save_pretrained(
        tok_dir
    )
    DDIMScheduler(**RADEDIT_SCHEDULER).save_pretrained(folder / "scheduler")
    spec = {
        "name": name or f"radedit-tiny-v{TINY_VERSION}",
        "unet": {"source": ".", "subfolder": "unet"},
        "vae": {"source": ".", "subfolder": "vae"},
        "text_encoder": {"source": ".", "subfolder": "text_encoder"},
        "tokenizer": {"source": ".", "subfolder": "tokenizer"},
        "scheduler": RADEDIT_SCHEDULER,
        "text": {"max_length": 128, "pass_attention_mask": False},
    }
    (folder / SPEC_FILENAME).write_text(json.dumps(spec, indent=2) + "\n")
    (folder / "README.md").write_text(
        f"Tiny RadEdit model (random weights, seed {seed}) written by radedit_core "
        f"{__version__} for tests and the offline demo. Not for research use.\n"
    )
    return folder


def ensure_tiny_model(seed: int = 0) -> Path:
    """Return the tiny model folder, writing it once (atomically) if absent."""
    folder = tiny_random_dir(seed)
    if (folder / SPEC_FILENAME).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_directory(folder) as tmp:
            tmp.rmdir()
            write_tiny_model(tmp, seed=seed)
    except Exception:
        # Another process may have written it meanwhile; that copy is as good.
        if (folder / SPEC_FILENAME).exists():
            return folder
        raise
    return folder


__all__ = [
    "DEMO_MODEL_DIR",
    "TINY_TEXT",
    "TINY_UNET",
    "TINY_VAE",
    "TINY_VERSION",
    "demo_model_dir",
    "ensure_tiny_model",
    "radedit_home",
    "write_tiny_model",
]
