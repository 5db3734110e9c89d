"""Offline RL throughput: gradient updates/s of jaxrl's offline algorithms, side by side with d3rlpy 2.8.1.

Three measurements, each in fresh worker processes fed the job as JSON (``--worker`` for jaxrl with this
environment's Python, ``peers/d3rlpy_offline.py`` with the d3rlpy environment's Python):

* ``peer`` (``--peer``): bc, cql, iql, awac, td3_bc in jaxrl and in d3rlpy 2.8.1 (PyTorch, CPU), in ``--rounds``
  rounds per algorithm with the libraries alternating (``sidebyside.py``: a ratio only where the rounds agree), on
  one dataset file, with the same network widths, batch size,
  learning rates and algorithm knobs (critics, sampled actions, expectile, ...), and the ratio jaxrl / d3rlpy;
* ``registry``: updates/s of one run of EVERY registered offline algorithm (modules with ``OFFLINE = True``);
* ``grid``: seeds x datasets (``--grid-seeds`` x ``--grid-datasets`` runs of ``--grid-algo``) in one vmapped program
  against the same runs one at a time (one compiled single-run program called once per run).

jaxrl: the same path as ``jaxrl.run.train`` — configs batched with ``jaxrl.run.grid.expand``,
``jit(vmap(lambda cfg, state: lax.scan(make(cfg).step, state, length=iters)))``; one timed call = ``--updates``
gradient updates per run (batch sampling included, inside the program). Compile time (``lower().compile()`` of
init and the chunk) apart; ``--warmup`` untimed calls, then the median of ``--repeats`` timed calls. d3rlpy: see
``peers/d3rlpy_offline.py`` (its ``fit`` loop: ``sample_transition_batch`` + ``update``, and update alone).

The dataset: ``--size`` rows of Pendulum-v1 under a uniform random policy (``jaxrl.run.generate.rollout_dataset``),
written once as D4RL-schema HDF5 and read by both libraries. Timing does not depend on what the data contain (every
update costs the same for any rows), so no behaviour policy is trained for it.

    python benchmarks/offline.py [--peer] [--no-registry] [--no-grid] [--repeats 5] [--updates 1000]
        [--batch-size 256] [--hidden 256,256] [--profile] [--out benchmarks/results/offline]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sidebyside  # run from benchmarks/ (as the workers are)
from throughput import (  # shared with the throughput benchmark (run from benchmarks/)
    DEFAULT_XLA_FLAGS,
    hardware,
    run_job,
)

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = HERE / ".venv-d3rlpy" / "bin" / "python"
PEER_ALGOS = ("bc", "cql", "iql", "awac", "td3_bc")
# jaxrl config fields handed to the peer (its names are mapped in peers/d3rlpy_offline.py)
PEER_FIELDS = (
    "learning_rate",
    "discount",
    "tau",
    "cql_alpha",
    "num_samples",
    "expectile",
    "inverse_temperature",
    "max_weight",
    "temperature",
    "alpha",
    "policy_noise",
    "noise_clip",
    "policy_delay",
)


# ------------------------------------------------------------------------------------------------ jaxrl worker
def make_config(module, job: dict):
    fields = {f.name for f in dataclasses.fields(module.Config)}
    kw = {
        k: v
        for k, v in {
            "hidden": tuple(job["hidden"]),
            "batch_size": job["batch_size"],
            "updates_per_iteration": job["per_iteration"],
        }.items()
        if k in fields
    }
    per_iter = kw.get("updates_per_iteration", getattr(module.Config(), "updates_per_iteration", 1))
    kw["total_env_steps"] = max(per_iter, job["updates"] // per_iter * per_iter)
    if "model_train_updates" in fields:  # model-based (mopo, morel): one iteration of model fitting first
        kw["model_train_updates"] = per_iter
        kw["total_env_steps"] += per_iter
    return module.Config(**kw)


def profile_ops(trace_dir: str, top: int = 25) -> dict:
    """Where the time of a traced call goes: the ``dur`` (us) of complete events (``ph == "X"``) in
    ``trace_dir/plugins/profile/*/*.trace.json.gz`` summed per name, leaving out the containers (Python frames
    ``$...``, ``ThunkExecutor::...``, thread-pool waits), and per kind (the name without its ``.N`` suffix:
    ``ynn_fusion`` = XLA:CPU's YNNPACK matmul fusions, ``dot``, ``multiply_add_fusion``, ...). ``wall_ms``: the
    traced call's ``block_until_ready``."""
    import glob
    import gzip
    import re

    totals: dict[str, list[float]] = {}
    wall = 0.0
    for path in glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz")):
        with gzip.open(path, "rt") as f:
            trace = json.load(f)
        for e in trace.get("traceEvents", []):
            if e.get("ph") != "X" or "dur" not in e:
                continue
            name = e.get("name", "?")
            if "block_until_ready" in name:
                wall = max(wall, float(e["dur"]) / 1e3)
            if name.startswith(("$", "ThunkExecutor", "SlinkyThreadPool")):
                continue
            t = totals.setdefault(name, [0.0, 0])
            t[0] += float(e["dur"])
            t[1] += 1
    ops = sorted(
        ({"name": k, "total_ms": v[0] / 1e3, "count": v[1]} for k, v in totals.items()), key=lambda r: -r["total_ms"]
    )
    kinds: dict[str, list[float]] = {}
    for r in ops:
        k = kinds.setdefault(re.sub(r"\.\d+$", "", r["name"]), [0.0, 0])
        k[0] += r["total_ms"]
        k[1] += r["count"]
    op_ms = sum(r["total_ms"] for r in ops)
    by_kind = sorted(
        (
            {"kind": k, "total_ms": v[0], "count": v[1], "share": v[0] / op_ms if op_ms else 0.0}
            for k, v in kinds.items()
        ),
        key=lambda r: -r["total_ms"],
    )
    return {"wall_ms": wall, "op_ms": op_ms, "ops": ops[:top], "by_kind": by_kind[:12]}


def jaxrl_worker(job: dict) -> dict:
    import jax
    import numpy as np

    from jaxrl import algos
    from jaxrl.algos.offline.common import load_offline_env
    from jaxrl.run import grid as grid_lib

    module = algos.get(job["algo"])
    env, env_params = load_offline_env(job["datasets"])
    cfg = make_config(module, job)
    iters = cfg.num_iterations
    updates_per_run = iters * cfg.env_steps_per_iteration
    seeds, grid = list(range(job.get("seeds", 1))), job.get("grid") or {}
    batched, runs = grid_lib.expand(cfg, seeds, grid)
    keys = np.stack([np.asarray(jax.random.PRNGKey(r["seed"])) for r in runs])
    module.make(cfg, env, env_params)  # Python-level checks first

    def init_one(c, key):
        return module.make(c, env, env_params).init(key)

    def chunk_one(c, state):
        algo = module.make(c, env, env_params)
        return jax.lax.scan(lambda s, _: (algo.step(s)[0], None), state, None, length=iters)[0]

    out = {
        "algo": job["algo"],
        "runs": len(runs),
        "updates_per_run": updates_per_run,
        "config": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(cfg).items()
            if isinstance(v, (int, float, str, tuple))
        },
    }
    mode = job.get("mode", "vmap")
    t0 = time.perf_counter()
    if mode == "vmap":  # all runs in one program
        init = jax.jit(jax.vmap(init_one))
        state = jax.block_until_ready(init(batched, keys))
        compiled = jax.jit(jax.vmap(chunk_one)).lower(batched, state).compile()
        call = lambda st: compiled(batched, st)
    else:  # "sequential": one single-run program, called once per run
        init = jax.jit(init_one)
        one = lambda i: jax.tree.map(lambda x: x[i], batched)
        states = [jax.block_until_ready(init(one(i), keys[i])) for i in range(len(runs))]
        compiled1 = jax.jit(chunk_one).lower(one(0), states[0]).compile()
        cfgs = [one(i) for i in range(len(runs))]
        state = states

        def call(sts):
            new = []
            for c, s in zip(cfgs, sts):
                new.append(jax.block_until_ready(compiled1(c, s)))  # one at a time
            return new

    out["compile_s"] = time.perf_counter() - t0
    times = []
    for i in range(job["warmup"] + job["repeats"]):
        t = time.perf_counter()
        state = jax.block_until_ready(call(state))
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    out.update(times_s=times, median_s=med, updates_per_s=updates_per_run * len(runs) / med)
    if job.get("profile"):
        trace_dir = job["profile"]
        with jax.profiler.trace(trace_dir):
            state = jax.block_until_ready(call(state))
        out["profile_dir"] = trace_dir
        out["profile_top"] = profile_ops(trace_dir)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import importlib.metadata as md

    out["versions"] = {p: md.version(p) for p in ("jaxrl", "jax", "jaxlib", "flax", "optax")}
    out["device"] = str(jax.devices()[0])
    return out


# ------------------------------------------------------------------------------------------------ orchestration
def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def make_datasets(paths: list[Path], size: int) -> tuple[list[dict], list[float], list[float]]:
    """Random-policy Pendulum-v1 datasets (one key each), written as D4RL HDF5 unless the file exists."""
    import jax

    import jaxrl.envs
    from jaxrl.data import dataset as ds
    from jaxrl.data import formats
    from jaxrl.run.generate import rollout_dataset

    env, params = jaxrl.envs.make("Pendulum-v1")
    for i, p in enumerate(paths):
        if p.exists():
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        info = ds.DatasetInfo(
            name=f"bench-random-{i}", kind="random", env_name="Pendulum-v1", random_return=-1200.0, expert_return=-150.0
        )
        formats.save(rollout_dataset(env, params, None, jax.random.PRNGKey(i), size, info=info), p)
    import numpy as np

    from jaxrl.envs.wrappers import action_dim

    n_act, space = action_dim(env, params), env.action_space(params)
    low = np.broadcast_to(np.asarray(space.low, np.float32), (n_act,)).tolist()
    high = np.broadcast_to(np.asarray(space.high, np.float32), (n_act,)).tolist()
    return [{"path": str(p), "rows": size} for p in paths], low, high


def offline_algorithms() -> list[str]:
    import importlib

    from jaxrl import algos

    names = []
    for name, (path, _) in algos.ALGORITHMS.items():
        try:
            if getattr(importlib.import_module(path), "OFFLINE", False):
                names.append(name)
        except Exception as e:  # a module being written right now: list it with the error
            print(f"registry: {name} does not import: {e}", flush=True)
            names.append(name)
    return names


def peer_settings(name: str) -> dict:
    from jaxrl import algos

    cfg = algos.get(name).Config()
    out = {}
    for f in PEER_FIELDS:
        if hasattr(cfg, f):
            v = getattr(cfg, f)
            out[f] = int(v) if isinstance(v, int) and not isinstance(v, bool) else float(v)
    return out


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def markdown(report: dict) -> str:
    hw, a = report["hardware"], report["args"]
    lines = [
        "# Offline RL throughput: jaxrl" + (" vs d3rlpy 2.8.1" if report.get("peer") else ""),
        "",
        f"Hardware: {hw['cpu_model']}, {hw['usable_cores']} usable cores ({hw['cpu_cores']} seen), "
        f"{hw['memory_gb']} GiB, no GPU (JAX device `{report.get('device', '?')}`). "
        f"Versions: {json.dumps(report.get('versions', {}))}"
        + (f"; peer {json.dumps(report.get('peer_versions', {}))}" if report.get("peer_versions") else "")
        + ".",
        f"Load at start: `{report['uptime_start']}`; at end: `{report.get('uptime_end', '?')}`. Single numbers "
        "move by tens of percent between occasions on a shared machine; the side-by-side ratios come from "
        "alternating rounds.",
        f"Dataset: {a['size']} rows of Pendulum-v1 under a uniform random policy, D4RL-schema HDF5, read by "
        f"both libraries. Networks {a['hidden']} (relu) everywhere, batch {a['batch_size']}. Median of "
        f"{a['repeats']} timed calls after {a['warmup']} warm-up; compile apart. "
        f"XLA_FLAGS `{a['xla_flags']}`.",
        "",
    ]
    if report.get("peer"):
        rows = report["peer"]
        threads = next((r.get("torch_threads") for r in rows if r.get("torch_threads") is not None), None)
        lines += [
            "## Side by side with d3rlpy (same dataset, networks, batch, learning rates)",
            "",
            f"{a.get('rounds', 1)} rounds per algorithm, the two libraries alternating (jaxrl first in even "
            f"rounds, d3rlpy first in odd ones), each measurement a fresh process: median of {a.get('peer_repeats')} "
            "timed calls after one warm-up. Rates: median over the rounds (min-max). A ratio is stated only when "
            "the per-round ratios agree within 15% of their median (`benchmarks/sidebyside.py`). d3rlpy: torch "
            f"intra-op threads = {threads} (`--peer-threads`); jaxrl: XLA's default CPU threading.",
            "",
            "| algo | jaxrl updates/s | d3rlpy updates/s (fit loop: sample + update) | d3rlpy update only "
            "| jaxrl / d3rlpy | jaxrl / d3rlpy update only | jaxrl compile s | d3rlpy sample ms/batch "
            "| load (1 min) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            s, u = r["summary"], r["summary_update_only"]
            lines.append(
                f"| {r['algo']} | {sidebyside.rate_text(s, 'jaxrl')} | {sidebyside.rate_text(s, 'd3rlpy')} "
                f"| {sidebyside.rate_text(u, 'd3rlpy')} | {sidebyside.ratio_text(s)} | {sidebyside.ratio_text(u)} "
                f"| {fmt(r.get('jaxrl_compile_s'), '.1f')} | {fmt(r.get('sample_ms_per_batch'), '.2f')} "
                f"| {sidebyside.load_text(s)} |"
            )
        lines += ["", "Target (issue 6): >= 5x d3rlpy's updates/s on the same CPU.", ""]
    if report.get("registry"):
        lines += [
            "## jaxrl, every registered offline algorithm (one run)",
            "",
            "| algo | updates/s | updates per call | compile s | run s (median) | load (1 min) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in report["registry"]:
            if "error" in r:
                lines.append(f"| {r['algo']} | error: {r['error'].strip().splitlines()[-1][:120]} |||||")
                continue
            lines.append(
                f"| {r['algo']} | {fmt(r['updates_per_s'])} | {r['updates_per_run']} "
                f"| {r['compile_s']:.1f} | {r['median_s']:.3f} | {r['load']} |"
            )
        lines += [
            "",
            "Updates as each config counts them (`total_env_steps` = gradient updates for offline "
            "configs; mopo and morel: `model_train_updates` = one iteration (100 model updates) before the policy "
            "updates, all counted).",
            "",
        ]
    if report.get("grid"):
        g = report["grid"]
        lines += [
            f"## Seeds x datasets: one program vs one at a time ({g['algo']}, {g['seeds']} seeds x "
            f"{g['datasets']} datasets = {g['seeds'] * g['datasets']} runs, {g['updates_per_run']} updates "
            "each per call)",
            "",
            "| mode | updates/s (all runs) | wall s per call (median) | compile s | load (1 min) |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode in ("vmap", "sequential"):
            r = g.get(mode, {})
            if "error" in r or not r:
                lines.append(f"| {mode} | error: {r.get('error', '?').strip().splitlines()[-1][:120]} ||||")
                continue
            label = "one program (vmap)" if mode == "vmap" else "one at a time"
            lines.append(
                f"| {label} | {fmt(r['updates_per_s'])} | {r['median_s']:.2f} | {r['compile_s']:.1f} | {r['load']} |"
            )
        if g.get("speedup"):
            lines += ["", f"One program is {g['speedup']:.2f}x the throughput of the same runs one at a time."]
        lines.append("")
    if report.get("profiles"):
        lines += [
            f"## Where jaxrl's time goes (jax.profiler, one call of {report.get('profile_updates', '?')} "
            "updates per algorithm; summed durations of XLA:CPU op events)",
            "",
        ]
        for name, prof in report["profiles"].items():
            if not isinstance(prof, dict) or "by_kind" not in prof:
                lines += [f"{name}: no profile ({str(prof)[:200]})", ""]
                continue
            lines += [
                f"**{name}**: call {prof['wall_ms']:.0f} ms, op events {prof['op_ms']:.0f} ms (ops run on "
                "2 threads, so op time can exceed the call).",
                "",
                "| kind | total ms | share of op time | events |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| `{k['kind']}` | {k['total_ms']:.0f} | {100 * k['share']:.0f}% | {k['count']} |"
                for k in prof["by_kind"][:6]
            ]
            lines += ["", "| top op | total ms | events |", "|---|---:|---:|"]
            lines += [f"| `{r['name'][:60]}` | {r['total_ms']:.0f} | {r['count']} |" for r in prof["ops"][:5]]
            lines.append("")
        if report.get("profile_notes"):
            lines += report["profile_notes"] + [""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", action="store_true", help="side by side with d3rlpy 2.8.1 on bc, cql, iql, awac, td3_bc")
    p.add_argument("--peer-algos", default=",".join(PEER_ALGOS))
    p.add_argument("--peer-python", default=os.environ.get("D3RLPY_PYTHON", str(DEFAULT_PEER_PYTHON)))
    p.add_argument("--peer-updates", type=int, default=100, help="d3rlpy updates per timed repeat")
    p.add_argument(
        "--rounds", type=int, default=3, help="side-by-side rounds, the libraries alternating (sidebyside.py)"
    )
    p.add_argument("--peer-repeats", type=int, default=3, help="timed calls per library per round")
    p.add_argument(
        "--peer-threads",
        type=int,
        default=1,
        help="torch intra-op threads for d3rlpy (0: torch's default). 1 by default: on the loaded 2-core "
        "machine torch with 2 threads ran BC 256x256 at 6 updates/s against 172 with 1",
    )
    p.add_argument("--algos", default="all", help="registry table: comma list or 'all' (every OFFLINE module)")
    p.add_argument("--no-registry", action="store_true")
    p.add_argument("--no-grid", action="store_true")
    p.add_argument("--grid-algo", default="iql")
    p.add_argument("--grid-seeds", type=int, default=4)
    p.add_argument("--grid-datasets", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--updates", type=int, default=1000, help="jaxrl updates per run per timed call")
    p.add_argument("--per-iteration", type=int, default=100, help="updates_per_iteration of the jaxrl configs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--size", type=int, default=10_000, help="dataset rows")
    p.add_argument("--data-dir", default=os.environ.get("JAXRL_BENCH_DATA", "/tmp/jaxrl-offline-bench"))
    p.add_argument("--profile", action="store_true", help="jax.profiler trace of the jaxrl peer rows below 5x")
    p.add_argument("--profile-algos", default="", help="comma list of algorithms to profile (with or without --peer)")
    p.add_argument("--profile-updates", type=int, default=200, help="updates in the profiled call")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--xla-flags", default=DEFAULT_XLA_FLAGS)
    p.add_argument("--out", default=str(HERE / "results" / "offline"), help="output path without extension")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(jaxrl_worker(json.loads(a.worker))), flush=True)
        return
    if a.peer and not Path(a.peer_python).exists():
        sys.exit(
            f"d3rlpy environment not found at {a.peer_python}: run `bash benchmarks/setup_d3rlpy_env.sh` "
            "first, or leave out --peer"
        )

    hidden = [int(h) for h in a.hidden.split(",")]
    data_dir = Path(a.data_dir)
    n_sets = max(1, a.grid_datasets)
    sets, low, high = make_datasets([data_dir / f"pendulum-random-{a.size}-{i}.hdf5" for i in range(n_sets)], a.size)
    main_set = [sets[0]["path"]]
    jaxrl = (sys.executable, [str(Path(__file__).resolve()), "--worker"])
    peer = (a.peer_python, [str(HERE / "peers" / "d3rlpy_offline.py")])
    base = {
        "hidden": hidden,
        "batch_size": a.batch_size,
        "per_iteration": a.per_iteration,
        "updates": a.updates,
        "warmup": a.warmup,
        "repeats": a.repeats,
    }
    report = {
        "hardware": hardware(),
        "uptime_start": uptime(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "args": {**vars(a), "hidden": hidden},
        "datasets": sets,
    }
    print(f"hardware {json.dumps(report['hardware'])}\n{report['uptime_start']}", flush=True)
    t_start = time.perf_counter()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        report["total_seconds"] = time.perf_counter() - t_start
        out.with_suffix(".json").write_text(json.dumps(report, indent=1))
        text = markdown(report)
        out.with_suffix(".md").write_text(text)
        return text

    def attempt(python_argv, job):
        try:
            r = run_job(*python_argv, job, a.timeout, a.xla_flags)
        except Exception as e:  # one failed measurement should not lose the others
            r = {"error": str(e)}
        r["load"] = f"{os.getloadavg()[0]:.2f}"
        return r

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f}s] {msg}", flush=True)

    if a.peer:
        report["peer"] = []
        for name in a.peer_algos.split(","):
            settings = peer_settings(name)
            peer_job = {
                "algo": name,
                "dataset": main_set[0],
                "action_low": low,
                "action_high": high,
                "hidden": hidden,
                "batch_size": a.batch_size,
                "settings": settings,
                "updates": a.peer_updates,
                "warmup": a.warmup,
                "repeats": a.peer_repeats,
                "threads": a.peer_threads,
            }
            jobs = {
                "jaxrl": (jaxrl, {**base, "repeats": a.peer_repeats, "algo": name, "datasets": main_set}),
                "d3rlpy": (peer, peer_job),
            }

            def measure(lib, r, jobs=jobs, name=name):
                res = attempt(*jobs[lib])
                if "error" in res:
                    log(f"{name} {lib} round {r}: FAILED {res['error'][-500:]}")
                else:
                    log(f"{name:8s} round {r} {lib:6s} {res['updates_per_s']:8.0f} updates/s  load {res['load']}")
                return res

            per = sidebyside.run_rounds(measure, ["jaxrl", "d3rlpy"], a.rounds, "updates_per_s")
            row = {"algo": name, "settings": settings, **per, "summary": sidebyside.summarize(per, "updates_per_s")}
            # the peer's update step alone (its fit loop minus sampling), per round
            only = {
                "jaxrl": per["jaxrl"],
                "d3rlpy": [
                    {**d, "updates_per_s": d["update_only_updates_per_s"]} if "error" not in d else d
                    for d in per["d3rlpy"]
                ],
            }
            row["summary_update_only"] = sidebyside.summarize(only, "updates_per_s")
            ok = [x for x in per["jaxrl"] if "error" not in x]
            row["jaxrl_compile_s"] = statistics.median(x["compile_s"] for x in ok) if ok else None
            for lib, key in (("jaxrl", "versions"), ("d3rlpy", "peer_versions")):
                good = [x for x in per[lib] if "error" not in x]
                if good:
                    report.setdefault(key, good[0]["versions"])
                    if lib == "jaxrl":
                        report.setdefault("device", good[0]["device"])
                    else:
                        row["sample_ms_per_batch"] = statistics.median(x["sample_ms_per_batch"] for x in good)
                        row["torch_threads"] = good[0].get("torch_threads")
            log(f"{name:8s} jaxrl / d3rlpy: {sidebyside.ratio_text(row['summary'])}")
            report["peer"].append(row)
            save()
    to_profile = [n for n in a.profile_algos.split(",") if n]
    if a.profile and a.peer:
        to_profile += [r["algo"] for r in report["peer"] if r.get("ratio", 99) < 5 and r["algo"] not in to_profile]
    if to_profile:
        report["profiles"] = {}
        for name in to_profile:
            trace = str(data_dir / f"trace-{name}")
            r = attempt(
                jaxrl,
                {
                    **base,
                    "algo": name,
                    "datasets": main_set,
                    "warmup": 1,
                    "repeats": 1,
                    "updates": a.profile_updates,
                    "profile": trace,
                },
            )
            report["profiles"][name] = r.get(
                "profile_top", [{"name": r.get("error", "?")[-200:], "total_ms": 0, "count": 0}]
            )
            report.setdefault("profile_updates", a.profile_updates)
            log(f"profiled {name}: {trace}")
            save()

    if not a.no_grid:
        names = [s["path"] for s in sets]
        g = {"algo": a.grid_algo, "seeds": a.grid_seeds, "datasets": len(names), "updates_per_run": a.updates}
        report["grid"] = g
        for mode in ("vmap", "sequential"):
            r = attempt(
                jaxrl,
                {
                    **base,
                    "algo": a.grid_algo,
                    "datasets": names,
                    "seeds": a.grid_seeds,
                    "grid": {"dataset_index": list(range(len(names)))},
                    "mode": mode,
                },
            )
            g[mode] = r
            if "error" not in r:
                log(
                    f"grid {a.grid_algo} {mode:10s} {r['updates_per_s']:8.0f} updates/s ({r['runs']} runs, median "
                    f"{r['median_s']:.2f}s, compile {r['compile_s']:.1f}s)"
                )
            else:
                log(f"grid {mode}: FAILED {r['error'][-500:]}")
            save()
        if "error" not in g["vmap"] and "error" not in g["sequential"]:
            g["speedup"] = g["vmap"]["updates_per_s"] / g["sequential"]["updates_per_s"]
            save()

    if not a.no_registry:
        report["registry"] = []
        names = offline_algorithms() if a.algos == "all" else a.algos.split(",")
        for name in names:
            r = attempt(jaxrl, {**base, "algo": name, "datasets": main_set})
            r.setdefault("algo", name)
            report["registry"].append(r)
            if "error" not in r:
                report.setdefault("versions", r["versions"])
                report.setdefault("device", r["device"])
                log(
                    f"{name:12s} {r['updates_per_s']:8.0f} updates/s (compile {r['compile_s']:.1f}s, median "
                    f"{r['median_s']:.3f}s)"
                )
            else:
                log(f"{name}: FAILED {r['error'][-300:]}")
            save()

    report["uptime_end"] = uptime()
    print(save())


if __name__ == "__main__":
    main()
