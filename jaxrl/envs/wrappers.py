"""Pure environment wrappers over the functional protocol.

Protocol (gymnax >= 1.0): ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, auto-resetting, with
the pre-reset observation in ``info["final_observation"]``. A wrapper is an immutable object holding the inner
env; everything that changes lives in the state it returns.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


class Wrapper:
    """Delegates everything it does not override to the inner env."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def unwrapped(self):
        return getattr(self._env, "unwrapped", self._env)

    def reset(self, key, params=None):
        return self._env.reset(key, params)

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, action, params)


class VmapEnv(Wrapper):
    """``num_envs`` copies of an env stepped together: every array gains a leading ``[B]`` axis.

    ``params`` are shared by default; with ``batched_params=True`` each copy has its own (a task per env).
    """

    def __init__(self, env, num_envs: int, batched_params: bool = False):
        super().__init__(env)
        self.num_envs = num_envs
        self._p_axis = 0 if batched_params else None

    def reset(self, key, params=None):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, self._p_axis))(keys, params)

    def step(self, key, state, action, params=None):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, self._p_axis))(keys, state, action, params)


@struct.dataclass
class EpisodeStatsState:
    inner: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStats(Wrapper):
    """Wraps a single (unbatched) env.

    Adds ``info["episode_return"]`` and ``info["episode_length"]`` (valid where ``info["episode_done"]``).
    """

    def reset(self, key, params=None):
        obs, inner = self._env.reset(key, params)
        return obs, EpisodeStatsState(inner, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret = state.episode_return + reward
        length = state.episode_length + 1
        info = {**info, "episode_return": ret, "episode_length": length, "episode_done": done}
        new = EpisodeStatsState(inner, jnp.where(done, 0.0, ret), jnp.where(done, 0, length))
        return obs, new, reward, terminated, truncated, info


@struct.dataclass
class RunningStats:
    """Running mean and variance (parallel Welford / Chan et al. merge)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape) -> RunningStats:
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32))

    def update(self, batch: jax.Array) -> RunningStats:
        batch = batch.reshape(-1, *self.mean.shape)
        b_mean, b_var, b_count = batch.mean(0), batch.var(0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        return RunningStats(mean, m2 / total, total)

    def normalize(self, x: jax.Array, clip: float = 10.0) -> jax.Array:
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + 1e-8), -clip, clip)


@struct.dataclass
class NormalizeState:
    inner: Any
    stats: RunningStats


class NormalizeObservation(Wrapper):
    """Normalises observations with running statistics carried in the state.

    Wrap the *vectorised* env so all copies share one set of statistics. ``update=False`` freezes them
    (evaluation); ``final_observation`` is normalised with the same statistics.
    """

    def __init__(self, env, update: bool = True):
        super().__init__(env)
        self.update = update

    def reset(self, key, params=None):
        obs, inner = self._env.reset(key, params)
        stats = RunningStats.create(obs.shape[-1:])
        if self.update:
            stats = stats.update(obs)
        return stats.normalize(obs), NormalizeState(inner, stats)

    def step(self, key, state, action, params=None):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action, params)
        stats = state.stats.update(info["final_observation"]) if self.update else state.stats
        info = {**info, "final_observation": stats.normalize(info["final_observation"])}
        return stats.normalize(obs), NormalizeState(inner, stats), reward, terminated, truncated, info


class RescaleAction(Wrapper):
    """The agent acts in ``[-1, 1]^d``; actions are clipped there and mapped affinely onto the env's box."""

    def __init__(self, env, low, high):
        super().__init__(env)
        self._low = jnp.asarray(low, jnp.float32)
        self._high = jnp.asarray(high, jnp.float32)

    def action_space(self, params=None):
        shape = self._env.action_space(params).shape
        return spaces.Box(-1.0, 1.0, shape, jnp.float32)

    def step(self, key, state, action, params=None):
        action = jnp.clip(action, -1.0, 1.0)
        action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        return self._env.step(key, state, action, params)


def is_discrete(env, params) -> bool:
    return isinstance(env.action_space(params), spaces.Discrete)


def action_dim(env, params) -> int:
    space = env.action_space(params)
    return int(space.n) if isinstance(space, spaces.Discrete) else int(space.shape[0])


def obs_dim(env, params) -> int:
    return int(env.observation_space(params).shape[0])
