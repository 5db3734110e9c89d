"""Off-policy multi-task training with HOST collection (Meta-World) and jitted updates.

:func:`jaxrl.run.train` compiles collection into the program; that needs a JAX env. Meta-World runs on the host,
so here the host steps one :class:`jaxrl.envs.metaworld.MetaWorldEnv` per run and everything else stays
jitted and vmapped over the run axis (seeds x grid points, as in :func:`jaxrl.run.train`): per iteration ONE
compiled call writes the ``N = K * envs_per_task`` new transitions into the per-task replay buffers
(:mod:`jaxrl.data.replay`, a vmapped buffer state ``[R, K, capacity]``), runs ``updates_per_step`` MT-SAC updates
(:func:`jaxrl.algos.multitask.mt_sac.make_learner`: the same networks, losses, per-task temperatures and gradient
aggregators as ``mt_sac``) and samples the next actions. Before ``learning_starts`` transitions per task,
actions are uniform in ``[-1, 1]`` and no update runs (as in ``mt_sac``).

Algorithms: ``"mt_sac"`` (shared actor and critic on ``(s, omega)``), ``"mh_sac"`` (one output head per task),
and either with a gradient aggregator through ``config.aggregator`` (``"pcgrad"``, ``"cagrad"``, ...).

Every ``total / num_evals`` iterations the host evaluates each run with Meta-World's success rate
(:func:`jaxrl.envs.metaworld.evaluate`: deterministic policy, episodes end at the first success) on separate
evaluation envs, and the run recorder (:mod:`jaxrl.run.recorder`, as :func:`jaxrl.run.train`) writes the run
directory: ``config.json`` (with the env's metadata: Meta-World, MuJoCo and gymnasium versions, reward-function
version, tasks), ``metrics.jsonl`` (per-run lists, ``eval_success`` / ``eval_return`` as ``[runs][tasks]``),
``summary.json``, TensorBoard events, ``curves.png`` and a final checkpoint of the learner state (params,
optimiser state, replay buffers; host env state is not saved, so a host run is not resumable). The stall
watchdog and SIGINT/SIGTERM work as in :func:`jaxrl.run.train`.

    from jaxrl.algos.multitask import mt_sac
    from jaxrl.run.host_train import train_host

    cfg = mt_sac.Config(num_envs=10, total_env_steps=20_000, batch_size=128, hidden=(256, 256))
    result = train_host("mt_sac", "metaworld:MT10", cfg, seeds=2, out_dir="runs/mt10")
    result.summary["eval_success"]   # [runs][10 tasks]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import algos as algo_registry
from jaxrl import envs as env_registry
from jaxrl import nets
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import mt_sac
from jaxrl.config import ConfigError, to_dict
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.run import grid as grid_lib
from jaxrl.run import wandb_log
from jaxrl.run.recorder import Recorder, StopRequest, enable_compilation_cache
from jaxrl.run.watchdog import Watchdog

__all__ = ["train_host", "HostTrainResult", "HostState", "HOST_ALGOS"]

HOST_ALGOS = ("mt_sac", "mh_sac")


@dataclasses.dataclass
class HostTrainResult:
    state: Any  # HostState with a leading run axis [R]
    metrics: dict[str, np.ndarray]  # name -> [runs, evaluations, ...]
    env_steps: np.ndarray  # [evaluations] env steps per run at each evaluation
    runs: list[dict]  # per run: {"seed", "point"}
    summary: dict
    run_dir: Path | None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM before the end


@struct.dataclass
class HostState:
    params: Any
    opt_state: Any
    buffer: replay.ReplayState  # [K, capacity, ...] per run
    key: jax.Array


def _resolve_algo(algo) -> tuple[ModuleType, str]:
    module = algo_registry.get(algo) if isinstance(algo, str) else algo
    name = algo if isinstance(algo, str) else algo_registry.name_of(module)
    if not issubclass(module.Config, mt_sac.Config):
        raise ConfigError(
            f"host training runs MT-SAC-style algorithms ({list(HOST_ALGOS)}, with any "
            f"aggregator via config.aggregator); got {name!r}"
        )
    return module, name


def _env_factory(env, env_kwargs: Mapping[str, Any]) -> tuple[Callable[[int], Any], str]:
    """``seed -> host env`` and the env's name for the run directory."""
    if callable(env) and not isinstance(env, str):
        return env, getattr(env, "__name__", "host-env")
    if isinstance(env, str):
        return env_registry.make_host(env, **env_kwargs)
    raise TypeError(f"env must be a Meta-World name ('metaworld:MT10') or a factory seed -> host env, got {env!r}")


@dataclasses.dataclass(frozen=True)
class _HostPlan:
    """The runs, their host envs and the sizes of the learner: everything checked before compiling."""

    module: ModuleType
    algo_name: str
    env_name: str
    make_env: Callable[[int], Any]
    config: Any
    seeds: list[int]
    grid: dict[str, list]
    runs: list[dict]
    batched_config: Any
    train_envs: list
    num_tasks: int  # K
    num_envs: int  # N = K * envs_per_task
    obs_dim: int
    action_dim: int
    task_ids: np.ndarray  # [N]
    eval_every: int

    @property
    def total_iters(self) -> int:
        return self.config.num_iterations

    @property
    def envs_per_task(self) -> int:
        return self.num_envs // self.num_tasks

    def learner(self, cfg):
        return mt_sac.make_learner(cfg, self.num_tasks, self.obs_dim, self.action_dim)


def _host_plan(algo, env, config, seeds, grid, num_evals, eval_episodes, env_kwargs) -> _HostPlan:
    module, algo_name = _resolve_algo(algo)
    config = module.Config() if config is None else config
    if not isinstance(config, module.Config):
        raise TypeError(f"config must be a {module.__name__}.Config, got {type(config).__name__}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if num_evals < 1 or eval_episodes < 1:
        raise ValueError(f"num_evals ({num_evals}) and eval_episodes ({eval_episodes}) must be >= 1")
    grid = {k: list(v) for k, v in (grid or {}).items()}
    batched_config, runs = grid_lib.expand(config, seeds, grid)
    make_env, env_name = _env_factory(env, env_kwargs)
    train_envs = [make_env(r["seed"]) for r in runs]
    first = train_envs[0]
    k, n = first.num_tasks, first.num_envs
    if config.num_envs != n:
        raise ConfigError(
            f"{type(config).__qualname__}.num_envs={config.num_envs} must equal the host env's {n} "
            f"envs ({k} tasks x {n // k}): use num_envs={n}"
        )
    task_ids = np.asarray(first.env_task_ids, np.int32)
    if not np.array_equal(task_ids, np.repeat(np.arange(k), n // k)):
        raise ValueError("host training needs the blocked task assignment (env i runs task i // envs_per_task)")
    total_iters = config.num_iterations
    plan = _HostPlan(
        module, algo_name, env_name, make_env, config, seeds, grid, runs, batched_config, train_envs, k, n,
        first.obs_dim, first.action_dim, task_ids, math.ceil(total_iters / min(num_evals, total_iters)),
    )  # fmt: skip
    plan.learner(config)  # Python-level checks before compiling
    return plan


class _HostPrograms(NamedTuple):
    init_fn: Callable  # (cfgs, seeds) -> HostState
    act_fns: dict  # explore_random -> (cfgs, state, obs) -> (state, actions)
    step_fns: dict  # ready -> (cfgs, state, transitions, next_obs) -> (state, actions, metrics)
    eval_act_fn: Callable  # (cfg, params, obs) -> deterministic actions of one run


def _host_programs(plan: _HostPlan) -> _HostPrograms:
    """The jitted programs over the run axis; the flags are Python values: one compiled variant each (warm-up:
    random actions, no update; then updates)."""
    n, n_act, task_ids = plan.num_envs, plan.action_dim, plan.task_ids
    updates_per_step = plan.config.updates_per_step

    def init_one(cfg, seed):
        key, ak, ck = jax.random.split(jax.random.PRNGKey(seed), 3)
        params, opt_state, buffer = plan.learner(cfg).init(ak, ck)
        return HostState(params, opt_state, buffer, key)

    def act_one(cfg, state, obs, explore_random: bool):
        key, act_key = jax.random.split(state.key)
        if explore_random:
            action = jax.random.uniform(act_key, (n, n_act), minval=-1.0, maxval=1.0)
        else:
            action = plan.learner(cfg).policy(state.params.actor, obs, jnp.asarray(task_ids)).sample(seed=act_key)
        return state.replace(key=key), action

    def step_one(cfg, state, tr, next_obs, ready: bool):
        """Add the N transitions, then (when ready) ``updates_per_step`` updates and policy actions."""
        buffer = jax.vmap(replay.add)(state.buffer, mt.split_tasks(tr, plan.num_tasks))
        key, update_key = jax.random.split(state.key)
        state = state.replace(buffer=buffer, key=key)
        metrics: dict[str, Any] = {}
        if ready:
            (params, opt_state, buffer), metrics = jax.lax.scan(
                plan.learner(cfg).update,
                (state.params, state.opt_state, buffer),
                jax.random.split(update_key, updates_per_step),
            )
            metrics = jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)
            state = HostState(params, opt_state, buffer, state.key)
        state, action = act_one(cfg, state, next_obs, explore_random=not ready)
        return state, action, metrics

    def eval_act_one(cfg, params, obs):
        return nets.mode(plan.learner(cfg).policy(params.actor, obs, jnp.asarray(task_ids)))

    donate = (1,)  # the state (replay buffers [R, K, capacity]) in place: a copy per step costs more than the update
    return _HostPrograms(
        jax.jit(jax.vmap(init_one)),
        {flag: jax.jit(jax.vmap(functools.partial(act_one, explore_random=flag))) for flag in (False, True)},
        {
            flag: jax.jit(jax.vmap(functools.partial(step_one, ready=flag)), donate_argnums=donate)
            for flag in (False, True)
        },
        jax.jit(eval_act_one),
    )


def _transitions(obs, actions, outs, task_ids) -> Transition:
    """The host envs' step outputs ``[R]`` as one batch of transitions ``[R, N, ...]``."""
    return Transition(
        obs,
        actions,
        np.stack([o.reward for o in outs]),
        np.stack([o.next_obs for o in outs]),
        np.stack([o.terminated for o in outs]),
        np.stack([o.truncated for o in outs]),
        np.broadcast_to(task_ids, (len(outs), len(task_ids))),
    )


def _compile(plan: _HostPlan, progs: _HostPrograms, cfgs, rec: Recorder):
    """Initialise and compile, ahead of time, the variants this run uses (shapes and dtypes the host will pass)."""
    t_compile = time.perf_counter()
    num_runs, n = len(plan.runs), plan.num_envs
    state = progs.init_fn(cfgs, np.asarray([r["seed"] for r in plan.runs], np.int32))
    obs0 = np.zeros((num_runs, n, plan.obs_dim), np.float32)
    zeros = lambda dtype: np.zeros((num_runs, n), dtype)
    tr0 = Transition(
        obs0, np.zeros((num_runs, n, plan.action_dim), np.float32), zeros(np.float32), obs0, zeros(bool),
        zeros(bool), np.broadcast_to(plan.task_ids, (num_runs, n)),
    )  # fmt: skip
    act_first = progs.act_fns[plan.config.learning_starts > 0].lower(cfgs, state, obs0).compile()
    ready_at, m = max(plan.config.learning_starts, 1), plan.envs_per_task
    used = {m >= ready_at, plan.total_iters * m >= ready_at}  # ready is monotone over iterations
    step_compiled = {ready: progs.step_fns[ready].lower(cfgs, state, tr0, obs0).compile() for ready in used}
    jax.block_until_ready(state)
    rec.compiled(time.perf_counter() - t_compile)
    return state, act_first, step_compiled


class _Episodes:
    """Each run's per-task mean return and success of the episodes that ended last (``[R, K]``)."""

    def __init__(self, num_runs: int, num_tasks: int, env):
        self.env = env  # its `per_task` groups the envs' values by task
        self.last_return = np.zeros((num_runs, num_tasks), np.float32)
        self.last_success = np.zeros((num_runs, num_tasks), np.float32)

    def update(self, outs) -> None:
        done = np.stack([self.env.per_task(o.episode_done) for o in outs])  # [R, K, m]
        if not done.any():
            return
        dn = done.astype(np.float32)
        cnt = dn.sum(-1)
        ret = np.stack([self.env.per_task(o.episode_return) for o in outs])
        suc = np.stack([self.env.per_task(o.episode_success) for o in outs]).astype(np.float32)
        self.last_return = np.where(cnt > 0, (ret * dn).sum(-1) / np.maximum(cnt, 1), self.last_return)
        self.last_success = np.where(cnt > 0, (suc * dn).sum(-1) / np.maximum(cnt, 1), self.last_success)

    def metrics(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v) for name, v in mt.task_metrics(self.last_return, self.last_success).items()}


def _evaluate(plan: _HostPlan, progs: _HostPrograms, eval_env, cfgs, state, eval_episodes: int) -> dict:
    """Each run's Meta-World success rate and return per task ``[R, K]`` (one run after another)."""
    from jaxrl.envs.metaworld import evaluate

    per_run = []
    host_params = jax.device_get(state.params)  # sliced per run in numpy: no per-slice programs
    for r in range(len(plan.runs)):
        cfg_r = jax.tree.map(lambda x: x[r], cfgs)
        params_r = jax.tree.map(lambda x: x[r], host_params)
        act = lambda o: np.asarray(progs.eval_act_fn(cfg_r, params_r, o))
        per_run.append(evaluate(eval_env, act, eval_episodes))
    return {name: np.stack([p[name] for p in per_run]) for name in per_run[0]}


def _chunk_means(chunk_metrics: list[dict]) -> dict[str, np.ndarray]:
    """The training metrics' means over a chunk's iterations ``[R, ...]``."""
    if not chunk_metrics:
        return {}
    host_metrics = jax.device_get(chunk_metrics)
    return {name: np.mean([np.asarray(m[name]) for m in host_metrics], axis=0) for name in host_metrics[0]}


def train_host(
    algo: str | ModuleType = "mt_sac",
    env: str | Callable[[int], Any] = "metaworld:MT10",
    config: Any = None,
    *,
    seeds: int | Sequence[int] = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    out_dir: str | os.PathLike | None = None,
    num_evals: int = 10,
    eval_episodes: int = 10,
    env_kwargs: Mapping[str, Any] | None = None,
    eval_env_kwargs: Mapping[str, Any] | None = None,
    tensorboard: bool = True,
    checkpoint: bool = True,
    progress: bool = True,
    compilation_cache: str | bool | None = None,
    watchdog: Watchdog | None = None,
    wandb: str | bool | None = None,
) -> HostTrainResult:
    """Train ``algo`` (MT-SAC family) for every seed x grid point with host collection and jitted updates.

    Args:
      algo: ``"mt_sac"``, ``"mh_sac"`` or a module whose ``Config`` subclasses ``mt_sac.Config``.
      env: a Meta-World benchmark (``"metaworld:MT10"``, ``"MT50"``, ...) or a factory ``seed -> env`` with the
        :class:`~jaxrl.envs.metaworld.MetaWorldEnv` interface (``reset``, ``step`` -> ``HostStep``,
        ``set_terminate_on_success``, ``num_tasks``, ``obs_dim``, ``action_dim``, ``env_task_ids``, ``metadata``).
      config: the algorithm's ``Config``; ``num_envs`` must equal the env's number of envs (one per task for MT10
        / MT50), ``total_env_steps`` counts all tasks together, ``learning_starts`` is per task.
      seeds / grid: as :func:`jaxrl.run.train` (a run per seed x grid point, one env per run, one program).
      num_evals: evaluations (and metrics records) over the run; eval_episodes: episodes per task each time.
      env_kwargs: for :class:`MetaWorldEnv` (``reward_function_version``, ``max_episode_steps``, ...);
        eval_env_kwargs: overrides for the evaluation envs.
      watchdog: the stall watchdog's bounds on the time between evaluations (as :func:`jaxrl.run.train`).
      wandb: also log to Weights & Biases (as :func:`jaxrl.run.train`; a project name or True).
    """
    wandb_log.check(wandb, out_dir, resuming=False)  # before anything compiles
    env_kwargs = dict(env_kwargs or {})
    eval_env_kwargs = dict(eval_env_kwargs or {})
    plan = _host_plan(algo, env, config, seeds, grid, num_evals, eval_episodes, env_kwargs)
    rec = Recorder(
        out_dir, algo=plan.algo_name, env=plan.env_name, runs=plan.runs, env_obj=plan.train_envs[0],
        steps_per_iteration=plan.num_envs, compilation_cache=enable_compilation_cache(compilation_cache),
        tensorboard=tensorboard, checkpoint=checkpoint, progress=progress, resumable=False, wandb=wandb,
        mean_keys=("eval_return", "eval_success"),
    )  # fmt: skip
    progs = _host_programs(plan)
    num_chunks = math.ceil(plan.total_iters / plan.eval_every)
    rec.say(f"compiling {plan.algo_name} on {plan.env_name} ({len(plan.runs)} run{'s' * (len(plan.runs) > 1)})...")
    with rec.watch(watchdog, num_chunks, plan.eval_every, plan.total_iters):
        state, act_first, step_compiled = _compile(plan, progs, plan.batched_config, rec)
        spec = {
            "config": to_dict(plan.config),
            "seeds": plan.seeds,
            "grid": plan.grid,
            "num_chunks": num_chunks,
            "chunk_iterations": plan.eval_every,
            "eval_episodes": eval_episodes,
            "runs": plan.runs,
            "collection": "host (jaxrl.run.host_train)",
            "env_kwargs": env_kwargs,
            "eval_env_kwargs": eval_env_kwargs,
        }
        rec.open(spec)
        eval_env_of = lambda: _env_factory(env, {**env_kwargs, **eval_env_kwargs})[0](10_000 + plan.seeds[0])
        loop = _HostLoop(plan, progs, rec, eval_env_of, eval_episodes)
        state, interrupted = loop.run(state, act_first, step_compiled)
    return loop.finish(state, interrupted)


class _HostLoop:
    """Iterations of host env steps and one jitted call each; evaluation and a record every ``eval_every``."""

    def __init__(self, plan: _HostPlan, progs: _HostPrograms, rec: Recorder, eval_env_of, eval_episodes: int):
        self.plan, self.progs, self.rec = plan, progs, rec
        self.eval_env_of = eval_env_of  # built on the first evaluation: its own envs (and goals)
        self.eval_env = None
        self.eval_episodes = eval_episodes
        self.host_seconds = self.eval_seconds = 0.0
        self.t_loop = 0.0
        self.chunk = 0
        self.iterations = 0

    def run(self, state, act_first, step_compiled) -> tuple[Any, bool]:
        plan, rec, cfgs = self.plan, self.rec, self.plan.batched_config
        bar = rec.progress_bar(plan.total_iters)
        obs = np.stack([e.reset() for e in plan.train_envs])  # [R, N, O + D]
        state, actions = act_first(cfgs, state, obs)
        episodes = _Episodes(len(plan.runs), plan.num_tasks, plan.train_envs[0])
        chunk_metrics: list[dict] = []
        interrupted = False
        self.t_loop = time.perf_counter()
        with StopRequest() as stop:
            for it in range(plan.total_iters):
                t0 = time.perf_counter()
                actions_np = np.asarray(actions)
                outs = [e.step(a) for e, a in zip(plan.train_envs, actions_np)]
                self.host_seconds += time.perf_counter() - t0
                tr = _transitions(obs, actions_np, outs, plan.task_ids)
                obs = np.stack([o.obs for o in outs])
                ready = (it + 1) * plan.envs_per_task >= max(plan.config.learning_starts, 1)
                state, actions, metrics = step_compiled[ready](cfgs, state, tr, obs)
                if metrics:
                    chunk_metrics.append(metrics)
                episodes.update(outs)
                self.iterations = it + 1
                if bar is not None:
                    bar.update(plan.num_envs)
                interrupted = stop.signal_name is not None and it + 1 < plan.total_iters
                if interrupted:
                    rec.report_stop(stop.signal_name, it + 1)
                    break
                if (it + 1) % plan.eval_every and it + 1 != plan.total_iters:
                    continue
                jax.block_until_ready(actions)
                self._between_chunks(state, chunk_metrics, episodes, bar)
                chunk_metrics = []
        if bar is not None:
            bar.close()
        return state, interrupted

    def _between_chunks(self, state, chunk_metrics: list[dict], episodes: _Episodes, bar) -> None:
        """Evaluate, check and log one chunk."""
        t_eval = time.perf_counter()
        if self.eval_env is None:
            self.eval_env = self.eval_env_of()
        cfgs = self.plan.batched_config
        evals = _evaluate(self.plan, self.progs, self.eval_env, cfgs, state, self.eval_episodes)
        self.eval_seconds += time.perf_counter() - t_eval
        train_means = _chunk_means(chunk_metrics)
        train_means.update(episodes.metrics())
        iterations = np.asarray([self.iterations])
        self.rec.log_chunk(self.chunk, iterations, evals, train_means, per_iteration=False)
        if bar is not None:
            bar.set_postfix(eval_success=f"{evals['eval_success'].mean():.2f}")
        self.rec.chunk_done(self.chunk)
        self.chunk += 1

    def finish(self, state, interrupted: bool) -> HostTrainResult:
        """Close the envs, write the summary, the final checkpoint and the curves."""
        plan, rec = self.plan, self.rec
        # training: host env steps + jitted calls
        rec.run_seconds = time.perf_counter() - self.t_loop - self.eval_seconds
        summary = rec.summary(
            self.iterations,
            host_env_seconds=self.host_seconds,
            device_seconds=rec.run_seconds - self.host_seconds,
            eval_seconds=self.eval_seconds,
            interrupted=interrupted,
        )
        for e in plan.train_envs + ([self.eval_env] if self.eval_env is not None else []):
            close = getattr(e, "close", None)
            if close is not None:
                close()
        # an interrupted run's state is past its last logged chunk: it counts as the chunk it stopped in
        rec.save_checkpoint(self.chunk if interrupted else self.chunk - 1, state, self.iterations, keep=1)
        rec.finish(summary, plot_metric=None if interrupted else "eval_success")
        metrics = rec.metrics((len(plan.runs),))  # [R, evaluations, ...]
        return HostTrainResult(
            state, metrics, np.asarray(rec.env_steps), plan.runs, summary, rec.run_dir, interrupted=interrupted
        )
