"""Gradient conflict between the tasks of a multi-task suite, measured on MT-SAC's shared networks.

For MT-SAC (:mod:`jaxrl.algos.multitask.mt_sac`: one actor and one twin critic shared by all tasks, the task's
context in the observation) the per-task losses ``L_k`` are SAC's actor and critic losses on task ``k``'s replay
batch. The script takes the per-task gradients ``g_k = grad L_k`` (``jax.vmap(jax.grad(L_k))``, the same call
MT-SAC's aggregators use) and their pairwise cosines ``cos_ij = g_i . g_j / (|g_i| |g_j|)``
(:func:`jaxrl.grads.pairwise_cosine`), at two points:

1. at initialisation (random networks), on the warm-up data (random actions, ``learning_starts`` per task);
2. after brief training (``--train-steps`` env steps per task of MT-SAC).

Minibatch noise alone makes cosines of independent draws small, so each task's gradient is the mean over
``--batches`` minibatches of ``--batch-size`` transitions before the cosines are taken. Printed: the mean
cosine over pairs ``i < j``, the fraction of pairs with ``cos < 0`` (conflicting: a step along one task's
gradient raises the other's loss), the most conflicting pairs by name, and the whole matrix. Gradient conflict
in this sense is PCGrad's (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") ``cos(g_i, g_j) < 0``.

    python experiments/suite_conflict.py                        # skills-10, 3 seeds
    python experiments/suite_conflict.py --suite point-goal-4   # the easy suite, for comparison
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl import grads as grads_lib
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import mt_sac
from jaxrl.config import replace
from jaxrl.data import replay


def per_task_grads(config, suite, state, key, batches: int, batch_size: int):
    """Per-task gradients ``[K, *params]`` of MT-SAC's critic and actor losses at ``state``, each the mean over
    ``batches`` minibatches of ``batch_size`` per task."""
    k = suite.num_tasks
    action_dim = int(suite.env.action_space().shape[0])
    actor_net = mt.make_task_tanh_gaussian_policy(action_dim, config.hidden, config.activation, 1)
    critic_net = mt.make_task_q_ensemble(config.hidden, config.activation, 1)
    critic_loss_k, actor_loss_k = mt_sac._task_losses(config, actor_net, critic_net)
    nets = state.nets
    alpha = jnp.exp(nets.temperature.params)
    tasks = mt.task_index(k)

    def one(key):
        b_key, c_key, a_key = jax.random.split(key, 3)
        batch = jax.vmap(replay.sample, in_axes=(0, 0, None))(state.buffer, jax.random.split(b_key, k), batch_size)
        mapped_c = (batch, tasks, jax.random.split(c_key, k), alpha)
        g_c, _ = mt.task_grads(
            critic_loss_k, nets.critic.params, mapped_c, (nets.actor.params, nets.critic.target), True
        )
        mapped_a = (batch, tasks, jax.random.split(a_key, k), alpha)
        g_a, _ = mt.task_grads(actor_loss_k, nets.actor.params, mapped_a, (nets.critic.params,), True)
        return g_c, g_a

    g_c, g_a = jax.lax.map(one, jax.random.split(key, batches))
    mean = lambda g: jax.tree.map(lambda x: x.mean(0), g)
    return mean(g_c), mean(g_a)


def summary(cos: np.ndarray, names: tuple[str, ...], top: int = 5) -> dict:
    k = cos.shape[0]
    iu = np.triu_indices(k, 1)
    pairs = cos[iu]
    order = np.argsort(pairs)[:top]
    return {
        "mean_cosine": float(pairs.mean()),
        "fraction_negative": float((pairs < 0).mean()),
        "min_cosine": float(pairs.min()),
        "most_conflicting": [(names[iu[0][i]], names[iu[1][i]], float(pairs[i])) for i in order],
    }


def measure(suite_name: str, seeds: int, train_steps: int, batches: int, batch_size: int) -> dict:
    suite, params = envs.make(suite_name)
    k = suite.num_tasks
    names = suite.task_names or tuple(str(i) for i in range(k))
    config = replace(
        mt_sac.Config(),
        num_envs=k,
        batch_size=64,
        hidden=(64, 64),
        learning_starts=250,
        buffer_size=max(train_steps + 500, 1000),
        init_alpha=0.1,
        total_env_steps=k * train_steps,
    )
    algo = mt_sac.make(config, suite, params)
    warm_iters = config.learning_starts
    train_iters = train_steps - warm_iters

    @jax.jit
    def run(key):
        state = algo.init(key)
        state, _ = jax.lax.scan(lambda s, _: algo.step(s), state, None, warm_iters)
        g_init = per_task_grads(config, suite, state, jax.random.fold_in(key, 1), batches, batch_size)
        state, metrics = jax.lax.scan(lambda s, _: algo.step(s), state, None, train_iters)
        g_trained = per_task_grads(config, suite, state, jax.random.fold_in(key, 2), batches, batch_size)
        cos = lambda g: grads_lib.pairwise_cosine(g)
        return (cos(g_init[0]), cos(g_init[1])), (cos(g_trained[0]), cos(g_trained[1])), metrics["train_success"][-1]

    out: dict = {}
    t0 = time.perf_counter()
    results = [jax.device_get(run(jax.random.PRNGKey(s))) for s in range(seeds)]
    wall = time.perf_counter() - t0
    for stage, i in (("init", 0), ("trained", 1)):
        for net, j in (("critic", 0), ("actor", 1)):
            cos = np.mean([r[i][j] for r in results], axis=0)  # [K, K], mean over seeds
            per_seed = [summary(np.asarray(r[i][j]), names) for r in results]
            s = summary(cos, names)
            s["per_seed_mean_cosine"] = [p["mean_cosine"] for p in per_seed]
            s["per_seed_fraction_negative"] = [p["fraction_negative"] for p in per_seed]
            s["matrix"] = cos
            out[(stage, net)] = s
    out["train_success_after_brief_training"] = float(np.mean([r[2] for r in results]))
    out["wall_seconds"] = wall
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="skills-10")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=2000, help="env steps per task of brief MT-SAC training")
    ap.add_argument("--batches", type=int, default=8, help="minibatches averaged into each task's gradient")
    ap.add_argument("--batch-size", type=int, default=256, help="transitions per task per minibatch")
    args = ap.parse_args(argv)
    res = measure(args.suite, args.seeds, args.train_steps, args.batches, args.batch_size)
    suite, _ = envs.make(args.suite)
    names = suite.task_names
    print(
        f"suite {args.suite}: MT-SAC (64, 64), {args.seeds} seeds, per-task gradient = mean of {args.batches} x "
        f"{args.batch_size} transitions; brief training {args.train_steps} env steps per task "
        f"({res['wall_seconds']:.0f} s)"
    )
    np.set_printoptions(precision=2, suppress=True, linewidth=160)
    for stage in ("init", "trained"):
        for net in ("critic", "actor"):
            s = res[(stage, net)]
            print(
                f"\n[{stage:7s} {net:6s}] mean cosine {s['mean_cosine']:+.3f} (per seed "
                f"{', '.join(f'{x:+.3f}' for x in s['per_seed_mean_cosine'])}), negative pairs "
                f"{100 * s['fraction_negative']:.0f}% (per seed "
                f"{', '.join(f'{100 * x:.0f}%' for x in s['per_seed_fraction_negative'])}), min {s['min_cosine']:+.3f}"
            )
            print("  most conflicting: " + "; ".join(f"{a} / {b} {c:+.2f}" for a, b, c in s["most_conflicting"]))
            print("  " + " ".join(f"{n[:6]:>6s}" for n in names))
            print("  " + str(np.asarray(s["matrix"])).replace("\n", "\n  "))
    print(
        "\ntraining success after brief training (mean over tasks, seeds): "
        f"{res['train_success_after_brief_training']:.2f}"
    )


if __name__ == "__main__":
    main()
