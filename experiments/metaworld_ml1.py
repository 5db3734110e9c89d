"""Meta-World ML1 (reach, push) end to end through the host adapter: MAML, RL² and PEARL at a CPU budget, their
meta-test success after adaptation; and the recipe for ML10 at the published budget on a GPU machine.

Collection runs on the host (:class:`jaxrl.envs.metaworld_meta.MetaWorldMetaEnv`: env slots that each run the
train or test task -- goal -- the learner gives them; Meta-World hides the goal from the observation in ML
benchmarks); every update is jitted and vmapped over the seeds (:func:`jaxrl.run.host_meta.train_meta`, what
``jaxrl train rl2|pearl|maml --env metaworld:ML1-reach-v3`` runs). ML1's 50 train goals and 50 test goals come from
the benchmark's seed (test goals: ``seed + 1``) and are checked disjoint.

**Meta-test** (Meta-World's ``metalearning_evaluation``): on 10 held-out test goals, ``k = 2`` adaptation episodes
(RL²: the first two episodes of a trial, hidden state kept; PEARL: the context of the episodes so far, prior ``z``
first; MAML: one policy-gradient step on the two episodes), then 3 evaluation episodes that end at the first
success; a goal's success is the fraction of its evaluation episodes with ``info["success"]`` at any step. Score:
``eval_success`` at the last evaluation; ``adaptation_success`` is the success of adaptation episode 0, 1 (MAML:
before the step), then after adaptation.

**CPU budget** (the default): 50,000 env steps per run, 2 seeds per cell, episodes of 100 steps (Meta-World's 500
are 5x longer: at this budget 100-step episodes give 5x more of them; reach is solvable well within 100 steps),
reward function v2, rewards scaled by 0.1 for learning, 3 meta-test evaluations. Per method (``CPU`` below): RL²
10 trials of 3 episodes per iteration, GRU 128, PPO (4 epochs x 2 minibatches of trials, Adam 5e-4, lambda 0.95);
PEARL 20 train goals, 5 collect per iteration (1 prior + 1 posterior episode), 100 updates per iteration (meta-batch
8 x 128 transitions), networks 2 x 128; MAML 10 goals x 2 episodes per inner step, one inner step, ProMP outer
step, policy 2 x 64, linear baseline with ridge 1e-2 (1e-5, the config default, made the float32 least-squares fit
NaN on Meta-World's observations, whose current and previous frames are nearly collinear). That is 0.25% of the
published budget: it shows the three methods running end to end with Meta-World's meta-test protocol, not the
published scores.

**GPU recipe** (``--gpu``): ML10 at the budget of metaworld-algorithms (Farama's JAX baselines for Meta-World 3,
``examples/meta_learning/{rl2,maml_trpo}_ml10.py``): RL² 2M env steps per train class (20M per run), meta-batch 20
trials of 10 episodes, GRU 256, Adam 5e-4, discount 0.99, GAE lambda 0.95; MAML-TRPO 15M env steps, meta-batch 20,
discount 0.99 (jaxrl's linear baseline where metaworld-algorithms fits an MLP value function); PEARL (not in
metaworld-algorithms) at RL²'s 20M steps with the PEARL paper's network sizes (3 x 300, latent 7). 500-step
episodes; meta-test as Meta-World's ML protocol: 10 adaptation episodes, 3 evaluation episodes, 40 test goals per
held-out class (200), 10 evaluations. Wall time is NOT measured (no GPU here); the run is host-bound (Meta-World
stepped at ~2.9k steps/s per core here; use ``vector_strategy=async`` on a machine with a core per env slot).
Published ML10 scores (Meta-World paper, Yu et al. 2019, and Meta-World+, McLean et al. 2025) were measured on
other releases and protocols; they are not copied here.

    python experiments/metaworld_ml1.py                   # the CPU table (6 cells, 2 seeds each)
    python experiments/metaworld_ml1.py --cells rl2-reach  # some cells
    python experiments/metaworld_ml1.py --table-only      # the table from the finished cells
    python experiments/metaworld_ml1.py --gpu             # ML10 at the published budget (GPU; days of host time)

Each cell is one program (its seeds vmapped) in ``experiments/results/runs/metaworld_ml1/<cell>/`` (a finished one is
kept; an unfinished one starts again: host runs keep no env state). The table
(``experiments/results/metaworld_ml1.md``, figures in ``metaworld_ml1/``, a compact ``.json`` beside it) is
``jaxrl report`` over the finished cells, plus each cell's success per seed, adaptation curve and timings.

Needs the extra: ``pip install -e ".[metaworld]"`` (metaworld 3.1.1, mujoco 3.3.0, packaging).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from results_table import RUNS, write_results, write_store

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "eval_success"
LABELS = {"rl2": "RL²", "pearl": "PEARL", "maml": "MAML (ProMP)"}

H = 100  # CPU episode length
CPU = {
    "rl2": dict(
        horizon=H, num_tasks=10, episodes_per_trial=3, hidden_size=128, learning_rate=5e-4, gae_lambda=0.95,
        num_minibatches=2, num_epochs=4, ent_coef=0.005,
    ),
    "pearl": dict(
        horizon=H, num_train_tasks=20, tasks_per_iteration=5, prior_episodes=1, posterior_episodes=1, meta_batch=8,
        batch_size=128, context_batch_size=64, buffer_size=20_000, updates_per_iteration=100, hidden=(128, 128),
        encoder_hidden=(128, 128), adaptation_episodes=3, learning_rate=3e-4, encoder_learning_rate=3e-4,
    ),
    "maml": dict(horizon=H, num_tasks=10, num_trajectories=2, hidden=(64, 64), baseline_reg=1e-2, eval_inner_steps=1),
}  # fmt: skip
CPU_RUN = dict(
    steps=50_000, seeds=2, num_evals=3, eval_tasks=10, eval_episodes=3, adaptation_episodes=2, reward_scale=0.1
)
GPU = {
    "rl2": dict(
        horizon=500, num_tasks=20, episodes_per_trial=10, hidden_size=256, learning_rate=5e-4, discount=0.99,
        gae_lambda=0.95, num_minibatches=4, num_epochs=16, ent_coef=5e-3,
    ),
    "pearl": dict(
        horizon=500, num_train_tasks=100, tasks_per_iteration=10, prior_episodes=2, posterior_episodes=1,
        meta_batch=16, batch_size=256, context_batch_size=100, buffer_size=100_000, updates_per_iteration=2_000,
        hidden=(300, 300, 300), encoder_hidden=(200, 200, 200), latent_dim=7, adaptation_episodes=11,
        learning_rate=3e-4, encoder_learning_rate=3e-4,
    ),
    "maml": dict(
        horizon=500, num_tasks=20, num_trajectories=10, outer="trpo", discount=0.99, baseline_reg=1e-2,
        hidden=(100, 100), eval_inner_steps=1,
    ),
}  # fmt: skip
GPU_STEPS = {"rl2": 20_000_000, "pearl": 20_000_000, "maml": 15_000_000}
GPU_RUN = dict(seeds=1, num_evals=10, eval_tasks=200, eval_episodes=3, adaptation_episodes=10, reward_scale=1.0)


def cells(args) -> list[tuple[str, str, str]]:
    """``(cell name, algo, env)`` of this invocation."""
    if args.gpu:
        out = [(f"{a}-ml10", a, "metaworld:ML10") for a in ("rl2", "pearl", "maml")]
    else:
        out = [(f"{a}-{t}", a, f"metaworld:ML1-{t}-v3") for t in ("reach", "push") for a in ("rl2", "pearl", "maml")]
    if args.cells:
        chosen = args.cells.split(",")
        unknown = [c for c in chosen if c not in {name for name, _, _ in out}]
        if unknown:
            raise SystemExit(f"unknown cells {unknown}: choose from {[name for name, _, _ in out]}")
        out = [c for c in out if c[0] in chosen]
    return out


def config_of(algo: str, args):
    from jaxrl import algos

    fields = (GPU if args.gpu else CPU)[algo]
    steps = GPU_STEPS[algo] if args.gpu else args.steps
    return algos.get(algo).Config(**fields, total_env_steps=steps)


def run_kwargs(args) -> dict:
    keys = ("num_evals", "eval_tasks", "eval_episodes", "adaptation_episodes", "reward_scale")
    out = {k: getattr(args, k) for k in keys}
    out["seeds"] = list(range(args.seed, args.seed + args.seeds))
    if args.gpu:
        out["env_kwargs"] = {"vector_strategy": "async"}
    return out


def run_cell(name: str, algo: str, env: str, args) -> Path | None:
    from jaxrl.run.host_meta import train_meta
    from jaxrl.run.recorder import is_finished

    run_dir = Path(args.runs) / name
    if is_finished(run_dir):
        print(f"{name}: finished, kept", flush=True)
        return run_dir
    if run_dir.exists():  # a host run keeps no env state: an unfinished one starts again
        shutil.rmtree(run_dir)
    cfg, kw = config_of(algo, args), run_kwargs(args)
    print(f"{name}: train_meta({algo!r}, {env!r}, {cfg}, **{kw})", flush=True)
    t0 = time.perf_counter()
    try:
        train_meta(algo, env, cfg, out_dir=run_dir, progress=False, **kw)
    except Exception as e:  # noqa: BLE001  (one failing cell must not stop the others)
        print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
        return None
    wall = time.perf_counter() - t0
    print(f"{name}: done in {wall:.0f} s", flush=True)
    (run_dir / "wall_seconds.txt").write_text(f"{wall:.1f}\n")
    return run_dir


def cell_record(name: str, algo: str, env: str, run_dir: Path) -> dict:
    s = json.loads((run_dir / "summary.json").read_text())
    spec = json.loads((run_dir / "config.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    success = np.asarray(s[METRIC], np.float64)  # [seeds, test classes]
    wall = run_dir / "wall_seconds.txt"
    return {
        "cell": name,
        "algo": LABELS[algo],
        "env": env,
        "seeds": [r["seed"] for r in spec["runs"]],
        "success_per_seed": success.mean(axis=1).tolist(),
        "adaptation_success": np.asarray(records[-1]["adaptation_success"]).mean(axis=0).tolist(),
        "train_success": np.asarray(records[-1]["train_success"]).tolist(),
        "curve": [[r["env_steps"], float(np.mean(r[METRIC]))] for r in records],
        "env_steps_per_run": s["env_steps"],
        "env_steps_per_second": s["env_steps_per_second"],
        "compile_seconds": s["compile_seconds"],
        "run_seconds": s["run_seconds"],
        "eval_seconds": s["eval_seconds"],
        "host_env_seconds": s.get("host_env_seconds"),
        "wall_seconds": float(wall.read_text()) if wall.exists() else None,
        "config": spec["config"],
        "meta_test": spec["meta_test"],
        "versions": spec.get("versions", {}),
    }


def random_baseline(env_name: str, args) -> list[float]:
    """Per seed, the success of uniform random actions under the same evaluation episodes (no adaptation) on the
    same held-out goals: what the table's scores are to be read against (reach goals are sometimes hit by chance)."""
    from jaxrl.envs.metaworld_meta import MetaWorldMetaEnv
    from jaxrl.run.host_meta import evaluation_episodes

    out = []
    for seed in range(args.seed, args.seed + args.seeds):
        env = MetaWorldMetaEnv(env_name, num_envs=args.eval_tasks, seed=seed, max_episode_steps=H)
        rng = np.random.default_rng(seed)
        obs = env.set_tasks("test", env.pool("test", args.eval_tasks))
        act = lambda o: rng.uniform(-1.0, 1.0, (o.shape[0], env.action_dim))
        out.append(float(np.mean(evaluation_episodes(env, obs, act, args.eval_episodes)[0])))
        env.close()
    return out


def budget_text(args) -> str:
    if args.gpu:
        return (
            f"ML10, env steps per run {GPU_STEPS}, {args.seeds} seed(s), 500-step episodes, meta-test on "
            f"{args.eval_tasks} test goals: {args.adaptation_episodes} adaptation + {args.eval_episodes} evaluation "
            f"episodes, {args.num_evals} evaluations; configs {json.dumps(GPU)}"
        )
    return (
        f"{args.steps:,} env steps per run (ML1, episodes of {H} steps, reward function v2, learners see reward x "
        f"{args.reward_scale}), {args.seeds} seeds per cell vmapped in one program, {args.num_evals} meta-test "
        f"evaluations on {args.eval_tasks} held-out goals each: {args.adaptation_episodes} adaptation episodes then "
        f"{args.eval_episodes} evaluation episodes (Meta-World's protocol); configs {json.dumps(CPU)}"
    )


def write_table(chosen: list[tuple[str, str, str]], args) -> Path | None:
    from jaxrl.run.recorder import is_finished

    done = [(n, a, e) for n, a, e in chosen if is_finished(Path(args.runs) / n)]
    missing = [n for n, _, _ in chosen if n not in {d[0] for d in done}]
    if not done:
        print("no finished cell yet: no table", flush=True)
        return None
    records = [cell_record(n, a, e, Path(args.runs) / n) for n, a, e in done]
    name = "metaworld_ml10_gpu" if args.gpu else "metaworld_ml1"
    out = Path(args.out_dir) / f"{name}.md"
    v = records[0]["versions"]
    k = records[0]["meta_test"]["adaptation_episodes"]
    rows = [
        "| cell | method | env | success per seed | adaptation success (ep 0..k-1, after) | train success | "
        "compile + train + eval s | env-steps/s |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    for r in records:
        rows.append(
            f"| {r['cell']} | {r['algo']} | {r['env'].removeprefix('metaworld:')} | "
            f"{', '.join(f'{x:.2f}' for x in r['success_per_seed'])} | "
            f"{', '.join(f'{x:.2f}' for x in r['adaptation_success'])} | "
            f"{', '.join(f'{x:.2f}' for x in r['train_success'])} | "
            f"{r['compile_seconds']:.0f} + {r['run_seconds']:.0f} + {r['eval_seconds']:.0f} | "
            f"{r['env_steps_per_second']:.0f} |"
        )
    notes = [
        *([f"**Partial**: not finished when the table was written: {', '.join(missing)}.", ""] * bool(missing)),
        f"Score: `{METRIC}` at the last meta-test (held-out goals; {k} adaptation episodes, then evaluation episodes "
        "that end at the first success; success = `info['success']` at any step, as `metaworld.evaluation`). "
        f"Meta-World {v.get('metaworld')}, MuJoCo {v.get('mujoco')}, gymnasium {v.get('gymnasium')}.",
        "",
        "Per cell: each seed's final meta-test success; the adaptation curve (mean over seeds: success in "
        "adaptation episode 0..k-1 -- MAML: of the episodes before its inner step -- then after adaptation); the "
        "meta-training episodes' success over the last chunk, per seed; timings of both seeds together (training "
        "throughput: host stepping and updates):",
        "",
        *rows,
    ]
    if not args.gpu:
        envs = sorted({e for _, _, e in done})
        chance = {e: random_baseline(e, args) for e in envs}
        notes += [
            "",
            "Chance level: uniform random actions, the same evaluation episodes on the same held-out goals, per seed: "
            + "; ".join(f"{e.removeprefix('metaworld:')} {', '.join(f'{x:.2f}' for x in v)}" for e, v in chance.items())
            + ".",
        ]
    title = f"Meta-World {'ML10 (published budget)' if args.gpu else 'ML1'}{' (partial)' * bool(missing)}: " + (
        "MAML, RL², PEARL"
    )
    dirs = [Path(args.runs) / n for n, _, _ in done]
    dirs = [d.resolve().relative_to(Path.cwd()) if d.resolve().is_relative_to(Path.cwd()) else d for d in dirs]
    result = write_results(
        dirs, out, title=title, budget=budget_text(args), by=["algo", "env"], metric=METRIC, notes=notes,
        reps=args.reps,
    )  # fmt: skip
    write_store(out, result, budget=budget_text(args), missing=missing, cells=records)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--gpu", action="store_true", help="ML10 at the published budget")
    ap.add_argument("--steps", type=int, default=None, help="CPU: env steps per run (default 50000)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 2; --gpu 1 per process)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed")
    ap.add_argument("--num-evals", type=int, default=None)
    ap.add_argument("--eval-tasks", type=int, default=None, help="held-out test goals per meta-test")
    ap.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes per goal after adaptation")
    ap.add_argument("--adaptation-episodes", type=int, default=None, help="k")
    ap.add_argument("--reward-scale", type=float, default=None)
    ap.add_argument("--table-only", action="store_true", help="only write the table from the finished cells")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--runs", default=None, help="root of the run directories (<runs>/<cell>/)")
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    defaults = GPU_RUN if args.gpu else {**CPU_RUN}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.runs = args.runs or str(RUNS / ("metaworld_ml10_gpu" if args.gpu else "metaworld_ml1"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = cells(args)
    if not args.table_only:
        from jaxrl.envs.metaworld import import_metaworld

        import_metaworld()  # a clear ImportError naming the extra before anything runs
        for name, algo, env in chosen:
            run_cell(name, algo, env, args)
    write_table(chosen, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
