"""RL^2 (Duan et al. 2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning").

A GRU policy/value network reads ``(obs_t, one_hot(a_{t-1}) or a_{t-1}, r_{t-1}, done_{t-1})``; its hidden state
persists across the ``episodes_per_trial`` episodes of one trial (one task) and is reset only between trials, so
the recurrent dynamics *are* the learning algorithm. The outer learner is PPO over whole trials: the objective is
the (discounted) sum of rewards over the trial (episode ends inside a trial neither stop the discounting nor cut
the GAE trace; only the trial end does), and each update backpropagates through time over the whole trial
(``jax.lax.scan`` of the GRU). Tasks are a vmap axis: every iteration samples ``num_tasks`` fresh tasks from the
family and runs one trial on each.

One ``step`` = ``num_tasks`` trials of ``episodes_per_trial * horizon`` steps, GAE, then ``num_epochs`` passes of
``num_minibatches`` minibatches of whole trials.

``env`` is a task family (``.env``, ``.sample``); ``env_params`` are held-out meta-test tasks ``[K_test]``.
``evaluate`` runs ``num_episodes`` fresh trials on each held-out task and returns ``eval_return`` (mean total
reward per trial) and ``adaptation`` (mean return of the k-th episode of a trial, k = 0, 1, ...).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta.common import check_family, episode_horizon
from jaxrl.algos.single import ppo
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import clipped_surrogate_loss, value_loss
from jaxrl.nets import core as nets_core
from jaxrl.nets import recurrent


@config
class Config:
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size")
    gamma: float = hyper(0.99, low=0, high=1, help="discount over the whole trial")
    gae_lambda: float = hyper(0.3, low=0, high=1, help="GAE lambda (RL^2 used 0.3 for bandits)")
    clip_eps: float = hyper(0.2, low=0, low_open=True, help="PPO ratio (and value) clip range")
    vf_coef: float = hyper(0.5, low=0, help="value-loss coefficient")
    ent_coef: float = hyper(
        0.01,
        low=0,
        help="entropy bonus coefficient (100-pull bandits need 0.05: experiments/results/rl2_bandits_n100_sweep.md)",
    )
    max_grad_norm: float = hyper(1.0, low=0, low_open=True, help="global gradient-norm clip")
    anneal_lr: bool = static(False, choices=(True, False), help="decay the learning rate linearly to 0")
    clip_value: bool = static(True, choices=(True, False), help="clipped value loss (clip range clip_eps)")
    num_tasks: int = static(64, low=1, help="task batch: trials (one fresh task each) per iteration")
    episodes_per_trial: int = static(10, low=1, help="episodes per trial (bandits: pulls per trial)")
    hidden_size: int = static(64, low=1, help="GRU width")
    embed: tuple[int, ...] = static((), help="MLP widths before the GRU (empty: none)")
    activation: str = static("tanh", choices=tuple(nets_core.ACTIVATIONS), help="embedding activation")
    num_epochs: int = static(4, low=1, help="passes over each batch of trials")
    num_minibatches: int = static(4, low=1, help="minibatches (of whole trials) per epoch")
    normalize_advantages: bool = static(True, choices=(True, False), help="standardise advantages per minibatch")
    eval_deterministic: bool = static(
        False, choices=(True, False), help="meta-test with the policy's mode instead of sampling"
    )
    horizon: int = static(0, low=0, help="episode length (0: read max_steps_in_episode from the tasks)")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps")

    def __post_init__(self):
        if self.num_tasks % self.num_minibatches:
            raise ConfigError(
                f"rl2.Config: num_tasks = {self.num_tasks} must be divisible by "
                f"num_minibatches = {self.num_minibatches} (minibatches are whole trials)"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        # Without a known horizon the count assumes one-step episodes (bandits); `make` checks the real one.
        return self.num_tasks * self.episodes_per_trial * max(self.horizon, 1)

    @property
    def num_iterations(self) -> int:
        return max(self.total_env_steps // self.env_steps_per_iteration, 1)


@struct.dataclass
class State:
    params: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


class Trial(NamedTuple):
    """One trial, time-major ``[T, ...]`` (a batch of trials adds an axis after T)."""

    inputs: jax.Array  # the network's input x_t = (obs_t, prev action, prev reward, prev done)
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    active: jax.Array  # 1 while the trial's episode budget is not used up
    episode: jax.Array  # index of the episode step t belongs to


def make(config: Config, env, env_params) -> Algorithm:
    check_family("rl2", env, env_params)
    family, base_env = env, env.env
    one_task = jax.tree.map(lambda x: x[0], env_params)
    discrete = is_discrete(base_env, one_task)
    n_act, n_obs = action_dim(base_env, one_task), obs_dim(base_env, one_task)
    horizon = config.horizon or episode_horizon(env_params)
    if config.horizon == 0 and horizon != 1:
        raise ConfigError(
            f"rl2.Config.horizon=0 assumes one-step episodes (bandits), but the tasks' episodes last "
            f"{horizon} steps: set rl2.Config(horizon={horizon}) so env-step counts are right"
        )
    trial_len = config.episodes_per_trial * horizon
    in_dim = n_obs + n_act + 2
    net = recurrent.make_gru_actor_critic(
        n_act, continuous=not discrete, hidden_size=config.hidden_size, embed=config.embed, activation=config.activation
    )
    tx = ppo.make_optimizer(config)

    def action_features(action):
        if discrete:
            return jax.nn.one_hot(action, n_act, dtype=jnp.float32)
        return jnp.asarray(action, jnp.float32).reshape(n_act)

    def run_trial(params, task, key, deterministic: bool = False) -> Trial:
        """One trial on ``task`` from a zero hidden state (unbatched; vmap for a batch of tasks)."""
        reset_key, key = jax.random.split(key)
        obs, env_state = base_env.reset(reset_key, task)
        carry0 = (
            env_state,
            obs,
            net.initial_hidden(),
            jnp.zeros((n_act,), jnp.float32),
            jnp.zeros(()),
            jnp.zeros(()),
            jnp.zeros((), jnp.int32),
        )

        def body(carry, k):
            env_state, obs, h, prev_a, prev_r, prev_done, episode = carry
            x = jnp.concatenate([obs.astype(jnp.float32).reshape(n_obs), prev_a, prev_r[None], prev_done[None]])
            h, (dist, value) = net.apply(params, h, x)
            act_key, step_key = jax.random.split(k)
            action = nets_core.mode(dist) if deterministic else dist.sample(seed=act_key)
            obs, env_state, reward, terminated, truncated, _ = base_env.step(step_key, env_state, action, task)
            done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
            active = (episode < config.episodes_per_trial).astype(jnp.float32)
            out = Trial(x, action, dist.log_prob(action), value, reward.astype(jnp.float32) * active, active, episode)
            carry = (
                env_state,
                obs,
                h,
                action_features(action),
                reward.astype(jnp.float32),
                done,
                episode + done.astype(jnp.int32),
            )
            return carry, out

        _, trial = jax.lax.scan(body, carry0, jax.random.split(key, trial_len))
        return trial

    def init(key: jax.Array) -> State:
        key, pk = jax.random.split(key)
        params = net.init(pk, net.initial_hidden(), jnp.zeros((in_dim,), jnp.float32))
        return State(params, tx.init(params), key, jnp.zeros((), jnp.int32))

    def loss_fn(params, batch: Trial, advantage, target):
        """PPO on whole trials ``[T, Bm]``: the GRU is re-unrolled from h_0 = 0 (BPTT over the trial)."""
        _, raw = net.unroll(params, net.initial_hidden(batch.inputs.shape[1:2]), batch.inputs)
        dist, value = recurrent.actor_critic_outputs(raw, not discrete)
        log_prob = dist.log_prob(batch.action)
        ratio = jnp.exp(log_prob - batch.log_prob)
        adv = advantage
        if config.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = clipped_surrogate_loss(ratio, adv, config.clip_eps)
        v = value_loss(value, batch.value, target, config.clip_eps if config.clip_value else None)
        entropy = jnp.mean(dist.entropy())
        total = pg + config.vf_coef * v - config.ent_coef * entropy
        return total, {
            "policy_loss": pg,
            "value_loss": v,
            "entropy": entropy,
            "approx_kl": jnp.mean((ratio - 1.0) - jnp.log(ratio)),
        }

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(state: State):
        key, task_key, trial_key, perm_key = jax.random.split(state.key, 4)
        tasks = family.sample(task_key, config.num_tasks)  # fresh tasks every iteration
        trials = jax.vmap(run_trial, in_axes=(None, 0, 0), out_axes=1)(
            state.params, tasks, jax.random.split(trial_key, config.num_tasks)
        )  # [T, B]
        # The trial is the episode of RL^2: discount throughout, no bootstrap after its last step.
        last = jnp.zeros((trial_len, 1), jnp.float32).at[-1].set(1.0) * jnp.ones_like(trials.reward)
        v_tp1 = jnp.concatenate([trials.value[1:], jnp.zeros_like(trials.value[:1])])
        adv, target = generalized_advantage_estimation(
            trials.reward, trials.value, v_tp1, config.gamma * (1.0 - last), last, config.gae_lambda
        )

        def minibatch_update(carry, mb):
            params, opt_state = carry
            batch, a, t = mb
            grads, metrics = grad_fn(params, batch, a, t)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(carry, k):
            perm = jax.random.permutation(k, config.num_tasks)
            split = lambda x: jnp.moveaxis(
                x[:, perm].reshape(x.shape[0], config.num_minibatches, -1, *x.shape[2:]), 1, 0
            )
            return jax.lax.scan(minibatch_update, carry, jax.tree.map(split, (trials, adv, target)))

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(perm_key, config.num_epochs)
        )
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics["trial_return"] = jnp.mean(jnp.sum(trials.reward, axis=0))
        return State(params, opt_state, key, state.iteration + 1), metrics

    def act(state: State, obs, key, deterministic: bool = False, carry=None):
        """One step of the deployed agent: ``carry = (hidden, prev_action_features, prev_reward, prev_done)``
        (None: the start of a trial). Returns ``(action, carry_without_the_new_reward)``; put the env's reward
        and done flag into ``carry[2]``, ``carry[3]`` before the next call."""
        if carry is None:
            carry = (net.initial_hidden(), jnp.zeros((n_act,), jnp.float32), jnp.zeros(()), jnp.zeros(()))
        h, prev_a, prev_r, prev_done = carry
        x = jnp.concatenate(
            [
                jnp.asarray(obs, jnp.float32).reshape(n_obs),
                prev_a,
                jnp.reshape(prev_r, (1,)),
                jnp.reshape(prev_done, (1,)),
            ]
        )
        h, (dist, _) = net.apply(state.params, h, x)
        action = nets_core.mode(dist) if deterministic else dist.sample(seed=key)
        return action, (h, action_features(action), prev_r, prev_done)

    def evaluate(state: State, key, num_episodes: int):
        """Meta-test: ``num_episodes`` fresh trials on every held-out task (hidden state reset per trial)."""
        k_test = jax.tree.leaves(env_params)[0].shape[0]
        keys = jax.random.split(key, (k_test, num_episodes))
        trial_fn = lambda task, k: run_trial(state.params, task, k, config.eval_deterministic)
        trials = jax.vmap(lambda task, ks: jax.vmap(trial_fn, in_axes=(None, 0))(task, ks))(env_params, keys)
        # per-episode returns: [K, N, T] rewards binned by episode index -> [E]
        bins = jax.nn.one_hot(trials.episode, config.episodes_per_trial, dtype=jnp.float32)  # [K, N, T, E]
        per_episode = jnp.einsum("knt,knte->e", trials.reward, bins) / (k_test * num_episodes)
        return {"eval_return": jnp.mean(jnp.sum(trials.reward, axis=-1)), "adaptation": per_episode}

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.num_tasks * trial_len,
    )
