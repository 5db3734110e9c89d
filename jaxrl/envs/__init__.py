"""Environments: the gymnax >= 1.0 functional protocol, wrappers and adapters."""

from jaxrl.envs.registry import list_envs, make, register
from jaxrl.envs.wrappers import (
    EpisodeStats,
    NormalizeObservation,
    RescaleAction,
    RunningStats,
    VmapEnv,
    Wrapper,
    action_dim,
    is_discrete,
    obs_dim,
)

__all__ = [
    "make",
    "list_envs",
    "register",
    "Wrapper",
    "VmapEnv",
    "EpisodeStats",
    "NormalizeObservation",
    "RescaleAction",
    "RunningStats",
    "is_discrete",
    "action_dim",
    "obs_dim",
]
