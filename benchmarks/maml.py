"""MAML meta-update cost vs task batch size (second vs first order), and RL^2 throughput.

    python benchmarks/maml.py [--batches 1,8,32,128] [--repeats 5] [--quick]

For each task batch size K and order: compile time (apart), the median wall time of one meta-iteration (data
collection + the ProMP outer steps through ``adapt``) over ``--repeats`` runs, and XLA's compiled memory
estimate (``memory_analysis``: arguments + outputs + temporaries: the peak the program needs). RL^2: env
steps per second of ``step`` on 5-armed 10-pull bandits. Writes benchmarks/results/maml.md.

    python benchmarks/maml.py --peer [--peer-repeats 5] [--peer-rounds 3] [--peer-threads 1] [--peer-python PY]

Side by side with torchopt 0.7.3 (PyTorch 2.13.0 CPU, its own environment: ``bash benchmarks/setup_torch_env.sh``;
``benchmarks/peers/torchopt_maml.py``): one meta-update on nav2d, 20 tasks x 20 trajectories x 100 steps, 2x100
tanh MLP Gaussian policy, one inner DiCE step (second or first order), one outer ProMP-clipped Adam step,
rollouts included. Every measurement is a fresh worker process fed a JSON job; jaxrl and torchopt workers
alternate (``--peer-rounds`` rounds of [jaxrl second, torchopt second, jaxrl first, torchopt first]) so both
share the machine's load. jaxrl: ``jit(algo.step)`` compiled apart (``lower().compile()``), one warm-up call, then
the median of ``--peer-repeats`` timed calls; torchopt: one warm-up meta-update, then the median of
``--peer-repeats``. Writes benchmarks/results/maml_vs_torchopt.{md,json}. ``--profile DIR`` writes a
``jax.profiler`` trace of 3 jaxrl meta-updates (second order) and prints the per-op time totals.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


HERE = Path(__file__).resolve().parent
DEFAULT_TORCH_PYTHON = HERE / ".venv-torch" / "bin" / "python"

# The side-by-side configuration (issue 5's benchmark): given to both libraries.
PEER_CONFIG = {
    "num_tasks": 20,
    "num_trajectories": 20,
    "horizon": 100,
    "hidden": [100, 100],
    "inner_lr": 0.1,
    "outer_lr": 1e-3,
    "gamma": 0.99,
    "clip_eps": 0.3,
    "baseline_reg": 1e-5,
    "log_std_init": -0.5,
}


PEER_NOTES = """Notes:

- Both compute the same meta-update: DiCE inner step with the linear-feature baseline (rewards and baseline scaled
  by 1 / (T std(advantage))), ProMP clipped outer loss (ratio 1 at the first epoch, clip 0.3) on standardised
  advantages, one Adam step; the same initialisation scheme (orthogonal, sqrt 2 hidden, 0.01 mean head, log std
  -0.5). Differences: torchopt samples with torch's RNG (jaxrl with threefry keys), jaxrl's nav2d goes through
  gymnax's auto-reset wrapper (a reset is computed and discarded each step), and the peer loops over tasks in
  Python (the torchopt MAML-RL example's structure; each task's 20 trajectories are one batched tensor env).
- The peer's second order is `torchopt.MetaSGD.step` (create_graph inside); its first order is `torchopt.sgd` +
  `apply_updates` on gradients taken without create_graph, then `torch.func.functional_call` with the adapted
  parameters (MetaSGD has no first-order switch).
- Peer threads: `torch.set_num_threads(1)`. With torch's default (2 threads on this 2-core machine) the
  loaded machine made the peer several times slower (second order 6.4-11.9 s per meta-update vs 1.6 s with one
  thread, measured back to back before this run), so the peer gets its faster setting. XLA uses its default
  thread pool.
- jaxrl's MAML before/after the performance change in `jaxrl/algos/meta/maml.py` (the first ProMP epoch's
  meta-gradient computed with the data: each inner gradient once, through `jax.linearize`, and the
  meta-gradient as `g + alpha H g` Hessian-vector products, forward-over-reverse, instead of
  reverse-over-reverse through a recomputed `adapt`; same numbers to 1e-7 relative), same configuration,
  interleaved in one process (7 calls each): second order 0.853 -> 0.759 s at load average ~9 and
  0.492 -> 0.438 s at load ~5 (-11%; XLA memory estimate 252 -> 205 MiB), first order 0.264 -> 0.264 s and
  0.254 -> 0.231 s (XLA already shared the duplicated first-order inner gradient). Before the change the
  second-order ratio to the peer was about 2.0x (0.997 / 0.492). Per-op profile of the new program (trace of 3
  meta-updates, `--profile`, per meta-update): inner-gradient Hessian-vector pass (forward-over-reverse of the
  backward) ~250 ms, the 200 sequential rollout steps ~190 ms, inner forward with tangents ~85 ms,
  post-adaptation loss backward ~80 ms and forward ~35 ms (load ~5, profiler overhead included). Unrolling
  the rollout scan (unroll=5) was tried and not kept (within the noise: -11% second order, +6% first order).
"""


def _peer_maml_config(c: dict, first_order: bool) -> maml.Config:
    return maml.Config(
        num_tasks=c["num_tasks"],
        num_trajectories=c["num_trajectories"],
        hidden=tuple(c["hidden"]),
        horizon=c["horizon"],
        num_inner_steps=1,
        num_outer_epochs=1,
        first_order=first_order,
        inner_lr=c["inner_lr"],
        outer_lr=c["outer_lr"],
        discount=c["gamma"],
        clip_eps=c["clip_eps"],
        baseline_reg=c["baseline_reg"],
        log_std_init=c["log_std_init"],
        outer="promp",
        surrogate="dice",
        activation="tanh",
    )


def jaxrl_worker(job: dict) -> dict:
    """One jaxrl measurement in this (fresh) process: compile apart, warm-up, median of repeats."""
    import resource

    cfg = _peer_maml_config(job["config"], job["config"]["first_order"])
    family, tasks = envs.make("nav2d", num_test_tasks=4)
    algo = maml.make(cfg, family, tasks)
    state = algo.init(jax.random.PRNGKey(job.get("seed", 0)))
    t0 = time.perf_counter()
    compiled = jax.jit(algo.step).lower(state).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(job["warmup"] + job["repeats"]):
        t0 = time.perf_counter()
        state, metrics = compiled(state)
        jax.block_until_ready((state, metrics))
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t0)
    out = {
        "times_s": times,
        "compile_s": compile_s,
        "memory_mib": _memory(compiled),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "post_adaptation_return": float(metrics["post_adaptation_return"]),
    }
    if job.get("profile_dir"):
        jax.profiler.start_trace(job["profile_dir"])
        for _ in range(3):
            state, metrics = compiled(state)
            jax.block_until_ready((state, metrics))
        jax.profiler.stop_trace()
        out["profile"] = profile_summary(job["profile_dir"])
    return out


def profile_summary(trace_dir: str, top: int = 25) -> list:
    """Per-op total time (ms) from a jax.profiler trace: sum of ``dur`` per ``name`` over complete events."""
    path = sorted(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz")))[-1]
    events = json.load(gzip.open(path))["traceEvents"]
    totals: dict[str, float] = {}
    for e in events:
        if e.get("ph") == "X":
            totals[e["name"]] = totals.get(e["name"], 0.0) + e.get("dur", 0) / 1000.0
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def bench_peer(args) -> dict:
    sys.path.insert(0, str(HERE))
    from throughput import DEFAULT_XLA_FLAGS, hardware, run_job

    if not Path(args.peer_python).exists():
        sys.exit(f"torch environment not found at {args.peer_python}: run `bash benchmarks/setup_torch_env.sh`")
    libraries = {
        "jaxrl": (sys.executable, [str(Path(__file__).resolve()), "--worker"]),
        "torchopt": (args.peer_python, [str(HERE / "peers" / "torchopt_maml.py")]),
    }
    results = {(lib, order): [] for lib in libraries for order in ("second", "first")}
    loads = [_uptime()]
    print("load:", loads[0], flush=True)
    for r in range(args.peer_rounds):
        for order in ("second", "first"):
            for lib, (python, argv) in libraries.items():
                job = {
                    "config": dict(PEER_CONFIG, first_order=order == "first"),
                    "warmup": 1,
                    "repeats": args.peer_repeats,
                    "seed": r,
                    "threads": args.peer_threads,
                }
                res = run_job(python, argv, job, timeout=3600, xla_flags=DEFAULT_XLA_FLAGS)
                res["median_s"] = statistics.median(res["times_s"])
                results[(lib, order)].append(res)
                print(
                    f"round {r} {lib:8s} {order}: median {res['median_s']:.3f} s "
                    f"(times {[round(t, 3) for t in res['times_s']]}, compile {res['compile_s']:.1f} s)",
                    flush=True,
                )
        loads.append(_uptime())
        print("load:", loads[-1], flush=True)
    rows = []
    for order in ("second", "first"):
        j = [t for res in results[("jaxrl", order)] for t in res["times_s"]]
        p = [t for res in results[("torchopt", order)] for t in res["times_s"]]
        row = {
            "order": order,
            "jaxrl_median_s": statistics.median(j),
            "torchopt_median_s": statistics.median(p),
            "jaxrl_compile_s": statistics.median(res["compile_s"] for res in results[("jaxrl", order)]),
            "jaxrl_memory_mib": results[("jaxrl", order)][0]["memory_mib"],
            "jaxrl_times_s": j,
            "torchopt_times_s": p,
        }
        row["speedup"] = row["torchopt_median_s"] / row["jaxrl_median_s"]
        row["speedup_per_round"] = [
            p["median_s"] / j["median_s"] for j, p in zip(results[("jaxrl", order)], results[("torchopt", order)])
        ]
        rows.append(row)
    peer_versions = results[("torchopt", "second")][0]["versions"]
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("jax", "jaxlib", "flax", "optax")}
    return {
        "notes": PEER_NOTES,
        "config": PEER_CONFIG,
        "rows": rows,
        "hardware": hardware(),
        "load": loads,
        "versions": versions,
        "peer_versions": peer_versions,
        "torch_threads": results[("torchopt", "second")][0]["torch_threads"],
        "xla_flags": DEFAULT_XLA_FLAGS,
        "repeats": args.peer_repeats,
        "rounds": args.peer_rounds,
        "peer_threads": args.peer_threads,
    }


def write_peer_report(report: dict, out: str) -> None:
    hw, c = report["hardware"], report["config"]
    lines = [
        "# MAML meta-update: jaxrl vs torchopt (side by side, one run)",
        "",
        f"Host: {hw['cpu_model']}, {hw['usable_cores']} usable cores, {hw['memory_gb']} GiB, "
        f"{hw['platform']}, Python {hw['python']}; jaxrl on jax {report['versions']['jax']} "
        f"(backend {hw['backend']}), peer torch {report['peer_versions']['torch']} + torchopt "
        f"{report['peer_versions']['torchopt']} (torch threads: {report['torch_threads']}).",
        "",
        f"Configuration (both): nav2d, {c['num_tasks']} tasks x {c['num_trajectories']} trajectories x "
        f"{c['horizon']} steps, Gaussian policy with a {'x'.join(map(str, c['hidden']))} tanh MLP, one inner "
        f"DiCE step (alpha {c['inner_lr']}) with a linear-feature baseline, one outer ProMP-clipped Adam step "
        f"(lr {c['outer_lr']}), rollouts of the pre- and post-adaptation trajectories included.",
        "",
        f"Each number: the median over {report['rounds']} fresh worker processes x {report['repeats']} timed "
        f"meta-updates after one warm-up (jaxrl and torchopt workers alternating, so they share the load); "
        f"jaxrl's compile time (median over workers) is measured apart and is not in the meta-update time. "
        f"`torchopt / jaxrl` is the ratio of the pooled medians; `ratio per round` of each round's pair of "
        f"workers (the spread shows how much the shared machine's load moved).",
        "",
        "| order | jaxrl s / meta-update | torchopt s / meta-update | torchopt / jaxrl | jaxrl compile s "
        "| jaxrl memory MiB | ratio per round |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        per_round = ", ".join(f"{x:.2f}x" for x in r["speedup_per_round"])
        lines.append(
            f"| {r['order']} | {r['jaxrl_median_s']:.3f} | {r['torchopt_median_s']:.3f} | "
            f"{r['speedup']:.2f}x | {r['jaxrl_compile_s']:.1f} | {r['jaxrl_memory_mib']:.1f} | {per_round} |"
        )
    lines += ["", "Machine load (`uptime`) before and after each round: ", ""]
    lines += [f"- `{l}`" for l in report["load"]]
    lines += ["", report.get("notes", ""), ""]
    text = "\n".join(lines)
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="short trajectories (horizon 100, 5 per task)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "maml.md"))
    parser.add_argument("--peer", action="store_true", help="only the side-by-side with torchopt")
    parser.add_argument("--peer-python", default=os.environ.get("TORCH_PYTHON", str(DEFAULT_TORCH_PYTHON)))
    parser.add_argument("--peer-repeats", type=int, default=5)
    parser.add_argument("--peer-rounds", type=int, default=3)
    parser.add_argument(
        "--peer-threads",
        type=int,
        default=1,
        help="torch.set_num_threads for the peer (1: its fastest on the loaded 2-core machine)",
    )
    parser.add_argument("--peer-out", default=str(HERE / "results" / "maml_vs_torchopt.md"))
    parser.add_argument("--profile", default=None, help="trace 3 jaxrl second-order meta-updates into DIR")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(jaxrl_worker(json.loads(args.worker))), flush=True)
        return
    if args.profile:
        job = {"config": dict(PEER_CONFIG, first_order=False), "warmup": 1, "repeats": 3, "profile_dir": args.profile}
        res = jaxrl_worker(job)
        print(f"median {statistics.median(res['times_s']):.3f} s, compile {res['compile_s']:.1f} s")
        for name, ms in res["profile"]:
            print(f"{ms:10.1f} ms  {name}")
        return
    if args.peer:
        write_peer_report(bench_peer(args), args.peer_out)
        return
    base = maml.Config(num_trajectories=5 if args.quick else 20, num_outer_epochs=5)
    rows = bench_maml([int(b) for b in args.batches.split(",")], args.repeats, base)
    rl2_compile, rl2_sps = bench_rl2(args.repeats)
    lines = [
        "# MAML meta-update vs task batch size",
        "",
        f"Host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
        f"backend {jax.default_backend()}; nav2d, horizon 100, {base.num_trajectories} trajectories per task "
        f"per phase, 1 inner step, {base.num_outer_epochs} ProMP outer steps, MLP {base.hidden}. "
        f"Median of {args.repeats} runs; compile apart. Memory: XLA's compiled estimate.",
        "",
        "| order | task batch K | compile s | meta-iteration s | memory MiB |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {o} | {k} | {c:.1f} | {r:.3f} | {m:.1f} |" for o, k, c, r, m in rows]
    lines += [
        "",
        f"RL^2 (5 arms, 10 pulls, 256 trials per iteration, GRU 64): {rl2_sps:,.0f} env steps/s "
        f"(compile {rl2_compile:.1f} s).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
