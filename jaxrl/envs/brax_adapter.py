"""Serve brax (and MuJoCo Playground) environments through the gymnax >= 1.0 protocol.

brax envs have ``reset(key) -> State`` and ``step(State, action) -> State`` with a ``done`` flag that means
*termination*; the time limit is ours. The adapter adds it (``params.max_steps_in_episode``), auto-resets, and
keeps the pre-reset observation in ``info["final_observation"]`` so truncated episodes can bootstrap.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxEnvState:
    inner: Any  # the brax / playground State
    time: jax.Array


class BraxAdapter:
    """Functional-protocol view of a brax-API environment (brax.envs or mujoco_playground)."""

    def __init__(self, env, name: str, max_steps_in_episode: int = 1000):
        self._env = env
        self._name = name
        self._max_steps = max_steps_in_episode

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> BraxParams:
        return BraxParams(max_steps_in_episode=self._max_steps)

    def _obs_size(self) -> int:
        size = self._env.observation_size
        if isinstance(size, dict):  # playground envs may expose dict observations
            size = size["state"]
        return int(size if isinstance(size, int) else size[0])

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size(),), jnp.float32)

    def action_space(self, params) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (int(self._env.action_size),), jnp.float32)

    @staticmethod
    def _obs(inner) -> jax.Array:
        obs = inner.obs
        return obs["state"] if isinstance(obs, dict) else obs

    def reset(self, key: jax.Array, params: Any = None):  # params unused; task envs pass their own params type
        inner = self._env.reset(key)
        return self._obs(inner), BraxEnvState(inner=inner, time=jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: BraxParams | None = None):
        params = params or self.default_params
        inner = self._env.step(state.inner, action)
        time = state.time + 1
        terminated = inner.done.astype(bool)
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        done = terminated | truncated
        final_obs = self._obs(inner)
        reset_obs, reset_state = self.reset(key, params)
        stepped = BraxEnvState(inner=inner, time=time)
        new_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, stepped)
        obs = jnp.where(done, reset_obs, final_obs)
        info = {"terminated": terminated, "truncated": truncated, "final_observation": final_obs}
        return obs, new_state, inner.reward.astype(jnp.float32), terminated, truncated, info


def make_brax(name: str, **kwargs) -> BraxAdapter:
    import brax.envs  # imported lazily: it prints a deprecation banner and compiles slowly

    episode_length = kwargs.pop("max_steps_in_episode", 1000)
    full_name = f"brax:{name}:{kwargs['backend']}" if "backend" in kwargs else f"brax:{name}"
    return BraxAdapter(brax.envs.get_environment(name, **kwargs), name=full_name, max_steps_in_episode=episode_length)


def make_playground(name: str, **kwargs) -> BraxAdapter:
    try:
        from mujoco_playground import registry
    except ImportError as e:  # optional extra: an unusable env name, so one line on the command line
        raise ValueError(
            f"environment 'playground:{name}' needs the optional extra MuJoCo Playground: pip install "
            f"'jaxrl[playground]' (importing it failed with: {e})"
        ) from None
    episode_length = kwargs.pop("max_steps_in_episode", 1000)
    return BraxAdapter(registry.load(name, **kwargs), name=f"playground:{name}", max_steps_in_episode=episode_length)
