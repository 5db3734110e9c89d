"""Published scores the offline locomotion table is set beside: CORL's D4RL reproductions and the lecture's
model-based table. The simulator differs from brax's, so only the ordering of algorithms on a dataset is comparable,
never the values.

* ``CORL``: CORL's published D4RL (v2) Gym-MuJoCo scores, normalised, mean over CORL's seeds, of their
  reproductions at 1M updates (CORL README, "D4RL Benchmarks", the corl-team fork that added ReBRAC). ``last`` is
  the final evaluation, ``best`` the best over training. CORL does not implement SAC-off, BEAR, BRAC, AWR, BCQ,
  MOPO or MOReL.
* ``LECTURE``: the lecture's model-based table (the MOPO paper's Table 1, D4RL v0; ``mixed`` is medium-replay;
  the means, without their spreads), for BC, MOPO, SAC-off ("SAC" there: SAC on the offline data), BEAR and
  BRAC-v. Its MBPO column has no counterpart in jaxrl and is left out. Final scores only.
"""

from __future__ import annotations

from dataclasses import dataclass

# CORL's columns: the order of CORL's tables (our registry names); rows: env -> kind -> one score per column.
CORL_ALGOS = ("bc", "td3_bc", "awac", "cql", "iql", "rebrac", "sac_n", "edac")

CORL_LAST = {
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

CORL_BEST = {
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


@dataclass(frozen=True)
class Reference:
    """One published table: ``label`` names it in columns, ``title`` in headings; ``algos`` are its columns (our
    registry names); ``last`` (and ``best``, where it reports one) map robot -> dataset kind -> one score per column."""

    title: str
    label: str
    algos: tuple[str, ...]
    last: dict[str, dict[str, tuple[float, ...]]]
    best: dict[str, dict[str, tuple[float, ...]]] | None = None

    def score(self, env_name: str, kind: str, algo: str, stat: str = "last") -> float | None:
        """The published score of ``algo`` on the dataset matching (``env_name``, ``kind``), or None."""
        table = self.last if stat == "last" else self.best
        rows = (table or {}).get(robot(env_name), {}).get(kind)
        if rows is None or algo not in self.algos:
            return None
        return rows[self.algos.index(algo)]


CORL = Reference("CORL's D4RL scores", "CORL", CORL_ALGOS, CORL_LAST, CORL_BEST)

# The lecture's (MOPO's Table 1) columns BC, MOPO, SAC, BEAR, BRAC-v; robot -> kind -> scores.
LECTURE = Reference(
    "the lecture's model-based table (MOPO, Table 1)",
    "lecture",
    ("bc", "mopo", "sac_offline", "bear", "brac_v"),
    {
        "halfcheetah": {
            "random": (2.1, 31.9, 30.5, 25.5, 28.1),
            "medium": (36.1, 40.2, -4.3, 38.6, 45.5),
            "medium-replay": (38.4, 54.0, -2.4, 36.2, 45.9),
            "medium-expert": (35.8, 57.9, 1.8, 51.7, 45.3),
        },
        "hopper": {
            "random": (1.6, 13.3, 11.3, 9.5, 12.0),
            "medium": (29.0, 26.5, 0.8, 47.6, 32.3),
            "medium-replay": (11.8, 92.5, 1.9, 10.8, 0.9),
            "medium-expert": (111.9, 51.7, 1.6, 4.0, 0.8),
        },
        "walker2d": {
            "random": (9.8, 13.0, 4.1, 6.7, 0.5),
            "medium": (6.6, 14.0, 0.9, 33.2, 81.3),
            "medium-replay": (11.3, 42.7, 3.5, 25.3, 0.8),
            "medium-expert": (6.4, 55.0, -0.1, 26.0, 66.6),
        },
    },
)
