"""One prepared accelerator check: every throughput figure the GPU targets need, in one process, one table.

    bash benchmarks/gpu.sh              # installs, then runs this (about 6 minutes on one GPU)
    python benchmarks/gpu.py --dry-run  # tiny sizes, any machine (the integration stage runs it on CPU)

Sections, in order of priority (each is skipped, and says so, when the time budget ``--budget`` would be
overrun, so a slow machine still returns a table of what it measured):

1. PPO CartPole-v1 (``throughput.py``'s settings): aggregate env-steps/s with 1, 64 and 2048 runs in one
   program; then 64 runs in one program against the single-run program called 64 times, one after another.
2. Offline IQL / CQL / TD3+BC (``offline.py``'s worker): gradient updates/s for 1 run and for 64 runs in one
   program, on a generated Pendulum-v1 dataset.
3. MT-SAC on point-goal-K (``multitask_scaling.py``'s worker) at 1, 16 and 64 tasks.
4. MAML's meta-update (``maml.py``'s side-by-side configuration), second and first order, against torchopt in
   a subprocess (``peers/torchopt_maml.py``, CPU torch as in its MAML-RL example) when torchopt imports.

Each measurement reports compile time apart from run time (the median over ``--repeats`` timed calls after one
warm-up call). The table and a JSON of every raw time go to ``--out`` (``.md`` / ``.json``), rewritten after each
section so a call cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = {
    # per-run PPO iterations (4096 env steps each), runs per program, offline updates per call and runs, MT-SAC
    # tasks and steps per call, MAML configuration overrides
    "full": {
        "ppo_iterations": 16,
        "ppo_runs": [1, 64, 2048],
        "ppo_sequential": 64,
        "offline_algos": ["iql", "cql", "td3_bc"],
        "offline_updates": 2000,
        "offline_runs": [1, 64],
        "offline_rows": 100_000,
        "mt_tasks": [1, 16, 64],
        "mt_inner": 200,
        "maml": {},
        "peer_repeats": 3,
    },
    "dry": {
        "ppo_iterations": 1,
        "ppo_runs": [1, 4],
        "ppo_sequential": 4,
        "offline_algos": ["iql", "td3_bc"],
        "offline_updates": 20,
        "offline_runs": [1, 2],
        "offline_rows": 2_000,
        "mt_tasks": [1, 2],
        "mt_inner": 5,
        "maml": {"num_tasks": 2, "num_trajectories": 2, "hidden": [8, 8]},
        "peer_repeats": 1,
    },
}


def hardware() -> dict:
    import jax
    from throughput import hardware as host

    hw = host()
    dev = jax.devices()[0]
    hw["device_kind"] = getattr(dev, "device_kind", str(dev))
    hw["device_count"] = jax.device_count()
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        hw["nvidia_smi"] = smi.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        hw["nvidia_smi"] = None
    import importlib.metadata as md

    hw["versions"] = {}
    for p in ("jaxrl", "jax", "jaxlib", "flax", "optax", "gymnax", "distrax"):
        try:
            hw["versions"][p] = md.version(p)
        except md.PackageNotFoundError:
            hw["versions"][p] = "not installed"
    return hw


class Check:
    """Collects rows, keeps the time budget, rewrites the table after each section."""

    def __init__(self, args, sizes: dict):
        self.args, self.sizes, self.t0 = args, sizes, time.perf_counter()
        self.rows: list[dict] = []
        self.skipped: list[str] = []
        self.hw = hardware()
        self.command = "bash benchmarks/gpu.sh" + (" --dry-run" if args.dry_run else "")

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.t0)

    def fits(self, what: str, estimate_s: float) -> bool:
        if self.left() >= estimate_s:
            return True
        self.skipped.append(f"{what} (about {estimate_s:.0f} s needed, {max(self.left(), 0):.0f} s left)")
        print("skipped:", self.skipped[-1], flush=True)
        return False

    def add(self, section: str, what: str, rate: float | None, unit: str, res: dict, note: str = "") -> None:
        times = res.get("times_s") or []
        row = {
            "section": section,
            "what": what,
            "rate": rate,
            "unit": unit,
            "compile_s": res.get("compile_s"),
            "median_s": statistics.median(times) if times else None,
            "spread_s": [min(times), max(times)] if times else None,
            "repeats": len(times),
            "note": note,
            "raw": {k: v for k, v in res.items() if k not in ("config", "versions")},
        }
        self.rows.append(row)
        rate_s = f"{rate:,.0f} {unit}" if rate is not None else "-"
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {section}: {what}: {rate_s} {note}", flush=True)

    def write(self) -> None:
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "hardware": self.hw,
            "command": self.command,
            "sizes": self.sizes,
            "budget_s": self.args.budget,
            "elapsed_s": time.perf_counter() - self.t0,
            "rows": self.rows,
            "skipped": self.skipped,
        }
        out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=float))
        out.with_suffix(".md").write_text(markdown(report))


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def markdown(report: dict) -> str:
    hw, s = report["hardware"], report["sizes"]
    v = hw["versions"]
    lines = [
        f"# GPU check: {hw['device_kind']}"
        + (" (dry run: tiny sizes, not a measurement)" if "dry" in report["command"] else ""),
        "",
        f"Made by `{report['command']}` in {report['elapsed_s']:.0f} s (budget {report['budget_s']:.0f} s). "
        f"Device: {hw['device_kind']} x{hw['device_count']} ({hw.get('nvidia_smi') or hw['backend']}); host "
        f"{hw['cpu_model']}, {hw['usable_cores']} cores, {hw['memory_gb']} GiB, Python {hw['python']}; jax "
        f"{v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, optax {v['optax']}, gymnax {v['gymnax']}.",
        "",
        "Rates are medians over the timed calls after compiling and one warm-up call; compile time is apart. "
        f"PPO: CartPole-v1, 64 envs x 64 steps, 8 epochs x 16 minibatches, {s['ppo_iterations']} iterations "
        f"({s['ppo_iterations'] * 4096:,} env steps) per run. Offline: generated Pendulum-v1 data "
        f"({s['offline_rows']:,} rows), 256x256 networks, batch 256, {s['offline_updates']:,} updates per run per "
        f"call. MT-SAC: point-goal-K, one env per task, 32 samples per task, 256x256, {s['mt_inner']} steps per call. "
        f"MAML: benchmarks/maml.py's side-by-side configuration (nav2d, {s['maml_tasks']} tasks x "
        f"{s['maml_trajectories']} trajectories x 100 steps); the peer runs on the host's CPU with torch's default "
        "threads.",
        "",
        "| section | measurement | rate | compile (s) | median call (s) | spread (s) | calls | note |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in report["rows"]:
        spread = f"{r['spread_s'][0]:.3f}-{r['spread_s'][1]:.3f}" if r["spread_s"] else "-"
        rate = f"{r['rate']:,.0f} {r['unit']}" if r["rate"] is not None else "-"
        lines.append(
            f"| {r['section']} | {r['what']} | {rate} | {fmt(r['compile_s'], '.1f')} | "
            f"{fmt(r['median_s'], '.3f')} | {spread} | {r['repeats']} | {r['note']} |"
        )
    if report["skipped"]:
        lines += ["", "Skipped or failed: " + "; ".join(report["skipped"]) + "."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ sections
def ppo_section(chk: Check) -> None:
    import jax
    from throughput import SETTINGS, jaxrl_config

    from jaxrl import envs
    from jaxrl.algos.single import ppo

    s, sizes, reps = SETTINGS["ppo"], chk.sizes, chk.args.repeats
    env, env_params = envs.make(s["env"])
    cfg = jaxrl_config("ppo", s, sizes["ppo_iterations"] * s["num_envs"] * s["num_steps"])
    algo = ppo.make(cfg, env, env_params)
    steps_per_run = cfg.num_iterations * cfg.env_steps_per_iteration

    def train_one(key):
        return jax.lax.scan(lambda st, _: algo.step(st), algo.init(key), None, length=cfg.num_iterations)[0]

    compiled = {}
    for runs in sizes["ppo_runs"]:
        if not chk.fits(f"PPO {runs} runs", 30):
            continue
        keys = jax.random.split(jax.random.PRNGKey(0), runs)
        t = time.perf_counter()
        fn = jax.jit(jax.vmap(train_one)).lower(keys).compile()
        res = {"compile_s": time.perf_counter() - t, "times_s": _timed(lambda: fn(keys), reps)}
        compiled[runs] = fn
        med = statistics.median(res["times_s"])
        chk.add(
            "PPO", f"{runs} run{'s' if runs > 1 else ''} in one program", runs * steps_per_run / med, "env-steps/s", res
        )
        chk.write()
    n = sizes["ppo_sequential"]
    if 1 in compiled and n in compiled and chk.fits(f"PPO {n} runs one after another", 60):
        keys = jax.random.split(jax.random.PRNGKey(1), n)
        one = compiled[1]

        def sequential():
            out = None
            for i in range(n):
                out = jax.block_until_ready(one(keys[i : i + 1]))
            return out

        res = {"compile_s": None, "times_s": _timed(sequential, reps, warmup=False)}
        med = statistics.median(res["times_s"])
        one_prog = next(r for r in chk.rows if r["what"] == f"{n} runs in one program")
        chk.add(
            "PPO",
            f"{n} runs one after another (single-run program)",
            n * steps_per_run / med,
            "env-steps/s",
            res,
            note=f"one program is {med / one_prog['median_s']:.1f}x faster",
        )
        chk.write()


def offline_section(chk: Check) -> None:
    import offline as off

    sizes = chk.sizes
    data_dir = Path(chk.args.work_dir)
    datasets, _, _ = off.make_datasets([data_dir / "pendulum-random-0.hdf5"], sizes["offline_rows"])
    for algo in sizes["offline_algos"]:
        for runs in sizes["offline_runs"]:
            if not chk.fits(f"offline {algo} {runs} runs", 30):
                continue
            job = {
                "algo": algo,
                "datasets": [datasets[0]["path"]],
                "hidden": [256, 256],
                "batch_size": 256,
                "per_iteration": sizes["offline_updates"],
                "updates": sizes["offline_updates"],
                "seeds": runs,
                "warmup": 1,
                "repeats": chk.args.repeats,
            }
            res = off.jaxrl_worker(job)
            chk.add(
                "offline",
                f"{algo}, {runs} run{'s' if runs > 1 else ''} in one program",
                res["updates_per_s"],
                "updates/s",
                res,
            )
            chk.write()


def multitask_section(chk: Check) -> None:
    from multitask_scaling import worker

    for k in chk.sizes["mt_tasks"]:
        if not chk.fits(f"MT-SAC {k} tasks", 40):
            continue
        job = {
            "tasks": k,
            "batch": 32,
            "hidden": [256, 256],
            "inner": chk.sizes["mt_inner"],
            "buffer": 10_000,
            "repeats": chk.args.repeats,
            "aggregator": "sum",
            "monitor": True,
        }
        res = worker(job)
        chk.add(
            "MT-SAC",
            f"{k} task{'s' if k > 1 else ''}",
            res["env_steps_per_s"],
            "env-steps/s",
            res,
            note=f"{res['updates_per_s']:,.0f} updates/s",
        )
        chk.write()


def maml_section(chk: Check) -> None:
    import maml as mb
    from throughput import run_job

    config = dict(mb.PEER_CONFIG, **chk.sizes["maml"])
    peer_ok = _imports(chk.args.peer_python, "torchopt")
    for order in ("second", "first"):
        if not chk.fits(f"MAML {order} order", 60):
            continue
        job = {"config": dict(config, first_order=order == "first"), "warmup": 1, "repeats": chk.args.repeats}
        res = mb.jaxrl_worker(job)
        med = statistics.median(res["times_s"])
        note = ""
        if peer_ok and chk.fits(f"torchopt MAML {order} order", 40):
            pjob = {**job, "repeats": chk.sizes["peer_repeats"], "threads": 0}
            peer = run_job(
                chk.args.peer_python, [str(HERE / "peers" / "torchopt_maml.py")], pjob, timeout=600, xla_flags=""
            )
            pmed = statistics.median(peer["times_s"])
            res["peer"] = peer
            note = (
                f"torchopt {peer['versions']['torchopt']} (torch {peer['versions']['torch']}, CPU, "
                f"{peer['torch_threads']} threads): {pmed:.3f} s, jaxrl {pmed / med:.1f}x"
            )
        elif not peer_ok:
            note = f"torchopt does not import in {chk.args.peer_python}: no peer"
        chk.add("MAML", f"{order}-order meta-update", 1.0 / med, "meta-updates/s", res, note)
        chk.write()


def _timed(call, repeats: int, warmup: bool = True, cap_s: float = 45.0) -> list[float]:
    """Median material: one warm-up call (unless the program already ran), then ``repeats`` timed calls, fewer
    when the first call shows that they would take more than ``cap_s`` together (at least one)."""
    import jax

    if warmup:
        t = time.perf_counter()
        jax.block_until_ready(call())
        repeats = max(1, min(repeats, int(cap_s / max(time.perf_counter() - t, 1e-9))))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t)
        if sum(times) > cap_s:
            break
    return times


def _imports(python: str, module: str) -> bool:
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes: checks the script end to end on any machine")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all sections (default 360; dry run 600)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 3; dry run 1)")
    ap.add_argument("--sections", nargs="+", default=["ppo", "offline", "multitask", "maml"])
    ap.add_argument("--peer-python", default=sys.executable, help="interpreter with torch and torchopt")
    ap.add_argument("--work-dir", default="/tmp/jaxrl-gpu-check")
    ap.add_argument("--out", default=None, help="output path without extension")
    args = ap.parse_args(argv)
    args.budget = args.budget or (600.0 if args.dry_run else 360.0)
    args.repeats = args.repeats or (1 if args.dry_run else 3)
    sizes = dict(SIZES["dry" if args.dry_run else "full"])
    import maml as mb

    maml_config = dict(mb.PEER_CONFIG, **sizes["maml"])
    sizes.update(maml_tasks=maml_config["num_tasks"], maml_trajectories=maml_config["num_trajectories"])
    chk = Check(args, sizes)
    if args.out is None:
        kind = chk.hw["device_kind"].lower().replace(" ", "_")
        args.out = str(HERE / "results" / (f"gpu_dry_run_{kind}" if args.dry_run else f"gpu_{kind}"))
    print(f"GPU check on {chk.hw['device_kind']} (backend {chk.hw['backend']}), out {args.out}", flush=True)
    sections = {"ppo": ppo_section, "offline": offline_section, "multitask": multitask_section, "maml": maml_section}
    for name in args.sections:
        try:
            sections[name](chk)
        except Exception as e:  # one section failing must not lose the others' figures
            chk.skipped.append(f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            print("FAILED:", chk.skipped[-1], flush=True)
        chk.write()
    print(Path(args.out).with_suffix(".md").read_text(), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
