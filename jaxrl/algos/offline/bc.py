"""Behaviour cloning (and filtered / %BC): regress a deterministic tanh actor onto the dataset's actions.

``L = mean_{b,i} (tanh(f(s_b))_i - a_{b,i})^2`` (:func:`jaxrl.losses.offline.bc_mse_loss`) on batches of the
dataset; with ``top_fraction < 1`` only the rows of the top ``top_fraction`` of episodes by return are sampled
(filtered BC, "%BC" of Chen et al. 2021). One ``step`` = ``updates_per_iteration`` gradient updates; the config's
``total_env_steps`` counts gradient updates (nothing interacts with an env in training).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import bc_mse_loss, filtered_bc_mask


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size")
    top_fraction: float = hyper(
        1.0, low=0, high=1, low_open=True, help="clone only the top fraction of episodes by return (1 = plain BC)"
    )
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


@struct.dataclass
class State:
    params: Any
    opt_state: Any
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array


def make_actor(n_act: int, hidden, activation) -> nets.Network:
    """Deterministic actor ``a = tanh(f(s))`` in ``[-1, 1]^A``."""
    mlp = nets.make_mlp(n_act, hidden, activation)
    return nets.Network(mlp.init, lambda p, obs: jnp.tanh(mlp.apply(p, obs)))


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "bc")
    actor = make_actor(n_act, config.hidden, config.activation)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak = jax.random.split(key)
        params = actor.init(ak, jnp.zeros((n_obs,), jnp.float32))
        index = oc.dataset_index(config)
        rows = filtered_bc_mask(oc.member(env, index), config.top_fraction)
        return State(params, tx.init(params), oc.init_sampler(env, index, 0.99, rows), key, jnp.zeros((), jnp.int32))

    def step(state: State):
        def update(carry, key):
            params, opt_state = carry
            batch = oc.sample_batch(env, state.sampler, key, config.batch_size)
            grads, metrics = jax.grad(bc_mse_loss, has_aux=True)(params, batch, actor_apply=actor.apply)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), k, config.updates_per_iteration
        )
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    def act(state, obs, key, deterministic: bool = True):
        return actor.apply(state.params, obs)

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
