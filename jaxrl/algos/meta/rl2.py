"""RL^2 (Duan et al. 2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning").

A GRU policy/value network reads ``(obs_t, one_hot(a_{t-1}) or a_{t-1}, r_{t-1}, done_{t-1})``; its hidden state
persists across the ``episodes_per_trial`` episodes of one trial (one task) and is reset only between trials, so
the recurrent dynamics *are* the learning algorithm. The outer learner is PPO over whole trials: the objective is
the (discounted) sum of rewards over the trial (episode ends inside a trial neither stop the discounting nor cut
the GAE trace; only the trial end does), and each update backpropagates through time over the whole trial
(``jax.lax.scan`` of the GRU). Tasks are a vmap axis: every iteration samples ``num_tasks`` fresh tasks from the
family and runs one trial on each.

One ``step`` = ``num_tasks`` trials of ``episodes_per_trial * horizon`` steps, GAE, then ``num_epochs`` passes of
``num_minibatches`` minibatches of whole trials (the on-policy learner, :mod:`jaxrl.algos.on_policy`). 100-pull
bandits need ``ent_coef=0.05`` (experiments/results/rl2_bandits_n100_sweep.md).

``env`` is a task family (``.env``, ``.sample``); ``env_params`` are held-out meta-test tasks ``[K_test]``.
``evaluate`` runs ``num_episodes`` fresh trials on each held-out task and returns ``eval_return`` (mean total
reward per trial) and ``adaptation`` (mean return of the k-th episode of a trial, k = 0, 1, ...).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.algos import on_policy, train_state
from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta.common import check_family, episode_horizon, make_trial_evaluate, trial_advantages
from jaxrl.algos.on_policy import PPOLearnerConfig
from jaxrl.algos.train_state import TrainState
from jaxrl.config import ConfigError, config, config_name, hyper, static
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.ppo import PPOBatch, ppo_objective
from jaxrl.nets import core as nets_core
from jaxrl.nets import recurrent


@config
class Config(PPOLearnerConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size")
    gae_lambda: float = hyper(0.3, low=0, high=1, help="GAE lambda (RL^2 used 0.3 for bandits)")
    max_grad_norm: float = hyper(1.0, low=0, low_open=True, help="global gradient-norm clip")
    anneal_lr: bool = static(False, choices=(True, False), help="decay the learning rate linearly to 0")
    num_tasks: int = static(64, low=1, help="task batch: trials (one fresh task each) per iteration")
    episodes_per_trial: int = static(10, low=1, help="episodes per trial (bandits: pulls per trial)")
    hidden_size: int = static(64, low=1, help="GRU width")
    embed: tuple[int, ...] = static((), help="MLP widths before the GRU (empty: none)")
    activation: str = static("tanh", choices=tuple(nets_core.ACTIVATIONS), help="embedding activation")
    eval_deterministic: bool = static(
        False, choices=(True, False), help="meta-test with the policy's mode instead of sampling"
    )
    horizon: int = static(0, low=0, help="episode length (0: read max_steps_in_episode from the tasks)")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps")

    def validate(self) -> None:
        # No run-length check: without a known horizon one iteration's length is an estimate (`make` checks it).
        if self.num_tasks % self.num_minibatches:
            raise ConfigError(
                f"{config_name(self)}: num_tasks = {self.num_tasks} must be divisible by "
                f"num_minibatches = {self.num_minibatches} (minibatches are whole trials)"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        # Without a known horizon the count assumes one-step episodes (bandits); `make` checks the real one.
        return self.num_tasks * self.episodes_per_trial * max(self.horizon, 1)


@struct.dataclass
class State:
    train: TrainState
    key: jax.Array
    iteration: jax.Array

    @property
    def params(self):
        return self.train.params


class Trial(NamedTuple):
    """One trial, time-major ``[T, ...]`` (a batch of trials adds an axis after T)."""

    inputs: jax.Array  # the network's input x_t = (obs_t, prev action, prev reward, prev done)
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    active: jax.Array  # 1 while the trial's episode budget is not used up
    episode: jax.Array  # index of the episode step t belongs to


class Agent(NamedTuple):
    """The recurrent agent and the single-task env it acts in."""

    net: Any
    env: Any
    n_obs: int
    n_act: int
    discrete: bool
    trial_len: int

    def action_features(self, action):
        if self.discrete:
            return jax.nn.one_hot(action, self.n_act, dtype=jnp.float32)
        return jnp.asarray(action, jnp.float32).reshape(self.n_act)

    def no_action(self):
        return jnp.zeros((self.n_act,), jnp.float32)

    def inputs(self, obs, prev_a, prev_r, prev_done):
        """``x_t = (obs_t, prev action features, prev reward, prev done)``."""
        obs = jnp.asarray(obs, jnp.float32).reshape(self.n_obs)
        return jnp.concatenate([obs, prev_a, jnp.reshape(prev_r, (1,)), jnp.reshape(prev_done, (1,))])


def make_agent(config: Config, family, env_params) -> Agent:
    check_family("rl2", family, env_params)
    one_task = jax.tree.map(lambda x: x[0], env_params)
    base_env = family.env
    discrete = is_discrete(base_env, one_task)
    n_act, n_obs = action_dim(base_env, one_task), obs_dim(base_env, one_task)
    horizon = config.horizon or episode_horizon(env_params)
    if config.horizon == 0 and horizon != 1:
        raise ConfigError(
            f"rl2.Config.horizon=0 assumes one-step episodes (bandits), but the tasks' episodes last "
            f"{horizon} steps: set rl2.Config(horizon={horizon}) so env-step counts are right"
        )
    net = recurrent.make_gru_actor_critic(
        n_act, continuous=not discrete, hidden_size=config.hidden_size, embed=config.embed, activation=config.activation
    )
    return Agent(net, base_env, n_obs, n_act, discrete, config.episodes_per_trial * horizon)


def run_trial(agent: Agent, config: Config, params, task, key, deterministic: bool = False) -> Trial:
    """One trial on ``task`` from a zero hidden state (unbatched; vmap for a batch of tasks)."""
    reset_key, key = jax.random.split(key)
    obs, env_state = agent.env.reset(reset_key, task)
    zero = jnp.zeros(())
    carry0 = (env_state, obs, agent.net.initial_hidden(), agent.no_action(), zero, zero, jnp.zeros((), jnp.int32))

    def body(carry, k):
        env_state, obs, h, prev_a, prev_r, prev_done, episode = carry
        x = agent.inputs(obs, prev_a, prev_r, prev_done)
        h, (dist, value) = agent.net.apply(params, h, x)
        act_key, step_key = jax.random.split(k)
        action = nets_core.mode(dist) if deterministic else dist.sample(seed=act_key)
        obs, env_state, reward, terminated, truncated, _ = agent.env.step(step_key, env_state, action, task)
        done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
        active = (episode < config.episodes_per_trial).astype(jnp.float32)
        out = Trial(x, action, dist.log_prob(action), value, reward.astype(jnp.float32) * active, active, episode)
        reward = reward.astype(jnp.float32)
        return (env_state, obs, h, agent.action_features(action), reward, done, episode + done.astype(jnp.int32)), out

    _, trial = jax.lax.scan(body, carry0, jax.random.split(key, agent.trial_len))
    return trial


def make_loss(agent: Agent, config: Config):
    """PPO on whole trials ``[T, Bm]``: the GRU is re-unrolled from h_0 = 0 (BPTT over the trial)."""

    def loss(params, batch: PPOBatch):
        _, raw = agent.net.unroll(params, agent.net.initial_hidden(batch.obs.shape[1:2]), batch.obs)
        dist, value = recurrent.actor_critic_outputs(raw, not agent.discrete)
        total, metrics, _ = ppo_objective(
            dist,
            value,
            batch,
            clip_eps=config.clip_eps,
            vf_coef=config.vf_coef,
            ent_coef=config.ent_coef,
            clip_value=config.clip_value,
            normalize_advantages=config.normalize_advantages,
        )
        return total, metrics

    return loss


def make_step(agent: Agent, config: Config, family, tx):
    """``step(state)``: a trial on each of ``num_tasks`` fresh tasks, GAE, PPO on minibatches of whole trials."""
    update = on_policy.gradient_update(jax.grad(make_loss(agent, config), has_aux=True), tx)
    trials_fn = jax.vmap(lambda p, task, k: run_trial(agent, config, p, task, k), in_axes=(None, 0, 0), out_axes=1)
    epochs = (config.num_epochs, config.num_minibatches)

    def step(state: State):
        key, task_key, trial_key, perm_key = jax.random.split(state.key, 4)
        tasks = family.sample(task_key, config.num_tasks)  # fresh tasks every iteration
        trials = trials_fn(state.params, tasks, jax.random.split(trial_key, config.num_tasks))  # [T, B]
        adv, target = trial_advantages(trials.reward, trials.value, config.discount, config.gae_lambda)
        data = PPOBatch(trials.inputs, trials.action, trials.log_prob, trials.value, adv, target)
        # minibatches of whole trials (axis 1); jax's permutation, as the recorded runs drew it
        train, metrics = on_policy.minibatch_epochs(
            update, state.train, data, perm_key, *epochs, axis=1, permutation=jax.random.permutation
        )
        metrics["trial_return"] = jnp.mean(jnp.sum(trials.reward, axis=0))
        return State(train, key, state.iteration + 1), metrics

    return step


def make(config: Config, env, env_params) -> Algorithm:
    agent = make_agent(config, env, env_params)
    tx = on_policy.make_ppo_optimizer(config)

    def init(key: jax.Array) -> State:
        key, pk = jax.random.split(key)
        params = agent.net.init(pk, agent.net.initial_hidden(), jnp.zeros((agent.n_obs + agent.n_act + 2,)))
        return State(train_state.create(tx, params), key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False, carry=None):
        """One step of the deployed agent: ``carry = (hidden, prev_action_features, prev_reward, prev_done)``
        (None: the start of a trial). Returns ``(action, carry_without_the_new_reward)``; put the env's reward
        and done flag into ``carry[2]``, ``carry[3]`` before the next call."""
        if carry is None:
            carry = (agent.net.initial_hidden(), agent.no_action(), jnp.zeros(()), jnp.zeros(()))
        h, prev_a, prev_r, prev_done = carry
        h, (dist, _) = agent.net.apply(state.params, h, agent.inputs(obs, prev_a, prev_r, prev_done))
        action = nets_core.mode(dist) if deterministic else dist.sample(seed=key)
        return action, (h, agent.action_features(action), prev_r, prev_done)

    return Algorithm(
        init=init,
        step=make_step(agent, config, env, tx),
        act=act,
        evaluate=make_trial_evaluate(run_trial, agent, config, env_params),
        config=config,
        env_steps_per_iteration=config.num_tasks * agent.trial_len,
    )
