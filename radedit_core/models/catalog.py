"""The models radedit knows by name, and where they live.

``--model`` accepts a name from :data:`NAMED_MODELS`, a model folder or a spec
file.  The names:

* ``radedit``: the published weights (microsoft/radedit UNet, SDXL VAE,
  BioViL-T text encoder) at the pinned revisions below, from the Hugging Face
  hub or its cache;
* ``tiny``: the bundled demo model, :data:`DEMO_MODEL_DIR` (the tiny
  architecture of :mod:`radedit_core.models.tiny` trained on the phantom world by
  ``scripts/train_demo_model.py``);
* ``tiny-random``: that architecture's seeded random initialisation, written
  once into :func:`radedit_home` (``models/tiny-v<version>-seed<seed>``).

Both :mod:`radedit_core.models.spec` (which resolves a name to a spec) and
:mod:`radedit_core.models.tiny` (which writes the tiny model) import this
module; it imports neither.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelNotFoundError

#: What ``--model`` accepts by name.
NAMED_MODELS = ("radedit", "tiny", "tiny-random")
#: The spec file a model folder may hold (:meth:`radedit_core.models.spec.ModelSpec.from_folder`).
SPEC_FILENAME = "radedit_model.json"

# Commits of the published weights, pinned so that a cache or a download always
# resolves to the files this code was written against.  They are the revisions
# recorded for these repositories in public RadEdit reproduction code; override
# them in a spec file if your snapshot is another one.
RADEDIT_REVISION = "e8ebd31396ff8553c34084b98b5defb8ebea2817"
SDXL_VAE_REVISION = "6f5909a7e596173e25d4e97b07fd19cdf9611c76"
BIOVIL_T_REVISION = "692f09e9be1bfe5fdd5f3efdd0e1eca7d2c10b23"

#: The model card's DDIMScheduler settings.  Everything else is the diffusers
#: default: 1000 training steps and Ho et al.'s linear betas 1e-4..0.02 (the
#: paper's "linear schedule", App. 0.D), not Stable Diffusion's 0.00085..0.012.
RADEDIT_SCHEDULER = {
    "beta_schedule": "linear",
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
}

#: The bundled demo model (``--model tiny``), written by scripts/train_demo_model.py.
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "demo_model"

TINY_VERSION = 4  # bump when the tiny architecture or initialisation changes


def radedit_home() -> Path:
    """Where generated models live: $RADEDIT_HOME or ~/.cache/radedit."""
    return Path(os.environ.get("RADEDIT_HOME", Path.home() / ".cache" / "radedit")).expanduser()


def tiny_random_dir(seed: int = 0) -> Path:
    """The folder of ``tiny-random`` with ``seed`` (it may not be written yet)."""
    return radedit_home() / "models" / f"tiny-v{TINY_VERSION}-seed{seed}"


def demo_model_dir() -> Path:
    """The bundled demo model folder (``--model tiny``).

    Raises:
        ModelNotFoundError: the installation lacks it.
    """
    if not (DEMO_MODEL_DIR / SPEC_FILENAME).exists():
        raise ModelNotFoundError(
            f"{DEMO_MODEL_DIR}: the bundled demo model is missing from this installation; "
            "reinstall radedit_core or write it with scripts/train_demo_model.py --out <folder> "
            "and pass --model <folder>"
        )
    return DEMO_MODEL_DIR
