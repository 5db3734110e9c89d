"""Algorithm registry: ``get(name)`` returns the module with ``Config`` and ``make``; ``kind(name)`` says which
family it belongs to and ``default_env(name)`` what it trains on when no env is given."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

from jaxrl.config import close_matches

KINDS = ("online", "offline", "multitask", "meta")


class Entry(NamedTuple):
    module: str  # import path of the module with Config and make
    default_env: str
    kind: str  # one of KINDS


def _entries(kind: str, table: dict[str, tuple[str, str]]) -> dict[str, Entry]:
    return {name: Entry(module, env, kind) for name, (module, env) in table.items()}


# name -> (module path, default environment), by kind
_TABLE: dict[str, tuple[str, str]] = {
    "ppo": ("jaxrl.algos.single.ppo", "CartPole-v1"),
    "sac": ("jaxrl.algos.single.sac", "Pendulum-v1"),
}
# offline: train on a dataset (`--dataset FILE`); the env is the dataset's env, used for evaluation
_OFFLINE: dict[str, tuple[str, str]] = {
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
}
_MULTITASK: dict[str, tuple[str, str]] = {
    "mt_sac": ("jaxrl.algos.multitask.mt_sac", "point-goal-4"),
    "mh_sac": ("jaxrl.algos.multitask.mh_sac", "point-goal-4"),
    "distral": ("jaxrl.algos.multitask.distral", "point-goal-4"),
    "mt_ppo": ("jaxrl.algos.multitask.mt_ppo", "cartpole-params-4"),
    "mt_trpo": ("jaxrl.algos.multitask.mt_trpo", "cartpole-params-4"),
    "te_ppo": ("jaxrl.algos.multitask.te_ppo", "cartpole-params-4"),
}
# meta-RL: the env is a task family; its env_params are the held-out meta-test tasks
_META: dict[str, tuple[str, str]] = {
    "rl2": ("jaxrl.algos.meta.rl2", "bandit"),
    "maml": ("jaxrl.algos.meta.maml", "nav2d"),
    "cavia": ("jaxrl.algos.meta.cavia", "nav2d"),
    "pearl": ("jaxrl.algos.meta.pearl", "point-robot"),
    "varibad": ("jaxrl.algos.meta.varibad", "varibad-grid"),
}
ALGORITHMS: dict[str, Entry] = {
    **_entries("online", _TABLE),
    **_entries("offline", _OFFLINE),
    **_entries("multitask", _MULTITASK),
    **_entries("meta", _META),
}


def names() -> list[str]:
    return sorted(ALGORITHMS)


def get(name: str) -> ModuleType:
    """The algorithm module for ``name``; an unknown name raises ``ValueError`` listing close matches."""
    if name not in ALGORITHMS:
        hint = close_matches(name, ALGORITHMS)
        raise ValueError(
            f"unknown algorithm {name!r}; "
            + (f"did you mean {', '.join(map(repr, hint))}?" if hint else f"known: {names()}")
        )
    return importlib.import_module(ALGORITHMS[name].module)


def default_env(name: str) -> str:
    get(name)
    return ALGORITHMS[name].default_env


def kind(name_or_module: str | ModuleType) -> str:
    """The family of an algorithm (a name or its module): one of :data:`KINDS`."""
    name = name_or_module if isinstance(name_or_module, str) else name_of(name_or_module)
    get(name)
    return ALGORITHMS[name].kind


def is_offline(name_or_module: str | ModuleType) -> bool:
    return kind(name_or_module) == "offline"


def name_of(module: ModuleType) -> str:
    for name, entry in ALGORITHMS.items():
        if module.__name__ == entry.module:
            return name
    return module.__name__
