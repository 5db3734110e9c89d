"""Meta-World MT10 end to end through the host adapter: a CPU-budget table of six multi-task methods, and the
recipe for the published budget on a GPU.

Collection runs on the host (:class:`jaxrl.envs.metaworld.MetaWorldEnv`: Meta-World's gymnasium vector env, one
env per task, the one-hot task id appended to the 39-d observation); every update is jitted and vmapped over the
seeds (:func:`jaxrl.run.host_train.train_host`, which is what ``jaxrl train ALGO --env metaworld:MT10`` runs).
Success per task is Meta-World's own evaluation protocol (``metaworld.evaluation``): deterministic policy,
evaluation episodes end at the first success, an episode counts as a success if ``success`` was 1 at any step,
and a task's success rate is its successful episodes over the episodes run.

Rows (each a ``jaxrl train`` command; the results file lists them): MT-SAC (``mt_sac``), MH-SAC (``mh_sac``, a
head per task), MT-SAC + PCGrad (``--aggregator pcgrad``), Soft Modularization, MOORE and PaCo (``mt_sac
--network ...``, :mod:`jaxrl.nets.multitask`). ``--rows`` also takes MT-SAC + CAGrad.

    python experiments/metaworld_mt10.py                      # the CPU-budget table (all six rows, 2 seeds)
    python experiments/metaworld_mt10.py --rows MT-SAC,PaCo   # some rows
    python experiments/metaworld_mt10.py --table-only         # write the table from the finished cells
    python experiments/metaworld_mt10.py --gpu                # the published budget (GPU; days of host time)
    python experiments/metaworld_mt10.py --gpu --print        # only print the six `jaxrl train` commands

Each row is one program (its seeds vmapped) in its own run directory, ``experiments/results/runs/metaworld_mt10/
<row>/`` (``metaworld_mt10_gpu/`` with ``--gpu``): a finished one is kept when the command runs again; an
unfinished one starts again (host runs keep no env state, so they do not resume). The table
(``experiments/results/metaworld_mt10.md``, its figures in ``metaworld_mt10/``, a compact ``.json`` beside it) is
``jaxrl report`` over the finished cells (IQM and mean of the final per-task success with 95% stratified bootstrap
CIs over seeds x tasks), plus each cell's per-task success per seed, command and wall time; it says ``partial``
when a row has not finished.

**CPU budget** (the default): 5,000 env steps per task (50,000 per run), 2 seeds, networks of 2 x 256, batch 64
per task, 500 random-action steps per task first, Adam 3e-4, 2 evaluations of 10 episodes per task. That is
0.25% of the published budget: it shows the six methods running end to end on MT10 and what each reaches in the
first 5,000 steps per task (mostly reach-v3 style tasks), not the published scores. It was chosen to fit the six
rows x 2 seeds in about an hour of low-priority CPU on a shared 2-core machine (measured figures in the results
file).

**GPU recipe** (``--gpu``), the MT10 settings of metaworld-algorithms (Farama's JAX baselines for Meta-World 3;
``examples/*_mt10.py`` and its config defaults): 2M env steps per task (20M per run), episodes of 500 steps, reward
function ``v2``, one-hot task id, actor and critic MLPs of 3 x 400 (ReLU), two critics, Adam 3e-4, batch 1280 (128
per task), replay 1M (100k per task), 4,000 random-action steps per env first, one update per vector step, discount
0.99, Polyak 0.005, learned temperature per task (initial 1.0, target entropy -|A|), evaluation every 200k env steps
(``num_evals=100``) with 50 episodes per task. Per architecture: Soft Modularization 2 base layers of 2 modules of
width 256 (``hidden=(256, 256)``, ``num_modules=2``), MOORE 4 experts, PaCo 5 parameter sets (3 x 400 each).
Differences that remain: metaworld-algorithms weights each task's loss by ``softmax(-log alpha)`` for Soft
Modularization, MOORE and PaCo (``use_task_weights``) and clips Q to [-5000, 5000]; jaxrl does neither. Expected
wall time is NOT measured (no GPU on this machine). The run is host-bound: Meta-World stepped at about 1.4k
env-steps/s on one (shared) core here, so 20M env steps of collection are about 4 h per seed, plus evaluation (up
to 100 x 50 x 500 steps per task, less as episodes end at success) and 2M updates per seed on the GPU; all seeds of
one program step their envs in one process, so for 10 seeds start one process per seed (``--seeds 1 --seed K``)
on a machine with a core per process.
Published reference (CAGrad paper, Liu et al. 2021, MT10 in the mtrl setup, 10 seeds, mean success over tasks at
the end): MT-SAC 0.49, MH-SAC 0.61, PCGrad 0.72, CAGrad 0.83. Those were measured on older Meta-World releases
and reward functions, so a comparison with a ``--gpu`` run is indicative; the Soft Modularization, MOORE and PaCo
papers report their own MT10 numbers (not copied here).

Needs the extra: ``pip install -e ".[metaworld]"`` (metaworld 3.1.1, mujoco 3.3.0, packaging).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from results_table import RUNS, write_results, write_store

RESULTS = Path(__file__).resolve().parent / "results"
ENV = "metaworld:MT10"
NUM_TASKS = 10
METRIC = "eval_success"


@dataclass(frozen=True)
class Row:
    slug: str  # its run directory's name
    algo: str  # registered algorithm name
    overrides: dict = field(default_factory=dict)  # config fields on top of the budget's
    gpu: dict = field(default_factory=dict)  # the published setting's per-architecture fields


ROWS: dict[str, Row] = {
    "MT-SAC": Row("mt-sac", "mt_sac"),
    "MH-SAC": Row("mh-sac", "mh_sac"),
    "MT-SAC + PCGrad": Row("mt-sac+pcgrad", "mt_sac", dict(aggregator="pcgrad")),
    "Soft Modularization": Row(
        "soft-modularization",
        "mt_sac",
        dict(network="soft_modularization", num_modules=2),
        dict(hidden=(256, 256)),
    ),
    "MOORE": Row("moore", "mt_sac", dict(network="moore", num_experts=4)),
    "PaCo": Row("paco", "mt_sac", dict(network="paco", num_experts=5)),
    "MT-SAC + CAGrad": Row("mt-sac+cagrad", "mt_sac", dict(aggregator="cagrad")),
}
DEFAULT_ROWS = ("MT-SAC", "MH-SAC", "MT-SAC + PCGrad", "Soft Modularization", "MOORE", "PaCo")

# The CPU budget: see the module docstring. monitor_conflicts only where the aggregator needs per-task gradients.
CPU = dict(
    hidden=(128, 128),
    batch_size=32,
    learning_starts=300,
    learning_rate=3e-4,
    init_alpha=1.0,
    monitor_conflicts=False,
)
CPU_RUN = dict(steps=3_000, seeds=2, num_evals=1, eval_episodes=5)
# metaworld-algorithms' MT10 setting (examples/*_mt10.py, config defaults)
GPU = dict(
    hidden=(400, 400, 400),
    batch_size=128,
    buffer_size=100_000,
    learning_starts=4_000,
    learning_rate=3e-4,
    discount=0.99,
    tau=0.005,
    init_alpha=1.0,
    target_entropy_scale=1.0,
    updates_per_step=1,
    monitor_conflicts=False,
)
GPU_RUN = dict(steps=2_000_000, seeds=10, num_evals=100, eval_episodes=50)
REFERENCE = {  # published MT10 mean success (see the module docstring for sources and caveats)
    "MT-SAC": 0.49,
    "MH-SAC": 0.61,
    "MT-SAC + PCGrad": 0.72,
    "MT-SAC + CAGrad": 0.83,
}


def config_fields(row: Row, args) -> dict:
    """The row's config fields at the chosen budget (``total_env_steps`` counts all ten tasks)."""
    base = GPU if args.gpu else CPU
    fields = {**base, **row.overrides, **(row.gpu if args.gpu else {})}
    if row.overrides.get("aggregator", "sum") != "sum":
        fields["monitor_conflicts"] = True  # the aggregator reads per-task gradients anyway
    fields.setdefault("buffer_size", args.steps)  # CPU: each task's buffer holds its whole stream
    return dict(fields, num_envs=NUM_TASKS, total_env_steps=NUM_TASKS * args.steps)


def _flag(name: str, value) -> list[str]:
    opt = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [opt if value else "--no-" + opt[2:]]
    if isinstance(value, tuple):
        return [opt, *map(str, value)]
    return [opt, str(value)]


def cli_argv(row: Row, run_dir: Path, args) -> list[str]:
    """The ``jaxrl train`` arguments of the row's cell (what the results file quotes per cell)."""
    argv = ["train", row.algo, "--env", ENV, "--out", str(run_dir), "--seeds", str(args.seeds)]
    argv += ["--seed", str(args.seed)] if args.seed else []
    argv += ["--num-chunks", str(args.num_evals), "--eval-episodes", str(args.eval_episodes)]
    for name, value in config_fields(row, args).items():
        argv += _flag(name, value)
    return argv


def run_dir_of(row: Row, args) -> Path:
    return Path(args.runs) / row.slug


def _relative(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it (for the commands the table quotes)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return Path(path)


def run_cell(row: Row, args) -> Path | None:
    """Train the row's cell through the CLI unless it finished; ``None`` when it failed (the error is printed)."""
    from jaxrl.run.cli import main as cli
    from jaxrl.run.recorder import is_finished

    run_dir = run_dir_of(row, args)
    if is_finished(run_dir):
        print(f"{row.slug}: finished, kept", flush=True)
        return run_dir
    if run_dir.exists():  # a host run keeps no env state: an unfinished one starts again
        shutil.rmtree(run_dir)
    argv = cli_argv(row, run_dir, args)
    print(f"{row.slug}: jaxrl {shlex.join(argv)}", flush=True)
    t0 = time.perf_counter()
    try:
        rc = cli(argv)
    except Exception as e:  # noqa: BLE001  (one failing row must not stop the others)
        print(f"{row.slug}: FAILED: {type(e).__name__}: {e}", flush=True)
        return None
    print(f"{row.slug}: rc {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    if not is_finished(run_dir):
        return None
    (run_dir / "command.txt").write_text("jaxrl " + shlex.join(cli_argv(row, _relative(run_dir), args)) + "\n")
    return run_dir


def cell_record(label: str, row: Row, run_dir: Path, args) -> dict:
    """A finished cell's per-task success per seed, wall times and command, from its run directory."""
    s = json.loads((run_dir / "summary.json").read_text())
    spec = json.loads((run_dir / "config.json").read_text())
    success = np.asarray(s[METRIC], np.float64)  # [seeds, tasks]
    saved = run_dir / "command.txt"  # what the cell ran (else: this invocation's command for it)
    command = (
        saved.read_text().strip() if saved.exists() else "jaxrl " + shlex.join(cli_argv(row, _relative(run_dir), args))
    )
    return {
        "label": label,
        "run_dir": row.slug,
        "command": command,
        "tasks": spec["env_metadata"]["tasks"],
        "seeds": [r["seed"] for r in spec["runs"]],
        "success": success.tolist(),
        "mean_per_seed": success.mean(axis=1).tolist(),
        "env_steps_per_run": s["env_steps"],
        "env_steps_per_second": s["env_steps_per_second"],  # all seeds together, training only
        "compile_seconds": s["compile_seconds"],
        "run_seconds": s["run_seconds"],
        "eval_seconds": s["eval_seconds"],
        "host_env_seconds": s.get("host_env_seconds"),
        "versions": spec.get("versions", {}),
        "reference": REFERENCE.get(label),
    }


def _short(task: str) -> str:
    return task.removesuffix("-v3").removesuffix("-v2")


def per_task_table(records: list[dict]) -> list[str]:
    """Markdown: a row per method, the mean success over seeds per task, then each seed's mean over tasks."""
    tasks = records[0]["tasks"]
    lines = [
        "| method | " + " | ".join(_short(t) for t in tasks) + " | mean per seed | published (full budget) |",
        "|---|" + "---:|" * (len(tasks) + 2),
    ]
    for r in records:
        per_task = np.asarray(r["success"]).mean(axis=0)
        seeds = ", ".join(f"{m:.2f}" for m in r["mean_per_seed"])
        ref = f"{r['reference']:.2f}" if r["reference"] is not None else "-"
        lines.append(f"| {r['label']} | " + " | ".join(f"{v:.2f}" for v in per_task) + f" | {seeds} | {ref} |")
    return lines


def budget_text(args) -> str:
    return (
        f"{args.steps:,} env steps per task ({NUM_TASKS * args.steps:,} per run, 1 env per task, Meta-World "
        f"MT10, 500-step episodes, reward function v2), {args.seeds} seeds per row vmapped in one program, "
        f"{args.num_evals} evaluations of {args.eval_episodes} episodes per task (Meta-World's protocol); "
        f"config {json.dumps({k: v for k, v in (GPU if args.gpu else CPU).items()})} plus each row's fields"
    )


def write_table(labels: list[str], args) -> Path | None:
    """The results file over the finished cells (``partial`` when some are missing) and its ``.json``."""
    done = [(lb, ROWS[lb]) for lb in labels if (run_dir_of(ROWS[lb], args) / "summary.json").exists()]
    from jaxrl.run.recorder import is_finished

    done = [(lb, row) for lb, row in done if is_finished(run_dir_of(row, args))]
    missing = [lb for lb in labels if lb not in dict(done)]
    if not done:
        print("no finished cell yet: no table", flush=True)
        return None
    records = [cell_record(lb, row, run_dir_of(row, args), args) for lb, row in done]
    name = "metaworld_mt10_gpu" if args.gpu else "metaworld_mt10"
    out = Path(args.out_dir) / f"{name}.md"
    v = records[0]["versions"]
    notes = [
        *([f"**Partial**: not finished by the time the table was written: {', '.join(missing)}.", ""] * bool(missing)),
        f"Score: `{METRIC}` per task at the last evaluation (Meta-World's evaluation protocol: deterministic "
        "policy, episodes end at the first success, success = `success` at any step); strata = the 10 tasks. "
        f"Meta-World {v.get('metaworld')}, MuJoCo {v.get('mujoco')}, gymnasium {v.get('gymnasium')}.",
        "",
        "Per-task success (mean over seeds) and each seed's mean over tasks; the published column is the full "
        "budget's (2M steps per task, older Meta-World releases; see experiments/metaworld_mt10.py), not this one's:",
        "",
        *per_task_table(records),
        "",
        "At this budget (0.15% of the published one) the rows are not separated: every IQM is 0 (most tasks "
        "are at 0 success in every run) and the mean success CIs overlap; drawer-close is the task learnt first.",
        "",
        "Cells (run directory: command; compile + training + evaluation seconds; env steps per run; training "
        "throughput, env steps per second of both seeds together, host stepping and updates included):",
        "",
        *(
            f"- {r['label']} (`{r['run_dir']}`): `{r['command']}`; {r['compile_seconds']:.0f} + "
            f"{r['run_seconds']:.0f} + {r['eval_seconds']:.0f} s; {r['env_steps_per_run']:,} env steps; "
            f"{r['env_steps_per_second']:.0f} env-steps/s"
            for r in records
        ),
    ]
    title = f"Meta-World MT10{' (partial)' * bool(missing)}: {'published' if args.gpu else 'CPU'} budget"
    dirs = [_relative(run_dir_of(row, args)) for _, row in done]
    result = write_results(
        dirs, out, title=title, budget=budget_text(args), by=["run_dir"], metric=METRIC, notes=notes, reps=args.reps
    )
    write_store(out, result, budget=budget_text(args), missing=missing, cells=records)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated labels of {list(ROWS)}")
    ap.add_argument("--gpu", "--full", action="store_true", help="metaworld-algorithms' published MT10 budget")
    ap.add_argument("--steps", type=int, default=None, help="env steps per task (default 5000; --gpu 2M)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per row (default 2; --gpu 10)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (one seed per process: --seeds 1 --seed K)")
    ap.add_argument("--num-evals", type=int, default=None, help="evaluations per run (default 2; --gpu 100)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="per task (default 10; --gpu 50)")
    ap.add_argument("--table-only", action="store_true", help="only write the table from the finished cells")
    ap.add_argument("--print", action="store_true", help="only print each row's `jaxrl train` command")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--runs", default=None, help="root of the run directories (<runs>/<row>/)")
    ap.add_argument("--out-dir", default=str(RESULTS), help="where the results file goes")
    args = ap.parse_args(argv)
    for name, value in (GPU_RUN if args.gpu else CPU_RUN).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.runs = args.runs or str(RUNS / ("metaworld_mt10_gpu" if args.gpu else "metaworld_mt10"))
    unknown = [r for r in args.rows.split(",") if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}: choose from {list(ROWS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    labels = args.rows.split(",")
    if args.print:
        for lb in labels:
            print(f"# {lb}\njaxrl {shlex.join(cli_argv(ROWS[lb], _relative(run_dir_of(ROWS[lb], args)), args))}")
        return 0
    if not args.table_only:
        from jaxrl.envs.metaworld import import_metaworld

        import_metaworld()  # a clear ImportError naming the extra before anything runs
        for lb in labels:
            run_cell(ROWS[lb], args)
    write_table(labels, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
