"""Where a trained IQL run's advantage weights fall on its dataset, and how its policy fails in the env.

    python experiments/iql_advantage_probe.py RUN_DIR [--episodes 5]

Reads a finished offline IQL run directory (its final state, read back by ``jaxrl.run.resume``, which writes
nothing to a finished run), and prints, over the dataset's rows: Q(s, a), V(s), the advantage A = Q - V and IQL's
weight min(exp(beta A), w_max), grouped by how many steps a row lies before its episode's fall, next to the run's
own discounted Monte-Carlo returns (its sampler's, in its reward units); then where the weight mass sits (by data
half: a medium-expert file is medium rows then expert rows); then rollouts of the deterministic policy. Written for
the hopper medium-expert diagnosis in ``results/offline_hopper_diagnosis.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos.offline import iql
from jaxrl.config import from_dict
from jaxrl.data import dataset as ds
from jaxrl.data import formats
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.registry import make
from jaxrl.envs.wrappers import VmapEnv
from jaxrl.losses.offline import exp_advantage_weights
from jaxrl.run import resume, take_run


def episode_layout(data: ds.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: steps to its episode's last row, steps since its first, whether that episode fell (ended on a
    terminal, not a timeout), and the episode's length."""
    ids = np.asarray(ds.episode_ids(data))
    row = np.arange(len(ids))
    first = np.searchsorted(ids, ids, side="left")  # ids are non-decreasing: an episode is a run of rows
    last = np.searchsorted(ids, ids, side="right") - 1
    return last - row, row - first, np.asarray(data.terminals)[last] > 0, last - first + 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=5, help="rollouts of the deterministic policy")
    args = p.parse_args()

    spec = json.loads((args.run_dir / "config.json").read_text())
    if spec["algo"] != "iql":
        raise SystemExit(f"{args.run_dir} is a {spec['algo']} run; this probe reads IQL runs")
    state = take_run(resume(args.run_dir).state, 0)  # a finished run is read back, nothing is written
    cfg = from_dict(iql.Config, spec["config"])
    data = formats.load(spec["env_metadata"]["dataset_paths"][0])
    obs, act = jnp.asarray(data.observations), jnp.asarray(data.actions)
    n, half = data.size, data.size // 2
    to_end, since, fell, length = episode_layout(data)
    mc = np.asarray(state.sampler.mc_returns)[:n]  # the run's own: discounted, in its (scaled) reward units
    scale = 1.0 if state.sampler.reward_scale is None else float(state.sampler.reward_scale)

    nets, params = iql.make_networks(cfg, act.shape[1]), state.nets
    q = np.asarray(jnp.min(nets.critic.apply(params.critic.target, obs, act), axis=0))
    v = np.asarray(nets.value.apply(params.value.params, obs))
    adv = q - v
    w = np.asarray(exp_advantage_weights(adv, cfg.inverse_temperature, cfg.max_weight))  # the actor loss's own
    episodes = int(np.sum(np.asarray(ds.episode_ends(data))))
    print(f"{n} rows, {episodes} episodes, {fell.mean():.3f} of rows in episodes that fell; reward scale {scale:.3f}")
    print("\nsteps to a fall | Q(s,a) | V(s) | A mean | A std | MC return | mean weight | weight > 20")
    for k in (0, 1, 2, 5, 10, 20, 50, 100):
        m = fell & (to_end == k)
        print(
            f"{k:15d} | {q[m].mean():6.1f} | {v[m].mean():5.1f} | {adv[m].mean():6.2f} | {adv[m].std():5.2f} | "
            f"{mc[m].mean():9.1f} | {w[m].mean():11.2f} | {np.mean(w[m] > 20):.3f}"
        )
    print("\nrows | share of rows | share of weight | A std | weight > 20")
    groups = {
        "first half (medium in medium-expert)": np.arange(n) < half,
        "second half (expert in medium-expert)": np.arange(n) >= half,
        "<= 20 steps before a fall": fell & (to_end <= 20),
        "21-100 steps before a fall": fell & (to_end > 20) & (to_end <= 100),
        "> 100 steps before a fall": fell & (to_end > 100),
        "episodes that ran 1000 steps": length == 1000,
    }
    for name, m in groups.items():
        print(f"{name} | {m.mean():.3f} | {w[m].sum() / w.sum():.3f} | {adv[m].std():.2f} | {np.mean(w[m] > 20):.4f}")
    top = np.argsort(w)[::-1][: n // 100]
    print(
        f"top 1% of rows by weight: {w[top].sum() / w.sum():.3f} of the weight; {fell[top].mean():.3f} from episodes "
        f"that fell; median {np.median(to_end[top]):.0f} steps before their episode's end"
    )

    env, env_params = make(spec["env_metadata"]["env_name"])
    policy = iql.make_act(nets)
    steps = int(getattr(env_params, "max_steps_in_episode", 1000))
    reset_key, run_key = jax.random.split(jax.random.PRNGKey(1))
    venv = VmapEnv(env, args.episodes)
    o, s = venv.reset(reset_key, env_params)
    _, _, tr, _ = rollout_lib.rollout(
        venv, env_params, lambda o, k: (policy(state, o, k, deterministic=True), ()), s, o, run_key, steps
    )
    done = np.asarray(jnp.logical_or(tr.terminated, tr.truncated))  # [T, episodes]
    lens = np.where(done.any(0), done.argmax(0) + 1, steps)
    rets = (np.asarray(tr.reward) * (np.arange(steps)[:, None] < lens)).sum(0)
    print(f"\nrollouts of the deterministic policy: returns {np.round(rets, 1)}, lengths {lens}")


if __name__ == "__main__":
    main()
