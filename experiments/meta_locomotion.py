"""Meta-RL on brax locomotion: RL², VariBAD, MAML (second order; ProMP-clipped or TRPO outer step), CAVIA and PEARL
on cheetah-vel and ant-dir (jaxrl.tasks.locomotion), run configs for a GPU.

    python experiments/meta_locomotion.py --smoke                 # tiny settings, CPU (12 min here): pipeline only
    python experiments/meta_locomotion.py                         # every algorithm on both families (GPU, hours)
    python experiments/meta_locomotion.py --algos maml-promp,pearl --envs cheetah-vel --seeds 5
    python experiments/meta_locomotion.py --smoke --algos varibad --envs cheetah-vel   # VariBAD's pipeline (CPU)
    python experiments/meta_locomotion.py --ant-forward-backward  # ant-dir as PEARL's / MAML's forward-backward task

The same runs from the command line (one algorithm, one family; the configs below as flags):

    jaxrl train rl2 --env cheetah-vel --seeds 3 --horizon 200 --episodes-per-trial 2 --num-tasks 128 \\
        --hidden-size 128 --learning-rate 3e-4 --gae-lambda 0.95 --total-env-steps 100000000
    jaxrl train varibad --env cheetah-vel --seeds 3 --horizon 200 --episodes-per-trial 2 --num-tasks 64 \\
        --decoder-action --kl-weight 1.0 --encoder-hidden 128 --encoder-embed 64 --decoder-hidden 64 32 \\
        --elbo-prefixes 50 --vae-epochs 1 --hidden 128 128 --num-epochs 2 --clip-eps 0.1 --discount 0.97 \\
        --gae-lambda 0.9 --total-env-steps 100000000
    jaxrl train maml --env cheetah-vel --seeds 3 --horizon 200 --num-tasks 40 --num-trajectories 20 \\
        --inner-lr 0.1 --outer promp --total-env-steps 160000000
    jaxrl train pearl --env ant-dir --seeds 3 --horizon 200 --num-train-tasks 100 --prior-episodes 2 \\
        --posterior-episodes 3 --updates-per-iteration 2000 --hidden 300 300 300 --total-env-steps 5000000

Tasks (module doc of :mod:`jaxrl.tasks.locomotion`): 200-step episodes; cheetah-vel ``r = -|v_x - v_goal| -
0.05 ||a||^2``, ``v_goal ~ U[0, 3]``; ant-dir ``r = v . (cos th, sin th) + survive - 0.5 ||a||^2``,
``th ~ U[0, 2 pi]`` (``--ant-forward-backward``: ``th`` in ``{0, pi}``). Meta-test on 30 held-out tasks.

The configs follow the papers' scale where this library has the same knob: MAML/ProMP (Finn et al. 2017; Rothfuss
et al. 2019): 40 tasks per meta-batch, 20 trajectories per task, one inner step of size 0.1 (advantages
normalised), (64, 64) tanh policy, ProMP outer: 5 Adam epochs at 1e-3 with ratio clip 0.3; TRPO outer: KL 0.01.
CAVIA (Zintgraf et al. 2019, its half-cheetah setting): 50 context parameters adapted with inner step 10, a 2 x 200
ReLU policy, 40 tasks x 20 trajectories, TRPO outer step. PEARL (Rakelly et al. 2019): 100 training tasks, latent 5,
3 x 300 networks, Adam 3e-4, meta-batch 16, 256 transitions per task per update, KL weight 0.1, reward scale 5, 2000
updates per iteration after 5 tasks collect 2 prior and 3 posterior episodes each. RL² (Duan et al. 2016): PPO on a
GRU over trials of 2 episodes. VariBAD (Zintgraf et al. 2020; the authors' released cheetah-vel config): trials of 2
episodes, latent 5, a 128-unit GRU after an embedding of (a, r, s') (the paper embeds a, s, r separately with
16/32/16 units; here one 64-unit layer), reward decoder (64, 32) that also reads the action (``decoder_action``:
the control cost ``0.05 ||a||^2`` is part of the reward), KL weight 1.0, 50 ELBO prefixes per trial, VAE Adam 1e-3;
PPO with a (128, 128) tanh policy, 2 epochs x 4 minibatches, clip 0.1, Adam 7e-4, entropy 0.01, discount 0.97, GAE
0.9; 64 tasks in parallel (the authors ran 16 processes). No published numbers are quoted here (read them off the
papers' figures, whose environments are MuJoCo, not brax); wall times on a GPU were not measured in this session.

Reported: per seed, the meta-test return of ONE 200-step episode after adaptation (RL², VariBAD and PEARL: the last
episode of a trial; MAML: after ``num_inner_steps`` gradient steps), mean ± std over seeds, and the whole adaptation
curve. GPU runs write experiments/results/meta_locomotion.md; each run's directory goes under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import jax
import numpy as np

import jaxrl.envs as envs
from jaxrl.algos.meta import cavia, maml, pearl, rl2, varibad
from jaxrl.run import train

ENVS = ("cheetah-vel", "ant-dir")
HORIZON = 200

# MAML (both outer steps) and CAVIA: 40 tasks x 20 trajectories, one inner step (two at meta-test)
INNER_LOOP = dict(
    num_tasks=40,
    num_trajectories=20,
    num_inner_steps=1,
    eval_inner_steps=2,
    horizon=HORIZON,
    memory_limit_gb=40.0,
    total_env_steps=160_000_000,
)

# label -> (registered algorithm, GPU config for 200-step episodes)
GPU = {
    "rl2": (
        "rl2",
        rl2.Config(
            num_tasks=128,
            episodes_per_trial=2,
            horizon=HORIZON,
            hidden_size=128,
            learning_rate=3e-4,
            discount=0.99,
            gae_lambda=0.95,
            num_epochs=4,
            num_minibatches=4,
            ent_coef=0.0,
            total_env_steps=100_000_000,
        ),
    ),
    "varibad": (
        "varibad",
        varibad.Config(
            num_tasks=64,
            episodes_per_trial=2,
            horizon=HORIZON,
            latent_dim=5,
            encoder_hidden=128,
            encoder_embed=(64,),
            decoder_hidden=(64, 32),
            decoder_action=True,
            kl_weight=1.0,
            elbo_prefixes=50,
            vae_epochs=1,
            vae_learning_rate=1e-3,
            hidden=(128, 128),
            activation="tanh",
            learning_rate=7e-4,
            num_epochs=2,
            num_minibatches=4,
            clip_eps=0.1,
            ent_coef=0.01,
            discount=0.97,
            gae_lambda=0.9,
            max_grad_norm=0.5,
            total_env_steps=100_000_000,
        ),
    ),
    "maml-promp": (
        "maml",
        maml.Config(
            **INNER_LOOP,
            inner_lr=0.1,
            outer="promp",
            outer_lr=1e-3,
            num_outer_epochs=5,
            clip_eps=0.3,
            hidden=(64, 64),
            activation="tanh",
        ),
    ),
    "maml-trpo": (
        "maml",
        maml.Config(**INNER_LOOP, inner_lr=0.1, outer="trpo", max_kl=0.01, hidden=(64, 64), activation="tanh"),
    ),
    "cavia": (
        "cavia",
        cavia.Config(
            **INNER_LOOP,
            num_context_params=50,
            inner_lr=10.0,
            outer="trpo",
            max_kl=0.01,
            hidden=(200, 200),
            activation="relu",
        ),
    ),
    "pearl": (
        "pearl",
        pearl.Config(
            num_train_tasks=100,
            tasks_per_iteration=5,
            prior_episodes=2,
            posterior_episodes=3,
            latent_dim=5,
            hidden=(300, 300, 300),
            encoder_hidden=(200, 200, 200),
            learning_rate=3e-4,
            encoder_learning_rate=3e-4,
            meta_batch=16,
            batch_size=256,
            context_batch_size=100,
            kl_weight=0.1,
            reward_scale=5.0,
            buffer_size=100_000,
            updates_per_iteration=2000,
            adaptation_episodes=3,
            horizon=HORIZON,
            total_env_steps=5_000_000,
        ),
    ),
}

# The same algorithms at toy size (10-step episodes, a couple of iterations): shows every piece runs end to end.
SMOKE_HORIZON = 10
SMOKE_INNER_LOOP = dict(
    num_tasks=2, num_trajectories=2, hidden=(16, 16), eval_inner_steps=1, total_env_steps=2 * 2 * 2 * 2 * SMOKE_HORIZON
)
SMOKE = {
    "rl2": dict(
        num_tasks=2,
        episodes_per_trial=2,
        hidden_size=16,
        num_epochs=1,
        num_minibatches=1,
        total_env_steps=2 * 2 * 2 * SMOKE_HORIZON,
    ),
    "varibad": dict(
        num_tasks=2,
        episodes_per_trial=2,
        latent_dim=2,
        encoder_hidden=16,
        encoder_embed=(16,),
        decoder_hidden=(16,),
        elbo_prefixes=5,
        hidden=(16, 16),
        num_epochs=1,
        num_minibatches=1,
        total_env_steps=2 * 2 * 2 * SMOKE_HORIZON,
    ),
    "maml-promp": dict(SMOKE_INNER_LOOP, num_outer_epochs=1),
    "maml-trpo": dict(SMOKE_INNER_LOOP, cg_iters=2),
    "cavia": dict(SMOKE_INNER_LOOP, cg_iters=2, num_context_params=4),
    "pearl": dict(
        num_train_tasks=2,
        tasks_per_iteration=2,
        prior_episodes=1,
        posterior_episodes=1,
        hidden=(16, 16),
        encoder_hidden=(16, 16),
        meta_batch=2,
        batch_size=16,
        context_batch_size=8,
        buffer_size=64,
        updates_per_iteration=2,
        adaptation_episodes=2,
        total_env_steps=3 * 2 * 2 * SMOKE_HORIZON,
    ),
}


def config_for(label: str, smoke: bool, steps: int | None = None):
    algo, cfg = GPU[label]
    if smoke:
        cfg = dataclasses.replace(cfg, horizon=SMOKE_HORIZON, **SMOKE[label])
    if steps:
        cfg = dataclasses.replace(cfg, total_env_steps=int(steps))
    return algo, cfg


def final_episode_return(label: str, cfg, metrics) -> np.ndarray:
    """``[seeds]``: meta-test return of one episode after adaptation, at the last evaluation."""
    curve = np.asarray(metrics["adaptation"])[:, -1]  # [seeds, adaptation points]
    return curve[:, cfg.num_inner_steps] if label.startswith(("maml", "cavia")) else curve[:, -1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny settings (CPU, minutes): the pipeline only")
    parser.add_argument("--algos", default=",".join(GPU), help=f"comma-separated, from {', '.join(GPU)}")
    parser.add_argument("--envs", default=",".join(ENVS), help=f"comma-separated, from {', '.join(ENVS)}")
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (1 with --smoke)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (overrides the config)")
    parser.add_argument("--num-test-tasks", type=int, default=None, help="held-out tasks; default 30 (2 smoke)")
    parser.add_argument("--num-chunks", type=int, default=None, help="evaluations per run; default 20 (1 smoke)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="trials per held-out task; 5 (1 smoke)")
    parser.add_argument("--ant-forward-backward", action="store_true", help="ant-dir with th in {0, pi}")
    parser.add_argument("--out", default="runs/meta_locomotion", help="parent of the run directories")
    parser.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "results", "meta_locomotion.md"))
    args = parser.parse_args(argv)
    labels = [a for a in args.algos.split(",") if a]
    names = [e for e in args.envs.split(",") if e]
    bad = [a for a in labels if a not in GPU] + [e for e in names if e not in ENVS]
    if bad:
        parser.error(f"unknown {bad}: algorithms are {', '.join(GPU)}; families are {', '.join(ENVS)}")
    smoke = args.smoke
    seeds = args.seeds or (1 if smoke else 3)
    num_test = args.num_test_tasks or (2 if smoke else 30)
    num_chunks = args.num_chunks or (1 if smoke else 20)
    eval_episodes = args.eval_episodes or (1 if smoke else 5)
    horizon = SMOKE_HORIZON if smoke else HORIZON

    lines, total_start = [], time.perf_counter()
    for name in names:
        kwargs = {"forward_backward": True} if name == "ant-dir" and args.ant_forward_backward else {}
        family_and_tasks = envs.make(name, num_test_tasks=num_test, horizon=horizon, **kwargs)
        for label in labels:
            algo, cfg = config_for(label, smoke, args.steps)
            start = time.perf_counter()
            out_dir = None if smoke else os.path.join(args.out, f"{label}-{name}")
            res = train(
                algo,
                family_and_tasks,
                cfg,
                seeds=seeds,
                out_dir=out_dir,
                num_chunks=num_chunks,
                eval_episodes=eval_episodes,
                progress=not smoke,
                checkpoint=not smoke,
                tensorboard=not smoke,
            )
            wall = time.perf_counter() - start
            final = final_episode_return(label, cfg, res.metrics)
            curve = np.asarray(res.metrics["adaptation"])[:, -1].mean(axis=0)
            if not np.all(np.isfinite(final)):
                raise FloatingPointError(f"{label} on {name}: non-finite meta-test return {final}")
            lines.append(
                f"| {name} | {label} | {final.mean():.1f} ± {final.std():.1f} | "
                f"{' / '.join(f'{c:.1f}' for c in curve)} | {cfg.total_env_steps:,} | {wall:.0f} |"
            )
            print(lines[-1], flush=True)
    header = [
        "| family | algorithm | one episode after adaptation | adaptation curve | env steps | wall s |",
        "|---|---|---|---|---|---|",
    ]
    text = "\n".join(
        [
            "# Meta-RL on brax locomotion" + (" (smoke settings: NOT a result)" if smoke else ""),
            "",
            f"Host: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.default_backend()} "
            f"({jax.devices()[0].device_kind}); {seeds} seeds (mean ± std), {num_test} held-out tasks, "
            f"{eval_episodes} meta-test trials per task, {horizon}-step episodes.",
            "",
            *header,
            *lines,
            "",
            f"Total {time.perf_counter() - total_start:.0f} s.",
            "",
        ]
    )
    print(text)
    if not smoke:
        os.makedirs(os.path.dirname(args.results), exist_ok=True)
        with open(args.results, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
