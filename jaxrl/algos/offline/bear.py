"""BEAR: Q-learning under an MMD support constraint MMD(pi, pi_beta) <= epsilon, with a Lagrange multiplier.

Kumar, Fu, Tucker & Levine, "Stabilizing Off-Policy Q-Learning via Bootstrapping Error Reduction", NeurIPS 2019.

* **Behaviour model** ``pi_beta``: the paper uses a VAE; here a mixture of ``behaviour_components`` tanh-Gaussians
  fitted by maximum likelihood and pretrained inside ``init``, then frozen (shared with BRAC:
  :func:`jaxrl.nets.mixture.make_tanh_gaussian_mixture`, :func:`~jaxrl.algos.offline.brac.pretrain_behaviour`).
  Only its samples are used.
* **Critic** (:func:`jaxrl.losses.offline.bear_critic_loss`): an ensemble of ``num_critics`` Q-functions regressed on
  ``y = r + gamma (1 - d) max_m [lambda min_e Qhat_e(s', a'_m) + (1 - lambda) max_e Qhat_e(s', a'_m)]`` over
  ``num_target_samples`` actions ``a'_m ~ pi(.|s')`` (the paper's convex combination, ``lambda = 0.75``).
* **Actor** (:func:`jaxrl.losses.offline.bear_actor_loss`): tanh-Gaussian, ``L = mean_s [-min_e Q_e(s, a_1) +
  lambda_L (MMD(s) - epsilon)]`` with ``MMD(s)`` between ``num_mmd_samples`` reparameterised samples of ``pi`` and
  of ``pi_beta`` (``kernel``, ``sigma``; :func:`jaxrl.losses.offline.mmd_squared`).
* **Lagrange multiplier** ``lambda_L = exp(log_lagrange)``: dual ascent on ``log_lagrange``
  (:func:`jaxrl.losses.offline.lagrange_loss`), raised while ``MMD > epsilon``, clipped to ``[-5, 10]`` in log
  space (as the reference code does).

Why a support constraint: for a near-deterministic policy at action ``z``, ``MMD^2 = k(z, z) - 2 E_beta k(z, b) +
E k(b, b')``, so ``MMD <= epsilon`` reads ``E_{b ~ pi_beta} k(z, b) >= c``: the kernel-smoothed behaviour density at
``z`` must exceed a threshold. Every action the behaviour policy takes often enough passes, whatever its rank,
and actions it never takes fail. The kernel width ``sigma`` sets the action scale of "support"; the defaults
(laplacian, ``sigma = 20``, ``epsilon = 0.05``: BEAR's MuJoCo settings in this library's kernel convention) are
wide, and a small action space such as :mod:`jaxrl.tasks.line_world`'s wants a narrower kernel (``sigma`` about
the spread of one behaviour mode).

Evaluation acts with the tanh of the actor's mean (the paper picks the best of 10 samples by Q). One ``step`` =
``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them (the behaviour pretraining is not
counted).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.brac import OptState, Params, State, deterministic_or_sample, make_constrained_parts
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import bear_actor_loss, bear_critic_loss, ensemble_q, lagrange_loss

__all__ = ["Config", "make", "State", "Params", "OptState"]

LOG_LAGRANGE_BOUNDS = (-5.0, 10.0)


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor and critic)")
    behaviour_learning_rate: float = hyper(
        1e-3, low=0, low_open=True, help="Adam step size of the behaviour model's pretraining"
    )
    lagrange_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of log lambda")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    epsilon: float = hyper(0.05, low=0, help="MMD threshold of the support constraint MMD(pi, pi_beta) <= epsilon")
    sigma: float = hyper(20.0, low=0, low_open=True, help="kernel width of the MMD")
    init_lagrange: float = hyper(1.0, low=0, low_open=True, help="initial Lagrange multiplier lambda")
    lambda_mix: float = hyper(0.75, low=0, high=1, help="target weight of the ensemble min (1 - lambda_mix on the max)")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    kernel: str = static("laplacian", choices=("laplacian", "gaussian"), help="MMD kernel")
    num_mmd_samples: int = static(5, low=1, help="samples of pi and of pi_beta per state in the MMD")
    num_target_samples: int = static(10, low=1, help="actions of pi(.|s') per state in the critic's target")
    num_critics: int = static(2, low=1, help="Q ensemble size")
    behaviour_components: int = static(5, low=1, help="tanh-Gaussian mixture components of the behaviour model")
    behaviour_pretrain_updates: int = static(
        10_000, low=0, help="maximum-likelihood updates of the behaviour model in init"
    )
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor, critic, behaviour model)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


def make(config: Config, env, env_params) -> Algorithm:
    parts = make_constrained_parts(
        config,
        env,
        env_params,
        "bear",
        log_multiplier=jnp.clip(jnp.log(jnp.asarray(config.init_lagrange, jnp.float32)), *LOG_LAGRANGE_BOUNDS),
        multiplier_learning_rate=config.lagrange_learning_rate,
    )
    env, actor_net, behaviour, q_single, lagrange_tx = (
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
            c_grads, c_metrics = jax.grad(bear_critic_loss, has_aux=True)(
                params.critic,
                batch,
                critic_key,
                q_apply=q_single.apply,
                target_q_params=params.target_critic,
                policy_apply=actor_net.apply,
                policy_params=params.actor,
                discount=config.gamma,
                lambda_mix=config.lambda_mix,
                num_samples=config.num_target_samples,
            )
            c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
            critic = optax.apply_updates(params.critic, c_updates)

            a_grads, a_metrics = jax.grad(bear_actor_loss, has_aux=True)(
                params.actor,
                batch,
                actor_key,
                policy_apply=actor_net.apply,
                q_apply=q_single.apply,
                q_params=critic,
                behaviour_apply=behaviour.apply,
                behaviour_params=params.behaviour,
                log_lagrange=params.log_multiplier,
                epsilon=config.epsilon,
                num_samples=config.num_mmd_samples,
                kernel=config.kernel,
                sigma=config.sigma,
            )
            a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
            actor = optax.apply_updates(params.actor, a_updates)

            l_grad = jax.grad(lagrange_loss)(params.log_multiplier, a_metrics["mmd"], config.epsilon)
            l_updates, l_opt = lagrange_tx.update(l_grad, opt_state.multiplier, params.log_multiplier)
            log_lagrange = jnp.clip(optax.apply_updates(params.log_multiplier, l_updates), *LOG_LAGRANGE_BOUNDS)

            target = optax.incremental_update(critic, params.target_critic, config.tau)
            pi = nets.mode(actor_net.apply(actor, batch.observations))
            q_policy = jnp.mean(jnp.min(ensemble_q(q_single.apply, critic, batch.observations, pi), axis=0))
            metrics = {
                "critic_loss": c_metrics["critic_loss"],
                "q_data": c_metrics["q"],
                "target": c_metrics["target"],
                "actor_loss": a_metrics["actor_loss"],
                "mmd": a_metrics["mmd"],
                "lagrange": a_metrics["lagrange"],
                "q_policy": q_policy,
                "mc_return": jnp.mean(batch.mc_returns),
            }
            return (
                Params(actor, critic, target, params.behaviour, log_lagrange),
                OptState(a_opt, c_opt, l_opt),
            ), metrics

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
