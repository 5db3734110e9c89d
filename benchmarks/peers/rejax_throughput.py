"""Peer side of ``benchmarks/throughput.py``: time rejax 0.1.3 on the same settings as jaxrl.

Runs inside the rejax virtual environment (``benchmarks/setup_rejax_env.sh``), never imports jaxrl. Reads one job
as JSON (argv[1]), prints one line ``RESULT {json}`` on stdout. The job format and the measurement protocol are
the same as jaxrl's worker in ``benchmarks/throughput.py``:

* the whole training of ``runs`` runs is one program, ``jit(vmap(train, in_axes=(None, 0)))(algo, keys)``;
* compile time = ``lower(...).compile()``, measured apart from run time;
* evaluation inside ``train`` is switched off for the timed program (a no-op ``eval_callback``, one eval block:
  ``eval_freq = total_timesteps``, ``skip_initial_evaluation=True``), so both libraries time bare training;
* the final return is measured after training, outside the timed program, with rejax's own ``evaluate``
  (its ``act``: a sampled action, 128 episodes per run).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def make_algo(algo_name: str, s: dict, total_timesteps: int):
    import rejax

    common = dict(
        env=s["env"],
        total_timesteps=total_timesteps,
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
        learning_rate=s["learning_rate"],
        gamma=s["gamma"],
    )
    if s.get("max_grad_norm") is not None:
        common["max_grad_norm"] = s["max_grad_norm"]  # rejax: optax.clip (element-wise); default inf = off
    if algo_name == "ppo":
        cfg = dict(
            common,
            num_envs=s["num_envs"],
            num_steps=s["num_steps"],
            num_epochs=s["num_epochs"],
            num_minibatches=s["num_minibatches"],
            gae_lambda=s["gae_lambda"],
            clip_eps=s["clip_eps"],
            vf_coef=s["vf_coef"],
            ent_coef=s["ent_coef"],
            agent_kwargs={"activation": s["activation"], "hidden_layer_sizes": tuple(s["hidden"])},
        )
    elif algo_name == "sac":
        cfg = dict(
            common,
            num_envs=s["num_envs"],
            batch_size=s["batch_size"],
            buffer_size=s["buffer_size"],
            fill_buffer=s["learning_starts"],
            num_epochs=s["updates_per_step"],
            polyak=1.0 - s["tau"],
            target_update_freq=1,
            hidden_layer_sizes=tuple(s["hidden"]),
            agent_kwargs={"activation": s["activation"]},
        )
    else:
        raise ValueError(algo_name)
    return rejax.get_algo(algo_name).create(**cfg)


def main(job: dict) -> dict:
    from rejax.evaluate import evaluate

    algo_name, s, runs = job["algo"], job["settings"], job["runs"]
    total = job["total_env_steps"]
    algo = make_algo(algo_name, s, total)
    timed_algo = algo.replace(eval_callback=lambda a, ts, rng: jnp.zeros(()))
    keys = jax.random.split(jax.random.PRNGKey(job.get("seed", 0)), runs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    train = jax.jit(jax.vmap(type(timed_algo).train, in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = train.lower(timed_algo, keys).compile()
    compile_s = time.perf_counter() - t0

    times = []
    for i in range(job["warmup"] + job["repeats"]):
        t0 = time.perf_counter()
        ts, _ = compiled(timed_algo, keys)
        jax.block_until_ready(ts)
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t0)

    out = {"compile_s": compile_s, "times_s": times, "rss_before_compile_mb": rss_before}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared, jaxrl-free helpers
    import sidebyside

    out["program"] = sidebyside.program_cost(compiled)
    if job.get("evaluate"):
        episodes = job.get("eval_episodes", 128)

        def ev(ts, key):
            act = algo.make_act(ts)
            _, returns = evaluate(act, key, algo.env, algo.env_params, episodes, algo.env_params.max_steps_in_episode)
            return returns.mean()

        eval_keys = jax.random.split(jax.random.PRNGKey(job.get("seed", 0) + 1_000_003), runs)
        returns = np.asarray(jax.jit(jax.vmap(ev))(ts, eval_keys))
        out["final_return_per_run"] = returns.tolist()
    # Count what was run from the rejax side, to check the two libraries ran the same amount of work.
    if algo_name == "ppo":
        per_iter = algo.num_envs * algo.num_steps
        iters = int(np.ceil(algo.eval_freq / per_iter)) * int(np.ceil(algo.total_timesteps / algo.eval_freq))
        out["iterations"], out["env_steps_per_run"] = iters, iters * per_iter
        out["updates_per_run"] = iters * algo.num_epochs * algo.num_minibatches
    else:
        iters = int(np.ceil(algo.eval_freq / algo.num_envs)) * int(np.ceil(algo.total_timesteps / algo.eval_freq))
        out["iterations"], out["env_steps_per_run"] = iters, iters * algo.num_envs
        out["updates_per_run"] = iters * algo.num_epochs
    out["global_step_check"] = np.asarray(ts.global_step).tolist()[:1]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None
    import importlib.metadata as md

    out["versions"] = {p: md.version(p) for p in ("rejax", "gymnax", "jax", "jaxlib", "flax", "optax")}
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
