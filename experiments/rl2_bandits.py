"""RL^2 bandit table (Duan et al. 2016, table 1): mean total reward per trial of n pulls on k-armed Bernoulli
bandits with arm means i.i.d. U[0, 1]; rows random, greedy, epsilon-greedy, UCB1, Thompson, win-stay lose-shift
(jaxrl.algos.meta.bandit_baselines) and RL^2 (trained here, evaluated on held-out tasks).

    python experiments/rl2_bandits.py                     # the small cells (n = 10), 3 seeds: minutes
    python experiments/rl2_bandits.py --cells 100x5       # one n = 100 cell: ~10 min per seed on one CPU core
    python experiments/rl2_bandits.py --cells all         # every cell

Each RL^2 cell's result is kept in experiments/results/rl2_bandits.json, so cells can run as separate processes
(one per core) and the table, experiments/results/rl2_bandits.md, is rebuilt from all cells run so far. RL^2
numbers: mean (and spread) over seeds of the final meta-test ``eval_return`` (``--eval-trials`` trials on each of
200 held-out tasks per seed). How the n = 100 recipe was found: results/rl2_bandits_n100_sweep.md.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrl.envs as envs
from jaxrl.algos.meta import bandit_baselines as bb
from jaxrl.algos.meta import rl2
from jaxrl.run import train

SMALL = [(10, 5), (10, 10)]
BIG = [(100, 5), (100, 10)]
RESULTS = os.path.join(os.path.dirname(__file__), "results")

# RL^2 configs per cell (pulls n, arms k). For n = 100 the entropy bonus (0.05, not 0.01) and an embedding layer
# before the GRU take RL^2 past win-stay lose-shift, the memoryless policy it otherwise settles on
# (rl2_bandits_n100_sweep.md).
_N100 = dict(
    num_tasks=128, episodes_per_trial=100, hidden_size=64, embed=(64,), ent_coef=0.05, total_env_steps=61_440_000
)
CONFIGS = {
    (10, 5): rl2.Config(num_tasks=256, episodes_per_trial=10, hidden_size=64, total_env_steps=1_500_000),
    (10, 10): rl2.Config(num_tasks=256, episodes_per_trial=10, hidden_size=64, total_env_steps=3_000_000),
    (100, 5): rl2.Config(**_N100),
    (100, 10): rl2.Config(**_N100),
}
PAPER = {(10, 5): "6.7", (10, 10): "6.7", (100, 5): "78.7", (100, 10): "83.5"}
HELD_OUT_TASKS = 200
RL2 = "RL^2 (this library)"


def _cells(spec: str) -> list[tuple[int, int]]:
    named = {"none": [], "small": SMALL, "big": BIG, "all": SMALL + BIG}
    if spec in named:
        return named[spec]
    cells = []
    for part in spec.split(","):
        n, _, k = part.partition("x")
        if not (n.isdigit() and k.isdigit()) or (int(n), int(k)) not in CONFIGS:
            raise SystemExit(
                f"--cells {spec!r}: use none, small, big, all or a comma list of cells from "
                f"{[f'{n}x{k}' for n, k in CONFIGS]}"
            )
        cells.append((int(n), int(k)))
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells",
        default="small",
        help="small, big, all, cells like 100x5,100x10, or none (rebuild the table from the JSON)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-tasks", type=int, default=10_000, help="tasks for the baseline rows")
    parser.add_argument("--eval-trials", type=int, default=10)
    parser.add_argument("--total-env-steps", type=int, default=None, help="override the RL^2 budget per cell")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any rl2.Config field in every cell (repeatable), e.g. --set hidden_size=256",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(RESULTS, "rl2_bandits.md"),
        help="the table; the per-cell RL^2 results go next to it as .json",
    )
    args = parser.parse_args()
    cells = _cells(args.cells)
    configs = dict(CONFIGS)
    if args.total_env_steps:
        configs = {
            cell: dataclasses.replace(cfg, total_env_steps=args.total_env_steps) for cell, cfg in configs.items()
        }
    if args.set:
        fields = {f: ast.literal_eval(v) for f, _, v in (s.partition("=") for s in args.set)}
        configs = {cell: dataclasses.replace(cfg, **fields) for cell, cfg in configs.items()}
    settings = SMALL + BIG

    key = jax.random.key(0)
    rows: dict[str, dict] = {}
    for name, by_cell in bb.table(key, settings, num_tasks=args.num_tasks, tuned=True).items():
        label = f"{name} (tuned)" if name in bb.TUNABLE else name
        rows[label] = {
            cell: f"{mean:.2f}" + ("" if value is None else f" ({bb.TUNABLE[name][0]} {value:g})")
            for cell, (mean, _, value) in by_cell.items()
        }

    new = {}
    for n, k in cells:
        cfg = configs[(n, k)]
        start = time.perf_counter()
        res = train(
            "rl2",
            envs.make("bandit", num_arms=k, num_test_tasks=HELD_OUT_TASKS),
            cfg,
            seeds=args.seeds,
            num_chunks=5,
            eval_episodes=args.eval_trials,
            progress=False,
            checkpoint=False,
            tensorboard=False,
        )
        final = np.asarray(res.metrics["eval_return"])[..., -1].reshape(-1)
        new[f"{n}x{k}"] = {
            "per_seed": np.round(final, 3).tolist(),
            "env_steps": cfg.total_env_steps,
            "wall_s": round(time.perf_counter() - start),
            "seeds": args.seeds,
            "config": str(cfg),
            "host": f"{platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.default_backend()}",
        }
        print(f"n={n}, k={k}: {new[f'{n}x{k}']}", flush=True)
    cache = os.path.splitext(args.out)[0] + ".json"
    done = json.load(open(cache)) if os.path.exists(cache) else {}
    done.update(new)  # read-merge-write at the end: cells may run as parallel processes
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(cache, "w") as f:
        json.dump(done, f, indent=1)

    rows[RL2] = {}
    notes = []
    for n, k in settings:
        run = done.get(f"{n}x{k}")
        if run is None:
            rows[RL2][(n, k)] = "not run"
            continue
        final = np.asarray(run["per_seed"])
        rows[RL2][(n, k)] = f"{final.mean():.2f} ± {final.std():.2f}"
        # The held-out tasks are a small sample: greedy on those same tasks (50 trials each) is the like-for-like
        # reference.
        held_out = envs.make("bandit", num_arms=k, num_test_tasks=HELD_OUT_TASKS)[1].arm_means
        same = bb.total_rewards(bb.greedy_trial, jax.random.fold_in(key, n * k), jnp.repeat(held_out, 50, 0), n)
        notes.append(
            f"- n={n}, k={k}: per-seed {run['per_seed']} (greedy on the same held-out tasks: "
            f"{float(same.mean()):.2f}), {run['env_steps']:,} env steps per seed, "
            f"{run['wall_s']} s wall for {run['seeds']} vmapped seeds (compile included; {run['host']})\n"
            f"  `{run['config']}`"
        )
    header = "| method | " + " | ".join(f"n={n}, k={k}" for n, k in settings) + " |"
    lines = [
        "# RL^2 bandit table (Duan et al. 2016, table 1)",
        "",
        "Mean total reward per trial. Baseline rows: "
        f"{args.num_tasks} tasks per cell (experiments/bandit_baselines.py has their standard errors); "
        "epsilon-greedy and UCB1 have their parameter tuned per cell on other tasks, as in the paper (the "
        "value chosen in brackets); win-stay lose-shift is not in the paper's table. RL^2: final meta-test "
        f"on {HELD_OUT_TASKS} held-out tasks, mean ± std over seeds.",
        "",
        header,
        "|" + "---|" * (len(settings) + 1),
    ]
    for name, vals in rows.items():
        lines.append(f"| {name} | " + " | ".join(vals[s] for s in settings) + " |")
    lines.append("| RL^2 (paper) | " + " | ".join(PAPER[s] for s in settings) + " |")
    lines += ["", "RL^2 runs and their configs (rl2.Config):", *notes]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
