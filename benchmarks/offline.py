"""Offline RL throughput: gradient updates per second per algorithm (one run), median of repeats, compile time
apart from run time, on a small generated-style Pendulum dataset (random policy rows; the data do not change the
cost of an update).

    python benchmarks/offline.py [--algos bc,sac_offline,iql,cql,td3_bc,awac] [--repeats 5] [--updates 2000]
        [--batch-size 256] [--hidden 256,256] [--runs 1] [--out results.json]

``--runs R`` vmaps R runs (seeds) in one program and reports updates/s summed over runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def bench(name: str, env, env_params, *, updates: int, repeats: int, batch_size: int, hidden, runs: int) -> dict:
    from jaxrl import algos

    module = algos.get(name)
    per_iter = 100
    cfg = module.Config(hidden=tuple(hidden), batch_size=batch_size, updates_per_iteration=per_iter,
                        total_env_steps=updates)
    algo = module.make(cfg, env, env_params)
    iters = updates // per_iter

    def train_chunk(state):
        return jax.lax.scan(lambda s, _: (algo.step(s)[0], None), state, None, length=iters)[0]

    init = jax.jit(jax.vmap(algo.init))
    chunk = jax.jit(jax.vmap(train_chunk))
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    t0 = time.perf_counter()
    state = init(keys)
    compiled = chunk.lower(state).compile()
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = jax.block_until_ready(compiled(state))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"algo": name, "updates_per_run": iters * per_iter, "runs": runs, "compile_seconds": compile_s,
            "median_seconds": med, "updates_per_second": iters * per_iter * runs / med,
            "repeat_seconds": times}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", default="bc,sac_offline,iql,cql,td3_bc,awac")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    import jaxrl.envs
    from jaxrl.algos.offline.common import make_offline_env
    from jaxrl.data import dataset as ds
    from jaxrl.run.generate import rollout_dataset

    env, params = jaxrl.envs.make("Pendulum-v1")
    data = rollout_dataset(env, params, None, jax.random.PRNGKey(0), a.size,
                           info=ds.DatasetInfo(name="bench", kind="random", env_name="Pendulum-v1",
                                               random_return=-1200.0, expert_return=-150.0))
    offline_env, env_params = make_offline_env(data)
    hidden = tuple(int(h) for h in a.hidden.split(","))
    results = {"device": str(jax.devices()[0]), "platform": platform.processor() or platform.machine(),
               "jax": jax.__version__, "batch_size": a.batch_size, "hidden": hidden, "results": []}
    print(f"device {results['device']}, batch {a.batch_size}, hidden {hidden}, runs {a.runs}")
    for name in a.algos.split(","):
        r = bench(name, offline_env, env_params, updates=a.updates, repeats=a.repeats, batch_size=a.batch_size,
                  hidden=hidden, runs=a.runs)
        results["results"].append(r)
        print(f"{name:12s} {r['updates_per_second']:10.0f} updates/s  (median of {a.repeats}: "
              f"{r['median_seconds']:.2f} s for {r['updates_per_run']} x {r['runs']}; compile "
              f"{r['compile_seconds']:.1f} s)", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
