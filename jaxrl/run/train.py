"""The run loop: seeds x grid points as one vmapped, sharded run axis, scanned in compiled chunks.

Between chunks (and only there) the host logs, evaluates, checkpoints, checks for NaNs, and honours
SIGINT/SIGTERM (:mod:`jaxrl.run.recorder`). Everything inside a chunk is one XLA program, compiled once for the
whole sweep.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrl import algos as algo_registry
from jaxrl import distributed
from jaxrl import envs as env_registry
from jaxrl.config import from_dict, hyper_fields, to_dict
from jaxrl.envs import offline
from jaxrl.run import checkpoint as ckpt
from jaxrl.run import grid as grid_lib
from jaxrl.run import recorder as rec_lib
from jaxrl.run import wandb_log
from jaxrl.run.contexts import inline_context_file
from jaxrl.run.recorder import NonFiniteError, Recorder, StopRequest, enable_compilation_cache
from jaxrl.run.watchdog import Watchdog

__all__ = ["train", "resume", "TrainResult", "take_run", "NonFiniteError", "enable_compilation_cache"]

_EVAL_STREAM = 0x5EED  # fold-in tag separating evaluation randomness from training randomness


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


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a run is: the algorithm, its env, the runs and how the iterations fall into chunks."""

    module: ModuleType
    algo_name: str
    env_name: str
    env_obj: Any
    env_params: Any
    config: Any
    seeds: list[int]
    grid: dict[str, list]
    runs: list[dict]
    batched_config: Any
    num_chunks: int
    chunk_len: int
    eval_episodes: int
    run_block: int | None
    env_registered: bool = True  # False: an env object was given, which a resume must be given again

    @property
    def total_iters(self) -> int:
        return self.config.num_iterations

    @property
    def steps_per_iter(self) -> int:
        return self.config.env_steps_per_iteration

    @property
    def shape(self) -> tuple[int, ...]:
        return grid_lib.grid_shape(self.seeds, self.grid)

    @property
    def axes(self) -> tuple[str, ...]:
        return ("seed", *self.grid.keys(), "chunk")


def _resolve(algo, env, config):
    module = algo_registry.get(algo) if isinstance(algo, str) else algo
    algo_name = algo if isinstance(algo, str) else algo_registry.name_of(module)
    if env is None:
        env = algo_registry.default_env(algo_name)
    if isinstance(env, str) and env_registry.is_dataset(env) and distributed.is_distributed():
        env_name, env_obj, env_params = env, offline.DatasetFiles(env), None  # read in _plan: this process's files
    elif isinstance(env, str):  # the registry's name for it: what config.json records, and a resume re-resolves
        env_name, env_obj, env_params = env_registry.resolve(env)
    else:
        env_obj, env_params = env
        env_name = getattr(env_obj, "name", type(env_obj).__name__)  # a label only: resume() needs the object
    config = module.Config() if config is None else config
    if not isinstance(config, module.Config):
        raise TypeError(f"config must be a {module.__name__}.Config, got {type(config).__name__}")
    config = inline_context_file(config)  # CARE's context file: read here, recorded inline in config.json
    return module, algo_name, env_name, env_obj, env_params, config


def _plan(algo, env, config, seeds, grid, num_chunks, eval_episodes, run_block, chunk_len) -> _Plan:
    """Resolve and check everything before anything compiles."""
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
    if isinstance(env_obj, offline.DatasetFiles):  # several processes: each reads the files its devices use
        layout = offline.device_layout(_dataset_of_run(batched_config, len(runs), run_block), len(jax.devices()))
        env_obj, env_params = env_obj.load(layout[0], [d.process_index for d in jax.devices()])
        env_name = env_obj.name
    module.make(config, env_obj, env_params)  # Python-level checks (env/algorithm compatibility) before compiling
    total_iters = config.num_iterations
    chunk_len = chunk_len or math.ceil(total_iters / min(num_chunks, total_iters))
    # An offline env object is named by its dataset files, which a resume loads again; other objects must be given.
    rebuildable = isinstance(env, str) or env_registry.is_dataset(env_name)
    return _Plan(
        module, algo_name, env_name, env_obj, env_params, config, seeds, grid, runs, batched_config,
        math.ceil(total_iters / chunk_len), chunk_len, eval_episodes, run_block, rebuildable,
    )  # fmt: skip


def _layout(num_runs: int, run_block: int | None) -> tuple[list, int, int]:
    """``(devices, runs per device, padded run count)``: the run axis laid over every process's devices."""
    devices = jax.devices()  # every process's devices (jax.distributed); this process's alone otherwise
    per_device = math.ceil(num_runs / len(devices))
    if run_block is not None:
        per_device = math.ceil(per_device / run_block) * run_block
    return devices, per_device, per_device * len(devices)


def _pad_runs(x: np.ndarray, padded: int) -> np.ndarray:
    """The run axis padded to ``padded`` by repeating the last run."""
    return np.concatenate([x, np.repeat(x[-1:], padded - len(x), axis=0)]) if padded > len(x) else x


def _dataset_of_run(batched_config: Any, num_runs: int, run_block: int | None) -> np.ndarray:
    """Each run's (global) dataset index along the padded run axis of an offline run."""
    index = np.broadcast_to(np.asarray(batched_config.dataset_index), (num_runs,))
    return _pad_runs(np.round(index).astype(np.int64), _layout(num_runs, run_block)[2])


class _WithData(NamedTuple):
    """An offline run's configs (per run) with each device's datasets (:func:`jaxrl.envs.offline.shard_datasets`):
    sharded alike over the run axis, but the data is shared by a device's runs, not vmapped."""

    cfgs: Any
    data: Any


class _Programs(NamedTuple):
    """The compiled-to-be programs over the run axis, the runs' configs and keys, and where they live."""

    cfgs: Any
    keys: Any
    init_fn: jax.stages.Wrapped  # jitted: lowered and compiled ahead of the first chunk
    chunk_fn: jax.stages.Wrapped
    eval_fn: jax.stages.Wrapped
    run_sharding: NamedSharding
    replicated: NamedSharding


def _over_runs(fn, num_batched: int, mesh: Mesh, run_block: int | None):
    """``fn`` over the leading run axis of its first ``num_batched`` arguments (the rest are shared)."""

    def local(*args):
        batched, shared = args[:num_batched], args[num_batched:]
        data = batched[0].data if isinstance(batched[0], _WithData) else None
        if data is not None:
            batched = (batched[0].cfgs, *batched[1:])
        per_run = lambda xs: fn(*xs, *shared, data=data)
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


def _per_run_fns(plan: _Plan):
    """One run's init, chunk of ``step``s and evaluation (the names name the compiled programs)."""
    module, env_params = plan.module, plan.env_params
    on = lambda data: plan.env_obj if data is None else plan.env_obj.with_data(data)  # offline: the device's data

    def init_one(cfg, key, data=None):
        return module.make(cfg, on(data), env_params).init(key)

    def chunk_one(cfg, state, active, data=None):
        algo_fns = module.make(cfg, on(data), env_params)
        metric_shapes = jax.eval_shape(algo_fns.step, state)[1]
        idle = lambda s: (s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes))
        # `active` is not batched, so this stays a real conditional: the padded tail of the last chunk is free.
        return jax.lax.scan(lambda s, a: jax.lax.cond(a, algo_fns.step, idle, s), state, active)

    def eval_one(cfg, state, key, chunk, data=None):
        eval_key = jax.random.fold_in(jax.random.fold_in(key, _EVAL_STREAM), chunk)
        out = module.make(cfg, on(data), env_params).evaluate(state, eval_key, plan.eval_episodes)
        return out if isinstance(out, dict) else {"eval_return": out}

    return init_one, chunk_one, eval_one


def _programs(plan: _Plan) -> _Programs:
    """Lay the run axis over the local devices and build the jitted programs.

    The run axis is padded and laid over a 1-D mesh of the local devices; each device runs its share with
    shard_map. Within a device, runs are vmapped together; with `run_block`, in fixed blocks of that many runs
    under a scan. XLA's kernels (summation orders) depend on the vmapped batch size, so only a fixed block makes a
    run bit-identical however many runs share the program or the devices. An offline run's datasets are not closed
    over: each device gets its runs' datasets as its share of an input, and its runs read them by slot
    (:mod:`jaxrl.envs.offline`).
    """
    devices, _, padded = _layout(len(plan.runs), plan.run_block)
    mesh = Mesh(np.asarray(devices), ("runs",))
    run_sharding = NamedSharding(mesh, PartitionSpec("runs"))
    cfgs = jax.tree.map(lambda x: _pad_runs(x, padded), plan.batched_config)
    if isinstance(plan.env_obj, offline.OfflineEnv):  # each device holds its runs' datasets, indexed by slot
        layout, slots = offline.device_layout(_dataset_of_run(cfgs, padded, None), len(devices))
        leaves = jax.tree.leaves(cfgs)
        leaves[hyper_fields(plan.config).index("dataset_index")] = slots.astype(np.asarray(cfgs.dataset_index).dtype)
        cfgs = _WithData(
            distributed.put_global(jax.tree.unflatten(jax.tree.structure(cfgs), leaves), run_sharding),
            offline.shard_datasets(plan.env_obj, layout, run_sharding),
        )
    else:
        cfgs = distributed.put_global(cfgs, run_sharding)
    keys = np.stack([np.asarray(jax.random.PRNGKey(r["seed"])) for r in plan.runs])
    keys = distributed.put_global(_pad_runs(keys, padded), run_sharding)
    init_one, chunk_one, eval_one = _per_run_fns(plan)
    return _Programs(
        cfgs,
        keys,
        jax.jit(_over_runs(init_one, 2, mesh, plan.run_block), out_shardings=run_sharding),
        jax.jit(_over_runs(chunk_one, 2, mesh, plan.run_block), out_shardings=run_sharding, donate_argnums=1),
        jax.jit(_over_runs(eval_one, 3, mesh, plan.run_block), out_shardings=run_sharding),
        run_sharding,
        NamedSharding(mesh, PartitionSpec()),
    )


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
    wandb: str | bool | None = None,
) -> TrainResult:
    """Train every seed x grid point of ``algo`` on ``env`` in one compiled program.

    Args:
      algo: a registered name (``"ppo"``) or an algorithm module with ``Config`` and ``make``.
      env: an env name for :func:`jaxrl.envs.make` (``dataset:`` names included) or an ``(env, env_params)``
        pair; default per algorithm.
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
      wandb: also log to Weights & Biases (the ``wandb`` extra): a project name, or True for project ``jaxrl``
        (:mod:`jaxrl.run.wandb_log`: config, metrics per chunk per run and their mean, summary, curves; offline
        without an API key). A resume continues the run's W&B run unless ``wandb=False``.

    Returns a :class:`TrainResult` whose metrics have named axes ``("seed", *grid fields, "chunk")``.
    """
    return _train(
        algo, env, config, resume_from=None, chunk_len=None, seeds=seeds, grid=grid, out_dir=out_dir,
        num_chunks=num_chunks, eval_episodes=eval_episodes, keep_checkpoints=keep_checkpoints, checkpoint=checkpoint,
        tensorboard=tensorboard, progress=progress, compilation_cache=compilation_cache,
        stop_after_chunks=stop_after_chunks, run_block=run_block, watchdog=watchdog, wandb=wandb,
    )  # fmt: skip


def _train(algo, env, config, *, resume_from: Path | None, chunk_len: int | None, **options) -> TrainResult:
    """:func:`train`, or with ``resume_from`` (a checkpoint) and ``chunk_len`` (the recorded one) a resume."""
    wandb_log.check(options["wandb"], options["out_dir"], resuming=resume_from is not None)
    plan = _plan(
        algo, env, config, options["seeds"], options["grid"], options["num_chunks"], options["eval_episodes"],
        options["run_block"], chunk_len,
    )  # fmt: skip
    return _run(plan, resume_from, options)


def _run(plan: _Plan, resume_from: Path | None, options: dict) -> TrainResult:
    """Compile, restore or initialise, run the chunks and record them."""
    cache_dir = enable_compilation_cache(options["compilation_cache"])
    progs = _programs(plan)
    num_runs = len(plan.runs)
    t_compile = time.perf_counter()
    state, start_chunk = None, 0
    earlier_seconds: float | None = 0.0  # a resumed run's seconds before it stopped (None: not in its checkpoint)
    if resume_from is not None:
        host_state, meta = ckpt.restore(resume_from, jax.eval_shape(progs.init_fn, progs.cfgs, progs.keys))
        if isinstance(progs.cfgs, _WithData):  # each run's dataset slot must be where the checkpoint left it
            slots = _dataset_of_run(plan.batched_config, num_runs, plan.run_block)
            offline.check_resumed_slots(host_state, offline.device_layout(slots, len(jax.devices()))[1])
        state = distributed.put_global(host_state, progs.run_sharding)
        start_chunk, earlier_seconds = meta["chunk"] + 1, meta.get("run_seconds")
        if start_chunk >= plan.num_chunks:  # a finished run: report it from disk, compile and write nothing
            return _finished_result(plan, Path(options["out_dir"]), state)
    start_iter = min(start_chunk * plan.chunk_len, plan.total_iters)
    writer = distributed.is_writer()  # several processes: process 0 writes the run directory
    rec = Recorder(
        options["out_dir"] if writer else None, checkpoint_dir=options["out_dir"],
        algo=plan.algo_name, env=plan.env_name, runs=plan.runs, env_obj=plan.env_obj,
        steps_per_iteration=plan.steps_per_iter, compilation_cache=cache_dir, start_iteration=start_iter,
        earlier_run_seconds=earlier_seconds,
        **{k: options[k] for k in ("tensorboard", "checkpoint", "wandb")}, progress=options["progress"] and writer,
    )  # fmt: skip
    rec.say(
        f"compiling {plan.algo_name} on {plan.env_name} ({num_runs} run{'s' * (num_runs > 1)}, {plan.num_chunks} "
        f"chunks of {plan.chunk_len} iterations)..."
    )
    with rec.watch(options["watchdog"], plan.num_chunks, plan.chunk_len, plan.total_iters, start_chunk):
        state, compiled = _compile(progs, plan, state, rec, t_compile)
        if resume_from is None:
            rec.open(_config_spec(plan, options["keep_checkpoints"]))
        else:
            rec.open(None, truncate_after=start_iter)
        state, last_chunk, interrupted = _run_chunks(plan, progs, compiled, state, rec, start_chunk, options)
    summary = rec.summary(min((last_chunk + 1) * plan.chunk_len, plan.total_iters), interrupted=interrupted)
    rec.finish(summary, plot_metric=None if interrupted else "eval_return")
    state = jax.tree.map(lambda x: x[:num_runs], distributed.local(state))
    metrics = rec.metrics(plan.shape)
    env_steps = np.asarray(rec.env_steps)
    return TrainResult(state, metrics, plan.axes, env_steps, plan.runs, summary, rec.run_dir, interrupted)


def _compile(progs: _Programs, plan: _Plan, state, rec: Recorder, t_compile: float):
    """Initialise (unless restored) and compile the chunk and evaluation programs ahead of the first chunk."""
    if state is None:
        state = progs.init_fn(progs.cfgs, progs.keys)
    active0 = distributed.put_global(np.ones(plan.chunk_len, bool), progs.replicated)
    chunk_compiled = progs.chunk_fn.lower(progs.cfgs, state, active0).compile()
    eval_compiled = progs.eval_fn.lower(
        progs.cfgs, state, progs.keys, distributed.put_global(np.int32(0), progs.replicated)
    ).compile()
    jax.block_until_ready(state)
    rec.compiled(time.perf_counter() - t_compile)
    return state, (chunk_compiled, eval_compiled)


def _config_spec(plan: _Plan, keep_checkpoints: int) -> dict:
    """config.json's description of the run (what `resume` rebuilds it from)."""
    return {
        "config": to_dict(plan.config),
        "seeds": plan.seeds,
        "grid": plan.grid,
        "num_chunks": plan.num_chunks,
        "chunk_iterations": plan.chunk_len,
        "eval_episodes": plan.eval_episodes,
        "keep_checkpoints": keep_checkpoints,
        "run_block": plan.run_block,
        "runs": plan.runs,
        "env_registered": plan.env_registered,
    }


def _run_chunks(plan: _Plan, progs: _Programs, compiled, state, rec: Recorder, start_chunk: int, options: dict):
    """The chunks from ``start_chunk`` on; returns the state, the last chunk run and whether the run stopped early."""
    chunk_compiled, eval_compiled = compiled
    num_runs, chunk_len, total_iters = len(plan.runs), plan.chunk_len, plan.total_iters
    stop_after = options["stop_after_chunks"]
    bar = rec.progress_bar(total_iters, min(start_chunk * chunk_len, total_iters))
    chunk, interrupted = start_chunk - 1, False
    with StopRequest() as stop:
        for chunk in range(start_chunk, plan.num_chunks):
            first = chunk * chunk_len
            active_np = np.arange(first, first + chunk_len) < total_iters
            t0 = time.perf_counter()
            state, metrics = chunk_compiled(progs.cfgs, state, distributed.put_global(active_np, progs.replicated))
            evals = eval_compiled(
                progs.cfgs, state, progs.keys, distributed.put_global(np.int32(chunk), progs.replicated)
            )
            metrics, evals = distributed.to_host((metrics, evals))
            elapsed = time.perf_counter() - t0
            rec.run_seconds += elapsed

            iterations = np.arange(first, first + chunk_len)[active_np] + 1
            metrics = {k: np.asarray(v)[:num_runs][:, active_np] for k, v in metrics.items()}
            evals = {k: np.asarray(v)[:num_runs] for k, v in evals.items()}
            rec.log_chunk(chunk, iterations, evals, metrics, per_iteration=True)
            done_iters = int(iterations[-1])
            if bar is not None:
                bar.update(int(active_np.sum()) * plan.steps_per_iter)
                bar.set_postfix(
                    eval_return=f"{evals['eval_return'].mean():.1f}",
                    sps=f"{active_np.sum() * plan.steps_per_iter * num_runs / elapsed:.3g}",
                )
            stop_now = stop.signal_name is not None or (
                stop_after is not None and chunk - start_chunk + 1 >= stop_after
            )
            rec.save_checkpoint(chunk, state, done_iters, keep=options["keep_checkpoints"])
            rec.chunk_done(chunk)
            if stop_now and chunk < plan.num_chunks - 1:
                interrupted = True
                rec.report_stop(stop.signal_name, done_iters)
                break
    if bar is not None:
        bar.close()
    return state, chunk, interrupted


def _finished_result(plan: _Plan, run_dir: Path, state: Any) -> TrainResult:
    """The result of a run that already finished, read from its run directory (which is left untouched)."""
    history, summary, env_steps = rec_lib.read_back(run_dir)
    state = jax.tree.map(lambda x: x[: len(plan.runs)], distributed.local(state))
    metrics = rec_lib.metrics_by_axes(history, plan.shape)
    return TrainResult(
        state, metrics, plan.axes, env_steps, plan.runs, summary, run_dir, interrupted=False, already_complete=True
    )


# train()'s keyword options and their defaults: what a resume does not take from config.json
_TRAIN_DEFAULTS = {
    name: p.default for name, p in inspect.signature(train).parameters.items() if p.kind is p.KEYWORD_ONLY
}


def resume(run_dir: str | os.PathLike, *, env: tuple[Any, Any] | None = None, **overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its newest complete checkpoint, exactly where it stopped.

    ``overrides``: keyword arguments of :func:`train` that replace the recorded ones (``progress``, ``watchdog``,
    ...). ``env``: the ``(env, env_params)`` pair of a run that was trained on an env object rather than a
    registered name (config.json records only its label). A run that had already finished is left untouched: its
    result is read back from the run directory (``result.already_complete`` is True) and nothing is compiled or
    written.
    """
    run_dir = Path(run_dir)
    spec = json.loads((run_dir / "config.json").read_text())
    module = algo_registry.get(spec["algo"])
    path = _resume_checkpoint(run_dir, spec["num_chunks"])
    recorded = dict(
        seeds=spec["seeds"],
        grid=spec["grid"],
        out_dir=run_dir,
        num_chunks=spec["num_chunks"],
        run_block=spec.get("run_block"),
        eval_episodes=spec["eval_episodes"],
        keep_checkpoints=spec["keep_checkpoints"],
    )
    unknown = sorted(set(overrides) - set(_TRAIN_DEFAULTS))
    if unknown:
        raise TypeError(f"resume() got unexpected keyword arguments {unknown}: it takes train()'s options")
    options = {**_TRAIN_DEFAULTS, **recorded, **overrides}
    config = from_dict(module.Config, spec["config"])
    if env is None and not spec.get("env_registered", True):
        raise ValueError(
            f"{run_dir} was trained on an env object (labelled {spec['env']!r}), not a registered env name, so its "
            f"env cannot be rebuilt from config.json: resume it in Python with the same env, "
            f"resume(run_dir, env=(env, env_params))"
        )
    return _train(
        spec["algo"],
        spec["env"] if env is None else env,
        config,
        resume_from=path,
        chunk_len=spec["chunk_iterations"],
        **options,
    )


def _resume_checkpoint(run_dir: Path, num_chunks: int) -> Path:
    """The checkpoint to continue from: the newest, or the one before when the last chunk's summary is missing."""
    path = ckpt.latest(run_dir / "checkpoints")
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to resume from")
    if ckpt.meta(path)["chunk"] + 1 >= num_chunks and not rec_lib.is_finished(run_dir):
        # The last chunk was saved but the run was stopped before its summary: redo the last chunk.
        earlier = ckpt.list_checkpoints(run_dir / "checkpoints")[:-1]
        if not earlier:
            raise FileNotFoundError(
                f"{run_dir} stopped after its last checkpoint but before writing summary.json, "
                f"and no earlier checkpoint is left to redo the last chunk from"
            )
        path = earlier[-1]
    return path
