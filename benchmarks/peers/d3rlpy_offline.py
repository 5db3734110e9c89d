"""Peer side of ``benchmarks/offline.py --peer``: time d3rlpy 2.8.1 (PyTorch, CPU) gradient updates.

Runs inside the d3rlpy virtual environment (``benchmarks/setup_d3rlpy_env.sh``), never imports jaxrl. Reads one
job as JSON (argv[1]), prints one line ``RESULT {json}`` on stdout. Job fields: ``algo`` (bc, cql, iql, awac,
td3_bc), ``dataset`` (an HDF5 file in the D4RL schema, as jaxrl writes it), ``action_low``/``action_high`` (the
env's action box: actions are rescaled to ``[-1, 1]`` as jaxrl does), ``hidden`` (widths of every network),
``batch_size``, ``settings`` (learning rates and the algorithm's knobs, mapped to d3rlpy's names below),
``updates`` (gradient updates per timed repeat), ``warmup`` (untimed repeats) and ``repeats``.

Protocol (d3rlpy 2.8.1's own training loop, ``QLearningAlgoBase.fitter``, without its logging and progress bar):
``algo.build_with_dataset(dataset)``, then each update is ``batch = dataset.sample_transition_batch(batch_size)``
and ``algo.update(batch)``. Two numbers per repeat:

* ``times_s``: ``updates`` x (sample + update), what ``fit`` does per step (jaxrl's step samples its batch too);
* ``update_only_times_s``: ``updates`` x ``update`` on batches sampled beforehand (d3rlpy's best case).

``compile_graph`` stays off: in d3rlpy 2.8.1 it only acts on CUDA devices.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time


def load_dataset(path: str, low, high):
    import d3rlpy
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        obs = np.asarray(f["observations"], np.float32)
        act = np.asarray(f["actions"], np.float32)
        rew = np.asarray(f["rewards"], np.float32)
        term = np.asarray(f["terminals"], np.float32)
        tout = np.asarray(f["timeouts"], np.float32) if "timeouts" in f else np.zeros_like(term)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    act = np.clip(2.0 * (act - low) / (high - low) - 1.0, -1.0 + 1e-4, 1.0 - 1e-4)  # jaxrl's rescaling
    tout[-1] = max(tout[-1], 1.0 - term[-1])  # the last row closes an episode
    return d3rlpy.dataset.MDPDataset(obs, act, rew, term, tout, action_space=d3rlpy.ActionSpace.CONTINUOUS)


def make_algo(name: str, hidden, batch_size: int, s: dict):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory

    enc = VectorEncoderFactory(hidden_units=list(hidden), activation="relu")
    lr = s["learning_rate"]
    if name == "bc":  # deterministic tanh actor, MSE to the data's actions (jaxrl bc)
        cfg = d3rlpy.algos.BCConfig(
            batch_size=batch_size, learning_rate=lr, policy_type="deterministic", encoder_factory=enc
        )
    elif name == "cql":  # CQL(H) on SAC, fixed penalty weight (no Lagrange: alpha_learning_rate=0), twin critics
        cfg = d3rlpy.algos.CQLConfig(
            batch_size=batch_size,
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            temp_learning_rate=lr,
            alpha_learning_rate=0.0,
            initial_alpha=1.0,
            conservative_weight=s["cql_alpha"],
            n_action_samples=s["num_samples"],
            initial_temperature=1.0,
            gamma=s["discount"],
            tau=s["tau"],
            n_critics=2,
            actor_encoder_factory=enc,
            critic_encoder_factory=enc,
        )
    elif name == "iql":
        cfg = d3rlpy.algos.IQLConfig(
            batch_size=batch_size,
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            expectile=s["expectile"],
            weight_temp=s["inverse_temperature"],
            max_weight=s["max_weight"],
            gamma=s["discount"],
            tau=s["tau"],
            n_critics=2,
            actor_encoder_factory=enc,
            critic_encoder_factory=enc,
            value_encoder_factory=enc,
        )
    elif name == "awac":
        cfg = d3rlpy.algos.AWACConfig(
            batch_size=batch_size,
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            lam=s["temperature"],
            n_action_samples=s["num_samples"],
            gamma=s["discount"],
            tau=s["tau"],
            n_critics=2,
            actor_encoder_factory=enc,
            critic_encoder_factory=enc,
        )
    elif name == "td3_bc":
        cfg = d3rlpy.algos.TD3PlusBCConfig(
            batch_size=batch_size,
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            alpha=s["alpha"],
            target_smoothing_sigma=s["policy_noise"],
            target_smoothing_clip=s["noise_clip"],
            update_actor_interval=s["policy_delay"],
            gamma=s["discount"],
            tau=s["tau"],
            n_critics=2,
            actor_encoder_factory=enc,
            critic_encoder_factory=enc,
        )
    else:
        raise ValueError(f"algo {name!r}: d3rlpy peer knows bc, cql, iql, awac, td3_bc")
    return cfg.create(device="cpu:0")


def main(job: dict) -> dict:
    import numpy as np
    import torch

    torch.manual_seed(job.get("seed", 0))
    np.random.seed(job.get("seed", 0))
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    dataset = load_dataset(job["dataset"], job["action_low"], job["action_high"])
    algo = make_algo(job["algo"], job["hidden"], job["batch_size"], job["settings"])
    algo.build_with_dataset(dataset)
    build_s = time.perf_counter() - t0
    bs, n = job["batch_size"], job["updates"]

    def run_sampled():
        t = time.perf_counter()
        for _ in range(n):
            algo.update(dataset.sample_transition_batch(bs))
        return time.perf_counter() - t

    def run_update_only():
        batches = [dataset.sample_transition_batch(bs) for _ in range(n)]
        t = time.perf_counter()
        for b in batches:
            algo.update(b)
        return time.perf_counter() - t

    times, update_only = [], []
    for i in range(job["warmup"] + job["repeats"]):
        a, b = run_sampled(), run_update_only()  # interleaved: both see the same load
        if i >= job["warmup"]:
            times.append(a)
            update_only.append(b)
    # one more short pass to split a step into sampling and update
    t = time.perf_counter()
    for _ in range(min(n, 100)):
        dataset.sample_transition_batch(bs)
    sample_s_per_batch = (time.perf_counter() - t) / min(n, 100)
    import importlib.metadata as md

    return {
        "build_s": build_s,
        "times_s": times,
        "update_only_times_s": update_only,
        "updates_per_repeat": n,
        "updates_per_s": n / statistics.median(times),
        "update_only_updates_per_s": n / statistics.median(update_only),
        "sample_ms_per_batch": 1e3 * sample_s_per_batch,
        "grad_step": int(algo.grad_step),
        "torch_threads": torch.get_num_threads(),
        "rss_before_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "transitions": int(dataset.transition_count),
        "versions": {p: md.version(p) for p in ("d3rlpy", "torch", "numpy")},
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
