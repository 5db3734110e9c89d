"""D4RL-protocol datasets on brax locomotion: one SAC behaviour run per env gives every kind, as D4RL made them.

* ``random``: rollouts of the untrained behaviour policy (SAC at its initial weights);
* ``medium``: rollouts of the behaviour policy when its evaluation return was closest to one third of the way from
  a uniformly random policy's return to the final policy's (normalised ~33);
* ``medium-replay``: the whole replay buffer of the behaviour run up to that policy;
* ``expert``: rollouts of the final policy; ``medium-expert``: medium and expert concatenated.

The reference returns for normalisation (``random_return``: uniformly random actions; ``expert_return``: the final
policy, deterministic) are stored in every file; beside them the results record the return of doing nothing (the
zero action every step), which brax hopper's alive bonus makes high (its zero action never falls). Each file's
make-up (rows, episodes, return of its episodes, normalised) and its sha256 (of the file: what a run's
``env_metadata.dataset_hashes`` records; and of its arrays alone, the same in any format) go into
``experiments/results/d4rl_datasets.md`` and ``.json``.

CPU budget (the default; brax's positional pipeline, ~27k env steps/s on this 2-core CPU where the default
generalized one runs ~70; the behaviour SAC run is the cost, one env, one update per step):

    python experiments/d4rl_datasets.py

GPU recipe at D4RL's sizes (1M-row medium / expert datasets, walker2d too, the default pipeline):

    python experiments/d4rl_datasets.py --envs brax:halfcheetah,brax:hopper,brax:walker2d --size 1000000 \\
        --behaviour-steps 3000000 --behaviour-envs 64 --out halfcheetah_hopper_walker2d_1m.md

The files are cached under ``--data-dir`` with the behaviour recipe in their names, so a changed recipe never reuses
an older file; ``experiments/offline_table.py`` reads them from the same place. A re-run rebuilds the tables from
the files it finds (nothing is retrained) and checks their checksums against the saved JSON. Each behaviour run
leaves a snapshot (its final actor, evaluations and reference returns, a few hundred kB), committed under
``results/d4rl_behaviour/``: on a fresh machine the datasets are rebuilt from it by retraining the behaviour run only
up to its medium policy (halfcheetah's 4 of 60 chunks, hopper's 20 of 100) and checked bit for bit against the run
(on a fresh 2-core machine, 2026-12-06: 487 s for halfcheetah and 1,005 s for hopper, one core each; all ten
sha256 equal to the JSON's). That rerun reproduces only on a CPU with the same instruction-set extensions as the one
that made the run (XLA:CPU compiles for the host's): :data:`REPRODUCING` says what was seen.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BEHAVIOUR = RESULTS / "d4rl_behaviour"
KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")
# What rebuilding from the snapshots was seen to need (written into the results file under the tables).
REPRODUCING = (
    "**Rebuilding on another machine.** The snapshot's rerun checks each chunk's evaluation bit for bit, and XLA:CPU "
    "compiles for the host's instruction set, so the datasets rebuild only on a CPU with the same extensions as the "
    "one that made the run (snapshots record it from 2026-12-07 on; these two were made and rebuilt before that, on "
    "the AVX-512 machines that `benchmarks/results` records for early December). On an AVX2-only AMD EPYC "
    "(2026-12-07) the first chunk already differs: halfcheetah 441.2 against the saved 332.28, hopper 671.6 against "
    "561.1 (the same with mujoco 3.17.0 in place of 4.0.1); halfcheetah's is 808.6 with XLA's XNNPACK off and "
    "-20.9 with its platform-dependent math off. The saved final actor's expert rollouts there differ in their "
    "bits, not in their returns (mean 3820.5 against 3810.2 on halfcheetah). On such a machine the offline tables "
    "cannot grow: retraining in full makes other datasets, and cells on them do not pool with these. The vendor "
    "does not matter, the extensions do: an Intel Xeon with AVX-512 (family 6 model 167, 2026-12-07) rebuilt both "
    "envs' five files bit for bit (every chunk's evaluation and every checksum; halfcheetah 6 min, hopper 14 min on "
    "one core each), as the AMD machines with AVX-512 did."
)
# Behaviour SAC env steps per env on the CPU budget: enough for the final policy to be well past what standing
# still earns (hopper's alive bonus pays ~1020 per episode for doing nothing, above a 150k-step SAC run).
BEHAVIOUR_STEPS = {"brax:halfcheetah:positional": 300_000, "brax:hopper:positional": 500_000}
DEFAULT_ENVS = tuple(BEHAVIOUR_STEPS)


def recipe_tag(recipe: dict) -> str:
    """The behaviour recipe in a file name (``150000x1-h256x256-c50``; ``-s3`` for seed 3)."""
    tag = f"{recipe['behaviour_steps']}x{recipe['behaviour_envs']}"
    if tuple(recipe["behaviour_hidden"]) != (64, 64):
        tag += "-h" + "x".join(map(str, recipe["behaviour_hidden"]))
    if recipe["behaviour_chunks"]:
        tag += f"-c{recipe['behaviour_chunks']}"
    if recipe["seed"]:
        tag += f"-s{recipe['seed']}"
    return tag


def resolve_recipe(
    env_name: str,
    size: int = 100_000,
    behaviour_steps: int | None = None,
    behaviour_envs: int = 1,
    behaviour_hidden=(256, 256),
    behaviour_chunks: int | None = None,
    seed: int = 0,
) -> dict:
    """The behaviour recipe with this script's defaults filled in (behaviour steps per env from
    :data:`BEHAVIOUR_STEPS`, one evaluation per 5,000 env steps)."""
    steps = behaviour_steps or BEHAVIOUR_STEPS.get(env_name, 1_000_000)
    return dict(
        size=size,
        behaviour_steps=steps,
        behaviour_envs=behaviour_envs,
        behaviour_hidden=tuple(behaviour_hidden),
        behaviour_chunks=behaviour_chunks or max(1, steps // (5_000 * behaviour_envs)),
        seed=seed,
    )


def dataset_paths(env_name: str, kinds, data_dir: str | Path, recipe: dict) -> dict[str, Path]:
    """Where the datasets of this recipe live (the file names carry it, so a changed recipe never reuses older
    files)."""
    tag = env_name.replace(":", "-").replace("/", "-")
    return {k: Path(data_dir) / f"{tag}-{k}-{recipe['size']}-{recipe_tag(recipe)}.hdf5" for k in kinds}


def snapshot_path(env_name: str, recipe: dict, root: str | Path = BEHAVIOUR) -> Path:
    """The snapshot of the behaviour run of ``recipe`` (final actor, evaluations, reference returns) under
    ``root``: with it a fresh machine rebuilds the datasets by retraining only up to the medium policy. Every run
    leaves one beside its datasets; this script copies the ones of its tables to ``BEHAVIOUR``, committed."""
    return Path(root) / f"{env_name.replace(':', '-')}-{recipe_tag(recipe)}.msgpack"


def saved_snapshot(env_name: str, recipe: dict, data_dir: str | Path) -> Path | None:
    """The committed snapshot of ``recipe``, else one left under ``data_dir``, else None."""
    found = [p for p in (snapshot_path(env_name, recipe), snapshot_path(env_name, recipe, data_dir)) if p.exists()]
    return found[0] if found else None


def make_or_load(env_name: str, kinds, data_dir: str | Path, recipe: dict) -> list[str]:
    """Paths of the datasets of ``kinds`` made by ``recipe`` (:func:`resolve_recipe`): one behaviour run for all
    the missing ones (rebuilt from its snapshot where one is saved, else trained in full and its snapshot
    saved), saved as HDF5."""
    from jaxrl.data import formats
    from jaxrl.run import generate

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    paths = dataset_paths(env_name, kinds, data_dir, recipe)
    missing = [k for k, p in paths.items() if not p.exists()]
    if missing:
        snap = saved_snapshot(env_name, recipe, data_dir)
        run = generate.train_behaviour(
            env_name,
            seed=recipe["seed"],
            total_env_steps=recipe["behaviour_steps"],
            num_envs=recipe["behaviour_envs"],
            hidden=tuple(recipe["behaviour_hidden"]),
            num_chunks=recipe["behaviour_chunks"],
            log=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True),
            snapshot=None if snap is None else generate.load_snapshot(snap),
        )
        if snap is None:
            generate.save_snapshot(generate.behaviour_snapshot(run), snapshot_path(env_name, recipe, data_dir))
        made = generate.make_datasets(env_name, missing, size=recipe["size"], seed=recipe["seed"], run=run)
        for k, d in made.items():
            formats.save(d, paths[k])
    return [str(paths[k]) for k in kinds]


def recipe_paths(env_name: str, kinds=KINDS, data_dir: str | Path = "datasets", **options) -> list[str]:
    """:func:`make_or_load` with the recipe :func:`resolve_recipe` makes of ``options``."""
    return make_or_load(env_name, kinds, data_dir, resolve_recipe(env_name, **options))


def recipe_options(a: argparse.Namespace) -> dict:
    """The recipe options of parsed :func:`add_recipe_args` arguments."""
    return dict(
        size=a.size,
        behaviour_steps=a.behaviour_steps,
        behaviour_envs=a.behaviour_envs,
        behaviour_hidden=a.behaviour_hidden,
        behaviour_chunks=a.behaviour_chunks,
        seed=a.data_seed,
    )


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """The dataset recipe's options (this script's and ``offline_table.py``'s)."""
    p.add_argument("--size", type=int, default=100_000, help="rows of the random / medium / expert datasets")
    p.add_argument(
        "--behaviour-steps",
        type=int,
        default=None,
        help=f"env steps of each behaviour SAC run (default per env: {BEHAVIOUR_STEPS}, else 1,000,000)",
    )
    p.add_argument("--behaviour-envs", type=int, default=1)
    p.add_argument("--behaviour-hidden", type=_widths, default=(256, 256))
    p.add_argument(
        "--behaviour-chunks",
        type=int,
        default=None,
        help="evaluations of the behaviour run (default: one per 5,000 env steps; the medium policy is the "
        "evaluated one closest to a third of expert)",
    )
    p.add_argument("--data-seed", type=int, default=0, help="seed of the behaviour run and the rollouts")
    p.add_argument("--data-dir", default="datasets")


def _widths(text: str) -> tuple[int, ...]:
    return tuple(int(h) for h in text.split(","))


def _row(kind: str, facts: dict) -> str:
    ret = facts["episode_return"]
    score = facts.get("normalized_score_of_data")
    return (
        f"| {kind} | {facts['transitions']:,} | {facts['episodes']} | {ret['mean']:.1f} [{ret['min']:.1f}, "
        f"{ret['max']:.1f}] | {'' if score is None else f'{score:.1f}'} | `{facts['sha256'][:16]}` |"
    )


def zero_action_line(entry: dict) -> str:
    """The do-nothing reference of one env's entry in the store, as a sentence."""
    from jaxrl.data.dataset import normalized_score

    first = next(iter(entry["kinds"].values()))
    zero = entry["zero_action_return"]
    score = float(normalized_score(zero, first["random_return"], first["expert_return"]))
    return (
        f"Doing nothing (the zero action every step) returns {zero:.1f}, normalised {score:.1f}"
        " (a reference, not a dataset: scores near it are reachable without moving)."
    )


def format_results(store: dict, command: str) -> str:
    import jax

    from jaxrl.run.recorder import cpu_line, host_cpu

    out = [
        "# D4RL-protocol datasets on brax locomotion\n",
        "Made by `experiments/d4rl_datasets.py` (one SAC behaviour run per env; `random` = the untrained policy, "
        "`medium` = the policy at ~1/3 of the way from random to the final policy's return, `medium-replay` = the "
        "whole replay buffer up to it, `expert` = the final policy, `medium-expert` = both). Normalised = "
        "100 (R - R_random) / (R_expert - R_random) with R_random the return of uniformly random actions and "
        "R_expert the final policy's deterministic return (both stored in every file).\n",
        f"Command: `{command}`. Host: {cpu_line(host_cpu())}, {jax.devices()[0].platform}, Python "
        f"{platform.python_version()}, jax {jax.__version__}.\n",
        "For scale, D4RL's MuJoCo v2 datasets: 1M rows for random, medium and expert (2M medium-expert); "
        "medium-replay 202k rows (halfcheetah), 402k (hopper), 302k (walker2d). A SAC run that reaches a third of "
        "its final return early leaves a small medium-replay buffer: its size here is what the protocol gives.\n",
        "sha256 is of the file's bytes (what a run's `env_metadata.dataset_hashes` records; the full digests and "
        "those of the arrays alone are in the JSON beside this file). `jaxrl dataset info FILE` prints both.\n",
    ]
    for env_name, entry in store.items():
        first = next(iter(entry["kinds"].values()))
        meta = first.get("metadata", {})
        out.append(f"## {env_name}\n")
        out.append(
            f"Behaviour: SAC, {entry['behaviour_steps']:,} env steps, {entry['behaviour_envs']} env(s), hidden "
            f"{entry['behaviour_hidden']}, {entry['behaviour_chunks'] or 'default'} evaluations, seed "
            f"{entry['seed']}; made in {entry['seconds']:.0f} s. Reference returns: random "
            f"{first['random_return']:.1f}, expert {first['expert_return']:.1f}; the medium policy (evaluation "
            f"{meta.get('medium_chunk', '?')}) returned {float(meta.get('medium_return', 'nan')):.1f}."
            + (f" {zero_action_line(entry)}" if "zero_action_return" in entry else "")
            + "\n"
        )
        out.append("| kind | rows | episodes | episode return mean [min, max] | normalised | sha256 (first 16) |")
        out.append("| --- | ---: | ---: | --- | ---: | --- |")
        out += [_row(kind, facts) for kind, facts in entry["kinds"].items()]
        out.append("")
    out += [REPRODUCING, ""]
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default=",".join(DEFAULT_ENVS))
    add_recipe_args(p)
    p.add_argument("--out", default=str(RESULTS / "d4rl_datasets.md"))
    a = p.parse_args(argv)
    from jaxrl.run.dataset_cli import describe
    from jaxrl.run.generate import zero_action_return

    out = Path(a.out)
    store_path = out.with_suffix(".json")
    store = json.loads(store_path.read_text()) if store_path.exists() else {}
    for env_name in a.envs.split(","):
        recipe = resolve_recipe(env_name, **recipe_options(a))
        # Files found, or rebuilt from a snapshot: the time to make them from scratch is the saved one.
        found = saved_snapshot(env_name, recipe, a.data_dir) is not None or all(
            p.exists() for p in dataset_paths(env_name, KINDS, a.data_dir, recipe).values()
        )
        t0 = time.perf_counter()
        paths = make_or_load(env_name, KINDS, a.data_dir, recipe)
        seconds = time.perf_counter() - t0
        facts = {kind: describe(path) for kind, path in zip(KINDS, paths)}
        bad = [k for k, f in facts.items() if f["validation"] != "ok"]
        if bad:
            sys.exit(f"{env_name}: {bad} failed validation: {[facts[k]['validation'] for k in bad]}")
        saved = store.get(env_name)
        same_recipe = saved is not None and all(saved.get(k) == _plain(v) for k, v in recipe.items())
        if same_recipe:
            changed = [k for k in KINDS if k in saved["kinds"] and saved["kinds"][k]["sha256"] != facts[k]["sha256"]]
            if changed:
                sys.exit(f"{env_name}: {changed} differ from the checksums in {store_path}: made by other code?")
            if found:  # the files were found, not made: keep the time it took to make them
                seconds = saved["seconds"]
        made_here = snapshot_path(env_name, recipe, a.data_dir)
        # kept beside the checksums (under --out's folder: BEHAVIOUR by default), to be committed with them
        kept = snapshot_path(env_name, recipe, Path(a.out).parent / BEHAVIOUR.name)
        if made_here.exists() and not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made_here, kept)
        zero = saved.get("zero_action_return") if same_recipe else None
        store[env_name] = {
            **{k: _plain(v) for k, v in recipe.items()},
            "seconds": seconds,
            "zero_action_return": zero if zero is not None else zero_action_return(env_name),
            "kinds": {k: {**f, "path": Path(f["path"]).name} for k, f in facts.items()},
        }
        store_path.parent.mkdir(parents=True, exist_ok=True)
        store_path.write_text(json.dumps(store, indent=2) + "\n")
        scores = ", ".join(f"{k} {f.get('normalized_score_of_data', float('nan')):.1f}" for k, f in facts.items())
        print(f"{env_name}: {scores}", flush=True)
    command = "python experiments/d4rl_datasets.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    out.write_text(format_results(store, command.strip()) + "\n")
    print(f"wrote {out}")


def _plain(value):
    """A recipe value as JSON stores it (tuples as comma-joined widths)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


if __name__ == "__main__":
    main()
