"""D4RL-style table on generated datasets: rows env x kind, columns algorithms, normalised score (last and best)
as mean +- std over seeds. Each (algorithm, env) trains all seeds x kinds as ONE program (the kinds are a
`dataset_index` grid over stacked datasets).

    python experiments/offline_table.py [--env Pendulum-v1] [--kinds medium,medium-replay,medium-expert]
        [--algos bc,iql,cql,td3_bc] [--seeds 3] [--updates 10000] [--size 10000] [--behaviour-steps 20000]
        [--data-dir DIR] [--out table.md]

Datasets are generated once (one SAC behaviour run) and cached as HDF5 under --data-dir.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def make_or_load(env_name: str, kinds, data_dir: Path, size: int, behaviour_steps: int, seed: int = 0):
    from jaxrl.data import formats
    from jaxrl.run import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: data_dir / f"{env_name}-{k}.hdf5" for k in kinds}
    missing = [k for k, p in paths.items() if not p.exists()]
    if missing:
        made = generate.make_datasets(env_name, list(generate.KINDS), size=size, seed=seed,
                                      total_env_steps=behaviour_steps, num_chunks=40)
        for k, d in made.items():
            formats.save(d, data_dir / f"{env_name}-{k}.hdf5")
    return [str(paths[k]) for k in kinds]


def run_table(env_name="Pendulum-v1", kinds=("medium", "medium-replay", "medium-expert"),
              algo_names=("bc", "iql", "cql", "td3_bc"), seeds=3, updates=10_000, size=10_000,
              behaviour_steps=20_000, data_dir="datasets", hidden=(64, 64), num_chunks=10):
    from jaxrl import algos
    from jaxrl.algos.offline.common import load_offline_env
    from jaxrl.run import train

    paths = make_or_load(env_name, kinds, Path(data_dir), size, behaviour_steps)
    env = load_offline_env(paths)
    table = {}
    for name in algo_names:
        module = algos.get(name)
        cfg = module.Config(hidden=tuple(hidden), total_env_steps=updates, updates_per_iteration=100)
        t0 = time.perf_counter()
        result = train(name, env, cfg, seeds=seeds, grid={"dataset_index": list(range(len(kinds)))},
                       num_chunks=num_chunks, eval_episodes=10, progress=False)
        wall = time.perf_counter() - t0
        scores = result.metrics["normalized_score"]  # [seeds, kinds, chunks]
        for i, kind in enumerate(kinds):
            last, best = scores[:, i, -1], scores[:, i].max(axis=-1)
            table[(kind, name)] = dict(last=last.tolist(), best=best.tolist())
        table[("_wall", name)] = wall
        print(f"{name}: {wall:.0f} s (compile {result.summary['compile_seconds']:.0f} s)", flush=True)
    return table


def format_table(table, env_name, kinds, algo_names) -> str:
    head = "| dataset | " + " | ".join(f"{a} last | {a} best" for a in algo_names) + " |"
    lines = [head, "|" + " --- |" * (1 + 2 * len(algo_names))]
    for kind in kinds:
        cells = []
        for a in algo_names:
            r = table[(kind, a)]
            cells += [f"{np.mean(r['last']):.1f} ± {np.std(r['last']):.1f}",
                      f"{np.mean(r['best']):.1f} ± {np.std(r['best']):.1f}"]
        lines.append(f"| {env_name}-{kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--kinds", default="medium,medium-replay,medium-expert")
    p.add_argument("--algos", default="bc,iql,cql,td3_bc")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--updates", type=int, default=10_000)
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--behaviour-steps", type=int, default=20_000)
    p.add_argument("--data-dir", default="datasets")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    kinds, names = a.kinds.split(","), a.algos.split(",")
    table = run_table(a.env, kinds, names, a.seeds, a.updates, a.size, a.behaviour_steps, a.data_dir)
    text = format_table(table, a.env, kinds, names)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
        Path(a.out).with_suffix(".json").write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in table.items()},
                                                               indent=2))


if __name__ == "__main__":
    main()
