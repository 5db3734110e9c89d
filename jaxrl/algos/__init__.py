"""Algorithm registry: ``get(name)`` returns the module with ``Config`` and ``make``."""

from __future__ import annotations

import importlib
from types import ModuleType

from jaxrl.config import close_matches

# name -> (module path, default environment)
ALGORITHMS: dict[str, tuple[str, str]] = {
    "ppo": ("jaxrl.algos.single.ppo", "CartPole-v1"),
    "sac": ("jaxrl.algos.single.sac", "Pendulum-v1"),
    # offline (train on a dataset: `--dataset FILE`; the env is the dataset's env, used for evaluation)
    "bc": ("jaxrl.algos.offline.bc", "Pendulum-v1"),
    "sac_offline": ("jaxrl.algos.offline.sac_offline", "Pendulum-v1"),
    "iql": ("jaxrl.algos.offline.iql", "Pendulum-v1"),
    "cql": ("jaxrl.algos.offline.cql", "Pendulum-v1"),
    "td3_bc": ("jaxrl.algos.offline.td3_bc", "Pendulum-v1"),
    "awac": ("jaxrl.algos.offline.awac", "Pendulum-v1"),
    "brac_p": ("jaxrl.algos.offline.brac_p", "Pendulum-v1"),
    "brac_v": ("jaxrl.algos.offline.brac_v", "Pendulum-v1"),
    "bear": ("jaxrl.algos.offline.bear", "Pendulum-v1"),
    "mopo": ("jaxrl.algos.offline.mopo", "Pendulum-v1"),
    "morel": ("jaxrl.algos.offline.morel", "Pendulum-v1"),
    "awr": ("jaxrl.algos.offline.awr", "Pendulum-v1"),
    "crr": ("jaxrl.algos.offline.crr", "Pendulum-v1"),
    "rebrac": ("jaxrl.algos.offline.rebrac", "Pendulum-v1"),
    "sac_n": ("jaxrl.algos.offline.sac_n", "Pendulum-v1"),
    "edac": ("jaxrl.algos.offline.edac", "Pendulum-v1"),
    "bcq": ("jaxrl.algos.offline.bcq", "Pendulum-v1"),
    "algaedice": ("jaxrl.algos.offline.algaedice", "Pendulum-v1"),
    "mt_sac": ("jaxrl.algos.multitask.mt_sac", "point-goal-4"),
    "mh_sac": ("jaxrl.algos.multitask.mh_sac", "point-goal-4"),
    "distral": ("jaxrl.algos.multitask.distral", "point-goal-4"),
    "mt_ppo": ("jaxrl.algos.multitask.mt_ppo", "cartpole-params-4"),
    "mt_trpo": ("jaxrl.algos.multitask.mt_trpo", "cartpole-params-4"),
    "te_ppo": ("jaxrl.algos.multitask.te_ppo", "cartpole-params-4"),
    # meta-RL (env = a task family; its env_params are the held-out meta-test tasks)
    "rl2": ("jaxrl.algos.meta.rl2", "bandit"),
    "maml": ("jaxrl.algos.meta.maml", "nav2d"),
    "pearl": ("jaxrl.algos.meta.pearl", "point-robot"),
}


def names() -> list[str]:
    return sorted(ALGORITHMS)


def get(name: str) -> ModuleType:
    """The algorithm module for ``name``; an unknown name raises ``ValueError`` listing close matches."""
    if name not in ALGORITHMS:
        hint = close_matches(name, ALGORITHMS)
        raise ValueError(f"unknown algorithm {name!r}; "
                         + (f"did you mean {', '.join(map(repr, hint))}?" if hint else f"known: {names()}"))
    return importlib.import_module(ALGORITHMS[name][0])


def default_env(name: str) -> str:
    get(name)
    return ALGORITHMS[name][1]


def name_of(module: ModuleType) -> str:
    for name, (path, _) in ALGORITHMS.items():
        if module.__name__ == path:
            return name
    return module.__name__
