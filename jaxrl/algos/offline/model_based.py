"""The model-based offline machinery MOPO and MOReL share (:func:`make_model_based`).

Two phases in one compiled program (``total_env_steps`` counts gradient updates of both):

1. **Model phase**, the first ``model_train_updates`` updates (rounded up to whole iterations): an ensemble of
   Gaussian dynamics models (:mod:`jaxrl.algos.offline.models`) is fitted by maximum likelihood to
   ``[s' - s, r]`` on the dataset, minus a held-out fraction (``holdout_fraction``). At its last iteration the
   held-out error of every member picks the ``num_elites`` elites, and the ensemble's largest next-state
   disagreement on the data is recorded (MOReL's threshold scale).
2. **Policy phase**: each iteration rolls the current policy out for ``rollout_horizon`` model steps from
   ``rollout_batch_size`` dataset states (``lax.scan``; a random elite per row and step), with the penalised
   reward of the method, into a model replay buffer that keeps the last ``model_retain_iterations``
   iterations' rollouts (:mod:`jaxrl.data.replay`); then ``updates_per_iteration`` SAC updates
   (:mod:`jaxrl.losses.sac`) on batches whose first ``round(real_ratio * batch_size)`` rows are dataset rows and
   the rest model rows. A predicted state that breaks the env's termination rule (:mod:`jaxrl.envs.termination`:
   a hopper, walker2d or ant that fell) ends its rollout as terminal, as MBPO's and MOPO's static functions do.

The phase is chosen per iteration by :func:`phase_cond`, which stays a real branch when the runs vmapped
together are in the same phase (they always are in :func:`jaxrl.run.train`: every run starts at iteration 0 and
advances in lockstep), so the run loop does not pay for both phases every iteration.

Metrics: ``model_loss``, ``model_nll``, ``model_mse`` (model phase; 0 in the policy phase), ``model_val_mse``
(mean held-out error of the elites, in normalised units; 0 until the model phase ends), SAC's ``critic_loss``,
``actor_loss``, ``entropy``, ``alpha``, ``q_policy``, and the rollouts' ``model_reward`` (mean penalised reward),
``model_buffer_size``, ``model_terminated`` (fraction of model steps that fell, for an env with a termination rule)
and the penalty's own (MOPO: ``uncertainty``; MOReL: ``halted``, ``threshold``); 0 in the model phase.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import models, sac_offline
from jaxrl.algos.offline.base_config import ModelBasedConfig
from jaxrl.algos.offline.sac_offline import Nets
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.envs.termination import termination_fn

__all__ = ["ModelBasedConfig", "State", "Penalty", "make_model_based"]


@struct.dataclass
class State:
    nets: Nets  # SAC's records
    model: models.ModelState
    buffer: replay.ReplayState  # model rollouts (Transition rows)
    sampler: oc.Sampler  # every valid row: SAC's real batches and rollout start states
    model_sampler: oc.Sampler  # the model's training rows (valid and not held out)
    holdout: jax.Array  # [N] float32: rows held out from model training (elite selection)
    reward_max: jax.Array  # max |r| over the dataset (MOReL's R_max scale)
    key: jax.Array
    iteration: jax.Array


# penalty(config, state, prediction) -> (reward [B], halt [B], per-row metrics {name: [B]}); the metrics are
# logged as their mean over the valid model steps of an iteration.
Penalty = Callable[[Any, State, models.Prediction], tuple[jax.Array, jax.Array, dict]]


class _Parts(NamedTuple):
    config: Any
    env: oc.OfflineEnv
    actor: Any  # SAC's tanh-Gaussian actor network
    dyn: models.DynamicsEnsemble
    model_tx: Any
    sac_step: Callable  # sac_offline.make_keyed_update's update
    penalty: Penalty
    done: Callable[[jax.Array], jax.Array] | None  # the env's termination rule on observations, if it has one


def _init(p: _Parts, tx, critic_net, n_obs: int, n_act: int, key) -> State:
    config, env = p.config, p.env
    key, ak, ck, mk, hk = jax.random.split(key, 5)
    o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
    records = Nets(
        ts.create(tx, p.actor.init(ak, o)),
        ts.create(tx, critic_net.init(ck, o, a), target=True),
        ts.create(tx, jnp.log(jnp.asarray(config.init_alpha, jnp.float32))),
    )
    index = oc.dataset_index(config)
    data = oc.member(env, index)
    valid = (data.stacked_mask() > 0).astype(jnp.float32)
    holdout = valid * (jax.random.uniform(hk, valid.shape) < config.holdout_fraction)
    train_rows = valid * (1.0 - holdout)
    norm = models.fit_normalizer(data.observations, data.actions, data.rewards, data.next_observations, train_rows)
    model = models.init_model(p.dyn, p.model_tx, mk, norm, config.num_elites)
    example = Transition(o, a, jnp.zeros(()), o, jnp.zeros(()), jnp.zeros(()), ())
    buffer = replay.init(example, config.model_buffer_size)
    sampler = oc.init_sampler(env, index, config.discount)
    model_sampler = oc.init_sampler(env, index, config.discount, train_rows)
    reward_max = jnp.max(jnp.abs(data.rewards) * valid)
    return State(records, model, buffer, sampler, model_sampler, holdout, reward_max, key, jnp.zeros((), jnp.int32))


def _finalise_model(p: _Parts, state: State) -> models.ModelState:
    """Elites by held-out error and the data's largest disagreement (once, at the model phase's end)."""
    data = oc.member(p.env, state.sampler.index)
    valid = (data.stacked_mask() > 0).astype(jnp.float32)
    weights = jnp.where(jnp.sum(state.holdout) > 0, state.holdout, valid)
    m = state.model

    def per_row(xs):
        o, a, r, n = xs
        return models.member_mse(p.dyn, m.params, m.norm, o[None], a[None], r[None], n[None])

    err = jax.lax.map(
        per_row,
        (data.observations, data.actions, data.rewards, data.next_observations),
        batch_size=min(4096, data.rewards.shape[0]),
    )  # [N, E]
    val_mse = jnp.sum(err * weights[:, None], axis=0) / jnp.maximum(jnp.sum(weights), 1.0)
    train_rows = valid * (1.0 - state.holdout)
    maxd = models.max_disagreement(p.dyn, m.params, m.norm, data.observations, data.actions, train_rows)
    return dataclasses.replace(
        m, val_mse=val_mse, elites=models.select_elites(val_mse, p.config.num_elites), max_disagreement=maxd
    )


def _model_phase(p: _Parts, state: State, key):
    config = p.config
    model, m = oc.run_updates(
        lambda model, batch: models.fit_step(
            p.dyn, p.model_tx, model, batch, logvar_bound_coef=config.logvar_bound_coef
        ),
        state.model,
        key,
        config.updates_per_iteration,
        sample=lambda _, k: oc.sample_batch(p.env, state.model_sampler, k, config.batch_size),
    )
    state = dataclasses.replace(state, model=model)
    last = state.iteration == config.model_iterations - 1
    model = phase_cond(last, lambda s: _finalise_model(p, s), lambda s: s.model, state)
    return dataclasses.replace(state, model=model), {
        "model_loss": m["model_loss"],
        "model_nll": m["nll"],
        "model_mse": m["mse"],
    }


def _mixed_sample(p: _Parts, sampler, buffer, n_real):
    """``sample(carry, real_key, model_key)``: a batch whose first ``n_real`` rows are dataset rows, the rest
    model rows (whose Monte-Carlo return is unknown: 0)."""
    B = p.config.batch_size

    def sample(_, real_key, model_key):
        zeros = jnp.zeros((B,), jnp.float32)  # no truncation flags; no Monte-Carlo returns
        real = oc.sample_batch(p.env, sampler, real_key, B)._replace(truncated=zeros, extras=oc.Extras(zeros))
        fake = replay.sample(buffer, model_key, B)._replace(truncated=zeros, extras=oc.Extras(zeros))
        is_real = jnp.arange(B) < n_real
        mix = lambda r, f: jnp.where(is_real.reshape((B,) + (1,) * (r.ndim - 1)), r, f.astype(r.dtype))
        return jax.tree.map(mix, real, fake)

    return sample


def _policy_phase(p: _Parts, state: State, key):
    config = p.config
    start_key, roll_key, upd_key = jax.random.split(key, 3)
    starts = oc.sample_batch(p.env, state.sampler, start_key, config.rollout_batch_size).obs
    actor = state.nets.actor.params
    policy = lambda obs, k: p.actor.apply(actor, obs).sample(seed=k)

    def model_step(k, obs, action):
        pred = models.sample_step(p.dyn, state.model, k, obs, action)
        reward, halt, info = p.penalty(config, state, pred)
        if p.done is not None:  # the env's own ending (a fall): terminal, with the model's (penalised) reward
            fell = p.done(pred.next_obs)
            halt, info = jnp.maximum(halt.astype(jnp.float32), fell), {**info, "model_terminated": fell}
        return pred.next_obs, reward, halt, info

    roll = models.rollout(roll_key, policy, starts, config.rollout_horizon, step=model_step)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    terminated = flat(roll.terminated)
    items = Transition(
        flat(roll.obs),
        flat(roll.action),
        flat(roll.reward),
        flat(roll.next_obs),
        terminated,
        jnp.zeros_like(terminated),
        (),
    )
    valid = flat(roll.valid)
    buffer = replay.add_valid(state.buffer, items, valid)
    n_real = jnp.round(jnp.asarray(config.real_ratio, jnp.float32) * config.batch_size).astype(jnp.int32)

    def update(records, batch, critic_key, actor_key):
        records, metrics = p.sac_step(records, batch, critic_key, actor_key)
        # q_data and mc_return mean little on a batch of mostly model rows (whose MC return is unknown)
        return records, {k: v for k, v in metrics.items() if k not in ("q_data", "mc_return")}

    sample = _mixed_sample(p, state.sampler, buffer, n_real)
    records, metrics = oc.run_updates(
        update, state.nets, upd_key, config.updates_per_iteration, sample=sample, sample_keys=2, update_keys=2
    )
    n_valid = jnp.maximum(jnp.sum(valid), 1.0)
    metrics = {
        **metrics,
        "model_reward": jnp.sum(items.reward * valid) / n_valid,
        "model_buffer_size": buffer.size.astype(jnp.float32),
        **jax.tree.map(lambda x: jnp.sum(flat(x) * valid) / n_valid, roll.info),
    }
    return dataclasses.replace(state, nets=records, buffer=buffer), metrics


def make_model_based(config, env, env_params, name: str, penalty: Penalty) -> Algorithm:
    """The model-based offline maker: a dynamics ensemble, then SAC on real + model data whose model rewards
    (and halting) come from ``penalty`` (MOPO's uncertainty penalty, MOReL's unknown-state HALT)."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = sac_offline.make_networks(config, n_act)  # SAC's actor and twin critic, and its update
    dyn = models.make_dynamics(
        n_obs, n_act, hidden=config.model_hidden, num_members=config.num_members, activation=config.model_activation
    )
    tx = optax.adam(config.learning_rate)
    model_tx = optax.adamw(config.model_learning_rate, weight_decay=config.model_weight_decay)
    sac_step = sac_offline.make_keyed_update(config, networks, tx, n_act)
    p = _Parts(config, env, networks.actor, dyn, model_tx, sac_step, penalty, termination_fn(env.env_name))
    model_phase, policy_phase = functools.partial(_model_phase, p), functools.partial(_policy_phase, p)

    def step(state: State):
        key, k = jax.random.split(state.key)
        zeros = lambda fn: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, state, k)[1])
        model_zeros, policy_zeros = zeros(model_phase), zeros(policy_phase)

        def run_model(s, k):
            s, m = model_phase(s, k)
            return s, {**policy_zeros, **m}

        def run_policy(s, k):
            s, m = policy_phase(s, k)
            return s, {**m, **model_zeros}

        state, metrics = phase_cond(state.iteration < config.model_iterations, run_model, run_policy, state, k)
        metrics = {**metrics, "model_val_mse": jnp.mean(state.model.val_mse[state.model.elites])}
        return dataclasses.replace(state, key=key, iteration=state.iteration + 1), metrics

    init = lambda key: _init(p, tx, networks.critic, n_obs, n_act, key)
    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(networks.actor))
