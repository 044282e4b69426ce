#!/usr/bin/env bash
# Create .venv and install radedit_core with its test dependencies.
#
# torch and torchvision are installed first, as one pair that imports together
# (PyPI's torchvision does not import beside a CPU-only build of torch): the
# paper's editing score (BioViL-T) and the classifier libraries researchers use
# need torchvision, so the default install has both. TORCH_SPEC overrides the
# pair; an environment that already imports torch and torchvision together
# (a CUDA build of your choice installed into .venv beforehand) is kept, and
# TORCH_SPEC=keep keeps an installed torch even without torchvision (then the
# editing score and the torchvision-based predictors report "unavailable").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$TORCH_SPEC" != keep ] && ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    # word splitting is wanted: TORCH_SPEC names several requirements
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install --quiet $TORCH_SPEC
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python - <<'PY'
import importlib.util

import diffusers
import monai
import torch
import transformers

tv = "not installed (the editing score and torchvision-based predictors are unavailable)"
if importlib.util.find_spec("torchvision") is not None:
    import torchvision

    tv = torchvision.__version__
print("radedit_core ready: torch", torch.__version__, "| torchvision", tv, "| diffusers", diffusers.__version__,
      "| transformers", transformers.__version__, "| monai", monai.__version__)
PY
