"""Point-goal multi-task suites: a 2-D point robot, K goals evenly spaced on a circle.

The robot starts at the origin; ``pos' = pos + max_action * clip(a, -1, 1)`` with ``a`` in ``[-1, 1]^2``; the
observation is the position ``[2]`` (the goal is the task: it lives in the params and reaches the agent only
through the suite's context omega, one-hot task IDs by default). Success at a step: ``||pos' - goal|| <=
success_radius``. Rewards: dense ``-||pos' - goal||``; sparse ``1[success]`` (a success bonus, 0 elsewhere).
Episodes last ``max_steps_in_episode`` steps (truncation, no early termination). Goal ``k`` is at angle
``2 pi k / K`` on the circle of ``radius`` (1 by default), so with K = 4 the goals sit in opposite pairs.

Registered names (``jaxrl.envs.make(name) -> (TaskSuite, params)``): ``point-goal-K`` (dense) and
``point-goal-K-sparse`` for K in 1, 2, 4, 8, 16, 32, 64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register
from jaxrl.tasks.base import TaskSuite, one_hot_contexts

__all__ = ["PointGoalEnv", "PointGoalParams", "PointGoalState", "make_point_goal_suite", "SUITE_SIZES"]

SUITE_SIZES = (1, 2, 4, 8, 16, 32, 64)


@struct.dataclass
class PointGoalState(environment.EnvState):
    pos: jax.Array  # [2]
    time: jax.Array


@struct.dataclass
class PointGoalParams:
    goal: jax.Array  # [2]
    max_action: jax.Array | float = 0.1
    success_radius: jax.Array | float = 0.1
    max_steps_in_episode: jax.Array | int = 30


class PointGoalEnv(environment.Environment[PointGoalState, PointGoalParams]):
    """2-D point robot reaching a goal; ``sparse`` (static) picks the success-bonus reward."""

    def __init__(self, sparse: bool = False):
        super().__init__()
        self.sparse = bool(sparse)

    @property
    def default_params(self) -> PointGoalParams:
        return PointGoalParams(goal=jnp.array([1.0, 0.0], jnp.float32))

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0) * params.max_action
        pos = state.pos + action
        dist = jnp.sqrt(jnp.sum(jnp.square(pos - params.goal)))
        success = dist <= params.success_radius
        dense = -dist
        sparse = success.astype(jnp.float32)
        reward = sparse if self.sparse else dense
        new_state = PointGoalState(pos=pos, time=state.time + 1)
        info = {"dense_reward": dense, "sparse_reward": sparse, "distance": dist, "success": success}
        return self.get_obs(new_state, params), new_state, reward, jnp.zeros((), bool), info

    def reset_env(self, key, params):
        state = PointGoalState(pos=jnp.zeros((2,), jnp.float32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return state.pos

    @property
    def name(self) -> str:
        return "PointGoalSparse" if self.sparse else "PointGoal"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def make_point_goal_suite(
    num_goals: int = 4,
    *,
    sparse: bool = False,
    radius: float = 1.0,
    success_radius: float = 0.1,
    max_action: float = 0.1,
    horizon: int = 30,
    contexts=None,
) -> TaskSuite:
    """``num_goals`` goals at angles ``2 pi k / K`` on a circle of ``radius``; one-hot contexts unless given."""
    if num_goals < 1:
        raise ValueError(f"num_goals={num_goals} must be >= 1")
    if horizon < 1 or radius <= 0 or success_radius <= 0 or max_action <= 0:
        raise ValueError("horizon, radius, success_radius and max_action must be > 0")
    angles = 2.0 * np.pi * np.arange(num_goals) / num_goals
    goals = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    k = num_goals
    params = PointGoalParams(
        goal=jnp.asarray(goals, jnp.float32),
        max_action=jnp.full((k,), max_action, jnp.float32),
        success_radius=jnp.full((k,), success_radius, jnp.float32),
        max_steps_in_episode=jnp.full((k,), horizon, jnp.int32),
    )
    kind = "sparse" if sparse else "dense"
    suite = TaskSuite(
        name=f"point-goal-{k}{'-sparse' if sparse else ''}",
        env=PointGoalEnv(sparse),
        params=params,
        contexts=one_hot_contexts(k),
        task_names=tuple(f"goal-{int(round(np.degrees(a)))}deg" for a in angles),
        success_fn=lambda info: info["success"],
        extra_metadata=(
            ("reward", kind),
            ("radius", radius),
            ("success_radius", success_radius),
            ("horizon", horizon),
            ("max_action", max_action),
        ),
    )
    return suite.with_contexts(contexts) if contexts is not None else suite


def _factory(k: int, sparse: bool):
    def make(**kwargs):
        suite = make_point_goal_suite(k, sparse=sparse, **kwargs)
        return suite, suite.params

    return make


def _register() -> None:
    for k in SUITE_SIZES:
        register(f"point-goal-{k}", _factory(k, False))
        register(f"point-goal-{k}-sparse", _factory(k, True))


_register()
