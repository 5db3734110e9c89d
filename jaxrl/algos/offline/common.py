"""The offline family's shape: batch sampling with a traced dataset index, the step skeleton (key split, batch
sampling, updates under ``lax.scan``) and evaluation with normalised scores; base configs in :mod:`.base_config`.
Each algorithm's config has a traced integer ``dataset_index``; a run reads its dataset with a dynamic index, so
``grid={"dataset_index": [0, 1, 2]}`` trains seeds x datasets in one compiled program. The datasets are closed over by
the compiled step as constants; an update samples ``batch_size`` rows of its dataset uniformly among the valid rows,
as a :class:`~jaxrl.data.types.Transition` whose ``extras`` are :class:`Extras` (each row's Monte-Carlo return). An
algorithm is then its config, its networks (one :class:`~jaxrl.algos.train_state.TrainState` record each, in
:attr:`State.nets`) and one update function run by :func:`make_step`.

Sampling, and the normalisation of observations and rewards (``normalize_states``, ``normalize_rewards``):
:mod:`.sampling`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import nets as nets_lib
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm, make_evaluate
from jaxrl.algos.offline.base_config import EntropyConfig, OfflineConfig, TargetConfig  # noqa: F401 (re-exported)
from jaxrl.algos.offline.sampling import (  # noqa: F401  (the sampler's API, re-exported)
    Extras,
    Sampler,
    dataset_index,
    init_sampler,
    member,
    raw_obs_act,
    sample_batch,
)
from jaxrl.data import dataset as ds
from jaxrl.envs.offline import (  # noqa: F401  (the offline env's API, re-exported)
    ACTION_EPS,
    OfflineEnv,
    check_batch_size,
    check_dataset_index,
    check_offline_env,
    load_offline_env,
    make_offline_env,
)


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
