#!/usr/bin/env bash
# The first thing to run on a GPU: every CUDA path of tokenclean once (bf16, fp16 + loss scaler, 4-bit QLoRA,
# scoring tokens/s and MFU, the memory plan vs the measured peak, lm-eval offline, a tiny study), in under
# 8 minutes with no internet; one JSON report in OUT (default gpu_check/gpu_check.json). Commit the report.
#   bash scripts/gpu_check.sh [--gpu H100] [--out DIR]      on a GPU
#   bash scripts/gpu_check.sh --dry                         the same code on the CPU at tiny sizes (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
case " $* " in *" --dry "*) export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1};; esac
exec timeout --signal=INT 480 "$PY" scripts/gpu_check.py "$@"
