#!/usr/bin/env bash
# Create .venv and install radedit_core with its test dependencies.
#
# torch is installed first and pinned, so that pip does not replace it with a
# multi-GB CUDA build: TORCH_SPEC defaults to the CPU build this project's CI
# uses; on a GPU machine install the CUDA build of your choice first (or set
# TORCH_SPEC) and it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "import torch, diffusers, transformers, monai; print('radedit_core ready: torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| monai', monai.__version__)"
