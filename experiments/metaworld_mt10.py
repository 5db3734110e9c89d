"""Meta-World MT10 through the host adapter: a short CPU run end to end, and the config for a full GPU run.

Collection runs on the host (:class:`jaxrl.envs.metaworld.MetaWorldEnv`: Meta-World's gymnasium vector env, one
env per task, one-hot task id appended to the 39-d observation); every MT-SAC update is jitted and vmapped over
seeds (:func:`jaxrl.run.host_train.train_host`). Success per task is Meta-World's: an evaluation episode is a
success if ``success`` was 1 at any step (episodes end at the first success), averaged over the episodes.
The run directory's ``config.json`` records the Meta-World, MuJoCo and gymnasium versions and the
reward-function version (results depend a lot on it).

Needs the extra: ``pip install -e ".[metaworld]"`` (metaworld 3.1.1, mujoco 3.3.0, packaging).

    python experiments/metaworld_mt10.py                      # short CPU run (minutes): shows the pipeline works
    python experiments/metaworld_mt10.py --full --algo mt_sac --seeds 10   # the full MT10 run, for a GPU
    python experiments/metaworld_mt10.py --full --algo pcgrad              # mh_sac / pcgrad / cagrad likewise

The short run is far too short to learn MT10 (a few hundred env steps per task against millions): it shows the
adapter, the jitted updates, evaluation and the run directory working end to end, not a result.

Published reference (CAGrad paper, Liu et al. 2021, Table on Meta-World MT10, mtrl setup of Sodhani et al. 2021,
10 seeds, average success over tasks at the end of training): MT-SAC 0.49, multi-head SAC 0.61, PCGrad 0.72,
CAGrad 0.83 (CARE 0.84, one SAC per task 0.90). Those numbers were measured on Meta-World's older releases
(v1 environments and reward functions); ``--full`` here runs Meta-World 3.1.1's v3 environments with reward
function ``v2`` by default (``--reward-function-version v1`` for the original), so the comparison is indicative.

``--full`` uses the mtrl-style setting: 2M env steps per task (20M in all), 500-step episodes, actor and
critic MLPs of 3 x 400 units, Adam 3e-4, batch 128 per task (1280 per update), one update per vector step,
discount 0.99, Polyak 0.005, one learned temperature per task (initial 1.0), replay 100k per task (1M in all),
evaluation every 200k env steps per task with 10 episodes per task. Cost: Meta-World steps about 2.7k
env-steps/s on one CPU core here, so collection alone is about 2 h for 20M steps; updates run on the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ALGOS = {  # label -> (registered algorithm, config overrides)
    "mt_sac": ("mt_sac", {}),
    "mh_sac": ("mh_sac", {}),
    "pcgrad": ("mt_sac", {"aggregator": "pcgrad"}),
    "cagrad": ("mt_sac", {"aggregator": "cagrad"}),
}
REFERENCE = {"mt_sac": 0.49, "mh_sac": 0.61, "pcgrad": 0.72, "cagrad": 0.83}  # CAGrad paper, MT10, mtrl setup

SHORT = dict(
    num_envs=10,
    total_env_steps=10_000,
    batch_size=64,
    buffer_size=20_000,
    learning_starts=250,
    hidden=(128, 128),
    learning_rate=3e-4,
    monitor_conflicts=False,
)
FULL = dict(
    num_envs=10,
    total_env_steps=20_000_000,
    batch_size=128,
    buffer_size=100_000,
    learning_starts=1_500,
    hidden=(400, 400, 400),
    learning_rate=3e-4,
    discount=0.99,
    tau=0.005,
    init_alpha=1.0,
    updates_per_step=1,
    monitor_conflicts=True,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full MT10 run (GPU; hours)")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="mt_sac")
    parser.add_argument("--benchmark", default="MT10", help="MT10 or MT50 (num_envs follows)")
    parser.add_argument("--seeds", type=int, default=None, help="default 1 (short) / 10 (full)")
    parser.add_argument("--steps", type=int, default=None, help="total env steps, all tasks (overrides)")
    parser.add_argument("--num-evals", type=int, default=None, help="default 2 (short) / 10 (full)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="per task; default 2 (short) / 10 (full)")
    parser.add_argument("--reward-function-version", choices=("v1", "v2"), default="v2")
    parser.add_argument("--out", default=None, help="run directory (default runs/metaworld-<bench>-<algo>-<time>)")
    args = parser.parse_args(argv)

    from jaxrl import algos
    from jaxrl.envs.metaworld import MetaWorldEnv  # noqa: F401  (a clear ImportError without the extra)
    from jaxrl.run.host_train import train_host

    algo_name, overrides = ALGOS[args.algo]
    module = algos.get(algo_name)
    num_tasks = {"MT10": 10, "MT25": 25, "MT50": 50}[args.benchmark]
    fields = dict(FULL if args.full else SHORT, **overrides, num_envs=num_tasks)
    if args.full:
        fields["total_env_steps"] = 2_000_000 * num_tasks
    if args.steps:
        fields["total_env_steps"] = args.steps
    config = module.Config(**fields)
    seeds = args.seeds or (10 if args.full else 1)
    num_evals = args.num_evals or (10 if args.full else 2)
    eval_episodes = args.eval_episodes or (10 if args.full else 2)
    out = args.out or f"runs/metaworld-{args.benchmark}-{args.algo}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        f"{args.algo} on Meta-World {args.benchmark}: {config.total_env_steps} env steps "
        f"({config.total_env_steps // num_tasks} per task), {seeds} seed(s) -> {out}",
        flush=True,
    )
    t0 = time.perf_counter()
    result = train_host(
        module,
        f"metaworld:{args.benchmark}",
        config,
        seeds=seeds,
        out_dir=out,
        num_evals=num_evals,
        eval_episodes=eval_episodes,
        env_kwargs=dict(reward_function_version=args.reward_function_version),
    )
    wall = time.perf_counter() - t0
    s = result.summary
    success = np.asarray(s["eval_success"])  # [runs, tasks]
    tasks = s["env_metadata"]["tasks"]
    print(f"\nper-task success (mean over {success.shape[0]} run(s), {eval_episodes} episode(s) each):")
    for name, value in zip(tasks, success.mean(axis=0)):
        print(f"  {name:28s} {value:.2f}")
    ref = REFERENCE.get(args.algo) if args.benchmark == "MT10" else None
    print(f"mean success {success.mean():.3f}" + (f"  (published, full MT10 run: {ref:.2f})" if ref else ""))
    print(
        f"{s['env_steps']} env steps per run in {wall:.0f} s ({s['env_steps_per_second']:.0f} env-steps/s "
        f"all runs; host env {s['host_env_seconds']:.0f} s, device {s['device_seconds']:.0f} s, evaluation "
        f"{s['eval_seconds']:.0f} s, compile {s['compile_seconds']:.0f} s)"
    )
    versions = json.loads((Path(out) / "config.json").read_text())["versions"]
    print(
        f"metaworld {versions.get('metaworld')}, mujoco {versions.get('mujoco')}, reward function "
        f"{s['env_metadata']['reward_function_version']}; run directory {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
