"""VariBAD vs RL² on VariBAD's 5x5 gridworld with an unknown goal (Zintgraf et al. 2020, section 5.1, figure 3):
meta-test return per episode of a 4-episode BAMDP rollout (horizon 15) on the 21 candidate goals, beside the
exact Bayes-optimal return (:func:`jaxrl.tasks.goal_grid.bayes_optimal_return`).

    python experiments/varibad_gridworld.py [--seeds 5] [--steps 4800000] [--variants varibad,rl2]
    python experiments/varibad_gridworld.py --bayes-optimal     # recompute the Bayes-optimal returns (~10 min)

Both methods get the same env-step budget per seed and the same task batch (16 trials of 60 steps per iteration);
each is one program (its seeds vmapped) in its own run directory under
experiments/results/runs/varibad_gridworld/; a finished variant is kept, a stopped one resumes from its checkpoint
when the command is run again. The results (experiments/results/varibad_gridworld.md) come from ``jaxrl report``:
the total return over the 4 episodes (IQM, mean, 95% CIs) and the return of each episode k = 1..4 (the
"adaptation" table: k is the episode index there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from results_table import run_cell, variants_parser, write_results

import jaxrl.envs as envs
from jaxrl.algos.meta import rl2, varibad
from jaxrl.tasks.goal_grid import BAYES_OPTIMAL_5X5, GoalGridFamily

CONFIGS = {
    "varibad": varibad.Config(num_tasks=16, num_minibatches=4, num_epochs=4, ent_coef=0.01, discount=0.99),
    "rl2": rl2.Config(
        num_tasks=16,
        num_minibatches=4,
        num_epochs=4,
        episodes_per_trial=4,
        horizon=15,
        hidden_size=64,
        gae_lambda=0.95,
        learning_rate=7e-4,
        ent_coef=0.01,
        discount=0.99,
        eval_deterministic=True,
    ),
}


def run_variant(name: str, args) -> str:
    cfg = dataclasses.replace(CONFIGS[name], total_env_steps=args.steps)
    return str(run_cell(Path(args.runs) / name, name, envs.make("varibad-grid"), cfg, seeds=args.seeds,
                        num_chunks=args.chunks, eval_episodes=args.eval_episodes))  # fmt: skip


def bayes_optimal(recompute: bool) -> dict[int, float]:
    """The Bayes-optimal returns over the first k episodes: ``goal_grid.BAYES_OPTIMAL_5X5``, or (``recompute``)
    computed again by the exact DP (~1 min per episode) and checked against it."""
    if not recompute:
        return dict(BAYES_OPTIMAL_5X5)
    family = GoalGridFamily()
    values = {k: family.bayes_optimal_return(k) for k in range(1, family.episodes_per_trial + 1)}
    for k, v in values.items():
        assert abs(v - BAYES_OPTIMAL_5X5[k]) < 1e-9, (k, v, BAYES_OPTIMAL_5X5[k])
    return values


def main() -> None:
    parser = variants_parser(__doc__, "varibad_gridworld", steps=4_800_000, variants="varibad,rl2", chunks=10,
                             eval_episodes=1, eval_help="rollouts per goal per evaluation (greedy and the env is "
                             "deterministic: one is exact)")  # fmt: skip
    parser.add_argument("--bayes-optimal", action="store_true", help="recompute the Bayes-optimal returns, then stop")
    args = parser.parse_args()
    optimal = bayes_optimal(args.bayes_optimal)
    per_episode = [optimal[k] - optimal.get(k - 1, 0.0) for k in sorted(optimal)]
    print("Bayes-optimal return over the first k episodes:", optimal, "per episode:", per_episode)
    if args.bayes_optimal:
        return
    names = args.variants.split(",")
    run_dirs = [run_variant(name, args) for name in names]
    result = write_results(
        run_dirs,
        args.out,
        title="VariBAD vs RL² on the 5x5 gridworld with an unknown goal (Zintgraf et al. 2020, figure 3)",
        budget=f"{args.steps:,} env steps per seed for each method, {args.seeds} seeds per method (vmapped), "
        f"{args.eval_episodes} meta-test rollouts on each of the 21 goals per evaluation",
        by=["run_dir"],
        notes=[
            f"Bayes-optimal expected return (exact DP over position x unvisited goal cells, "
            f"`jaxrl.tasks.goal_grid.bayes_optimal_return`): over all 4 episodes {optimal[max(optimal)]:.4f}; "
            f"over the first k = 1..4 episodes {[round(optimal[k], 4) for k in sorted(optimal)]}; per episode of "
            f"the Bayes-optimal policy {[round(x, 4) for x in per_episode]} (the k-episode optimum bounds any "
            f"agent's return over its first k episodes).",
            "The table's score is `eval_return`: the meta-test return summed over the 4 episodes of a BAMDP rollout "
            "(greedy actions); the adaptation section lists the return of episode k = 1..4 (its k is the episode, "
            "counted from 0).",
            *(f"{n} config: `{dataclasses.replace(CONFIGS[n], total_env_steps=args.steps)}`" for n in names),
        ],
    )
    for curve in result["adaptation"]:
        print(curve["group"], [round(m, 3) for m in curve["mean"]])


if __name__ == "__main__":
    main()
