"""CORL's published D4RL (v2) Gym-MuJoCo scores, for the ordering column of the offline locomotion table.

Normalised score, mean over CORL's seeds, of their reproductions at 1M updates (CORL README, "D4RL Benchmarks",
the corl-team fork that added ReBRAC). ``last`` is the final evaluation, ``best`` the best over training. Algorithms
CORL does not implement (SAC-off, BEAR, BRAC, AWR, BCQ, MOPO, MOReL) have no entry. The simulator differs from
brax's, so only the ordering of algorithms on a dataset is comparable, never the values.
"""

from __future__ import annotations

# Column order of CORL's tables (our registry names); rows: env -> kind -> one score per column.
ALGOS = ("bc", "td3_bc", "awac", "cql", "iql", "rebrac", "sac_n", "edac")

LAST = {
    "halfcheetah": {
        "medium": (42.40, 48.10, 49.46, 47.04, 48.31, 64.04, 68.20, 67.70),
        "medium-replay": (35.66, 44.84, 44.70, 45.04, 44.46, 51.18, 60.70, 62.06),
        "medium-expert": (55.95, 90.78, 93.62, 95.63, 94.74, 103.80, 98.96, 104.76),
    },
    "hopper": {
        "medium": (53.51, 60.37, 74.45, 59.08, 67.53, 102.29, 40.82, 101.70),
        "medium-replay": (29.81, 64.42, 96.39, 95.11, 97.43, 94.98, 100.33, 99.66),
        "medium-expert": (52.30, 101.17, 52.73, 99.26, 107.42, 109.45, 101.31, 105.19),
    },
    "walker2d": {
        "medium": (63.23, 82.71, 66.53, 80.75, 80.91, 85.82, 87.47, 93.36),
        "medium-replay": (21.80, 85.62, 82.20, 73.09, 82.15, 84.25, 78.99, 87.10),
        "medium-expert": (98.96, 110.03, 49.41, 109.56, 111.72, 111.86, 114.93, 114.75),
    },
}

BEST = {
    "halfcheetah": {
        "medium": (43.60, 48.93, 50.06, 47.62, 48.84, 65.62, 72.21, 69.72),
        "medium-replay": (40.52, 45.84, 46.35, 46.43, 45.35, 52.22, 67.29, 66.55),
        "medium-expert": (79.69, 96.59, 96.11, 97.04, 95.38, 108.89, 111.73, 110.62),
    },
    "hopper": {
        "medium": (69.04, 70.44, 97.90, 70.80, 80.46, 103.19, 101.79, 103.26),
        "medium-replay": (68.88, 98.12, 100.91, 101.63, 102.69, 102.57, 103.83, 103.28),
        "medium-expert": (90.63, 113.22, 103.82, 112.84, 113.18, 113.16, 111.24, 111.80),
    },
    "walker2d": {
        "medium": (80.64, 86.91, 83.37, 84.77, 87.58, 87.79, 90.17, 95.78),
        "medium-replay": (48.41, 91.17, 86.51, 89.39, 89.94, 91.11, 85.18, 89.69),
        "medium-expert": (109.95, 112.21, 108.28, 111.63, 113.06, 112.49, 116.93, 116.52),
    },
}


def robot(env_name: str) -> str:
    """``brax:halfcheetah:positional`` -> ``halfcheetah``."""
    parts = env_name.split(":")
    return parts[1] if parts[0] == "brax" and len(parts) > 1 else parts[0]


def corl_score(env_name: str, kind: str, algo: str, stat: str = "last") -> float | None:
    """CORL's published score of ``algo`` on the D4RL dataset matching (``env_name``, ``kind``), or None."""
    table = LAST if stat == "last" else BEST
    rows = table.get(robot(env_name), {}).get(kind)
    if rows is None or algo not in ALGOS:
        return None
    return rows[ALGOS.index(algo)]
