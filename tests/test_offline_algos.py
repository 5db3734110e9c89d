"""Offline algorithms (BC, filtered BC, offline SAC, IQL, CQL, TD3+BC, AWAC) through the run loop: the offline env,
seeds x datasets in one program, run directories, bad input; learning tests on generated Pendulum datasets."""

import json

import jax
import numpy as np
import pytest

from jaxrl import algos
from jaxrl.algos.offline import common as oc
from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.data import formats
from jaxrl.run import train
from jaxrl.run.cli import main

OFFLINE = ("bc", "sac_offline", "iql", "cql", "td3_bc", "awac")
TINY = dict(hidden=(16, 16), batch_size=32, updates_per_iteration=5, total_env_steps=10)
RUN = dict(num_chunks=2, eval_episodes=2, progress=False)

_compiles: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: (
        _compiles.append(kw.get("fun_name", "?")) if event.endswith("backend_compile_duration") else None
    )
)


def _count_compiles(fn):
    start = len(_compiles)
    out = fn()
    return out, _compiles[start:]


# `tiny_data` / `tiny_env`: session fixtures in tests/conftest.py (two small random-policy Pendulum datasets).


def test_offline_env_stacks_and_rescales(tiny_data, tiny_env):
    env, _ = tiny_env
    assert env.num_datasets == 2 and env.valid_rows == (400, 300)
    assert env.data.observations.shape == (2, 400, 3)
    np.testing.assert_allclose(
        np.asarray(env.data.actions[1, :300, 0]),
        np.clip(np.asarray(tiny_data[1].actions[:, 0]) / 2.0, -1 + 1e-4, 1 - 1e-4),
        atol=1e-6,
    )
    sampler = oc.init_sampler(env, np.int32(1), 0.99)
    batch = oc.sample_batch(env, sampler, jax.random.PRNGKey(0), 2000)
    rows = np.asarray(env.data.observations[1, :300])
    # every sampled row is a valid row of dataset 1 (no padding)
    assert all(np.any(np.all(np.isclose(rows, o), axis=1)) for o in np.asarray(batch.obs[:50]))
    meta = env.metadata()
    assert meta["dataset_kinds"] == ["random", "random"] and len(meta["dataset_hashes"][0]) == 64


@pytest.mark.parametrize("name", OFFLINE)
@pytest.mark.integration
def test_each_algorithm_runs_through_the_run_loop(name, tiny_env):
    module = algos.get(name)
    result = train(name, tiny_env, module.Config(**TINY), seeds=1, **RUN)
    s = result.summary
    for key in ("eval_return", "normalized_score", "normalized_score_best", "normalized_score_last"):
        assert key in s, key
    assert s["normalized_score_last"] == s["normalized_score"]
    assert np.isfinite(s["normalized_score_best"]).all()
    expected = (s["eval_return"][0] + 1200.0) / (1050.0) * 100
    assert s["normalized_score"][0] == pytest.approx(expected, rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("variant", ["H", "rho"])
@pytest.mark.integration
def test_cql_lagrange_moves_the_weight_toward_the_target_gap(variant, tiny_env):
    """CQL(H) / CQL(rho) with the Lagrange weight: alpha rises while the gap exceeds the target and falls below
    it (dual ascent on log alpha, one Adam step = lr in log space at first), and the run loop accepts it."""
    from jaxrl.algos.offline import cql

    log_alpha = {}
    for target in (-1e3, 1e3):  # the gap P - Q_data is O(1) here: far above -1e3, far below 1e3
        cfg = cql.Config(
            **dict(TINY, updates_per_iteration=1),
            cql_variant=variant,
            lagrange=True,
            target_action_gap=target,
            cql_alpha=1.0,
            cql_alpha_learning_rate=0.1,
        )
        algo = cql.make(cfg, *tiny_env)
        step = jax.jit(algo.step)
        state = jax.jit(algo.init)(jax.random.PRNGKey(0))
        trace = []
        for _ in range(3):
            state, metrics = step(state)
            trace.append(float(state.nets.log_cql_alpha.params))
            assert np.isfinite(float(metrics["cql_gap"]))
        log_alpha[target] = np.asarray(trace)
    np.testing.assert_allclose(log_alpha[-1e3][0], 0.1, rtol=1e-4)  # Adam's first step is exactly lr
    np.testing.assert_allclose(log_alpha[1e3][0], -0.1, rtol=1e-4)
    assert (np.diff(log_alpha[-1e3]) > 0).all() and (np.diff(log_alpha[1e3]) < 0).all()
    result = train("cql", tiny_env, cql.Config(**TINY, cql_variant=variant, lagrange=True), seeds=1, **RUN)
    assert np.isfinite(result.summary["normalized_score"]).all()


def test_cql_backs_up_the_entropy_only_when_asked(tiny_env):
    """backup_entropy=True: SAC's soft target ``r + g (1 - d) (min Q-hat(s', a') - alpha log pi(a'|s'))``; False:
    the CQL authors' hard target (their script's deterministic_backup, the paper's eq. 3). With the same key the
    two differ by exactly ``g alpha mean((1 - d) log pi(a'|s'))``; nothing else in the loss changes."""
    from jaxrl.algos.offline import cql, sac_offline

    env, env_params = tiny_env
    key, alpha = jax.random.PRNGKey(3), 0.7
    batch = oc.sample_batch(env, oc.init_sampler(env, np.int32(0), 0.99), jax.random.PRNGKey(4), 64)
    metrics = {}
    for backup in (True, False):
        cfg = cql.Config(**TINY, backup_entropy=backup)
        networks = sac_offline.make_networks(cfg, 1)
        state = jax.jit(cql.make(cfg, env, env_params).init)(jax.random.PRNGKey(0))
        loss = sac_offline._critic_loss(cfg, networks, "cql", lagrange=False)
        metrics[backup] = jax.jit(loss)(state.nets.critic.params, batch, state.nets, alpha, key)[1]
    # the target's next action, drawn as cql_critic_loss draws it (the first of its four keys)
    dist = networks.actor.apply(state.nets.actor.params, batch.next_obs)
    _, logp = dist.sample_and_log_prob(seed=jax.random.split(key, 4)[0])
    entropy_part = cfg.discount * alpha * np.mean((1 - np.asarray(batch.terminated)) * np.asarray(logp))
    np.testing.assert_allclose(metrics[True]["target"], metrics[False]["target"] - entropy_part, rtol=1e-5, atol=1e-5)
    assert abs(entropy_part) > 1e-2  # the check can fail: the entropy term is not negligible here
    np.testing.assert_allclose(metrics[True]["cql_gap"], metrics[False]["cql_gap"], rtol=1e-6)


@pytest.mark.integration
def test_cql_actor_warm_start_imitates_for_bc_steps_then_maximises_q(tiny_env):
    from jaxrl.algos.offline import cql

    one = dict(TINY, updates_per_iteration=1)
    plain, warm = (cql.make(cql.Config(**one, bc_steps=b), *tiny_env) for b in (0, 1))
    s0 = jax.jit(plain.init)(jax.random.PRNGKey(0))
    p1, _ = jax.jit(plain.step)(s0)
    w1, _ = jax.jit(warm.step)(s0)
    leaves = lambda t: [np.asarray(x) for x in jax.tree.leaves(t)]
    # first update: same critic step, a different actor step (imitation instead of Q)
    for a, b in zip(leaves(p1.nets.critic), leaves(w1.nets.critic)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(p1.nets.actor.params), leaves(w1.nets.actor.params)))
    # from update 2 on (iteration 1 >= bc_steps) the warm-started run steps as plain CQL (the two programs
    # differ by the branch, so XLA may round differently: equal to float32 precision)
    w2, _ = jax.jit(warm.step)(w1)
    p2, _ = jax.jit(plain.step)(w1)
    for a, b in zip(leaves(w2.nets), leaves(p2.nets)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.integration
def test_run_directory_records_dataset_and_resumes(tmp_path, tiny_data):
    paths = []
    for d, n in zip(tiny_data, ("a", "b")):
        formats.save(d, tmp_path / f"{n}.hdf5")
        paths.append(str(tmp_path / f"{n}.hdf5"))
    env = oc.load_offline_env(paths)
    out = tmp_path / "run"
    cfg = algos.get("bc").Config(**dict(TINY, total_env_steps=20))
    first = train("bc", env, cfg, out_dir=out, stop_after_chunks=1, tensorboard=False, **dict(RUN, num_chunks=4))
    spec = json.loads((out / "config.json").read_text())
    meta = spec["env_metadata"]
    assert meta["dataset_paths"] == [str((tmp_path / "a.hdf5").resolve()), str((tmp_path / "b.hdf5").resolve())]
    assert len(meta["dataset_hashes"]) == 2 and meta["random_return"] == -1200.0
    assert spec["env"].startswith("dataset:")
    assert first.interrupted
    from jaxrl.run import resume

    resumed = resume(out, progress=False)
    full = train("bc", env, cfg, **dict(RUN, num_chunks=4))
    np.testing.assert_array_equal(resumed.summary["normalized_score"], full.summary["normalized_score"])
    summary = json.loads((out / "summary.json").read_text())
    assert "normalized_score_last" in summary and "normalized_score_best" in summary


@pytest.mark.integration
def test_seeds_x_datasets_one_program_matches_runs_alone(tiny_env):
    cfg = algos.get("bc").Config(**TINY)
    kw = dict(RUN, run_block=2)
    sweep, compiles = _count_compiles(lambda: train("bc", tiny_env, cfg, seeds=2, grid={"dataset_index": [0, 1]}, **kw))
    assert sweep.axes == ("seed", "dataset_index", "chunk")
    assert compiles.count("jit(chunk_one)") == 1 and compiles.count("jit(init_one)") == 1
    import dataclasses

    for seed, index in ((1, 0), (0, 1)):
        alone = train("bc", tiny_env, dataclasses.replace(cfg, dataset_index=index), seeds=[seed], **kw)
        for name, values in alone.metrics.items():
            np.testing.assert_array_equal(sweep.metrics[name][seed, index], values[0], err_msg=name)
    # the two datasets really are different data
    assert not np.array_equal(sweep.metrics["bc_loss"][0, 0], sweep.metrics["bc_loss"][0, 1])


def test_filtered_bc_samples_only_top_episodes(tiny_env):
    env, _ = tiny_env
    member = oc.member(env, np.int32(0))
    keep = np.asarray(ds.top_episodes_mask(member, 0.1))
    sampler = oc.init_sampler(env, np.int32(0), 0.99, keep)
    assert int(sampler.cdf[-1]) == int(keep.sum()) > 0
    batch = oc.sample_batch(env, sampler, jax.random.PRNGKey(3), 500)
    kept_obs = np.asarray(member.observations)[keep > 0]
    assert all(np.any(np.all(np.isclose(kept_obs, o), axis=1)) for o in np.asarray(batch.obs[:40]))


@pytest.mark.integration
def test_iql_finetune_mixes_offline_data_into_the_buffer(tiny_env):
    from jaxrl.algos.offline import iql

    env, env_params = tiny_env
    cfg = iql.Config(**TINY, dataset_index=1)
    offline = jax.jit(iql.make(cfg, env, env_params).init)(jax.random.PRNGKey(0))
    ft = iql.make_finetune(cfg, env, env_params, online_steps=3)
    state = ft.init(jax.random.PRNGKey(1), offline)
    assert int(state.buffer.size) == 300 and state.buffer.capacity == 303
    step = jax.jit(ft.step)
    for _ in range(3):
        state, metrics = step(state)
    assert int(state.buffer.size) == 303 and np.isfinite(float(metrics["critic_loss"]))
    assert not np.array_equal(np.asarray(state.buffer.data.obs[300]), np.zeros(3))


# ------------------------------------------------------------------------------------------------ bad input


def test_wrong_action_dimension(tiny_data):
    d = tiny_data[0]
    bad = d.replace(actions=np.concatenate([np.asarray(d.actions)] * 2, axis=1))
    with pytest.raises(ds.DatasetError, match="action dim 2 does not match the env's action dim 1"):
        oc.make_offline_env(bad)


def test_empty_dataset(tiny_data):
    d = tiny_data[0]
    empty = ds.make_dataset(*(np.asarray(getattr(d, f))[:0] for f in ds.ARRAY_FIELDS), check=False, info=d.info)
    with pytest.raises(ds.DatasetError, match="empty"):
        oc.make_offline_env(empty)


def test_nan_rewards(tiny_data):
    d = tiny_data[0]
    r = np.asarray(d.rewards).copy()
    r[7] = np.nan
    with pytest.raises(ds.DatasetError, match="rewards: contains NaN .first at index 7"):
        oc.make_offline_env(d.replace(rewards=r))


def test_batch_larger_than_data(tiny_env):
    compiles_before = len(_compiles)
    with pytest.raises(ConfigError, match="batch_size=512 is larger than the data: the smallest dataset has 300"):
        train("iql", tiny_env, algos.get("iql").Config(**dict(TINY, batch_size=512)), **RUN)
    assert len(_compiles) == compiles_before


def test_dataset_index_out_of_range(tiny_env):
    with pytest.raises(ConfigError, match=r"dataset_index=2 is out of range.*\[0, 1\]"):
        train("bc", tiny_env, algos.get("bc").Config(**TINY, dataset_index=2), **RUN)


def test_offline_algorithm_needs_a_dataset(capsys):
    with pytest.raises(ConfigError, match="offline algorithm"):
        train("iql", "Pendulum-v1", algos.get("iql").Config(**TINY), **RUN)
    assert main(["train", "cql"]) == 2
    assert "pass --dataset FILE" in capsys.readouterr().err


def test_cli_train_with_dataset(tmp_path, tiny_data, capsys):
    path = tmp_path / "a.npz"
    formats.save(tiny_data[0], path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "bc",
                "--dataset",
                str(path),
                "--out",
                str(out),
                "--total-env-steps",
                "10",
                "--updates-per-iteration",
                "5",
                "--batch-size",
                "32",
                "--hidden",
                "16",
                "16",
                "--num-chunks",
                "2",
                "--eval-episodes",
                "2",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert "normalized_score_last" in summary


def test_missing_dataset_file():
    with pytest.raises(FileNotFoundError, match="jaxrl dataset make"):
        oc.load_offline_env("/nonexistent/data.hdf5")


# ------------------------------------------------------------------------------------------- learning tests
# Datasets generated once per session from one SAC behaviour run on Pendulum-v1 (hidden (64, 64), 20k env steps).

LEARN = dict(hidden=(64, 64), updates_per_iteration=100)
LEARN_RUN = dict(num_chunks=10, eval_episodes=10, progress=False)


# `pendulum_datasets`: the session fixture in tests/conftest.py (one SAC behaviour run on Pendulum-v1).


def _scores(name, env, updates, seeds=3, **overrides):
    cfg = algos.get(name).Config(**LEARN, total_env_steps=updates, **overrides)
    return train(name, env, cfg, seeds=seeds, **LEARN_RUN)


@pytest.mark.learning
def test_bc_on_expert_reaches_90(pendulum_datasets):
    result = _scores("bc", pendulum_datasets["expert"], 3_000)
    last = np.asarray(result.summary["normalized_score_last"])
    print("bc expert normalised score (last) per seed:", last)
    assert last.mean() >= 90


# Medium-replay is mostly poor episodes (returns from random to a few near-expert ones): imitation copies the
# average, value learning picks out the good actions. TD3+BC gets alpha = 10 (the paper's 2.5 keeps it close to
# BC; its own ablation favours a weaker BC term on lower-quality data). Lengths: where each curve has risen (mean
# over 3 seeds per chunk of 20k-update runs, 2026-12-04): IQL -7 -11 -6 2 36 56 69 51 47 63 (every 2k updates),
# CQL 3 49 56 58 66 61 75 69 53 59 (every 2k), TD3+BC 10k: -27 -24 -14 6 26 24 59 42 34 64 (every 1k); BC 5k
# ends at 3.3 (-12.7, 14.8, 7.9). CQL is the costly one (30 sampled actions per state): 4k updates.
MEDIUM_REPLAY_RUNS = {
    "iql": dict(updates=14_000),
    "cql": dict(updates=4_000),
    "td3_bc": dict(updates=10_000, alpha=10.0),
}


# slow: 478 s on CI's 2 cores (stop 41), run by hand (`-m slow`)
@pytest.mark.learning
@pytest.mark.slow
def test_offline_rl_beats_bc_on_medium_replay(pendulum_datasets):
    # measured with these lengths (2026-12-04, last evaluation per seed): BC 3.3 (-12.7, 14.8, 7.9), IQL 53.3
    # (33.8, 37.4, 88.7), CQL 56.2 (60.4, 37.4, 70.7), TD3+BC 63.5 (57.0, 62.2, 71.3); 469 s wall, about 290 s of
    # CPU, on the shared 2-core CPU at load 9 (datasets fixture not counted). TD3+BC with states standardised (its
    # default since 2026-12-05): 65.9 (57.8, 64.1, 75.9); the others reproduced to the digit
    env = pendulum_datasets["medium-replay"]
    bc = np.asarray(_scores("bc", env, 5_000).summary["normalized_score_last"])
    print("bc medium-replay:", bc)
    for name, run in MEDIUM_REPLAY_RUNS.items():
        run = dict(run)
        s = np.asarray(_scores(name, env, run.pop("updates"), **run).summary["normalized_score_last"])
        print(f"{name} medium-replay:", s)
        assert s.mean() >= bc.mean() + 20, (name, s, bc)


def _value_gaps(name, env, **overrides):
    """Train 2 seeds, then the CQL paper's check: the critic's value of the learned (deterministic) policy at 20
    initial states per seed against the discounted return that policy really gets from them (rolled out in the
    env, :func:`sac_offline.make_value_check`). Returns (Q(s, pi(s)) - the data's MC return per chunk, the
    per-seed mean of Q - G)."""
    from jaxrl.algos.offline import sac_offline

    cfg = algos.get(name).Config(**LEARN, total_env_steps=10_000, **overrides)
    result = train(name, env, cfg, seeds=2, **LEARN_RUN)
    data_gap = (result.metrics["q_policy"] - result.metrics["mc_return"]).mean(axis=0)  # [chunks]
    check = jax.jit(sac_offline.make_value_check(cfg, *env), static_argnums=2)
    out = [check(result.run_state(i), jax.random.PRNGKey(7), 20) for i in range(2)]
    q = np.stack([np.asarray(o["q_estimate"]) for o in out])
    g = np.stack([np.asarray(o["policy_return"]) for o in out])
    print(
        f"{name} {overrides}: Q(s, pi(s)) - data MC return per chunk {np.round(data_gap, 1)}; at initial states "
        f"Q {q.mean():.1f} vs the policy's discounted return {g.mean():.1f} (Q - G per seed "
        f"{np.round((q - g).mean(axis=1), 1)}, Q < G at {(q < g).mean():.0%})"
    )
    return data_gap, (q - g).mean(axis=1)


@pytest.mark.learning
@pytest.mark.slow
def test_naive_offline_sac_overestimates(pendulum_datasets):
    # measured (expert data, 2 seeds, 10k updates): data gap 14.1 -> 86.4 per chunk; Q -64.0 / -61.1 at initial
    # states against its policy's discounted return -787.7 / -786.6
    data_gap, true_gap = _value_gaps("sac_offline", pendulum_datasets["expert"])
    assert data_gap[-1] > data_gap[len(data_gap) // 2] > 0  # over-estimation, growing
    assert (true_gap > 100).all()  # far above what its policy gets


# CQL with the authors' gym settings: penalty weight 5 (their min_q_weight; d3rlpy's default too) and the actor's
# BC warm start (their policy_eval_start), here the first half of the updates.
CQL_AUTHORS = dict(cql_alpha=5.0, bc_steps=5_000)


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured 2026-12-04 (expert data, 2 seeds): Q(s, pi(s)) - data MC return per chunk at 10k updates "
    "14.9 11.5 7.8 4.5 1.7 0.5 -0.2 -0.6 -0.7 -0.8 (below from chunk 6, not 5); at 20k updates (2k per chunk) "
    "13.2 6.1 1.1 -0.4 -0.7 -0.7 -0.3 -0.0 0.1 0.1 (score 96.8, 59.7): Q converges ONTO the data's return (-16.3), "
    "not below it. The crossing time is Q's descent from its zero init (Pendulum's rewards are <= 0) at the slow "
    "rate tau (1 - gamma) = 5e-5 per update of Polyak-averaged TD; the margin itself is CQL's theorem 3.2 bound "
    "alpha (pi / beta - 1), which vanishes when the policy is the data's (expert data, BC warm start): cql_gap "
    "P - Q_data falls to -0.28, the penalty is inert (a Lagrange target gap > 0 would lower alpha further). "
    "Not in CI: 604 s of CPU at 20k. Issue 15.",
    strict=False,
)
def test_cql_q_stays_below_the_data_monte_carlo_return(pendulum_datasets):
    # an earlier figure (14.9 11.0 6.6 2.6 -0.7 -2.4 -3.5 -4.3 -4.8 -5.2) reproduces in no setup tried; with
    # cql_alpha 1 and no warm start it stayed above (15.2 -> 1.4). On medium-replay (3 seeds, 20k updates, no warm
    # start), where the policy leaves the data's actions, Q is still converging: gap 323 271 222 178 141 111 88 70
    # 58 50 per 2k updates (Q -298 against the data's -348)
    data_gap, _ = _value_gaps("cql", pendulum_datasets["expert"], **CQL_AUTHORS)
    assert (data_gap[len(data_gap) // 2 :] < 0).all()  # conservative: below the data's return


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured (expert data, 2 seeds, 10k updates; Q at 20 initial states per seed against the "
    "deterministic policy's discounted return there): cql_alpha 5 with bc_steps 5000: Q - G per "
    "seed -5.5 / +207.6 (Q -132.3 vs G -233.3 on average, Q < G at 57% of the states; score 93.8, "
    "82.4); a second measurement of the same config: +31.7 / +204.0; cql_alpha 1: "
    "-106.1 vs -743.7 (score about -40); naive SAC -68.6 vs -776.2. Q stays near the data's values "
    "while the policy still fails from some initial states the narrow data never shows",
    strict=False,
)
def test_cql_stays_below_its_policys_return(pendulum_datasets):
    _, true_gap = _value_gaps("cql", pendulum_datasets["expert"], **CQL_AUTHORS)
    assert (true_gap < 0).all()  # conservative: below what its policy really gets
