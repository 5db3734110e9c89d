"""Continuous-action PPO on gymnax Pendulum-v1: the tuned configuration (4 seeds vmapped, one compiled program).

    python experiments/ppo_pendulum_sweep.py            # reproduce the final configuration
    python experiments/ppo_pendulum_sweep.py --grid '{"learning_rate": [3e-4, 1e-3]}' --set num_epochs=20

Prints the final deterministic evaluation return per seed (10 episodes each), their mean, and the env steps used.
"""

from __future__ import annotations

import argparse
import ast
import json
import time

import numpy as np

from jaxrl.algos.single import ppo
from jaxrl.run import train

# The final configuration: every field that differs from ppo.Config's defaults.
FINAL = dict(
    num_envs=16,
    num_steps=128,
    num_epochs=10,
    num_minibatches=8,
    learning_rate=3e-3,
    discount=0.9,
    gae_lambda=0.9,
    ent_coef=0.0,
    clip_value=False,
    max_grad_norm=0.5,
    normalize_observations=True,
    total_env_steps=60_000,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (tune on seeds the tests do not use)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="field=value overrides of the final config")
    parser.add_argument("--grid", default=None, help="JSON {hyperparameter: [values]} (traced fields only)")
    parser.add_argument("--num-chunks", type=int, default=10)
    args = parser.parse_args()

    fields = dict(FINAL)
    for item in args.set:
        k, v = item.split("=", 1)
        fields[k] = ast.literal_eval(v)
    cfg = ppo.Config(**fields)
    grid = json.loads(args.grid) if args.grid else None

    t0 = time.perf_counter()
    r = train(
        "ppo",
        "Pendulum-v1",
        cfg,
        seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
        grid=grid,
        num_chunks=args.num_chunks,
        progress=False,
        compilation_cache=False,
    )
    wall = time.perf_counter() - t0

    ev = r.metrics["eval_return"]  # [seeds, *grid, chunks]
    print(f"config: {fields}")
    print(f"axes {r.axes}; env steps per chunk: {r.env_steps.tolist()}")
    print(f"compile {r.summary['compile_seconds']:.1f}s  run {r.summary['run_seconds']:.1f}s  wall {wall:.1f}s")
    if grid:
        import itertools

        names = list(grid)
        for idx in itertools.product(*(range(len(grid[n])) for n in names)):
            point = {n: grid[n][i] for n, i in zip(names, idx)}
            curve = ev[(slice(None), *idx)]  # [seeds, chunks]
            print(
                f"{point}: final mean {curve[:, -1].mean():8.1f}  per-seed "
                f"{np.round(curve[:, -1], 1).tolist()}  curve(mean) {np.round(curve.mean(0), 0).tolist()}"
            )
    else:
        final = ev[:, -1]
        print(f"eval-return curve (mean over seeds): {np.round(ev.mean(0), 1).tolist()}")
        print(f"final eval return per seed: {np.round(final, 1).tolist()}")
        print(
            f"mean final eval return over {args.seeds} seeds: {final.mean():.1f}  "
            f"(env steps per seed: {r.summary['env_steps']})"
        )


if __name__ == "__main__":
    main()
