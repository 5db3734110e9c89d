"""Offline-to-online fine-tuning, one builder for every offline algorithm that can continue online (IQL, AWAC,
CQL / Cal-QL).

The offline state's records (params, optimiser states, targets) carry on unchanged; a replay buffer starts with
the run's dataset (each row with its Monte-Carlo return) and gains the online transitions, so offline and online
data are mixed and sampled uniformly. What differs per algorithm is passed in: ``act`` and ``update(nets, batch,
key) -> (nets, metrics)`` on :class:`~jaxrl.data.types.Transition` batches (``extras``:
:class:`~jaxrl.algos.offline.common.Extras`).

Online rows need Monte-Carlo returns too when the update reads them (Cal-QL's reference value): with
``stage_episodes`` each env's current episode is staged in a fixed ``[num_envs, horizon]`` buffer and written to
the replay buffer, with its discounted returns-to-go, when it ends (:func:`stage_step`). Otherwise rows go in as they
are collected, with ``extras.mc_returns = 0``.

With ``normalize_states`` / ``normalize_rewards`` the offline run's observation statistics and reward scale (its
sampler's) carry on too, fixed: the buffer's rows, offline and online, and the policy's inputs are standardised and
scaled by them, as in the offline phase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.algos.common import Algorithm, make_train_env, max_episode_steps
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import sampling
from jaxrl.data import dataset as ds
from jaxrl.data import replay
from jaxrl.data import rollout as rollout_lib
from jaxrl.data.types import Transition

__all__ = ["FinetuneState", "Staging", "make_finetune", "init_staging", "stage_step", "episode_returns_to_go"]


@struct.dataclass
class Staging:
    """Each env's episode so far: ``rows`` a :class:`~jaxrl.data.types.Transition` ``[num_envs, horizon]``,
    ``length [num_envs]`` how many of them are filled."""

    rows: Any
    length: jax.Array


@struct.dataclass
class FinetuneState:
    nets: Any  # the offline state's records, trained on
    buffer: Any  # replay.ReplayState of Transition rows: the offline dataset first, then online transitions
    env_state: Any
    obs: jax.Array
    key: jax.Array
    iteration: jax.Array
    staging: Any = None  # Staging with stage_episodes, else None
    obs_stats: Any = None  # the offline run's (mean, std) of observations with normalize_states, else None
    reward_scale: Any = None  # the offline run's reward scale with normalize_rewards, else None


def init_staging(example_row: Transition, num_envs: int, horizon: int) -> Staging:
    """Empty staging for ``num_envs`` episodes of at most ``horizon`` steps.

    ``example_row`` is one row, without a batch axis.
    """
    rows = jax.tree.map(lambda x: jnp.zeros((num_envs, horizon, *jnp.shape(x)), jnp.asarray(x).dtype), example_row)
    return Staging(rows, jnp.zeros((num_envs,), jnp.int32))


def episode_returns_to_go(rewards: jax.Array, length: jax.Array, discount: Any) -> jax.Array:
    """``[horizon]`` discounted return-to-go of the first ``length`` rewards (0 after them): the observed part of
    an episode, so a truncated one gets a lower bound on its return (as Cal-QL's code does)."""
    valid = jnp.arange(rewards.shape[0]) < length
    r = jnp.where(valid, rewards, 0.0)
    return ds.discounted_returns(r, jnp.zeros_like(r), discount) * valid


def stage_step(
    staging: Staging, buffer: replay.ReplayState, rows: Transition, done: jax.Array, discount: Any
) -> tuple[Staging, replay.ReplayState]:
    """Append one row per env (``rows [num_envs, ...]``); the episodes that ended (``done``, or the staging full)
    go to ``buffer`` with their returns-to-go as ``extras.mc_returns`` and their staging restarts. Jittable."""
    n, horizon = staging.length.shape[0], staging.rows.reward.shape[1]
    envs = jnp.arange(n)
    data = jax.tree.map(lambda buf, x: buf.at[envs, staging.length].set(x.astype(buf.dtype)), staging.rows, rows)
    length = staging.length + 1
    flush = jnp.logical_or(done, length >= horizon)

    def write(buffer):
        mc = jax.vmap(episode_returns_to_go, in_axes=(0, 0, None))(data.reward, length, discount)
        valid = (jnp.arange(horizon)[None] < length[:, None]) & flush[:, None]
        flat = jax.tree.map(
            lambda x: x.reshape(n * horizon, *x.shape[2:]), data._replace(extras=data.extras._replace(mc_returns=mc))
        )
        return replay.add_valid(buffer, flat, valid.reshape(-1))

    buffer = jax.lax.cond(jnp.any(flush), write, lambda b: b, buffer)
    return Staging(data, jnp.where(flush, 0, length)), buffer


def _offline_rows(env: oc.OfflineEnv, config) -> Transition:
    """The valid rows of the config's (concrete) dataset, each with its Monte-Carlo return."""
    index = int(round(float(config.dataset_index)))
    data = oc.member(env, index)
    mc = ds.monte_carlo_returns(data, jnp.asarray(config.discount, jnp.float32))
    rows = ds.to_transition(data)._replace(extras=oc.Extras(mc))
    return jax.tree.map(lambda x: x[: env.valid_rows[index]], rows)


def _as_trained(rows: Transition, obs_stats, reward_scale) -> Transition:
    """Rows as the offline phase's batches were: observations standardised, rewards and returns scaled (each a
    no-op when its statistic is None)."""
    norm, scale = (lambda o: sampling.standardize(obs_stats, o)), (lambda r: sampling.scale_rewards(reward_scale, r))
    extras = rows.extras._replace(mc_returns=scale(rows.extras.mc_returns))
    return rows._replace(obs=norm(rows.obs), reward=scale(rows.reward), next_obs=norm(rows.next_obs), extras=extras)


def make_finetune(
    config,
    env,
    env_params,
    *,
    name: str,
    act: Callable,
    update: Callable,
    online_steps: int,
    num_envs: int = 1,
    updates_per_step: int = 1,
    stage_episodes: bool = False,
) -> Algorithm:
    """Offline-to-online ``Algorithm`` for the offline algorithm ``name``.

    ``init(key, offline_state)`` (note: takes the trained offline state) takes over its records and fills a
    replay buffer of ``valid rows + online_steps * num_envs`` with the run's dataset; each ``step`` takes one step
    in each of ``num_envs`` envs with the stochastic policy ``act``, adds it to the buffer and makes
    ``updates_per_step`` updates ``update(nets, batch, key) -> (nets, metrics)`` on uniform samples of it.
    ``evaluate`` is the offline one (``eval_return``, ``normalized_score``). ``config`` needs ``dataset_index``
    (concrete here), ``discount`` and ``batch_size``.
    """
    env, _, _ = oc.prepare(env, env_params, config, name)
    if isinstance(config.dataset_index, jax.core.Tracer):
        raise TypeError(f"{name} fine-tuning needs a concrete dataset_index")
    offline_rows = _offline_rows(env, config)
    capacity = offline_rows.reward.shape[0] + online_steps * num_envs
    train_env = make_train_env(env.env, env_params, num_envs)
    horizon, sample = max_episode_steps(env_params), lambda buffer, key: replay.sample(buffer, key, config.batch_size)
    raw_act = sampling.raw_obs_act(act, lambda state: state.obs_stats)  # the env's observations, standardised if asked

    def init(key, offline_state) -> FinetuneState:
        key, ek = jax.random.split(key)
        stats, scale = offline_state.sampler.obs_stats, offline_state.sampler.reward_scale
        rows = _as_trained(offline_rows, stats, scale)
        example = jax.tree.map(lambda x: x[0], rows)
        buffer = replay.add(replay.init(example, capacity), rows)
        obs, env_state = train_env.reset(ek, env_params)
        staging = init_staging(example, num_envs, horizon) if stage_episodes else None
        zero = jnp.zeros((), jnp.int32)
        return FinetuneState(offline_state.nets, buffer, env_state, obs, key, zero, staging, stats, scale)

    def step(state: FinetuneState):
        key, act_key, env_key, update_key = jax.random.split(state.key, 4)
        action = raw_act(state, state.obs, act_key)
        obs, env_state, reward, terminated, truncated, info = train_env.step(
            env_key, state.env_state, action, env_params
        )
        stored = jnp.clip(action, -1.0 + oc.ACTION_EPS, 1.0 - oc.ACTION_EPS)  # as the dataset's (finite log-probs)
        done = jnp.logical_or(terminated, truncated)
        f32 = lambda x: x.astype(jnp.float32)
        extras = oc.Extras(jnp.zeros_like(reward))
        row = Transition(state.obs, stored, reward, info["final_observation"], f32(terminated), f32(truncated), extras)
        row = _as_trained(row, state.obs_stats, state.reward_scale)
        if stage_episodes:
            staging, buffer = stage_step(state.staging, state.buffer, row, done, config.discount)
        else:
            staging, buffer = None, replay.add(state.buffer, row)
        records, metrics = oc.run_updates(
            update,
            state.nets,
            update_key,
            updates_per_step,
            sample=lambda _, k: sample(buffer, k),
            update_keys=1,
        )
        metrics.update(rollout_lib.episode_metrics(info))
        next_state = FinetuneState(
            records, buffer, env_state, obs, key, state.iteration + 1, staging, state.obs_stats, state.reward_scale
        )
        return next_state, metrics

    return Algorithm(
        init=init,
        step=step,
        act=raw_act,
        evaluate=oc.make_offline_evaluate(env, env_params, raw_act),
        config=config,
        env_steps_per_iteration=num_envs,
    )
