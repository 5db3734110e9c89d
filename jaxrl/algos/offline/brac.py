"""Behaviour-regularised actor-critic (Wu, Tucker & Nachum, "Behavior Regularized Offline RL", 2019): BRAC-p and
BRAC-v with a KL penalty to a behaviour policy fitted by maximum likelihood.

* **Behaviour policy** ``pi_beta``: a mixture of ``behaviour_components`` tanh-Gaussians (1 = one tanh-Gaussian)
  fitted by maximum likelihood, ``-mean log pi_beta(a|s)`` (:func:`jaxrl.losses.offline.bc_nll_loss`). It is
  **pretrained inside ``init``** for ``behaviour_pretrain_updates`` updates (a ``lax.scan`` in the same compiled
  init program, so seeds x grid points pretrain their own behaviour models in one program) and then frozen,
  as the BRAC paper does (behaviour first, then the agent). A mixture keeps a multi-modal behaviour policy's
  modes (the line world's "mostly left, sometimes right"); a single Gaussian would average them.
* **Critic** (:func:`jaxrl.losses.offline.brac_critic_loss`): an ensemble of ``num_critics`` Q-functions,
  ``y = r + gamma (1 - d) [min_e Qhat_e(s', a') - alpha D(s')]``, ``a' ~ pi(.|s')``; the ``- alpha D`` term only in
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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import bc_nll_loss, brac_actor_loss, brac_critic_loss, ensemble_q, lagrange_loss
from jaxrl.nets.mixture import make_tanh_gaussian_mixture

__all__ = [
    "Config",
    "make",
    "make_brac",
    "make_constrained_parts",
    "ConstrainedParts",
    "pretrain_behaviour",
    "deterministic_or_sample",
    "State",
    "Params",
    "OptState",
]

LOG_ALPHA_BOUNDS = (-10.0, 10.0)


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor and critic)")
    behaviour_learning_rate: float = hyper(
        1e-3, low=0, low_open=True, help="Adam step size of the behaviour model's pretraining"
    )
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    alpha: float = hyper(1.0, low=0, help="KL penalty weight (its initial value when tune_alpha)")
    target_kl: float = hyper(0.1, help="KL target of the dual ascent on alpha (only with tune_alpha)")
    alpha_learning_rate: float = hyper(
        1e-3, low=0, low_open=True, help="Adam step size of log alpha (only with tune_alpha)"
    )
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    variant: str = static("p", choices=("p", "v"), help="p: penalty in the actor only; v: in the value target too")
    tune_alpha: bool = static(False, choices=(True, False), help="tune alpha by dual ascent towards target_kl")
    num_kl_samples: int = static(4, low=1, help="samples of pi per state in the Monte-Carlo KL estimate")
    num_critics: int = static(2, low=1, help="Q ensemble size (targets use the minimum)")
    behaviour_components: int = static(5, low=1, help="tanh-Gaussian mixture components of the behaviour model")
    behaviour_pretrain_updates: int = static(
        10_000, low=0, help="maximum-likelihood updates of the behaviour model in init"
    )
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor, critic, behaviour model)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


# ============================================================================================ behaviour model


def pretrain_behaviour(
    behaviour: nets.Network,
    params: Any,
    env: oc.OfflineEnv,
    sampler: oc.Sampler,
    key: jax.Array,
    *,
    num_updates: int,
    batch_size: int,
    learning_rate: Any,
) -> tuple[Any, jax.Array]:
    """``num_updates`` Adam steps of maximum likelihood (:func:`bc_nll_loss`) on the sampler's dataset, as one
    ``lax.scan``; returns the params and the mean negative log-likelihood of the last 10% of the updates."""
    if num_updates == 0:
        return params, jnp.zeros((), jnp.float32)
    tx = optax.adam(learning_rate)

    def update(carry, k):
        p, opt = carry
        batch = oc.sample_batch(env, sampler, k, batch_size)
        grads, m = jax.grad(bc_nll_loss, has_aux=True)(p, batch, policy_apply=behaviour.apply)
        upd, opt = tx.update(grads, opt, p)
        return (optax.apply_updates(p, upd), opt), m["bc_loss"]

    (params, _), losses = jax.lax.scan(update, (params, tx.init(params)), jax.random.split(key, num_updates))
    tail = max(1, num_updates // 10)
    return params, jnp.mean(losses[-tail:])


def deterministic_or_sample(actor_net: nets.Network):
    """``act(state, obs, key, deterministic)`` of a tanh-Gaussian actor stored at ``state.params.actor``."""

    def act(state, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    return act


# ==================================================================================================== BRAC


class Params(NamedTuple):
    actor: Any
    critic: Any  # leading [num_critics] ensemble axis
    target_critic: Any
    behaviour: Any  # frozen after the pretraining in init
    log_multiplier: jax.Array  # log of the constraint's weight: BRAC's alpha, BEAR's Lagrange multiplier


class OptState(NamedTuple):
    actor: Any
    critic: Any
    multiplier: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array
    behaviour_nll: jax.Array  # the behaviour model's final training negative log-likelihood (a diagnostic)


class ConstrainedParts(NamedTuple):
    """What BRAC and BEAR build alike: the checked env, the networks, the optimisers and ``init``."""

    env: oc.OfflineEnv
    actor_net: nets.Network
    behaviour: nets.Network
    q_single: nets.Network
    critic_net: nets.Network
    tx: optax.GradientTransformation
    multiplier_tx: optax.GradientTransformation
    init: Any


def make_constrained_parts(
    config, env, env_params, name: str, *, log_multiplier: Any, multiplier_learning_rate: Any
) -> ConstrainedParts:
    """A tanh-Gaussian actor, a ``num_critics`` Q ensemble, the mixture behaviour model (pretrained by maximum
    likelihood inside ``init``) and the constraint's log-weight starting at ``log_multiplier``."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    behaviour = make_tanh_gaussian_mixture(n_act, config.hidden, config.activation, config.behaviour_components)
    q_single = nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, config.num_critics)
    tx = optax.adam(config.learning_rate)
    multiplier_tx = optax.adam(multiplier_learning_rate)

    def init(key):
        key, ak, ck, bk, pk = jax.random.split(key, 5)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        beh, nll = pretrain_behaviour(
            behaviour,
            behaviour.init(bk, o[None]),
            env,
            sampler,
            pk,
            num_updates=config.behaviour_pretrain_updates,
            batch_size=config.batch_size,
            learning_rate=config.behaviour_learning_rate,
        )
        critic = critic_net.init(ck, o, a)
        log_w = jnp.asarray(log_multiplier, jnp.float32)
        params = Params(actor_net.init(ak, o), critic, critic, beh, log_w)
        opt_state = OptState(tx.init(params.actor), tx.init(critic), multiplier_tx.init(log_w))
        return State(params, opt_state, sampler, key, jnp.zeros((), jnp.int32), nll)

    return ConstrainedParts(env, actor_net, behaviour, q_single, critic_net, tx, multiplier_tx, init)


def make_brac(config, env, env_params, name: str, value_penalty: bool) -> Algorithm:
    """BRAC-v (``value_penalty=True``) or BRAC-p on ``config`` (this module's :class:`Config` fields)."""
    parts = make_constrained_parts(
        config,
        env,
        env_params,
        name,
        log_multiplier=jnp.log(jnp.maximum(jnp.asarray(config.alpha, jnp.float32), 1e-8)),
        multiplier_learning_rate=config.alpha_learning_rate,
    )
    env, actor_net, behaviour, q_single, alpha_tx = (
        parts.env,
        parts.actor_net,
        parts.behaviour,
        parts.q_single,
        parts.multiplier_tx,
    )
    tx, init = parts.tx, parts.init

    def step(state: State):
        def update(carry, key):
            params, opt_state = carry
            batch_key, critic_key, actor_key = jax.random.split(key, 3)
            batch = oc.sample_batch(env, state.sampler, batch_key, config.batch_size)
            alpha = jnp.exp(params.log_multiplier) if config.tune_alpha else jnp.asarray(config.alpha, jnp.float32)
            c_grads, c_metrics = jax.grad(brac_critic_loss, has_aux=True)(
                params.critic,
                batch,
                critic_key,
                q_apply=q_single.apply,
                target_q_params=params.target_critic,
                policy_apply=actor_net.apply,
                policy_params=params.actor,
                behaviour_apply=behaviour.apply,
                behaviour_params=params.behaviour,
                discount=config.gamma,
                alpha=alpha,
                value_penalty=value_penalty,
                num_samples=config.num_kl_samples,
            )
            c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
            critic = optax.apply_updates(params.critic, c_updates)

            a_grads, a_metrics = jax.grad(brac_actor_loss, has_aux=True)(
                params.actor,
                batch,
                actor_key,
                policy_apply=actor_net.apply,
                q_apply=q_single.apply,
                q_params=critic,
                behaviour_apply=behaviour.apply,
                behaviour_params=params.behaviour,
                alpha=alpha,
                num_samples=config.num_kl_samples,
            )
            a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
            actor = optax.apply_updates(params.actor, a_updates)

            log_alpha, al_opt = params.log_multiplier, opt_state.multiplier
            if config.tune_alpha:
                al_grad = jax.grad(lagrange_loss)(params.log_multiplier, a_metrics["kl"], config.target_kl)
                al_updates, al_opt = alpha_tx.update(al_grad, opt_state.multiplier, params.log_multiplier)
                log_alpha = jnp.clip(optax.apply_updates(params.log_multiplier, al_updates), *LOG_ALPHA_BOUNDS)

            target = optax.incremental_update(critic, params.target_critic, config.tau)
            pi = nets.mode(actor_net.apply(actor, batch.observations))
            q_policy = jnp.mean(jnp.min(ensemble_q(q_single.apply, critic, batch.observations, pi), axis=0))
            metrics = {
                "critic_loss": c_metrics["critic_loss"],
                "q_data": c_metrics["q"],
                "target": c_metrics["target"],
                "kl_tp1": c_metrics["kl_tp1"],
                "actor_loss": a_metrics["actor_loss"],
                "kl": a_metrics["kl"],
                "q_policy": q_policy,
                "alpha": alpha,
                "mc_return": jnp.mean(batch.mc_returns),
            }
            return (Params(actor, critic, target, params.behaviour, log_alpha), OptState(a_opt, c_opt, al_opt)), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), k, config.updates_per_iteration
        )
        metrics["behaviour_nll"] = state.behaviour_nll
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    act = deterministic_or_sample(actor_net)
    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )


def make(config: Config, env, env_params) -> Algorithm:
    return make_brac(config, env, env_params, f"brac_{config.variant}", value_penalty=config.variant == "v")
