"""The run loop: seeds x grid points as one vmapped, sharded run axis, scanned in compiled chunks.

Between chunks (and only there) the host logs, evaluates, checkpoints, checks for NaNs, and honours
SIGINT/SIGTERM. Everything inside a chunk is one XLA program, compiled once for the whole sweep.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxrl
from jaxrl import algos as algo_registry
from jaxrl import envs as env_registry
from jaxrl.config import from_dict, to_dict
from jaxrl.run import checkpoint as ckpt
from jaxrl.run import grid as grid_lib
from jaxrl.run.logging import MetricsLog, read_metrics
from jaxrl.run.watchdog import EXIT_STALLED, StallMonitor, Watchdog

_EVAL_STREAM = 0x5EED  # fold-in tag separating evaluation randomness from training randomness


class NonFiniteError(FloatingPointError):
    """A loss or metric became NaN or infinite; the message names the metric, iteration and run."""


@dataclasses.dataclass
class TrainResult:
    state: Any  # batched training state, leading run axis [R]
    metrics: dict[str, np.ndarray]  # name -> [seeds, *grid sizes, chunks]
    axes: tuple[str, ...]  # names of those axes: ("seed", *grid fields, "chunk")
    env_steps: np.ndarray  # [chunks] environment steps per run at each logged chunk
    runs: list[dict]  # per run: {"seed", "point"}
    summary: dict
    run_dir: Path | None
    interrupted: bool = False
    already_complete: bool = False  # `resume` of a run that had finished: nothing ran, nothing was written

    def run_state(self, index: int) -> Any:
        """One run's state (params included) out of the batched state."""
        return take_run(self.state, index)


def take_run(state: Any, index: int) -> Any:
    """Slice run ``index`` out of a batched state (for evaluation or export)."""
    return jax.tree.map(lambda x: x[index], state)


def enable_compilation_cache(setting: str | bool | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache (default: ``~/.cache/jaxrl/xla``).

    ``setting`` (or the ``JAXRL_COMPILATION_CACHE`` environment variable) may be a directory, or ``0``/``False``
    to turn it off. Returns the directory in use, or None.
    """
    if setting is None:
        setting = os.environ.get("JAXRL_COMPILATION_CACHE", True)
    if setting in (False, "0", "false", "off", ""):
        return None
    directory = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxrl" / "xla"
        if setting in (True, "1", "true", "on")
        else Path(setting)
    )
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return str(directory)


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between chunks (installed only on the main thread)."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _versions(env_name: str) -> dict[str, str]:
    import importlib.metadata as md

    out = {"jaxrl": jaxrl.__version__, "python": sys.version.split()[0]}
    for pkg in ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "distrax", "orbax-checkpoint"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _resolve(algo, env, config):
    module = algo_registry.get(algo) if isinstance(algo, str) else algo
    algo_name = algo if isinstance(algo, str) else algo_registry.name_of(module)
    if env is None:
        env = algo_registry.default_env(algo_name)
    if isinstance(env, str) and env.startswith("dataset:"):  # offline: dataset files (a resumed offline run)
        from jaxrl.algos.offline.common import load_offline_env

        env_name = env
        env_obj, env_params = load_offline_env(env)
    elif isinstance(env, str):
        env_name = env
        env_obj, env_params = env_registry.make(env)
    else:
        env_obj, env_params = env
        env_name = getattr(env_obj, "name", type(env_obj).__name__)
    config = module.Config() if config is None else config
    if not isinstance(config, module.Config):
        raise TypeError(f"config must be a {module.__name__}.Config, got {type(config).__name__}")
    return module, algo_name, env_name, env_obj, env_params, config


def _check_finite(
    metrics: dict[str, np.ndarray], iterations: np.ndarray, runs: list[dict], per_iteration: bool
) -> None:
    """Raise on the first NaN/inf. ``per_iteration``: arrays are ``[runs, iterations, ...]``, else ``[runs, ...]``."""
    for name, values in metrics.items():
        bad = ~np.isfinite(values)
        if bad.any():
            where = tuple(np.argwhere(bad)[0])
            r = where[0]
            it = int(iterations[where[1]]) if per_iteration else int(iterations[-1])
            raise NonFiniteError(
                f"metric {name!r} became {values[where]} at iteration {it} in run {r} (seed "
                f"{runs[r]['seed']}" + (f", {runs[r]['point']}" if runs[r]["point"] else "") + "); stopping the run"
            )


def _env_metadata(env_obj) -> dict:
    """What an env or task suite says about itself for config.json (versions, reward function, dataset hash)."""
    meta = getattr(env_obj, "metadata", None)
    meta = meta() if callable(meta) else meta
    return dict(meta) if isinstance(meta, dict) else {}


def train(
    algo: str | ModuleType = "ppo",
    env: str | tuple[Any, Any] | None = None,
    config: Any = None,
    *,
    seeds: int | Sequence[int] = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    out_dir: str | os.PathLike | None = None,
    num_chunks: int = 10,
    eval_episodes: int = 10,
    keep_checkpoints: int = 3,
    checkpoint: bool = True,
    tensorboard: bool = True,
    progress: bool = True,
    compilation_cache: str | bool | None = None,
    stop_after_chunks: int | None = None,
    run_block: int | None = None,
    watchdog: Watchdog | None = None,
    _resume_from: Path | None = None,
    _chunk_len: int | None = None,
) -> TrainResult:
    """Train every seed x grid point of ``algo`` on ``env`` in one compiled program.

    Args:
      algo: a registered name (``"ppo"``) or an algorithm module with ``Config`` and ``make``.
      env: an env name for :func:`jaxrl.envs.make` or an ``(env, env_params)`` pair; default per algorithm.
      config: the algorithm's ``Config`` (defaults if None). ``config.total_env_steps`` sets the length.
      seeds: a count (seeds 0..N-1) or explicit seeds.
      grid: ``{hyperparameter: [values]}``; only traced (non-shape) fields. Each value is validated.
      out_dir: run directory (config.json, metrics.jsonl, summary.json, TensorBoard, checkpoints/, curves.png);
        None keeps everything in memory.
      num_chunks: host round-trips (logging, evaluation, checkpoints) over the run.
      stop_after_chunks: stop (with a checkpoint) after this many chunks, as if interrupted.
      run_block: vmap runs in fixed blocks of this size (scanned). Then every run is bit-identical whether it
        runs alone or in a sweep, on one device or many; a lone run is padded to one block. None (default)
        vmaps all of a device's runs at once: fastest, equal up to float rounding.
      watchdog: bounds on the time between chunks (:class:`jaxrl.run.watchdog.Watchdog`; default on). A chunk
        that overruns them is a stall: stacks and ``"stalled": true`` go to the run directory and the process
        exits with code 75; resume from the last checkpoint.

    Returns a :class:`TrainResult` whose metrics have named axes ``("seed", *grid fields, "chunk")``.
    """
    module, algo_name, env_name, env_obj, env_params, config = _resolve(algo, env, config)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if num_chunks < 1 or eval_episodes < 1:
        raise ValueError(f"num_chunks ({num_chunks}) and eval_episodes ({eval_episodes}) must be >= 1")
    if run_block is not None and run_block < 1:
        raise ValueError(f"run_block (--run-block) = {run_block} is out of range: must be >= 1")
    grid = {k: list(v) for k, v in (grid or {}).items()}
    batched_config, runs = grid_lib.expand(config, seeds, grid)
    module.make(config, env_obj, env_params)  # Python-level checks (env/algorithm compatibility) before compiling
    cache_dir = enable_compilation_cache(compilation_cache)

    num_runs = len(runs)
    total_iters = config.num_iterations
    chunk_len = _chunk_len or math.ceil(total_iters / min(num_chunks, total_iters))
    num_chunks = math.ceil(total_iters / chunk_len)
    steps_per_iter = config.env_steps_per_iteration

    # The run axis is padded and laid over a 1-D mesh of the local devices; each device runs its share with
    # shard_map. Within a device, runs are vmapped together; with `run_block`, in fixed blocks of that many
    # runs under a scan. XLA's kernels (summation orders) depend on the vmapped batch size, so only a fixed block
    # makes a run bit-identical however many runs share the program or the devices.
    devices = jax.local_devices()
    per_device = math.ceil(num_runs / len(devices))
    if run_block is not None:
        per_device = math.ceil(per_device / run_block) * run_block
    padded = per_device * len(devices)
    pad = lambda x: np.concatenate([x, np.repeat(x[-1:], padded - num_runs, axis=0)]) if padded > num_runs else x
    mesh = Mesh(np.asarray(devices), ("runs",))
    run_sharding = NamedSharding(mesh, PartitionSpec("runs"))
    replicated = NamedSharding(mesh, PartitionSpec())
    cfgs = jax.device_put(jax.tree.map(pad, batched_config), run_sharding)
    keys = jax.device_put(
        pad(np.stack([np.asarray(jax.random.PRNGKey(s)) for s in [r["seed"] for r in runs]])), run_sharding
    )

    def over_runs(fn, num_batched: int):
        """``fn`` over the leading run axis of its first ``num_batched`` arguments (the rest are shared)."""

        def local(*args):
            batched, shared = args[:num_batched], args[num_batched:]
            per_run = lambda xs: fn(*xs, *shared)
            if run_block is None:
                return jax.vmap(per_run)(batched)
            return jax.lax.map(per_run, batched, batch_size=run_block)

        def batched(*args):
            in_specs = (PartitionSpec("runs"),) * num_batched + (PartitionSpec(),) * (len(args) - num_batched)
            return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec("runs"), check_vma=False)(
                *args
            )

        batched.__name__ = fn.__name__  # names the compiled program (logs, compile counts)
        return batched

    def init_one(cfg, key):
        return module.make(cfg, env_obj, env_params).init(key)

    def chunk_one(cfg, state, active):
        algo_fns = module.make(cfg, env_obj, env_params)
        metric_shapes = jax.eval_shape(algo_fns.step, state)[1]
        idle = lambda s: (s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes))
        # `active` is not batched, so this stays a real conditional: the padded tail of the last chunk is free.
        return jax.lax.scan(lambda s, a: jax.lax.cond(a, algo_fns.step, idle, s), state, active)

    def eval_one(cfg, state, key, chunk):
        eval_key = jax.random.fold_in(jax.random.fold_in(key, _EVAL_STREAM), chunk)
        out = module.make(cfg, env_obj, env_params).evaluate(state, eval_key, eval_episodes)
        return out if isinstance(out, dict) else {"eval_return": out}

    init_fn = jax.jit(over_runs(init_one, 2), out_shardings=run_sharding)
    chunk_fn = jax.jit(over_runs(chunk_one, 2), out_shardings=run_sharding, donate_argnums=1)
    eval_fn = jax.jit(over_runs(eval_one, 3), out_shardings=run_sharding)

    run_dir = Path(out_dir) if out_dir is not None else None
    shape = grid_lib.grid_shape(seeds, grid)
    axes = ("seed", *grid.keys(), "chunk")
    start_chunk = 0
    t_compile = time.perf_counter()
    abstract_state = jax.eval_shape(init_fn, cfgs, keys)
    if _resume_from is not None:
        host_state, meta = ckpt.restore(_resume_from, abstract_state)
        state = jax.device_put(host_state, run_sharding)
        start_chunk = meta["chunk"] + 1
        if start_chunk >= num_chunks:  # a finished run: report it from disk, compile and write nothing
            return _finished_result(run_dir, state, num_runs, shape, axes, runs)
    if progress:
        print(
            f"compiling {algo_name} on {env_name} ({num_runs} run{'s' * (num_runs > 1)}, {num_chunks} chunks of "
            f"{chunk_len} iterations)...",
            file=sys.stderr,
            flush=True,
        )
    history: dict[str, list[np.ndarray]] = {}
    eval_keys: list[str] = []
    run_seconds, compile_seconds = 0.0, float("nan")
    interrupted = False
    chunk = start_chunk - 1
    position = {"finished_chunks": start_chunk, "compiled": False}  # read by the watchdog thread

    def summarize(final_iter: int, **status) -> dict:
        steps_done = (final_iter - min(start_chunk * chunk_len, total_iters)) * steps_per_iter * num_runs
        summary = {"algo": algo_name, "env": env_name, **_final_and_best(history, eval_keys)}
        summary.update(
            {
                "eval_return_mean": float(np.mean(history["eval_return"][-1])) if history else float("nan"),
                "runs": runs,
                "env_metadata": _env_metadata(env_obj),
                "iterations": final_iter,
                "env_steps": final_iter * steps_per_iter,
                "env_steps_per_second": steps_done / run_seconds if run_seconds else 0.0,
                "compile_seconds": compile_seconds,
                "run_seconds": run_seconds,
                "devices": [str(d) for d in devices],
                "compilation_cache": cache_dir,
                **status,
            }
        )
        return summary

    def on_stall(elapsed: float, bound: float) -> str:
        """Runs on the watchdog thread while the main thread is stuck inside chunk ``chunk + 1``."""
        stalled_chunk = position["finished_chunks"]
        done_iters = min(stalled_chunk * chunk_len, total_iters)
        if run_dir is not None:
            summary = summarize(
                done_iters,
                interrupted=True,
                stalled=True,
                stalled_chunk=stalled_chunk,
                stalled_after_seconds=round(elapsed, 1),
                stall_bound_seconds=round(bound, 1),
            )
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        where = f"in chunk {stalled_chunk} of {num_chunks}" if position["compiled"] else "while compiling"
        resume_hint = (
            f"`jaxrl train --resume {run_dir}` continues from the last checkpoint (iteration {done_iters})"
            if run_dir is not None and checkpoint and stalled_chunk > 0
            else "no checkpoint was saved yet; run it again"
        )
        return (
            f"\njaxrl: STALLED: no progress for {elapsed:.0f} s (bound {bound:.0f} s) {where}; "
            f"stopping with exit code {EXIT_STALLED}.\n  A compiled program that stops making progress is a "
            f"runtime stall (XLA:CPU on jaxlib < 0.11 is the known cause: use Python >= 3.12 with jax >= 0.11.2, "
            f"or try XLA_FLAGS=--xla_cpu_multi_thread_eigen=false).\n"
            + (
                f'  Stacks: {run_dir / "stall-stacks.txt"}; summary.json says "stalled": true.\n'
                if run_dir is not None
                else ""
            )
            + f"  {resume_hint}. If chunks are only slow, raise the bounds (--stall-factor, --stall-margin, "
            f"--stall-first-chunk) or turn the watchdog off (--no-watchdog)."
        )

    monitor = StallMonitor(
        watchdog or Watchdog(),
        run_dir / "stall-stacks.txt" if run_dir else None,
        lambda elapsed, bound: on_stall(elapsed, bound),
    )
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    monitor.start()
    try:
        if _resume_from is None:
            state = init_fn(cfgs, keys)
        active0 = jax.device_put(np.ones(chunk_len, bool), replicated)
        chunk_compiled = chunk_fn.lower(cfgs, state, active0).compile()
        eval_compiled = eval_fn.lower(cfgs, state, keys, np.int32(0)).compile()
        jax.block_until_ready(state)
        compile_seconds = time.perf_counter() - t_compile
        monitor.beat(chunk=False)
        position["compiled"] = True
        if progress:
            print(f"compiled in {compile_seconds:.1f} s", file=sys.stderr, flush=True)

        log = None
        if run_dir is not None:
            if _resume_from is None:
                (run_dir / "config.json").write_text(
                    json.dumps(
                        {
                            "algo": algo_name,
                            "env": env_name,
                            "config": to_dict(config),
                            "seeds": seeds,
                            "grid": grid,
                            "num_chunks": num_chunks,
                            "chunk_iterations": chunk_len,
                            "eval_episodes": eval_episodes,
                            "keep_checkpoints": keep_checkpoints,
                            "run_block": run_block,
                            "runs": runs,
                            "env_metadata": _env_metadata(env_obj),
                            "versions": _versions(env_name),
                        },
                        indent=2,
                    )
                )
            log = MetricsLog(run_dir, tensorboard=tensorboard)
            if _resume_from is not None:
                log.truncate_after(min(start_chunk * chunk_len, total_iters))

        env_steps_log: list[int] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total_iters * steps_per_iter,
                initial=min(start_chunk * chunk_len, total_iters) * steps_per_iter,
                unit="step",
                unit_scale=True,
                desc=f"{algo_name} {env_name} x{num_runs}",
                file=sys.stderr,
            )
        with _StopRequest() as stop:
            for chunk in range(start_chunk, num_chunks):
                first = chunk * chunk_len
                active_np = np.arange(first, first + chunk_len) < total_iters
                t0 = time.perf_counter()
                state, metrics = chunk_compiled(cfgs, state, jax.device_put(active_np, replicated))
                evals = eval_compiled(cfgs, state, keys, np.int32(chunk))
                metrics, evals = jax.device_get((metrics, evals))
                elapsed = time.perf_counter() - t0
                run_seconds += elapsed

                iterations = np.arange(first, first + chunk_len)[active_np] + 1
                metrics = {k: np.asarray(v)[:num_runs][:, active_np] for k, v in metrics.items()}
                evals = {k: np.asarray(v)[:num_runs] for k, v in evals.items()}
                _check_finite(metrics, iterations, runs, per_iteration=True)
                _check_finite(evals, iterations, runs, per_iteration=False)
                done_iters = int(iterations[-1])
                env_steps = done_iters * steps_per_iter
                record = {"chunk": chunk, "iteration": done_iters, "env_steps": env_steps}
                record.update({k: v.tolist() for k, v in evals.items()})
                record.update({k: v.mean(axis=1).tolist() for k, v in metrics.items()})
                _append_history(history, record)
                eval_keys[:] = list(evals)
                env_steps_log.append(env_steps)
                if log is not None:
                    log.write(record)
                if bar is not None:
                    bar.update(int(active_np.sum()) * steps_per_iter)
                    bar.set_postfix(
                        eval_return=f"{evals['eval_return'].mean():.1f}",
                        sps=f"{active_np.sum() * steps_per_iter * num_runs / elapsed:.3g}",
                    )
                stop_now = stop.signal_name is not None or (
                    stop_after_chunks is not None and chunk - start_chunk + 1 >= stop_after_chunks
                )
                if run_dir is not None and checkpoint:
                    ckpt.save(
                        run_dir / "checkpoints",
                        chunk,
                        state,
                        {"iteration": done_iters, "env_steps": env_steps},
                        keep=keep_checkpoints,
                    )
                position["finished_chunks"] = chunk + 1
                monitor.beat()
                if stop_now and chunk < num_chunks - 1:
                    interrupted = True
                    if stop.signal_name is not None and run_dir is not None and checkpoint:
                        print(
                            f"\n{stop.signal_name}: saved a checkpoint after iteration {done_iters}; continue with "
                            f"`jaxrl train --resume {run_dir}`",
                            file=sys.stderr,
                        )
                    elif stop.signal_name is not None:
                        print(
                            f"\n{stop.signal_name}: stopped after iteration {done_iters} (no run directory, so no "
                            f"checkpoint)",
                            file=sys.stderr,
                        )
                    break
    finally:
        monitor.stop()
    if bar is not None:
        bar.close()

    summary = summarize(min((chunk + 1) * chunk_len, total_iters), interrupted=interrupted)
    if log is not None:
        log.close()
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if history and not interrupted:
            from jaxrl.run.plot import plot_runs

            plot_runs([run_dir], run_dir / "curves.png")
    state = jax.tree.map(lambda x: x[:num_runs], state)
    return TrainResult(
        state, _metrics_by_axes(history, shape), axes, np.asarray(env_steps_log), runs, summary, run_dir, interrupted
    )


def _append_history(history: dict[str, list[np.ndarray]], record: dict) -> None:
    for k, v in record.items():
        if isinstance(v, list):
            history.setdefault(k, []).append(np.asarray(v))


def _metrics_by_axes(history: dict[str, list[np.ndarray]], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``[runs, ...]`` per chunk -> ``[seeds, *grid sizes, chunks, ...]``."""
    return {k: np.stack(v, axis=1).reshape(*shape, len(v), *v[0].shape[1:]) for k, v in history.items()}


def _final_and_best(history: dict[str, list[np.ndarray]], eval_keys: list[str]) -> dict:
    """Each evaluation output's last value and its best over chunks (offline runs: the normalised score too)."""
    out = {}
    for key in eval_keys if history else []:
        out[key] = history[key][-1].tolist()
        out[f"{key}_best"] = np.max(np.stack(history[key]), axis=0).tolist()
    if "normalized_score" in out:
        out["normalized_score_last"] = out["normalized_score"]
    return out


def _finished_result(
    run_dir: Path, state: Any, num_runs: int, shape: tuple[int, ...], axes: tuple[str, ...], runs: list[dict]
) -> TrainResult:
    """The result of a run that already finished, read from its run directory (which is left untouched)."""
    records = read_metrics(run_dir)
    history: dict[str, list[np.ndarray]] = {}
    for record in records:
        _append_history(history, record)
    summary = json.loads((run_dir / "summary.json").read_text())
    state = jax.tree.map(lambda x: x[:num_runs], state)
    return TrainResult(
        state,
        _metrics_by_axes(history, shape),
        axes,
        np.asarray([r["env_steps"] for r in records]),
        runs,
        summary,
        run_dir,
        interrupted=False,
        already_complete=True,
    )


def resume(run_dir: str | os.PathLike, **overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its newest complete checkpoint, exactly where it stopped.

    A run that had already finished is left untouched: its result is read back from the run directory
    (``result.already_complete`` is True) and nothing is compiled or written.
    """
    run_dir = Path(run_dir)
    spec = json.loads((run_dir / "config.json").read_text())
    module = algo_registry.get(spec["algo"])
    path = ckpt.latest(run_dir / "checkpoints")
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to resume from")
    if ckpt.meta(path)["chunk"] + 1 >= spec["num_chunks"] and not _finished_summary(run_dir):
        # The last chunk was saved but the run was stopped before its summary: redo the last chunk.
        earlier = ckpt.list_checkpoints(run_dir / "checkpoints")[:-1]
        if not earlier:
            raise FileNotFoundError(
                f"{run_dir} stopped after its last checkpoint but before writing summary.json, "
                f"and no earlier checkpoint is left to redo the last chunk from"
            )
        path = earlier[-1]
    kwargs = dict(
        seeds=spec["seeds"],
        grid=spec["grid"],
        out_dir=run_dir,
        num_chunks=spec["num_chunks"],
        _chunk_len=spec["chunk_iterations"],
        run_block=spec.get("run_block"),
        eval_episodes=spec["eval_episodes"],
        keep_checkpoints=spec["keep_checkpoints"],
    )
    kwargs.update(overrides)
    return train(spec["algo"], spec["env"], from_dict(module.Config, spec["config"]), _resume_from=path, **kwargs)


def _finished_summary(run_dir: Path) -> bool:
    path = run_dir / "summary.json"
    return path.exists() and not json.loads(path.read_text()).get("interrupted", False)
