"""RL^2 bandit table (Duan et al. 2016, table 1): mean total reward per trial of n pulls on k-armed Bernoulli
bandits with arm means i.i.d. U[0, 1]; rows random, greedy, epsilon-greedy, UCB1, Thompson (jaxrl.algos.meta.
bandit_baselines) and RL^2 (trained here, evaluated on held-out tasks).

    python experiments/rl2_bandits.py                      # the small cells (n = 10), 3 seeds
    python experiments/rl2_bandits.py --cells all          # every cell at the paper's scale (n = 100: a GPU)
    python experiments/rl2_bandits.py --cells big --budget cpu --seeds 1   # n = 100 at a CPU budget

Writes experiments/results/rl2_bandits.md. RL^2 numbers: mean (and spread) over seeds of the final meta-test
``eval_return`` (``--eval-trials`` trials on each of 200 held-out tasks per seed).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import time

import jax
import numpy as np

import jaxrl.envs as envs
from jaxrl.algos.meta import bandit_baselines as bb
from jaxrl.algos.meta import rl2
from jaxrl.run import train

SMALL = [(10, 5), (10, 10)]
BIG = [(100, 5), (100, 10)]

# RL^2 configs per cell (pulls n, arms k). The n = 100 ones follow the paper's scale (GRU 256, 50-100M steps):
# hours on a GPU. CPU_CONFIGS are what a 2-core CPU can run in minutes (GRU 64, a few million steps); their
# results are labelled with the budget in the table.
CONFIGS = {
    (10, 5): rl2.Config(num_tasks=256, episodes_per_trial=10, hidden_size=64, total_env_steps=1_500_000),
    (10, 10): rl2.Config(num_tasks=256, episodes_per_trial=10, hidden_size=64, total_env_steps=3_000_000),
    (100, 5): rl2.Config(num_tasks=128, episodes_per_trial=100, hidden_size=256, num_minibatches=4,
                         gae_lambda=0.3, total_env_steps=50_000_000),
    (100, 10): rl2.Config(num_tasks=128, episodes_per_trial=100, hidden_size=256, num_minibatches=4,
                          gae_lambda=0.3, total_env_steps=100_000_000),
}
CPU_CONFIGS = {
    **{cell: CONFIGS[cell] for cell in SMALL},
    (100, 5): rl2.Config(num_tasks=128, episodes_per_trial=100, hidden_size=64, num_minibatches=4, gae_lambda=0.3,
                         total_env_steps=30_720_000),
    (100, 10): rl2.Config(num_tasks=128, episodes_per_trial=100, hidden_size=64, num_minibatches=4, gae_lambda=0.3,
                          total_env_steps=30_720_000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", choices=("small", "big", "all"), default="small")
    parser.add_argument("--budget", choices=("paper", "cpu"), default="paper",
                        help="RL^2 configs: the paper's scale, or a CPU budget for the n = 100 cells")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-tasks", type=int, default=10_000, help="tasks for the baseline rows")
    parser.add_argument("--eval-trials", type=int, default=10)
    parser.add_argument("--total-env-steps", type=int, default=None, help="override the RL^2 budget per cell")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any rl2.Config field in every cell (repeatable), e.g. --set hidden_size=256")
    parser.add_argument("--out", default=None, help="default results/rl2_bandits.md (paper budget) or "
                        "results/rl2_bandits_cpu_budget.md")
    args = parser.parse_args()
    cells = {"small": SMALL, "big": BIG, "all": SMALL + BIG}[args.cells]
    configs = CPU_CONFIGS if args.budget == "cpu" else CONFIGS
    if args.total_env_steps:
        configs = {cell: dataclasses.replace(cfg, total_env_steps=args.total_env_steps) for cell, cfg in configs.items()}
    if args.set:
        fields = {f: ast.literal_eval(v) for f, _, v in (s.partition("=") for s in args.set)}
        configs = {cell: dataclasses.replace(cfg, **fields) for cell, cfg in configs.items()}
    if args.out is None:
        name = "rl2_bandits_cpu_budget.md" if args.budget == "cpu" else "rl2_bandits.md"
        args.out = os.path.join(os.path.dirname(__file__), "results", name)
    settings = SMALL + BIG

    rows: dict[str, dict] = {}
    key = jax.random.key(0)
    for r, (name, fn) in enumerate(bb.BASELINES.items()):
        rows[name] = {}
        for c, (n, k) in enumerate(settings):
            mean, se = bb.mean_total_reward(fn, jax.random.fold_in(key, 100 * r + c), num_arms=k, num_pulls=n,
                                            num_tasks=args.num_tasks)
            rows[name][(n, k)] = f"{float(mean):.2f}"
    label = "RL^2 (this run)" if args.budget == "paper" else "RL^2 (this run, CPU budget)"
    rows[label] = {}
    notes = []
    for n, k in settings:
        if (n, k) not in cells:
            rows[label][(n, k)] = "not run"
            continue
        cfg = configs[(n, k)]
        start = time.perf_counter()
        res = train("rl2", envs.make("bandit", num_arms=k, num_test_tasks=200), cfg, seeds=args.seeds,
                    num_chunks=5, eval_episodes=args.eval_trials, progress=False, checkpoint=False,
                    tensorboard=False)
        wall = time.perf_counter() - start
        final = np.asarray(res.metrics["eval_return"])[..., -1].reshape(-1)
        rows[label][(n, k)] = f"{final.mean():.2f} ± {final.std():.2f}"
        notes.append(f"- n={n}, k={k}: per-seed {np.round(final, 3).tolist()}, {cfg.total_env_steps:,} env steps per "
                     f"seed, {wall:.0f} s wall for {args.seeds} vmapped seeds (compile included)")
        print(notes[-1], flush=True)
    paper = {(10, 5): "6.7", (10, 10): "6.7", (100, 5): "78.7", (100, 10): "83.5"}
    header = "| method | " + " | ".join(f"n={n}, k={k}" for n, k in settings) + " |"
    lines = ["# RL^2 bandit table (Duan et al. 2016, table 1)", "",
             f"Host: {platform.processor() or platform.machine()}, jax {jax.__version__}, backend "
             f"{jax.default_backend()}.", "", header, "|" + "---|" * (len(settings) + 1)]
    for name, vals in rows.items():
        lines.append(f"| {name} | " + " | ".join(vals[s] for s in settings) + " |")
    lines.append("| RL^2 (paper) | " + " | ".join(paper[s] for s in settings) + " |")
    lines += ["", "RL^2 runs:", *notes, "", "Configs (rl2.Config) per cell:"]
    lines += [f"- n={n}, k={k}: `{configs[(n, k)]}`" for n, k in settings]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
