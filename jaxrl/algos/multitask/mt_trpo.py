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
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import mt_ppo
from jaxrl.algos.single.ppo import ActorCritic, minibatch_epochs
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import value_loss
from jaxrl.losses.trpo import natural_gradient_step, surrogate_objective

__all__ = ["Config", "State", "make"]


@config
class Config:
    max_kl: float = hyper(0.01, low=0, low_open=True, help="trust-region size: mean KL(pi_old || pi) per step")
    cg_damping: float = hyper(0.1, low=0, help="damping added to the Fisher-vector product")
    backtrack_ratio: float = hyper(
        0.8, low=0, high=1, low_open=True, high_open=True, help="line-search step shrink factor"
    )
    vf_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="value-function Adam step size")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    gae_lambda: float = hyper(0.97, low=0, high=1, help="GAE lambda")
    num_envs: int = static(16, low=1, help="parallel environments in all; a multiple of the number of tasks")
    num_steps: int = static(128, low=1, help="rollout length per iteration")
    cg_iters: int = static(10, low=1, help="conjugate-gradient iterations")
    max_backtracks: int = static(10, low=1, help="line-search steps tried")
    vf_epochs: int = static(5, low=1, help="value-regression passes over each rollout")
    num_minibatches: int = static(4, low=1, help="value-regression minibatches per pass")
    hidden: tuple[int, ...] = static((64, 64), help="hidden layer widths (policy and value)")
    activation: str = static("tanh", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    normalize_advantages: bool = static(True, choices=(True, False), help="standardise advantages per batch")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps (all tasks)")

    def __post_init__(self):
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ConfigError(
                f"mt_trpo.Config: num_envs * num_steps = {self.num_envs * self.num_steps} must be "
                f"divisible by num_minibatches = {self.num_minibatches}"
            )
        if self.total_env_steps < self.env_steps_per_iteration:
            raise ConfigError(
                f"mt_trpo.Config.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"num_envs * num_steps = {self.env_steps_per_iteration}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.env_steps_per_iteration


@struct.dataclass
class State:
    params: ActorCritic
    vf_opt_state: Any
    env_state: Any
    obs: jax.Array  # [N, O + D]
    key: jax.Array
    iteration: jax.Array


def make(config: Config, env, env_params) -> Algorithm:
    _, m = mt_ppo.check_suite(config, env, "mt_trpo")
    train_env = mt_ppo.make_train_env(env, m)
    discrete = is_discrete(train_env, env_params)
    n_act, n_obs = action_dim(train_env, env_params), obs_dim(train_env, env_params)
    if discrete:
        policy_net = nets.make_categorical_policy(n_act, config.hidden, config.activation)
    else:
        policy_net = nets.make_gaussian_policy(n_act, config.hidden, config.activation)
    value_net = nets.make_value_network(config.hidden, config.activation)
    vf_tx = optax.adam(config.vf_learning_rate)

    def init(key: jax.Array) -> State:
        key, pk, vk, ek = jax.random.split(key, 4)
        dummy = jnp.zeros((n_obs,), jnp.float32)
        params = ActorCritic(policy_net.init(pk, dummy), value_net.init(vk, dummy))
        obs, env_state = train_env.reset(ek, env_params)
        return State(params, vf_tx.init(params.value), env_state, obs, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        dist = policy_net.apply(state.params.policy, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def step(state: State):
        key, rollout_key, perm_key = jax.random.split(state.key, 3)
        params = state.params

        def behaviour(obs, k):
            dist = policy_net.apply(params.policy, obs)
            action = dist.sample(seed=k)
            return action, (dist.log_prob(action), value_net.apply(params.value, obs))

        env_state, obs, tr, infos = rollout_lib.rollout(
            train_env, env_params, behaviour, state.env_state, state.obs, rollout_key, config.num_steps
        )
        old_log_prob, value = tr.extras
        v_tp1 = value_net.apply(params.value, tr.next_obs)
        discount = config.gamma * (1.0 - tr.terminated.astype(jnp.float32))
        adv, target = generalized_advantage_estimation(
            tr.reward, value, v_tp1, discount, jnp.logical_or(tr.terminated, tr.truncated), config.gae_lambda
        )
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # [T, N, ...] -> [T * N, ...]
        b_obs, b_action, b_old_logp, b_adv, b_target = map(flat, (tr.obs, tr.action, old_log_prob, adv, target))
        if config.normalize_advantages:
            b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)

        # --- policy: one natural-gradient trust-region step on the whole batch
        old_dist = policy_net.apply(jax.lax.stop_gradient(params.policy), b_obs)

        def surrogate(p):
            return surrogate_objective(policy_net.apply(p, b_obs).log_prob(b_action), b_old_logp, b_adv)

        def mean_kl(p):
            return jnp.mean(old_dist.kl_divergence(policy_net.apply(p, b_obs)))

        policy, trpo_metrics = natural_gradient_step(
            params.policy,
            surrogate,
            mean_kl,
            config.max_kl,
            cg_iters=config.cg_iters,
            damping=config.cg_damping,
            backtrack_ratio=config.backtrack_ratio,
            max_backtracks=config.max_backtracks,
        )
        entropy = jnp.mean(policy_net.apply(policy, b_obs).entropy())

        # --- value function: regression on the GAE targets
        def vf_grad(vp, batch):
            o, g = batch
            loss, grads = jax.value_and_grad(lambda q: value_loss(value_net.apply(q, o), g, g))(vp)
            return grads, {"value_loss": loss}

        vparams, vf_opt, vf_metrics = minibatch_epochs(
            vf_grad,
            vf_tx,
            params.value,
            state.vf_opt_state,
            (b_obs, b_target),
            perm_key,
            config.vf_epochs,
            config.num_minibatches,
        )
        metrics = {**trpo_metrics, **vf_metrics, "entropy": entropy}
        metrics.update(rollout_lib.episode_metrics(infos))
        metrics.update(mt_ppo.tracker_metrics(env_state))
        return State(ActorCritic(policy, vparams), vf_opt, env_state, obs, key, state.iteration + 1), metrics

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=mt_ppo.make_task_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
