"""PCGrad's 2-D toy (Yu et al. 2020, Fig. 1 / lecture): Adam vs Adam + PCGrad on two conflicting losses.

    L1(theta) = 20 log(max(|0.5 theta_1 + tanh(theta_2)|, 5e-6))
    L2(theta) = 25 log(max(|0.5 theta_1 - tanh(theta_2) + 2|, 5e-6))

The joint optimum is the valley theta_1 = -2, theta_2 -> inf. Each run is one jitted ``lax.scan``.

    python experiments/pcgrad_toy.py [--steps 100000] [--lr 1e-3] [--out experiments/results/pcgrad_toy.png]
"""

from __future__ import annotations

import argparse
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl import grads

STARTS = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -5.0), (5.0, -8.0))


def task_losses(theta: jax.Array) -> jax.Array:
    """[L1, L2] at theta [2]."""
    x, y = theta[0], theta[1]
    l1 = 20.0 * jnp.log(jnp.maximum(jnp.abs(0.5 * x + jnp.tanh(y)), 5e-6))
    l2 = 25.0 * jnp.log(jnp.maximum(jnp.abs(0.5 * x - jnp.tanh(y) + 2.0), 5e-6))
    return jnp.stack([l1, l2])


def total_loss(theta: jax.Array) -> jax.Array:
    return task_losses(theta).sum()


@functools.partial(jax.jit, static_argnames=("use_pcgrad", "steps"))
def _optimise(start, lr, *, use_pcgrad: bool, steps: int):
    tx = optax.chain(grads.pcgrad() if use_pcgrad else grads.sum(), optax.adam(lr))
    theta0 = jnp.asarray(start, jnp.float32)

    def step(carry, _):
        theta, state = carry
        per_task = jax.jacrev(task_losses)(theta)  # [K=2, 2]
        updates, state = tx.update(per_task, state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, state), theta

    _, path = jax.lax.scan(step, (theta0, tx.init(theta0)), None, length=steps)
    trajectory = jnp.concatenate([theta0[None], path])
    return trajectory, total_loss(trajectory[-1])


def optimise(start, use_pcgrad: bool, steps: int = 100_000, lr: float = 1e-3):
    """Runs Adam (on the summed gradient, or on PCGrad's aggregate) from ``start``.

    ``start`` is [2] or a batch [S, 2] (runs vmapped). Returns (trajectory [steps + 1, 2] or [S, steps + 1, 2],
    final L1 + L2 [] or [S]).
    """
    start = jnp.asarray(start, jnp.float32)
    run = functools.partial(_optimise, lr=jnp.float32(lr), use_pcgrad=use_pcgrad, steps=steps)
    if start.ndim == 2:
        return jax.vmap(run)(start)
    return run(start)


def tail_mean_loss(trajectory, fraction: float = 0.1) -> jax.Array:
    """Mean L1 + L2 over the last ``fraction`` of a trajectory ([..., T, 2] -> [...]).

    Near the valley floor Adam oscillates across |0.5 theta_1 - tanh(theta_2) + 2| ~ 0, where log|.| swings by
    tens of units from one step to the next, so the loss at the very last step is a noisy read-out (it moves by
    +-30 when the step count changes by 1%); this average is the stable one.
    """
    trajectory = jnp.asarray(trajectory)
    tail = trajectory[..., -max(1, int(fraction * trajectory.shape[-2])) :, :]
    return jnp.mean(jnp.vectorize(total_loss, signature="(2)->()")(tail), axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "pcgrad_toy.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = np.array(STARTS, np.float32)
    results = {
        name: optimise(starts, flag, args.steps, args.lr) for name, flag in (("Adam", False), ("Adam+PCGrad", True))
    }
    tails = {name: np.asarray(tail_mean_loss(traj)) for name, (traj, _) in results.items()}
    print(f"{'start':>14} | {'method':>11} | {'final theta':>18} | {'final L1+L2':>11} | {'mean last 10%':>13}")
    for s, start in enumerate(STARTS):
        for name, (traj, loss) in results.items():
            end = np.asarray(traj[s, -1])
            print(
                f"{str(start):>14} | {name:>11} | ({end[0]:7.3f}, {end[1]:7.3f}) | {float(loss[s]):11.2f} | "
                f"{tails[name][s]:13.2f}"
            )
        adam, pc = tails["Adam"][s], tails["Adam+PCGrad"][s]
        print(
            f"{'':>14}   -> mean of last 10%: {'PCGrad lower' if pc < adam else 'plain Adam lower'} "
            f"by {abs(adam - pc):.2f}"
        )

    xs, ys = np.meshgrid(np.linspace(-10, 10, 300), np.linspace(-10, 10, 300))
    grid = jnp.stack([xs.ravel(), ys.ravel()], axis=1)
    zs = np.asarray(jax.vmap(total_loss)(grid)).reshape(xs.shape)
    fig, ax = plt.subplots(figsize=(7, 6))
    contour = ax.contourf(xs, ys, zs, levels=40, cmap="viridis")
    fig.colorbar(contour, ax=ax, label="L1 + L2")
    for name, color, width in (
        ("Adam+PCGrad", "white", 2.5),
        ("Adam", "tab:red", 1.2),
    ):  # Adam on top: paths share a stretch
        traj = np.asarray(results[name][0])
        for s in range(len(STARTS)):
            ax.plot(traj[s, :, 0], traj[s, :, 1], color=color, lw=width, label=name if s == 0 else None)
            ax.plot(*traj[s, -1], marker="*", color=color, ms=10)
    ax.plot(starts[:, 0], starts[:, 1], "ko", ms=5, label="start")
    ax.axvline(-2.0, color="k", ls=":", lw=0.8)
    ax.set(
        xlabel="theta_1",
        ylabel="theta_2",
        xlim=(-10, 10),
        ylim=(-10, 10),
        title=f"PCGrad toy: Adam lr={args.lr:g}, {args.steps} steps",
    )
    ax.legend(loc="center right")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
