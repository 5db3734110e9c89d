"""The offline family's shape: batch sampling with a traced dataset index, the step skeleton (key split, batch
sampling, updates under ``lax.scan``) and evaluation with normalised scores; base configs in :mod:`.base_config`.
Each algorithm's config has a traced integer ``dataset_index``; a run reads its dataset with a dynamic index, so
``grid={"dataset_index": [0, 1, 2]}`` trains seeds x datasets in one compiled program. The datasets are closed over by
the compiled step as constants; an update samples ``batch_size`` rows of its dataset uniformly among the valid rows,
as a :class:`~jaxrl.data.types.Transition` whose ``extras`` are :class:`Extras` (each row's Monte-Carlo return). An
algorithm is then its config, its networks (one :class:`~jaxrl.algos.train_state.TrainState` record each, in
:attr:`State.nets`) and one update function run by :func:`make_step`.

**State normalisation** (``config.normalize_states``, TD3+BC's section 5; CORL's BC, TD3+BC, IQL, CQL and AWAC):
the sampler holds the run's dataset's per-feature mean and std (over its valid rows, std + 1e-3), every sampled
``obs`` / ``next_obs`` is standardised with them, and :func:`algorithm`'s ``act`` standardises the env's raw
observations the same way, so a trained state acts in the real env as it is.

**Reward scaling** (``config.normalize_rewards``, IQL's locomotion setting): every reward, and so every
Monte-Carlo return, is multiplied by ``horizon / (max - min)`` over the dataset's episode returns (IQL's code:
``1000 / (max - min)`` on D4RL locomotion, whose episodes are 1000 steps), held in the sampler as
``reward_scale``. Evaluation returns and normalised scores stay in the env's own units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import nets as nets_lib
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm, make_evaluate
from jaxrl.algos.offline.base_config import EntropyConfig, OfflineConfig, TargetConfig  # noqa: F401 (re-exported)
from jaxrl.data import dataset as ds
from jaxrl.data.dataset import Dataset
from jaxrl.data.types import Transition
from jaxrl.envs.offline import (  # noqa: F401  (the offline env's API, re-exported)
    ACTION_EPS,
    OfflineEnv,
    check_batch_size,
    check_dataset_index,
    check_offline_env,
    load_offline_env,
    make_offline_env,
)


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


@struct.dataclass
class State:
    """An offline algorithm's state: its trained networks, its sampler, key and iteration count."""

    nets: Any  # a NamedTuple of TrainState records (one per trained network)
    sampler: Sampler
    key: jax.Array
    iteration: jax.Array
    extra: Any = None  # per algorithm: TD3's update count, AlgaeDICE's initial-state sampler, BRAC's behaviour NLL


def prepare(env, env_params, config, algo_name: str) -> tuple[OfflineEnv, int, int]:
    """The checks every offline ``make`` runs before compiling (an offline env, a batch that fits the smallest
    dataset, a dataset index in range) and the action and observation sizes: ``(env, action_dim, obs_dim)``."""
    from jaxrl.envs.wrappers import action_dim, obs_dim

    env = check_offline_env(env, algo_name)
    check_batch_size(env, config.batch_size, algo_name)
    check_dataset_index(env, config.dataset_index, algo_name)
    return env, action_dim(env, env_params), obs_dim(env, env_params)


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


def init_state(env: OfflineEnv, config, key, nets: Any, *, row_mask=None, extra=None) -> State:
    """A fresh :class:`State` over the config's dataset (``row_mask``: the sampleable rows, all valid if None)."""
    sampler = init_sampler(
        env, dataset_index(config), config.discount, row_mask, config.normalize_states, config.normalize_rewards
    )
    return State(nets, sampler, key, jnp.zeros((), jnp.int32), extra)


def mean_metrics(metrics: dict) -> dict:
    """Each metric's mean over the updates; a ``(value, weight)`` metric is averaged where ``weight`` is set (TD3's
    delayed actor metrics: over the updates that moved the actor)."""
    return {
        k: (jnp.sum(v[0] * v[1]) / jnp.maximum(jnp.sum(v[1]), 1) if isinstance(v, tuple) else jnp.mean(v))
        for k, v in metrics.items()
    }


def run_updates(
    update: Callable,
    carry: Any,
    key: jax.Array,
    num_updates: int,
    *,
    sample: Callable | None = None,
    sample_keys: int = 1,
    update_keys: int = 0,
    reduce: Callable = mean_metrics,
):
    """``num_updates`` updates under ``lax.scan``, one key each; the metrics reduced by ``reduce``.

    Without ``sample``: ``update(carry, key) -> (carry, metrics)``. With it, each update's key is split into
    ``sample_keys + update_keys`` keys (used as it is when that is 1), ``batch = sample(carry, *sample keys)``
    and ``update(carry, batch, *update keys) -> (carry, metrics)``.
    """

    def body(carry, key):
        if sample is None:
            return update(carry, key)
        n = sample_keys + update_keys
        keys = (key,) if n == 1 else tuple(jax.random.split(key, n))
        return update(carry, sample(carry, *keys[:sample_keys]), *keys[sample_keys:])

    carry, metrics = jax.lax.scan(body, carry, jax.random.split(key, num_updates))
    return carry, reduce(metrics)


def make_step(
    env: OfflineEnv,
    config,
    update: Callable,
    *,
    update_keys: int = 0,
    sample: Callable | None = None,
    sample_keys: int = 1,
    prepare_state: Callable | None = None,
) -> Callable:
    """The offline ``step(state) -> (state, metrics)``: ``updates_per_iteration`` updates
    ``update(state, batch, *keys) -> (state, metrics)`` (:func:`run_updates`) on batches of ``sample(state,
    *keys)`` (default: :func:`sample_batch` of ``config.batch_size`` rows of the state's dataset).
    ``prepare_state(state) -> state`` runs first (AWR's value targets)."""
    if sample is None:
        sample = lambda state, key: sample_batch(env, state.sampler, key, config.batch_size)

    def step(state: State):
        if prepare_state is not None:
            state = prepare_state(state)
        key, k = jax.random.split(state.key)
        state, metrics = run_updates(
            update,
            state,
            k,
            config.updates_per_iteration,
            sample=sample,
            sample_keys=sample_keys,
            update_keys=update_keys,
        )
        return dataclasses.replace(state, key=key, iteration=state.iteration + 1), metrics

    return step


def on_nets(update: Callable) -> Callable:
    """``update(nets, batch, *keys) -> (nets, metrics)`` lifted to :func:`make_step`'s ``update(state, ...)``."""

    def lifted(state: State, batch, *keys):
        nets, metrics = update(state.nets, batch, *keys)
        return dataclasses.replace(state, nets=nets), metrics

    return lifted


def grad_step(tx, record: ts.TrainState, loss: Callable, *args, **kwargs) -> tuple[ts.TrainState, dict]:
    """One optimiser step of ``record`` on ``loss(record.params, *args, **kwargs) -> (scalar, metrics)``."""
    grads, metrics = jax.grad(loss, has_aux=True)(record.params, *args, **kwargs)
    return ts.apply_gradient(tx, record, grads), metrics


def stochastic_act(actor: nets_lib.Network) -> Callable:
    """``act(state, obs, key, deterministic=False)`` of a distribution policy at ``state.nets.actor``."""

    def act(state, obs, key, deterministic: bool = False):
        dist = actor.apply(state.nets.actor.params, obs)
        return nets_lib.mode(dist) if deterministic else dist.sample(seed=key)

    return act


def q_at_mode(actor_apply: Callable, actor_params, q_apply: Callable, q_params, obs: jax.Array) -> jax.Array:
    """``mean_b min_e Q_e(s_b, mode pi(s_b))``: the critic's value of the deterministic policy (a metric)."""
    pi = nets_lib.mode(actor_apply(actor_params, obs))
    return jnp.mean(jnp.min(q_apply(q_params, obs, pi), axis=0))


def make_offline_evaluate(env: OfflineEnv, env_params: Any, act) -> Any:
    """``evaluate(state, key, n) -> {"eval_return", "normalized_score"}`` in the dataset's real env (the
    normalised score only when the dataset carries reference returns)."""
    base = make_evaluate(env.env, env_params, act)
    lo, hi = env.random_return, env.expert_return
    has_refs = lo is not None and hi is not None and hi != lo

    def evaluate(state, key, num_episodes: int):
        ret = base(state, key, num_episodes)
        out = {"eval_return": ret}
        if has_refs:
            out["normalized_score"] = ds.normalized_score(ret, lo, hi)
        return out

    return evaluate


def raw_obs_act(act: Callable, obs_stats: Callable[[Any], Any]) -> Callable:
    """``act`` (on standardised observations) as a policy of the env's raw ones: ``obs_stats(state)`` gives the
    statistics (None: no normalisation)."""

    def wrapped(state, obs, *args, **kwargs):
        return act(state, standardize(obs_stats(state), obs), *args, **kwargs)

    return wrapped


def algorithm(env: OfflineEnv, env_params: Any, config, init: Callable, step: Callable, act: Callable) -> Algorithm:
    """The offline :class:`Algorithm`; ``act`` sees observations as the update's batches do (standardised with
    ``normalize_states``), the returned one the env's."""
    if config.normalize_states:
        act = raw_obs_act(act, lambda state: state.sampler.obs_stats)
    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
