#!/usr/bin/env bash
# Create the peer environment for the MAML side-by-side benchmark (benchmarks/maml.py --peer):
# PyTorch 2.13.0 (CPU build) + torchopt 0.7.3, in its own virtual environment, never a jaxrl dependency.
# (learn2learn 0.2.0, the other common PyTorch MAML library, does not build on Python 3.11.)
# Usage: bash benchmarks/setup_torch_env.sh [VENV_DIR]      default: benchmarks/.venv-torch
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/.venv-torch}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The CPU build: a local wheel "torch==2.13.0+cpu" where one is available (find-links), else the index's
# torch==2.13.0 from the PyTorch CPU index.
if ! "$VENV/bin/python" -m pip install --quiet "torch==2.13.0+cpu"; then
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
"$VENV/bin/python" -m pip install --quiet "torchopt==0.7.3"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
for p in ("torch", "torchopt", "optree", "numpy"):
    try:
        print(f"{p}=={md.version(p)}")
    except md.PackageNotFoundError:
        print(f"{p}: not installed")
print("torch threads:", torch.get_num_threads(), "cuda:", torch.cuda.is_available())
PY
echo "torch environment ready: $VENV/bin/python"
