"""Meta-RL with HOST collection (Meta-World ML1 / ML10) and jitted updates: RL², PEARL and MAML.

The on-device meta-learners (:mod:`jaxrl.algos.meta`) compile their whole loop over a JAX task family. Meta-World
steps on the host, so here the host steps a :class:`jaxrl.envs.metaworld_meta.MetaWorldMetaEnv` per run and hands
the trajectories to jitted programs built from the same modules' pieces (networks, losses, updates), vmapped over
the run axis (seeds x grid points, as :func:`jaxrl.run.host_train.train_host`):

- ``rl2``: each iteration ``num_tasks`` train tasks (drawn uniformly), one trial each: ``episodes_per_trial``
  episodes with the GRU's hidden state kept across them, inputs ``(s_t, a_{t-1}, r_{t-1}, d_{t-1})``; then PPO on
  whole trials (:func:`jaxrl.algos.meta.rl2.make_loss`, GAE over the trial: :func:`~jaxrl.algos.meta.common.
  trial_advantages`).
- ``pearl``: ``num_train_tasks`` train tasks, a replay buffer each; each iteration ``tasks_per_iteration`` of them
  (round robin) collect ``prior_episodes`` with ``z ~ N(0, I)`` (their transitions become the task's context) and
  ``posterior_episodes`` with ``z ~ q(z | c)``; then :func:`jaxrl.algos.meta.pearl.learn` (critic + encoder on the
  Bellman error and the KL, SAC actor and temperature on ``(s, z)``).
- ``maml``: each iteration ``num_tasks`` train tasks; ``num_trajectories`` episodes per task with the pre-update
  policy, ``num_inner_steps`` policy-gradient steps (each on fresh episodes of the policy so far), the adapted
  policy's episodes, then the outer step of :mod:`jaxrl.algos.meta.maml` (ProMP's clipped surrogate through the
  adaptation, ``jax.grad`` of :func:`~jaxrl.algos.meta.maml.outer_loss`; or TRPO / Reptile).

Training episodes never end early (Meta-World's training envs do not terminate on success), so every episode is
``horizon`` steps and episodes line up across the envs. The config's ``horizon`` is the episode length
(``max_episode_steps``; RL²'s ``0`` means Meta-World's 500).

**Meta-test** (Meta-World's ``metalearning_evaluation`` protocol, on ``eval_tasks`` held-out test tasks spread
over the test classes, every ``total / num_evals`` iterations): per task, ``k = adaptation_episodes`` adaptation
episodes, then ``eval_episodes`` evaluation episodes that end at the first success; a task's success is the
fraction of its evaluation episodes in which ``info["success"]`` was 1 at any step (``metaworld.evaluation``).

- RL²: one trial per task from a zero hidden state: the ``k`` adaptation episodes, then the evaluation episodes,
  the hidden state kept throughout;
- PEARL: adaptation episode ``j`` acts with ``z ~ q(z | c_{<j})`` (the prior for ``j = 0``), ``c_{<j}`` the
  transitions of the earlier adaptation episodes; the evaluation episodes use ``z ~ q(z | c)`` of all ``k``;
- MAML: ``max(num_inner_steps, 1)`` inner steps, each on ``k`` fresh episodes of the stochastic policy so far,
  then the evaluation episodes with the adapted policy's mean action.

Logged per evaluation: ``eval_success`` and ``eval_return`` per test class ``[runs][classes]``, and
``adaptation_success [runs][points]``: the success of adaptation episode ``j = 0..k-1`` (MAML: of each inner
step's episodes), then the evaluation success. Training metrics include ``train_success`` (the fraction of
training episodes with a success). The run directory is :func:`~jaxrl.run.host_train.train_host`'s (the same
:class:`~jaxrl.run.recorder.Recorder`); a host run does not resume.

    from jaxrl.algos.meta import rl2
    from jaxrl.run.host_meta import train_meta

    cfg = rl2.Config(num_tasks=10, episodes_per_trial=3, horizon=100, total_env_steps=30_000, num_minibatches=2)
    result = train_meta("rl2", "metaworld:ML1-reach-v3", cfg, seeds=2, out_dir="runs/rl2-ml1")
    result.summary["eval_success"]   # [runs][test classes]
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from jaxrl import algos as algo_registry
from jaxrl import distributed
from jaxrl.algos import on_policy, train_state
from jaxrl.algos.meta import maml, pearl, rl2, task_context
from jaxrl.algos.meta.common import trial_advantages
from jaxrl.config import ConfigError, replace, to_dict
from jaxrl.data.types import Transition
from jaxrl.losses import pearl as pearl_losses
from jaxrl.losses.meta import Trajectories
from jaxrl.losses.ppo import PPOBatch
from jaxrl.nets import core as nets_core
from jaxrl.run import grid as grid_lib
from jaxrl.run import wandb_log
from jaxrl.run.host_train import HostTrainResult
from jaxrl.run.recorder import Recorder, StopRequest, enable_compilation_cache
from jaxrl.run.watchdog import Watchdog

__all__ = ["train_meta", "META_HOST_ALGOS", "HostMetaEnvSpec"]

META_HOST_ALGOS = ("rl2", "pearl", "maml")


# ------------------------------------------------------------------------------ the host env for the algos' setup


class _SpecEnv:
    """The host env's spaces in the gymnax protocol, for the on-device algorithms' setup functions (network sizes,
    the continuous-action check); nothing steps it."""

    def __init__(self, obs_dim: int, action_dim: int):
        self.obs_dim, self.action_dim = obs_dim, action_dim

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (self.action_dim,), jnp.float32)

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)


class _SpecTasks(NamedTuple):
    max_steps_in_episode: np.ndarray  # [1]: the episode length


@dataclasses.dataclass(frozen=True)
class HostMetaEnvSpec:
    """A host env as a task family for :mod:`jaxrl.algos.meta`'s setup: ``env`` (spaces only), ``sample(key, n)``
    (task indices ``0..n-1``: PEARL's state keeps the indices of its training tasks) and ``params`` (one task with
    the episode length)."""

    obs_dim: int
    action_dim: int
    horizon: int

    @property
    def env(self) -> _SpecEnv:
        return _SpecEnv(self.obs_dim, self.action_dim)

    def sample(self, key, n: int):
        return jnp.arange(n, dtype=jnp.int32)

    @property
    def params(self) -> _SpecTasks:
        return _SpecTasks(np.full((1,), self.horizon, np.int32))


# ---------------------------------------------------------------------------------------------- host collection


class Segment(NamedTuple):
    """``steps`` host steps of every run's envs, ``[R, N, steps, ...]`` (numpy); ``reward`` as the learner sees it
    (times ``reward_scale``), ``raw_reward`` as Meta-World gave it."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    raw_reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray  # this step
    extras: dict  # what the policy returned beside the actions, [R, N, steps, ...]


def collect(
    envs: Sequence[Any], obs: np.ndarray, steps: int, policy: Callable, reward_scale: float, clock=None, after_step=None
):
    """Step every run's env ``steps`` times with ``policy(t, obs [R, N, O]) -> (actions [R, N, A], extras)``;
    ``after_step(reward [R, N], done [R, N])`` (optional) sees each step's scaled reward and episode ends (RL²'s
    next inputs). Returns the :class:`Segment` and the observations after it."""
    rows: dict[str, list] = {k: [] for k in Segment._fields if k != "extras"}
    extras: dict[str, list] = {}
    for t in range(steps):
        actions, ex = policy(t, obs)
        actions = np.asarray(actions)
        t0 = time.perf_counter()
        outs = [e.step(a) for e, a in zip(envs, actions)]
        if clock is not None:
            clock.host += time.perf_counter() - t0
        raw = np.stack([o.reward for o in outs])
        for name, value in (
            ("obs", obs), ("action", actions), ("reward", raw * reward_scale), ("raw_reward", raw),
            ("next_obs", np.stack([o.next_obs for o in outs])), ("terminated", np.stack([o.terminated for o in outs])),
            ("truncated", np.stack([o.truncated for o in outs])), ("success", np.stack([o.success for o in outs])),
        ):  # fmt: skip
            rows[name].append(value)
        for k, v in ex.items():
            extras.setdefault(k, []).append(np.asarray(v))
        obs = np.stack([o.obs for o in outs])
        if after_step is not None:
            after_step(rows["reward"][-1], np.stack([o.episode_done for o in outs]))
    stack = lambda xs: np.stack(xs, axis=2)
    seg = Segment(**{k: stack(v) for k, v in rows.items()}, extras={k: stack(v) for k, v in extras.items()})
    return seg, obs


def episode_view(x: np.ndarray, horizon: int) -> np.ndarray:
    """``[R, N, E * horizon, ...] -> [R, N, E, horizon, ...]`` (fixed-length training episodes)."""
    return x.reshape(*x.shape[:2], x.shape[2] // horizon, horizon, *x.shape[3:])


def evaluation_episodes(env, obs: np.ndarray, policy: Callable, num_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Meta-World's evaluation episodes on one run's env (``metaworld.evaluation``): terminate on success, step
    ``policy(obs [N, O]) -> actions`` until every env finished ``num_episodes`` episodes; per env the success rate
    (success at any step) and mean return of its first ``num_episodes``. ``obs``: the env's current observations
    (a fresh episode starts at the next step where one just ended; the caller resets first)."""
    succ: list[list[bool]] = [[] for _ in range(env.num_envs)]
    ret: list[list[float]] = [[] for _ in range(env.num_envs)]
    env.set_terminate_on_success(True)
    try:
        while min(len(s) for s in succ) < num_episodes:
            out = env.step(np.asarray(policy(obs)))
            for i in np.flatnonzero(out.episode_done):
                succ[i].append(bool(out.episode_success[i]))
                ret[i].append(float(out.episode_return[i]))
            obs = out.obs
    finally:
        env.set_terminate_on_success(False)
    rate = np.asarray([np.mean(s[:num_episodes]) for s in succ], np.float32)
    return rate, np.asarray([np.mean(r[:num_episodes]) for r in ret], np.float32)


def _pool_of(env, split: str, n: int | None) -> np.ndarray:
    return env.pool(split, env.num_tasks(split) if n is None else n)


def _draw(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """``n`` tasks of ``pool``, uniformly (without replacement when the pool is large enough)."""
    return pool[rng.choice(len(pool), n, replace=n > len(pool))]


class _Clock:
    host = 0.0


def _keys(seeds: Sequence[int], salt: int) -> jax.Array:
    """Per run, a base key for host-side sampling (distinct from the learner's init key)."""
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), salt))(jnp.asarray(seeds, jnp.int32))


# -------------------------------------------------------------------------------------------------------- RL²


@struct.dataclass
class RL2HostState:
    train: train_state.TrainState
    key: jax.Array
    iteration: jax.Array


class _RL2:
    """RL² on host trials (see the module docstring)."""

    def __init__(self, config: rl2.Config, spec: HostMetaEnvSpec):
        self.config, self.spec = config, spec
        self.agent = rl2.make_agent(config, spec, spec.params)
        self.num_envs = config.num_tasks
        self.steps_per_iteration = config.num_tasks * self.agent.trial_len
        self.default_k = max(config.episodes_per_trial - 1, 1)
        agent = self.agent

        def init(cfg, seed):
            key, pk = jax.random.split(jax.random.PRNGKey(seed))
            params = agent.net.init(pk, agent.net.initial_hidden(), jnp.zeros((agent.n_obs + agent.n_act + 2,)))
            return RL2HostState(
                train_state.create(on_policy.make_ppo_optimizer(cfg), params), key, jnp.zeros((), jnp.int32)
            )

        def act(params, h, x, key, t, deterministic: bool):
            h, (dist, value) = agent.net.apply(params, h, x)
            k = jax.random.fold_in(key, t)
            action = nets_core.mode(dist) if deterministic else dist.sample(seed=k)
            return h, action, dist.log_prob(action), value

        def update(cfg, state: RL2HostState, inputs, action, log_prob, value, reward):
            """PPO on the trials ``[T, N, ...]`` (time-major), as :func:`jaxrl.algos.meta.rl2.make_step`."""
            tx = on_policy.make_ppo_optimizer(cfg)
            step = on_policy.gradient_update(jax.grad(rl2.make_loss(agent, cfg), has_aux=True), tx)
            adv, target = trial_advantages(reward, value, cfg.discount, cfg.gae_lambda)
            key, perm_key = jax.random.split(state.key)
            data = PPOBatch(inputs, action, log_prob, value, adv, target)
            epochs = (cfg.num_epochs, cfg.num_minibatches)
            train, metrics = on_policy.minibatch_epochs(
                step, state.train, data, perm_key, *epochs, axis=1, permutation=jax.random.permutation
            )
            metrics["trial_return"] = jnp.mean(jnp.sum(reward, axis=0))
            return RL2HostState(train, key, state.iteration + 1), metrics

        self.init = jax.jit(jax.vmap(init))
        self._act = jax.jit(jax.vmap(partial(act, deterministic=False), in_axes=(0, 0, 0, 0, None)))
        self._act_one = {d: jax.jit(partial(act, deterministic=d)) for d in (False, True)}
        self._update = jax.jit(jax.vmap(update))

    def _inputs(self, obs, prev_a, prev_r, prev_d):
        return np.concatenate([obs, prev_a, prev_r[..., None], prev_d[..., None]], axis=-1).astype(np.float32)

    def iterate(self, loop: _Loop, cfgs, state: RL2HostState):
        agent, n, r = self.agent, self.num_envs, len(loop.envs)
        obs = np.stack([e.set_tasks("train", _draw(rng, loop.pool_train, n)) for e, rng in zip(loop.envs, loop.rngs)])
        carry = {
            "h": jnp.zeros((r, n, agent.net.hidden_size)),
            "a": np.zeros((r, n, agent.n_act), np.float32),
            "rew": np.zeros((r, n), np.float32),
            "done": np.zeros((r, n), np.float32),
        }
        keys = loop.next_keys()

        def policy(t, obs):
            x = self._inputs(obs, carry["a"], carry["rew"], carry["done"])
            carry["h"], action, log_prob, value = self._act(state.train.params, carry["h"], x, keys, t)
            carry["a"] = np.asarray(action)
            return carry["a"], {"inputs": x, "log_prob": log_prob, "value": value}

        def after_step(reward, done):
            carry["rew"], carry["done"] = reward.astype(np.float32), done.astype(np.float32)

        seg, _ = collect(loop.envs, obs, agent.trial_len, policy, loop.reward_scale, loop.clock, after_step)
        tm = lambda x: np.swapaxes(np.asarray(x), 1, 2)  # [R, N, T, ...] -> [R, T, N, ...]
        ex = seg.extras
        state, metrics = self._update(
            cfgs, state, tm(ex["inputs"]), tm(seg.action), tm(ex["log_prob"]), tm(ex["value"]), tm(seg.reward)
        )
        success = episode_view(seg.success, self.spec.horizon).any(-1)  # [R, N, E]
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        metrics["train_success"] = success.mean(axis=(1, 2))
        metrics["train_success_last_episode"] = success[..., -1].mean(axis=1)
        return state, metrics

    def meta_test(self, loop: _Loop, state_r, env, pool: np.ndarray, k: int, num_episodes: int, key):
        """One run: a trial per test task, ``k`` adaptation episodes then the evaluation episodes (hidden state
        kept throughout)."""
        agent, n, det = self.agent, env.num_envs, self.config.eval_deterministic
        obs = env.set_tasks("test", pool)
        carry: dict[str, Any] = {"h": jnp.zeros((n, agent.net.hidden_size)), "a": np.zeros((n, agent.n_act))}
        carry.update(rew=np.zeros(n, np.float32), done=np.zeros(n, np.float32), t=0)
        params = state_r.train.params

        def act(obs):
            x = self._inputs(obs, carry["a"], carry["rew"], carry["done"])
            carry["h"], action, _, _ = self._act_one[det](params, carry["h"], x, key, carry["t"])
            carry["a"], carry["t"] = np.asarray(action), carry["t"] + 1
            return carry["a"]

        curve = []
        for _ in range(k):
            ep_success = np.zeros(n, bool)
            for _ in range(self.spec.horizon):
                out = env.step(act(obs))
                carry["rew"] = (out.reward * loop.reward_scale).astype(np.float32)
                carry["done"] = out.episode_done.astype(np.float32)
                ep_success |= out.success
                obs = out.obs
            curve.append(ep_success)

        rate, ret = evaluation_episodes(_Feedback(env, carry, loop.reward_scale), obs, act, num_episodes)
        return rate, ret, np.stack(curve, axis=-1) if curve else np.zeros((n, 0))


class _Feedback:
    """An env whose steps also write the reward and done flag into an RL² carry (the next input's ``r, d``)."""

    def __init__(self, env, carry: dict, reward_scale: float):
        self.env, self.carry, self.reward_scale = env, carry, reward_scale
        self.num_envs = env.num_envs

    def step(self, action):
        out = self.env.step(action)
        self.carry["rew"] = (out.reward * self.reward_scale).astype(np.float32)
        self.carry["done"] = out.episode_done.astype(np.float32)
        return out

    def set_terminate_on_success(self, on: bool) -> None:
        self.env.set_terminate_on_success(on)


# ------------------------------------------------------------------------------------------------------ PEARL


class _PEARL:
    """PEARL with host collection (see the module docstring); the updates are :func:`pearl.learn`'s."""

    def __init__(self, config: pearl.Config, spec: HostMetaEnvSpec):
        self.config, self.spec = config, spec
        s0 = pearl.setup(config, spec, spec.params)  # checks before compiling
        self.num_envs = config.tasks_per_iteration
        self.steps_per_iteration = config.env_steps_per_iteration
        self.default_k = max(config.adaptation_episodes - 1, 1)
        self.context_dim = s0.context_dim
        setup = lambda cfg: pearl.setup(cfg, spec, spec.params)

        def init(cfg, seed):
            return pearl.init(setup(cfg), jax.random.PRNGKey(seed))

        def latent(cfg, encoder_params, context, mask, key, t):
            """``z ~ q(z | context rows kept by mask)``, ``[N, L]``; the prior where the mask keeps nothing."""
            mu, var = pearl.infer(setup(cfg), encoder_params, context, mask)
            return pearl_losses.sample_latent(jax.random.fold_in(key, t), mu, var)

        def latent_from_rows(cfg, encoder_params, context, key, t):
            """As :func:`task_context.context_phase`: ``z ~ q(z | c)``, ``c`` = ``context_batch_size`` rows of each
            task's fresh context ``[N, rows, D]``."""
            row_key, z_key = jax.random.split(jax.random.fold_in(key, t))
            n = context.shape[0]
            c = task_context.sample_rows(row_key, context, jnp.arange(n), (cfg.context_batch_size,), context.shape[1])
            mu, var = pearl.infer(setup(cfg), encoder_params, c)
            return pearl_losses.sample_latent(z_key, mu, var)

        def act(cfg, actor_params, obs, z, key, t, deterministic: bool):
            return pearl.policy(setup(cfg), actor_params, obs, z, jax.random.fold_in(key, t), deterministic)

        def learn(cfg, state: pearl.State, idx, episodes: Transition, fresh):
            s = setup(cfg)
            buffers = task_context.add_to_tasks(state.buffers, idx, episodes)
            context = state.context.at[idx].set(fresh)
            key, learn_key = jax.random.split(state.key)
            new, metrics = pearl.learn(s, state, (buffers, context), learn_key)
            return new.replace(key=key, iteration=state.iteration + 1), metrics

        self.init = jax.jit(jax.vmap(init))
        self._latent = jax.jit(jax.vmap(latent, in_axes=(0, 0, 0, 0, 0, None)))
        self._latent_rows = jax.jit(jax.vmap(latent_from_rows, in_axes=(0, 0, 0, 0, None)))
        self._act = jax.jit(jax.vmap(partial(act, deterministic=False), in_axes=(0, 0, 0, 0, 0, None)))
        self._learn = jax.jit(jax.vmap(learn, in_axes=(0, 0, None, 0, 0)), donate_argnums=(1,))
        self._latent_one = jax.jit(latent)
        self._act_one = {d: jax.jit(partial(act, deterministic=d)) for d in (False, True)}

    def _context(self, seg: Segment) -> np.ndarray:
        return np.concatenate([seg.obs, seg.action, seg.reward[..., None], seg.next_obs], axis=-1).astype(np.float32)

    def iterate(self, loop: _Loop, cfgs, state: pearl.State):
        cfg, n, horizon = self.config, self.num_envs, self.spec.horizon
        it = int(loop.iteration)
        idx = (it * n + np.arange(n)) % cfg.num_train_tasks  # round robin, as pearl.collect
        obs = np.stack([e.set_tasks("train", loop.pool_train[idx]) for e in loop.envs])
        r, keys = len(loop.envs), loop.next_keys()
        enc, actor = state.nets.encoder.params, state.nets.actor.params
        no_ctx = np.zeros((r, n, 1, self.context_dim), np.float32), np.zeros((r, n, 1), np.float32)
        counter = [0]

        def episode(z, obs):
            def policy(t, o):
                counter[0] += 1
                return self._act(cfgs, actor, o, z, keys, counter[0]), {}

            return collect(loop.envs, obs, horizon, policy, loop.reward_scale, loop.clock)

        segs = []
        for e in range(cfg.prior_episodes):  # z ~ N(0, I): the context
            seg, obs = episode(self._latent(cfgs, enc, *no_ctx, keys, 10**6 + e), obs)
            segs.append(seg)
        fresh = np.concatenate([self._context(sg) for sg in segs], axis=2)  # [R, n, prior_episodes * H, D]
        for e in range(cfg.posterior_episodes):  # z ~ q(z | c), c: context_batch_size rows of the context
            seg, obs = episode(self._latent_rows(cfgs, enc, fresh, keys, 2 * 10**6 + e), obs)
            segs.append(seg)
        cat = lambda f: np.concatenate([getattr(sg, f) for sg in segs], axis=2)
        ep = lambda x: episode_view(x, horizon)  # [R, n, E, H, ...]
        f32 = lambda f: ep(cat(f)).astype(np.float32)
        episodes = Transition(
            f32("obs"), f32("action"), f32("reward"), f32("next_obs"), ep(cat("terminated")), ep(cat("truncated"))
        )
        state, metrics = self._learn(cfgs, state, idx.astype(np.int32), episodes, fresh)
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        success = ep(cat("success")).any(-1)  # [R, n, E]
        metrics["train_success"] = success.mean(axis=(1, 2))
        returns = ep(cat("raw_reward")).sum(-1)  # [R, n, E]: Meta-World's reward, unscaled
        metrics["prior_return"] = returns[:, :, : cfg.prior_episodes].mean(axis=(1, 2))
        if cfg.posterior_episodes:
            metrics["posterior_return"] = returns[:, :, cfg.prior_episodes :].mean(axis=(1, 2))
        return state, metrics

    def meta_test(self, loop: _Loop, state_r, env, pool: np.ndarray, k: int, num_episodes: int, key):
        """One run: adaptation episode ``j`` with ``z ~ q(z | c_{<j})``, then the evaluation episodes with
        ``z ~ q(z | c)`` of all ``k`` adaptation episodes."""
        cfg, n, horizon = self.config, env.num_envs, self.spec.horizon
        det = cfg.eval_deterministic
        enc, actor = state_r.nets.encoder.params, state_r.nets.actor.params
        ctx = np.zeros((n, max(k, 1) * horizon, self.context_dim), np.float32)
        mask = np.zeros((n, max(k, 1) * horizon), np.float32)
        obs = env.set_tasks("test", pool)
        cfg1 = loop.cfg_of_run
        t = [0]

        def act(z):
            def policy(o):
                t[0] += 1
                return np.asarray(self._act_one[det](cfg1, actor, o, z, key, t[0]))

            return policy

        curve = []
        for j in range(k):
            z = self._latent_one(cfg1, enc, ctx, mask, key, 10**6 + j)
            policy, ep_success = act(z), np.zeros(n, bool)
            for step in range(horizon):
                a = policy(obs)
                out = env.step(a)
                row = np.concatenate([obs, a, out.reward[:, None] * loop.reward_scale, out.next_obs], axis=-1)
                ctx[:, j * horizon + step], mask[:, j * horizon + step] = row, 1.0
                ep_success |= out.success
                obs = out.obs
            curve.append(ep_success)
        z = self._latent_one(cfg1, enc, ctx, mask, key, 2 * 10**6)
        rate, ret = evaluation_episodes(env, obs, act(z), num_episodes)
        return rate, ret, np.stack(curve, axis=-1) if curve else np.zeros((n, 0))


# ------------------------------------------------------------------------------------------------------- MAML


class _MAML:
    """MAML with host collection (see the module docstring); inner steps and outer steps are :mod:`maml`'s."""

    def __init__(self, config: maml.Config, spec: HostMetaEnvSpec):
        self.config, self.spec = config, spec
        maml.setup(config, spec, spec.params)  # checks (memory budget, horizon) before compiling
        self.num_envs = config.num_tasks
        self.steps_per_iteration = config.env_steps_per_iteration
        self.default_k = config.num_trajectories
        setup = lambda cfg: maml.setup(cfg, spec, spec.params)

        def init(cfg, seed):
            return maml.init(setup(cfg), jax.random.PRNGKey(seed))

        def start(cfg, params, n: int):
            """Every task's starting point ``[n]`` (the meta-parameters)."""
            p = setup(cfg).adaptation.start(params)
            return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), p)

        def act(cfg, task_params, obs, key, t, deterministic: bool):
            """Per task ``i``: ``a ~ pi_{theta_i}(. | obs_i)`` (or its mean), and ``log pi``."""
            s = setup(cfg)

            def one(p, o, k):
                dist = s.policy.apply(p, o)
                action = nets_core.mode(dist) if deterministic else dist.sample(seed=k)
                return action, dist.log_prob(action)

            return jax.vmap(one)(task_params, obs, jax.random.split(jax.random.fold_in(key, t), obs.shape[0]))

        def inner(cfg, task_params, tr: Trajectories):
            """One inner step per task on its episodes ``[N, M, H]`` (the forward value of MAML's inner step)."""
            s = setup(cfg)
            return jax.vmap(lambda p, t: s.adaptation.steps(p, [maml.pg_batch(cfg, t)], True))(task_params, tr)

        def outer(cfg, state: maml.State, trajs: tuple):
            """The outer step on ``trajs = (D^0, .., D^K)`` (each ``[N, M, H]``): ProMP, TRPO or Reptile."""
            s = setup(cfg)
            batches = [jax.vmap(partial(maml.pg_batch, cfg))(tr) for tr in trajs[:-1]]
            post = trajs[-1]
            params = state.policy.params
            if cfg.outer == "promp":
                value_grad = jax.value_and_grad(partial(maml.outer_loss, s))
                values, grads = jax.vmap(value_grad, in_axes=(None, 0, 0))(params, batches, post)
                pre = jax.vmap(lambda tr: jnp.mean(jnp.sum(tr.reward, -1)))(trajs[0])
                policy, metrics = maml.promp_outer(s, state.policy, (batches, post, pre, values, grads))
            else:
                policy, metrics = maml.OUTER_STEPS[cfg.outer](s, state.policy, (batches, post))
            key, _ = jax.random.split(state.key)
            return maml.State(policy, key, state.iteration + 1), metrics

        n = config.num_tasks
        self.init = jax.jit(jax.vmap(init))
        self._start = jax.jit(jax.vmap(partial(start, n=n)))
        self._act = jax.jit(jax.vmap(partial(act, deterministic=False), in_axes=(0, 0, 0, 0, None)))
        self._inner = jax.jit(jax.vmap(inner))
        self._outer = jax.jit(jax.vmap(outer))
        self._start_one = jax.jit(start, static_argnames="n")
        self._act_one = {d: jax.jit(partial(act, deterministic=d)) for d in (False, True)}
        self._inner_one = jax.jit(inner)

    def _trajectories(self, seg: Segment) -> Trajectories:
        ep = lambda x: jnp.asarray(episode_view(x, self.spec.horizon), jnp.float32)  # [R, N, M, H, ...]
        reward = ep(seg.reward)
        return Trajectories(ep(seg.obs), ep(seg.action), reward, jnp.ones_like(reward), ep(seg.extras["log_prob"]))

    def iterate(self, loop: _Loop, cfgs, state: maml.State):
        cfg, n, horizon = self.config, self.num_envs, self.spec.horizon
        obs = np.stack([e.set_tasks("train", _draw(rng, loop.pool_train, n)) for e, rng in zip(loop.envs, loop.rngs)])
        keys, counter = loop.next_keys(), [0]
        task_params = self._start(cfgs, state.policy.params)

        def run(p, obs):
            def policy(t, o):
                counter[0] += 1
                action, log_prob = self._act(cfgs, p, o, keys, counter[0])
                return action, {"log_prob": log_prob}

            return collect(loop.envs, obs, cfg.num_trajectories * horizon, policy, loop.reward_scale, loop.clock)

        trajs, segs = [], []
        for _ in range(cfg.num_inner_steps):
            seg, obs = run(task_params, obs)
            segs.append(seg)
            trajs.append(self._trajectories(seg))
            task_params = self._inner(cfgs, task_params, trajs[-1])
        seg, obs = run(task_params, obs)
        segs.append(seg)
        trajs.append(self._trajectories(seg))
        state, metrics = self._outer(cfgs, state, tuple(trajs))
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        succ = [episode_view(sg.success, horizon).any(-1).mean(axis=(1, 2)) for sg in segs]
        rets = [episode_view(sg.raw_reward, horizon).sum(-1).mean(axis=(1, 2)) for sg in segs]
        metrics.update(
            train_success=succ[-1], pre_adaptation_success=succ[0], post_adaptation_return=rets[-1],
            pre_adaptation_return=rets[0],
        )  # fmt: skip
        return state, metrics

    def meta_test(self, loop: _Loop, state_r, env, pool: np.ndarray, k: int, num_episodes: int, key):
        """One run: ``max(num_inner_steps, 1)`` inner steps, each on ``k`` fresh episodes per test task, then the
        evaluation episodes with the adapted policy's mean."""
        cfg1, n, horizon = loop.cfg_of_run, env.num_envs, self.spec.horizon
        obs = env.set_tasks("test", pool)
        p = self._start_one(cfg1, state_r.policy.params, n=n)
        t = [0]
        curve = []
        for _ in range(max(self.config.num_inner_steps, 1)):
            rows: dict[str, list] = {"obs": [], "action": [], "reward": [], "log_prob": []}
            ep_success = np.zeros((n, k), bool)
            for step in range(k * horizon):
                t[0] += 1
                action, log_prob = self._act_one[False](cfg1, p, obs, key, t[0])
                action = np.asarray(action)
                out = env.step(action)
                for name, v in (("obs", obs), ("action", action), ("reward", out.reward * loop.reward_scale),
                                ("log_prob", log_prob)):  # fmt: skip
                    rows[name].append(np.asarray(v, np.float32))
                ep_success[:, step // horizon] |= out.success
                obs = out.obs
            ep = lambda xs: jnp.asarray(np.stack(xs, 1).reshape(n, k, horizon, *np.shape(xs[0])[1:]))
            reward = ep(rows["reward"])
            tr = Trajectories(ep(rows["obs"]), ep(rows["action"]), reward, jnp.ones_like(reward), ep(rows["log_prob"]))
            p = self._inner_one(cfg1, p, tr)
            curve.append(ep_success.mean(-1))

        def policy(o):
            t[0] += 1
            return np.asarray(self._act_one[True](cfg1, p, o, key, t[0])[0])

        rate, ret = evaluation_episodes(env, obs, policy, num_episodes)
        return rate, ret, np.stack(curve, axis=-1)


LEARNERS = {"rl2": _RL2, "pearl": _PEARL, "maml": _MAML}


# ----------------------------------------------------------------------------------------------------- the loop


def _resolve_algo(algo) -> tuple[ModuleType, str]:
    module = algo_registry.get(algo) if isinstance(algo, str) else algo
    name = algo if isinstance(algo, str) else algo_registry.name_of(module)
    if name not in LEARNERS:
        raise ConfigError(f"host meta-training runs {list(META_HOST_ALGOS)} on Meta-World ML benchmarks; got {name!r}")
    return module, name


def _env_factory(env, env_kwargs: Mapping[str, Any]) -> tuple[Callable[..., Any], str]:
    """``(seed, num_envs) -> host meta env`` and the name to record; a Meta-World name is checked here (a clear
    error with close matches before anything is built or compiled)."""
    if isinstance(env, str):
        from jaxrl.envs.metaworld_meta import make_metaworld_meta, parse_ml

        kind, task = parse_ml(env)
        full = "metaworld:" + (f"ML1-{task}" if task else kind)
        return (lambda seed, num_envs: make_metaworld_meta(full, seed=seed, num_envs=num_envs, **env_kwargs)), full
    if callable(env):
        return env, getattr(env, "__name__", "host-meta-env")
    raise TypeError(f"env must be a Meta-World ML name ('metaworld:ML1-reach-v3') or a factory, got {env!r}")


class _Loop:
    """What a learner's ``iterate`` / ``meta_test`` read: the runs' envs, task pools, host RNGs and keys."""

    def __init__(self, envs, pool_train, seeds, reward_scale: float):
        self.envs, self.pool_train, self.reward_scale = envs, pool_train, reward_scale
        self.rngs = [np.random.default_rng([s, 17]) for s in seeds]
        self.base_keys = _keys(seeds, 1)
        self.iteration = 0
        self.clock = _Clock()
        self.cfg_of_run: Any = None

    def next_keys(self) -> jax.Array:
        """Per run, this iteration's collection key ``[R]``."""
        return jax.vmap(lambda k: jax.random.fold_in(k, self.iteration))(self.base_keys)


def train_meta(
    algo: str | ModuleType = "rl2",
    env: str | Callable[..., Any] = "metaworld:ML1-reach-v3",
    config: Any = None,
    *,
    seeds: int | Sequence[int] = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    out_dir: str | os.PathLike | None = None,
    num_evals: int = 5,
    eval_episodes: int = 3,
    eval_tasks: int = 10,
    adaptation_episodes: int | None = None,
    train_tasks: int | None = None,
    reward_scale: float = 1.0,
    env_kwargs: Mapping[str, Any] | None = None,
    tensorboard: bool = True,
    checkpoint: bool = True,
    progress: bool = True,
    compilation_cache: str | bool | None = None,
    watchdog: Watchdog | None = None,
    wandb: str | bool | None = None,
) -> HostTrainResult:
    """Meta-train ``algo`` (``"rl2"``, ``"pearl"``, ``"maml"``) on a Meta-World ML benchmark with host collection.

    Args:
      algo: the algorithm's name or module; ``config`` its ``Config`` (``horizon`` is the episode length; RL²'s 0:
        Meta-World's 500). ``total_env_steps`` counts training env steps per run.
      env: ``"metaworld:ML1-reach-v3"``, ``"metaworld:ML10"``, ... or a factory ``(seed, num_envs) -> env`` with
        :class:`~jaxrl.envs.metaworld_meta.MetaWorldMetaEnv`'s interface (tests).
      seeds / grid: as :func:`jaxrl.run.train` (a run per seed x grid point; each run its own envs, one program).
      num_evals: meta-test evaluations (and metrics records) over the run.
      eval_episodes: evaluation episodes per test task after the adaptation (Meta-World's ML protocol: 3).
      eval_tasks: held-out test tasks per meta-test, spread over the test classes.
      adaptation_episodes: ``k`` (default: RL² ``episodes_per_trial - 1``, PEARL ``adaptation_episodes - 1``,
        MAML ``num_trajectories``; at least 1).
      train_tasks: the training task pool (default: every train task; PEARL: ``num_train_tasks``).
      reward_scale: the learners see Meta-World's reward times this (returns are logged unscaled).
      env_kwargs: for :class:`MetaWorldMetaEnv` (``reward_function_version``, ``vector_strategy``).
    """
    wandb_log.check(wandb, out_dir, resuming=False)
    if distributed.is_distributed():
        raise ValueError("host meta-training runs in one process (several processes: not supported)")
    _check_counts(num_evals, eval_episodes, eval_tasks, adaptation_episodes, reward_scale)
    plan = _meta_plan(algo, env, config, seeds, grid, env_kwargs, train_tasks, eval_tasks, adaptation_episodes)
    config, runs, learner = plan.config, plan.runs, plan.learner
    total_iters = config.num_iterations
    eval_every = math.ceil(total_iters / min(num_evals, total_iters))
    num_chunks = math.ceil(total_iters / eval_every)
    rec = Recorder(
        out_dir, algo=plan.algo_name, env=plan.env_name, runs=runs, env_obj=plan.envs[0],
        steps_per_iteration=learner.steps_per_iteration, compilation_cache=enable_compilation_cache(compilation_cache),
        tensorboard=tensorboard, checkpoint=checkpoint, progress=progress, resumable=False, wandb=wandb,
        mean_keys=("eval_return", "eval_success"),
    )  # fmt: skip
    rec.say(f"meta-training {plan.algo_name} on {plan.env_name} ({len(runs)} run(s)), host collection...")
    loop = _Loop(plan.envs, plan.pool_train, seeds=[r["seed"] for r in runs], reward_scale=reward_scale)
    chunks = _Chunks(plan, rec, loop, eval_every, eval_tasks, eval_episodes)
    with rec.watch(watchdog, num_chunks, eval_every, total_iters):
        t0 = time.perf_counter()
        state = learner.init(plan.batched_config, jnp.asarray([r["seed"] for r in runs], jnp.int32))
        jax.block_until_ready(state)
        rec.compiled(time.perf_counter() - t0)
        rec.open(_run_spec(plan, num_chunks, eval_every, eval_episodes, reward_scale))
        state = chunks.run(state, total_iters)
    return chunks.finish(state)


def _check_counts(num_evals, eval_episodes, eval_tasks, adaptation_episodes, reward_scale) -> None:
    if num_evals < 1 or eval_episodes < 1 or eval_tasks < 1:
        raise ValueError(
            f"num_evals ({num_evals}), eval_episodes ({eval_episodes}), eval_tasks ({eval_tasks}) must be >= 1"
        )
    if adaptation_episodes is not None and adaptation_episodes < 1:
        raise ValueError(f"adaptation_episodes={adaptation_episodes} must be >= 1")
    if not reward_scale > 0:
        raise ValueError(f"reward_scale={reward_scale} must be > 0")


@dataclasses.dataclass
class _MetaPlan:
    """A checked meta-training run: the algorithm, its config(s), the runs, their envs and task pools, ``k``."""

    algo_name: str
    config: Any
    batched_config: Any
    seeds: list[int]
    grid: dict
    runs: list[dict]
    env_name: str
    env_kwargs: dict
    make_env: Callable[..., Any]
    envs: list
    learner: Any
    pool_train: np.ndarray
    pool_test: np.ndarray
    k: int


def _meta_plan(algo, env, config, seeds, grid, env_kwargs, train_tasks, eval_tasks, adaptation_episodes) -> _MetaPlan:
    """Check the algorithm, config and env name (before anything is built), then build each run's env (its
    benchmark's goals come from its seed) and the learner."""
    module, algo_name = _resolve_algo(algo)
    config = module.Config() if config is None else config
    if not isinstance(config, module.Config):
        raise TypeError(f"config must be a {module.__name__}.Config, got {type(config).__name__}")
    env_kwargs = dict(env_kwargs or {})
    if isinstance(env, str):
        env_kwargs.setdefault("max_episode_steps", config.horizon or 500)
    make_env, env_name = _env_factory(env, env_kwargs)  # name checks before anything is built
    if algo_name == "rl2" and config.horizon == 0:  # RL²'s 0 (bandits) means Meta-World's episode length
        config = replace(config, horizon=500)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    grid = {k: list(v) for k, v in (grid or {}).items()}
    batched_config, runs = grid_lib.expand(config, seeds, grid)
    num_envs = config.tasks_per_iteration if algo_name == "pearl" else config.num_tasks
    envs = [make_env(r["seed"], num_envs) for r in runs]
    if envs[0].max_episode_steps != config.horizon:
        raise ConfigError(
            f"{algo_name}.Config.horizon={config.horizon} but the env's episodes last {envs[0].max_episode_steps} "
            f"steps: build the env with max_episode_steps={config.horizon} (a Meta-World name gets it from the config)"
        )
    learner = LEARNERS[algo_name](config, HostMetaEnvSpec(envs[0].obs_dim, envs[0].action_dim, config.horizon))
    n_train = config.num_train_tasks if algo_name == "pearl" and train_tasks is None else train_tasks
    pool_train, pool_test = _pool_of(envs[0], "train", n_train), envs[0].pool("test", eval_tasks)
    k = adaptation_episodes or learner.default_k
    return _MetaPlan(
        algo_name, config, batched_config, seeds, grid, runs, env_name, env_kwargs, make_env, envs, learner,
        pool_train, pool_test, k,
    )  # fmt: skip


def _run_spec(plan: _MetaPlan, num_chunks: int, eval_every: int, eval_episodes: int, reward_scale: float) -> dict:
    """config.json's content (besides the algorithm, env and versions the recorder adds)."""
    return {
        "config": to_dict(plan.config),
        "seeds": plan.seeds,
        "grid": plan.grid,
        "num_chunks": num_chunks,
        "chunk_iterations": eval_every,
        "eval_episodes": eval_episodes,
        "runs": plan.runs,
        "collection": "host (jaxrl.run.host_meta)",
        "env_kwargs": plan.env_kwargs,
        "meta_test": {
            "protocol": "metaworld.evaluation.metalearning_evaluation: k adaptation episodes per held-out test task, "
            "then evaluation episodes that end at the first success; success = info['success'] at any step",
            "adaptation_episodes": plan.k,
            "eval_episodes": eval_episodes,
            "eval_tasks": plan.pool_test.tolist(),
            "train_tasks": len(plan.pool_train),
            "reward_scale": reward_scale,
        },
    }


class _Chunks:
    """The iterations, a meta-test and a record every ``eval_every``; stops between iterations on SIGINT/SIGTERM."""

    def __init__(self, plan: _MetaPlan, rec: Recorder, loop: _Loop, eval_every: int, eval_tasks: int, episodes: int):
        self.plan, self.rec, self.loop = plan, rec, loop
        self.eval_every, self.eval_tasks, self.eval_episodes = eval_every, eval_tasks, episodes
        self.eval_envs: list = []  # per run, built at the first meta-test: the run's benchmark (same test tasks)
        self.eval_seconds, self.t_loop = 0.0, 0.0
        self.iterations, self.chunk, self.interrupted = 0, 0, False

    def run(self, state, total_iters: int):
        plan, rec, loop = self.plan, self.rec, self.loop
        bar = rec.progress_bar(total_iters)
        chunk_metrics: list[dict] = []
        self.t_loop = time.perf_counter()
        with StopRequest() as stop:
            for it in range(total_iters):
                loop.iteration = it
                state, metrics = plan.learner.iterate(loop, plan.batched_config, state)
                chunk_metrics.append(metrics)
                self.iterations = it + 1
                if bar is not None:
                    bar.update(plan.learner.steps_per_iteration)
                self.interrupted = stop.signal_name is not None and it + 1 < total_iters
                if self.interrupted:
                    rec.report_stop(stop.signal_name, it + 1)
                    break
                if (it + 1) % self.eval_every == 0 or it + 1 == total_iters:
                    self._record(state, chunk_metrics, bar)
                    chunk_metrics = []
        if bar is not None:
            bar.close()
        return state

    def _record(self, state, chunk_metrics: list[dict], bar) -> None:
        """Meta-test every run, log the chunk (training metrics averaged over its iterations)."""
        plan, t_eval = self.plan, time.perf_counter()
        if not self.eval_envs:
            self.eval_envs = [plan.make_env(r["seed"], self.eval_tasks) for r in plan.runs]
        evals = _meta_test(
            plan.learner, self.loop, plan.batched_config, state, self.eval_envs, plan.pool_test, plan.k,
            self.eval_episodes,
        )  # fmt: skip
        self.eval_seconds += time.perf_counter() - t_eval
        means = {name: np.mean([np.asarray(m[name]) for m in chunk_metrics], axis=0) for name in chunk_metrics[0]}
        self.rec.log_chunk(self.chunk, np.asarray([self.iterations]), evals, means, per_iteration=False)
        if bar is not None:
            bar.set_postfix(eval_success=f"{np.mean(evals['eval_success']):.2f}")
        self.rec.chunk_done(self.chunk)
        self.chunk += 1

    def finish(self, state) -> HostTrainResult:
        """Close the envs, write the summary, the final checkpoint and the curves."""
        plan, rec, clock = self.plan, self.rec, self.loop.clock
        rec.run_seconds = time.perf_counter() - self.t_loop - self.eval_seconds
        summary = rec.summary(
            self.iterations, host_env_seconds=clock.host, device_seconds=rec.run_seconds - clock.host,
            eval_seconds=self.eval_seconds, interrupted=self.interrupted, adaptation_episodes=plan.k,
        )  # fmt: skip
        for e in plan.envs + self.eval_envs:
            e.close()
        rec.save_checkpoint(self.chunk if self.interrupted else self.chunk - 1, state, self.iterations, keep=1)
        rec.finish(summary, plot_metric=None if self.interrupted else "eval_success")
        metrics, runs = rec.metrics((len(plan.runs),)), plan.runs
        return HostTrainResult(
            state, metrics, np.asarray(rec.env_steps), runs, summary, rec.run_dir, interrupted=self.interrupted
        )


def _meta_test(learner, loop: _Loop, cfgs, state, envs: list, pool: np.ndarray, k: int, num_episodes: int) -> dict:
    """Every run's meta-test on the held-out tasks ``pool`` of its env in ``envs``: success and return per test
    class ``[R, classes]`` and the adaptation curve ``[R, k + 1]`` (MAML: ``[R, inner steps + 1]``)."""
    classes = [envs[0].classes["test"][i] for i in pool]
    names = list(dict.fromkeys(classes))
    member = np.asarray([[c == name for c in classes] for name in names], np.float32)  # [C, N]
    per_class = lambda x: (member @ x) / member.sum(1)
    out: dict[str, list] = {"eval_success": [], "eval_return": [], "adaptation_success": []}
    host_state = jax.tree.map(np.asarray, state)
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(loop.base_keys)
    for r, env in enumerate(envs):
        loop.cfg_of_run = jax.tree.map(lambda x: x[r], cfgs)
        state_r = jax.tree.map(lambda x: x[r], host_state)
        key = jax.random.fold_in(eval_keys[r], loop.iteration)
        rate, ret, curve = learner.meta_test(loop, state_r, env, pool, k, num_episodes, key)
        out["eval_success"].append(per_class(rate))
        out["eval_return"].append(per_class(ret))
        out["adaptation_success"].append(np.concatenate([curve.mean(0), [rate.mean()]]))
    return {name: np.stack(v).astype(np.float32) for name, v in out.items()}
