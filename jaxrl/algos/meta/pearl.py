"""PEARL: off-policy meta-RL with a probabilistic context variable (Rakelly et al. 2019).

A context encoder ``q_phi(z | c)`` reads each transition ``c_n = (s, a, r, s')`` of a task and outputs a Gaussian
factor ``N(mu_n, sigma_n^2)`` (``sigma_n^2`` through a softplus); the posterior is their product
(:func:`jaxrl.losses.pearl.product_of_gaussians`) and is pulled towards the unit prior by a KL term. A SAC agent
(tanh-Gaussian actor, twin Q with target networks, learned temperature) is conditioned on ``(s, z)``: the critic's
Bellman error is backpropagated into the encoder (:func:`jaxrl.losses.pearl.pearl_critic_encoder_loss`), the actor
sees ``z`` with its gradient stopped.

Meta-training uses ``num_train_tasks`` tasks sampled once from the family at ``init`` (as in the paper), each with
its own replay buffer (one vmapped buffer state ``[num_train_tasks]``) and its most recent prior-policy context
(the paper's encoder buffer, cleared before each collection). One ``step``:

1. *collect* on ``tasks_per_iteration`` tasks (round robin over the training tasks): ``prior_episodes`` episodes
   with ``z ~ N(0, I)`` (they replace the task's context), then ``posterior_episodes`` episodes with
   ``z ~ q(z | c)``, ``c`` = ``context_batch_size`` transitions drawn from that fresh context; all go to the
   task's replay buffer;
2. *update*, once every task has data: ``updates_per_iteration`` gradient steps, each on ``meta_batch`` tasks
   drawn with replacement: per task an RL batch of ``batch_size`` transitions from its replay buffer and a context
   of ``context_batch_size`` transitions from its context, ``z ~ q(z | c)`` reparameterised; critic and encoder
   on the Bellman error plus ``kl_weight`` times the KL; then actor and temperature (SAC) on ``(s, z)``.

``env`` is a task family (``.env``, ``.sample``) with a continuous action box; ``env_params`` are the held-out
meta-test tasks ``[K_test]``. Meta-test (``evaluate``): on each held-out task, ``num_episodes`` independent trials
of ``adaptation_episodes`` episodes each: the first with ``z`` from the prior, each later one with ``z`` from the
posterior given every transition the trial has seen so far. ``adaptation [adaptation_episodes]`` is the mean
return of the k-th episode (k = 0: prior), ``eval_return`` the mean total return per trial (as RL^2's).
Actions are in ``[-1, 1]^d`` and mapped affinely onto the task's action box.

The defaults are the configuration the learning test checks (``tests/test_pearl.py``): on ``point-robot`` (dense
goals) 45k env steps per seed take the held-out return from about -18 (prior, k = 0) to about -9 (posterior).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, gradient_step, phase_cond, sac_actor_temperature_step
from jaxrl.algos.meta.common import check_family, episode_horizon, num_tasks
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses import pearl as pearl_losses


@config
class Config:
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor, critic, temperature)")
    encoder_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of the context encoder")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(0.1, low=0, low_open=True, help="initial SAC temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    kl_weight: float = hyper(0.1, low=0, help="beta: weight of KL(q(z|c) || N(0, I)) in the encoder loss")
    reward_scale: float = hyper(1.0, low=0, low_open=True, help="reward multiplier in the Bellman target")
    latent_dim: int = static(5, low=1, help="dimension of the task variable z")
    num_train_tasks: int = static(20, low=1, help="meta-training tasks, sampled once at init (a buffer each)")
    tasks_per_iteration: int = static(5, low=1, help="tasks that collect data each iteration (round robin)")
    prior_episodes: int = static(2, low=1, help="episodes per collecting task with z from the prior")
    posterior_episodes: int = static(1, low=0, help="episodes per collecting task with z from the posterior")
    meta_batch: int = static(8, low=1, help="tasks per gradient update (drawn with replacement)")
    batch_size: int = static(64, low=1, help="RL transitions per task per gradient update")
    context_batch_size: int = static(32, low=1, help="context transitions per task the encoder reads in training")
    buffer_size: int = static(2_000, low=1, help="replay capacity per task (transitions)")
    updates_per_iteration: int = static(50, low=1, help="gradient updates per iteration")
    hidden: tuple[int, ...] = static((64, 64), help="hidden widths of actor and critic")
    encoder_hidden: tuple[int, ...] = static((64, 64), help="hidden widths of the context encoder")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    adaptation_episodes: int = static(3, low=1, help="episodes per meta-test trial (k = 0 prior, then posterior)")
    eval_deterministic: bool = static(True, choices=(True, False), help="meta-test with the policy's mode")
    horizon: int = static(20, low=1, help="episode length (must match the tasks' max_steps_in_episode)")
    total_env_steps: int = static(45_000, low=1, help="training length in environment steps")

    def __post_init__(self):
        if self.tasks_per_iteration > self.num_train_tasks:
            raise ConfigError(
                f"pearl.Config.tasks_per_iteration={self.tasks_per_iteration} is out of range: must be "
                f"<= num_train_tasks = {self.num_train_tasks}"
            )
        per_task = (self.prior_episodes + self.posterior_episodes) * self.horizon
        if self.buffer_size < per_task:
            raise ConfigError(
                f"pearl.Config.buffer_size={self.buffer_size} is out of range: must be >= the "
                f"{per_task} transitions a task collects per iteration ((prior_episodes + "
                f"posterior_episodes) * horizon)"
            )
        if self.total_env_steps < self.env_steps_per_iteration:
            raise ConfigError(
                f"pearl.Config.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"{self.env_steps_per_iteration} (the env steps of one iteration)"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.tasks_per_iteration * (self.prior_episodes + self.posterior_episodes) * self.horizon

    @property
    def num_iterations(self) -> int:
        return max(self.total_env_steps // self.env_steps_per_iteration, 1)

    @property
    def warmup_iterations(self) -> int:
        """Iterations of collection before updates start (until every training task has data)."""
        return math.ceil(self.num_train_tasks / self.tasks_per_iteration)


class PEARLParams(NamedTuple):
    encoder: Any
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array


class PEARLOptState(NamedTuple):
    encoder: Any
    actor: Any
    critic: Any
    alpha: Any


@struct.dataclass
class State:
    params: PEARLParams
    opt_state: PEARLOptState
    buffers: replay.ReplayState  # per-task replay buffers, every leaf [num_train_tasks, ...]
    context: jax.Array  # [num_train_tasks, prior_episodes * horizon, context_dim]: latest prior-policy context
    tasks: Any  # env params of the training tasks, every leaf [num_train_tasks, ...]
    key: jax.Array
    iteration: jax.Array


def make(config: Config, env, env_params) -> Algorithm:
    check_family("pearl", env, env_params)
    family, base_env = env, env.env
    one_task = jax.tree.map(lambda x: x[0], env_params)
    if is_discrete(base_env, one_task):
        raise ConfigError(
            "pearl needs a continuous (Box) action space: its agent is SAC; use rl2 for discrete "
            "task families such as bandits"
        )
    horizon = episode_horizon(env_params, default=config.horizon)
    if horizon != config.horizon:
        raise ConfigError(
            f"pearl.Config.horizon={config.horizon} does not match the tasks' episode length "
            f"{horizon}: set pearl.Config(horizon={horizon})"
        )
    n_act, n_obs = action_dim(base_env, one_task), obs_dim(base_env, one_task)
    latent, H = config.latent_dim, config.horizon
    ctx_dim = 2 * n_obs + n_act + 1
    n_train, n_collect = config.num_train_tasks, config.tasks_per_iteration
    n_prior, n_post = config.prior_episodes, config.posterior_episodes

    encoder_net = nets.make_mlp(2 * latent, config.encoder_hidden, config.activation)
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    critic_net = nets.make_q_ensemble(config.hidden, config.activation, num_members=2)
    tx = optax.adam(config.learning_rate)
    encoder_tx = optax.adam(config.encoder_learning_rate)
    target_entropy = -config.target_entropy_scale * n_act

    def encoder_apply(params, context):
        """``[..., N, ctx_dim] -> (mu_n, sigma_n^2)``, each ``[..., N, latent_dim]``."""
        raw = encoder_net.apply(params, context)
        return raw[..., :latent], jax.nn.softplus(raw[..., latent:]) + pearl_losses.MIN_VARIANCE

    def context_features(tr: Transition) -> jax.Array:
        """``c = (s, a, r, s')`` per transition (raw reward, the policy's action in [-1, 1])."""
        return jnp.concatenate([tr.obs, tr.action, tr.reward[..., None], tr.next_obs], axis=-1)

    def policy(actor_params, obs, z, key, deterministic: bool):
        dist = actor_net.apply(actor_params, jnp.concatenate([obs, z], axis=-1))
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def run_episode(actor_params, task, z, key, deterministic: bool = False):
        """One episode slot of ``horizon`` steps on ``task`` with a fixed ``z`` (unbatched). Returns the
        transitions ``[H]`` and ``alive [H]`` (1 up to and including the first episode end: steps after an early
        termination belong to a fresh auto-reset episode; they are valid data but not part of the return)."""
        reset_key, key = jax.random.split(key)
        obs, env_state = base_env.reset(reset_key, task)
        space = base_env.action_space(task)
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)

        def body(carry, k):
            env_state, obs, alive = carry
            act_key, step_key = jax.random.split(k)
            obs = jnp.asarray(obs, jnp.float32).reshape(n_obs)
            a = policy(actor_params, obs, z, act_key, deterministic)
            env_action = low + (jnp.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
            next_obs, env_state, reward, terminated, truncated, info = base_env.step(
                step_key, env_state, env_action, task
            )
            tr = Transition(
                obs,
                a,
                jnp.asarray(reward, jnp.float32),
                jnp.asarray(info["final_observation"], jnp.float32).reshape(n_obs),
                terminated,
                truncated,
            )
            done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
            return (env_state, next_obs, alive * (1.0 - done)), (tr, alive)

        _, (trs, alive) = jax.lax.scan(body, (env_state, obs, jnp.ones(())), jax.random.split(key, H))
        return trs, alive

    # [tasks, episodes] of episodes: z and keys carry both axes
    run_episodes = jax.vmap(jax.vmap(run_episode, in_axes=(None, None, 0, 0, None)), in_axes=(None, 0, 0, 0, None))

    def infer(encoder_params, context, mask=None):
        return pearl_losses.infer_posterior(encoder_params, context, encoder_apply=encoder_apply, mask=mask)

    def init(key: jax.Array) -> State:
        key, task_key, ek, ak, ck = jax.random.split(key, 5)
        o, a, z = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32), jnp.zeros((latent,))
        oz = jnp.concatenate([o, z])
        critic = critic_net.init(ck, oz, a)
        params = PEARLParams(
            encoder_net.init(ek, jnp.zeros((ctx_dim,), jnp.float32)),
            actor_net.init(ak, oz),
            critic,
            critic,
            jnp.log(jnp.asarray(config.init_alpha, jnp.float32)),
        )
        opt_state = PEARLOptState(
            encoder_tx.init(params.encoder), tx.init(params.actor), tx.init(params.critic), tx.init(params.log_alpha)
        )
        example = Transition(o, a, jnp.zeros(()), o, jnp.zeros((), bool), jnp.zeros((), bool))
        buffer = replay.init(example, config.buffer_size)
        buffers = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_train, *x.shape)), buffer)
        tasks = family.sample(task_key, n_train)
        context = jnp.zeros((n_train, n_prior * H, ctx_dim), jnp.float32)
        return State(params, opt_state, buffers, context, tasks, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False, context=None, mask=None):
        """The agent's action in ``[-1, 1]^d`` for ``obs [obs_dim]`` with ``z`` sampled from the posterior given
        ``context [N, 2 obs_dim + action_dim + 1]`` rows ``(s, a, r, s')`` (``mask [N]`` keeps rows; no context:
        the prior)."""
        z_key, act_key = jax.random.split(key)
        if context is None:
            mu, var = jnp.zeros((latent,)), jnp.ones((latent,))
        else:
            mask = jnp.ones(context.shape[:-1]) if mask is None else mask
            mu, var = infer(state.params.encoder, jnp.asarray(context, jnp.float32), mask)
        z = pearl_losses.sample_latent(z_key, mu, var)
        return policy(state.params.actor, jnp.asarray(obs, jnp.float32).reshape(n_obs), z, act_key, deterministic)

    def collect(state: State, key):
        """Prior then posterior episodes on this iteration's ``tasks_per_iteration`` tasks (round robin)."""
        prior_key, post_key, z_key, ctx_key, post_z_key = jax.random.split(key, 5)
        idx = (state.iteration * n_collect + jnp.arange(n_collect)) % n_train  # distinct: n_collect <= n_train
        tasks = jax.tree.map(lambda x: x[idx], state.tasks)
        z_prior = jax.random.normal(z_key, (n_collect, n_prior, latent))
        prior_tr, prior_alive = run_episodes(
            state.params.actor, tasks, z_prior, jax.random.split(prior_key, (n_collect, n_prior)), False
        )
        fresh_context = context_features(prior_tr).reshape(n_collect, n_prior * H, ctx_dim)
        episodes = prior_tr
        metrics = {"prior_return": jnp.mean(jnp.sum(prior_tr.reward * prior_alive, -1))}
        if n_post:
            rows = jax.random.randint(ctx_key, (n_collect, n_post, config.context_batch_size), 0, n_prior * H)
            c = fresh_context[jnp.arange(n_collect)[:, None, None], rows]  # [n_collect, n_post, C, ctx_dim]
            mu, var = infer(state.params.encoder, c)
            z_post = pearl_losses.sample_latent(post_z_key, mu, var)
            post_tr, post_alive = run_episodes(
                state.params.actor, tasks, z_post, jax.random.split(post_key, (n_collect, n_post)), False
            )
            episodes = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), prior_tr, post_tr)
            metrics["posterior_return"] = jnp.mean(jnp.sum(post_tr.reward * post_alive, -1))
        flat = jax.tree.map(lambda x: x.reshape(n_collect, (n_prior + n_post) * H, *x.shape[3:]), episodes)
        chosen = jax.tree.map(lambda x: x[idx], state.buffers)
        chosen = jax.vmap(replay.add)(chosen, flat)
        buffers = jax.tree.map(lambda full, part: full.at[idx].set(part), state.buffers, chosen)
        context = state.context.at[idx].set(fresh_context)
        return buffers, context, metrics

    def update(buffers: replay.ReplayState, context, carry, key):
        params, opt_state = carry
        task_key, row_key, ctx_key, loss_key, actor_key = jax.random.split(key, 5)
        task_idx = jax.random.randint(task_key, (config.meta_batch,), 0, n_train)
        sizes = jnp.maximum(buffers.size[task_idx], 1)[:, None]
        rows = jax.random.randint(row_key, (config.meta_batch, config.batch_size), 0, sizes)
        batch = jax.tree.map(lambda x: x[task_idx[:, None], rows], buffers.data)  # [M, B, ...]
        ctx_rows = jax.random.randint(ctx_key, (config.meta_batch, config.context_batch_size), 0, n_prior * H)
        ctx = context[task_idx[:, None], ctx_rows]  # [M, C, ctx_dim]
        alpha = jnp.exp(params.log_alpha)

        (critic_grads, encoder_grads), c_metrics = jax.grad(
            pearl_losses.pearl_critic_encoder_loss, argnums=(0, 1), has_aux=True
        )(
            params.critic,
            params.encoder,
            batch,
            ctx,
            encoder_apply=encoder_apply,
            critic_apply=critic_net.apply,
            target_critic_params=params.target_critic,
            actor_params=params.actor,
            actor_apply=actor_net.apply,
            alpha=alpha,
            gamma=config.gamma,
            kl_weight=config.kl_weight,
            reward_scale=config.reward_scale,
            key=loss_key,
        )
        z = c_metrics.pop("z")
        critic, c_opt = gradient_step(tx, critic_grads, opt_state.critic, params.critic)
        encoder, e_opt = gradient_step(encoder_tx, encoder_grads, opt_state.encoder, params.encoder)

        # The actor sees z with its gradient stopped (z came out of the critic loss detached).
        actor_batch = Transition(pearl_losses.with_latent(batch.obs, z).reshape(-1, n_obs + latent), (), (), (), (), ())
        actor, a_opt, log_alpha, t_opt, at_metrics = sac_actor_temperature_step(
            tx,
            params.actor,
            opt_state.actor,
            params.log_alpha,
            opt_state.alpha,
            actor_batch,
            actor_key,
            actor_apply=actor_net.apply,
            critic_apply=critic_net.apply,
            critic_params=critic,
            target_entropy=target_entropy,
        )
        target = optax.incremental_update(critic, params.target_critic, config.tau)
        new = PEARLParams(encoder, actor, critic, target, log_alpha)
        return (new, PEARLOptState(e_opt, a_opt, c_opt, t_opt)), {**c_metrics, **at_metrics}

    metric_names = (
        "critic_loss",
        "q_mean",
        "target_q_mean",
        "kl",
        "z_var",
        "z_mean_abs",
        "actor_loss",
        "entropy",
        "temperature_loss",
        "alpha",
    )

    def step(state: State):
        key, collect_key, update_key = jax.random.split(state.key, 3)
        buffers, context, collect_metrics = collect(state, collect_key)

        # The buffers are read, not carried through the cond (as in sac.py): no copy of them in both branches.
        def do_updates(carry):
            return jax.lax.scan(
                lambda c, k: update(buffers, context, c, k),
                carry,
                jax.random.split(update_key, config.updates_per_iteration),
            )

        def skip_updates(carry):
            return carry, {k: jnp.zeros((config.updates_per_iteration,), jnp.float32) for k in metric_names}

        ready = state.iteration + 1 >= config.warmup_iterations  # every training task has data
        (params, opt_state), metrics = phase_cond(ready, do_updates, skip_updates, (state.params, state.opt_state))
        metrics = {**jax.tree.map(jnp.mean, metrics), **collect_metrics}
        return State(params, opt_state, buffers, context, state.tasks, key, state.iteration + 1), metrics

    def evaluate(state: State, key, num_episodes: int):
        """Meta-test on the held-out tasks: ``num_episodes`` trials per task, each ``adaptation_episodes`` episodes
        (prior z first, then the posterior given all of the trial's transitions so far)."""
        n_eval = config.adaptation_episodes

        def trial(task, k):
            def episode(carry, xs):
                ctx, mask = carry
                e, ek = xs
                z_key, run_key = jax.random.split(ek)
                mu, var = infer(state.params.encoder, ctx, mask)  # the prior while the mask is empty
                z = pearl_losses.sample_latent(z_key, mu, var)
                tr, alive = run_episode(state.params.actor, task, z, run_key, config.eval_deterministic)
                ctx = jax.lax.dynamic_update_slice(ctx, context_features(tr), (e * H, 0))
                mask = jax.lax.dynamic_update_slice(mask, alive, (e * H,))
                return (ctx, mask), jnp.sum(tr.reward * alive)

            carry0 = (jnp.zeros((n_eval * H, ctx_dim), jnp.float32), jnp.zeros((n_eval * H,), jnp.float32))
            _, returns = jax.lax.scan(episode, carry0, (jnp.arange(n_eval), jax.random.split(k, n_eval)))
            return returns  # [adaptation_episodes]

        k_test = num_tasks(env_params)
        keys = jax.random.split(key, (k_test, num_episodes))
        returns = jax.vmap(lambda task, ks: jax.vmap(trial, in_axes=(None, 0))(task, ks))(env_params, keys)
        curve = jnp.mean(returns, axis=(0, 1))  # [adaptation_episodes]
        return {"eval_return": jnp.sum(curve), "adaptation": curve}

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
