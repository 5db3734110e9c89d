"""MAML meta-update cost vs task batch size (second vs first order), and RL^2 throughput.

    python benchmarks/maml.py [--batches 1,8,32,128] [--repeats 5] [--quick]

For each task batch size K and order: compile time (apart), the median wall time of one meta-iteration (data
collection + the ProMP outer steps through ``adapt``) over ``--repeats`` runs, and XLA's compiled memory
estimate (``memory_analysis``: arguments + outputs + temporaries: the peak the program needs). RL^2: env
steps per second of ``step`` on 5-armed 10-pull bandits. Writes benchmarks/results/maml.md. (A torchopt
side-by-side is not included yet.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import jax
import numpy as np

import jaxrl.envs as envs
from jaxrl.algos.meta import maml, rl2


def _time(fn, state, repeats):
    out = fn(state)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(state))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _memory(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return total / 2**20


def bench_maml(batches, repeats, base):
    family, tasks = envs.make("nav2d", num_test_tasks=4)
    rows = []
    for order in ("second", "first"):
        for k in batches:
            cfg = dataclasses.replace(base, num_tasks=k, first_order=order == "first")
            algo = maml.make(cfg, family, tasks)
            state = algo.init(jax.random.PRNGKey(0))
            t = time.perf_counter()
            compiled = jax.jit(algo.step).lower(state).compile()
            compile_s = time.perf_counter() - t
            run_s = _time(compiled, state, repeats)
            rows.append((order, k, compile_s, run_s, _memory(compiled)))
            print(rows[-1], flush=True)
    return rows


def bench_rl2(repeats):
    family, tasks = envs.make("bandit", num_test_tasks=4)
    cfg = rl2.Config(num_tasks=256, episodes_per_trial=10, hidden_size=64)
    algo = rl2.make(cfg, family, tasks)
    state = algo.init(jax.random.PRNGKey(0))
    n = 20
    many = jax.jit(lambda s: jax.lax.scan(lambda s, _: algo.step(s), s, None, length=n))
    t = time.perf_counter()
    compiled = many.lower(state).compile()
    compile_s = time.perf_counter() - t
    run_s = _time(compiled, state, repeats)
    return compile_s, n * cfg.env_steps_per_iteration / run_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="short trajectories (horizon 100, 5 per task)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "maml.md"))
    args = parser.parse_args()
    base = maml.Config(num_trajectories=5 if args.quick else 20, num_outer_epochs=5)
    rows = bench_maml([int(b) for b in args.batches.split(",")], args.repeats, base)
    rl2_compile, rl2_sps = bench_rl2(args.repeats)
    lines = ["# MAML meta-update vs task batch size", "",
             f"Host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
             f"backend {jax.default_backend()}; nav2d, horizon 100, {base.num_trajectories} trajectories per task "
             f"per phase, 1 inner step, {base.num_outer_epochs} ProMP outer steps, MLP {base.hidden}. "
             f"Median of {args.repeats} runs; compile apart. Memory: XLA's compiled estimate.", "",
             "| order | task batch K | compile s | meta-iteration s | memory MiB |", "|---|---|---|---|---|"]
    lines += [f"| {o} | {k} | {c:.1f} | {r:.3f} | {m:.1f} |" for o, k, c, r, m in rows]
    lines += ["", f"RL^2 (5 arms, 10 pulls, 256 trials per iteration, GRU 64): {rl2_sps:,.0f} env steps/s "
              f"(compile {rl2_compile:.1f} s).", ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
