"""Stall check: run a program N times, each in a fresh process, and count how many finish.

XLA:CPU (jaxlib 0.10.2, 2-core CPU) sometimes stops for good inside a compiled program: the main thread waits in
``BlockUntilReady`` and every XLA/Eigen worker waits for work, so the process sits at 0% CPU forever. This script
is the reproducer behind ``benchmarks/results/stall_check.md`` and the upstream-style report beside it.

A run is one of
  * ``completed``: exit code 0 within ``--timeout`` seconds;
  * ``stalled``: still alive, but its CPU time grew by less than ``--idle-cpu`` seconds over the last
    ``--idle-window`` seconds (a compile or a chunk always keeps a core busy, so an idle process is stuck);
    the first stall of each (setup, program, flags) leaves its native stacks (gdb) in ``--stacks-dir``;
  * ``timeout``: alive and busy after ``--timeout`` seconds;
  * ``failed``: a non-zero exit code (the tail of its stderr is kept).

Programs (``--program``):
  * ``iql-cli``: the README's offline path, ``jaxrl train iql --dataset <Pendulum medium-replay> --seeds 3``
    (the dataset is made once by ``jaxrl dataset make Pendulum-v1 --kind medium-replay``);
  * ``mtsac-64``: MT-SAC with 1 and 64 tasks in one program (``benchmarks/multitask_scaling.py --tasks 1 64``);
  * ``iql-8``: IQL, 4 seeds x 2 datasets in one program and one at a time (``benchmarks/offline.py --no-registry``);
  * ``minimal``: ``benchmarks/repro_xla_cpu_stall.py``, three IQL-shaped learners in jax and optax only.

Flag sets (``--flags``): ``jaxrl`` (what importing jaxrl sets: the concurrency-optimised scheduler off),
``none`` (``JAXRL_KEEP_XLA_FLAGS=1``: XLA's defaults), ``eigen1`` (jaxrl's flag plus single-threaded Eigen).

    python benchmarks/stall_check.py --python .venv/bin/python --program iql-cli --runs 10 [--flags jaxrl none]

The interpreter under test is ``--python`` (a virtual environment with jaxrl installed), so one script compares
Python / JAX versions. Results accumulate in ``--out`` (JSON, one record per run; the markdown table is rebuilt
from all records each time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCHEDULER_OFF = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
FLAG_SETS = {
    "jaxrl": {"XLA_FLAGS": SCHEDULER_OFF},  # what importing jaxrl sets; explicit, for programs without jaxrl
    "none": {"JAXRL_KEEP_XLA_FLAGS": "1"},
    "eigen1": {"XLA_FLAGS": f"{SCHEDULER_OFF} --xla_cpu_multi_thread_eigen=false"},
}


def program_argv(name: str, python: str, data: Path, scratch: Path) -> list[str]:
    if name == "iql-cli":
        return [
            python,
            "-m",
            "jaxrl",
            "train",
            "iql",
            "--dataset",
            str(data),
            "--seeds",
            "3",
            "--out",
            str(scratch / "run"),
        ]
    if name == "mtsac-64":
        return [
            python,
            str(HERE / "multitask_scaling.py"),
            "--tasks",
            "1",
            "64",
            "--aggregators",
            "sum",
            "--agg-tasks",
            "1",
            "--repeats",
            "3",
            "--out",
            str(scratch / "multitask_scaling.md"),
        ]
    if name == "minimal":
        return [python, str(HERE / "repro_xla_cpu_stall.py")]
    if name == "iql-8":
        return [
            python,
            str(HERE / "offline.py"),
            "--no-registry",
            "--repeats",
            "3",
            "--timeout",
            "100000",
            "--data-dir",
            str(scratch.parent / "offline-data"),
            "--out",
            str(scratch / "offline"),
        ]
    raise ValueError(f"unknown program {name!r}: one of iql-cli, mtsac-64, iql-8, minimal")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            # utime + stime, plus cutime + cstime: a child's time moves there when it exits and is reaped, so the
            # total over the live tree never drops
            total += sum(int(f) for f in fields[11:15]) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


def descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def native_stacks(pid: int) -> str:
    """Every thread's native and Python stack of the deepest live process under ``pid`` (gdb)."""
    text = []
    for p in descendants(pid):
        if shutil.which("gdb") is None:
            return "(gdb not found)"
        r = subprocess.run(
            ["gdb", "-p", str(p), "-batch", "-ex", "thread apply all bt 30"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        text.append(
            f"===== pid {p}: {Path(f'/proc/{p}/cmdline').read_text().replace(chr(0), ' ')[:300]}\n"
            if Path(f"/proc/{p}/cmdline").exists()
            else f"===== pid {p}\n"
        )
        text.append(r.stdout)
    return "".join(text)


def run_once(
    argv: list[str], env: dict, timeout: float, idle_window: float, idle_cpu: float, stacks_path: Path | None
) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    samples: list[tuple[float, float]] = []
    outcome = None
    stderr_file = tempfile.TemporaryFile(mode="w+")

    # drain stderr in the background so a chatty child never blocks on a full pipe
    import threading

    def drain():
        for line in proc.stderr:
            stderr_file.write(line)

    threading.Thread(target=drain, daemon=True).start()
    while proc.poll() is None:
        time.sleep(2.0)
        now = time.monotonic() - t0
        samples.append((now, cpu_seconds(proc.pid)))
        past = [c for t, c in samples if t <= now - idle_window]
        if past and samples[-1][1] - past[-1] < idle_cpu:
            outcome = "stalled"
        elif now > timeout:
            outcome = "timeout"
        if outcome:
            if outcome == "stalled" and stacks_path is not None:
                stacks_path.parent.mkdir(parents=True, exist_ok=True)
                stacks_path.write_text(native_stacks(proc.pid))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
    wall = time.monotonic() - t0
    cpu = samples[-1][1] if samples else 0.0
    if outcome is None:
        outcome = "completed" if proc.returncode == 0 else "failed"
    rec = {"outcome": outcome, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "returncode": proc.returncode}
    if outcome == "stalled":
        rec["stalled_after_s"] = round(wall - idle_window, 1)
    if outcome == "failed":
        stderr_file.seek(0)
        rec["stderr_tail"] = stderr_file.read()[-2000:]
    return rec


def interpreter_versions(python: str) -> dict:
    code = (
        "import json, sys, importlib.metadata as md; print(json.dumps({'python': sys.version.split()[0], "
        "**{p: md.version(p) for p in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint')}}))"
    )
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def ensure_dataset(python: str, path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [python, "-m", "jaxrl", "dataset", "make", "Pendulum-v1", "--kind", "medium-replay", "--out", str(path)],
            check=True,
            capture_output=True,
        )


def markdown(records: list[dict], bounds: dict) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        v = r["versions"]
        groups[(r["program"], f"Python {v['python']}, jax {v['jax']}", r["flags"])].append(r)
    lines = [
        "# Stall check: runs that finish, by Python / JAX version and XLA flags",
        "",
        "Made by `benchmarks/stall_check.py` (see its docstring for the programs and flag sets). Each run is a "
        "fresh process on this 2-core x86_64 CPU; a run is *stalled* when its CPU time grew by less than "
        f"{bounds['idle_cpu']} s over {bounds['idle_window']:.0f} s (XLA:CPU's lost wake-up: every thread "
        "idle, the main thread in `BlockUntilReady`), *timeout* when still busy after the bound. Wall times "
        "include compilation (no persistent compilation cache) and were measured on a machine that was "
        "sometimes running other work, so they are upper bounds.",
        "",
        "| program | setup | XLA flags | runs | completed | stalled | timeout / failed | wall s (median, max) "
        "| bound s |",
        "|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for (program, setup, flags), rs in sorted(groups.items()):
        n = len(rs)
        c = sum(r["outcome"] == "completed" for r in rs)
        s = sum(r["outcome"] == "stalled" for r in rs)
        walls = sorted(r["wall_s"] for r in rs if r["outcome"] == "completed")
        wall = f"{walls[len(walls) // 2]:.0f}, {walls[-1]:.0f}" if walls else "-"
        bound = max(r["timeout_s"] for r in rs)
        lines.append(f"| {program} | {setup} | {flags} | {n} | {c} | {s} | {n - c - s} | {wall} | {bound:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="interpreter of a virtual environment with jaxrl installed")
    ap.add_argument("--program", nargs="+", default=["iql-cli"])
    ap.add_argument("--flags", nargs="+", default=["jaxrl"], choices=sorted(FLAG_SETS))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=1200, help="seconds before a busy run counts as 'timeout'")
    ap.add_argument("--idle-window", type=float, default=60)
    ap.add_argument("--idle-cpu", type=float, default=1.0, help="CPU seconds a live run must use per window")
    ap.add_argument("--dataset", help="the iql-cli dataset (default: made once under --work-dir)")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "jaxrl-stall-check"))
    ap.add_argument("--out", default=str(RESULTS / "stall_check.json"))
    ap.add_argument("--keep-outputs", help="copy each run's output files (benchmark tables) into DIR/<cell>-<i>/")
    ap.add_argument("--stacks-dir", default=str(RESULTS / "stall_stacks"))
    a = ap.parse_args(argv)

    work = Path(a.work_dir)
    versions = interpreter_versions(a.python)
    tag = f"py{versions['python']}-jax{versions['jax']}"
    data = Path(a.dataset) if a.dataset else work / "medium-replay.hdf5"  # one dataset for every setup
    out = Path(a.out)
    records = json.loads(out.read_text())["records"] if out.exists() else []
    bounds = {"idle_window": a.idle_window, "idle_cpu": a.idle_cpu}
    for program in a.program:
        if program == "iql-cli":
            ensure_dataset(a.python, data)
        for flags in a.flags:
            env = {**os.environ, "JAXRL_COMPILATION_CACHE": "0", **FLAG_SETS[flags]}
            if flags == "none":
                env.pop("XLA_FLAGS", None)
            stacks = Path(a.stacks_dir) / f"{program}-{tag}-{flags}.txt"
            for i in range(a.runs):
                scratch = Path(
                    tempfile.mkdtemp(prefix=f"{program}-", dir=work.mkdir(parents=True, exist_ok=True) or work)
                )
                rec = run_once(
                    program_argv(program, a.python, data, scratch),
                    env,
                    a.timeout,
                    a.idle_window,
                    a.idle_cpu,
                    None if stacks.exists() else stacks,
                )
                if a.keep_outputs:
                    kept = Path(a.keep_outputs) / f"{program}-{tag}-{flags}-{i + 1}"
                    shutil.copytree(
                        scratch,
                        kept,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "*.hdf5"),
                    )
                shutil.rmtree(scratch, ignore_errors=True)
                rec.update(
                    program=program,
                    flags=flags,
                    versions=versions,
                    timeout_s=a.timeout,
                    load=round(os.getloadavg()[0], 2),
                    date=time.strftime("%Y-%m-%d %H:%M:%S"),
                )
                records.append(rec)
                print(
                    f"{program} {tag} {flags} run {i + 1}/{a.runs}: {rec['outcome']} after {rec['wall_s']} s "
                    f"(cpu {rec['cpu_s']} s, load {rec['load']})",
                    flush=True,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(
                    json.dumps(
                        {
                            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
                            "bounds": bounds,
                            "records": records,
                        },
                        indent=1,
                    )
                )
                out.with_suffix(".md").write_text(markdown(records, bounds))


if __name__ == "__main__":
    main()
