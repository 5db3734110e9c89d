"""Base configs: the fields and checks every online algorithm repeats, declared once with their range and help.

An algorithm's ``Config`` inherits from a base and is itself decorated with :func:`jaxrl.config.config`::

    @config
    class Config(OffPolicyConfig):
        init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature")
        batch_size: int = static(128, low=1, help="minibatch size PER TASK")  # a new default: redeclare it

* :class:`OnlineConfig` (every algorithm that steps environments): ``discount`` (the old name ``gamma`` keeps
  working with a ``DeprecationWarning``, also in a saved ``config.json``), ``total_env_steps``, and the trio every
  online config repeated: ``__post_init__`` checks that the run is at least one iteration long,
  ``env_steps_per_iteration`` (the subclass says what one ``step`` costs) and ``num_iterations``.
  Cross-field checks of a subclass go in ``validate(self)`` (call ``super().validate()`` to keep the length
  check; a subclass whose iteration length is only an estimate, e.g. RL², overrides it without calling super).
  The error for a too-short run names ``iteration_text`` (a class attribute: how one iteration is counted).
* :class:`OffPolicyConfig` (replay-buffer algorithms: SAC, MT-SAC, MH-SAC, Distral): learning rate, Polyak
  ``tau``, ``num_envs``, ``batch_size``, ``buffer_size``, ``learning_starts`` (the warm-up: random actions and no
  updates until the buffer holds that many transitions), ``updates_per_step``, ``hidden``, ``activation``; one
  iteration is one env step in each of ``num_envs`` envs.

Field order: base fields come first in ``dataclasses.fields`` (and ``config.json``); a redeclared field keeps
its base position with the subclass's default and help. Every error starts with ``<algo>.Config``
(:func:`jaxrl.config.config_name`).
"""

from __future__ import annotations

import abc

from jaxrl import nets
from jaxrl.config import ConfigError, config, config_name, hyper, static

__all__ = ["OnlineConfig", "OffPolicyConfig"]


@config
class OnlineConfig(abc.ABC):
    """Base of every config whose ``step`` steps environments (abstract: a subclass defines
    ``env_steps_per_iteration``)."""

    renamed = {"gamma": "discount"}
    iteration_text = "the env steps of one iteration"

    discount: float = hyper(0.99, low=0, high=1, help="discount")
    total_env_steps: int = static(100_000, low=1, help="training length in environment steps")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (run after every field's own range check); the run must cover one iteration."""
        if self.total_env_steps < self.env_steps_per_iteration:
            raise ConfigError(
                f"{config_name(self)}.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"{self.iteration_text} = {self.env_steps_per_iteration}"
            )

    @property
    @abc.abstractmethod
    def env_steps_per_iteration(self) -> int:
        """Environment steps one ``step`` call takes (over all envs)."""

    @property
    def num_iterations(self) -> int:
        return max(self.total_env_steps // self.env_steps_per_iteration, 1)


@config
class OffPolicyConfig(OnlineConfig):
    """Base of the replay-buffer algorithms (see :mod:`jaxrl.algos.off_policy`): one iteration is one env step in
    each of ``num_envs`` envs, then ``updates_per_step`` gradient updates once warm-up is over."""

    iteration_text = "num_envs"

    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (every network)")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    num_envs: int = static(1, low=1, help="parallel environments")
    batch_size: int = static(256, low=1, help="minibatch size")
    buffer_size: int = static(100_000, low=1, help="replay capacity (transitions)")
    learning_starts: int = static(1_000, low=0, help="random-action transitions before updates start")
    updates_per_step: int = static(1, low=1, help="gradient updates per environment step")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs
