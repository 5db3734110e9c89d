"""Behaviour cloning (and filtered / %BC): regress a deterministic tanh actor onto the dataset's actions.

``L = mean_{b,i} (tanh(f(s_b))_i - a_{b,i})^2`` (:func:`jaxrl.losses.offline.bc_mse_loss`) on batches of the
dataset; with ``top_fraction < 1`` only the rows of the top ``top_fraction`` of episodes by return are sampled
(filtered BC, "%BC" of Chen et al. 2021). One ``step`` = ``updates_per_iteration`` gradient updates; the config's
``total_env_steps`` counts gradient updates (nothing interacts with an env in training).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper
from jaxrl.data.dataset import top_episodes_mask
from jaxrl.losses.offline import bc_mse_loss

State = oc.State


@config
class Config(oc.OfflineConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size")
    top_fraction: float = hyper(
        1.0, low=0, high=1, low_open=True, help="clone only the top fraction of episodes by return (1 = plain BC)"
    )


class Nets(NamedTuple):
    actor: ts.TrainState


def make_actor(n_act: int, hidden, activation) -> nets.Network:
    """Deterministic actor ``a = tanh(f(s))`` in ``[-1, 1]^A``."""
    mlp = nets.make_mlp(n_act, hidden, activation)
    return nets.Network(mlp.init, lambda p, obs: jnp.tanh(mlp.apply(p, obs)))


def deterministic_act(actor: nets.Network):
    """``act(state, obs, key, deterministic=True)`` of a deterministic actor at ``state.nets.actor``."""

    def act(state, obs, key, deterministic: bool = True):
        return actor.apply(state.nets.actor.params, obs)

    return act


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "bc")
    actor = make_actor(n_act, config.hidden, config.activation)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak = jax.random.split(key)
        record = ts.create(tx, actor.init(ak, jnp.zeros((n_obs,), jnp.float32)))
        rows = top_episodes_mask(oc.member(env, oc.dataset_index(config)), config.top_fraction)
        return oc.init_state(env, config, key, Nets(record), row_mask=rows)

    def update(nets: Nets, batch):
        record, metrics = oc.grad_step(tx, nets.actor, bc_mse_loss, batch, actor_apply=actor.apply)
        return Nets(record), metrics

    step = oc.make_step(env, config, oc.on_nets(update))
    return oc.algorithm(env, env_params, config, init, step, deterministic_act(actor))
