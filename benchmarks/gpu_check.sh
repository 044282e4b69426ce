#!/usr/bin/env bash
# Issue #12's GPU checks and figures in one run: a few minutes on one H100/H200-class GPU.
#
# Runs in a minimal CUDA Python environment: python3 with a CUDA build of torch and with
# transformers. diffusers is installed from a carried wheel when it is missing; build the carry
# folder once, on a machine that reaches a package index, in the repository root:
#
#     python3 -m pip download --no-deps --only-binary=:all: -d carry diffusers==0.42.1
#
# (carry/ is git-ignored: name it in the device tool's `carry`, or copy it along.)
# tensorrt, polygraphy and MONAI are optional: without them the TensorRT figure says "skipped".
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]     # default OUT_DIR: $OUT, else gpu-check-out/
#
# It prints, and writes to OUT_DIR/edit_speed.json and OUT_DIR/gpu_check.log:
#   1. the GPU, the driver and the library versions;
#   2. that the pipelines import no imaging, DICOM or MONAI module;
#   3. benchmarks/edit_speed.py on paper-sized networks (T=200, skip 0.3): the reference-style edit,
#      one fast edit, a batch of BATCH (default 8), TensorRT where installed; seconds per edit,
#      edits per second, UNet calls, peak memory, share of the measured bf16 matrix peak, PSNR
#      against float32 with the same noise, host syncs inside the step loop, compiled graphs (two
#      shapes: the single edit's step call and the batch's), recompilations after warm-up (an
#      error if any), and the issue's targets met or not.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu-check-out}}
BATCH=${BATCH:-8}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== 1. machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
if ! "$PY" -c "import diffusers" 2>/dev/null; then
    shopt -s nullglob
    wheels=(carry/*.whl)
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "diffusers is not installed and carry/ holds no wheel: see the top of this script" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/radedit-site "${wheels[@]}"
    export PYTHONPATH=/tmp/radedit-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" - <<'EOF'
import sys, torch, transformers, diffusers
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, diffusers {diffusers.__version__}")
assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF

echo "== 2. the pipelines import no imaging, DICOM or MONAI module"
"$PY" - <<'EOF'
import sys
import radedit_core.pipelines.pipeline_radedit, radedit_core.pipelines.tensorrt  # noqa: F401
bad = sorted(m for m in sys.modules if m.startswith(("radedit_core.imaging", "radedit_core.dicom", "monai")))
assert not bad, f"imported: {bad}"
print("ok")
EOF

echo "== 3. figures (paper-sized networks, random weights)"
timeout 540 "$PY" benchmarks/edit_speed.py --arch paper --device cuda --batch "$BATCH" --steps 200 --skip-ratio 0.3 \
    --repeats 3 --json "$OUT_DIR/edit_speed.json"
echo "== done: $OUT_DIR/edit_speed.json"
