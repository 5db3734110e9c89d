"""D4RL-style table: rows env x kind, columns algorithms, normalised score (last and best) as mean +- std over
seeds. Each (algorithm, env) trains all seeds x kinds as ONE program (the kinds are a `dataset_index` grid over
the stacked datasets, padded to one size with a validity mask), so a row costs one compile per algorithm.

Small CPU table (the default; datasets generated once by one SAC behaviour run and cached under --data-dir):

    python experiments/offline_table.py --env Pendulum-v1 --out experiments/results/offline_table_pendulum.md \\
        --set "bcq.vae_hidden=(64,64)" --set "mopo.model_hidden=(64,64)" --set "morel.model_hidden=(64,64)" \\
        --set mopo.rollout_batch_size=500 --set morel.rollout_batch_size=500 \\
        --set mopo.model_train_updates=2000 --set morel.model_train_updates=2000

(the BCQ VAE and the dynamics models scaled down with the 64-wide networks, as in the learning tests: BCQ's
default 750-wide VAE alone takes over half an hour of this 2-core CPU for one table row)

The brax locomotion row (halfcheetah on brax's "positional" pipeline: the default "generalized" one runs hopper at
~70 env steps/s on this CPU, positional ~27k; the behaviour SAC run of 150k steps takes ~15 minutes), with the same
--set overrides:

    python experiments/offline_table.py --env brax:halfcheetah:positional --size 20000 --behaviour-steps 150000 \\
        --behaviour-envs 1 --behaviour-hidden 256,256 --behaviour-chunks 50 \\
        --out experiments/results/offline_table_halfcheetah.md

(not hopper: there a policy that does nothing stands for the whole episode and collects the alive bonus, ~1020,
above what a 150k-step SAC run ends at, so "expert" would score below doing nothing)

Full size on a GPU (D4RL scale: 1M-row datasets, 256-wide networks, 1M updates, 5 seeds):

    python experiments/offline_table.py --env brax:halfcheetah --size 1000000 --behaviour-steps 3000000 \\
        --behaviour-envs 64 --hidden 256,256 --updates 1000000 --seeds 5 --out halfcheetah.md

On Minari's MuJoCo datasets that a user has locally (nothing is downloaded; `--minari-root` is the directory
that holds `mujoco/halfcheetah/medium-v0/` etc., the env's reference returns come from the dataset metadata):

    python experiments/offline_table.py --minari-root ~/.minari/datasets --minari-env mujoco/halfcheetah \\
        --kinds medium-v0,simple-v0,expert-v0 --hidden 256,256 --updates 1000000 --seeds 5

Per-algorithm settings: `--set td3_bc.alpha=10 --set cql.cql_alpha=10` (the defaults are each paper's).
Published reference on the real D4RL datasets (CORL, last score, locomotion average): BC 50.4, TD3+BC 76.5,
CQL 78.3, IQL 81.6, ReBRAC 89.7, EDAC 92.9.
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import time
from pathlib import Path

import numpy as np

# The columns, in the order of the D4RL paper's tables, then the newer methods.
ALGOS = (
    "bc",
    "sac_offline",
    "bear",
    "brac_p",
    "brac_v",
    "awr",
    "bcq",
    "cql",
    "iql",
    "td3_bc",
    "rebrac",
    "edac",
    "mopo",
    "morel",
)
KINDS = ("medium", "medium-replay", "medium-expert")


def make_or_load(
    env_name: str,
    kinds,
    data_dir: Path,
    size: int,
    behaviour_steps: int,
    behaviour_envs: int,
    seed: int = 0,
    behaviour_hidden: tuple[int, ...] = (64, 64),
    behaviour_chunks: int | None = None,
) -> list[str]:
    """Paths of the generated datasets of ``kinds`` (one behaviour run for all, cached as HDF5; the file names
    carry the behaviour recipe, so a changed recipe never reuses older files)."""
    from jaxrl.data import formats
    from jaxrl.run import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    tag = env_name.replace(":", "-").replace("/", "-")
    recipe = f"{behaviour_steps}x{behaviour_envs}"
    if tuple(behaviour_hidden) != (64, 64):
        recipe += "-h" + "x".join(map(str, behaviour_hidden))
    if behaviour_chunks:
        recipe += f"-c{behaviour_chunks}"
    paths = {k: data_dir / f"{tag}-{k}-{size}-{recipe}.hdf5" for k in kinds}
    missing = [k for k, p in paths.items() if not p.exists()]
    if missing:
        made = generate.make_datasets(
            env_name,
            missing,
            size=size,
            seed=seed,
            total_env_steps=behaviour_steps,
            num_envs=behaviour_envs,
            hidden=tuple(behaviour_hidden),
            num_chunks=behaviour_chunks,
        )
        for k, d in made.items():
            formats.save(d, paths[k])
    return [str(paths[k]) for k in kinds]


def minari_paths(root: str, env: str, kinds) -> list[str]:
    return [str(Path(root).expanduser() / env / k) for k in kinds]


def run_table(
    paths,
    kinds,
    algo_names=ALGOS,
    seeds=3,
    updates=10_000,
    hidden=(64, 64),
    num_chunks=10,
    overrides=None,
    eval_episodes=10,
    log=print,
    table=None,
    save=None,
):
    """``{(kind, algo): {"last": [seeds], "best": [seeds]}}`` plus ``("_wall", algo)`` seconds. Algorithms
    already in ``table`` are skipped (a resumed run); ``save(table)`` is called after each algorithm."""
    from jaxrl import algos
    from jaxrl.algos.offline.common import load_offline_env
    from jaxrl.run import train
    from jaxrl.run.train import NonFiniteError

    env = load_offline_env(paths)
    table = dict(table or {})
    for name in algo_names:
        if ("_wall", name) in table:
            log(f"{name}: already in the saved table")
            continue
        module = algos.get(name)
        cfg = module.Config(
            hidden=tuple(hidden), total_env_steps=updates, updates_per_iteration=100, **(overrides or {}).get(name, {})
        )
        t0 = time.perf_counter()
        try:
            result = train(
                name,
                env,
                cfg,
                seeds=seeds,
                grid={"dataset_index": list(range(len(kinds)))},
                num_chunks=num_chunks,
                eval_episodes=eval_episodes,
                progress=False,
            )
        except NonFiniteError as e:  # the run loop stops the whole program at a NaN: the column records it
            table[("_wall", name)] = time.perf_counter() - t0
            table[("_error", name)] = str(e)
            log(f"{name}: {e}")
            if save:
                save(table)
            continue
        wall = time.perf_counter() - t0
        scores = np.asarray(result.metrics["normalized_score"])  # [seeds, kinds, chunks]
        for i, kind in enumerate(kinds):
            table[(kind, name)] = dict(last=scores[:, i, -1].tolist(), best=scores[:, i].max(axis=-1).tolist())
        table[("_wall", name)] = wall
        row = ", ".join(f"{k} {np.mean(table[(k, name)]['last']):.1f}" for k in kinds)
        log(f"{name}: {row}  ({wall:.0f} s, compile {result.summary['compile_seconds']:.0f} s)")
        if save:
            save(table)
    return table


def _to_json(table) -> str:
    return json.dumps({f"{k[0]}|{k[1]}": v for k, v in table.items()}, indent=2)


def _from_json(text: str) -> dict:
    return {tuple(k.split("|", 1)): v for k, v in json.loads(text).items()}


def format_table(table, env_name, kinds, algo_names) -> str:
    """One markdown table per statistic (last, best): rows env-kind, columns algorithms, mean +- std."""
    out = []
    for stat in ("last", "best"):
        out.append(f"Normalised score ({stat}), mean ± std over seeds:\n")
        out.append("| dataset | " + " | ".join(algo_names) + " |")
        out.append("|---|" + "---:|" * len(algo_names))
        cell = lambda k, a: (
            f"{np.mean(table[(k, a)][stat]):.1f} ± {np.std(table[(k, a)][stat]):.1f}" if (k, a) in table else "NaN"
        )
        for kind in kinds:
            out.append(f"| {env_name}-{kind} | " + " | ".join(cell(kind, a) for a in algo_names) + " |")
        means = [
            f"{np.mean([np.mean(table[(k, a)][stat]) for k in kinds]):.1f}" if (kinds[0], a) in table else "NaN"
            for a in algo_names
        ]
        out.append("| average | " + " | ".join(means) + " |\n")
    walls = ", ".join(f"{a} {table[('_wall', a)]:.0f}" for a in algo_names)
    out.append(f"Wall seconds per algorithm (all seeds x kinds in one program, compile included): {walls}.")
    out += [
        f"\n{a}: stopped by the run loop's NaN check: {table[('_error', a)]}"
        for a in algo_names
        if ("_error", a) in table
    ]
    return "\n".join(out)


def parse_overrides(items) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        algo, _, field = key.partition(".")
        if not field or not value:
            raise SystemExit(f"--set {item!r}: expected ALGO.FIELD=VALUE, e.g. td3_bc.alpha=10")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(algo, {})[field] = parsed
    return out


def _widths(text: str) -> tuple[int, ...]:
    """``"256,256"`` -> ``(256, 256)``."""
    return tuple(int(h) for h in text.split(","))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1", help="jaxrl env to generate datasets from")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--updates", type=int, default=10_000)
    p.add_argument("--hidden", type=_widths, default=(64, 64), help="hidden widths of the offline algorithms")
    p.add_argument("--chunks", type=int, default=10, help="evaluations per run ('last' is the final one)")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    p.add_argument("--size", type=int, default=5_000, help="rows of the medium / expert datasets")
    p.add_argument("--behaviour-steps", type=int, default=60_000)
    p.add_argument("--behaviour-envs", type=int, default=4)
    p.add_argument(
        "--behaviour-hidden", type=_widths, default=(64, 64), help="the SAC behaviour policy's hidden widths"
    )
    p.add_argument(
        "--behaviour-chunks",
        type=int,
        default=None,
        help="evaluations of the behaviour run (default one per 500 steps of each env; the medium policy "
        "is the evaluated one closest to a third of expert)",
    )
    p.add_argument("--data-dir", default="datasets")
    p.add_argument("--minari-root", default=None, help="read Minari datasets from here instead of generating")
    p.add_argument("--minari-env", default=None, help="e.g. mujoco/halfcheetah (with --minari-root)")
    p.add_argument("--set", action="append", default=[], help="ALGO.FIELD=VALUE (repeatable)")
    p.add_argument(
        "--out",
        default=None,
        help="markdown table; its .json beside it is saved after each algorithm "
        "and a re-run with the same --out skips the algorithms already there",
    )
    a = p.parse_args()
    kinds, names = a.kinds.split(","), a.algos.split(",")
    overrides = parse_overrides(a.set)
    if a.minari_root:
        paths, env_name = minari_paths(a.minari_root, a.minari_env, kinds), a.minari_env
    else:
        paths, env_name = (
            make_or_load(
                a.env,
                kinds,
                Path(a.data_dir),
                a.size,
                a.behaviour_steps,
                a.behaviour_envs,
                behaviour_hidden=a.behaviour_hidden,
                behaviour_chunks=a.behaviour_chunks,
            ),
            a.env,
        )
    t0 = time.perf_counter()
    partial = Path(a.out).with_suffix(".json") if a.out else None
    saved = _from_json(partial.read_text()) if partial is not None and partial.exists() else None
    save = (lambda t: partial.write_text(_to_json(t))) if partial is not None else None
    table = run_table(
        paths,
        kinds,
        names,
        a.seeds,
        a.updates,
        a.hidden,
        num_chunks=a.chunks,
        overrides=overrides,
        eval_episodes=a.eval_episodes,
        table=saved,
        save=save,
    )
    import jax

    done_before = [n for n in names if saved and ("_wall", n) in saved]
    resumed = f" (it resumed {len(done_before)} algorithms from the saved JSON)" if done_before else ""
    hidden = ",".join(map(str, a.hidden))
    header = (
        f"# Offline RL table: {env_name}\n\n{a.seeds} seeds, {a.updates} updates, hidden {hidden}, batch 256, "
        f"{a.eval_episodes} evaluation episodes per chunk ({a.chunks} chunks; 'best' is the best chunk). "
        f"Datasets: {', '.join(Path(q).name for q in paths)}. Overrides: {overrides or 'none (library defaults)'}. "
        f"Host: {platform.machine()}, {jax.devices()[0].platform}, jax {jax.__version__}; this invocation "
        f"{time.perf_counter() - t0:.0f} s{resumed}; wall times per algorithm below.\n\n"
    )
    text = header + format_table(table, env_name, kinds, names)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
        partial.write_text(_to_json(table))


if __name__ == "__main__":
    main()
