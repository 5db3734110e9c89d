"""The multi-task table (the form of Meta-World's MT10/MT50 tables): a row per method, a column per JAX-native suite,
every cell through run directories and ``jaxrl report`` (IQM and mean of the final per-task evaluation success
with 95% stratified bootstrap CIs over seeds x tasks, per-task success bars, gradient conflict per chunk).

    python experiments/multitask_table.py                                    # every row, every available suite
    python experiments/multitask_table.py --rows MT-SAC,PaCo --suites skills-10 --seeds 5
    python experiments/multitask_table.py --quick                            # tiny budget, 2 seeds, 2 rows

Budget (defaults, per suite in ``BUDGETS``): on the point-goal suites, as the earlier point-goal-4 table, 5,000 env
steps per task for the off-policy rows (1 env per task) and 50,000 per task for the on-policy rows (2 envs per task);
on ``skills-10`` ten times that. 5 seeds, 4 chunks, 10 evaluation episodes per task. ``--steps`` / ``--pg-steps``
set one budget for every suite (the header of every results file states the budget it ran at).

Rows: MT-SAC, MH-SAC, MT-SAC + PCGrad / CAGrad / MGDA, Soft Modularization, CARE, MOORE and PaCo (MT-SAC with
``network=...``), Distral (task policies ``pi_i``; its distilled ``pi_0`` is a second row from the same runs),
MT-PPO, MT-TRPO, TE-PPO. Suites: ``point-goal-4`` (the easy column), ``point-goal-4-sparse`` and ``skills-10`` (the
non-saturating suite; a suite the registry does not know yet is skipped with a note).

Each row x suite is one program (its seeds vmapped) in its own run directory,
``experiments/results/runs/multitask/<suite>/<row>/``: a finished one is kept, a stopped one resumes from its
checkpoint when the command is run again. Per suite, ``experiments/results/multitask_<suite>.md`` is ``jaxrl
report``'s table over that suite's run directories (figures and CSV in ``multitask_<suite>/``), and
``experiments/results/multitask_table.md`` gathers the IQM [95% CI] of every row x suite in one table (it replaces
the earlier mean +- std table and its JSON store).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import results_table
from results_table import RUNS, hardware, write_results

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = ("point-goal-4", "point-goal-4-sparse", "skills-10")
# env steps per task, (off-policy rows, on-policy rows): skills-10, the suite meant not to saturate, gets ten times
# the point-goal budget (fixed with the suite's design, before any method's score on it)
BUDGETS = {"point-goal-4": (5_000, 50_000), "point-goal-4-sparse": (5_000, 50_000), "skills-10": (50_000, 500_000)}
METRIC = "eval_success"


@dataclass(frozen=True)
class Row:
    slug: str  # its run directory's name (the group label of the per-suite reports)
    algo: str  # registered algorithm name
    overrides: dict = field(default_factory=dict)  # config fields, applied on every suite
    on_policy: bool = False  # budget: --pg-steps instead of --steps; 2 envs per task instead of 1


# 1 env per task; each task's buffer holds its whole run (config_of)
_SAC = dict(batch_size=64, hidden=(64, 64), learning_starts=250)
_MT_SAC = dict(_SAC, init_alpha=0.1)
_PG = dict(num_steps=64)  # 2 envs per task

ROWS: dict[str, Row] = {
    "MT-SAC": Row("mt-sac", "mt_sac", _MT_SAC),
    "MH-SAC": Row("mh-sac", "mh_sac", _MT_SAC),
    "MT-SAC + PCGrad": Row("mt-sac+pcgrad", "mt_sac", dict(_MT_SAC, aggregator="pcgrad")),
    "MT-SAC + CAGrad": Row("mt-sac+cagrad", "mt_sac", dict(_MT_SAC, aggregator="cagrad")),
    "MT-SAC + MGDA": Row("mt-sac+mgda", "mt_sac", dict(_MT_SAC, aggregator="mgda")),
    "Soft Modularization": Row("soft-modularization", "mt_sac", dict(_MT_SAC, network="soft_modularization")),
    "CARE": Row("care", "mt_sac", dict(_MT_SAC, network="care")),
    "MOORE": Row("moore", "mt_sac", dict(_MT_SAC, network="moore")),
    "PaCo": Row("paco", "mt_sac", dict(_MT_SAC, network="paco")),
    "Distral": Row("distral", "distral", _SAC),
    "MT-PPO": Row("mt-ppo", "mt_ppo", _PG, on_policy=True),
    "MT-TRPO": Row("mt-trpo", "mt_trpo", _PG, on_policy=True),
    "TE-PPO": Row("te-ppo", "te_ppo", _PG, on_policy=True),
}
DISTRAL_SHARED = "Distral (distilled pi_0)"  # the same runs' eval_success_shared
# The published MT10 ordering (the Soft Modularization, CARE, MOORE and PaCo papers' tables): each stage below the
# next; the last stage's methods are not ordered among themselves.
PUBLISHED_ORDER = (("MT-SAC",), ("MH-SAC",), ("MT-SAC + PCGrad",), ("Soft Modularization", "CARE", "MOORE", "PaCo"))
# --quick: a budget that only checks the pipeline (the golden cases' tiny networks)
QUICK_ROWS = ("MT-SAC", "MT-PPO")
QUICK = {
    False: dict(batch_size=16, hidden=(8,), learning_starts=2, buffer_size=256),
    True: dict(num_steps=8, hidden=(16,), num_minibatches=2),
}


def num_tasks(suite: str) -> int:
    import jaxrl.envs

    return int(jaxrl.envs.make(suite)[0].num_tasks)


def budget_of(suite: str, args) -> tuple[int, int]:
    """Env steps per task on ``suite``, (off-policy rows, on-policy rows): ``--steps`` / ``--pg-steps`` where given,
    else the suite's ``BUDGETS`` (``--quick``: a few steps)."""
    off, on = (12, 16) if args.quick else BUDGETS.get(suite, (5_000, 50_000))
    return args.steps or off, args.pg_steps or on


def config_of(row: Row, suite: str, args):
    """The row's config on ``suite``: its overrides, 1 (off-policy) or 2 (on-policy) envs per task, and the budget
    per task times the suite's number of tasks."""
    from jaxrl import algos
    from jaxrl.config import replace

    k = num_tasks(suite)
    off, on = budget_of(suite, args)
    steps = k * (on if row.on_policy else off)
    # off-policy rows keep every transition of the run: each task's buffer holds that task's whole stream
    buffer = {} if row.on_policy else {"buffer_size": off}
    overrides = {**row.overrides, **buffer, **(QUICK[row.on_policy] if args.quick else {})}
    return replace(algos.get(row.algo).Config(), num_envs=(2 if row.on_policy else 1) * k, total_env_steps=steps,
                   **overrides)  # fmt: skip


def run_cell(row: Row, suite: str, args) -> Path:
    """The row's run directory on ``suite``: kept if finished, resumed if stopped, else trained."""
    cfg = config_of(row, suite, args)
    return results_table.run_cell(Path(args.runs) / suite / row.slug, row.algo, suite, cfg, seeds=args.seeds,
                                  num_chunks=args.chunks, eval_episodes=args.eval_episodes)  # fmt: skip


def available(suite: str) -> bool:
    import jaxrl.envs

    try:
        jaxrl.envs.make(suite)
    except ValueError:
        return False
    return True


def cell_notes(rows: dict[str, Row], dirs: list[Path], quick: bool) -> list[str]:
    """Per row: algorithm, overrides, env steps and wall time (from each run directory's summary.json)."""
    notes = ["Rows (run directory: algorithm, config overrides, env steps per run, compile + run seconds):", ""]
    for (label, row), run_dir in zip(rows.items(), dirs):
        s = json.loads((run_dir / "summary.json").read_text())
        overrides = {**row.overrides, **(QUICK[row.on_policy] if quick else {})}
        notes.append(
            f"- {label} (`{row.slug}`): `{row.algo}` {json.dumps(overrides)}, {s['env_steps']:,} env steps, "
            f"{s['compile_seconds']:.0f} + {s['run_seconds']:.0f} s"
            + results_table.resumed_seconds_caveat(s.get("run_seconds_from_iteration"))
            + results_table.run_note(run_dir)
        )
    return notes


def _mean(row: dict) -> str:
    low, high = row["mean_ci"]
    return f"{row['mean']:.3f} [{low:.3f}, {high:.3f}]"


def ordering(cells: dict[str, dict]) -> list[str]:
    """The rows by mean final success [95% CI], which rows' CIs lie clear of which, and each step of the published
    MT10 ordering as measured (the mean, not the IQM: the IQM of a suite's success saturates at 1 for most rows)."""
    ranked = sorted(cells, key=lambda label: -cells[label]["mean"])
    lines = ["## Ordering", "", "By mean final success [95% CI]: "]
    lines[-1] += " > ".join(f"{label} {_mean(cells[label])}" for label in ranked) + "."
    clear = {a: [b for b in ranked if cells[a]["mean_ci"][0] > cells[b]["mean_ci"][1]] for a in ranked}
    pairs = sum(map(len, clear.values()))
    lines += ["", f"Rows whose 95% CI lies above another's ({pairs} of {len(ranked) * (len(ranked) - 1) // 2} pairs):"]
    lines += [f"- {a} above {', '.join(below)}" for a, below in clear.items() if below] or ["- none"]
    steps = [(low, high) for lows, highs in zip(PUBLISHED_ORDER, PUBLISHED_ORDER[1:]) for low in lows for high in highs]
    steps = [(low, high) for low, high in steps if low in cells and high in cells]
    if steps:
        diffs = {(low, high): cells[high]["mean"] - cells[low]["mean"] for low, high in steps}
        verdicts = [
            f"{high} > {low}: {'as published' if d > 0 else ('tied' if d == 0 else 'reversed')} "
            f"({d:+.3f}{', CIs clear' if low in clear[high] else ''})"
            for (low, high), d in diffs.items()
        ]
        published = " < ".join(" / ".join(stage) for stage in PUBLISHED_ORDER)
        held = sum(d > 0 for d in diffs.values())
        lines += ["", f"The published MT10 ordering ({published}), step by step: {held} of its {len(steps)} steps hold "
                  "here. " + "; ".join(verdicts) + "."]  # fmt: skip
    outside = [label for label in ranked if not any(label in stage for stage in PUBLISHED_ORDER)]
    if outside:
        lines += ["", f"Not in the published ordering: {', '.join(outside)}."]
    return lines


def table_suite(suite: str, rows: dict[str, Row], args) -> dict[str, dict]:
    """Run (or keep, or resume) every row on ``suite``, write ``multitask_<suite>.md``; returns per row label the
    report's group row (IQM, mean and their CIs)."""
    from jaxrl.run.report import report

    dirs = [run_cell(row, suite, args) for row in rows.values()]
    k = num_tasks(suite)
    off, on = budget_of(suite, args)
    budget = (
        f"{off:,} env steps per task (off-policy rows: {k * off:,} per run, 1 env per task), "
        f"{on:,} per task (on-policy rows: {k * on:,} per run, 2 envs per task); {k} tasks; "
        f"{args.seeds} seeds per row, vmapped in one program; {args.chunks} chunks; "
        f"{args.eval_episodes} evaluation episodes per task per chunk"
    )
    notes = [
        f"Score: `{METRIC}` per task at the last chunk (deterministic policy); strata = the suite's tasks.",
        *cell_notes(rows, dirs, args.quick),
    ]
    distral = [d for d, row in zip(dirs, rows.values()) if row.algo == "distral"]
    shared = report(distral, metric=f"{METRIC}_shared", reps=args.reps)["groups"][0] if distral else None
    if shared:
        notes += ["", f"{DISTRAL_SHARED} (the Distral runs' `{METRIC}_shared`): IQM {_cell(shared)}."]
    out = Path(args.out_dir) / f"multitask_{suite}.md"

    def by_label(result: dict) -> dict[str, dict]:
        by_slug = {row["group"]: row for row in result["groups"]}
        return {label: by_slug[row.slug] for label, row in rows.items()} | ({DISTRAL_SHARED: shared} if shared else {})

    result = write_results(
        dirs, out, title=f"Multi-task success on {suite}", budget=budget, by=["run_dir"], metric=METRIC,
        notes=notes, findings=lambda result: ordering(by_label(result)), reps=args.reps,
    )  # fmt: skip
    cells = by_label(result)
    print(f"{suite}: " + ", ".join(f"{k} {v['iqm']:.2f}" for k, v in cells.items()), flush=True)
    return cells


def _cell(row: dict) -> str:
    low, high = row["iqm_ci"]
    return f"{100 * row['iqm']:.0f} [{100 * low:.0f}, {100 * high:.0f}]"


def write_overview(cells: dict[str, dict[str, dict]], labels: list[str], args) -> Path:
    """``multitask_table.md``: IQM [95% CI] of the final success (%) per row x suite, linking the suite reports."""
    suites = list(cells)
    lines = [
        "# Multi-task success (MT10/MT50-style table, JAX-native suites)",
        "",
        f"IQM of the final per-task evaluation success (%) over {args.seeds} seeds x the suite's tasks, [95% "
        "stratified bootstrap CI] (`jaxrl report`). Budgets, per-task success bars, probability of improvement and "
        "gradient conflict per chunk: "
        + ", ".join(f"[{s}](multitask_{s}.md)" for s in suites)
        + f". Hardware: {hardware()}. Command: `python {' '.join(sys.argv)}`.",
        "",
        "| Method | " + " | ".join(suites) + " |",
        "| --- |" + " --- |" * len(suites),
    ]
    for label in labels:
        lines.append(
            f"| {label} | " + " | ".join(_cell(cells[s][label]) if label in cells[s] else "-" for s in suites) + " |"
        )
    out = Path(args.out_dir) / "multitask_table.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=None, help=f"comma-separated labels of ROWS (default: all): {list(ROWS)}")
    ap.add_argument("--suites", default=None, help=f"comma-separated suite names (default {','.join(SUITES)})")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per row (default 5; --quick: 2)")
    ap.add_argument("--steps", type=int, default=None, help=f"env steps per task, off-policy rows (default {BUDGETS})")
    ap.add_argument("--pg-steps", type=int, default=None, help="env steps per task, on-policy rows (default BUDGETS)")
    ap.add_argument("--chunks", type=int, default=None, help="evaluations (and checkpoints) per run (default 4)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes per task (default 10)")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--quick", action="store_true", help="check the pipeline: tiny budget, 2 seeds, 2 rows")
    ap.add_argument("--runs", default=None, help="root of the run directories (<runs>/<suite>/<row>/)")
    ap.add_argument("--out-dir", default=None, help="where the results files go (default experiments/results)")
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = dict(seeds=(5, 2), chunks=(4, 2), eval_episodes=(10, 1))  # budgets: budget_of
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.rows = args.rows or ",".join(QUICK_ROWS if quick else ROWS)
    args.suites = args.suites or ("point-goal-4" if quick else ",".join(SUITES))
    args.runs = args.runs or str(RUNS / ("multitask_quick" if quick else "multitask"))
    args.out_dir = args.out_dir or (args.runs if quick else str(RESULTS))
    unknown = [r for r in args.rows.split(",") if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}: choose from {list(ROWS)}")
    if args.seeds < 5 and not quick:
        print("note: the table's protocol is >= 5 seeds", file=sys.stderr)
    return args


def main(argv=None) -> dict[str, dict[str, dict]]:
    args = parse_args(argv)
    rows = {label: ROWS[label] for label in args.rows.split(",")}
    os.makedirs(args.out_dir, exist_ok=True)
    cells = {}
    for suite in filter(None, args.suites.split(",")):
        if not available(suite):
            print(f"note: suite {suite!r} is not registered (yet): skipped", file=sys.stderr)
            continue
        cells[suite] = table_suite(suite, rows, args)
    labels = [label for label in rows] + ([DISTRAL_SHARED] if "Distral" in rows else [])
    if cells:
        print(write_overview(cells, labels, args).read_text())
    return cells


if __name__ == "__main__":
    main()
