"""Overhead of each multi-task gradient aggregator over plain summed gradients.

One full update step = per-task gradients (``jax.vmap(jax.grad(loss))`` over K tasks' batches) + aggregation
+ Adam + apply, for a 2x256 MLP regressor. The baseline is the same step with a plain sum
``tensordot(ones(K), g, 1)`` per leaf (no Gram matrix, no diagnostics; ``g.sum(0)`` is timed too); ``grads.sum()`` is
listed too (it also
computes the Gram matrix for its conflict diagnostics). Compile time is measured apart; run time is the median
over repeats (after a warm-up, aggregators interleaved) of ``--inner`` consecutive steps, per step.

    python benchmarks/aggregators.py [--tasks 4 16] [--repeats 7] [--inner 10] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl import grads

OBS_DIM, HIDDEN, OUT_DIM = 39, 256, 4  # a Meta-World-sized observation -> 2x256 -> 4


def init_mlp(key):
    sizes = (OBS_DIM, HIDDEN, HIDDEN, OUT_DIM)
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss(params, batch):
    x, y = batch
    return jnp.mean((mlp(params, x) - y) ** 2)


def plain_sum(sum_fn):
    """A bare sum over the task axis: no Gram matrix, no diagnostics."""
    return grads.Aggregator(
        lambda params: (), lambda g, state, params=None, *, key=None: (jax.tree.map(sum_fn, g), state)
    )


def aggregators(num_tasks):
    return {
        # Two spellings of the same sum; XLA on CPU compiles the reduce into a markedly slower program.
        "plain sum (baseline)": plain_sum(lambda x: jnp.tensordot(jnp.ones(x.shape[0], x.dtype), x, axes=1)),
        "plain sum, x.sum(0)": plain_sum(lambda x: x.sum(0)),
        "sum": grads.sum(),
        "mean": grads.mean(),
        "pcgrad": grads.pcgrad(),
        "gradvac": grads.gradvac(num_tasks),
        "mgda": grads.mgda(),
        "cagrad": grads.cagrad(),
        "upgrad": grads.upgrad(),
        "imtl_g": grads.imtl_g(),
    }


def make_step(agg):
    tx = optax.chain(agg, optax.adam(1e-3))

    def step(params, opt_state, batches, key):
        per_task = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batches)
        updates, opt_state = tx.update(per_task, opt_state, params, key=key)
        return optax.apply_updates(params, updates), opt_state

    return tx, jax.jit(step, donate_argnums=(0, 1))


def measure_all(aggs, num_tasks, batch, repeats, inner):
    """Compiles every step, then times them round-robin (one repeat of each in turn) so that load changes on
    a shared machine hit all aggregators alike. Returns {name: (compile_s, median step_s)}."""
    key = jax.random.key(0)
    batches = (
        jax.random.normal(jax.random.key(1), (num_tasks, batch, OBS_DIM)),
        jax.random.normal(jax.random.key(2), (num_tasks, batch, OUT_DIM)),
    )
    runs, compile_s = {}, {}
    for name, agg in aggs.items():
        tx, step = make_step(agg)
        params = init_mlp(key)
        opt_state = tx.init(params)
        start = time.perf_counter()
        compiled = step.lower(params, opt_state, batches, key).compile()
        compile_s[name] = time.perf_counter() - start
        runs[name] = [compiled, *jax.block_until_ready(compiled(params, opt_state, batches, key))]  # warm-up
    times = {name: [] for name in aggs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            run = runs[name]
            compiled, params, opt_state = run
            start = time.perf_counter()
            for i in range(inner):
                params, opt_state = compiled(params, opt_state, batches, jax.random.fold_in(key, r * inner + i))
            jax.block_until_ready(params)
            times[name].append((time.perf_counter() - start) / inner)
            run[1:] = params, opt_state
    return {name: (compile_s[name], *np.percentile(times[name], [50, 25, 75]).tolist()) for name in aggs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128, help="samples per task per step")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()

    hardware = {
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
    }
    num_params = sum(x.size for x in jax.tree.leaves(init_mlp(jax.random.key(0))))
    print(f"hardware: {hardware}")
    print(
        f"MLP {OBS_DIM}-{HIDDEN}-{HIDDEN}-{OUT_DIM} ({num_params} params), batch {args.batch}/task, "
        f"median of {args.repeats} x {args.inner} steps"
    )
    rows = []
    for num_tasks in args.tasks:
        measured = measure_all(aggregators(num_tasks), num_tasks, args.batch, args.repeats, args.inner)
        baseline = measured["plain sum (baseline)"][1]
        for name, (compile_s, step_s, p25, p75) in measured.items():
            rows.append(
                {
                    "K": num_tasks,
                    "aggregator": name,
                    "compile_s": compile_s,
                    "step_ms": 1e3 * step_s,
                    "step_ms_p25": 1e3 * p25,
                    "step_ms_p75": 1e3 * p75,
                    "overhead_x": step_s / baseline,
                }
            )
            print(
                f"K={num_tasks:3d} {name:>20}: step {1e3 * step_s:8.3f} ms  ({step_s / baseline:5.2f}x)  "
                f"compile {compile_s:6.2f} s",
                flush=True,
            )

    os.makedirs(args.out, exist_ok=True)
    setup = {
        "mlp": [OBS_DIM, HIDDEN, HIDDEN, OUT_DIM],
        "num_params": int(num_params),
        "batch_per_task": args.batch,
        "repeats": args.repeats,
        "inner_steps": args.inner,
        "optimizer": "adam",
    }
    with open(os.path.join(args.out, "aggregators.json"), "w") as f:
        json.dump({"hardware": hardware, "setup": setup, "results": rows}, f, indent=2)
    lines = [
        "# Aggregator overhead (full update step: vmap(grad) over K tasks + aggregation + Adam)",
        "",
        f"Hardware: {', '.join(hardware['devices'])} ({hardware['device_kind']}; {hardware['processor']}, "
        f"{hardware['cpu_count']} CPUs visible; jax {hardware['jax']}).",
        f"MLP {OBS_DIM}-{HIDDEN}-{HIDDEN}-{OUT_DIM} ({num_params} params), {args.batch} samples per task; "
        f"median over {args.repeats} repeats of {args.inner} steps after a warm-up (aggregators interleaved "
        "round-robin); compile time measured apart.",
        "Overhead = step time / step time with a plain summed gradient (tensordot with ones, no diagnostics) "
        "at the same K.",
        "",
        "| K | aggregator | step (ms), median | p25-p75 (ms) | overhead | compile (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['K']} | {r['aggregator']} | {r['step_ms']:.3f} | {r['step_ms_p25']:.2f}-{r['step_ms_p75']:.2f} | "
        f"{r['overhead_x']:.2f}x | {r['compile_s']:.2f} |"
        for r in rows
    ]
    with open(os.path.join(args.out, "aggregators.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}/aggregators.json and aggregators.md")


if __name__ == "__main__":
    main()
