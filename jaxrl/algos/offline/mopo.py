"""MOPO: Model-based Offline Policy Optimization (Yu et al., NeurIPS 2020), and the machinery MOReL shares.

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
   the rest model rows.

MOPO's penalised reward is ``r~(s, a) = r^(s, a) - lambda u(s, a)``, ``u = max_i ||Sigma_i(s, a)||_F`` over the
elites (:func:`jaxrl.losses.offline.mopo_penalized_reward`). ``uncertainty="variance"`` is the paper's equation
(Frobenius norm of the diagonal covariance); the default ``"std"`` uses the standard deviations instead
(``max_i ||sigma_i||_2``), as the authors' code and most reimplementations do. Model rollouts do not terminate:
the dataset carries no termination function of its env (right for Pendulum; see :mod:`.models`).

The phase is chosen per iteration by :func:`phase_cond`, which stays a real branch when the runs vmapped
together are in the same phase (they always are in :func:`jaxrl.run.train`: every run starts at iteration 0 and
advances in lockstep), so the run loop does not pay for both phases every iteration.

Metrics: ``model_loss``, ``model_nll``, ``model_mse`` (model phase; 0 in the policy phase), ``model_val_mse``
(mean held-out error of the elites, in normalised units; 0 until the model phase ends), SAC's ``critic_loss``,
``actor_loss``, ``entropy``,
``alpha``, ``q_policy``, and the rollouts' ``model_reward`` (mean penalised reward), ``model_buffer_size`` and the
penalty's own (MOPO: ``uncertainty``; MOReL: ``halted``, ``threshold``); 0 in the model phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import models, sac_offline
from jaxrl.algos.offline.sac_offline import OptState, Params
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.losses.offline import mopo_penalized_reward, mopo_uncertainty

__all__ = ["Config", "make", "make_model_based", "State", "ModelBasedConfig"]


@config
class ModelBasedConfig(oc.CountsUpdates):
    """The fields MOPO and MOReL share (model, rollouts, SAC)."""

    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="SAC Adam step size (actor, critic, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, high_open=True, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial SAC temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    real_ratio: float = hyper(
        0.05, low=0, high=1, help="fraction of each SAC batch drawn from the dataset (the rest from model rollouts)"
    )
    model_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="dynamics-model Adam step size")
    model_weight_decay: float = hyper(2.5e-5, low=0, help="dynamics-model decoupled weight decay (AdamW)")
    logvar_bound_coef: float = hyper(0.01, low=0, help="weight of the learned log-variance bounds in the model loss")
    holdout_fraction: float = hyper(0.1, low=0, high=0.5, help="fraction of rows held out to pick the elites")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    model_train_updates: int = static(
        5_000,
        low=1,
        help="gradient updates of the model phase (the first updates of the run; rounded up to whole iterations)",
    )
    num_members: int = static(7, low=1, help="dynamics models in the ensemble")
    num_elites: int = static(5, low=1, help="members model rollouts sample from (lowest held-out error)")
    model_hidden: tuple[int, ...] = static((200, 200, 200), help="hidden layer widths of each dynamics model")
    model_activation: str = static("silu", choices=tuple(nets.core.ACTIVATIONS), help="dynamics-model activation")
    rollout_horizon: int = static(5, low=1, help="model steps per rollout (h)")
    rollout_batch_size: int = static(1_000, low=1, help="dataset start states rolled out per iteration")
    model_retain_iterations: int = static(10, low=1, help="iterations of rollouts the model buffer keeps")
    batch_size: int = static(256, low=1, help="minibatch size (model and SAC)")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation (SAC)")
    total_env_steps: int = static(25_000, low=1, help="training length in gradient updates, model phase included")

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__module__.rsplit(".", 1)[-1]
        if self.num_elites > self.num_members:
            raise ConfigError(
                f"{name}.Config.num_elites={self.num_elites} is out of range: must be <= "
                f"num_members = {self.num_members}"
            )
        if self.model_iterations >= self.num_iterations:
            raise ConfigError(
                f"{name}.Config.model_train_updates={self.model_train_updates} is out of range: the "
                f"model phase ({self.model_iterations} iterations of {self.updates_per_iteration} "
                f"updates) must leave policy iterations in total_env_steps = {self.total_env_steps} "
                f"({self.num_iterations} iterations)"
            )

    @property
    def model_iterations(self) -> int:
        return math.ceil(self.model_train_updates / self.updates_per_iteration)

    @property
    def model_buffer_size(self) -> int:
        return self.rollout_batch_size * self.rollout_horizon * self.model_retain_iterations


@config
class Config(ModelBasedConfig):
    penalty_coef: float = hyper(1.0, low=0, help="lambda: weight of the uncertainty penalty")
    uncertainty: str = static(
        "std",
        choices=("std", "variance"),
        help="u(s, a) = max_i ||sigma_i|| (std, the authors' code) or max_i ||Sigma_i||_F "
        "(variance, the paper's equation)",
    )


# ------------------------------------------------------------------------------------------- the maker


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
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


def make_model_based(config, env, env_params, name: str, penalty: Penalty) -> Algorithm:
    """The model-based offline maker: a dynamics ensemble, then SAC on real + model data whose model rewards
    (and halting) come from ``penalty`` (MOPO's uncertainty penalty, MOReL's unknown-state HALT)."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = sac_offline.make_networks(config, n_act)  # SAC's actor and twin critic, and its update
    actor_net, critic_net = networks.actor, networks.critic
    dyn = models.make_dynamics(
        n_obs, n_act, hidden=config.model_hidden, num_members=config.num_members, activation=config.model_activation
    )
    tx = optax.adam(config.learning_rate)
    sac_step = sac_offline.make_keyed_update(config, networks, tx, n_act)
    model_tx = optax.adamw(config.model_learning_rate, weight_decay=config.model_weight_decay)
    B, H = config.batch_size, config.rollout_horizon
    model_iterations = config.model_iterations

    def init(key):
        key, ak, ck, mk, hk = jax.random.split(key, 5)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = critic_net.init(ck, o, a)
        params = Params(actor_net.init(ak, o), critic, critic, jnp.log(jnp.asarray(config.init_alpha, jnp.float32)))
        opt_state = OptState(tx.init(params.actor), tx.init(params.critic), tx.init(params.log_alpha))
        index = oc.dataset_index(config)
        data = oc.member(env, index)
        valid = (data.mask > 0).astype(jnp.float32)
        holdout = valid * (jax.random.uniform(hk, valid.shape) < config.holdout_fraction)
        train_rows = valid * (1.0 - holdout)
        norm = models.fit_normalizer(data.observations, data.actions, data.rewards, data.next_observations, train_rows)
        model = models.init_model(dyn, model_tx, mk, norm, config.num_elites)
        example = Transition(o, a, jnp.zeros(()), o, jnp.zeros(()), jnp.zeros(()), ())
        buffer = replay.init(example, config.model_buffer_size)
        sampler = oc.init_sampler(env, index, config.gamma)
        model_sampler = oc.init_sampler(env, index, config.gamma, train_rows)
        reward_max = jnp.max(jnp.abs(data.rewards) * valid)
        return State(
            params, opt_state, model, buffer, sampler, model_sampler, holdout, reward_max, key, jnp.zeros((), jnp.int32)
        )

    # ---- model phase

    def finalise_model(state: State) -> models.ModelState:
        """Elites by held-out error and the data's largest disagreement (once, at the model phase's end)."""
        data = oc.member(env, state.sampler.index)
        valid = (data.mask > 0).astype(jnp.float32)
        has_holdout = jnp.sum(state.holdout) > 0
        weights = jnp.where(has_holdout, state.holdout, valid)
        m = state.model
        val_mse = _chunked_member_mse(m, data, weights)
        train_rows = valid * (1.0 - state.holdout)
        maxd = models.max_disagreement(dyn, m.params, m.norm, data.observations, data.actions, train_rows)
        return m.replace(
            val_mse=val_mse, elites=models.select_elites(val_mse, config.num_elites), max_disagreement=maxd
        )

    def _chunked_member_mse(m, data, weights, chunk: int = 4096):
        def per_row(xs):
            o, a, r, n = xs
            return models.member_mse(dyn, m.params, m.norm, o[None], a[None], r[None], n[None])

        err = jax.lax.map(
            per_row,
            (data.observations, data.actions, data.rewards, data.next_observations),
            batch_size=min(chunk, data.rewards.shape[0]),
        )  # [N, E]
        return jnp.sum(err * weights[:, None], axis=0) / jnp.maximum(jnp.sum(weights), 1.0)

    def model_phase(state: State, key):
        def update(model, key):
            batch = oc.sample_batch(env, state.model_sampler, key, B)
            return models.fit_step(dyn, model_tx, model, batch, logvar_bound_coef=config.logvar_bound_coef)

        model, m = oc.scan_updates(update, state.model, key, config.updates_per_iteration)
        state = state.replace(model=model)
        last = state.iteration == model_iterations - 1
        model = phase_cond(last, finalise_model, lambda s: s.model, state)
        return state.replace(model=model), {"model_loss": m["model_loss"], "model_nll": m["nll"], "model_mse": m["mse"]}

    # ---- policy phase

    def sac_update(carry, key, *, sampler, buffer, n_real):
        params, opt_state = carry
        real_key, model_key, critic_key, actor_key = jax.random.split(key, 4)
        real = oc.sample_batch(env, sampler, real_key, B)
        fake = replay.sample(buffer, model_key, B)
        is_real = jnp.arange(B) < n_real
        mix = lambda r, f: jnp.where(is_real.reshape((B,) + (1,) * (r.ndim - 1)), r, f.astype(r.dtype))
        batch = oc.Batch(
            mix(real.observations, fake.obs),
            mix(real.actions, fake.action),
            mix(real.rewards, fake.reward),
            mix(real.next_observations, fake.next_obs),
            mix(real.terminals, fake.terminated),
            jnp.zeros((B,), jnp.float32),
        )
        params, opt_state, metrics = sac_step(params, opt_state, batch, critic_key, actor_key)
        # q_data and mc_return mean little on a batch of mostly model rows (whose MC return is unknown)
        return (params, opt_state), {k: v for k, v in metrics.items() if k not in ("q_data", "mc_return")}

    def policy_phase(state: State, key):
        start_key, roll_key, upd_key = jax.random.split(key, 3)
        starts = oc.sample_batch(env, state.sampler, start_key, config.rollout_batch_size).observations
        actor = state.params.actor
        policy = lambda obs, k: actor_net.apply(actor, obs).sample(seed=k)

        def model_step(k, obs, action):
            pred = models.sample_step(dyn, state.model, k, obs, action)
            reward, halt, info = penalty(config, state, pred)
            return pred.next_obs, reward, halt, info

        roll = models.rollout(roll_key, policy, starts, H, step=model_step)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        items = Transition(
            flat(roll.obs),
            flat(roll.action),
            flat(roll.reward),
            flat(roll.next_obs),
            flat(roll.terminated),
            jnp.zeros_like(flat(roll.terminated)),
            (),
        )
        valid = flat(roll.valid)
        buffer = replay.add_valid(state.buffer, items, valid)
        n_real = jnp.round(jnp.asarray(config.real_ratio, jnp.float32) * B).astype(jnp.int32)
        update = lambda c, k: sac_update(c, k, sampler=state.sampler, buffer=buffer, n_real=n_real)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), upd_key, config.updates_per_iteration
        )
        n_valid = jnp.maximum(jnp.sum(valid), 1.0)
        metrics = {
            **metrics,
            "model_reward": jnp.sum(items.reward * valid) / n_valid,
            "model_buffer_size": buffer.size.astype(jnp.float32),
            **jax.tree.map(lambda x: jnp.sum(flat(x) * valid) / n_valid, roll.info),
        }
        return state.replace(params=params, opt_state=opt_state, buffer=buffer), metrics

    def step(state: State):
        key, k = jax.random.split(state.key)
        model_shapes = jax.eval_shape(model_phase, state, k)[1]
        policy_shapes = jax.eval_shape(policy_phase, state, k)[1]
        zeros = lambda shapes: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def run_model(s, k):
            s, m = model_phase(s, k)
            return s, {**zeros(policy_shapes), **m}

        def run_policy(s, k):
            s, m = policy_phase(s, k)
            return s, {**m, **zeros(model_shapes)}

        state, metrics = phase_cond(state.iteration < model_iterations, run_model, run_policy, state, k)
        elites_mse = jnp.mean(state.model.val_mse[state.model.elites])
        metrics = {**metrics, "model_val_mse": elites_mse}
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    def act(state, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )


# ------------------------------------------------------------------------------------------------- MOPO


def mopo_penalty(config: Config, state: State, pred: models.Prediction):
    """``r~ = r^ - lambda max_{i in elites} ||Sigma_i||_F`` (or ``||sigma_i||`` with ``uncertainty="std"``);
    never halts."""
    var = pred.variance[state.model.elites]
    spread = var if config.uncertainty == "variance" else jnp.sqrt(var)
    reward = mopo_penalized_reward(pred.reward, spread, config.penalty_coef)
    return reward, jnp.zeros_like(reward), {"uncertainty": mopo_uncertainty(spread)}


def make(config: Config, env, env_params) -> Algorithm:
    return make_model_based(config, env, env_params, "mopo", mopo_penalty)
