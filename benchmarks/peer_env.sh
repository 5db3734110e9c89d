# Shared steps of the peer-environment scripts (setup_rejax_env.sh, setup_torch_env.sh, setup_d3rlpy_env.sh):
# each peer library lives in its own virtual environment, never in jaxrl's dependencies. Sourced, not run.

# make_venv DIR: create DIR as a virtual environment (once) with an up-to-date pip; sets VENV and PIP.
make_venv() {
  VENV="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  PIP=("$VENV/bin/python" -m pip)
  "${PIP[@]}" install --quiet --upgrade pip
}

# install_cpu_torch: torch 2.13.0, the CPU build: the +cpu local version where an index or wheel directory offers
# it, else PyTorch's CPU wheel index, else the default index's torch==2.13.0.
install_cpu_torch() {
  if ! "${PIP[@]}" install --quiet "torch==2.13.0+cpu" 2>/dev/null; then
    if ! "${PIP[@]}" install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
      "${PIP[@]}" install --quiet "torch==2.13.0"
    fi
  fi
}

# show_versions PKG...: print the installed version of each package (what a benchmark report records).
show_versions() {
  "$VENV/bin/python" - "$@" <<'PY'
import importlib.metadata as md
import sys
for p in sys.argv[1:]:
    try:
        print(f"{p}=={md.version(p)}")
    except md.PackageNotFoundError:
        print(f"{p}: not installed")
PY
}
