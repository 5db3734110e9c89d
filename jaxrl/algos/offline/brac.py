"""Behaviour-regularised actor-critic (Wu, Tucker & Nachum, "Behavior Regularized Offline RL", 2019): BRAC-p and
BRAC-v with a KL penalty to a behaviour policy fitted by maximum likelihood.

* **Behaviour policy** ``pi_beta``: a mixture of ``behaviour_components`` tanh-Gaussians (1 = one tanh-Gaussian)
  fitted by maximum likelihood, ``-mean log pi_beta(a|s)`` (:func:`jaxrl.losses.offline.bc_nll_loss`). It is
  **pretrained inside ``init``** for ``behaviour_pretrain_updates`` updates (a ``lax.scan`` in the same compiled
  init program, so seeds x grid points pretrain their own behaviour models in one program) and then frozen,
  as the BRAC paper does (behaviour first, then the agent). A mixture keeps a multi-modal behaviour policy's
  modes (the line world's "mostly left, sometimes right"); a single Gaussian would average them.
* **Critic** (:func:`jaxrl.losses.offline.brac_critic_loss`): an ensemble of ``num_critics`` Q-functions,
  ``y = r + discount (1 - d) [min_e Qhat_e(s', a') - alpha D(s')]``, ``a' ~ pi(.|s')``; the ``- alpha D`` term only in
  BRAC-v (value penalty); BRAC-p (policy penalty) drops it.
* **Actor** (:func:`jaxrl.losses.offline.brac_actor_loss`): tanh-Gaussian, ``L = mean_s [alpha D(s) - min_e
  Q_e(s, a)]``, ``a ~ pi(.|s)`` reparameterised, with ``D = KL(pi || pi_beta)`` estimated from
  ``num_kl_samples`` samples of ``pi`` (:func:`jaxrl.losses.offline.kl_divergence_mc`). The KL already contains
  ``-H(pi)``, so no separate entropy bonus is added.
* **Penalty weight** ``alpha``: fixed (``tune_alpha=False``), or tuned by dual ascent on ``log alpha`` towards
  ``KL <= target_kl`` (``tune_alpha=True``, :func:`jaxrl.losses.offline.lagrange_loss`; ``alpha`` starts at
  ``config.alpha``).

The KL penalty matches the behaviour *distribution*: the optimal penalised policy is ``pi ~ pi_beta exp(Q /
alpha)``, so a unimodal actor keeps the behaviour's main mode unless the Q-gain of another mode exceeds ``alpha``
times the log-ratio of the modes' masses (see :mod:`jaxrl.tasks.line_world`).

Registry: ``brac_p`` (:mod:`jaxrl.algos.offline.brac_p`) and ``brac_v`` (:mod:`jaxrl.algos.offline.brac_v`), thin
modules whose ``Config`` fixes ``variant``. One ``step`` = ``updates_per_iteration`` gradient updates;
``total_env_steps`` counts them (the behaviour pretraining is not counted).

The behaviour model (:func:`jaxrl.nets.mixture.make_tanh_gaussian_mixture`) and its pretraining
(:func:`pretrain_behaviour`) are shared with :mod:`jaxrl.algos.offline.bear`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import bc_nll_loss, brac_actor_loss, brac_critic_loss, lagrange_loss
from jaxrl.nets.mixture import make_tanh_gaussian_mixture

__all__ = [
    "Config",
    "BehaviourConfig",
    "make",
    "make_brac",
    "make_constrained",
    "pretrain_behaviour",
    "State",
    "Nets",
    "Networks",
]

LOG_ALPHA_BOUNDS = (-10.0, 10.0)
State = oc.State  # ``extra``: the behaviour model's final training negative log-likelihood (a diagnostic)


@config
class BehaviourConfig(oc.TargetConfig):
    """The fields of an actor-critic constrained to a pretrained behaviour model (BRAC, BEAR)."""

    behaviour_learning_rate: float = hyper(
        1e-3, low=0, low_open=True, help="Adam step size of the behaviour model's pretraining"
    )
    num_critics: int = static(2, low=1, help="Q ensemble size (targets use the minimum)")
    behaviour_components: int = static(5, low=1, help="tanh-Gaussian mixture components of the behaviour model")
    behaviour_pretrain_updates: int = static(
        10_000, low=0, help="maximum-likelihood updates of the behaviour model in init"
    )


@config
class Config(BehaviourConfig):
    alpha: float = hyper(1.0, low=0, help="KL penalty weight (its initial value when tune_alpha)")
    target_kl: float = hyper(0.1, help="KL target of the dual ascent on alpha (only with tune_alpha)")
    alpha_learning_rate: float = hyper(
        1e-3, low=0, low_open=True, help="Adam step size of log alpha (only with tune_alpha)"
    )
    variant: str = static("p", choices=("p", "v"), help="p: penalty in the actor only; v: in the value target too")
    tune_alpha: bool = static(False, choices=(True, False), help="tune alpha by dual ascent towards target_kl")
    num_kl_samples: int = static(4, low=1, help="samples of pi per state in the Monte-Carlo KL estimate")


class Nets(NamedTuple):
    actor: ts.TrainState
    critic: ts.TrainState  # leading [num_critics] ensemble axis; with its target
    behaviour: Any  # the behaviour model's params, frozen after the pretraining in init
    multiplier: ts.TrainState  # log of the constraint's weight: BRAC's alpha, BEAR's Lagrange multiplier


def pretrain_behaviour(
    behaviour: nets.Network, params: Any, sample: Callable, key: jax.Array, *, num_updates: int, learning_rate: Any
) -> tuple[Any, jax.Array]:
    """``num_updates`` Adam steps of maximum likelihood (:func:`bc_nll_loss`) on batches ``sample(key)``, under
    ``lax.scan``; returns the params and the mean negative log-likelihood of the last 10% of the updates."""
    if num_updates == 0:
        return params, jnp.zeros((), jnp.float32)
    tx = optax.adam(learning_rate)

    def update(record, batch):
        record, m = oc.grad_step(tx, record, bc_nll_loss, batch, policy_apply=behaviour.apply)
        return record, m["bc_loss"]

    record, losses = oc.run_updates(
        update, ts.create(tx, params), key, num_updates, sample=lambda _, k: sample(k), reduce=lambda m: m
    )
    return record.params, jnp.mean(losses[-max(1, num_updates // 10) :])


class Networks(NamedTuple):
    actor: nets.Network  # tanh-Gaussian
    behaviour: nets.Network  # tanh-Gaussian mixture
    critic: nets.Network  # the num_critics ensemble


def make_constrained(
    config, env, env_params, name: str, *, log_multiplier: Any, multiplier_tx, critic_loss, actor_loss, multiplier
) -> Algorithm:
    """A tanh-Gaussian actor, a ``num_critics`` Q ensemble, the mixture behaviour model (pretrained by maximum
    likelihood inside ``init``) and the constraint's log-weight starting at ``log_multiplier``. Each update steps
    the critic on ``critic_loss(networks, nets)`` and the actor on ``actor_loss(networks, nets, critic_params)``
    (each a loss ``(params, batch, key)``), the weight by ``multiplier(record, actor_metrics) -> (record,
    metrics)``, then the target. Metrics add ``behaviour_nll``."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    n = Networks(
        nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation),
        make_tanh_gaussian_mixture(n_act, config.hidden, config.activation, config.behaviour_components),
        nets.make_ensemble(nets.make_value_network(config.hidden, config.activation), config.num_critics),
    )
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, ck, bk, pk = jax.random.split(key, 5)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        state = oc.init_state(env, config, key, None)
        beh, nll = pretrain_behaviour(
            n.behaviour,
            n.behaviour.init(bk, o[None]),
            lambda k: oc.sample_batch(env, state.sampler, k, config.batch_size),
            pk,
            num_updates=config.behaviour_pretrain_updates,
            learning_rate=config.behaviour_learning_rate,
        )
        critic = ts.create(tx, n.critic.init(ck, o, a), target=True)
        weight = ts.create(multiplier_tx, jnp.asarray(log_multiplier, jnp.float32))
        return dataclasses.replace(state, nets=Nets(ts.create(tx, n.actor.init(ak, o)), critic, beh, weight), extra=nll)

    def update(state: State, batch, critic_key, actor_key):
        records = state.nets
        critic, c_metrics = oc.grad_step(tx, records.critic, critic_loss(n, records), batch, critic_key)
        actor, a_metrics = oc.grad_step(tx, records.actor, actor_loss(n, records, critic.params), batch, actor_key)
        weight, w_metrics = multiplier(records.multiplier, a_metrics)
        critic = ts.soft_update(critic, config.tau)
        metrics = {
            **{k: v for k, v in c_metrics.items() if k != "q"},
            "q_data": c_metrics["q"],
            **{k: v for k, v in a_metrics.items() if k != "q"},
            **w_metrics,
            "q_policy": oc.q_at_mode(n.actor.apply, actor.params, n.critic.apply, critic.params, batch.obs),
            "mc_return": jnp.mean(batch.extras.mc_returns),
        }
        return dataclasses.replace(state, nets=Nets(actor, critic, records.behaviour, weight)), metrics

    inner = oc.make_step(env, config, update, update_keys=2)

    def step(state: State):
        state, metrics = inner(state)
        return state, {**metrics, "behaviour_nll": state.extra}

    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(n.actor))


def make_brac(config, env, env_params, name: str, value_penalty: bool) -> Algorithm:
    """BRAC-v (``value_penalty=True``) or BRAC-p on ``config`` (this module's :class:`Config` fields)."""
    alpha_of = lambda r: jnp.exp(r.multiplier.params) if config.tune_alpha else jnp.asarray(config.alpha, jnp.float32)
    multiplier_tx = optax.adam(config.alpha_learning_rate)

    def critic_loss(n: Networks, r: Nets):
        kw = dict(q_apply=n.critic.apply, target_q_params=r.critic.target, policy_apply=n.actor.apply)
        return lambda p, batch, key: brac_critic_loss(
            p,
            batch,
            key,
            policy_params=r.actor.params,
            behaviour_apply=n.behaviour.apply,
            behaviour_params=r.behaviour,
            discount=config.discount,
            alpha=alpha_of(r),
            value_penalty=value_penalty,
            num_samples=config.num_kl_samples,
            **kw,
        )

    def actor_loss(n: Networks, r: Nets, critic_params):
        kw = dict(policy_apply=n.actor.apply, q_apply=n.critic.apply, behaviour_apply=n.behaviour.apply)
        return lambda p, batch, key: brac_actor_loss(
            p,
            batch,
            key,
            q_params=critic_params,
            behaviour_params=r.behaviour,
            alpha=alpha_of(r),
            num_samples=config.num_kl_samples,
            **kw,
        )

    def multiplier(record, a_metrics):
        alpha = {"alpha": jnp.exp(record.params) if config.tune_alpha else jnp.asarray(config.alpha, jnp.float32)}
        if not config.tune_alpha:
            return record, alpha
        record = ts.apply_gradient(
            multiplier_tx, record, jax.grad(lagrange_loss)(record.params, a_metrics["kl"], config.target_kl)
        )
        return record._replace(params=jnp.clip(record.params, *LOG_ALPHA_BOUNDS)), alpha

    log_alpha = jnp.log(jnp.maximum(jnp.asarray(config.alpha, jnp.float32), 1e-8))
    return make_constrained(
        config,
        env,
        env_params,
        name,
        log_multiplier=log_alpha,
        multiplier_tx=multiplier_tx,
        critic_loss=critic_loss,
        actor_loss=actor_loss,
        multiplier=multiplier,
    )


def make(config: Config, env, env_params) -> Algorithm:
    return make_brac(config, env, env_params, f"brac_{config.variant}", value_penalty=config.variant == "v")
