#!/usr/bin/env bash
# Create the peer environment for the d3rlpy side-by-side offline benchmark (benchmarks/offline.py --peer).
# d3rlpy 2.8.1 runs on PyTorch; both live in their own virtual environment, never in jaxrl's dependencies.
# Usage: bash benchmarks/setup_d3rlpy_env.sh [VENV_DIR]      (default benchmarks/.venv-d3rlpy)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peer_env.sh"
make_venv "${1:-$HERE/.venv-d3rlpy}"
install_cpu_torch  # first, so d3rlpy (torch>=2.5 or so) does not replace it
"${PIP[@]}" install --quiet "d3rlpy==2.8.1" h5py
show_versions d3rlpy torch gymnasium numpy h5py
"$VENV/bin/python" -c 'import torch; print("torch CUDA build:", torch.version.cuda, "| threads:", torch.get_num_threads())'
echo "d3rlpy environment ready: $VENV/bin/python"
