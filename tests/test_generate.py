"""Offline dataset generation (jaxrl.run.generate) and the `jaxrl dataset` CLI."""

import hashlib
import json

import jax
import numpy as np
import pytest

from jaxrl.algos.single import sac
from jaxrl.data import dataset as ds
from jaxrl.data import formats
from jaxrl.envs.offline import array_sha256
from jaxrl.run import generate
from jaxrl.run.cli import main
from jaxrl.run.recorder import cpu_line, host_cpu


@pytest.fixture(scope="module")
def tiny_run():
    cfg = sac.Config(hidden=(16, 16), total_env_steps=800, buffer_size=800, learning_starts=200)
    return generate.train_behaviour("Pendulum-v1", sac_config=cfg, num_chunks=4, eval_episodes=2)


@pytest.fixture(scope="module")
def all_kinds(tiny_run):
    return generate.make_datasets("Pendulum-v1", size=300, run=tiny_run)


@pytest.mark.integration
def test_a_snapshot_rebuilds_every_kind_bit_for_bit(tiny_run, all_kinds, tmp_path):
    """The snapshot (final actor, evaluations, reference returns) and a rerun of the chunks up to the medium one
    give the same datasets as the full run: a fresh machine rebuilds them without the hour-long behaviour run."""
    path = tmp_path / "behaviour.msgpack"
    generate.save_snapshot(generate.behaviour_snapshot(tiny_run), path)
    cfg = sac.Config(hidden=(16, 16), total_env_steps=800, buffer_size=800, learning_starts=200)
    snapshot = generate.load_snapshot(path)
    rebuilt = generate.train_behaviour("Pendulum-v1", sac_config=cfg, num_chunks=4, eval_episodes=2, snapshot=snapshot)
    assert len(rebuilt.states) == tiny_run.medium_chunk + 2  # the retrained chunks and the saved final actor
    again = generate.make_datasets("Pendulum-v1", size=300, run=rebuilt)
    for kind, d in all_kinds.items():
        for field in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
            np.testing.assert_array_equal(getattr(again[kind], field), getattr(d, field), err_msg=f"{kind} {field}")
        assert again[kind].info == d.info
    # a machine that does not reproduce the run says so at the first chunk that differs, naming both CPUs, instead
    # of making other datasets under the same name
    assert snapshot["host"] == cpu_line(host_cpu())
    snapshot["eval_returns"] = np.asarray(snapshot["eval_returns"]) + 1.0
    with pytest.raises(RuntimeError, match="chunk 0 .* does not reproduce the run bit for bit") as err:
        generate.train_behaviour("Pendulum-v1", sac_config=cfg, num_chunks=4, eval_episodes=2, snapshot=snapshot)
    assert f"this one: {cpu_line(host_cpu())}" in str(err.value) and "instruction set" in str(err.value)


@pytest.mark.integration
def test_every_kind_is_valid_with_reference_returns(tiny_run, all_kinds):
    assert set(all_kinds) == set(generate.KINDS)
    for kind, d in all_kinds.items():
        ds.validate(d, action_dim=1, obs_dim=3)
        assert d.info.kind == kind and d.info.env_name == "Pendulum-v1"
        assert d.info.random_return == tiny_run.random_return
        assert d.info.expert_return == tiny_run.expert_return
        # Actions in the env's own range (Pendulum: [-2, 2]), as D4RL stores them.
        assert np.abs(np.asarray(d.actions)).max() <= 2.0 + 1e-6
        assert np.asarray(ds.episode_ends(d))[-1] == 1
    assert all_kinds["random"].size == all_kinds["medium"].size == all_kinds["expert"].size == 300
    assert all_kinds["medium-expert"].size == 600
    np.testing.assert_array_equal(
        np.asarray(all_kinds["medium-expert"].observations[:300]), np.asarray(all_kinds["medium"].observations)
    )
    # medium-replay: everything the behaviour run had collected by the medium chunk.
    assert all_kinds["medium-replay"].size == tiny_run.buffer_sizes[tiny_run.medium_chunk]
    target = tiny_run.random_return + (tiny_run.expert_return - tiny_run.random_return) / 3
    errors = np.abs(tiny_run.eval_returns - target)
    learned = tiny_run.buffer_sizes > 200  # after the warm-up (learning_starts=200)
    assert learned[tiny_run.medium_chunk] and errors[tiny_run.medium_chunk] == errors[learned].min()


@pytest.mark.integration
def test_random_kind_is_the_untrained_policy(tiny_run, all_kinds):
    # D4RL's random datasets are rollouts of a randomly initialised policy: SAC at its initial weights, not
    # uniform noise. Same key as make_datasets' random kind (seed 0): the rows are exactly those.
    key = jax.random.split(jax.random.PRNGKey(1), 3)[0]
    untrained = generate.rollout_dataset(tiny_run.env, tiny_run.env_params, generate._policy(tiny_run, None), key, 300)
    np.testing.assert_array_equal(np.asarray(all_kinds["random"].actions), np.asarray(untrained.actions))
    uniform = generate.rollout_dataset(tiny_run.env, tiny_run.env_params, None, key, 300)
    assert not np.array_equal(np.asarray(all_kinds["random"].actions), np.asarray(uniform.actions))
    trained = jax.tree.leaves(tiny_run.states[-1])
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(tiny_run.init_params), trained))


# The behaviour runs below cost 20-45 s each on 2 busy cores: integration stage (the fast suite keeps the CLI test).
@pytest.mark.integration
def test_rollout_episodes_are_contiguous_and_cut_with_timeouts(all_kinds):
    d = all_kinds["random"]  # 10 parallel envs x 30 steps, each stream stored contiguously
    obs, nxt = np.asarray(d.observations), np.asarray(d.next_observations)
    ends = np.asarray(ds.episode_ends(d)) > 0
    np.testing.assert_allclose(obs[1:][~ends[:-1]], nxt[:-1][~ends[:-1]], atol=1e-6)
    assert np.asarray(d.timeouts)[29::30].all()


@pytest.mark.integration
def test_medium_replay_of_parallel_envs_is_one_contiguous_stream_per_env():
    # The replay buffer interleaves the envs' steps row by row; the dataset stores each env's stream in one piece.
    cfg = sac.Config(hidden=(8, 8), total_env_steps=400, buffer_size=400, learning_starts=100, num_envs=4)
    run = generate.train_behaviour("Pendulum-v1", sac_config=cfg, num_chunks=2, eval_episodes=2)
    assert run.num_envs == 4
    d = generate.make_datasets("Pendulum-v1", ("medium-replay",), size=50, run=run)["medium-replay"]
    rows = int(run.buffer_sizes[run.medium_chunk])
    assert d.size == rows and rows % 4 == 0
    obs, nxt = np.asarray(d.observations), np.asarray(d.next_observations)
    ends = np.asarray(ds.episode_ends(d)) > 0
    np.testing.assert_allclose(obs[1:][~ends[:-1]], nxt[:-1][~ends[:-1]], atol=1e-6)
    assert ends[rows // 4 - 1 :: rows // 4].all()  # each stream's last row ends it
    np.testing.assert_array_equal(obs[: rows // 4], np.asarray(run.buffer.obs)[0:rows:4])  # env 0's steps


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ds.DatasetError, match="unknown dataset kind 'mediocre'.*medium-replay"):
        generate.make_dataset_kind("Pendulum-v1", "mediocre")


def test_cli_make_and_info(tmp_path, capsys):
    out = tmp_path / "random.hdf5"
    assert (
        main(
            [
                "dataset",
                "make",
                "Pendulum-v1",
                "--kind",
                "random",
                "--out",
                str(out),
                "--size",
                "200",
                "--behaviour-steps",
                "400",
                "--hidden",
                "8,8",
            ]
        )
        == 0
    )
    d = formats.load(out)
    assert d.size == 200 and d.info.kind == "random" and d.info.expert_return is not None
    capsys.readouterr()
    assert main(["dataset", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["validation"] == "ok" and info["transitions"] == 200 and info["kind"] == "random"
    assert info["random_return"] == pytest.approx(d.info.random_return)
    assert "normalized_score_of_data" in info and info["episodes"] >= 10
    # The checksum a run records for this file (env_metadata.dataset_hashes), and one of its arrays alone.
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert info["arrays_sha256"] == array_sha256(d) and len(info["arrays_sha256"]) == 64


def test_cli_unknown_kind(capsys):
    assert main(["dataset", "make", "Pendulum-v1", "--kind", "bogus", "--out", "/tmp/x.hdf5"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset kind 'bogus'" in err and "medium-expert" in err


def test_zero_action_return_is_the_do_nothing_reference():
    # MountainCarContinuous pays -0.1 a^2 per step and the unpowered car never reaches the flag from the valley
    # floor: doing nothing returns exactly 0, over the whole 999-step episode.
    assert generate.zero_action_return("MountainCarContinuous-v0", episodes=2) == 0.0
