#!/usr/bin/env bash
# Create the peer environment for the rejax side-by-side benchmark (benchmarks/throughput.py).
# rejax 0.1.3 needs the old gymnax (<1, five-value step API), so it lives in its own virtual environment,
# never in jaxrl's dependencies. Usage: bash benchmarks/setup_rejax_env.sh [VENV_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peer_env.sh"
make_venv "${1:-$HERE/.venv-rejax}"
# rejax 0.1.3 pins nothing tight; gymnax<1 is the one constraint that matters (see shared STACK.md).
# jax/jaxlib pinned to jaxrl's tested baseline, so a side-by-side run compares the libraries, not two XLA versions
# (left alone, pip resolves the newest jax, which jaxrl's gymnax 1.0.1 does not allow).
"${PIP[@]}" install --quiet "rejax==0.1.3" "gymnax<1" six "jax==0.11.2" "jaxlib==0.11.2"
show_versions rejax gymnax jax jaxlib flax optax
echo "rejax environment ready: $VENV/bin/python"
