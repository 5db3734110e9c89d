"""A discrete multi-goal gridworld whose tasks conflict: the goals sit in opposite corners.

An ``size x size`` grid (5 by default); the agent starts in the centre cell; actions 0..3 move up, right, down,
left (a move into a wall stays put). Task ``k``'s goal is a corner; reaching it gives reward +1 and ends the
episode (terminated, success); every other step costs ``step_cost`` (0.01). The horizon is
``max_steps_in_episode`` (20). Observation: the position scaled to ``[-1, 1]^2``. From the centre, the best
first action of the top-left task is the worst of the bottom-right task, so task gradients genuinely conflict.

Registered: ``gridworld-corners`` (4 corners) and ``gridworld-corners-2`` (two opposite corners).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register
from jaxrl.tasks.base import TaskSuite, one_hot_contexts

__all__ = ["GridWorld", "GridParams", "GridState", "make_corners_suite"]

_MOVES = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], np.int32)  # up, right, down, left as (dx, dy)


@struct.dataclass
class GridState(environment.EnvState):
    pos: jax.Array  # int32 [2]
    time: jax.Array


@struct.dataclass
class GridParams:
    goal: jax.Array  # int32 [2]
    size: int = struct.field(pytree_node=False, default=5)
    step_cost: jax.Array | float = 0.01
    max_steps_in_episode: jax.Array | int = 20


class GridWorld(environment.Environment[GridState, GridParams]):
    @property
    def default_params(self) -> GridParams:
        return GridParams(goal=jnp.array([0, 0], jnp.int32))

    def step_env(self, key, state, action, params):
        move = jnp.asarray(_MOVES)[jnp.asarray(action, jnp.int32)]
        pos = jnp.clip(state.pos + move, 0, params.size - 1)
        success = jnp.all(pos == params.goal)
        reward = jnp.where(success, 1.0, -params.step_cost).astype(jnp.float32)
        new_state = GridState(pos=pos, time=state.time + 1)
        info = {"success": success}
        return self.get_obs(new_state, params), new_state, reward, success, info

    def reset_env(self, key, params):
        c = params.size // 2
        state = GridState(pos=jnp.array([c, c], jnp.int32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        size = 5 if params is None else params.size
        return (2.0 * state.pos.astype(jnp.float32) / (size - 1) - 1.0).astype(jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.all(state.pos == params.goal)

    @property
    def name(self) -> str:
        return "GridWorld"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)


def make_corners_suite(num_corners: int = 4, *, size: int = 5, step_cost: float = 0.01, horizon: int = 20) -> TaskSuite:
    """Goals in ``num_corners`` corners (2: bottom-left and top-right; 4: all corners); one-hot contexts."""
    if num_corners not in (2, 4):
        raise ValueError(f"num_corners={num_corners}: choose 2 (opposite corners) or 4")
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size={size} must be odd and >= 3 (the start is the centre cell)")
    s = size - 1
    corners = [(0, 0), (s, s), (0, s), (s, 0)][:num_corners]
    k = num_corners
    params = GridParams(
        goal=jnp.asarray(corners, jnp.int32),
        size=size,
        step_cost=jnp.full((k,), step_cost, jnp.float32),
        max_steps_in_episode=jnp.full((k,), horizon, jnp.int32),
    )
    return TaskSuite(
        name=f"gridworld-corners{'' if k == 4 else '-2'}",
        env=GridWorld(),
        params=params,
        contexts=one_hot_contexts(k),
        task_names=tuple(f"corner-{x}-{y}" for x, y in corners),
        success_fn=lambda info: info["success"],
        extra_metadata=(("size", size), ("step_cost", step_cost), ("horizon", horizon)),
    )


def _register() -> None:
    def four(**kw):
        suite = make_corners_suite(4, **kw)
        return suite, suite.params

    def two(**kw):
        suite = make_corners_suite(2, **kw)
        return suite, suite.params

    register("gridworld-corners", four)
    register("gridworld-corners-2", two)


_register()
