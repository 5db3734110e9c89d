#!/usr/bin/env bash
# Create the peer environment for the d3rlpy side-by-side offline benchmark (benchmarks/offline.py --peer).
# d3rlpy 2.8.1 runs on PyTorch; both live in their own virtual environment, never in jaxrl's dependencies.
# torch is the CPU build (2.13.0+cpu where the configured index has it, else plain 2.13.0).
# Usage: bash benchmarks/setup_d3rlpy_env.sh [VENV_DIR]      (default benchmarks/.venv-d3rlpy)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/.venv-d3rlpy}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip
# torch first, CPU build: the +cpu local version if an index/wheel directory offers it, else the CPU wheel index,
# else the default index's torch==2.13.0.
if ! "${PIP[@]}" install --quiet "torch==2.13.0+cpu" 2>/dev/null; then
  if ! "${PIP[@]}" install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
    "${PIP[@]}" install --quiet "torch==2.13.0"
  fi
fi
# d3rlpy must not replace the torch just installed (its requirement is torch>=2.5 or so).
"${PIP[@]}" install --quiet "d3rlpy==2.8.1" h5py
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
for p in ("d3rlpy", "torch", "gymnasium", "numpy", "h5py"):
    print(f"{p}=={md.version(p)}")
print("torch CUDA build:", torch.version.cuda, "| threads:", torch.get_num_threads())
PY
echo "d3rlpy environment ready: $VENV/bin/python"
