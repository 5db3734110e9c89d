"""Multi-task TRPO (MT-TRPO): one TRPO agent on the state ``(s, omega)`` of every task of a suite.

The env side is MT-PPO's (:mod:`jaxrl.algos.multitask.mt_ppo`): ``K * envs_per_task`` copies, blocked task
assignment, observations ``concat(s, omega_k)``, per-task episode tracking. One ``step``:

1. collect ``num_steps`` x ``num_envs`` transitions with the current policy (all tasks at once);
2. GAE advantages (truncated episodes bootstrap from their final observation), standardised over the batch;
3. one trust-region policy step (:func:`jaxrl.losses.trpo.natural_gradient_step`) on the whole batch:
   maximise ``L(theta) = E[pi_theta(a|s, omega) / pi_old(a|s, omega) A]`` (a mean over all tasks' samples, i.e.
   the task-summed surrogate up to a constant) subject to ``E[KL(pi_old || pi_theta)] <= max_kl``, via conjugate
   gradient on Fisher-vector products and a backtracking line search;
4. value regression: ``vf_epochs`` passes of ``num_minibatches`` Adam steps on ``0.5 (V(s, omega) - G)^2``.

Metrics add the TRPO diagnostics (``kl``, ``step_fraction``, ``accepted``, ...), the per-task training return
``[K]`` and its spread; ``evaluate`` returns ``{"eval_return": [K], "eval_success": [K], ...}`` like MT-PPO.

Aggregators: with ``per_task_gradients`` (``aggregator`` other than "sum", or ``monitor_conflicts``) the policy
gradient ``g`` of step 3 is the aggregation of the per-task surrogate gradients (of ``-L_k / K``, negated back),
computed BEFORE the natural-gradient solve: conjugate gradient then preconditions the aggregated ``g``, and the
line search checks the whole-batch surrogate and KL as before. Metrics then add ``num_conflicts`` and
``mean_cosine``. The value regression is unchanged. Every iteration, whatever the aggregator, the metrics add
:mod:`jaxrl.algos.multitask.monitor`'s ``grad_*`` statistics of the per-task surrogate gradients (whole rollout).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import on_policy, train_state
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import monitor, mt_ppo
from jaxrl.algos.on_policy import ActorCritic, RolloutConfig, State
from jaxrl.algos.train_state import TrainState
from jaxrl.config import config, hyper, static
from jaxrl.envs.wrappers import obs_dim
from jaxrl.losses.ppo import value_loss
from jaxrl.losses.trpo import natural_gradient_step, surrogate_objective

__all__ = ["Config", "State", "TRPOTrain", "make"]


@config
class Config(RolloutConfig, mt_ppo.TaskGradientConfig):
    max_kl: float = hyper(0.01, low=0, low_open=True, help="trust-region size: mean KL(pi_old || pi) per step")
    cg_damping: float = hyper(0.1, low=0, help="damping added to the Fisher-vector product")
    backtrack_ratio: float = hyper(
        0.8, low=0, high=1, low_open=True, high_open=True, help="line-search step shrink factor"
    )
    vf_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="value-function Adam step size")
    gae_lambda: float = hyper(0.97, low=0, high=1, help="GAE lambda")
    num_envs: int = static(16, low=1, help="parallel environments in all; a multiple of the number of tasks")
    # 16 x 256 = 4096 samples per trust-region step (garage's TRPO batch, ~4000): every step moves the policy by
    # about max_kl even once returns are maximal, so its direction must not be mostly sampling noise (2048 samples:
    # evaluation dips below 450 in 9 of 144 late seed-task evaluations on cartpole-params-4, 4096: 2 of 144)
    num_steps: int = static(256, low=1, help="rollout length per iteration")
    cg_iters: int = static(10, low=1, help="conjugate-gradient iterations")
    max_backtracks: int = static(10, low=1, help="line-search steps tried")
    vf_epochs: int = static(5, low=1, help="value-regression passes over each rollout")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps (all tasks)")


class TRPOTrain(NamedTuple):
    policy: TrainState  # opt_state: the aggregator's state (None: the plain surrogate gradient)
    value: TrainState

    @property
    def params(self) -> ActorCritic:
        return ActorCritic(self.policy.params, self.value.params)


def trpo_step(config: Config, policy_net, params, batch, advantage, gradient=None):
    """One trust-region policy step on the flat ``batch`` (:func:`natural_gradient_step`): ``(params, metrics)``."""
    old_dist = policy_net.apply(jax.lax.stop_gradient(params), batch.obs)

    def surrogate(p):
        return surrogate_objective(policy_net.apply(p, batch.obs).log_prob(batch.action), batch.log_prob, advantage)

    def mean_kl(p):
        return jnp.mean(old_dist.kl_divergence(policy_net.apply(p, batch.obs)))

    return natural_gradient_step(
        params,
        surrogate,
        mean_kl,
        config.max_kl,
        cg_iters=config.cg_iters,
        damping=config.cg_damping,
        backtrack_ratio=config.backtrack_ratio,
        max_backtracks=config.max_backtracks,
        gradient=gradient,
    )


def task_surrogate_gradients(policy_net, params, tasks, num_tasks: int):
    """The per-task gradients of ``-L_k / K`` (``tasks = (obs, action, old log-prob, advantage) [K, ...]``)."""

    def loss_k(p, batch):
        obs, action, old_log_prob, adv = batch
        return -surrogate_objective(policy_net.apply(p, obs).log_prob(action), old_log_prob, adv), {}

    grads, _ = mt_ppo.task_gradients(loss_k, num_tasks)(params, tasks)
    return grads


def aggregated_gradient(agg, policy: TrainState, grads, key):
    """The per-task surrogate gradients ``grads`` (:func:`task_surrogate_gradients`) combined by ``agg`` (in the
    descent convention of :mod:`jaxrl.grads`, so the ascent direction is its negation)."""
    direction, agg_state = agg.update(grads, policy.opt_state, policy.params, key=key)
    return jax.tree.map(jnp.negative, direction), policy._replace(opt_state=agg_state)


def make_learn(config: Config, policy_net, value_net, vf_tx, agg, num_tasks: int):
    """``learn(train, data [T, N], key)``: the policy's trust-region step, then the value regression."""

    def vf_grad(vp, batch):
        o, g = batch
        loss, grads = jax.value_and_grad(lambda q: value_loss(value_net.apply(q, o), g, g))(vp)
        return grads, {"value_loss": loss}

    def learn(train: TRPOTrain, data, key):
        flat = on_policy.flatten_time(data)
        adv = flat.advantage
        if config.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy, gradient = train.policy, None
        tasks = mt_ppo.by_task((data.obs, data.action, data.log_prob, adv.reshape(data.advantage.shape)), num_tasks)
        grads = task_surrogate_gradients(policy_net, policy.params, tasks, num_tasks)
        metrics = monitor.gradient_stats(grads)  # the whole rollout's per-task gradients (one batch gradient)
        if agg is not None:
            key, agg_key = jax.random.split(key)
            gradient, policy = aggregated_gradient(agg, policy, grads, agg_key)
            metrics.update(mt_ppo.conflict_metrics(policy.opt_state))
        params, trpo_metrics = trpo_step(config, policy_net, policy.params, flat, adv, gradient)
        entropy = jnp.mean(policy_net.apply(params, flat.obs).entropy())
        update = on_policy.gradient_update(vf_grad, vf_tx)
        value, vf_metrics = on_policy.minibatch_epochs(
            update, train.value, (flat.obs, flat.target), key, config.vf_epochs, config.num_minibatches
        )
        metrics = {**trpo_metrics, **vf_metrics, "entropy": entropy, **metrics}
        return TRPOTrain(policy._replace(params=params), value), metrics

    return learn


def make(config: Config, env, env_params) -> Algorithm:
    k, m = mt_ppo.check_suite(config, env, "mt_trpo")
    train_env = mt_ppo.make_train_env(env, m)
    policy_net, value_net = on_policy.actor_critic_nets(train_env, env_params, config)
    n_obs = obs_dim(train_env, env_params)
    agg = mt.make_aggregator(config.aggregator, k) if config.per_task_gradients else None
    vf_tx = optax.adam(config.vf_learning_rate)

    def init(key: jax.Array) -> State:
        key, params, env_carry = on_policy.init_actor_critic(key, policy_net, value_net, n_obs, train_env, env_params)
        policy = TrainState(params.policy, None if agg is None else agg.init(params.policy))
        train = TRPOTrain(policy, train_state.create(vf_tx, params.value))
        return State(train, env_carry, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        dist = policy_net.apply(state.params.policy, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    rollout = on_policy.make_rollout(
        train_env, env_params, policy_net, value_net, config, metrics_fn=mt_ppo.tracker_metrics
    )
    return Algorithm(
        init=init,
        step=on_policy.make_step(rollout, make_learn(config, policy_net, value_net, vf_tx, agg, k)),
        act=act,
        evaluate=mt_ppo.make_task_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
