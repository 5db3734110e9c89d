"""One way for the experiment scripts to turn their run directories into a results file: ``jaxrl report``'s table
(IQM and mean with 95% stratified bootstrap CIs, probability of improvement, figures) under a header that states
the budget, the seeds, the hardware and the command that made the runs.

    from results_table import run_cell, write_results
    run_dir = run_cell(RUNS / "maml_nav2d" / "maml", "maml", family, config, seeds=5, num_chunks=4, eval_episodes=20)
    write_results(run_dirs, "experiments/results/maml_nav2d.md", title=..., budget=..., metric="adaptation")

The report's figures and CSV go to ``<results file without .md>/`` beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RUNS = Path(__file__).resolve().parent / "results" / "runs"  # the scripts' run directories (committed, not checkpoints)
COMMAND_FILE = "command.txt"  # in a cell's run directory: the command that trained it


def command_line(script: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command line of ``script`` with ``argv`` (default: this process's), the script named from the repository
    root."""
    script, argv = (script or sys.argv[0]), (sys.argv[1:] if argv is None else argv)
    return "python " + shlex.join([from_root(script), *argv])


def run_cell(
    run_dir: str | Path,
    algo: str,
    env: Any,
    config: Any,
    command: str | None = None,
    skip_if_busy: bool = False,
    **train_kw,
) -> Path | None:
    """One resumable cell of an experiment: ``jaxrl.run.train(algo, env, config, out_dir=run_dir, **train_kw)``,
    except that a finished run directory is kept, a stopped one resumes from its last checkpoint (with ``env`` when
    it is an env object rather than a registered name) and one stopped before its first checkpoint starts again.
    When SIGINT/SIGTERM stops the cell mid-way (it is saved), the script exits rather than start its next cell.

    While it trains, the cell holds a lock beside its directory, so two commands never write one run: a second
    command asking for an unfinished cell that another one is running exits naming it, or with ``skip_if_busy``
    returns None and goes on (two commands on two cores then share a cell's seed parts)."""
    import fcntl

    from jaxrl.run.recorder import is_finished

    run_dir = Path(run_dir)
    differences = cell_differences(run_dir, algo, env, config, **train_kw)
    if differences:
        sys.exit(
            f"{run_dir} holds a run made with other settings ({'; '.join(differences)}): it is kept as it is; move it "
            "away (or choose another run root) to run this cell with the settings asked for"
        )
    if is_finished(run_dir):
        return run_dir
    lock_path = cell_lock(run_dir)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if skip_if_busy:
                print(f"skipping {run_dir}: another command is running it", flush=True)
                return None
            sys.exit(f"{run_dir} is being run by another command (it holds {lock_path}); wait for it to finish")
        if not is_finished(run_dir):  # (the command that held the lock may have finished it meanwhile)
            _train_or_resume(run_dir, algo, env, config, command, **train_kw)
        if is_finished(run_dir):
            # Removed while held, so a folder of results holds only run directories. A command that opened the old
            # file meanwhile then locks the unlinked one and finds the cell finished; a stopped cell keeps its file.
            lock_path.unlink(missing_ok=True)
    if not is_finished(run_dir):
        sys.exit(f"stopped: {run_dir} saved mid-way; run the same command again to resume it")
    return run_dir


def _train_or_resume(run_dir: Path, algo: str, env: Any, config: Any, command: str | None, **train_kw) -> None:
    """Resume the cell from its last checkpoint, or (none yet) start it afresh in an emptied ``run_dir``."""
    from jaxrl.run import resume, train

    if (run_dir / "checkpoints").exists():
        resume(run_dir, progress=False, tensorboard=False, **({} if isinstance(env, str) else {"env": env}))
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / COMMAND_FILE).write_text((command or command_line()) + "\n")  # the cell's record of what made it
    train(algo, env, config, out_dir=run_dir, progress=False, tensorboard=False, **train_kw)


def cell_lock(run_dir: Path) -> Path:
    """The lock file a running cell holds: beside its run directory (which a fresh start deletes), git-ignored;
    removed when the cell finishes."""
    return run_dir.parent / f".{run_dir.name}.lock"


# Config fields added after finished cells were saved, with the value those cells ran as (the behaviour before the
# field existed): a saved cell without the field matches only that value.
FIELDS_ADDED = {"normalize_states": False, "normalize_rewards": False, "critic_layout": "jaxrl"}


def cell_differences(run_dir: Path, algo: str, env: Any, config: Any, **train_kw) -> list[str]:
    """How the run already in ``run_dir`` (if any) differs from the cell asked for: algorithm, config fields (one
    the saved run predates counts as its value in ``FIELDS_ADDED``), seeds, grid, chunks, evaluation episodes and
    dataset files. Empty when it matches or there is none."""
    from jaxrl.config import to_dict

    path = run_dir / "config.json"
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    plain = lambda x: json.loads(json.dumps(x, default=str))
    out = [f"algo {saved['algo']!r}, not {algo!r}"] if saved["algo"] != algo else []
    wanted = plain(to_dict(config))
    out += [
        f"{k}={saved['config'][k]!r}, not {wanted[k]!r}"
        for k in sorted(set(wanted) & set(saved["config"]))
        if saved["config"][k] != wanted[k]
    ]
    out += [
        f"{k}={FIELDS_ADDED[k]!r} (made before the field existed), not {wanted[k]!r}"
        for k in sorted(set(wanted) - set(saved["config"]))
        if k in FIELDS_ADDED and FIELDS_ADDED[k] != wanted[k]
    ]
    if "seeds" in train_kw:
        seeds = train_kw["seeds"]
        wanted_seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
        if list(saved["seeds"]) != wanted_seeds:
            out.append(f"seeds {saved['seeds']}, not {wanted_seeds}")
    if plain(train_kw.get("grid") or {}) != (saved.get("grid") or {}):
        out.append(f"grid {saved.get('grid')}, not {train_kw.get('grid')}")
    out += [
        f"{k}={saved.get(k)}, not {train_kw[k]}"
        for k in ("num_chunks", "eval_episodes")
        if k in train_kw and saved.get(k) != train_kw[k]
    ]
    paths = getattr(env[0] if isinstance(env, tuple) else env, "paths", None)  # an offline env's dataset files
    if paths is not None and saved.get("env_metadata", {}).get("dataset_paths") != list(paths):
        out.append(f"datasets {saved.get('env_metadata', {}).get('dataset_paths')}, not {list(paths)}")
    return out


def variants_parser(
    doc: str, name: str, *, steps: int, variants: str, chunks: int, eval_episodes: int, eval_help: str = ""
) -> argparse.ArgumentParser:
    """The options every variants-vs-variants script takes (``--seeds``, ``--steps``, ``--variants``,
    ``--eval-episodes``, ``--chunks``, ``--out``, ``--runs``), with its defaults; ``name`` names the results file
    (``experiments/results/<name>.md``) and the run directories (``experiments/results/runs/<name>/``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=steps, help="env steps per seed")
    parser.add_argument("--variants", default=variants, help="comma-separated variants")
    parser.add_argument("--eval-episodes", type=int, default=eval_episodes, help=eval_help or None)
    parser.add_argument("--chunks", type=int, default=chunks, help="checkpoints (and evaluations) per variant")
    parser.add_argument("--out", default=str(RUNS.parent / f"{name}.md"), help="the results file")
    parser.add_argument("--runs", default=str(RUNS / name), help="directory of the variants' run directories")
    return parser


def hardware() -> str:
    import jax

    from jaxrl.run.recorder import cpu_line, host_cpu

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (
        f"{cpu_line(host_cpu())}, {devices} ({jax.default_backend()}); "
        f"Python {platform.python_version()}, jax {jax.__version__}"
    )


def resumed_seconds_caveat(iteration: int | None) -> str:
    """The caveat for a run's seconds when its summary counts them from ``iteration`` only (it resumed from a
    checkpoint saved before checkpoints carried the seconds so far)."""
    return "" if iteration is None else f" (counted from iteration {iteration:,}: the run resumed there)"


RUN_NOTE = "note.md"  # in a run directory: how it was run, where that matters to its numbers (e.g. a suspension)


def run_note(run_dir: str | Path) -> str:
    """A run directory's :data:`RUN_NOTE`, as `` (text)`` to print beside its row, or ``""`` without one."""
    note = Path(run_dir) / RUN_NOTE
    return f" ({note.read_text().strip()})" if note.exists() else ""


def from_root(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    resolved = Path(path).resolve()
    root = Path(__file__).resolve().parents[1]
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)


def write_results(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    title: str,
    budget: str,
    by: Sequence[str] | None = None,
    metric: str | None = None,
    notes: Sequence[str] = (),
    findings: Callable[[dict], Sequence[str]] | None = None,
    reps: int = 2000,
    command: str | None = None,
) -> dict:
    """Write ``out`` (markdown): the header, ``notes``, then :func:`jaxrl.run.report.report` over ``run_dirs``;
    returns the report's dict. ``findings(report)``: lines drawn from the report itself (bars, orderings), placed
    before ``notes``."""
    from jaxrl.run.report import markdown, report

    out = Path(out)
    result = report(run_dirs, by=by, metric=metric, out_dir=out.with_suffix(""), reps=reps)
    # run directories named from the repository root, so the file reads the same on every checkout
    shown = dict(result, run_dirs=[from_root(d) for d in result["run_dirs"]])
    body = markdown(shown, result["files"][2:]).split("\n", 1)[1]  # the report without its own title
    figures_dir = out.with_suffix("").name
    body = body.replace("](", f"]({figures_dir}/")  # figure links relative to the results file
    header = [
        f"# {title}",
        "",
        f"Budget: {budget}. Hardware: {hardware()}.",
        f"Command: `{command or command_line()}`; produced through `jaxrl report` (`jaxrl.run.report`).",
        *([""] + list(findings(result)) if findings else []),
        *([""] + list(notes) if notes else []),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + body)
    return result


def write_store(out: str | Path, result: dict, *, budget: str, missing: Sequence[str], cells: dict) -> None:
    """The results file's JSON twin (``out`` with ``.json``): the budget, the cells still missing (a partial table),
    each cell's record and the report's per-group scalars; then say where the table went."""
    out = Path(out)
    groups = {g["group"]: {k: g[k] for k in g if not isinstance(g[k], (list, dict))} for g in result["groups"]}
    store = {"budget": budget, "partial": list(missing), "cells": cells, "report": groups}
    out.with_suffix(".json").write_text(json.dumps(store, indent=1, default=float) + "\n")
    print(f"wrote {out}" + (f" (partial: {list(missing)} missing)" if missing else ""), flush=True)
