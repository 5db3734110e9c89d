"""The ``jaxrl`` command line: ``train``, ``list``, ``plot``, ``report``, ``sweep``, ``dataset``. Options are
generated from the config dataclasses.

    jaxrl train ALGO [--env ENV] [--seeds N] [--seed FIRST] [--total-env-steps N] [--out DIR] [--grid F=v1,v2 ...]
                     [--resume DIR] [any config field, e.g. --learning-rate 3e-4]
    jaxrl train --resume DIR
    jaxrl list
    jaxrl plot RUN_DIR... [--out PNG] [--metric NAME]
    jaxrl report RUN_DIR... [--by FIELD ...] [--metric NAME] [--out DIR] [--target X] [--reps N]
    jaxrl sweep SPEC.toml|SPEC.yaml [--out DIR] (algorithms x envs/datasets x grids x seeds; resumable)
    jaxrl dataset make ENV --kind KIND --out FILE | jaxrl dataset info FILE
"""

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np

USAGE = __doc__


@dataclasses.dataclass
class _ProcessOptions:
    distributed: bool = False
    """run over several processes (jax.distributed): every process runs this same command with its own
    --process-id; the run axis is laid over all their devices and process 0 writes --out (required)"""
    coordinator: str | None = None
    """with --distributed: HOST:PORT of process 0 (default JAXRL_COORDINATOR; none needed on SLURM or Cloud
    TPU, where JAX finds the processes itself)"""
    num_processes: int | None = None
    """with --distributed: the number of processes (default JAXRL_NUM_PROCESSES)"""
    process_id: int | None = None
    """with --distributed: this process's index, 0 .. N-1 (default JAXRL_PROCESS_ID)"""

    def join_processes(self, out: str | None, resume: str | None) -> None:
        """``--distributed``: join the other processes before anything is computed (the ``jaxrl`` command has
        joined them already, before importing JAX's backend: jaxrl.__main__)."""
        if not self.distributed:
            if any(v is not None for v in (self.coordinator, self.num_processes, self.process_id)):
                raise ValueError("--coordinator, --num-processes and --process-id need --distributed")
            return
        if out is None and resume is None:
            raise ValueError("--distributed needs --out: every process must name the same run directory")
        from jaxrl import distributed

        distributed.initialize(self.coordinator, self.num_processes, self.process_id)


def _train_args_class(module, default_env: str):
    import tyro

    from jaxrl.run.watchdog import Watchdog

    cfg_cls = module.Config
    from jaxrl import algos

    env_default = "(default: the dataset's env)" if algos.is_offline(module) else f"(default: {default_env})"

    @dataclasses.dataclass
    class TrainArgs(_ProcessOptions):
        # tyro reads the algorithm's config class at run time; mypy cannot take a variable as a type
        config: Annotated[cfg_cls, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=cfg_cls)  # type: ignore[valid-type]
        env: Annotated[str | None, tyro.conf.arg(metavar="STR", help_behavior_hint=env_default)] = None
        """environment name (`jaxrl list`); offline algorithms: the env of a dataset file that does not name it"""
        seeds: int = 1
        """number of seeds, all in one compiled program"""
        seed: int = 0
        """the first seed: the runs' seeds are seed, seed+1, ... (re-run seed K of a sweep: --seeds 1 --seed K)"""
        out: str | None = None
        """run directory (default runs/ALGO-ENV-TIMESTAMP)"""
        grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
        """FIELD=v1,v2,... over a hyperparameter (repeatable); seeds x grid points run as one program"""
        num_chunks: int = 10
        """host round-trips (log, evaluate, checkpoint) over the run"""
        eval_episodes: int = 10
        """deterministic-policy episodes per evaluation"""
        run_block: int | None = None
        """vmap runs in fixed blocks of this size: each run then matches itself run alone, bit for bit"""
        resume: str | None = None
        """continue the run in this directory from its newest checkpoint"""
        dataset: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
        """offline algorithms: dataset file (repeatable: datasets stacked, chosen by --grid dataset_index=0,1,..)"""
        stall_first_chunk: float = Watchdog.first_chunk_seconds
        """stall watchdog: seconds allowed for compiling plus the first chunk"""
        stall_factor: float = Watchdog.factor
        """stall watchdog: a later chunk may take this many times the slowest chunk so far, plus --stall-margin"""
        stall_margin: float = Watchdog.margin_seconds
        """stall watchdog: seconds added to factor x slowest chunk"""
        no_watchdog: bool = False
        """turn the stall watchdog off"""

        wandb: Annotated[tuple[str, ...] | None, tyro.conf.arg(metavar="[PROJECT]")] = None
        """also log to Weights & Biases, project PROJECT (default jaxrl; needs the wandb extra); offline (synced
        later with `wandb sync`) without an API key or with WANDB_MODE=offline"""

        def wandb_project(self) -> str | bool | None:
            """``--wandb``: True (the default project); ``--wandb PROJECT``: PROJECT; absent: None. Checks that wandb
            is installed, before anything compiles."""
            if self.wandb is None:
                return None
            if len(self.wandb) > 1:
                raise ValueError(f"--wandb takes at most one project name, got {' '.join(self.wandb)}")
            from jaxrl.run.wandb_log import require

            require("--wandb")
            return self.wandb[0] if self.wandb else True

        def watchdog(self) -> Watchdog:
            return Watchdog(
                enabled=not self.no_watchdog,
                first_chunk_seconds=self.stall_first_chunk,
                factor=self.stall_factor,
                margin_seconds=self.stall_margin,
            )

    return TrainArgs


def _train(argv: list[str]) -> int:
    from jaxrl import algos
    from jaxrl.run.train import resume

    if argv and argv[0].startswith("--resume"):
        run_dir = argv[0].split("=", 1)[1] if "=" in argv[0] else argv[1]
        result = resume(run_dir)
        return _report(result)
    if not argv or argv[0].startswith("-"):
        print(
            f"usage: jaxrl train ALGO [options]  (ALGO one of {algos.names()}; "
            f"`jaxrl train ALGO --help` lists its options)",
            file=sys.stderr,
        )
        return 2
    import tyro

    name = argv[0]
    module = algos.get(name)
    _check_network_option(name, module, argv[1:])
    with _config_errors_as_one_line():
        args = tyro.cli(
            _train_args_class(module, algos.default_env(name)),
            args=argv[1:],
            prog=f"jaxrl train {name}",
            description=(module.__doc__ or "").strip().splitlines()[0],
        )
    args.join_processes(args.out, args.resume)
    if args.resume:
        return _report(resume(args.resume, wandb=args.wandb_project()))
    return _report(_train_new(name, args))


def _check_network_option(name: str, module, argv: list[str]) -> None:
    """``--network`` chooses a multi-task architecture (jaxrl.nets.multitask): one clear line for an algorithm
    whose config has none (tyro would only say the option is unrecognised)."""
    if not any(a == "--network" or a.startswith("--network=") for a in argv):
        return
    if "network" not in {f.name for f in dataclasses.fields(module.Config)}:
        from jaxrl.algos.multitask.architecture import ARCHITECTURE_ALGORITHMS

        raise ValueError(
            f"--network chooses a multi-task network architecture and {name} has none (a single-task or "
            f"fixed-network algorithm); use it with {', '.join(ARCHITECTURE_ALGORITHMS)}"
        )


def _config_errors_as_one_line():
    """A config value that its field refuses is one ``error: ...`` line, as every other mistake: tyro would draw
    a box around the message and wrap it at the terminal's width. (Its hook lives in a private module: without
    it, tyro's box.)"""
    try:
        from tyro._errors import InstantiationFailure, on_parse_error
    except ImportError:
        return contextlib.nullcontext()

    from jaxrl.config import ConfigError

    def hook(event):
        if isinstance(event, InstantiationFailure):
            raise ConfigError(event.message)

    return on_parse_error(hook)


def _train_new(name: str, args):
    """A new run of algorithm ``name`` from the parsed options: on the host loop for host envs (Meta-World)."""
    from jaxrl import algos, envs
    from jaxrl.run import grid as grid_lib

    offline = algos.is_offline(name)
    if args.dataset and not offline:
        offline_names = [n for n in algos.names() if algos.is_offline(n)]
        raise ValueError(f"{name} is not an offline algorithm; --dataset is for: {', '.join(offline_names)}")
    if offline and not args.dataset:
        raise ValueError(
            f"{name} is an offline algorithm: pass --dataset FILE (make one with `jaxrl dataset make "
            f"Pendulum-v1 --kind medium --out medium.hdf5`)"
        )
    if args.dataset:
        env, env_label = envs.dataset_name(args.dataset, args.env), Path(args.dataset[0]).stem
    else:
        env = args.env or algos.default_env(name)
        env_label = env.replace(":", "_")
    out = args.out or f"runs/{name}-{env_label}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_run_dir(out)
    seeds = list(range(args.seed, args.seed + args.seeds))
    from jaxrl.run.contexts import inline_context_file

    args.config = inline_context_file(args.config)  # a CARE context file is read here, not by the algorithm
    common = dict(
        seeds=seeds,
        grid=grid_lib.parse_grid(args.grid),
        out_dir=out,
        eval_episodes=args.eval_episodes,
        wandb=args.wandb_project(),
    )
    if envs.is_host(env) and algos.kind(name) == "meta":  # Meta-World ML1 / ML10: host meta-training
        from jaxrl.run.host_meta import train_meta

        return train_meta(name, env, args.config, num_evals=args.num_chunks, watchdog=args.watchdog(), **common)
    if envs.is_host(env):  # steps on the host: collection there, every update jitted
        from jaxrl.run.host_train import train_host

        return train_host(name, env, args.config, num_evals=args.num_chunks, watchdog=args.watchdog(), **common)
    from jaxrl.run.train import train

    return train(
        name,
        env,
        args.config,
        num_chunks=args.num_chunks,
        run_block=args.run_block,
        watchdog=args.watchdog(),
        **common,
    )


def _check_run_dir(out: str) -> None:
    """The run directory must be creatable: a file at ``--out`` or above it would fail only after setup."""
    existing = next(p for p in (Path(out), *Path(out).parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is an existing file, not a directory; name a run directory")


def _report(result) -> int:
    s = result.summary
    if getattr(result, "already_complete", False):
        print(
            f"{result.run_dir} is already complete ({s['iterations']} iterations, eval_return mean "
            f"{s['eval_return_mean']:.1f}); nothing to resume, nothing changed"
        )
        return 0
    if result.run_dir is None and s.get("process_index", 0) > 0:  # --distributed: process 0 reports
        print(f"process {s['process_index']} of {s['process_count']}: {s['algo']} on {s['env']} finished its runs")
        return 0
    # multi-task runs report [runs][tasks]: show each run's mean over its tasks
    returns = ", ".join(f"{float(np.mean(r)):.1f}" for r in s.get("eval_return", []))
    interrupted = getattr(result, "interrupted", False)
    state = "interrupted" if interrupted else "done"
    print(
        f"{state}: {s['algo']} on {s['env']}, {s['env_steps']} env steps per run x {len(s['runs'])} runs\n"
        f"  eval_return per run: [{returns}]  mean {s['eval_return_mean']:.1f}\n"
        f"  {s['env_steps_per_second']:.3g} env-steps/s (all runs), compile {s['compile_seconds']:.1f} s, "
        f"run {s['run_seconds']:.1f} s\n  run directory: {result.run_dir}"
        + ("" if interrupted else f" (learning curves: {result.run_dir / 'curves.png'})")
    )
    return 0


def _list() -> int:
    from jaxrl import algos, envs

    print("algorithms:")
    for name in algos.names():
        module = algos.get(name)
        print(f"  {name:10s} {(module.__doc__ or '').strip().splitlines()[0]}  (default env {algos.default_env(name)})")
    print("environments:")
    for name in envs.list_envs():
        print(f"  {name}")
    return 0


def _plot(argv: list[str]) -> int:
    import argparse

    from jaxrl.run.plot import plot_runs

    parser = argparse.ArgumentParser(prog="jaxrl plot", description="learning curves of run directories")
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--out", default=None, help="PNG path (default RUN_DIR/curves.png for one run)")
    parser.add_argument("--metric", default="eval_return")
    args = parser.parse_args(argv)
    out = args.out or (Path(args.run_dirs[0]) / "curves.png" if len(args.run_dirs) == 1 else "curves.png")
    print(plot_runs(args.run_dirs, out, args.metric))
    return 0


def _report_runs(argv: list[str]) -> int:
    import argparse

    from jaxrl.run.report import markdown, report

    parser = argparse.ArgumentParser(
        prog="jaxrl report",
        description="a paper-style table of run directories: "
        "IQM, mean, median, optimality gap with stratified bootstrap 95% CIs",
    )
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument(
        "--by",
        nargs="+",
        action="extend",
        default=None,
        help="group by these fields: algo, env, dataset, seed, point, run_dir or any config field "
        "(default: every field that differs between runs, except seed)",
    )
    parser.add_argument("--metric", default=None, help="default normalized_score (offline runs) or eval_return")
    parser.add_argument("--out", default="report", help="directory for report.md, report.csv and PNGs")
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="optimality-gap target (default 100 for normalised scores, 1 for success rates, "
        "else the best final score)",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    result = report(args.run_dirs, by=args.by, metric=args.metric, out_dir=args.out, target=args.target, reps=args.reps)
    print(markdown(result).split("\n## Run directories")[0].rstrip())
    print(f"wrote {', '.join(result['files'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            return _train(rest)
        if command == "list":
            return _list()
        if command == "plot":
            return _plot(rest)
        if command == "report":
            return _report_runs(rest)
        if command == "dataset":
            from jaxrl.run.dataset_cli import main as dataset_main

            return dataset_main(rest)
        if command == "sweep":
            from jaxrl.run.sweep import main as sweep_main

            return sweep_main(rest)
    except (ValueError, FileNotFoundError) as e:  # ConfigError is a ValueError: clear message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
