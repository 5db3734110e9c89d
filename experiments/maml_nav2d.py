"""MAML on 2-D navigation (Finn et al. 2017, figure 5 left): meta-test return after k = 0, 1, 2, 3 policy-gradient
steps on held-out goals, for MAML (second order; ProMP-clipped or TRPO outer step), first-order MAML, Reptile, and a
multi-task pretrained policy (num_inner_steps=0) given the same steps.

    python experiments/maml_nav2d.py [--seeds 2] [--steps 5000000] [--variants maml,pretrained]

Writes experiments/results/maml_nav2d.md and maml_nav2d.png.
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
from jaxrl.algos.meta import maml
from jaxrl.run import train

BASE = maml.Config(num_tasks=20, num_trajectories=20, inner_lr=0.3, outer_lr=3e-3, eval_inner_steps=3)
VARIANTS = {
    "maml": {},
    "maml-trpo": dict(outer="trpo"),
    "fo-maml": dict(first_order=True),
    "reptile": dict(outer="reptile"),
    "pretrained": dict(num_inner_steps=0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5_000_000, help="env steps per seed")
    parser.add_argument("--variants", default="maml,pretrained")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "maml_nav2d.md"))
    args = parser.parse_args()
    family = envs.make("nav2d", num_test_tasks=40)
    curves, lines = {}, []
    for name in args.variants.split(","):
        cfg = dataclasses.replace(BASE, total_env_steps=args.steps, **VARIANTS[name])
        start = time.perf_counter()
        res = train(
            "maml",
            family,
            cfg,
            seeds=args.seeds,
            num_chunks=2,
            eval_episodes=args.eval_episodes,
            progress=False,
            checkpoint=False,
            tensorboard=False,
        )
        wall = time.perf_counter() - start
        curve = np.asarray(res.metrics["adaptation"])[:, -1]  # [seeds, k]
        curves[name] = curve
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(curve.mean(0), curve.std(0)))
            + f" | {wall:.0f} |"
        )
        print(name, np.round(curve, 2).tolist(), f"{wall:.0f}s", flush=True)
    k = BASE.eval_inner_steps + 1
    text = "\n".join(
        [
            "# MAML 2-D navigation: adaptation curve on 40 held-out goals",
            "",
            f"Host: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.default_backend()}; "
            f"{args.steps:,} env steps per seed, {args.seeds} seeds (mean ± std over seeds), "
            f"{args.eval_episodes} episodes per measurement, {BASE.num_trajectories} trajectories per inner step.",
            "",
            "| variant | " + " | ".join(f"k={i}" for i in range(k)) + " | wall s |",
            "|---|" + "---|" * (k + 1),
            *lines,
            "",
            f"Config (each variant overrides its fields): `{dataclasses.replace(BASE, total_env_steps=args.steps)}`",
            f"Variants: {', '.join(f'{n}: {VARIANTS[n]}' for n in args.variants.split(','))}",
            "",
        ]
    )
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in curves.items():
        ax.errorbar(np.arange(k), curve.mean(0), yerr=curve.std(0), marker="o", label=name, capsize=3)
    ax.set_xlabel("gradient steps k")
    ax.set_ylabel("return")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out.replace(".md", ".png"), dpi=120)


if __name__ == "__main__":
    main()
