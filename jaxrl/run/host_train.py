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
evaluation envs, and writes the run directory of :mod:`jaxrl.run`: ``config.json`` (with the env's metadata:
Meta-World, MuJoCo and gymnasium versions, reward-function version, tasks), ``metrics.jsonl`` (per-run lists,
``eval_success`` / ``eval_return`` as ``[runs][tasks]``), ``summary.json``, TensorBoard events, ``curves.png``
and a final checkpoint of the learner state (params, optimiser state, replay buffers; host env state is not
saved, so a host run is not resumable).

    from jaxrl.algos.multitask import mt_sac
    from jaxrl.run.host_train import train_host

    cfg = mt_sac.Config(num_envs=10, total_env_steps=20_000, batch_size=128, hidden=(256, 256))
    result = train_host("mt_sac", "metaworld:MT10", cfg, seeds=2, out_dir="runs/mt10")
    result.summary["eval_success"]   # [runs][10 tasks]
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import algos as algo_registry
from jaxrl import nets
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import mt_sac
from jaxrl.config import ConfigError, to_dict
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.run import checkpoint as ckpt
from jaxrl.run import grid as grid_lib
from jaxrl.run.logging import MetricsLog
from jaxrl.run.train import _check_finite, _env_metadata, _versions, enable_compilation_cache

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
        from jaxrl.envs.metaworld import make_metaworld

        name = env if env.startswith("metaworld:") else f"metaworld:{env}"
        return (lambda seed: make_metaworld(name, seed=seed, **env_kwargs)), name
    raise TypeError(f"env must be a Meta-World name ('metaworld:MT10') or a factory seed -> host env, got {env!r}")


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
    """
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
    env_kwargs = dict(env_kwargs or {})
    make_env, env_name = _env_factory(env, env_kwargs)

    num_runs = len(runs)
    train_envs = [make_env(r["seed"]) for r in runs]
    first = train_envs[0]
    k, n, n_obs, n_act = first.num_tasks, first.num_envs, first.obs_dim, first.action_dim
    if config.num_envs != n:
        raise ConfigError(
            f"{type(config).__qualname__}.num_envs={config.num_envs} must equal the host env's {n} "
            f"envs ({k} tasks x {n // k}): use num_envs={n}"
        )
    m = n // k
    task_ids = np.asarray(first.env_task_ids, np.int32)
    if not np.array_equal(task_ids, np.repeat(np.arange(k), m)):
        raise ValueError("host training needs the blocked task assignment (env i runs task i // envs_per_task)")
    eval_env = None  # built lazily (one, shared by the runs; evaluated one run after another)
    cache_dir = enable_compilation_cache(compilation_cache)
    learner_of = lambda cfg: mt_sac.make_learner(cfg, k, n_obs, n_act)
    learner_of(config)  # Python-level checks before compiling
    total_iters = config.num_iterations
    eval_every = math.ceil(total_iters / min(num_evals, total_iters))
    ready_at = max(config.learning_starts, 1)  # per-task transitions before updates start (as mt_sac)

    def init_one(cfg, seed):
        key, ak, ck = jax.random.split(jax.random.PRNGKey(seed), 3)
        params, opt_state, buffer = learner_of(cfg).init(ak, ck)
        return HostState(params, opt_state, buffer, key)

    def act_one(cfg, state, obs, explore_random: bool):
        key, act_key = jax.random.split(state.key)
        if explore_random:
            action = jax.random.uniform(act_key, (n, n_act), minval=-1.0, maxval=1.0)
        else:
            action = learner_of(cfg).policy(state.params.actor, obs, jnp.asarray(task_ids)).sample(seed=act_key)
        return state.replace(key=key), action

    def step_one(cfg, state, tr, next_obs, ready: bool):
        """Add the N transitions, then (when ready) ``updates_per_step`` updates and policy actions."""
        buffer = jax.vmap(replay.add)(state.buffer, mt.split_tasks(tr, k))
        key, update_key = jax.random.split(state.key)
        state = state.replace(buffer=buffer, key=key)
        metrics = {}
        if ready:
            (params, opt_state, buffer), metrics = jax.lax.scan(
                learner_of(cfg).update,
                (state.params, state.opt_state, buffer),
                jax.random.split(update_key, config.updates_per_step),
            )
            metrics = jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)
            state = HostState(params, opt_state, buffer, state.key)
        state, action = act_one(cfg, state, next_obs, explore_random=not ready)
        return state, action, metrics

    def eval_act_one(cfg, params, obs):
        return nets.mode(learner_of(cfg).policy(params.actor, obs, jnp.asarray(task_ids)))

    # The flags are Python values: one compiled variant each (warm-up: random actions, no update; then updates).
    donate = (1,) if jax.default_backend() != "cpu" else ()
    init_fn = jax.jit(jax.vmap(init_one))
    act_fns = {flag: jax.jit(jax.vmap(functools.partial(act_one, explore_random=flag))) for flag in (False, True)}
    step_fns = {
        flag: jax.jit(jax.vmap(functools.partial(step_one, ready=flag)), donate_argnums=donate)
        for flag in (False, True)
    }
    eval_act_fn = jax.jit(eval_act_one)
    from jaxrl.envs.metaworld import evaluate

    cfgs = batched_config  # numpy leaves [R]
    t_compile = time.perf_counter()
    state = init_fn(cfgs, np.asarray([r["seed"] for r in runs], np.int32))
    # compile the variants this run uses ahead of time (shapes and dtypes of what the host will pass)
    obs0 = np.zeros((num_runs, n, n_obs), np.float32)
    tr0 = Transition(
        obs0,
        np.zeros((num_runs, n, n_act), np.float32),
        np.zeros((num_runs, n), np.float32),
        obs0,
        np.zeros((num_runs, n), bool),
        np.zeros((num_runs, n), bool),
        np.broadcast_to(task_ids, (num_runs, n)),
    )
    first_act = config.learning_starts > 0
    act_first = act_fns[first_act].lower(cfgs, state, obs0).compile()
    used = {m >= ready_at, total_iters * m >= ready_at}  # ready is monotone over iterations
    step_compiled = {ready: step_fns[ready].lower(cfgs, state, tr0, obs0).compile() for ready in used}
    jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - t_compile

    run_dir = Path(out_dir) if out_dir is not None else None
    log = None
    env_meta = _env_metadata(first)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        versions = _versions(env_name)
        for pkg in ("metaworld", "mujoco", "gymnasium"):
            key_name = f"{pkg}_version"
            if env_meta.get(key_name):
                versions[pkg] = env_meta[key_name]
        (run_dir / "config.json").write_text(
            json.dumps(
                {
                    "algo": algo_name,
                    "env": env_name,
                    "config": to_dict(config),
                    "seeds": seeds,
                    "grid": grid,
                    "num_chunks": math.ceil(total_iters / eval_every),
                    "chunk_iterations": eval_every,
                    "eval_episodes": eval_episodes,
                    "runs": runs,
                    "collection": "host (jaxrl.run.host_train)",
                    "env_kwargs": env_kwargs,
                    "eval_env_kwargs": dict(eval_env_kwargs or {}),
                    "env_metadata": env_meta,
                    "versions": versions,
                },
                indent=2,
                default=str,
            )
        )
        log = MetricsLog(run_dir, tensorboard=tensorboard)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total_iters * n,
            unit="step",
            unit_scale=True,
            desc=f"{algo_name} {env_name} x{num_runs}",
            file=sys.stderr,
        )

    obs = np.stack([e.reset() for e in train_envs])  # [R, N, O + D]
    state, actions = act_first(cfgs, state, obs)
    last_return = np.zeros((num_runs, k), np.float32)
    last_success = np.zeros((num_runs, k), np.float32)
    history: dict[str, list[np.ndarray]] = {}
    env_steps_log: list[int] = []
    chunk_metrics: list[dict] = []
    host_seconds = eval_seconds = 0.0
    t_loop = time.perf_counter()
    evals = {}
    chunk = 0
    for it in range(total_iters):
        t0 = time.perf_counter()
        actions_np = np.asarray(actions)
        outs = [e.step(a) for e, a in zip(train_envs, actions_np)]
        t1 = time.perf_counter()
        host_seconds += t1 - t0
        tr = Transition(
            obs,
            actions_np,
            np.stack([o.reward for o in outs]),
            np.stack([o.next_obs for o in outs]),
            np.stack([o.terminated for o in outs]),
            np.stack([o.truncated for o in outs]),
            np.broadcast_to(task_ids, (num_runs, n)),
        )
        obs = np.stack([o.obs for o in outs])
        ready = (it + 1) * m >= ready_at
        state, actions, metrics = step_compiled[ready](cfgs, state, tr, obs)
        if metrics:
            chunk_metrics.append(metrics)
        done = np.stack([first.per_task(o.episode_done) for o in outs])  # [R, K, m]
        if done.any():
            dn = done.astype(np.float32)
            cnt = dn.sum(-1)
            ret = np.stack([first.per_task(o.episode_return) for o in outs])
            suc = np.stack([first.per_task(o.episode_success) for o in outs]).astype(np.float32)
            last_return = np.where(cnt > 0, (ret * dn).sum(-1) / np.maximum(cnt, 1), last_return)
            last_success = np.where(cnt > 0, (suc * dn).sum(-1) / np.maximum(cnt, 1), last_success)
        if bar is not None:
            bar.update(n)
        if (it + 1) % eval_every and it + 1 != total_iters:
            continue
        # ---- between chunks: metrics, evaluation, logging
        jax.block_until_ready(actions)
        t_eval = time.perf_counter()
        if eval_env is None:  # its own envs (and goals): seed 10_000 + the first seed
            eval_env = _env_factory(env, {**env_kwargs, **dict(eval_env_kwargs or {})})[0](10_000 + seeds[0])
        per_run = []
        host_params = jax.device_get(state.params)  # sliced per run in numpy: no per-slice programs
        for r in range(num_runs):
            cfg_r = jax.tree.map(lambda x: x[r], cfgs)
            params_r = jax.tree.map(lambda x: x[r], host_params)
            per_run.append(evaluate(eval_env, lambda o: np.asarray(eval_act_fn(cfg_r, params_r, o)), eval_episodes))
        evals = {name: np.stack([p[name] for p in per_run]) for name in per_run[0]}  # [R, K]
        eval_seconds += time.perf_counter() - t_eval
        iterations = np.asarray([it + 1])
        train_means = {}
        if chunk_metrics:
            host_metrics = jax.device_get(chunk_metrics)
            train_means = {
                name: np.mean([np.asarray(m[name]) for m in host_metrics], axis=0) for name in host_metrics[0]
            }  # [R, ...]: the chunk's mean
        train_means.update({name: np.asarray(v) for name, v in mt.task_metrics(last_return, last_success).items()})
        _check_finite(train_means, iterations, runs, per_iteration=False)
        _check_finite(evals, iterations, runs, per_iteration=False)
        env_steps = (it + 1) * n
        record = {"chunk": chunk, "iteration": it + 1, "env_steps": env_steps}
        record.update({name: v.tolist() for name, v in evals.items()})
        record.update({name: np.asarray(v).tolist() for name, v in train_means.items()})
        for name, v in record.items():
            if isinstance(v, list):
                history.setdefault(name, []).append(np.asarray(v))
        env_steps_log.append(env_steps)
        if log is not None:
            log.write(record)
        if bar is not None:
            bar.set_postfix(eval_success=f"{evals['eval_success'].mean():.2f}")
        chunk_metrics = []
        chunk += 1
    if bar is not None:
        bar.close()

    run_seconds = time.perf_counter() - t_loop - eval_seconds  # training: host env steps + jitted calls
    device_seconds = run_seconds - host_seconds
    summary = {"algo": algo_name, "env": env_name}
    for name in evals:
        summary[name] = history[name][-1].tolist()
        summary[f"{name}_best"] = np.max(np.stack(history[name]), axis=0).tolist()
    summary.update(
        {
            "eval_return_mean": float(np.mean(history["eval_return"][-1])),
            "eval_success_mean": float(np.mean(history["eval_success"][-1])),
            "runs": runs,
            "env_metadata": env_meta,
            "iterations": total_iters,
            "env_steps": total_iters * n,
            "env_steps_per_second": total_iters * n * num_runs / run_seconds if run_seconds else 0.0,
            "host_env_seconds": host_seconds,
            "device_seconds": device_seconds,
            "eval_seconds": eval_seconds,
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "devices": [str(d) for d in jax.local_devices()],
            "compilation_cache": cache_dir,
            "interrupted": False,
        }
    )
    for e in train_envs + ([eval_env] if eval_env is not None else []):
        close = getattr(e, "close", None)
        if close is not None:
            close()
    if log is not None:
        log.close()
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if checkpoint:
            ckpt.save(
                run_dir / "checkpoints",
                chunk - 1,
                state,
                {"iteration": total_iters, "env_steps": total_iters * n},
                keep=1,
            )
        from jaxrl.run.plot import plot_runs

        plot_runs([run_dir], run_dir / "curves.png", "eval_success")
    metrics_out = {name: np.stack(v, axis=1) for name, v in history.items()}  # [R, evaluations, ...]
    return HostTrainResult(state, metrics_out, np.asarray(env_steps_log), runs, summary, run_dir)
