"""BEAR: Q-learning under an MMD support constraint MMD(pi, pi_beta) <= epsilon, with a Lagrange multiplier.

Kumar, Fu, Tucker & Levine, "Stabilizing Off-Policy Q-Learning via Bootstrapping Error Reduction", NeurIPS 2019.

* **Behaviour model** ``pi_beta``: the paper uses a VAE; here a mixture of ``behaviour_components`` tanh-Gaussians
  fitted by maximum likelihood and pretrained inside ``init``, then frozen (shared with BRAC:
  :func:`jaxrl.nets.mixture.make_tanh_gaussian_mixture`, :func:`~jaxrl.algos.offline.brac.pretrain_behaviour`).
  Only its samples are used.
* **Critic** (:func:`jaxrl.losses.offline.bear_critic_loss`): an ensemble of ``num_critics`` Q-functions regressed on
  ``y = r + discount (1 - d) max_m [lambda min_e Qhat_e(s', a'_m) + (1 - lambda) max_e Qhat_e(s', a'_m)]`` over
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

from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline.brac import BehaviourConfig, Nets, Networks, State, make_constrained
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import bear_actor_loss, bear_critic_loss, lagrange_loss

__all__ = ["Config", "make", "State", "Nets"]

LOG_LAGRANGE_BOUNDS = (-5.0, 10.0)


@config
class Config(BehaviourConfig):
    lagrange_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of log lambda")
    epsilon: float = hyper(0.05, low=0, help="MMD threshold of the support constraint MMD(pi, pi_beta) <= epsilon")
    sigma: float = hyper(20.0, low=0, low_open=True, help="kernel width of the MMD")
    init_lagrange: float = hyper(1.0, low=0, low_open=True, help="initial Lagrange multiplier lambda")
    lambda_mix: float = hyper(0.75, low=0, high=1, help="target weight of the ensemble min (1 - lambda_mix on the max)")
    kernel: str = static("laplacian", choices=("laplacian", "gaussian"), help="MMD kernel")
    num_mmd_samples: int = static(5, low=1, help="samples of pi and of pi_beta per state in the MMD")
    num_target_samples: int = static(10, low=1, help="actions of pi(.|s') per state in the critic's target")


def make(config: Config, env, env_params) -> Algorithm:
    lagrange_tx = optax.adam(config.lagrange_learning_rate)

    def critic_loss(n: Networks, r: Nets):
        return lambda p, batch, key: bear_critic_loss(
            p,
            batch,
            key,
            q_apply=n.critic.apply,
            target_q_params=r.critic.target,
            policy_apply=n.actor.apply,
            policy_params=r.actor.params,
            discount=config.discount,
            lambda_mix=config.lambda_mix,
            num_samples=config.num_target_samples,
        )

    def actor_loss(n: Networks, r: Nets, critic_params):
        return lambda p, batch, key: bear_actor_loss(
            p,
            batch,
            key,
            policy_apply=n.actor.apply,
            q_apply=n.critic.apply,
            q_params=critic_params,
            behaviour_apply=n.behaviour.apply,
            behaviour_params=r.behaviour,
            log_lagrange=r.multiplier.params,
            epsilon=config.epsilon,
            num_samples=config.num_mmd_samples,
            kernel=config.kernel,
            sigma=config.sigma,
        )

    def multiplier(record, a_metrics):
        grad = jax.grad(lagrange_loss)(record.params, a_metrics["mmd"], config.epsilon)
        record = ts.apply_gradient(lagrange_tx, record, grad)
        return record._replace(params=jnp.clip(record.params, *LOG_LAGRANGE_BOUNDS)), {}

    return make_constrained(
        config,
        env,
        env_params,
        "bear",
        log_multiplier=jnp.clip(jnp.log(jnp.asarray(config.init_lagrange, jnp.float32)), *LOG_LAGRANGE_BOUNDS),
        multiplier_tx=lagrange_tx,
        critic_loss=critic_loss,
        actor_loss=actor_loss,
        multiplier=multiplier,
    )
