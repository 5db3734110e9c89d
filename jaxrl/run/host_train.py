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

Several processes (``jaxrl train ... --distributed``, :mod:`jaxrl.distributed`): the TASK axis is laid over a 1-D
mesh of ``devices_per_process`` devices of every process, so process ``p`` of ``P`` owns the contiguous block of
tasks ``[p K / P, (p + 1) K / P)`` (``K`` must be a multiple of the mesh's size: a clear error before anything is
built otherwise). Each process builds host envs for its own tasks only (``MetaWorldEnv(tasks=...)``: the same envs,
seeds and one-hot contexts as in the whole benchmark), steps them with the actions its devices computed, and
writes its transitions into its own devices' shards of the replay buffers ``[R, K, capacity]``. Parameters and
optimiser states are replicated. The update program is the single-process one with these shardings, so the
task-sum of the losses becomes a cross-process all-reduce that XLA inserts (the shared networks' gradients are
summed over every process's tasks; aggregators that need every task's gradient, PCGrad or CAGrad, get an
all-gather), with no change to the algorithm. Each process evaluates its own tasks; per-task success and return
and the per-task training metrics are gathered to every process and process 0 writes the run directory.

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
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrl import algos as algo_registry
from jaxrl import distributed, nets
from jaxrl import envs as env_registry
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


def _env_factory(env, env_kwargs: Mapping[str, Any], tasks: tuple[int, ...] | None = None):
    """``seed -> host env`` (of only ``tasks``, global indices, when given) and the env's name for the run
    directory."""
    if callable(env) and not isinstance(env, str):
        return (env if tasks is None else functools.partial(env, tasks=tasks)), getattr(env, "__name__", "host-env")
    if isinstance(env, str):
        return env_registry.make_host(env, **env_kwargs, **({} if tasks is None else {"tasks": tasks}))
    raise TypeError(f"env must be a Meta-World name ('metaworld:MT10') or a factory seed -> host env, got {env!r}")


def _declared_num_tasks(env) -> int:
    """The number of tasks of a host env before any is built (each process of a distributed run builds its own)."""
    if isinstance(env, str):
        from jaxrl.envs.metaworld import benchmark_num_tasks

        return benchmark_num_tasks(env)
    k = getattr(env, "num_tasks", None)
    if k is None:
        raise ValueError(
            "a distributed host run builds each process's tasks only: give the env factory a `num_tasks` attribute "
            "(the number of tasks in all) and a `tasks=` keyword (the global indices of the tasks to build)"
        )
    return int(k)


@dataclasses.dataclass(frozen=True)
class _TaskLayout:
    """The task axis over a 1-D mesh of every process's devices: process ``p`` of ``P`` owns tasks
    ``[start, stop) = [p K / P, (p + 1) K / P)``, split again over its own devices."""

    mesh: Mesh
    num_tasks: int  # K, all processes
    start: int
    stop: int

    @property
    def tasks(self) -> NamedSharding:
        """``[R, K or N, ...]`` split over the task axis (axis 1)."""
        return NamedSharding(self.mesh, PartitionSpec(None, "tasks"))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def subset(self) -> tuple[int, ...] | None:
        """This process's tasks when it builds only those (several processes), else None."""
        return tuple(range(self.start, self.stop)) if jax.process_count() > 1 else None

    @property
    def devices_per_process(self) -> int:
        return self.mesh.devices.size // jax.process_count()


def _task_layout(num_tasks: int, devices_per_process: int) -> _TaskLayout:
    """Lay ``num_tasks`` tasks over ``devices_per_process`` devices of each process; a clear error when they do not
    divide evenly."""
    procs = jax.process_count()
    if devices_per_process < 1:
        raise ValueError(f"devices_per_process={devices_per_process}: must be >= 1")
    per_process = [[d for d in jax.devices() if d.process_index == p] for p in range(procs)]
    have = min(len(d) for d in per_process)
    if devices_per_process > have:
        raise ValueError(f"devices_per_process={devices_per_process}: a process has only {have} device(s)")
    devices = [d for ds in per_process for d in ds[:devices_per_process]]
    if num_tasks % len(devices):
        raise ValueError(
            f"host training lays its {num_tasks} tasks over {procs} process(es) x {devices_per_process} device(s): "
            f"the number of tasks must be a multiple of {len(devices)}"
        )
    share, me = num_tasks // procs, jax.process_index()
    return _TaskLayout(Mesh(np.asarray(devices), ("tasks",)), num_tasks, me * share, (me + 1) * share)


def _put_tasks(layout: _TaskLayout, tree):
    """This process's rows ``[R, n_local, ...]`` of arrays split over the task axis -> global arrays
    ``[R, n_local * P, ...]`` on the mesh (each process places only its own rows)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, layout.tasks)

    def put(x):
        x = np.ascontiguousarray(x)
        shape = (x.shape[0], x.shape[1] * jax.process_count(), *x.shape[2:])
        return jax.make_array_from_process_local_data(layout.tasks, x, shape)

    return jax.tree.map(put, tree)


def _local_tasks(x: jax.Array) -> np.ndarray:
    """This process's rows (axis 1) of a global array split over the task axis."""
    if x.is_fully_addressable:
        return np.asarray(x)
    blocks: dict[int, Any] = {}
    for shard in x.addressable_shards:
        blocks.setdefault(shard.index[1].start or 0, shard.data)
    return np.concatenate([np.asarray(blocks[k]) for k in sorted(blocks)], axis=1)


def _gather_tasks(layout: _TaskLayout, tree):
    """Each process's ``[R, K_local, ...]`` -> every task's ``[R, K, ...]``, on every process (a collective)."""
    if jax.process_count() == 1:
        return tree
    return distributed.to_host(_put_tasks(layout, tree))


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
    train_envs: list  # this process's: its tasks' envs only when several processes share the run
    num_tasks: int  # K, all processes
    num_envs: int  # N = K * envs_per_task, all processes
    obs_dim: int
    action_dim: int
    task_ids: np.ndarray  # [N]
    eval_every: int
    layout: _TaskLayout
    local_task_ids: np.ndarray  # [N / P]: the (global) task of each of this process's envs

    @property
    def total_iters(self) -> int:
        return self.config.num_iterations

    @property
    def envs_per_task(self) -> int:
        return self.num_envs // self.num_tasks

    def learner(self, cfg):
        return mt_sac.make_learner(cfg, self.num_tasks, self.obs_dim, self.action_dim)


def _host_plan(algo, env, config, seeds, grid, num_evals, eval_episodes, env_kwargs, devices_per_process) -> _HostPlan:
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
    make_env, env_name, train_envs, layout = _build_envs(env, env_kwargs, runs, devices_per_process)
    first = train_envs[0]
    k, m = layout.num_tasks, first.num_envs // first.num_tasks
    n = k * m
    if config.num_envs != n:
        raise ConfigError(
            f"{type(config).__qualname__}.num_envs={config.num_envs} must equal the host env's {n} "
            f"envs ({k} tasks x {m}): use num_envs={n}"
        )
    local_ids = np.asarray(first.env_task_ids, np.int32)
    if not np.array_equal(local_ids, np.repeat(np.arange(first.num_tasks), m)):
        raise ValueError("host training needs the blocked task assignment (env i runs task i // envs_per_task)")
    total_iters = config.num_iterations
    plan = _HostPlan(
        module, algo_name, env_name, make_env, config, seeds, grid, runs, batched_config, train_envs, k, n,
        first.obs_dim, first.action_dim, np.repeat(np.arange(k, dtype=np.int32), m),
        math.ceil(total_iters / min(num_evals, total_iters)), layout, (local_ids + layout.start).astype(np.int32),
    )  # fmt: skip
    plan.learner(config)  # Python-level checks before compiling
    return plan


def _build_envs(env, env_kwargs, runs: list[dict], devices_per_process: int):
    """Each run's training env (several processes: of this process's tasks only) and the task layout; checked."""
    if distributed.is_distributed():  # the layout first: each process builds only its own tasks' envs
        layout = _task_layout(_declared_num_tasks(env), devices_per_process)
        make_env, env_name = _env_factory(env, env_kwargs, layout.subset)
        train_envs = [make_env(r["seed"]) for r in runs]
    else:
        make_env, env_name = _env_factory(env, env_kwargs)
        train_envs = [make_env(r["seed"]) for r in runs]
        layout = _task_layout(train_envs[0].num_tasks, devices_per_process)
    first = train_envs[0]
    total = int(getattr(first, "total_tasks", first.num_tasks))
    held = np.asarray(getattr(first, "global_task_ids", np.arange(first.num_tasks)))
    if total != layout.num_tasks or not np.array_equal(held, np.arange(layout.start, layout.stop)):
        raise ValueError(
            f"the host env factory was asked for tasks {layout.start}..{layout.stop - 1} of {layout.num_tasks} and "
            f"built tasks {held.tolist()} of {total}"
        )
    if distributed.is_distributed():
        names = getattr(first, "task_names", held.tolist())
        print(
            f"process {jax.process_index()} of {jax.process_count()}: built host envs for tasks {layout.start}.."
            f"{layout.stop - 1} of {layout.num_tasks} only {names}",
            file=sys.stderr,
            flush=True,
        )
    return make_env, env_name, train_envs, layout


class _HostPrograms(NamedTuple):
    init_fn: Callable  # (cfgs, seeds) -> HostState
    act_fns: dict  # explore_random -> (cfgs, state, obs) -> (state, actions)
    step_fns: dict  # ready -> (cfgs, state, transitions, next_obs) -> (state, actions, metrics)
    eval_act_fn: Callable  # (cfg, params, obs, task_ids) -> deterministic actions of one run


def _host_programs(plan: _HostPlan) -> _HostPrograms:
    """The jitted programs over the run axis; the flags are Python values: one compiled variant each (warm-up:
    random actions, no update; then updates). Their outputs are laid out over the task mesh (:class:`_TaskLayout`):
    replay buffers, observations and actions split over the task axis, everything else replicated; XLA partitions
    the rest (the sums over tasks become all-reduces)."""
    n, n_act, task_ids = plan.num_envs, plan.action_dim, plan.task_ids
    updates_per_step = plan.config.updates_per_step
    layout = plan.layout
    constrain = jax.lax.with_sharding_constraint

    def laid_out(state: HostState) -> HostState:
        repl = layout.replicated
        return HostState(
            constrain(state.params, repl),
            constrain(state.opt_state, repl),
            constrain(state.buffer, layout.tasks),
            constrain(state.key, repl),
        )

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

    def eval_act_one(cfg, params, obs, env_task_ids):
        return nets.mode(plan.learner(cfg).policy(params.actor, obs, env_task_ids))

    def init_all(cfgs, seeds):
        return laid_out(jax.vmap(init_one)(cfgs, seeds))

    def act_all(cfgs, state, obs, explore_random: bool):
        state, action = jax.vmap(functools.partial(act_one, explore_random=explore_random))(cfgs, state, obs)
        return laid_out(state), constrain(action, layout.tasks)

    def step_all(cfgs, state, tr, next_obs, ready: bool):
        state, action, metrics = jax.vmap(functools.partial(step_one, ready=ready))(cfgs, state, tr, next_obs)
        return laid_out(state), constrain(action, layout.tasks), metrics

    donate = (1,)  # the state (replay buffers [R, K, capacity]) in place: a copy per step costs more than the update
    return _HostPrograms(
        jax.jit(init_all),
        {flag: jax.jit(functools.partial(act_all, explore_random=flag)) for flag in (False, True)},
        {flag: jax.jit(functools.partial(step_all, ready=flag), donate_argnums=donate) for flag in (False, True)},
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
    """Initialise and compile, ahead of time, the variants this run uses (shapes, dtypes and shardings the host will
    pass)."""
    t_compile = time.perf_counter()
    num_runs, n = len(plan.runs), len(plan.local_task_ids)
    seeds = distributed.put_global(np.asarray([r["seed"] for r in plan.runs], np.int32), plan.layout.replicated)
    state = progs.init_fn(cfgs, seeds)
    obs0 = np.zeros((num_runs, n, plan.obs_dim), np.float32)
    zeros = lambda dtype: np.zeros((num_runs, n), dtype)
    tr0 = Transition(
        obs0, np.zeros((num_runs, n, plan.action_dim), np.float32), zeros(np.float32), obs0, zeros(bool),
        zeros(bool), np.broadcast_to(plan.local_task_ids, (num_runs, n)),
    )  # fmt: skip
    obs0, tr0 = _put_tasks(plan.layout, (obs0, tr0))
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

    def metrics(self, layout: _TaskLayout) -> dict[str, np.ndarray]:
        """Every task's (several processes: gathered from all of them)."""
        last_return, last_success = _gather_tasks(layout, (self.last_return, self.last_success))
        return {name: np.asarray(v) for name, v in mt.task_metrics(last_return, last_success).items()}


def _evaluate(plan: _HostPlan, progs: _HostPrograms, eval_env, cfgs, state, eval_episodes: int) -> dict:
    """Each run's Meta-World success rate and return per task ``[R, K]`` (one run after another; several processes:
    each evaluates its own tasks and the results are gathered). The policy runs on the host's local device in
    blocks of one mesh device's envs, so its float rounding does not depend on how the tasks are laid out."""
    from jaxrl.envs.metaworld import evaluate

    per_run = []
    # replicated: this process's copy, sliced per run in numpy (no per-slice programs)
    host_params = jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data), state.params)
    ids = np.repeat(plan.local_task_ids[:: plan.envs_per_task], eval_env.num_envs // eval_env.num_tasks)
    block = len(ids) // plan.layout.devices_per_process
    for r in range(len(plan.runs)):
        cfg_r = jax.tree.map(lambda x: x[r], cfgs)
        params_r = jax.tree.map(lambda x: x[r], host_params)
        act = lambda o: np.concatenate(
            [np.asarray(progs.eval_act_fn(cfg_r, params_r, o[i : i + block], ids[i : i + block]))
             for i in range(0, len(ids), block)]
        )  # fmt: skip
        per_run.append(evaluate(eval_env, act, eval_episodes))
    local = {name: np.stack([p[name] for p in per_run]) for name in per_run[0]}
    gathered = _gather_tasks(plan.layout, local)
    return {name: gathered[name] for name in local}  # the evaluation's order (a gather sorts the names)


def _chunk_means(chunk_metrics: list[dict]) -> dict[str, np.ndarray]:
    """The training metrics' means over a chunk's iterations ``[R, ...]``."""
    if not chunk_metrics:
        return {}
    host_metrics = distributed.to_host(chunk_metrics)  # several processes: every task's (a collective)
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
    devices_per_process: int = 1,
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
      devices_per_process: the task axis is laid over this many devices of each process (the number of tasks must
        be a multiple of processes x devices_per_process). With several processes (:mod:`jaxrl.distributed`) each
        process builds only its own tasks' envs: a factory ``env`` is then called as ``env(seed, tasks=(...))``
        with the global task indices and needs a ``num_tasks`` attribute (the tasks of all processes).
    """
    wandb_log.check(wandb, out_dir, resuming=False)  # before anything compiles
    env_kwargs = dict(env_kwargs or {})
    eval_env_kwargs = dict(eval_env_kwargs or {})
    plan = _host_plan(algo, env, config, seeds, grid, num_evals, eval_episodes, env_kwargs, devices_per_process)
    writer = distributed.is_writer()  # several processes: process 0 writes the run directory
    rec = Recorder(
        out_dir if writer else None, checkpoint_dir=out_dir, algo=plan.algo_name, env=plan.env_name, runs=plan.runs,
        env_obj=plan.train_envs[0], steps_per_iteration=plan.num_envs,
        compilation_cache=enable_compilation_cache(compilation_cache), tensorboard=tensorboard,
        checkpoint=checkpoint, progress=progress and writer, resumable=False, wandb=wandb,
        mean_keys=("eval_return", "eval_success"),
    )  # fmt: skip
    progs = _host_programs(plan)
    num_chunks = math.ceil(plan.total_iters / plan.eval_every)
    rec.say(f"compiling {plan.algo_name} on {plan.env_name} ({len(plan.runs)} run{'s' * (len(plan.runs) > 1)})...")
    with rec.watch(watchdog, num_chunks, plan.eval_every, plan.total_iters):
        cfgs = distributed.put_global(plan.batched_config, plan.layout.replicated)
        state, act_first, step_compiled = _compile(plan, progs, cfgs, rec)
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
        eval_env_of = lambda: _env_factory(env, {**env_kwargs, **eval_env_kwargs}, plan.layout.subset)[0](
            10_000 + plan.seeds[0]
        )
        loop = _HostLoop(plan, progs, rec, eval_env_of, eval_episodes)
        state, interrupted = loop.run(cfgs, state, act_first, step_compiled)
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

    def run(self, cfgs, state, act_first, step_compiled) -> tuple[Any, bool]:
        """The iterations; each process steps its own envs and feeds its own shards (``cfgs``: on the mesh)."""
        plan, rec, layout = self.plan, self.rec, self.plan.layout
        bar = rec.progress_bar(plan.total_iters)
        obs = np.stack([e.reset() for e in plan.train_envs])  # [R, N / P, O + D]: this process's envs
        state, actions = act_first(cfgs, state, _put_tasks(layout, obs))
        episodes = _Episodes(len(plan.runs), plan.train_envs[0].num_tasks, plan.train_envs[0])  # this process's
        chunk_metrics: list[dict] = []
        interrupted = False
        self.t_loop = time.perf_counter()
        with StopRequest() as stop:
            for it in range(plan.total_iters):
                t0 = time.perf_counter()
                actions_np = _local_tasks(actions)
                outs = [e.step(a) for e, a in zip(plan.train_envs, actions_np)]
                self.host_seconds += time.perf_counter() - t0
                tr = _transitions(obs, actions_np, outs, plan.local_task_ids)
                obs = np.stack([o.obs for o in outs])
                ready = (it + 1) * plan.envs_per_task >= max(plan.config.learning_starts, 1)
                state, actions, metrics = step_compiled[ready](cfgs, state, *_put_tasks(layout, (tr, obs)))
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
        train_means.update(episodes.metrics(self.plan.layout))
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
