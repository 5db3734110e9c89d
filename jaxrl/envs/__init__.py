"""Environments: the gymnax >= 1.0 functional protocol, wrappers and adapters, and the offline env (datasets
stacked beside the env they came from)."""

from jaxrl.envs.offline import OfflineEnv, load_offline_env, make_offline_env
from jaxrl.envs.registry import dataset_name, is_dataset, is_host, list_envs, make, make_host, register, resolve
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
    "resolve",
    "list_envs",
    "register",
    "dataset_name",
    "is_dataset",
    "is_host",
    "make_host",
    "OfflineEnv",
    "load_offline_env",
    "make_offline_env",
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
