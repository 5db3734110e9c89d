"""The run recorder: what both run loops (:func:`jaxrl.run.train` and :func:`jaxrl.run.host_train.train_host`)
write and check between chunks.

A run directory holds ``config.json`` (the algorithm, env, config, seeds, grid, versions and the env's own
metadata), ``metrics.jsonl`` (one record per chunk: per-run lists in run-axis order), ``summary.json`` (each
evaluation output's last and best value, timings, and ``interrupted`` / ``stalled`` status), TensorBoard events,
``checkpoints/`` and ``curves.png``. Every record is checked for NaN/inf first: the run stops naming the metric,
iteration and run. The stall watchdog (:mod:`jaxrl.run.watchdog`) and SIGINT/SIGTERM are handled here too, so both
loops stop, and say how to continue, the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import jax
import numpy as np

import jaxrl
from jaxrl.run import checkpoint as ckpt
from jaxrl.run.logging import MetricsLog, read_metrics
from jaxrl.run.wandb_log import WandbLog
from jaxrl.run.watchdog import EXIT_STALLED, StallMonitor, Watchdog

# Packages whose versions config.json records; host envs add theirs through their metadata (``<pkg>_version``).
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "distrax", "orbax-checkpoint")
_HOST_PACKAGES = ("metaworld", "mujoco", "gymnasium")
# The CPU's instruction-set extensions that XLA:CPU compiles for (it targets the host): one program's floating point
# differs between, e.g., an AVX-512 and an AVX2-only CPU, so a run reproduces bit for bit only where these match.
_ISA_PREFIXES = ("avx", "fma", "f16c", "amx", "sse4", "bmi", "asimd", "sve")


class NonFiniteError(FloatingPointError):
    """A loss or metric became NaN or infinite; the message names the metric, iteration and run."""


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
        else Path(cast(str, setting))  # True and False were handled above
    )
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return str(directory)


def versions(env_metadata: Mapping[str, Any]) -> dict[str, str]:
    """jaxrl's, Python's and the installed libraries' versions (a host env's come from its metadata)."""
    import importlib.metadata as md

    out = {"jaxrl": jaxrl.__version__, "python": sys.version.split()[0]}
    for pkg in _PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    for pkg in _HOST_PACKAGES:
        if env_metadata.get(f"{pkg}_version"):
            out[pkg] = env_metadata[f"{pkg}_version"]
    return out


def host_cpu() -> dict[str, Any]:
    """This machine's CPU, from the first processor of ``/proc/cpuinfo`` (fields empty where it cannot be read):
    ``model``, ``vendor``, ``family``, ``model_number``, ``machine`` and ``isa``, the instruction-set extensions
    XLA:CPU compiles for. The golden tests' platform signature is built from it too."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = (info.get("flags") or info.get("Features") or "").split()
    return {
        "model": info.get("model name") or info.get("Model") or platform.processor() or platform.machine(),
        "vendor": info.get("vendor_id", ""),
        "family": info.get("cpu family", ""),
        "model_number": info.get("model", ""),
        "machine": platform.machine(),
        "isa": sorted(f for f in flags if f.startswith(_ISA_PREFIXES)),
    }


def cpu_line(cpu: Mapping[str, Any]) -> str:
    """A :func:`host_cpu` as one line: ``AMD EPYC (x86_64: avx, avx2, fma)``."""
    return f"{cpu['model']} ({cpu['machine']}: {', '.join(cpu['isa']) or 'extensions unknown'})"


def env_metadata(env_obj: Any) -> dict:
    """What an env or task suite says about itself for config.json (versions, reward function, dataset hash)."""
    meta = getattr(env_obj, "metadata", None)
    meta = meta() if callable(meta) else meta
    return dict(meta) if isinstance(meta, dict) else {}


def check_finite(
    metrics: Mapping[str, np.ndarray], iterations: np.ndarray, runs: list[dict], per_iteration: bool
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


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between chunks (installed only on the main thread)."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        outer = getattr(self._previous.get(signum), "__self__", None)
        if isinstance(outer, StopRequest):  # a sweep around this run stops as well
            outer._handle(signum, frame)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def append_history(history: dict[str, list[np.ndarray]], record: Mapping[str, Any]) -> None:
    for k, v in record.items():
        if isinstance(v, list):
            history.setdefault(k, []).append(np.asarray(v))


def metrics_by_axes(history: Mapping[str, list[np.ndarray]], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``[runs, ...]`` per chunk -> ``[*shape, chunks, ...]`` (``shape``: the run axis unflattened)."""
    return {k: np.stack(v, axis=1).reshape(*shape, len(v), *v[0].shape[1:]) for k, v in history.items()}


def final_and_best(history: Mapping[str, list[np.ndarray]], eval_keys: Sequence[str]) -> dict:
    """Each evaluation output's last value and its best over chunks (offline runs: the normalised score too)."""
    out = {}
    for key in eval_keys if history else []:
        out[key] = history[key][-1].tolist()
        out[f"{key}_best"] = np.max(np.stack(history[key]), axis=0).tolist()
    if "normalized_score" in out:
        out["normalized_score_last"] = out["normalized_score"]
    return out


def is_finished(run_dir: Path) -> bool:
    """The run in ``run_dir`` ran to its end (its summary exists and says it was not interrupted)."""
    path = run_dir / "summary.json"
    return path.exists() and not json.loads(path.read_text()).get("interrupted", False)


def read_back(run_dir: Path) -> tuple[dict[str, list[np.ndarray]], dict, np.ndarray]:
    """A finished run's history, summary and env steps per chunk, read from its run directory (left untouched)."""
    records = read_metrics(run_dir)
    history: dict[str, list[np.ndarray]] = {}
    for record in records:
        append_history(history, record)
    summary = json.loads((run_dir / "summary.json").read_text())
    return history, summary, np.asarray([r["env_steps"] for r in records])


class Recorder:
    """One run's record: in memory always, on disk with a ``run_dir``.

    A loop calls, in order: :meth:`watch` (a context: the stall watchdog), :meth:`compiled`, :meth:`open`
    (config.json, metrics log), per chunk :meth:`log_chunk`, :meth:`save_checkpoint` and :meth:`chunk_done`, and at
    the end :meth:`summary` and :meth:`finish`. ``resumable``: whether ``jaxrl train --resume`` can continue the run
    from its checkpoints (host runs cannot: the host envs' state is not saved). ``earlier_run_seconds``: a resumed
    run's seconds before ``start_iteration``, from its checkpoint (None: a checkpoint saved before they were kept).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None,
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        algo: str,
        env: str,
        runs: list[dict],
        env_obj: Any,
        steps_per_iteration: int,
        compilation_cache: str | None,
        start_iteration: int = 0,
        earlier_run_seconds: float | None = 0.0,
        tensorboard: bool = True,
        checkpoint: bool = True,
        progress: bool = True,
        resumable: bool = True,
        mean_keys: Sequence[str] = ("eval_return",),
        wandb: str | bool | None = None,
    ):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # the run directory whose checkpoints/ this process writes its part of: the run directory, or with several
        # processes (jaxrl.run.distributed) the one process 0 writes, on every process (each saves its shards)
        checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else run_dir
        self.checkpoint_dir = Path(checkpoint_dir) / "checkpoints" if checkpoint_dir is not None else None
        self.algo, self.env, self.runs = algo, env, runs
        self.env_metadata = env_metadata(env_obj)
        self.steps_per_iteration = steps_per_iteration
        self.start_iteration = start_iteration
        self.cache_dir = compilation_cache
        self.devices = [str(d) for d in jax.devices()]  # read here: the watchdog thread must not ask JAX
        self.processes = (jax.process_index(), jax.process_count())  # (this, all): jaxrl.distributed
        self.tensorboard, self.checkpointing, self.progress = tensorboard, checkpoint, progress
        self.resumable = resumable
        self.mean_keys = tuple(mean_keys)
        self.history: dict[str, list[np.ndarray]] = {}
        self.eval_keys: list[str] = []
        self.env_steps: list[int] = []
        self.compile_seconds = float("nan")
        self.run_seconds = 0.0  # this process's chunks
        self.earlier_run_seconds = earlier_run_seconds
        self._log: MetricsLog | None = None
        self.wandb = wandb  # a W&B project (jaxrl.run.wandb_log); None: off, unless a resumed run logged to W&B
        self._wandb: WandbLog | None = None
        self._monitor: StallMonitor | None = None
        # progress, read by the watchdog thread
        self._finished_chunks = 0
        self._compiled = False
        self._chunks = (0, 1, 0)  # (number of chunks, iterations per chunk, total iterations)

    # ------------------------------------------------------------------ console

    def say(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def progress_bar(self, total_iterations: int, initial_iterations: int = 0):
        """A tqdm bar over env steps (None without ``progress``)."""
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total_iterations * self.steps_per_iteration,
            initial=initial_iterations * self.steps_per_iteration,
            unit="step",
            unit_scale=True,
            desc=f"{self.algo} {self.env} x{len(self.runs)}",
            file=sys.stderr,
        )

    # ------------------------------------------------------------------ the stall watchdog

    @contextlib.contextmanager
    def watch(
        self,
        watchdog: Watchdog | None,
        num_chunks: int,
        chunk_iterations: int,
        total_iterations: int,
        start_chunk: int = 0,
    ) -> Iterator[None]:
        """Run the body under the stall watchdog (default bounds when None); creates the run directory."""
        self._chunks = (num_chunks, chunk_iterations, total_iterations)
        self._finished_chunks = start_chunk
        stacks = self.run_dir / "stall-stacks.txt" if self.run_dir is not None else None
        self._monitor = StallMonitor(watchdog or Watchdog(), stacks, self._on_stall)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._monitor.start()
        try:
            yield
        finally:
            self._monitor.stop()

    def compiled(self, seconds: float) -> None:
        """Compilation (and initialisation) is over: the watchdog's clock restarts for the first chunk."""
        self.compile_seconds = seconds
        if self._monitor is not None:
            self._monitor.beat(chunk=False)
        self._compiled = True
        self.say(f"compiled in {seconds:.1f} s")

    def chunk_done(self, chunk: int) -> None:
        self._finished_chunks = chunk + 1
        if self._monitor is not None:
            self._monitor.beat()

    def _on_stall(self, elapsed: float, bound: float) -> str:
        """Runs on the watchdog thread while the main thread is stuck in the chunk after the last finished one."""
        num_chunks, chunk_iterations, total_iterations = self._chunks
        stalled_chunk = self._finished_chunks
        done = min(stalled_chunk * chunk_iterations, total_iterations)
        if self.run_dir is not None:
            summary = self.summary(
                done,
                interrupted=True,
                stalled=True,
                stalled_chunk=stalled_chunk,
                stalled_after_seconds=round(elapsed, 1),
                stall_bound_seconds=round(bound, 1),
            )
            ckpt.write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        where = f"in chunk {stalled_chunk} of {num_chunks}" if self._compiled else "while compiling"
        if not self.resumable:
            hint = "a host run does not resume (the host envs' state is not saved); run it again"
        elif self.run_dir is not None and self.checkpointing and stalled_chunk > 0:
            hint = f"`jaxrl train --resume {self.run_dir}` continues from the last checkpoint (iteration {done})"
        else:
            hint = "no checkpoint was saved yet; run it again"
        stacks = self.run_dir / "stall-stacks.txt" if self.run_dir is not None else None
        return (
            f"\njaxrl: STALLED: no progress for {elapsed:.0f} s (bound {bound:.0f} s) {where}; "
            f"stopping with exit code {EXIT_STALLED}.\n  A compiled program that stops making progress is a "
            f"runtime stall (XLA:CPU on jaxlib < 0.11 is the known cause: use Python >= 3.12 with jax >= 0.11.2, "
            f"or try XLA_FLAGS=--xla_cpu_multi_thread_eigen=false).\n"
            + (f'  Stacks: {stacks}; summary.json says "stalled": true.\n' if stacks is not None else "")
            + f"  {hint}. If chunks are only slow, raise the bounds (--stall-factor, --stall-margin, "
            f"--stall-first-chunk) or turn the watchdog off (--no-watchdog)."
        )

    # ------------------------------------------------------------------ the run directory

    def open(self, spec: Mapping[str, Any] | None, truncate_after: int | None = None) -> None:
        """Write config.json (``{"algo", "env", **spec, "env_metadata", "versions", "host"}``; None: keep the one
        there, as a resume does) and open the metrics log, dropping records past ``truncate_after``, and the W&B
        run."""
        config = None
        if spec is not None:
            config = {
                "algo": self.algo,
                "env": self.env,
                **spec,
                "env_metadata": self.env_metadata,
                "versions": versions(self.env_metadata),
                "host": host_cpu(),
            }
        if self.run_dir is not None:
            if config is not None:
                (self.run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
            self._log = MetricsLog(self.run_dir, tensorboard=self.tensorboard)
            if truncate_after is not None:
                self._log.truncate_after(truncate_after)
                # the chunks before the checkpoint: a resumed run's *_best and metrics cover the whole run
                for record in read_metrics(self.run_dir):
                    append_history(self.history, record)
                    self.env_steps.append(record["env_steps"])
        # json round trip: the config as config.json has it (tuples as lists, other objects as strings)
        config = json.loads(json.dumps(config, default=str)) if config is not None else None
        self._wandb = WandbLog.open(self.wandb, self.run_dir, config, resuming=spec is None)

    def log_chunk(
        self,
        chunk: int,
        iterations: np.ndarray,
        evals: Mapping[str, np.ndarray],
        metrics: Mapping[str, np.ndarray],
        per_iteration: bool,
    ) -> dict:
        """Check, keep and write one chunk's record. ``evals``: ``[runs, ...]``; ``metrics``: ``[runs, iterations,
        ...]`` (averaged over the chunk's iterations here) with ``per_iteration``, else ``[runs, ...]``."""
        check_finite(metrics, iterations, self.runs, per_iteration=per_iteration)
        check_finite(evals, iterations, self.runs, per_iteration=False)
        done = int(iterations[-1])
        env_steps = done * self.steps_per_iteration
        record = {"chunk": chunk, "iteration": done, "env_steps": env_steps}
        record.update({k: np.asarray(v).tolist() for k, v in evals.items()})
        record.update({k: (v.mean(axis=1) if per_iteration else np.asarray(v)).tolist() for k, v in metrics.items()})
        append_history(self.history, record)
        self.eval_keys[:] = list(evals)
        self.env_steps.append(env_steps)
        if self._log is not None:
            self._log.write(record)
        if self._wandb is not None:
            self._wandb.write(record)
        return record

    def save_checkpoint(self, chunk: int, state: Any, iteration: int, keep: int) -> None:
        if self.checkpoint_dir is not None and self.checkpointing:
            meta: dict[str, float] = {"iteration": iteration, "env_steps": iteration * self.steps_per_iteration}
            if self.earlier_run_seconds is not None:  # a resume reads it back, so a run's seconds add up
                meta["run_seconds"] = self.earlier_run_seconds + self.run_seconds
            ckpt.save(self.checkpoint_dir, chunk, state, meta, keep=keep)

    def report_stop(self, signal_name: str | None, iteration: int) -> None:
        """Say why the run stopped early and how to continue (nothing for a planned stop)."""
        if signal_name is None:
            return
        if self.resumable and self.run_dir is not None and self.checkpointing:
            message = (
                f"saved a checkpoint after iteration {iteration}; continue with `jaxrl train --resume {self.run_dir}`"
            )
        elif not self.resumable:
            message = f"stopped after iteration {iteration} (a host run does not resume: its envs' state is not saved)"
        else:
            message = f"stopped after iteration {iteration} (no run directory, so no checkpoint)"
        print(f"\n{signal_name}: {message}", file=sys.stderr)

    def metrics(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return metrics_by_axes(self.history, shape)

    def summary(self, iterations: int, **status) -> dict:
        """summary.json's content for a run that reached ``iterations``; ``status``: more fields (timings,
        ``interrupted``, ``stalled``, ...)."""
        known = self.earlier_run_seconds is not None  # else the seconds and steps since the resume only
        since = 0 if known else self.start_iteration
        run_seconds = self.run_seconds + (self.earlier_run_seconds or 0.0)
        steps_done = (iterations - since) * self.steps_per_iteration * len(self.runs)
        out = {"algo": self.algo, "env": self.env, **final_and_best(self.history, self.eval_keys)}
        for key in self.mean_keys:
            out[f"{key}_mean"] = float(np.mean(self.history[key][-1])) if key in self.history else float("nan")
        out.update(
            {
                "runs": self.runs,
                "env_metadata": self.env_metadata,
                "iterations": iterations,
                "env_steps": iterations * self.steps_per_iteration,
                "env_steps_per_second": steps_done / run_seconds if run_seconds else 0.0,
                "compile_seconds": self.compile_seconds,
                "run_seconds": run_seconds,
                **({} if known else {"run_seconds_from_iteration": since}),
                "devices": self.devices,
                "compilation_cache": self.cache_dir,
                **(
                    {"process_index": self.processes[0], "process_count": self.processes[1]}
                    if self.processes[1] > 1
                    else {}
                ),
                **status,
            }
        )
        return out

    def finish(self, summary: Mapping[str, Any], plot_metric: str | None = "eval_return") -> None:
        """Close the log, write summary.json and (``plot_metric``, when anything was logged) curves.png; set the
        W&B run's summary, log the curves to it and close it."""
        curves = None
        if self.run_dir is not None:
            if self._log is not None:
                self._log.close()
            ckpt.write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))
            if self.history and plot_metric is not None:
                from jaxrl.run.plot import plot_runs

                curves = self.run_dir / "curves.png"
                plot_runs([self.run_dir], curves, plot_metric)
        if self._wandb is not None:
            self._wandb.finish(summary, curves)
            self._wandb = None
