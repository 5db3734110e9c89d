"""The on-policy family: base configs and the step skeleton of PPO, MT-PPO, TE-PPO, MT-TRPO (and RL²'s learner).

One ``step`` (:func:`make_step`) splits the state's key into the next key, a rollout key and a learning key, then
``rollout(params, env, key) -> (env, data [T, B], metrics)`` collects ``num_steps`` steps of every env with the
behaviour policy's log-probabilities and values and computes GAE advantages (:func:`make_rollout`), and
``learn(train, data, key) -> (train, metrics)`` runs PPO's ``num_epochs`` x ``num_minibatches`` shuffled updates
under ``scan`` (:func:`make_ppo_learn`) or TRPO's natural-gradient step (:mod:`jaxrl.algos.multitask.mt_trpo`).
An algorithm is its config (on :class:`PPOConfig` or :class:`RolloutConfig`), its networks, its loss and these two
functions; the multi-task pieces (per-task gradients, aggregators) are in :mod:`jaxrl.algos.multitask.mt_ppo`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos import train_state
from jaxrl.algos.base_config import OnlineConfig
from jaxrl.config import ConfigError, config, config_name, hyper, static
from jaxrl.data import rollout as rollout_lib
from jaxrl.data import shuffle
from jaxrl.envs.wrappers import action_dim, is_discrete
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import PPOBatch


@config
class AdvantageConfig(OnlineConfig):
    """GAE and minibatching: every on-policy learner."""

    gae_lambda: float = hyper(0.95, low=0, high=1, help="GAE lambda")
    num_minibatches: int = static(4, low=1, help="minibatches per epoch")
    normalize_advantages: bool = static(True, choices=(True, False), help="standardise advantages (per minibatch)")


@config
class RolloutConfig(AdvantageConfig):
    """``num_envs`` envs stepped ``num_steps`` times per iteration; MLP actor and critic."""

    iteration_text = "num_envs * num_steps"

    num_envs: int = static(8, low=1, help="parallel environments")
    num_steps: int = static(128, low=1, help="rollout length per iteration")
    hidden: tuple[int, ...] = static((64, 64), help="hidden layer widths (actor and critic)")
    activation: str = static("tanh", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(500_000, low=1, help="training length in environment steps")

    def validate(self) -> None:
        if self.env_steps_per_iteration % self.num_minibatches:
            raise ConfigError(
                f"{config_name(self)}: num_envs * num_steps = {self.env_steps_per_iteration} must be "
                f"divisible by num_minibatches = {self.num_minibatches}"
            )
        super().validate()

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps


@config
class PPOLearnerConfig(AdvantageConfig):
    """PPO's loss and optimiser: clipped surrogate, Adam after global-norm clipping, epochs x minibatches."""

    learning_rate: float = hyper(2.5e-4, low=0, low_open=True, help="Adam step size")
    clip_eps: float = hyper(0.2, low=0, low_open=True, help="ratio (and value) clip range")
    vf_coef: float = hyper(0.5, low=0, help="value-loss coefficient")
    ent_coef: float = hyper(0.01, low=0, help="entropy bonus coefficient")
    max_grad_norm: float = hyper(0.5, low=0, low_open=True, allow_inf=True, help="global gradient-norm clip (inf: off)")
    num_epochs: int = static(4, low=1, help="passes over each rollout")
    anneal_lr: bool = static(True, choices=(True, False), help="decay the learning rate linearly to 0")
    clip_value: bool = static(True, choices=(True, False), help="clipped value loss (clip range clip_eps)")


@config
class PPOConfig(PPOLearnerConfig, RolloutConfig):
    """PPO on a rollout of ``num_envs`` x ``num_steps`` transitions."""


class ActorCritic(NamedTuple):
    policy: Any
    value: Any


class EnvCarry(NamedTuple):
    """What a rollout carries from one iteration to the next."""

    env_state: Any
    obs: jax.Array


@struct.dataclass
class State:
    train: Any  # a TrainState (MT-TRPO: one per network)
    env: Any  # EnvCarry (TE-PPO's carries the episode latents too)
    key: jax.Array
    iteration: jax.Array

    @property
    def params(self):
        return self.train.params

    @property
    def env_state(self):
        return self.env.env_state

    @property
    def obs(self) -> jax.Array:
        return self.env.obs


def make_step(rollout: Callable, learn: Callable) -> Callable:
    """``step(state) -> (state, metrics)``: keys, ``rollout``, ``learn`` (see the module docstring)."""

    def step(state: State):
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        env, data, rollout_metrics = rollout(state.params, state.env, rollout_key)
        train, metrics = learn(state.train, data, learn_key)
        new_state = dataclasses.replace(state, train=train, env=env, key=key, iteration=state.iteration + 1)
        return new_state, {**metrics, **rollout_metrics}

    return step


def actor_critic_nets(env, env_params, config) -> tuple[nets.Network, nets.Network]:
    """Policy (categorical or Gaussian, by the action space) and value MLPs of ``config.hidden``."""
    n_act = action_dim(env, env_params)
    if is_discrete(env, env_params):
        policy_net = nets.make_categorical_policy(n_act, config.hidden, config.activation)
    else:
        policy_net = nets.make_gaussian_policy(n_act, config.hidden, config.activation)
    return policy_net, nets.make_value_network(config.hidden, config.activation)


def init_actor_critic(key, policy_net, value_net, obs_dim: int, train_env, env_params):
    """``(key, ActorCritic params, EnvCarry)``: the networks' and the envs' first draws."""
    key, pk, vk, ek = jax.random.split(key, 4)
    dummy = jnp.zeros((obs_dim,), jnp.float32)
    params = ActorCritic(policy_net.init(pk, dummy), value_net.init(vk, dummy))
    obs, env_state = train_env.reset(ek, env_params)
    return key, params, EnvCarry(env_state, obs)


def advantages(reward, value, v_tp1, terminated, truncated, discount, gae_lambda):
    """GAE over time-major ``[T, ...]`` steps: a terminated step does not bootstrap, a truncated one bootstraps from
    ``v_tp1`` (its final observation's value); both end the trace. Returns ``(advantages, value targets)``."""
    discount_t = discount * (1.0 - terminated.astype(jnp.float32))
    done = jnp.logical_or(terminated, truncated)
    return generalized_advantage_estimation(reward, value, v_tp1, discount_t, done, gae_lambda)


def make_rollout(train_env, env_params, policy_net, value_net, config, *, values_per_step=False, metrics_fn=None):
    """``rollout(params, env, key) -> (env, PPOBatch [T, B], metrics)`` of an :class:`ActorCritic`; metrics: the
    episodes that ended, plus ``metrics_fn(env_state)``. ``values_per_step``: ``V(s')`` one time step at a time (a
    single batched call over ``[T, B]`` holds every hidden activation at once, the largest buffer of a program
    with many runs)."""

    def rollout(params, env: EnvCarry, key):
        value = lambda obs: value_net.apply(params.value, obs)

        def behaviour(obs, k):
            dist = policy_net.apply(params.policy, obs)
            action = dist.sample(seed=k)
            return action, (dist.log_prob(action), value(obs))

        env_state, obs, tr, infos = rollout_lib.rollout(
            train_env, env_params, behaviour, env.env_state, env.obs, key, config.num_steps
        )
        log_prob, v = tr.extras
        v_tp1 = jax.lax.map(value, tr.next_obs) if values_per_step else value(tr.next_obs)
        adv, target = advantages(tr.reward, v, v_tp1, tr.terminated, tr.truncated, config.discount, config.gae_lambda)
        metrics = rollout_lib.episode_metrics(infos)
        if metrics_fn is not None:
            metrics.update(metrics_fn(env_state))
        return EnvCarry(env_state, obs), PPOBatch(tr.obs, tr.action, log_prob, v, adv, target), metrics

    return rollout


def make_ppo_optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping + Adam, the step size decayed linearly to 0 over the run when ``anneal_lr``.

    ``max_grad_norm = inf`` is no clipping. Given as a plain float, no norm is computed at all: the benchmarks
    compare with peers whose clipping is off, and at one small run the norm's reductions are 3% of PPO's time.
    """
    updates_per_iteration = config.num_epochs * config.num_minibatches
    if config.anneal_lr:
        total_updates = max(config.num_iterations, 1) * updates_per_iteration
        lr = lambda count: config.learning_rate * (1.0 - jnp.minimum(count, total_updates) / total_updates)
    else:
        lr = config.learning_rate
    adam = optax.adam(lr, eps=1e-5)
    if isinstance(config.max_grad_norm, (int, float)) and math.isinf(config.max_grad_norm):
        return adam  # a traced inf (a grid over it) still clips, by the identity
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adam)


def minibatch_epochs(update, carry, data, key, num_epochs, num_minibatches, *, axis=0, permutation=None):
    """``num_epochs`` passes over ``data`` (the batch on axis ``axis`` of every leaf), each shuffled by
    ``permutation(key, n)`` (default :func:`jaxrl.data.shuffle.permutation`) and split into ``num_minibatches``;
    ``update(carry, minibatch) -> (carry, metrics)`` per minibatch. Returns ``(carry, metrics averaged)``."""
    permutation = permutation or shuffle.permutation
    size = jax.tree.leaves(data)[0].shape[axis]

    def split(x, perm):
        x = x[(slice(None),) * axis + (perm,)]
        x = x.reshape(*x.shape[:axis], num_minibatches, -1, *x.shape[axis + 1 :])
        return jnp.moveaxis(x, axis, 0) if axis else x

    def epoch(carry, k):
        perm = permutation(k, size)
        return jax.lax.scan(update, carry, jax.tree.map(lambda x: split(x, perm), data))

    carry, metrics = jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
    return carry, jax.tree.map(jnp.mean, metrics)


def gradient_update(grad_fn, tx):
    """``update(train, batch) -> (train, metrics)``: one ``tx`` step along ``grad_fn(params, batch)``."""

    def update(train, batch):
        grads, metrics = grad_fn(train.params, batch)
        return train_state.apply_gradient(tx, train, grads), metrics

    return update


def flatten_time(tree):
    """``[T, B, ...] -> [T * B, ...]`` on every leaf."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)


def make_ppo_learn(loss, tx, config):
    """``learn(train, data [T, B], key) -> (train, metrics)``: ``num_epochs`` x ``num_minibatches`` ``tx`` steps on
    ``loss(params, minibatch) -> (total, metrics)`` over the flattened rollout."""

    def learn(train, data, key):
        update = gradient_update(jax.grad(loss, has_aux=True), tx)
        return minibatch_epochs(update, train, flatten_time(data), key, config.num_epochs, config.num_minibatches)

    return learn
