"""2D point navigation task families: MAML's 2D navigation and PEARL's point robot (dense and sparse goals).

The goal lives in the env params and is hidden from the observation (which is the agent's position).
``family.sample(key, n)`` returns params with a leading task axis ``[n]`` on every leaf.

- ``Navigation2D`` (Finn et al. 2017, MAML, section 5.3): start at the origin, goal ~ U[-0.5, 0.5]^2,
  action = velocity clipped to [-0.1, 0.1]^2, ``pos' = pos + a``, reward ``-||pos' - goal||`` (MAML's code; the
  paper's text says squared distance), terminated when within 0.01 of the goal on both axes, horizon 100
  (truncation).
- ``PointRobotGoals`` (Rakelly et al. 2019, PEARL): goals on the upper half of the unit circle, angle
  ~ U[0, pi]; same dynamics; horizon 20; dense reward ``-||pos' - goal||``; sparse reward (``sparse=True``)
  ``1 - ||pos' - goal||`` inside the goal radius 0.2 and 0 outside (PEARL's sparse point robot: dense reward
  inside the radius, shifted by +1 to be positive). Both rewards are always reported in ``info``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register


@struct.dataclass
class PointState(environment.EnvState):
    pos: jax.Array  # [2]
    time: jax.Array


@struct.dataclass
class PointParams:
    goal: jax.Array  # [2] the hidden task
    max_action: jax.Array | float = 0.1
    goal_tolerance: jax.Array | float = 0.01  # terminate when |pos - goal| < tol on both axes; <= 0 disables
    goal_radius: jax.Array | float = 0.2  # sparse-reward radius
    max_steps_in_episode: jax.Array | int = 100


class PointNavigation(environment.Environment[PointState, PointParams]):
    """Point agent in the plane: ``pos' = pos + clip(a, -max_action, max_action)``, start at the origin.

    ``sparse`` (static) selects the reward: dense ``-||pos' - goal||`` or PEARL's sparse
    ``(1 - ||pos' - goal||) * [||pos' - goal|| <= goal_radius]``.
    """

    def __init__(self, sparse: bool = False, default_max_steps: int = 100, default_tolerance: float = 0.01):
        super().__init__()
        self.sparse = bool(sparse)
        self.default_max_steps = int(default_max_steps)
        self.default_tolerance = float(default_tolerance)

    @property
    def default_params(self) -> PointParams:
        return PointParams(
            goal=jnp.array([0.25, 0.25], jnp.float32),
            goal_tolerance=self.default_tolerance,
            max_steps_in_episode=self.default_max_steps,
        )

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.float32), -params.max_action, params.max_action)
        pos = state.pos + action
        delta = pos - params.goal
        dist = jnp.sqrt(jnp.sum(delta**2))
        dense = -dist
        sparse = jnp.where(dist <= params.goal_radius, 1.0 - dist, 0.0).astype(jnp.float32)
        reward = sparse if self.sparse else dense
        new_state = PointState(pos=pos, time=state.time + 1)
        terminated = self.is_terminated(new_state, params)
        info = {"dense_reward": dense, "sparse_reward": sparse, "distance": dist}
        return self.get_obs(new_state, params), new_state, reward, terminated, info

    def reset_env(self, key, params):
        state = PointState(pos=jnp.zeros((2,), jnp.float32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return state.pos

    def is_terminated(self, state, params) -> jax.Array:
        near = jnp.all(jnp.abs(state.pos - params.goal) < params.goal_tolerance)
        return jnp.logical_and(params.goal_tolerance > 0, near)

    @property
    def name(self) -> str:
        return "PointNavigationSparse" if self.sparse else "PointNavigation"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Box:
        high = 0.1 if params is None else params.max_action
        return spaces.Box(-high, high, (2,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def _full(n, value, dtype=jnp.float32):
    return jnp.full((n,), value, dtype)


class Navigation2D:
    """MAML 2D navigation: goals ~ U[-goal_range, goal_range]^2 (0.5), horizon 100, terminate within 0.01."""

    def __init__(self, goal_range: float = 0.5, horizon: int = 100, goal_tolerance: float = 0.01):
        self.goal_range = float(goal_range)
        self.horizon = int(horizon)
        self.goal_tolerance = float(goal_tolerance)
        self.env = PointNavigation(sparse=False, default_max_steps=self.horizon, default_tolerance=goal_tolerance)

    def sample(self, key: jax.Array, n: int) -> PointParams:
        goals = jax.random.uniform(key, (n, 2), jnp.float32, -self.goal_range, self.goal_range)
        return PointParams(
            goal=goals,
            max_action=_full(n, 0.1),
            goal_tolerance=_full(n, self.goal_tolerance),
            goal_radius=_full(n, 0.2),
            max_steps_in_episode=_full(n, self.horizon, jnp.int32),
        )


class PointRobotGoals:
    """PEARL point robot: goals ``(cos u, sin u)``, ``u ~ U[0, pi]`` (radius 1), horizon 20, no early
    termination; dense (``sparse=False``) or sparse reward with goal radius 0.2."""

    def __init__(self, sparse: bool = False, horizon: int = 20, radius: float = 1.0, goal_radius: float = 0.2):
        self.sparse = bool(sparse)
        self.horizon = int(horizon)
        self.radius = float(radius)
        self.goal_radius = float(goal_radius)
        self.env = PointNavigation(sparse=self.sparse, default_max_steps=self.horizon, default_tolerance=0.0)

    def sample(self, key: jax.Array, n: int) -> PointParams:
        angles = jax.random.uniform(key, (n,), jnp.float32, 0.0, jnp.pi)
        goals = self.radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
        return PointParams(
            goal=goals,
            max_action=_full(n, 0.1),
            goal_tolerance=_full(n, 0.0),
            goal_radius=_full(n, self.goal_radius),
            max_steps_in_episode=_full(n, self.horizon, jnp.int32),
        )


# Registered names (meta-RL): ``jaxrl.envs.make(name) -> (family, held-out test tasks [K_test])``.
HELD_OUT_SEED = 2**20 + 11


def _nav2d(num_test_tasks: int = 40, seed: int = HELD_OUT_SEED, **kwargs):
    family = Navigation2D(**kwargs)
    return family, family.sample(jax.random.PRNGKey(seed), int(num_test_tasks))


def _point_robot(num_test_tasks: int = 30, seed: int = HELD_OUT_SEED, **kwargs):
    family = PointRobotGoals(**kwargs)
    return family, family.sample(jax.random.PRNGKey(seed), int(num_test_tasks))


def _register() -> None:
    register("nav2d", _nav2d)
    register("point-robot", _point_robot)
    register("point-robot-sparse", lambda **kw: _point_robot(sparse=True, **kw))


_register()
