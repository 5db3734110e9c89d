#!/usr/bin/env bash
# One occasion of the peer comparisons (issue 18; benchmarks/results/occasions/README.md), run the way occasions 6-8
# and the pinned ones were:
#   bash benchmarks/occasion.sh offline ppo            # 2 cores; every other python process paused (SIGSTOP) meanwhile
#   bash benchmarks/occasion.sh --pinned offline ppo   # both libraries on core 0, every other process pinned to core 1
# Needs root (autogroup, taskset of other processes) and the peer venvs: REJAX_PY, D3RLPY_PY (defaults below).
set -euo pipefail
cd "$(dirname "$0")/.."
REJAX_PY=${REJAX_PY:-/work/peer-rejax/bin/python}
D3RLPY_PY=${D3RLPY_PY:-/work/peer-d3rlpy/bin/python}
PINNED=0
if [ "${1:-}" = "--pinned" ]; then PINNED=1; shift; fi
# with autogroup on, nice orders processes only within a session: a nice-19 job elsewhere takes an equal share
echo 0 > /proc/sys/kernel/sched_autogroup_enabled || echo "note: could not turn autogroup off" >&2
TAG=$(date -u +%Y-%m-%d_%H%M)
MINE="offline.py|throughput.py|d3rlpy_offline|rejax_throughput"
others() { for p in $(pgrep -f python || true); do grep -qE "$MINE" "/proc/$p/cmdline" 2>/dev/null || echo "$p"; done; }
if [ $PINNED = 1 ]; then
    for p in $(ps -eo pid=); do [ "$p" = "$$" ] || taskset -a -p -c 1 "$p" >/dev/null 2>&1 || true; done
    taskset -p -c 0,1 $$ >/dev/null
    RUN=(taskset -c 0 python); SUFFIX=1core
    trap 'for p in $(ps -eo pid=); do taskset -a -p -c 0,1 "$p" >/dev/null 2>&1 || true; done' EXIT
else
    ( while [ ! -f "/tmp/occasion.$$.done" ]; do for p in $(others); do kill -STOP "$p" 2>/dev/null || true; done; sleep 2; done ) &
    GUARD=$!
    RUN=(python); SUFFIX=""
    trap 'touch /tmp/occasion.$$.done; kill $GUARD 2>/dev/null || true; sleep 3; for p in $(others); do kill -CONT "$p" 2>/dev/null || true; done; rm -f /tmp/occasion.$$.done' EXIT
fi
if [ $# -eq 0 ]; then set -- offline ppo; fi
for what in "$@"; do
    case $what in
    offline) "${RUN[@]}" benchmarks/offline.py --peer --peer-algos bc,iql,td3_bc --no-registry --no-grid --rounds 3 \
        --peer-python "$D3RLPY_PY" --peer-threads 1 --out "benchmarks/results/occasions/offline${SUFFIX}_$TAG" ;;
    ppo) "${RUN[@]}" benchmarks/throughput.py --quick --algos ppo --runs 1 64 256 --no-returns --rounds 3 \
        --peer-python "$REJAX_PY" --out "benchmarks/results/occasions/ppo${SUFFIX}_$TAG" ;;
    *) echo "unknown comparison $what: offline or ppo" >&2; exit 2 ;;
    esac
done
