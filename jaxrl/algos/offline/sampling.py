"""The offline family's batch sampling: a run's :class:`Sampler` (which of the stacked datasets, which rows, their
Monte-Carlo returns) and :func:`sample_batch`, with the dataset index traced, so seeds x datasets train in one
compiled program; and the normalisation of observations and rewards the sampler applies.

**State normalisation** (``config.normalize_states``; TD3+BC's section 5, on by default there; CORL's BC, TD3+BC,
IQL, CQL and AWAC): every sampled ``obs`` / ``next_obs`` is standardised with the dataset's per-feature mean and std
over its valid rows (std + 1e-3), held in the sampler, and :func:`raw_obs_act` makes the policy act on the env's raw
observations the same way, so a trained state acts in the real env as it is.

**Reward scaling** (``config.normalize_rewards``; IQL's locomotion setting): every reward, and so every Monte-Carlo
return, is multiplied by ``horizon / (max - min)`` over the dataset's episode returns (IQL's code: ``1000 / (max -
min)`` on D4RL locomotion, whose episodes are 1000 steps). Evaluation returns and normalised scores stay in the env's
own units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.data import dataset as ds
from jaxrl.data.dataset import Dataset
from jaxrl.data.types import Transition
from jaxrl.envs.offline import OfflineEnv

__all__ = [
    "Extras",
    "Sampler",
    "dataset_index",
    "member",
    "init_sampler",
    "sample_batch",
    "OBS_STD_EPS",
    "observation_stats",
    "return_range_scale",
    "scale_rewards",
    "standardize",
    "raw_obs_act",
]


class Extras(NamedTuple):
    """What an offline batch carries beyond a transition (``Transition.extras``)."""

    mc_returns: jax.Array  # [B] discounted Monte-Carlo return of each row (to the end of its episode in the data)
    next_action: Any = None  # [B, A] the data's next action (ReBRAC), when sampled


@struct.dataclass
class Sampler:
    """Per-run sampling state: which dataset, and the integer CDF of the rows it samples (``[N]``)."""

    index: jax.Array  # int32 scalar: the dataset of this run
    cdf: jax.Array  # [N] int32 cumulative count of sampleable rows
    mc_returns: jax.Array  # [N] float32 discounted Monte-Carlo returns of the dataset's rows
    obs_stats: Any = None  # (mean [O], std [O]) of the dataset's observations with normalize_states, else None
    reward_scale: Any = None  # float32 scalar multiplying rewards with normalize_rewards, else None


OBS_STD_EPS = 1e-3  # added to each feature's std (TD3+BC's), so a constant feature stays finite


def observation_stats(data: Dataset) -> tuple[jax.Array, jax.Array]:
    """``(mean [O], std [O] + OBS_STD_EPS)`` of a dataset's observations over its valid rows (traced OK)."""
    w = (data.stacked_mask() > 0).astype(jnp.float32)[:, None]
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.sum(w * data.observations, axis=0) / n
    var = jnp.sum(w * jnp.square(data.observations - mean), axis=0) / n
    return mean, jnp.sqrt(var) + OBS_STD_EPS


def return_range_scale(data: Dataset, horizon: int) -> jax.Array:
    """``horizon / (max - min)`` of the dataset's episode returns (traced OK; 1 when every episode's return is the
    same): rewards times it span about ``horizon`` between the worst and best episode (IQL's reward scaling)."""
    valid = data.stacked_mask() > 0
    ret = ds.episode_returns(data)
    spread = jnp.max(jnp.where(valid, ret, -jnp.inf)) - jnp.min(jnp.where(valid, ret, jnp.inf))
    return jnp.where(spread > 0, horizon / jnp.where(spread > 0, spread, 1.0), 1.0).astype(jnp.float32)


def scale_rewards(reward_scale: Any, rewards: jax.Array) -> jax.Array:
    """``rewards * reward_scale``; unchanged when ``reward_scale`` is None."""
    return rewards if reward_scale is None else rewards * reward_scale


def standardize(obs_stats: Any, obs: jax.Array) -> jax.Array:
    """``(obs - mean) / std`` with ``obs_stats = (mean, std)``; ``obs`` unchanged when ``obs_stats`` is None."""
    if obs_stats is None:
        return obs
    mean, std = obs_stats
    return (obs - mean) / std


def raw_obs_act(act: Callable, obs_stats: Callable[[Any], Any]) -> Callable:
    """``act`` (on standardised observations) as a policy of the env's raw ones: ``obs_stats(state)`` gives the
    statistics (None: no normalisation)."""

    def wrapped(state, obs, *args, **kwargs):
        return act(state, standardize(obs_stats(state), obs), *args, **kwargs)

    return wrapped


def dataset_index(config) -> jax.Array:
    """The config's (possibly traced) ``dataset_index`` as an int32 scalar."""
    return jnp.round(jnp.asarray(config.dataset_index, jnp.float32)).astype(jnp.int32)


def member(env: OfflineEnv, index: jax.Array | int) -> Dataset:
    return jax.tree.map(lambda x: x[index], dataclasses.replace(env.data, info=ds.DatasetInfo()))


def init_sampler(
    env: OfflineEnv,
    index: jax.Array,
    discount: Any,
    row_mask: jax.Array | None = None,
    normalize: bool = False,
    scale_rewards_by_range: bool = False,
) -> Sampler:
    """Sampler over dataset ``index`` (traced OK); ``row_mask`` ([N], optional) restricts it (filtered BC); with
    ``normalize`` its batches' observations are standardised by the whole dataset's statistics, with
    ``scale_rewards_by_range`` its rewards and returns scaled by :func:`return_range_scale`."""
    from jaxrl.algos.common import max_episode_steps

    data = member(env, index)
    mask = data.stacked_mask() > 0
    if row_mask is not None:
        mask = mask & (row_mask > 0)
    mc = ds.monte_carlo_returns(data, jnp.asarray(discount, jnp.float32))
    stats = observation_stats(data) if normalize else None
    scale = return_range_scale(data, max_episode_steps(env.env_params)) if scale_rewards_by_range else None
    return Sampler(index.astype(jnp.int32), ds.sampling_cdf(mask), scale_rewards(scale, mc), stats, scale)


def sample_batch(env: Any, sampler: Sampler, key: jax.Array, batch_size: int) -> Transition:
    """``batch_size`` rows of ``env.data`` (an :class:`OfflineEnv`, or any object with its stacked ``data``), uniform
    with replacement over the sampler's sampleable rows (observations standardised and rewards scaled if the sampler
    says so)."""
    k = jax.random.randint(key, (batch_size,), 0, jnp.maximum(sampler.cdf[-1], 1))
    rows = jnp.clip(jnp.searchsorted(sampler.cdf, k, side="right"), 0, sampler.cdf.shape[0] - 1)
    d = env.data
    take = lambda x: x[sampler.index, rows]
    return Transition(
        standardize(sampler.obs_stats, take(d.observations)),
        take(d.actions),
        scale_rewards(sampler.reward_scale, take(d.rewards)),
        standardize(sampler.obs_stats, take(d.next_observations)),
        take(d.terminals),
        take(d.timeouts),
        Extras(sampler.mc_returns[rows]),
    )
