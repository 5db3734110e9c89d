"""Algorithm registry: ``get(name)`` returns the module with ``Config`` and ``make``."""

from __future__ import annotations

import importlib
from types import ModuleType

from jaxrl.config import close_matches

# name -> (module path, default environment)
ALGORITHMS: dict[str, tuple[str, str]] = {
    "ppo": ("jaxrl.algos.single.ppo", "CartPole-v1"),
    "sac": ("jaxrl.algos.single.sac", "Pendulum-v1"),
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
