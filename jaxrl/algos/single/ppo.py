"""PPO (Schulman et al., 2017) for discrete and continuous actions, as pure functions.

One ``step`` = collect ``num_steps`` x ``num_envs`` transitions, compute GAE advantages (truncated episodes
bootstrap from their final observation), then ``num_epochs`` passes of ``num_minibatches`` clipped-surrogate
updates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, make_evaluate, make_train_env, obs_normalizer
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import rollout as rollout_lib
from jaxrl.data import shuffle
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import PPOBatch, ppo_loss


@config
class Config:
    learning_rate: float = hyper(2.5e-4, low=0, low_open=True, help="Adam step size")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    gae_lambda: float = hyper(0.95, low=0, high=1, help="GAE lambda")
    clip_eps: float = hyper(0.2, low=0, low_open=True, help="ratio (and value) clip range")
    vf_coef: float = hyper(0.5, low=0, help="value-loss coefficient")
    ent_coef: float = hyper(0.01, low=0, help="entropy bonus coefficient")
    max_grad_norm: float = hyper(0.5, low=0, low_open=True, help="global gradient-norm clip")
    num_envs: int = static(8, low=1, help="parallel environments")
    num_steps: int = static(128, low=1, help="rollout length per iteration")
    num_epochs: int = static(4, low=1, help="passes over each rollout")
    num_minibatches: int = static(4, low=1, help="minibatches per epoch")
    hidden: tuple[int, ...] = static((64, 64), help="hidden layer widths (actor and critic)")
    activation: str = static("tanh", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    anneal_lr: bool = static(True, choices=(True, False), help="decay the learning rate linearly to 0")
    normalize_advantages: bool = static(True, choices=(True, False), help="standardise advantages per minibatch")
    clip_value: bool = static(True, choices=(True, False), help="clipped value loss")
    normalize_observations: bool = static(False, choices=(True, False), help="running obs normalisation")
    total_env_steps: int = static(500_000, low=1, help="training length in environment steps")

    def __post_init__(self):
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ConfigError(
                f"ppo.Config: num_envs * num_steps = {self.num_envs * self.num_steps} must be "
                f"divisible by num_minibatches = {self.num_minibatches}"
            )
        if self.total_env_steps < self.env_steps_per_iteration:
            raise ConfigError(
                f"ppo.Config.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"num_envs * num_steps = {self.env_steps_per_iteration}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.env_steps_per_iteration


class ActorCritic(NamedTuple):
    policy: Any
    value: Any


@struct.dataclass
class State:
    params: ActorCritic
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    iteration: jax.Array


def make_optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping + Adam, the step size decayed linearly to 0 over the run when ``anneal_lr``.

    Reads ``learning_rate``, ``max_grad_norm``, ``anneal_lr``, ``num_epochs``, ``num_minibatches`` and
    ``num_iterations`` from ``config`` (any PPO-shaped config)."""
    updates_per_iteration = config.num_epochs * config.num_minibatches
    if config.anneal_lr:
        total_updates = max(config.num_iterations, 1) * updates_per_iteration
        lr = lambda count: config.learning_rate * (1.0 - jnp.minimum(count, total_updates) / total_updates)
    else:
        lr = config.learning_rate
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def minibatch_epochs(grad_fn, tx, params, opt_state, data, key, num_epochs: int, num_minibatches: int):
    """``num_epochs`` passes over flat ``data`` (leaves ``[B, ...]``), each shuffled and split into
    ``num_minibatches`` minibatches; one ``tx`` update per minibatch with ``grad_fn(params, batch) -> (grads,
    metrics)``. Returns ``(params, opt_state, metrics averaged over all updates)``."""
    size = jax.tree.leaves(data)[0].shape[0]

    def minibatch_update(carry, batch):
        params, opt_state = carry
        grads, metrics = grad_fn(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, k):
        perm = shuffle.permutation(k, size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape(num_minibatches, -1, *x.shape[1:]), data)
        return jax.lax.scan(minibatch_update, carry, shuffled)

    (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, num_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, metrics)


def make(config: Config, env, env_params, *, train_env=None, make_evaluate_fn=None) -> Algorithm:
    """PPO on ``env``. ``train_env`` (optional): a ready vectorised training env of ``num_envs`` copies with
    episode statistics (e.g. a multi-task ``MultiTaskEnv``) used instead of the default stack; spaces are then
    read from it. ``make_evaluate_fn(act) -> evaluate`` (optional) replaces the default evaluation."""
    spaces_env = env if train_env is None else train_env
    discrete = is_discrete(spaces_env, env_params)
    n_act, n_obs = action_dim(spaces_env, env_params), obs_dim(spaces_env, env_params)
    if discrete:
        policy_net = nets.make_categorical_policy(n_act, config.hidden, config.activation)
    else:
        policy_net = nets.make_gaussian_policy(n_act, config.hidden, config.activation)
    value_net = nets.make_value_network(config.hidden, config.activation)
    if train_env is None:
        train_env = make_train_env(env, env_params, config.num_envs, config.normalize_observations)

    tx = make_optimizer(config)

    policy_apply = lambda p, obs: policy_net.apply(p.policy, obs)
    value_apply = lambda p, obs: value_net.apply(p.value, obs)

    def init(key: jax.Array) -> State:
        key, pk, vk, ek = jax.random.split(key, 4)
        dummy = jnp.zeros((n_obs,), jnp.float32)
        params = ActorCritic(policy_net.init(pk, dummy), value_net.init(vk, dummy))
        obs, env_state = train_env.reset(ek, env_params)
        return State(params, tx.init(params), env_state, obs, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        dist = policy_net.apply(state.params.policy, obs_normalizer(state.env_state)(obs))
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def step(state: State):
        key, rollout_key, perm_key = jax.random.split(state.key, 3)

        def behaviour(obs, k):
            dist = policy_apply(state.params, obs)
            action = dist.sample(seed=k)
            return action, (dist.log_prob(action), value_apply(state.params, obs))

        env_state, obs, tr, infos = rollout_lib.rollout(
            train_env, env_params, behaviour, state.env_state, state.obs, rollout_key, config.num_steps
        )
        log_prob, value = tr.extras
        # one step at a time: a single batched call over [T, B] held every hidden activation at once (the
        # largest buffer of the program with many runs), for the same arithmetic
        v_tp1 = jax.lax.map(lambda o: value_apply(state.params, o), tr.next_obs)
        discount = config.gamma * (1.0 - tr.terminated.astype(jnp.float32))
        adv, target = generalized_advantage_estimation(
            tr.reward, value, v_tp1, discount, jnp.logical_or(tr.terminated, tr.truncated), config.gae_lambda
        )
        data = PPOBatch(tr.obs, tr.action, log_prob, value, adv, target)
        data = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)  # [T, B, ...] -> [T * B, ...]

        grad_fn = jax.grad(
            lambda p, b: ppo_loss(
                p,
                b,
                policy_apply=policy_apply,
                value_apply=value_apply,
                clip_eps=config.clip_eps,
                vf_coef=config.vf_coef,
                ent_coef=config.ent_coef,
                clip_value=config.clip_value,
                normalize_advantages=config.normalize_advantages,
            ),
            has_aux=True,
        )

        params, opt_state, metrics = minibatch_epochs(
            grad_fn, tx, state.params, state.opt_state, data, perm_key, config.num_epochs, config.num_minibatches
        )
        metrics.update(rollout_lib.episode_metrics(infos))
        new_state = State(params, opt_state, env_state, obs, key, state.iteration + 1)
        return new_state, metrics

    evaluate = make_evaluate(env, env_params, act) if make_evaluate_fn is None else make_evaluate_fn(act)
    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
