#!/usr/bin/env bash
# Create the peer environment for the MAML side-by-side benchmark (benchmarks/maml.py --peer):
# PyTorch 2.13.0 (CPU build) + torchopt 0.7.3, in its own virtual environment, never a jaxrl dependency.
# (learn2learn 0.2.0, the other common PyTorch MAML library, does not build on Python 3.11.)
# Usage: bash benchmarks/setup_torch_env.sh [VENV_DIR]      default: benchmarks/.venv-torch
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peer_env.sh"
make_venv "${1:-$HERE/.venv-torch}"
install_cpu_torch
"${PIP[@]}" install --quiet "torchopt==0.7.3"
show_versions torch torchopt optree numpy
"$VENV/bin/python" -c 'import torch; print("torch threads:", torch.get_num_threads(), "cuda:", torch.cuda.is_available())'
echo "torch environment ready: $VENV/bin/python"
