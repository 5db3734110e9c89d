"""The D4RL-style offline table: algorithms x datasets of one env, every cell through a run directory and ``jaxrl
report`` (IQM and mean of the final normalised score with 95% stratified bootstrap CIs over seeds, final and best),
beside CORL's published D4RL scores for the same algorithm and the lecture's model-based table (BC, MOPO, SAC-off, BEAR,
BRAC-v: ``published_scores.py``; their ordering, not their values, is comparable: the simulator differs).

    python experiments/offline_table.py --env brax:halfcheetah:positional       # the CPU locomotion table
    python experiments/offline_table.py --env brax:hopper:positional --algos bc,td3_bc,iql --seeds 5
    python experiments/offline_table.py --quick --env Pendulum-v1 --runs /tmp/runs   # check the pipeline

The datasets are ``experiments/d4rl_datasets.py``'s (the D4RL protocol from one SAC behaviour run per env, same
recipe options, cached under ``--data-dir``; their checksums are in ``experiments/results/d4rl_datasets.md``), or
Minari's MuJoCo datasets that a user has locally (``--minari-root ~/.minari/datasets --minari-env
mujoco/halfcheetah --kinds medium-v0,simple-v0,expert-v0``; nothing is downloaded).

Budget (defaults): every algorithm at its own defaults, which are its paper's (256x256 networks; ReBRAC, SAC-N and
EDAC 3x256; batch 256, ReBRAC 1024; states standardised for TD3+BC, as its paper does; on locomotion, IQL's rewards
scaled by the data's return range, as its paper does there: ``LOCOMOTION_SETTINGS``; on envs that end on a fall,
MOPO's and MOReL's model rollouts 25 steps long: ``FALLING_SETTINGS``; ReBRAC's BC weights per dataset, as its
authors tuned them, and MOPO's h and lambda per dataset, lambda scaled to brax halfcheetah's reward:
``AUTHORS_SETTINGS``; SAC-N's and EDAC's ensembles of 50 on hopper: ``ENSEMBLE_SIZE``; all of it:
``env_settings``), 30,000 gradient updates (MOPO and MOReL: plus their model phase), 3 seeds (5 on medium-replay for
BC, TD3+BC, IQL, CQL, ReBRAC, EDAC and AWAC, which the issue compares there), 10 chunks of 10 evaluation episodes.
Columns: the issue's 16 algorithms on medium, medium-replay and medium-expert, plus the ``random`` dataset for the
lecture's model-based table (BC, SAC-off, BEAR, BRAC-v, MOPO, MOReL) and BC on ``expert`` (``--no-extra-columns``:
run only the three; the table still shows the extra columns' finished cells).

Cells: each (algorithm, env) is one program (seeds x datasets vmapped, the datasets stacked with a validity mask) in
``experiments/results/runs/offline/<env>/<algo>/``; ``--set ALGO.FIELD=VALUE`` overrides a field for every dataset
and ``--set ALGO@KIND.FIELD=VALUE`` for one (ReBRAC's per-dataset betas): an algorithm whose datasets then differ in
config runs one program per distinct config, ``<algo>@<kind>``; ``--split-kinds`` runs a program per dataset (with
``--kinds medium-replay``: the cells the issue's bars compare first; a later run of the whole column keeps them). A
finished cell is kept, a stopped one resumes from its checkpoint when the command is run again; the results file shows
every finished cell of the env (a command for some cells adds to it) and records the command that made each.
``--seeds-per-cell 1`` runs a cell's seeds as programs of their own (``<cell>~seeds<i>-<i>``, pooled by the report):
a cell too long for one session (CQL: ~1 h per seed on one CPU core) then lands a seed at a time, as a
checkpoint does not outlive the machine.

GPU recipe (D4RL scale: 1M-row datasets from ``d4rl_datasets.py``'s GPU recipe, 1M updates, 5 seeds):

    python experiments/offline_table.py --env brax:halfcheetah --size 1000000 --behaviour-steps 3000000 \\
        --behaviour-envs 64 --updates 1000000 --seeds 5
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import results_table
from d4rl_datasets import KINDS as DATA_KINDS
from d4rl_datasets import RESULTS as DATA_RESULTS
from d4rl_datasets import add_recipe_args, recipe_options, recipe_paths, zero_action_line
from published_scores import CORL, LECTURE, Reference
from results_table import RUNS, write_results

from jaxrl.envs.termination import termination_fn

RESULTS = Path(__file__).resolve().parent / "results"
# The columns, in the order of the D4RL paper's tables, then the newer methods.
ALGOS = (
    "bc",
    "sac_offline",
    "bear",
    "brac_p",
    "brac_v",
    "awr",
    "bcq",
    "awac",
    "cql",
    "iql",
    "td3_bc",
    "rebrac",
    "sac_n",
    "edac",
    "mopo",
    "morel",
)
KINDS = ("medium", "medium-replay", "medium-expert")
# Datasets beyond the three columns, for some algorithms: the lecture's model-based table (random) and the
# check that behaviour cloning recovers the final policy (expert).
EXTRA_COLUMNS = {"random": ("bc", "sac_offline", "bear", "brac_v", "mopo", "morel"), "expert": ("bc",)}
FIVE_SEEDS = ("bc", "td3_bc", "iql", "cql", "rebrac", "edac", "awac")  # compared on medium-replay with 5 seeds
# The dataset of those comparisons: only a cell holding it gets 5 seeds (all its datasets do, one program).
FIVE_SEEDS_KIND = "medium-replay"
MODEL_BASED = ("mopo", "morel")  # their updates add the model phase to the policy's
# Settings a paper uses on locomotion data only, so they are not the library's defaults: IQL scales rewards by
# 1000 / (return range) on D4RL's MuJoCo tasks (its appendix; `normalize_rewards` uses the env's horizon for 1000).
LOCOMOTION = ("halfcheetah", "hopper", "walker2d", "ant")
LOCOMOTION_SETTINGS = {"iql": {"normalize_rewards": True}}
# (env word, dataset kind) -> the papers' per-dataset values, as their authors' configs set them. ReBRAC:
# (actor_beta, critic_beta), the same in CORL's configs (the library's defaults, 0.05 and 0.01, are one pair for any
# data). EDAC: eta where the authors' (and CORL's) is not the default 1 (halfcheetah medium-expert: 5). MOPO:
# (h, lambda) from the MOPO authors' D4RL configs; on envs that fall h is FALLING_SETTINGS' instead,
# and lambda is scaled to brax halfcheetah's reward by 0.25: there the authors' lambda makes the penalty (u ~ 4.5
# per step) 4.3x the data's reward std (~1x on hopper), as brax's halfcheetah pays about a third of MuJoCo's reward
# per step (medium-replay: 30.2 at lambda = 1, 37.4 at 0.25; offline_model_based_diagnosis.md).
AUTHORS_SETTINGS = {
    ("halfcheetah", "random"): {"mopo": (5, 0.5)},
    ("halfcheetah", "medium"): {"rebrac": (0.001, 0.01), "mopo": (1, 1.0)},
    ("halfcheetah", "medium-replay"): {"rebrac": (0.01, 0.001), "mopo": (5, 1.0)},
    ("halfcheetah", "medium-expert"): {"rebrac": (0.01, 0.1), "mopo": (5, 5.0), "edac": 5.0},
    ("hopper", "random"): {"mopo": (5, 1.0)},
    ("hopper", "medium"): {"rebrac": (0.01, 0.001), "mopo": (5, 5.0)},
    ("hopper", "medium-replay"): {"rebrac": (0.05, 0.5), "mopo": (5, 1.0)},
    ("hopper", "medium-expert"): {"rebrac": (0.1, 0.01), "mopo": (5, 1.0)},
}
MOPO_LAMBDA_SCALE = {"halfcheetah": 0.25}
# EDAC's ensemble size per env, its authors' (and CORL's): 10 on halfcheetah (the library's default), 50 on
# hopper; eta is 1 but on halfcheetah medium-expert (5, AUTHORS_SETTINGS). The paper kept these over D4RL's reward
# scales (expert ~3.2 per step on hopper to ~12 on halfcheetah); brax's (~4.0 halfcheetah, ~1.8 hopper) are inside
# or near that range, so eta is not rescaled. SAC-N runs at the same N: its own paper's (200 to 500 on hopper) costs
# 4-10x that on a CPU, so the table compares the two at equal N, which is what the diversity term changes (decided
# before either ran here; offline_rebrac_edac_diagnosis.md).
ENSEMBLE_SIZE = {"hopper": 50}
# BRAC's KL weight alpha per env, its authors' where they give one: their README trains brac_primal on HalfCheetah
# with alpha = 0.1, for the value penalty and for policy regularisation alike (google-research,
# behavior_regularized_offline_rl); elsewhere the library's default, 1 (their agent's default). Found after BRAC-v
# at alpha = 1 collapsed on brax halfcheetah medium-replay (value penalty 2.7-4.8 per step against ~0.7 reward) and
# after one diagnosis seed each at 0.25 and 0.1 had been seen (46.5, 49.5; offline_model_based_diagnosis.md): the
# value is the authors' and is not rescaled to brax's reward, as EDAC's eta is not.
BRAC_ALPHA = {"halfcheetah": 0.1}
# On envs that end on a fall (hopper, walker2d, ant: jaxrl.envs.termination), MOPO's and MOReL's model rollouts run
# 25 steps from 200 dataset states, the same 5,000 model steps per iteration as the papers' 5 steps from 1,000: in
# the model, the learned policy falls within 5 steps of 1-2% of dataset states but within 100 of 64-72%, so 5-step
# rollouts hardly show its falls to the critic (MOPO on hopper medium-replay: 1.8 with h = 5, 69.0 with h = 25;
# offline_model_based_diagnosis.md). Only there: MOReL at 25 steps on brax halfcheetah, which never falls, still hardly
# halted and exploited the model more (medium-replay 25.4 against 32.8 at h = 5, medium -6.2).
FALLING_SETTINGS = {algo: {"rollout_horizon": 25, "rollout_batch_size": 200} for algo in MODEL_BASED}
METRIC = "normalized_score"
MARGIN_OVER_BC = 10  # the bar on medium-replay for TD3+BC, IQL, CQL, ReBRAC, MOPO and MOReL
IQM_BARS = (("rebrac", "td3_bc"), ("edac", "sac_n"))  # the "A's IQM over the datasets is at least B's"
# The lecture's MOPO table (the MOPO paper's Table 1): far above BC on random and mixed (= medium-replay) data, close
# to it on medium. "Far above": at least MARGIN_OVER_BC; "close": within it.
LECTURE_MOPO = {"random": "far above", "medium-replay": "far above", "medium": "close to"}
# The datasets of the lecture's whole model-based table (BC, MOPO, SAC-off, BEAR, BRAC-v: published_scores.LECTURE).
LECTURE_KINDS = ("random", "medium", "medium-replay", "medium-expert")
# --quick: a budget that only checks the pipeline
QUICK = dict(updates=200, chunks=2, eval_episodes=1, seeds=2, seeds5=2)
QUICK_CONFIG = dict(hidden=(16, 16), batch_size=32)


def env_settings(env_name: str) -> dict[tuple[str, str | None], dict]:
    """The table's settings on ``env_name``, keyed like ``--set``'s overrides by (algorithm, dataset kind, None for
    every dataset): ``LOCOMOTION_SETTINGS`` on locomotion, ``FALLING_SETTINGS`` on an env that falls, and the authors'
    per-dataset values (``AUTHORS_SETTINGS``; MOPO's lambda times ``MOPO_LAMBDA_SCALE``, its h the falling rule's
    where it falls), SAC-N's and EDAC's ensemble size (``ENSEMBLE_SIZE``) and BRAC's alpha (``BRAC_ALPHA``)."""
    name, falls = env_name.lower(), termination_fn(env_name) is not None
    out: dict[tuple[str, str | None], dict] = {}
    if any(word in name for word in LOCOMOTION):
        out.update({(algo, None): fields for algo, fields in LOCOMOTION_SETTINGS.items()})
    if falls:
        out.update({(algo, None): fields for algo, fields in FALLING_SETTINGS.items()})
    per_env = ((("sac_n", "edac"), "num_critics", ENSEMBLE_SIZE), (("brac_p", "brac_v"), "alpha", BRAC_ALPHA))
    for algos_of_field, field, values in per_env:  # merged into what is already set for the algorithm
        for env, value in values.items():
            if env in name:
                for algo in algos_of_field:
                    out[(algo, None)] = {**out.get((algo, None), {}), field: value}
    for (env, kind), papers in AUTHORS_SETTINGS.items():
        if env not in name:
            continue
        if "rebrac" in papers:
            out[("rebrac", kind)] = dict(zip(("actor_beta", "critic_beta"), papers["rebrac"]))
        if "edac" in papers:
            out[("edac", kind)] = {"eta": papers["edac"]}
        h, lam = papers["mopo"]
        out[("mopo", kind)] = {"penalty_coef": lam * MOPO_LAMBDA_SCALE.get(env, 1.0)} | (
            {} if falls else {"rollout_horizon": h}
        )
    return out


def parse_overrides(items) -> dict[tuple[str, str | None], dict]:
    """``ALGO.FIELD=VALUE`` -> ``{(algo, None): {field: value}}``; ``ALGO@KIND.FIELD=VALUE`` -> key ``(algo, kind)``."""
    out: dict[tuple[str, str | None], dict] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        target, _, field = key.partition(".")
        algo, _, kind = target.partition("@")
        if not field or not value:
            raise SystemExit(
                f"--set {item!r}: expected ALGO.FIELD=VALUE or ALGO@KIND.FIELD=VALUE, e.g. td3_bc.alpha=10"
            )
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault((algo, kind or None), {})[field] = parsed
    return out


def cells_of(algo: str, kinds, overrides: dict, split=()) -> list[tuple[str, list[str], dict]]:
    """``(run directory name, kinds, config overrides)`` per program of ``algo``: one for all its datasets unless
    per-kind overrides make their configs differ, or a kind is in ``split`` (a cell of its own: ``--split-kinds``);
    a program of some of the datasets is named ``<algo>@<kind>+<kind>``."""
    common = overrides.get((algo, None), {})
    by_config: dict[str, tuple[list[str], dict]] = {}
    for kind in kinds:
        cfg = {**common, **overrides.get((algo, kind), {})}
        key = kind if kind in split else json.dumps(cfg, sort_keys=True, default=str)
        by_config.setdefault(key, ([], cfg))[0].append(kind)
    if len(by_config) == 1 and not split:
        (group_kinds, cfg), *_ = by_config.values()
        return [(algo, group_kinds, cfg)]
    return [(f"{algo}@{'+'.join(ks)}", ks, cfg) for ks, cfg in by_config.values()]


def cell_seeds(algo: str, cell_kinds, seeds: int, seeds5: int) -> int:
    """Seeds of a cell: ``seeds5`` for the issue's 5-seed comparisons (``FIVE_SEEDS`` on ``FIVE_SEEDS_KIND``; a
    program holding that kind runs all its kinds at it), ``seeds`` otherwise."""
    return seeds5 if algo in FIVE_SEEDS and FIVE_SEEDS_KIND in cell_kinds else seeds


def own_cell_kinds(algo: str, kinds, root: Path, split_all: bool) -> set[str]:
    """The kinds of ``algo`` that run as cells of their own: all with ``--split-kinds``, else those that already
    have one (so a later run of the whole column keeps them); none where the one-program cell exists."""
    if cell_exists(root, algo):
        return set()
    return {k for k in kinds if split_all or cell_exists(root, f"{algo}@{k}")}


def cell_exists(root: Path, name: str) -> bool:
    """Whether the cell ``name`` has a run directory under ``root``, whole or in seed parts."""
    return (root / name).exists() or any(root.glob(f"{name}{SEED_PART}*"))


SEED_PART = "~seeds"  # <cell>~seeds<first>-<last>: a part of a cell's seeds run as a program of its own


def seed_parts(name: str, seeds: int, per_part: int | None, root: Path) -> list[tuple[str, int | list[int]]]:
    """``(run directory name, seeds)`` of a cell: the whole cell (``seeds`` 0..N-1) in one program, or with
    ``per_part`` its seeds in programs of that many, ``<name>~seeds<first>-<last>`` (each fits in a session on a
    CPU core; ``jaxrl report`` pools a dataset's runs across them). A cell already run whole stays whole."""
    if per_part is None or per_part >= seeds or (root / name).exists():
        return [(name, seeds)]
    starts = range(0, seeds, per_part)
    parts = [list(range(a, min(a + per_part, seeds))) for a in starts]
    return [(f"{name}{SEED_PART}{p[0]}-{p[-1]}", p) for p in parts]


def kept_cells(root: Path, made: list[Path], store: dict) -> list[Path]:
    """Finished cells under ``root`` that this command did not ask for (other algorithms or datasets), so a run of
    some cells adds to the table instead of replacing it."""
    if not root.is_dir():
        return []
    return [
        d
        for d in sorted(root.iterdir())
        if d not in made and (d / "summary.json").exists() and results_table.from_root(d) in store
    ]


def minari_paths(root: str, env: str, kinds) -> list[str]:
    return [str(Path(root).expanduser() / env / k) for k in kinds]


def env_slug(env_name: str) -> str:
    return env_name.replace("brax:", "").replace(":", "-").replace("/", "-")


def run_algo(algo: str, kinds, paths: dict[str, str], args, store: dict) -> list[Path]:
    """The run directories of ``algo`` on ``kinds`` (kept, resumed or trained); records each cell in ``store``."""
    from jaxrl import algos
    from jaxrl.config import replace
    from jaxrl.envs.offline import load_offline_env

    module = algos.get(algo)
    dirs = []
    root = Path(args.runs) / env_slug(args.env)
    split = own_cell_kinds(algo, kinds, root, args.split_kinds)
    for name, cell_kinds, overrides in cells_of(algo, kinds, args.overrides, split):
        cfg = module.Config()
        updates = args.updates + (cfg.model_train_updates if algo in MODEL_BASED else 0)
        cfg = replace(
            cfg, total_env_steps=updates, updates_per_iteration=100, **(QUICK_CONFIG if args.quick else {}), **overrides
        )
        env = load_offline_env([paths[k] for k in cell_kinds])
        seeds_of_cell = cell_seeds(algo, cell_kinds, args.seeds, args.seeds5)
        for part, seeds in seed_parts(name, seeds_of_cell, args.seeds_per_cell, root):
            run_dir = root / part
            if not results_table.run_cell(
                run_dir, algo, env, cfg, seeds=seeds, grid={"dataset_index": list(range(len(cell_kinds)))},
                num_chunks=args.chunks, eval_episodes=args.eval_episodes, command=args.command, skip_if_busy=True,
            ):  # fmt: skip
                continue  # another command (on another core) runs this part and records it
            summary = json.loads((run_dir / "summary.json").read_text())
            recorded = run_dir / results_table.COMMAND_FILE
            store[key := results_table.from_root(run_dir)] = dict(
                command=recorded.read_text().strip() if recorded.exists() else "(not recorded)",
                algo=algo,
                kinds=list(cell_kinds),
                seeds=seeds,
                updates=updates,
                overrides={k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()},
                compile_seconds=summary["compile_seconds"],
                run_seconds=summary["run_seconds"],
                run_seconds_from_iteration=summary.get("run_seconds_from_iteration"),
            )
            record_cell(args.store_path, key, store[key])
            dirs.append(run_dir)
    return dirs


def record_cell(store_path: Path, key: str, record: dict) -> None:
    """Add one finished cell's record to the results JSON at once, so a command stopped before its table is written
    (the end of a session) loses no finished cell: a later command's table shows it. Locked: both cores' commands
    record into the same file."""
    import fcntl

    from jaxrl.run.checkpoint import write_atomic

    store_path.parent.mkdir(parents=True, exist_ok=True)
    with open(store_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = json.loads(store_path.read_text()) if store_path.exists() else {}
        saved.setdefault("cells", {})[key] = record
        write_atomic(store_path, json.dumps(saved, indent=1, default=float) + "\n")


def _fmt(row: dict | None, stat: str = "mean") -> str:
    if row is None:
        return "-"
    low, high = row[f"{stat}_ci"]
    return f"{row[stat]:.1f} [{low:.1f}, {high:.1f}]"


def _ranks(values: dict[str, float]) -> dict[str, int]:
    order = sorted(values, key=lambda a: -values[a])
    return {a: order.index(a) + 1 for a in values}


def comparison(
    groups: dict[tuple[str, str], dict], env_name: str, kinds, algos, ref: Reference = CORL, every_algo: bool = True
) -> list[str]:
    """Per dataset: our final score (mean [95% CI], IQM, best) per algorithm beside ``ref``'s published score (last,
    and best where it has one), and both rankings over the algorithms ``ref`` also ran, with their Spearman
    correlation. ``every_algo``: list our algorithms that ``ref`` did not run too (with ``-`` in its columns)."""
    lines = [f"## Against {ref.title} (ordering only: a different simulator)", ""]
    theirs_of = lambda a, kind, stat="last": ref.score(env_name, kind, a, stat)
    stats = ("last", "best") if ref.best else ("last",)
    for kind in kinds:
        rows = {a: groups.get((a, kind)) for a in algos if groups.get((a, kind))}
        ours = {a: r["mean"] for a, r in rows.items() if theirs_of(a, kind) is not None}
        if not every_algo:
            rows = {a: r for a, r in rows.items() if a in ours}
        if not rows or (not every_algo and len(ours) < 2):
            continue
        theirs = {a: theirs_of(a, kind) for a in ours}
        rank_ours, rank_theirs = _ranks(ours), _ranks(theirs)  # type: ignore[arg-type]
        lines += [f"**{kind}**", ""]
        their_columns = " | ".join(f"{ref.label} {stat}" if ref.best else ref.label for stat in stats)
        lines.append(f"| algorithm | final, mean [95% CI] | IQM [95% CI] | best | {their_columns} | rank "
                     f"| {ref.label} rank |")  # fmt: skip
        lines.append("| --- | --- | --- | ---: | " + "---: | " * len(stats) + "---: | ---: |")
        for a, r in rows.items():
            scores = [theirs_of(a, kind, stat) for stat in stats]
            their_cells = " | ".join("-" if x is None else f"{x:.1f}" for x in scores)
            lines.append(
                f"| {a} | {_fmt(r)} | {_fmt(r, 'iqm')} | {r['best']:.1f} | {their_cells} | "
                f"{rank_ours.get(a, '-')} | {rank_theirs.get(a, '-')} |"
            )
        if len(ours) >= 3:
            a_list = list(ours)
            rho = np.corrcoef([rank_ours[a] for a in a_list], [rank_theirs[a] for a in a_list])[0, 1]
            lines += ["", f"Spearman rank correlation with {ref.label} over {len(a_list)} algorithms: {rho:.2f}."]
        lines.append("")
    return lines


def checks(groups: dict[tuple[str, str], dict], data_scores: dict[str, float | None], seeds5: int = 5) -> list[str]:
    """The issue's bars, as measured (mean final score over seeds); ``data_scores``: each dataset's own
    normalised return; a bar's cells with fewer than ``seeds5`` seeds so far (seed parts still to run) say so."""
    mean = lambda a, k: groups[(a, k)]["mean"] if (a, k) in groups else None
    lines = ["## The issue's bars, as measured (mean final normalised score)", ""]
    bc = mean("bc", "medium-replay")
    for a in ("td3_bc", "iql", "cql", "rebrac", "mopo", "morel"):
        x = mean(a, "medium-replay")
        if bc is not None and x is not None:
            verdict = "met" if x - bc >= MARGIN_OVER_BC else "NOT met"
            runs = groups[(a, "medium-replay")].get("runs", seeds5)
            so_far = f" ({runs} of {seeds5} seeds so far)" if a in FIVE_SEEDS and runs < seeds5 else ""
            lines.append(
                f"- medium-replay: {a} {x:.1f} vs BC {bc:.1f}: {x - bc:+.1f} (bar: +{MARGIN_OVER_BC}) {verdict}{so_far}"
            )
    lines += iqm_bar_lines({(a, k): g["iqm"] for (a, k), g in groups.items()}, KINDS)
    for kind, where in LECTURE_MOPO.items():
        x, b = mean("mopo", kind), mean("bc", kind)
        if x is not None and b is not None:
            held = x - b >= MARGIN_OVER_BC if where == "far above" else abs(x - b) <= MARGIN_OVER_BC
            lines.append(f"- the lecture's MOPO table, {kind}: mopo {x:.1f} vs BC {b:.1f}: {x - b:+.1f} (lecture: MOPO "
                         f"{where} BC) {'holds' if held else 'does NOT hold'}")  # fmt: skip
    x = mean("bc", "expert")
    if x is not None:
        lines.append(f"- BC on expert: {x:.1f} (bar: >= 90) {'met' if x >= 90 else 'NOT met'}")
    x, own = mean("bc", "medium"), data_scores.get("medium")
    if x is not None and own is not None:
        verdict = "met" if abs(x - own) <= 15 else "NOT met"
        lines.append(
            f"- BC on medium: {x:.1f}, the medium data's own {own:.1f}: {x - own:+.1f} (bar: within 15) {verdict}"
        )
    return lines + [""]


def iqm_bar_lines(iqms: dict[tuple[str, Any], float], datasets) -> list[str]:
    """The issue's IQM bars (``IQM_BARS``) over ``datasets``: the mean of the per-dataset IQMs (``iqms`` keyed by
    (algorithm, dataset)), met or not once both algorithms have every dataset, else how many each has so far."""
    lines = []
    for a, b in IQM_BARS:
        have = {x: [iqms[(x, d)] for d in datasets if (x, d) in iqms] for x in (a, b)}
        if all(len(v) == len(datasets) for v in have.values()):
            x, y = np.mean(have[a]), np.mean(have[b])
            lines.append(f"- IQM over the {len(datasets)} datasets (mean of the per-dataset IQMs): {a} {x:.1f} vs {b} "
                         f"{y:.1f} (bar: {a} >= {b}) {'met' if x >= y else 'NOT met'}")  # fmt: skip
        else:
            lines.append(f"- IQM over the {len(datasets)} datasets: so far {a} has {len(have[a])} and {b} "
                         f"{len(have[b])} of them")  # fmt: skip
    return lines


def across_envs(groups: dict[tuple[str, str], dict], env_name: str, budget: str, results: Path) -> list[str]:
    """``iqm_bar_lines`` over every env's three datasets: this env's ``groups`` and each other env's results store
    in ``results`` made at the same ``budget``; nothing when no other env has one."""
    iqms = {(a, (env_name, k)): g["iqm"] for (a, k), g in groups.items() if k in KINDS}
    for path in sorted(results.glob("offline_*.json")):
        store = json.loads(path.read_text())
        if store.get("budget") != budget or not isinstance(store.get("report"), dict):
            continue
        for key, g in store["report"].items():
            algo, _, dataset = key.partition(", ")
            kind = kind_of(dataset)
            env = dataset.removesuffix(f"-{kind}")
            if env != env_name and kind in KINDS:
                iqms[(algo, (env, kind))] = g["iqm"]
    envs = list(dict.fromkeys([env_name] + [env for _, (env, _) in iqms]))
    if len(envs) < 2:
        return []
    datasets = [(e, k) for e in envs for k in KINDS]
    header = f"## Across envs: {', '.join(envs)} ({len(datasets)} datasets, the same budget)"
    return [header, "", *iqm_bar_lines(iqms, datasets), ""]


def reference_lines(env_name: str) -> list[str]:
    """The do-nothing reference of ``env_name``'s datasets, from ``d4rl_datasets.py``'s record of them."""
    path = DATA_RESULTS / "d4rl_datasets.json"
    entry = json.loads(path.read_text()).get(env_name, {}) if path.exists() else {}
    return [zero_action_line(entry), ""] if "zero_action_return" in entry else []


def cell_notes(store: dict, dirs: list[Path]) -> list[str]:
    notes = [
        "Cells (run directory: algorithm, datasets, seeds, updates, overrides, compile + run seconds, command):",
        "",
    ]
    for d in dirs:
        c = store[results_table.from_root(d)]
        notes.append(
            f"- `{d.name}`: {c['algo']} on {', '.join(c['kinds'])}; {_seeds_text(c['seeds'])}; "
            f"{c['updates']:,} updates; "
            f"overrides {json.dumps(c['overrides']) if c['overrides'] else 'none'}; {c['compile_seconds']:.0f} + "
            f"{c['run_seconds']:.0f} s{results_table.resumed_seconds_caveat(c.get('run_seconds_from_iteration'))}; "
            f"`{c['command']}`{results_table.run_note(d)}"
        )
    return notes + [""]


def _seeds_text(seeds: int | list[int]) -> str:
    return f"{seeds} seeds" if isinstance(seeds, int) else f"seeds {', '.join(map(str, seeds))}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="brax:halfcheetah:positional", help="jaxrl env the datasets are made from")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--extra-columns", action=argparse.BooleanOptionalAction, default=True,
                   help=f"also these datasets for these algorithms: {EXTRA_COLUMNS}")  # fmt: skip
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 3)")
    p.add_argument(
        "--seeds5",
        type=int,
        default=None,
        help=f"seeds of {', '.join(FIVE_SEEDS)} in a cell holding {FIVE_SEEDS_KIND} (default 5)",
    )
    p.add_argument("--seeds-per-cell", type=int, default=None,
                   help=f"run a cell's seeds in programs of this many, <cell>{SEED_PART}<first>-<last> (a cell too "
                   "long for one session then lands a part at a time; the report pools them)")  # fmt: skip
    p.add_argument("--updates", type=int, default=None, help="gradient updates (default 30,000)")
    p.add_argument("--chunks", type=int, default=None, help="evaluations (and checkpoints) per run (default 10)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (default 10)")
    p.add_argument("--set", action="append", default=[], help="ALGO.FIELD=VALUE or ALGO@KIND.FIELD=VALUE")
    p.add_argument("--split-kinds", action="store_true",
                   help="a cell per (algorithm, dataset), <algo>@<kind>: a bar's cells can run first")  # fmt: skip
    add_recipe_args(p)
    p.add_argument("--minari-root", default=None, help="read Minari datasets from here instead of generating")
    p.add_argument("--minari-env", default=None, help="e.g. mujoco/halfcheetah (with --minari-root)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--quick", action="store_true", help="check the pipeline: tiny networks and budget, 2 seeds")
    p.add_argument("--runs", default=None, help="root of the run directories (<runs>/<env>/<algo>/)")
    p.add_argument("--out", default=None, help="results file (default experiments/results/offline_<env>.md)")
    a = p.parse_args(argv)
    a.command = results_table.command_line(__file__, argv)
    defaults = dict(updates=30_000, chunks=10, eval_episodes=10, seeds=3, seeds5=5)
    for name, full in defaults.items():
        if getattr(a, name) is None:
            setattr(a, name, QUICK[name] if a.quick else full)
    if a.quick:  # a small behaviour run and dataset, enough to exercise every step
        a.size, a.behaviour_steps, a.behaviour_hidden = min(a.size, 2_000), a.behaviour_steps or 4_000, (32, 32)
    if a.seeds_per_cell is not None and a.seeds_per_cell < 1:
        p.error(f"--seeds-per-cell must be >= 1, got {a.seeds_per_cell}")
    a.overrides = parse_overrides(a.set)
    for key, fields in env_settings(a.minari_env if a.minari_root else a.env).items():  # --set still wins
        a.overrides[key] = {**fields, **a.overrides.get(key, {})}
    unknown = sorted({algo for algo, _ in a.overrides} - set(ALGOS))
    if unknown:
        p.error(f"--set names algorithms {unknown} that are not columns: {list(ALGOS)}")
    a.runs = a.runs or str(RUNS / ("offline_quick" if a.quick else "offline"))
    a.out = a.out or str((Path(a.runs) if a.quick else RESULTS) / f"offline_{env_slug(a.env)}.md")
    a.store_path = Path(a.out).with_suffix(".json")
    return a


def main(argv=None) -> dict:
    from jaxrl.run.dataset_cli import describe

    a = parse_args(argv)
    kinds = a.kinds.split(",")
    names = a.algos.split(",")
    # Minari's MuJoCo datasets have no random/expert of this behaviour policy: only the kinds asked for
    extra_run = {k: v for k, v in EXTRA_COLUMNS.items() if a.extra_columns and not a.minari_root and k not in kinds}
    all_kinds = kinds + [k for k, algos in extra_run.items() if set(algos) & set(names)]
    if a.minari_root:
        paths = dict(zip(all_kinds, minari_paths(a.minari_root, a.minari_env, all_kinds)))
        a.env = a.minari_env
    else:
        made = recipe_paths(a.env, DATA_KINDS, a.data_dir, **recipe_options(a))
        paths = dict(zip(DATA_KINDS, made))
    out = Path(a.out)
    store_path = a.store_path
    saved = json.loads(store_path.read_text()) if store_path.exists() else {}
    store = saved.get("cells", {})
    dirs: list[Path] = []
    for algo in names:
        algo_kinds = kinds + [k for k, algos in extra_run.items() if algo in algos]
        dirs += run_algo(algo, algo_kinds, paths, a, store)
    dirs += kept_cells(Path(a.runs) / env_slug(a.env), dirs, store)
    dirs.sort(key=lambda d: (ALGOS.index(d.name.split(SEED_PART)[0].split("@")[0]), d.name))  # the column order
    # the whole table's columns, whichever cells this command ran (its finished cells are kept)
    columns = kinds if a.minari_root else list(dict.fromkeys([*KINDS, *kinds]))
    # --no-extra-columns only changes what this command RUNS: the table still shows the finished extra columns
    extra_shown = {k: v for k, v in EXTRA_COLUMNS.items() if not a.minari_root and k not in columns}
    shown_kinds = columns + list(extra_shown)
    data_scores = {k: describe(p).get("normalized_score_of_data") for k, p in paths.items() if k in shown_kinds}
    wanted = [(n, k) for n in ALGOS for k in columns + [k for k, algos in extra_shown.items() if n in algos]]

    def findings(result: dict) -> list[str]:
        groups = groups_of(result)
        missing = missing_algos(groups)
        absent = [f"{n} on {k}" for n, k in wanted if (n, k) not in groups and n not in missing]
        planned = {(n, k): cell_seeds(n, [k], a.seeds, a.seeds5) for n, k in groups}
        short = [
            f"{n} on {k} ({g['runs']} of {planned[n, k]})" for (n, k), g in groups.items() if g["runs"] < planned[n, k]
        ]
        shown_algos = [n for n in ALGOS if n not in missing]
        return [*partial_lines(missing, absent, short), *reference_lines(a.env), *checks(groups, data_scores, a.seeds5),
                *across_envs(groups, a.env, budget_line(a), out.parent),
                *comparison(groups, a.env, shown_kinds, shown_algos),
                *comparison(groups, a.env, LECTURE_KINDS, shown_algos, LECTURE, every_algo=False),
                *cell_notes(store, dirs)]  # fmt: skip

    result = write_results(
        dirs,
        out,
        title=f"Offline RL on {a.env}: D4RL-protocol datasets",
        budget=budget_line(a),
        by=["algo", "dataset"],
        metric=METRIC,
        findings=findings,
        reps=a.reps,
        command=a.command,
    )
    groups = groups_of(result)
    # cells another command (on the other core) recorded while this one ran stay in the store
    latest = json.loads(store_path.read_text()).get("cells", {}) if store_path.exists() else {}
    store = {**latest, **store}
    results_table.write_store(out, result, budget=budget_line(a), missing=missing_algos(groups), cells=store)
    return {f"{algo}|{kind}": g for (algo, kind), g in groups.items()}


def partial_lines(missing: list[str], absent: list[str], short: Sequence[str] = ()) -> list[str]:
    """The table's "partial" warning: the algorithms without any cell, the (algorithm, dataset) cells not run, then
    the cells with fewer seeds so far than their plan (seed parts still to run)."""
    if not missing and not absent and not short:
        return []
    have = f"{len(ALGOS) - len(missing)} of the {len(ALGOS)} algorithms so far" if missing else "every algorithm"
    gaps = []
    if missing:
        gaps.append(f"algorithms {', '.join(missing)}")
    if absent:
        gaps.append(", ".join(absent))
    what = f" (missing: {'; and '.join(gaps)})" if gaps else ""
    fewer = f" (short of their seeds: {', '.join(short)})" if short else ""
    return [
        f"**Partial: {have}**{what}{fewer}; the others run as resumable cells: the command without --algos runs "
        "every column, keeping the finished cells, and rewrites this file.",
        "",
    ]


def groups_of(result: dict) -> dict[tuple[str, str], dict]:
    """The report's groups by (algorithm, dataset kind)."""
    return {(g["fields"]["algo"], _kind(g)): g for g in result["groups"]}


def missing_algos(groups: dict[tuple[str, str], dict]) -> list[str]:
    """The table's algorithms without any finished cell."""
    return [n for n in ALGOS if not any(algo == n for algo, _ in groups)]


def _kind(group: dict) -> str:
    """The dataset kind of a report group."""
    return kind_of(str(group["fields"]["dataset"]))


def kind_of(dataset: str) -> str:
    """The kind of a dataset named ``<env>-<kind>`` (the longest kind it ends with: medium-replay, not medium)."""
    return next(k for k in sorted(DATA_KINDS, key=len, reverse=True) if dataset.endswith(k))


def budget_line(a) -> str:
    return (
        f"{a.updates:,} gradient updates per run (MOPO, MOReL: plus their model phase); {a.seeds} seeds ("
        f"{a.seeds5} for {', '.join(FIVE_SEEDS)} in a cell holding {FIVE_SEEDS_KIND}; each cell's count is listed with "
        "it); each algorithm at its own (its paper's) defaults, but for the "
        "overrides listed with each cell below"
        + (" shrunk by --quick" if a.quick else "")
        + f"; {a.chunks} chunks of {a.eval_episodes} evaluation episodes; datasets: "
        + (f"Minari {a.minari_env}" if a.minari_root else f"d4rl_datasets.py's, {a.size:,} rows (medium / expert)")
    )


if __name__ == "__main__":
    main()
