#!/usr/bin/env bash
# One prepared accelerator check (benchmarks/gpu.py): install, then measure within about 8 minutes.
#
#   bash benchmarks/gpu.sh                     # any GPU machine with internet: pip installs jaxrl (+ jax[cuda12])
#   bash benchmarks/gpu.sh --wheels .whl       # offline: jax already there, the missing wheels in .whl
#   bash benchmarks/gpu.sh --dry-run           # tiny sizes on any machine (the integration stage runs this)
#
# Other arguments go to benchmarks/gpu.py (--budget, --sections, --out, --peer-python ...). PYTHON picks the
# interpreter (default python3). The table lands in benchmarks/results/gpu_<device>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$2; shift 2 ;;
    --no-install) NO_INSTALL=1; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
t0=$(date +%s)
if [ -z "${NO_INSTALL:-}" ]; then
  if [ -n "$WHEELS" ]; then
    # no registry reachable: the wheels jax's image lacks go to a side directory, jaxrl itself without its deps
    site=${TMPDIR:-/tmp}/jaxrl-gpu-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .
  elif [[ " ${ARGS[*]-} " != *" --dry-run "* ]] && command -v nvidia-smi >/dev/null \
       && ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
    "$PY" -m pip install -q -e . "jax[cuda12]>=0.11.2" torchopt
  else
    "$PY" -m pip install -q -e .
  fi
fi
echo "install: $(( $(date +%s) - t0 )) s"
nvidia-smi 2>/dev/null | head -15 || true
"$PY" benchmarks/gpu.py ${ARGS[@]+"${ARGS[@]}"}
echo "gpu.sh total: $(( $(date +%s) - t0 )) s"
