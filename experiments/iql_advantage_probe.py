"""Where a trained IQL run's advantage weights fall on its dataset, and how its policy fails in the env.

    python experiments/iql_advantage_probe.py RUN_DIR [--episodes 5]

Reads a finished offline IQL run directory (its newest checkpoint, left untouched: the probe resumes a copy), and
prints, over the dataset's rows: Q(s, a), V(s), the advantage A = Q - V and IQL's weight min(exp(beta A), w_max),
grouped by how many steps a row lies before its episode's fall, next to the data's discounted Monte-Carlo return
in the run's reward units; then where the weight mass sits (by data half: a medium-expert file is medium rows
then expert rows); then rollouts of the deterministic policy. Written for the hopper medium-expert diagnosis in
``results/offline_hopper_diagnosis.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import tempfile
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos.offline import iql
from jaxrl.config import from_dict
from jaxrl.envs.registry import make

train_lib = importlib.import_module("jaxrl.run.train")  # the module, not the train() that jaxrl.run re-exports


def episode_layout(terminals: np.ndarray, timeouts: np.ndarray):
    """Per row: steps to its episode's last row, steps since its first, whether that episode fell, its length."""
    ends = np.where((terminals > 0) | (timeouts > 0))[0]
    starts = np.r_[0, ends[:-1] + 1]
    n = len(terminals)
    to_end, since, fell, length = (np.zeros(n, int), np.zeros(n, int), np.zeros(n, bool), np.zeros(n, int))
    for s, e in zip(starts, ends):
        to_end[s : e + 1] = np.arange(e - s, -1, -1)
        since[s : e + 1] = np.arange(e - s + 1)
        fell[s : e + 1] = terminals[e] > 0
        length[s : e + 1] = e - s + 1
    return starts, ends, to_end, since, fell, length


def discounted_returns(rewards: np.ndarray, starts, ends, discount: float) -> np.ndarray:
    out = np.zeros(len(rewards))
    for s, e in zip(starts, ends):
        g = 0.0
        for t in range(e, s - 1, -1):
            g = rewards[t] + discount * g
            out[t] = g
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=5, help="rollouts of the deterministic policy")
    args = p.parse_args()

    spec = json.loads((args.run_dir / "config.json").read_text())
    if spec["algo"] != "iql":
        raise SystemExit(f"{args.run_dir} is a {spec['algo']} run; this probe reads IQL runs")
    copy = Path(tempfile.mkdtemp()) / args.run_dir.name
    shutil.copytree(args.run_dir, copy)
    state = train_lib.take_run(train_lib.resume(copy).state, 0)
    cfg = from_dict(iql.Config, spec["config"])
    with h5py.File(spec["env_metadata"]["dataset_paths"][0]) as f:
        obs, act, rew, term, tout = (f[k][:] for k in ("observations", "actions", "rewards", "terminals", "timeouts"))
    n, half = len(obs), len(obs) // 2
    starts, ends, to_end, since, fell, length = episode_layout(term, tout)
    ep_returns = np.array([rew[s : e + 1].sum() for s, e in zip(starts, ends)])
    scale = 1000.0 / (ep_returns.max() - ep_returns.min()) if cfg.normalize_rewards else 1.0  # IQL's scaling
    mc = discounted_returns(rew * scale, starts, ends, cfg.discount)

    nets, params = iql.make_networks(cfg, act.shape[1]), state.nets
    q = np.asarray(jnp.min(nets.critic.apply(params.critic.target, jnp.asarray(obs), jnp.asarray(act)), axis=0))
    v = np.asarray(nets.value.apply(params.value.params, jnp.asarray(obs)))
    adv = q - v
    w = np.minimum(np.exp(cfg.inverse_temperature * adv), cfg.max_weight)

    print(f"{n} rows, {len(ends)} episodes, {fell.mean():.3f} of rows in episodes that fell; reward scale {scale:.3f}")
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

    def rollout(key):
        o, s = env.reset(key, env_params)

        def body(carry, _):
            o, s, key, done, ret = carry
            a = jnp.clip(nets.actor.apply(params.actor.params, o).mean(), -1.0, 1.0)
            key, k = jax.random.split(key)
            o, s, r, d, *_ = env.step(k, s, a, env_params)
            return (o, s, key, jnp.maximum(done, d.astype(jnp.float32)), ret + (1.0 - done) * r), 1.0 - done

        (*_, ret), alive = jax.lax.scan(body, (o, s, key, 0.0, 0.0), None, 1000)
        return ret, alive.sum()

    rets, lens = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.PRNGKey(1), args.episodes))
    print(f"\nrollouts of the deterministic policy: returns {np.round(rets, 1)}, lengths {np.asarray(lens, int)}")


if __name__ == "__main__":
    main()
