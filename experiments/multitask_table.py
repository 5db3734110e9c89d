"""Multi-task success table in the form of Meta-World's MT50 table (rows: methods; cells: mean success).

Every row is one algorithm (plus config overrides) trained on a JAX-native multi-task suite with ``--seeds``
seeds vmapped in one compiled program by ``jaxrl.run.train``; a cell is the final evaluation success averaged
over tasks, mean +- standard deviation over seeds (and the mean return). Results accumulate in
``experiments/results/multitask_table.json`` keyed by suite and row, so rows run separately (or added by other
algorithm families) land in one table, rewritten each time to ``experiments/results/multitask_table.md``.

    python experiments/multitask_table.py                                  # the default rows, both suites
    python experiments/multitask_table.py --rows MT-SAC,MT-SAC+PCGrad --suites point-goal-4 --seeds 5
    python experiments/multitask_table.py --row "MT-PPO=mt_ppo:num_envs=8"   # any registered algorithm

To add rows for another algorithm family, extend :data:`ROWS` (label -> :class:`Row`) or pass ``--row``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    algo: str  # registered algorithm name
    overrides: dict = field(default_factory=dict)  # config fields (static or hyper), applied to every suite
    total_env_steps: int | None = None  # None: the table's --steps


_SAC_LIKE = dict(num_envs=4, batch_size=64, hidden=(64, 64), learning_starts=250, buffer_size=20_000)

ROWS: dict[str, Row] = {
    "MT-SAC": Row("mt_sac", dict(_SAC_LIKE, init_alpha=0.1)),
    "Multi-head MT-SAC": Row("mh_sac", dict(_SAC_LIKE, init_alpha=0.1)),
    "MT-SAC + PCGrad": Row("mt_sac", dict(_SAC_LIKE, init_alpha=0.1, aggregator="pcgrad")),
    "Distral (task policies)": Row("distral", dict(_SAC_LIKE)),
    # on-policy rows (multi-task part B): more env steps, as on-policy methods need
    "MT-PPO": Row("mt_ppo", dict(num_envs=8, num_steps=64), total_env_steps=200_000),
    "MT-TRPO": Row("mt_trpo", dict(num_envs=8, num_steps=64), total_env_steps=200_000),
    "TE-PPO": Row("te_ppo", dict(num_envs=8, num_steps=64), total_env_steps=200_000),
}
DERIVED = {"Distral (distilled pi_0)": ("Distral (task policies)", "_shared")}  # a second output of one run
SUITES = ("point-goal-4", "point-goal-4-sparse")


def parse_row(text: str) -> tuple[str, Row]:
    """``LABEL=algo[:field=value,field=value]`` (values parsed as JSON where possible)."""
    label, _, spec = text.partition("=")
    algo, _, fields = spec.partition(":")
    overrides = {}
    for item in filter(None, fields.split(",")):
        k, _, v = item.partition("=")
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    if not label or not algo:
        raise SystemExit(f"--row {text!r}: expected LABEL=algo[:field=value,...]")
    return label, Row(algo, overrides)


def run_row(label: str, row: Row, suite: str, seeds: int, steps: int) -> dict:
    from jaxrl import algos
    from jaxrl.config import replace
    from jaxrl.run import train

    module = algos.get(row.algo)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in row.overrides.items()}
    cfg = replace(module.Config(), total_env_steps=row.total_env_steps or steps, **overrides)
    t0 = time.perf_counter()
    result = train(row.algo, suite, cfg, seeds=seeds, num_chunks=4, progress=False, tensorboard=False, checkpoint=False)
    wall = time.perf_counter() - t0
    out = {
        "algo": row.algo,
        "overrides": row.overrides,
        "seeds": seeds,
        "env_steps": result.summary["env_steps"],
        "wall_seconds": wall,
        "compile_seconds": result.summary["compile_seconds"],
    }
    for suffix in ("", "_shared"):
        if f"eval_success{suffix}" not in result.summary:
            continue
        success = np.asarray(result.summary[f"eval_success{suffix}"], float).reshape(seeds, -1)  # [seeds, tasks]
        ret = np.asarray(result.summary[f"eval_return{suffix}"], float).reshape(seeds, -1)
        out[f"success{suffix}"] = success.mean(-1).tolist()  # per seed, averaged over tasks
        out[f"success_per_task{suffix}"] = success.mean(0).tolist()
        out[f"return{suffix}"] = ret.mean(-1).tolist()
    print(
        f"{suite:22s} {label:28s} success {np.mean(out['success']):.3f} +- {np.std(out['success']):.3f} "
        f"return {np.mean(out['return']):.2f} ({wall:.0f} s)",
        flush=True,
    )
    return out


def write_markdown(results: dict, path: Path) -> None:
    suites = [s for s in SUITES if s in results] + sorted(s for s in results if s not in SUITES)
    labels: list[str] = []
    for s in suites:
        for label in results[s]:
            if label not in labels:
                labels.append(label)
    for derived, (base, _) in DERIVED.items():
        if base in labels and derived not in labels:
            labels.insert(labels.index(base) + 1, derived)
    lines = [
        "# Multi-task success (MT50-style table, JAX-native suites)",
        "",
        "Final evaluation success rate (%), averaged over the suite's tasks; mean +- std over seeds (vmapped "
        "in one program). Return in brackets. Produced by `experiments/multitask_table.py`.",
        "",
        "| Method | " + " | ".join(suites) + " |",
        "|---" * (len(suites) + 1) + "|",
    ]
    for label in labels:
        cells = []
        for s in suites:
            base, suffix = DERIVED.get(label, (label, ""))
            r = results.get(s, {}).get(base)
            if r is None or f"success{suffix}" not in r:
                cells.append("-")
                continue
            succ, ret = 100 * np.asarray(r[f"success{suffix}"]), np.asarray(r[f"return{suffix}"])
            cells.append(f"{succ.mean():.1f} +- {succ.std():.1f} ({ret.mean():.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Runs:", ""]
    for s in suites:
        for label, r in results[s].items():
            lines.append(
                f"- {s}, {label}: `{r['algo']}` {json.dumps(r['overrides'])}, {r['seeds']} seeds, "
                f"{r['env_steps']} env steps per run, {r['wall_seconds']:.0f} s wall "
                f"(compile {r['compile_seconds']:.0f} s); per-task success "
                f"{[round(x, 2) for x in r['success_per_task']]}"
            )
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated labels of ROWS ({list(ROWS)})")
    ap.add_argument("--row", action="append", default=[], help="extra row LABEL=algo[:field=value,...]")
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20_000, help="env steps per run (all tasks together)")
    ap.add_argument("--out", default=str(RESULTS / "multitask_table.md"))
    args = ap.parse_args(argv)
    if args.seeds < 5:
        print("note: the table's protocol is >= 5 seeds", file=sys.stderr)
    rows = {label: ROWS[label] for label in filter(None, args.rows.split(","))}
    rows.update(parse_row(text) for text in args.row)
    out = Path(args.out)
    store = out.with_suffix(".json")
    results = json.loads(store.read_text()) if store.exists() else {}
    for suite in filter(None, args.suites.split(",")):
        for label, row in rows.items():
            results.setdefault(suite, {})[label] = run_row(label, row, suite, args.seeds, args.steps)
            out.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(results, indent=1))
            write_markdown(results, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
