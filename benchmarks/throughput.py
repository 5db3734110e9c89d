"""Training throughput of jaxrl PPO (CartPole-v1) and SAC (Pendulum-v1), side by side with rejax 0.1.3.

For each (algorithm, library, number of runs) the whole training of all runs is one compiled program,
``jit(vmap(lambda key: scan(step, init(key), length=num_iterations)))(keys)`` for jaxrl and
``jit(vmap(train, in_axes=(None, 0)))(algo, keys)`` for rejax, with no evaluation inside it. Reported:

* env-steps/s and gradient updates/s, summed over the runs, from the median of ``--repeats`` timed calls after
  ``--warmup`` untimed ones;
* compile time (``lower(...).compile()``), apart from run time;
* peak host memory (``ru_maxrss`` of the worker process, one fresh process per measurement) and the device's
  peak bytes in use where the backend reports it (GPUs);
* scaling with the number of runs in one program (``--runs``, default 1 8 64 256): for these the training length
  per run is cut so each timed call does about the same total work (throughput is what they measure);
* final return: a separate run of ``--seeds`` full-length trainings per library, evaluated after training with
  the same protocol for both (128 episodes per run, a sampled action: rejax's ``evaluate``); jaxrl's own
  deterministic evaluation is reported beside it.

Both libraries get the same hyperparameters and network sizes (``SETTINGS`` below; rejax's names are mapped in
``benchmarks/peers/rejax_throughput.py``). rejax runs in its own virtual environment
(``bash benchmarks/setup_rejax_env.sh``), as a subprocess fed the job as JSON.

    python benchmarks/throughput.py [--quick] [--runs 1 8 64 256] [--algos ppo sac] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import sidebyside  # run from benchmarks/ (as the peers' workers are)

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = HERE / ".venv-rejax" / "bin" / "python"

# One set of hyperparameters per algorithm, given to both libraries. PPO: rejax's defaults for its PPO (which
# reach ~470 on CartPole in 500k steps) with tanh; no gradient clipping (rejax's default; its clip is element-wise,
# jaxrl's is by global norm, so "off" is the one setting that means the same in both), no learning-rate decay
# (rejax has none). SAC: 64x64 networks (rejax's default size), jaxrl's learning rate and Polyak rate.
SETTINGS = {
    "ppo": {
        "env": "CartPole-v1",
        "num_envs": 64,
        "num_steps": 64,
        "num_epochs": 8,
        "num_minibatches": 16,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_eps": 0.2,
        "vf_coef": 0.5,
        "ent_coef": 0.01,
        "hidden": [64, 64],
        "activation": "tanh",
        "max_grad_norm": None,
    },
    "sac": {
        "env": "Pendulum-v1",
        "num_envs": 1,
        "batch_size": 256,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "tau": 0.005,
        "hidden": [64, 64],
        "activation": "relu",
        "updates_per_step": 1,
    },
}

# Per mode: (total env steps per call summed over runs, in the scaling sweep), (env steps per run, seeds) of the
# final-return run.
MODES = {
    "full": {
        "ppo": {"sweep_total": 4 * 2**20, "return_steps": 500_000 // 4096 * 4096, "seeds": 8},
        "sac": {"sweep_total": 32_768, "return_steps": 20_000, "seeds": 8},
    },
    "quick": {
        "ppo": {"sweep_total": 2**18, "return_steps": 500_000 // 4096 * 4096, "seeds": 4},
        "sac": {"sweep_total": 4_096, "return_steps": 20_000, "seeds": 4},
    },
}


# ------------------------------------------------------------------------------------------------ jaxrl worker
def jaxrl_config(algo_name: str, s: dict, total_env_steps: int):
    from jaxrl.algos.single import ppo, sac

    if algo_name == "ppo":
        return ppo.Config(
            num_envs=s["num_envs"],
            num_steps=s["num_steps"],
            num_epochs=s["num_epochs"],
            num_minibatches=s["num_minibatches"],
            learning_rate=s["learning_rate"],
            gamma=s["gamma"],
            gae_lambda=s["gae_lambda"],
            clip_eps=s["clip_eps"],
            vf_coef=s["vf_coef"],
            ent_coef=s["ent_coef"],
            hidden=tuple(s["hidden"]),
            activation=s["activation"],
            anneal_lr=False,
            # None: off, as in rejax (jaxrl's inf computes no norm)
            max_grad_norm=s["max_grad_norm"] if s["max_grad_norm"] is not None else float("inf"),
            total_env_steps=total_env_steps,
        )
    return sac.Config(
        num_envs=s["num_envs"],
        batch_size=s["batch_size"],
        buffer_size=s["buffer_size"],
        learning_starts=s["learning_starts"],
        learning_rate=s["learning_rate"],
        discount=s["gamma"],
        tau=s["tau"],
        hidden=tuple(s["hidden"]),
        activation=s["activation"],
        updates_per_step=s["updates_per_step"],
        total_env_steps=total_env_steps,
    )


def jaxrl_worker(job: dict) -> dict:
    import jax
    import numpy as np

    from jaxrl import envs
    from jaxrl.algos.common import _base_stack, max_episode_steps
    from jaxrl.algos.single import ppo, sac
    from jaxrl.data import rollout as rollout_lib
    from jaxrl.envs.wrappers import VmapEnv

    algo_name, s, runs = job["algo"], job["settings"], job["runs"]
    module = {"ppo": ppo, "sac": sac}[algo_name]
    env, env_params = envs.make(s["env"])
    cfg = jaxrl_config(algo_name, s, job["total_env_steps"])
    algo = module.make(cfg, env, env_params)
    n_iter = cfg.num_iterations
    keys = jax.random.split(jax.random.PRNGKey(job.get("seed", 0)), runs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def train_one(key):
        state, _ = jax.lax.scan(lambda st, _: algo.step(st), algo.init(key), None, length=n_iter)
        return state

    train = jax.jit(jax.vmap(train_one))
    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - t0

    times = []
    for i in range(job["warmup"] + job["repeats"]):
        t0 = time.perf_counter()
        state = jax.block_until_ready(compiled(keys))
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t0)

    out = {
        "compile_s": compile_s,
        "times_s": times,
        "rss_before_compile_mb": rss_before,
        "iterations": n_iter,
        "env_steps_per_run": n_iter * cfg.env_steps_per_iteration,
        "program": sidebyside.program_cost(compiled),
    }
    out["updates_per_run"] = (
        n_iter * cfg.num_epochs * cfg.num_minibatches if algo_name == "ppo" else n_iter * cfg.updates_per_step
    )
    if job.get("evaluate"):
        episodes = job.get("eval_episodes", 128)
        eval_env = VmapEnv(_base_stack(env, env_params), episodes)
        horizon = max_episode_steps(env_params)

        def ev(st, key):  # the peer's protocol: sampled actions, `episodes` episodes, mean return
            policy = lambda obs, k: algo.act(st, obs, k, deterministic=False)
            return rollout_lib.evaluate(eval_env, env_params, policy, key, episodes, horizon).mean()

        eval_keys = jax.random.split(jax.random.PRNGKey(job.get("seed", 0) + 1_000_003), runs)
        out["final_return_per_run"] = np.asarray(jax.jit(jax.vmap(ev))(state, eval_keys)).tolist()
        det = jax.jit(jax.vmap(lambda st, k: algo.evaluate(st, k, episodes)))(state, eval_keys)
        out["final_return_deterministic_per_run"] = np.asarray(det).tolist()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None
    import importlib.metadata as md

    out["versions"] = {p: md.version(p) for p in ("jaxrl", "gymnax", "jax", "jaxlib", "flax", "optax")}
    return out


# ------------------------------------------------------------------------------------------------ orchestration
def hardware() -> dict:
    import jax

    from jaxrl.run.recorder import host_cpu

    cpu = host_cpu()
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = None
    return {
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "cpu_model": cpu["model"],
        "cpu_isa": cpu["isa"],  # XLA:CPU compiles for these: timings and bits depend on them
        "cpu_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# jaxlib 0.10.2's CPU runtime can hang (all threads idle, never returning) in jaxrl's vmapped SAC program when
# XLA's concurrency-optimized scheduler is on (seen with 8 runs x 1200 steps, learning_starts=1000); turning
# that scheduler off avoids it. Both libraries' workers get the same flags.
DEFAULT_XLA_FLAGS = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def run_job(python: str, argv: list[str], job: dict, timeout: float, xla_flags: str = DEFAULT_XLA_FLAGS) -> dict:
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if xla_flags:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla_flags).strip()
    proc = subprocess.run([python, *argv, json.dumps(job)], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][len("RESULT ") :])
    out["process_wall_s"] = time.perf_counter() - t0
    return out


def summarize(res: dict, runs: int) -> dict:
    import statistics

    med = statistics.median(res["times_s"])
    res["median_s"] = med
    res["env_steps_per_s"] = runs * res["env_steps_per_run"] / med
    res["updates_per_s"] = runs * res["updates_per_run"] / med
    if "final_return_per_run" in res:
        res["final_return_mean"] = statistics.fmean(res["final_return_per_run"])
    if "final_return_deterministic_per_run" in res:
        res["final_return_deterministic_mean"] = statistics.fmean(res["final_return_deterministic_per_run"])
    return res


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [
        f"# Throughput: jaxrl vs rejax ({report['mode']} mode)",
        "",
        f"Hardware: {hw['cpu_model']}, {hw['usable_cores']} usable cores ({hw['cpu_cores']} seen), "
        f"{hw['memory_gb']} GiB; JAX devices {', '.join(hw['devices'])}. jax {report['versions'].get('jax')}.",
        f"Timed calls: median of {report['repeats']} after {report['warmup']} warm-up "
        f"(final-return rows: 1 timed call). Sums over the runs in one program. "
        f"XLA_FLAGS for both: `{report['xla_flags']}`.",
        "",
    ]
    lines += [
        "| algo | library | runs | env steps/run | env-steps/s | updates/s | compile s | run s (median) "
        "| peak RSS MB | device peak MB | final return | jaxrl deterministic return |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(
                f"| {r['algo']} | {r['library']} | {r['runs']} | {r.get('kind', '')} | error: "
                f"{r['error'].splitlines()[-1][:80]} |||||||"
            )
            continue
        rnd = f", round {r['round']}" if r.get("round") is not None and r["kind"] == "sweep" else ""
        lines.append(
            f"| {r['algo']} | {r['library']} | {r['runs']}{' (returns)' if r['kind'] == 'returns' else rnd} "
            f"| {r['env_steps_per_run']} | {r['env_steps_per_s']:,.0f} | {r['updates_per_s']:,.1f} "
            f"| {r['compile_s']:.1f} | {r['median_s']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {fmt(r.get('device_peak_mb'), '.0f')} "
            f"| {fmt(r.get('final_return_mean'), '.1f')} | {fmt(r.get('final_return_deterministic_mean'), '.1f')} |"
        )
    if report.get("ratios"):
        lines += [
            "",
            f"jaxrl / rejax env-steps/s (same algo, runs, length), over {report.get('rounds', 1)} rounds with the "
            "libraries alternating; a ratio is stated only when the rounds agree within 15% "
            "(`benchmarks/sidebyside.py`). Rates: median over rounds (min-max).",
            "",
            "| algo | runs | kind | jaxrl env-steps/s | rejax env-steps/s | jaxrl / rejax | load (1 min) |",
            "|---|---:|---|---:|---:|---|---:|",
        ]
        for q in report["ratios"]:
            lines.append(
                f"| {q['algo']} | {q['runs']} | {q['kind']} | {sidebyside.rate_text(q, 'jaxrl')} "
                f"| {sidebyside.rate_text(q, 'rejax')} | {sidebyside.ratio_text(q)} | {sidebyside.load_text(q)} |"
            )
    lines += program_table(report["results"])
    lines += ["", "Settings (both libraries):", "", "```", json.dumps(report["settings"], indent=1), "```", ""]
    return "\n".join(lines)


def program_table(results: list) -> list[str]:
    """The compiled training programs side by side (``sidebyside.program_cost``): the same algorithm and settings
    should cost the same; a difference here is work one library does and the other does not."""
    first = {}
    for r in results:
        if "program" in r and r.get("kind") == "sweep":
            first.setdefault((r["algo"], r["runs"], r["library"]), r["program"])
    if not first:
        return []
    lines = [
        "",
        "Compiled training programs (XLA cost analysis, a loop body counted once; load-independent):",
        "",
        "| algo | runs | library | GFLOP | MB accessed | transcendentals | fused kernels | while loops | HLO lines |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (algo, runs, lib), p in first.items():
        lines.append(
            f"| {algo} | {runs} | {lib} | {fmt(p['flops'] and p['flops'] / 1e9, '.4f')} "
            f"| {fmt(p['bytes_accessed'] and p['bytes_accessed'] / 1e6, '.2f')} | {fmt(p['transcendentals'], ',.0f')} "
            f"| {p['fusions']} | {p['while_loops']} | {p['hlo_lines']} |"
        )
    return lines


def write_report(args, mode: str, hw: dict, results: list, t_start: float) -> str:
    """Write the JSON and markdown reports for the results so far (called after every measurement)."""
    ratios = []
    for key in dict.fromkeys((r["algo"], r["runs"], r["kind"]) for r in results):
        per = {
            lib: [r for r in results if (r["algo"], r["runs"], r["kind"]) == key and r["library"] == lib]
            for lib in ("jaxrl", "rejax")
        }
        if per["jaxrl"] and per["rejax"]:
            summary = sidebyside.summarize(per, "env_steps_per_s")
            ratios.append({"algo": key[0], "runs": key[1], "kind": key[2], **summary})
    versions = next((r["versions"] for r in results if r["library"] == "jaxrl" and "versions" in r), {})
    peer_versions = next((r["versions"] for r in results if r["library"] == "rejax" and "versions" in r), {})
    report = {
        "mode": mode,
        "hardware": hw,
        "xla_flags": args.xla_flags,
        "versions": versions,
        "peer_versions": peer_versions,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "settings": SETTINGS,
        "modes": MODES[mode],
        "results": results,
        "ratios": ratios,
        "rounds": args.rounds,
        "total_seconds": time.perf_counter() - t_start,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md_text = markdown(report)
    out.with_suffix(".md").write_text(md_text)
    return md_text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller totals and 4 seeds for returns (< ~15 min on 2 cores)")
    p.add_argument("--runs", type=int, nargs="+", default=[1, 8, 64, 256], help="runs per program in the sweep")
    p.add_argument("--algos", nargs="+", default=["ppo", "sac"], choices=["ppo", "sac"])
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
    p.add_argument("--rounds", type=int, default=3, help="side-by-side rounds per sweep measurement, alternating")
    p.add_argument("--seeds", type=int, default=None, help="runs in the final-return measurement")
    p.add_argument("--no-returns", action="store_true", help="skip the full-length final-return runs")
    p.add_argument("--no-peer", action="store_true", help="measure jaxrl only")
    p.add_argument("--peer-python", default=os.environ.get("REJAX_PYTHON", str(DEFAULT_PEER_PYTHON)))
    p.add_argument("--out", default=str(HERE / "results" / "throughput"), help="output path without extension")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    p.add_argument("--xla-flags", default=DEFAULT_XLA_FLAGS, help="XLA_FLAGS added for both libraries' workers")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(jaxrl_worker(json.loads(args.worker))), flush=True)
        return

    mode = "quick" if args.quick else "full"
    hw = hardware()
    print(f"hardware: {json.dumps(hw)}", flush=True)
    peer = not args.no_peer
    if peer and not Path(args.peer_python).exists():
        sys.exit(
            f"rejax environment not found at {args.peer_python}: run `bash benchmarks/setup_rejax_env.sh` "
            "first, or pass --no-peer"
        )
    libraries = {"jaxrl": (sys.executable, [str(Path(__file__).resolve()), "--worker"])}
    if peer:
        libraries["rejax"] = (args.peer_python, [str(HERE / "peers" / "rejax_throughput.py")])

    jobs = []
    for algo in args.algos:
        m, s = MODES[mode][algo], SETTINGS[algo]
        per_iter = s["num_envs"] * (s.get("num_steps", 1))
        if not args.no_returns:
            steps = m["return_steps"] // per_iter * per_iter
            jobs.append(("returns", algo, args.seeds or m["seeds"], steps, 0, 1, True))
        for runs in args.runs:
            steps = max(per_iter, m["sweep_total"] // runs // per_iter * per_iter)
            jobs.append(("sweep", algo, runs, steps, args.warmup, args.repeats, False))

    results, t_start = [], time.perf_counter()
    for kind, algo, runs, steps, warmup, repeats, evaluate in jobs:
        settings = dict(SETTINGS[algo])
        if kind == "sweep" and algo == "sac":
            settings["learning_starts"] = 0  # every env step does its update: short sweep runs time updates
        job = {
            "algo": algo,
            "settings": settings,
            "runs": runs,
            "total_env_steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "evaluate": evaluate,
            "eval_episodes": 128,
            "seed": 0,
        }

        def measure(lib, r, job=job, kind=kind, algo=algo, runs=runs):
            python, argv0 = libraries[lib]
            row = {"kind": kind, "algo": algo, "library": lib, "runs": runs}
            try:
                row.update(summarize(run_job(python, argv0, job, args.timeout, args.xla_flags), runs))
                print(
                    f"[{time.perf_counter() - t_start:6.0f}s] {algo} {lib:5s} runs={runs:3d} {kind:7s} round {r} "
                    f"steps/run={row['env_steps_per_run']:>7d} env-steps/s={row['env_steps_per_s']:>10,.0f} "
                    f"updates/s={row['updates_per_s']:>9,.1f} compile={row['compile_s']:5.1f}s "
                    f"median={row['median_s']:.3f}s (times {[f'{t:.3f}' for t in row['times_s']]}) "
                    f"peakRSS={row['peak_rss_mb']:.0f}MB"
                    + (f" return={row['final_return_mean']:.1f}" if "final_return_mean" in row else ""),
                    flush=True,
                )
            except Exception as e:  # keep going: one failed measurement should not lose the others
                row["error"] = str(e)
                print(
                    f"[{time.perf_counter() - t_start:6.0f}s] {algo} {lib} runs={runs} {kind}: FAILED {e}", flush=True
                )
            row["loadavg_1m"] = os.getloadavg()[0]  # other work on the machine skews the timings
            results.append(row)
            write_report(args, mode, hw, results, t_start)  # partial results survive an interrupted run
            return row

        # the long final-return runs once; the timed sweep in alternating rounds (benchmarks/sidebyside.py)
        sidebyside.run_rounds(measure, list(libraries), 1 if kind == "returns" else args.rounds, "env_steps_per_s")

    print(write_report(args, mode, hw, results, t_start))


if __name__ == "__main__":
    main()
