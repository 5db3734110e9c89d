#!/usr/bin/env bash
# Create the peer environment for the rejax side-by-side benchmark (benchmarks/throughput.py).
# rejax 0.1.3 needs the old gymnax (<1, five-value step API), so it lives in its own virtual environment,
# never in jaxrl's dependencies. Usage: bash benchmarks/setup_rejax_env.sh [VENV_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/.venv-rejax}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# rejax 0.1.3 pins nothing tight; gymnax<1 is the one constraint that matters (see shared STACK.md).
"$VENV/bin/python" -m pip install --quiet "rejax==0.1.3" "gymnax<1" six
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for p in ("rejax", "gymnax", "jax", "jaxlib", "flax", "optax"):
    print(f"{p}=={md.version(p)}")
PY
echo "rejax environment ready: $VENV/bin/python"
