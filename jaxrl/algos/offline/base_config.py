"""The offline family's base configs: every shared field declared once, with its range and help."""

from __future__ import annotations

import math

from jaxrl import nets as nets_lib
from jaxrl.config import ConfigError, config, config_name, hyper, index, static

__all__ = ["OfflineConfig", "TargetConfig", "EntropyConfig", "ModelBasedConfig"]


@config
class OfflineConfig:
    """The fields every offline algorithm has. ``total_env_steps`` counts gradient updates (there are no env
    steps), one ``step`` makes ``updates_per_iteration`` of them, and the length must cover at least one step."""

    renamed = {"gamma": "discount"}

    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size")
    discount: float = hyper(0.99, low=0, high=1, help="discount")
    dataset_index: int = index(0, help="which of the stacked datasets this run trains on")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths")
    activation: str = static("relu", choices=tuple(nets_lib.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")
    normalize_states: bool = static(
        False, help="standardise observations by the dataset's per-feature mean and std (the policy acts likewise)"
    )
    normalize_rewards: bool = static(
        False,
        help="multiply rewards by horizon / (max - min) of the dataset's episode returns (IQL's locomotion setting)",
    )

    def __post_init__(self):
        if self.total_env_steps < self.updates_per_iteration:
            raise ConfigError(
                f"{config_name(self)}.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"updates_per_iteration = {self.updates_per_iteration}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.updates_per_iteration

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.updates_per_iteration


@config
class TargetConfig(OfflineConfig):
    """An offline config with target networks."""

    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")


@config
class EntropyConfig(TargetConfig):
    """An offline config with SAC's tuned entropy temperature."""

    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial entropy temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")


@config
class ModelBasedConfig(EntropyConfig):
    """The fields MOPO and MOReL share (model, rollouts, SAC; :mod:`jaxrl.algos.offline.model_based`)."""

    discount: float = hyper(0.99, low=0, high=1, high_open=True, help="discount")
    real_ratio: float = hyper(
        0.05, low=0, high=1, help="fraction of each SAC batch drawn from the dataset (the rest from model rollouts)"
    )
    model_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="dynamics-model Adam step size")
    model_weight_decay: float = hyper(2.5e-5, low=0, help="dynamics-model decoupled weight decay (AdamW)")
    logvar_bound_coef: float = hyper(0.01, low=0, help="weight of the learned log-variance bounds in the model loss")
    holdout_fraction: float = hyper(0.1, low=0, high=0.5, help="fraction of rows held out to pick the elites")
    model_train_updates: int = static(
        5_000,
        low=1,
        help="gradient updates of the model phase (the first updates of the run; rounded up to whole iterations)",
    )
    num_members: int = static(7, low=1, help="dynamics models in the ensemble")
    num_elites: int = static(5, low=1, help="members model rollouts sample from (lowest held-out error)")
    model_hidden: tuple[int, ...] = static((200, 200, 200), help="hidden layer widths of each dynamics model")
    model_activation: str = static("silu", choices=tuple(nets_lib.core.ACTIVATIONS), help="dynamics-model activation")
    rollout_horizon: int = static(5, low=1, help="model steps per rollout (h)")
    rollout_batch_size: int = static(1_000, low=1, help="dataset start states rolled out per iteration")
    model_retain_iterations: int = static(10, low=1, help="iterations of rollouts the model buffer keeps")
    total_env_steps: int = static(25_000, low=1, help="training length in gradient updates, model phase included")

    def __post_init__(self):
        super().__post_init__()
        name = config_name(self)
        for field in ("normalize_states", "normalize_rewards"):
            if getattr(self, field):
                raise ConfigError(
                    f"{name}.{field}=True is not supported: the dynamics models standardise their own inputs and "
                    "targets, and the rollouts start from the dataset's raw states and rewards"
                )
        if self.num_elites > self.num_members:
            raise ConfigError(
                f"{name}.num_elites={self.num_elites} is out of range: must be <= num_members = {self.num_members}"
            )
        if self.model_iterations >= self.num_iterations:
            raise ConfigError(
                f"{name}.model_train_updates={self.model_train_updates} is out of range: the "
                f"model phase ({self.model_iterations} iterations of {self.updates_per_iteration} "
                f"updates) must leave policy iterations in total_env_steps = {self.total_env_steps} "
                f"({self.num_iterations} iterations)"
            )

    @property
    def model_iterations(self) -> int:
        return math.ceil(self.model_train_updates / self.updates_per_iteration)

    @property
    def model_buffer_size(self) -> int:
        return self.rollout_batch_size * self.rollout_horizon * self.model_retain_iterations
