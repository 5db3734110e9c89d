"""Reference rows of the RL^2 bandit table (Duan et al. 2016, table 1): classic strategies on Bernoulli bandits
with arm means i.i.d. U[0, 1]. Mean total reward per trial over many sampled tasks (one trial per task).

    python experiments/bandit_baselines.py [--num-tasks 10000] [--seed 0]

Prints a markdown table and writes experiments/results/bandit_baselines.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

from jaxrl.algos.meta import bandit_baselines as bb

SETTINGS = [(10, 5), (10, 10), (100, 5), (100, 10)]  # (pulls n, arms k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-tasks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bandit_baselines.md"))
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    start = time.perf_counter()
    results = bb.table(key, SETTINGS, num_tasks=args.num_tasks)
    elapsed = time.perf_counter() - start

    header = "| strategy | " + " | ".join(f"n={n}, k={k}" for n, k in SETTINGS) + " |"
    lines = [
        "# Bernoulli bandit baselines (RL^2 table 1 rows)",
        "",
        f"Mean total reward per trial of n pulls over {args.num_tasks} tasks with k arms, arm means i.i.d."
        " U[0, 1] (± standard error). Greedy / epsilon-greedy (epsilon = 0.1) act on the Beta(1, 1) posterior"
        " mean; UCB1 (c = 1) pulls each arm once first; Thompson sampling uses the Beta(1, 1) posterior;"
        " win-stay lose-shift (not in the RL^2 table) repeats a winning arm and leaves a losing one"
        " for a random other.",
        "",
        header,
        "|" + "---|" * (len(SETTINGS) + 1),
    ]
    for name in bb.BASELINES:
        cells = [f"{results[name][cell][0]:.2f} ± {results[name][cell][1]:.2f}" for cell in SETTINGS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Seed {args.seed}; jax {jax.__version__} on {jax.default_backend()}"
        f" ({platform.processor() or platform.machine()}); {elapsed:.1f} s including compilation.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
