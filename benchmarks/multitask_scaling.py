"""Multi-task scaling: MT-SAC with 1, 4, 16, 64 tasks in ONE program, and each gradient aggregator's overhead.

For every measurement a fresh worker process builds ``mt_sac`` on ``point-goal-K`` (one env per task, a per-task
batch of ``--batch``, ``learning_starts=0`` so every step updates), jits a ``lax.scan`` of ``--inner`` training
steps, and reports

* compile time (lower + compile of that program, apart from run time),
* run time: the median over ``--repeats`` of ``--inner`` steps -> updates/s (one gradient update of actor,
  critic and K temperatures per step) and env-steps/s (K envs per step),
* peak host memory (``ru_maxrss`` of the worker) and the device's peak bytes where reported (GPUs).

Targets (the issue's): compile time at 64 tasks <= 1.2x compile time at 1 task (tasks are an array axis, not
Python loops); PCGrad's step time < 2x the plain summed gradient's at 16 tasks. The aggregator rows run at
``--agg-tasks`` tasks: ``sum (no monitoring)`` is the baseline (the gradient of the summed loss, no per-task
gradients), ``sum`` adds per-task gradients and their cosine/conflict diagnostics, the rest are the
``jaxrl.grads`` aggregators on the per-task gradients of actor and critic.

    python benchmarks/multitask_scaling.py [--tasks 1 4 16 64] [--aggregators sum pcgrad ...] [--repeats 5]

Writes ``benchmarks/results/multitask_scaling.{json,md}``. No peer library implements a JAX multi-task SAC to
run side by side, so the comparison is internal (1 task vs K tasks; aggregators vs the summed gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def worker(job: dict) -> dict:
    import resource

    import jax
    import numpy as np

    from jaxrl import envs
    from jaxrl.algos.multitask import mt_sac

    suite, params = envs.make(f"point-goal-{job['tasks']}")
    cfg = mt_sac.Config(
        num_envs=job["tasks"],
        batch_size=job["batch"],
        hidden=tuple(job["hidden"]),
        learning_starts=0,
        buffer_size=job["buffer"],
        aggregator=job["aggregator"],
        monitor_conflicts=job["monitor"],
        total_env_steps=10**6,
    )
    algo = mt_sac.make(cfg, suite, params)
    state = jax.jit(algo.init)(jax.random.PRNGKey(0))
    run = jax.jit(lambda s: jax.lax.scan(lambda c, _: algo.step(c), s, None, length=job["inner"]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    compiled = run.lower(state).compile()
    compile_s = time.perf_counter() - t0
    state, _ = compiled(state)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(job["repeats"]):
        t0 = time.perf_counter()
        state, _ = compiled(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    return {
        **job,
        "compile_s": compile_s,
        "times_s": times,
        "median_s": med,
        "updates_per_s": job["inner"] / med,
        "env_steps_per_s": job["inner"] * job["tasks"] / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_compile_mb": rss_before,
        "device_peak_mb": stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None,
    }


def run_job(job: dict, timeout: float = 1200) -> dict:
    env = {**os.environ, "JAXRL_COMPILATION_CACHE": "0"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker failed for {job}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def hardware() -> dict:
    import jax

    from jaxrl.run.recorder import cpu_line, host_cpu

    return {
        "cpu": cpu_line(host_cpu()),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
    }


def markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [
        "# Multi-task scaling (MT-SAC, point-goal-K, one program)",
        "",
        f"Hardware: {hw['cpu']}, {hw['cores']} cores; JAX devices {', '.join(hw['devices'])}; jax {hw['jax']}. "
        f"Hidden {report['hidden']}, per-task batch {report['batch']}, replay {report['buffer']} per task, "
        f"{report['inner']} steps per timed call, "
        f"median of {report['repeats']} (a fresh process per row; the machine may be shared, see notes).",
        "",
        "## Tasks in one program (aggregator sum, with per-task gradient monitoring)",
        "",
        "| tasks | compile s | compile / 1 task | step ms | updates/s | env-steps/s | peak RSS MB | device peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = next((r["compile_s"] for r in report["scaling"] if r["tasks"] == 1), None)
    for r in report["scaling"]:
        ratio = f"{r['compile_s'] / base:.2f}" if base else "-"
        dev = f"{r['device_peak_mb']:.0f}" if r["device_peak_mb"] else "-"
        lines.append(
            f"| {r['tasks']} | {r['compile_s']:.1f} | {ratio} | {1e3 * r['median_s'] / r['inner']:.2f} | "
            f"{r['updates_per_s']:.0f} | {r['env_steps_per_s']:.0f} | {r['peak_rss_mb']:.0f} | {dev} |"
        )
    if report["aggregators"]:
        k = report["aggregators"][0]["tasks"]
        lines += [
            "",
            f"## Aggregator overhead at {k} tasks (step time / summed gradient without monitoring)",
            "",
            "| aggregator | compile s | step ms | overhead |",
            "|---|---|---|---|",
        ]
        base_t = next(r["median_s"] for r in report["aggregators"] if r["label"] == "sum (no monitoring)")
        for r in report["aggregators"]:
            lines.append(
                f"| {r['label']} | {r['compile_s']:.1f} | {1e3 * r['median_s'] / r['inner']:.2f} | "
                f"{r['median_s'] / base_t:.2f}x |"
            )
    lines += ["", "Targets: compile at 64 tasks <= 1.2x compile at 1 task; PCGrad overhead < 2x at 16 tasks.", ""]
    for name, (value, ok) in report["targets"].items():
        lines.append(f"- {name}: {value:.2f} -> {'met' if ok else 'NOT met'}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--agg-tasks", type=int, default=16)
    ap.add_argument("--aggregators", nargs="+", default=["sum", "pcgrad", "mgda", "cagrad", "imtl_g", "gradvac"])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--batch", type=int, default=32, help="per-task batch size")
    ap.add_argument("--inner", type=int, default=50)
    ap.add_argument("--buffer", type=int, default=10_000, help="replay capacity per task")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "multitask_scaling.md"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    common = dict(batch=args.batch, hidden=args.hidden, inner=args.inner, repeats=args.repeats, buffer=args.buffer)
    report = {"hardware": hardware(), **common, "scaling": [], "aggregators": []}
    for k in args.tasks:
        r = run_job({**common, "tasks": k, "aggregator": "sum", "monitor": True})
        report["scaling"].append(r)
        print(
            f"tasks={k:3d} compile {r['compile_s']:.1f}s  {r['updates_per_s']:.0f} updates/s  "
            f"{r['env_steps_per_s']:.0f} env-steps/s  peak RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    jobs = [("sum (no monitoring)", "sum", False)] + [(a, a, True) for a in args.aggregators]
    for label, agg, monitor in jobs:
        r = run_job({**common, "tasks": args.agg_tasks, "aggregator": agg, "monitor": monitor})
        r["label"] = label
        report["aggregators"].append(r)
        print(
            f"K={args.agg_tasks} {label:20s} compile {r['compile_s']:.1f}s  "
            f"step {1e3 * r['median_s'] / r['inner']:.2f} ms",
            flush=True,
        )
    targets = {}
    by_k = {r["tasks"]: r for r in report["scaling"]}
    if 1 in by_k and 64 in by_k:
        ratio = by_k[64]["compile_s"] / by_k[1]["compile_s"]
        targets["compile(64 tasks) / compile(1 task)"] = (ratio, ratio <= 1.2)
    aggs = {r["label"]: r for r in report["aggregators"]}
    if "pcgrad" in aggs:
        ratio = aggs["pcgrad"]["median_s"] / aggs["sum (no monitoring)"]["median_s"]
        targets[f"PCGrad step / summed-gradient step at {args.agg_tasks} tasks"] = (ratio, ratio < 2.0)
    report["targets"] = targets
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.write_text(markdown(report))
    print(out.read_text())


if __name__ == "__main__":
    main()
