"""The lecture's 1D line world: distribution matching against support constraints in offline RL.

States lie on a line ``x in [0, 1]``; an episode starts at ``S`` (``x = start``, 0.2 by default) and ends when it
reaches the goal ``G`` at the right end (``x = 1``, terminated). The lecture's actions are "left" and "right";
offline algorithms here need a continuous (Box) action, so the action is a scalar ``a in [-1, 1]`` and the move is
``x' = clip(x + step_size * a, 0, 1)`` (``step_size = 0.25``): negative goes left, positive right, ``|a|`` is the speed.

Rewards, as in the lecture's figure (``r(s, ->) = 1``, ``r(s, <-) = -1`` near the goal, 0 elsewhere):

* ``+1`` for the step that reaches ``G`` (then the episode ends);
* ``min(a, 0)`` for a step taken inside the goal zone ``x >= 1 - zone_width`` (0.75; moving left near the goal costs up
  to ``-1``);
* ``0`` otherwise.

So the expert (``a = +1``) returns 1, and a policy that never reaches the goal returns at most 0. The horizon is
``max_steps_in_episode`` (20; reaching ``G`` from ``S`` takes 4 steps at full speed).

The behaviour policy of the lecture mostly takes the wrong action but keeps some probability on the right one:
:func:`scripted_behaviour` goes left (``a ~ -0.8``) with probability ``1 - right_prob`` (0.8) and right
(``a ~ +0.8``) otherwise, at every state. Its mode is "left". A learner that matches the behaviour *distribution*
(BRAC's KL penalty) keeps that mode and never reaches the goal; one that only stays inside its *support* (BEAR's
MMD constraint) can pick "right" everywhere and reach the goal.

Datasets should cover the line: collect them with ``start_low = 0``, ``start_high = 1`` (uniform starts) and a
short horizon, e.g. ``LineParams(start_low=0.0, start_high=1.0, max_steps_in_episode=4)``; evaluate with the
default params (start at ``S``). ``tests/test_offline_constraints.py`` does this (10k rows) and finds, over 3 seeds,
BEAR at normalised score 100 (``a = +1`` at every state) and BRAC-p / BRAC-v at about 0 (``a ~ -0.8`` at ``S``),
with discount 0.9 (far from the goal, right beats left in Q by ``gamma^k (1 - gamma^2)``: with 0.99 that gain is
too small against the multiplier's residual pull towards the behaviour's mode in a short run).

Registered: ``line-world`` (``jaxrl.envs.make("line-world")``; keyword arguments override the default params).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register

__all__ = ["LineWorld", "LineParams", "LineState", "scripted_behaviour", "make_line_world"]


@struct.dataclass
class LineState(environment.EnvState):
    pos: jax.Array  # float32 scalar in [0, 1]
    time: jax.Array


@struct.dataclass
class LineParams:
    start_low: jax.Array | float = 0.2  # reset: x_0 ~ U[start_low, start_high] (equal: a fixed start S)
    start_high: jax.Array | float = 0.2
    step_size: jax.Array | float = 0.25  # x' = clip(x + step_size * a, 0, 1)
    zone_width: jax.Array | float = 0.25  # inside x >= 1 - zone_width, moving left costs min(a, 0)
    max_steps_in_episode: jax.Array | int = 20


class LineWorld(environment.Environment[LineState, LineParams]):
    """1D line, goal at ``x = 1``, continuous action in ``[-1, 1]`` (see the module docstring)."""

    @property
    def default_params(self) -> LineParams:
        return LineParams()

    def step_env(self, key, state, action, params):
        a = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), ()), -1.0, 1.0)
        pos = jnp.clip(state.pos + params.step_size * a, 0.0, 1.0)
        reached = pos >= 1.0
        in_zone = state.pos >= 1.0 - params.zone_width
        reward = reached.astype(jnp.float32) + jnp.where(in_zone, jnp.minimum(a, 0.0), 0.0)
        new_state = LineState(pos=pos, time=state.time + 1)
        info = {"success": reached}
        return self.get_obs(new_state, params), new_state, reward.astype(jnp.float32), reached, info

    def reset_env(self, key, params):
        x0 = jax.random.uniform(key, (), jnp.float32, params.start_low, params.start_high)
        x0 = jnp.where(params.start_high > params.start_low, x0, jnp.asarray(params.start_low, jnp.float32))
        state = LineState(pos=jnp.minimum(x0, 1.0 - 1e-3), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.reshape(state.pos, (1,)).astype(jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return state.pos >= 1.0

    @property
    def name(self) -> str:
        return "LineWorld"

    @property
    def num_actions(self) -> int:
        return 1

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


def scripted_behaviour(
    right_prob: float = 0.2, speed: float = 0.8, noise: float = 0.1
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The lecture's behaviour policy as ``policy(obs [n, 1], key) -> action [n, 1]`` (for
    :func:`jaxrl.run.generate.rollout_dataset`): at every state ``a = +speed`` (right) with probability
    ``right_prob``, else ``-speed`` (left), plus ``N(0, noise^2)``, clipped to ``[-1, 1]``."""

    def policy(obs, key):
        k_dir, k_noise = jax.random.split(key)
        n = obs.shape[0]
        right = jax.random.bernoulli(k_dir, right_prob, (n, 1))
        a = jnp.where(right, speed, -speed) + noise * jax.random.normal(k_noise, (n, 1))
        return jnp.clip(a, -1.0, 1.0).astype(jnp.float32)

    return policy


def make_line_world(**params) -> tuple[LineWorld, LineParams]:
    """``(env, params)``; keyword arguments override :class:`LineParams` fields (unknown ones are refused)."""
    fields = set(LineParams.__dataclass_fields__)
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"line-world: unknown parameter(s) {unknown}; known: {sorted(fields)}")
    return LineWorld(), LineParams(**params)


def _register() -> None:
    register("line-world", make_line_world)


_register()
