"""BCQ and AlgaeDICE through the run loop (tiny random Pendulum data), their acting, bad input; learning tests on
generated Pendulum datasets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos
from jaxrl.algos.offline import algaedice, bcq
from jaxrl.algos.offline import common as oc
from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.run import train

NAMES = ("bcq", "algaedice")
TINY = dict(hidden=(16, 16), batch_size=32, updates_per_iteration=5, total_env_steps=10)
TINY_EXTRA = {"bcq": dict(vae_hidden=(16, 16), num_samples=3, num_act_samples=4), "algaedice": {}}
RUN = dict(num_chunks=2, eval_episodes=2, progress=False)


def tiny_config(name, **kw):
    return algos.get(name).Config(**{**TINY, **TINY_EXTRA[name], **kw})


# `tiny_env`: the session fixture in tests/conftest.py (two small random-policy Pendulum datasets).


def test_registered():
    assert algos.get("bcq") is bcq and algos.get("algaedice") is algaedice
    assert algos.default_env("bcq") == "Pendulum-v1" and algos.is_offline("bcq") and algos.is_offline("algaedice")


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_runs_through_the_run_loop_over_seeds_and_datasets(name, tiny_env):
    result = train(name, tiny_env, tiny_config(name), seeds=2, grid={"dataset_index": [0, 1]}, **RUN)
    assert result.axes == ("seed", "dataset_index", "chunk")
    s = result.summary
    assert np.isfinite(s["normalized_score_last"]).all() and len(s["normalized_score_last"]) == 4
    expected = (np.asarray(s["eval_return"]) + 1200.0) / 1050.0 * 100
    np.testing.assert_allclose(s["normalized_score"], expected, rtol=1e-4, atol=1e-3)
    loss = "vae_loss" if name == "bcq" else "nu_loss"
    assert np.isfinite(result.metrics[loss]).all() and result.metrics[loss].shape == (2, 2, 2)


@pytest.mark.integration
def test_bcq_act_picks_the_best_candidate_within_phi(tiny_env):
    env, env_params = tiny_env
    cfg = tiny_config("bcq", max_perturbation=0.05, num_act_samples=8)
    algo = bcq.make(cfg, env, env_params)
    state = jax.jit(algo.init)(jax.random.PRNGKey(0))
    obs = env.data.observations[0, :5]
    key = jax.random.PRNGKey(1)
    a = jax.jit(algo.act)(state, obs, key)
    assert a.shape == (5, 1) and float(jnp.max(jnp.abs(a))) <= 1.0
    # the same candidates by hand: the chosen action has the largest Q_1 among them
    p = bcq.Nets(*(record.params for record in state.nets))  # each network's params
    vae = bcq.make_vae(1, 2, cfg.vae_hidden, cfg.activation)
    from jaxrl import nets
    from jaxrl.losses.generative import bcq_candidates

    actor = nets.make_mlp(1, cfg.hidden, cfg.activation)
    cand = bcq_candidates(
        obs,
        key,
        vae_params=p.vae,
        decode_apply=vae.decode,
        latent_dim=2,
        perturb_apply=actor.apply,
        perturb_params=p.actor,
        max_perturbation=0.05,
        num_samples=8,
        latent_clip=0.5,
    )
    q = nets.make_value_network(cfg.hidden, cfg.activation).apply(
        jax.tree.map(lambda x: x[0], p.critic), jnp.broadcast_to(obs, (8, 5, 3)), cand
    )
    np.testing.assert_allclose(
        np.asarray(a[:, 0]), np.asarray(cand[jnp.argmax(q, axis=0), jnp.arange(5), 0]), rtol=1e-6
    )
    # single observation (no batch axis) works too
    assert jax.jit(algo.act)(state, obs[0], key).shape == (1,)


def test_algaedice_init_states_are_episode_starts(tiny_env):
    env, _ = tiny_env
    member = oc.member(env, jnp.int32(1))
    starts = np.asarray(algaedice.episode_starts(member))
    ends = np.asarray(ds.episode_ends(member))
    assert starts[0] == 1 and starts.sum() == ends[:300].sum()  # one start per episode, none on padding
    np.testing.assert_array_equal(np.nonzero(starts[1:300])[0], np.nonzero(ends[:299])[0])
    assert starts[300:].sum() == 0
    # Pendulum episodes start at rest-ish random states: |theta_dot| <= 1
    assert np.all(np.abs(np.asarray(member.observations)[starts > 0, 2]) <= 1.0 + 1e-6)


@pytest.mark.integration
def test_algaedice_batch_init_states_and_delayed_actor(tiny_env):
    env, env_params = tiny_env
    algo = algaedice.make(tiny_config("algaedice", init_states="batch", updates_per_iteration=1), env, env_params)
    step = jax.jit(algo.step)
    s0 = jax.jit(algo.init)(jax.random.PRNGKey(0))
    s1, m1 = step(s0)
    s2, m2 = step(s1)
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    # nu moves every update; the actor, temperature and target nu every actor_update_every = 2 updates
    assert not same(s1.nets.nu.params, s0.nets.nu.params) and not same(s2.nets.nu.params, s1.nets.nu.params)
    assert same(s1.nets.actor, s0.nets.actor) and same(s1.nets.nu.target, s0.nets.nu.target)
    assert not same(s2.nets.actor, s1.nets.actor) and not same(s2.nets.nu.target, s1.nets.nu.target)
    assert float(s2.nets.log_alpha.params) != float(s1.nets.log_alpha.params)
    assert all(np.isfinite(float(v)) for v in m2.values())


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "name,field,value,match",
    [
        ("bcq", "lam", 1.5, r"Config.lam=1.5 is out of range: must be >= 0 and <= 1"),
        ("bcq", "max_perturbation", -0.1, r"Config.max_perturbation=-0.1 is out of range: must be >= 0"),
        ("bcq", "latent_clip", 0.0, r"Config.latent_clip=0.0 is out of range: must be > 0"),
        ("bcq", "num_samples", 0, r"Config.num_samples=0 is out of range: must be >= 1"),
        ("algaedice", "discount", 1.0, r"Config.discount=1.0 is out of range: must be >= 0 and < 1"),
        ("algaedice", "f_exponent", 1.0, r"Config.f_exponent=1.0 is out of range: must be > 1"),
        ("algaedice", "algae_alpha", -1.0, r"Config.algae_alpha=-1.0 is out of range: must be >= 0"),
        ("algaedice", "init_states", "random", r"Config.init_states='random' is not allowed: choose one of"),
    ],
)
def test_bad_config_names_the_field(name, field, value, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(name, **{field: value})


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_before_compiling(name, tiny_env):
    with pytest.raises(
        ConfigError,
        match=rf"{name}.Config.batch_size=512 is larger than the data: the smallest "
        r"dataset has 300",
    ):
        train(name, tiny_env, tiny_config(name, batch_size=512), **RUN)
    with pytest.raises(ConfigError, match=r"dataset_index=2 is out of range"):
        train(name, tiny_env, tiny_config(name, dataset_index=2), **RUN)
    with pytest.raises(ConfigError, match="offline algorithm"):
        train(name, "Pendulum-v1", tiny_config(name), **RUN)


# ------------------------------------------------------------------------------------------- learning tests
# The Pendulum-v1 datasets of one SAC behaviour run: the session fixture `pendulum_datasets` (tests/conftest.py).

LEARN = dict(hidden=(64, 64), updates_per_iteration=100)
LEARN_RUN = dict(num_chunks=10, eval_episodes=10, progress=False)


@pytest.mark.learning
def test_bcq_on_expert_data_reaches_90(pendulum_datasets):
    # measured (3 seeds, 3k updates): last 100.4 / 99.5 / 100.8, mean over seeds 96 from the second chunk on
    cfg = bcq.Config(**LEARN, vae_hidden=(64, 64), total_env_steps=3_000)
    result = train("bcq", pendulum_datasets["expert"], cfg, seeds=3, **LEARN_RUN)
    last = np.asarray(result.summary["normalized_score_last"])
    print("bcq expert normalised score (last) per seed:", last)
    assert last.mean() >= 90


@pytest.mark.learning
def test_algaedice_on_medium_replay_beats_random(pendulum_datasets):
    """AlgaeDICE has no term that keeps the policy near the data: on expert-only data (narrow actions) it stays
    at the random policy's level (measured: last -12.8 / -16.6 / -7.9 after 3k updates; with 10k updates nu and
    the temperature grow without bound). On medium-replay's broader actions it learns, but unstably: measured
    over 3 seeds, 5k updates: best 60.1 / 51.5 / 47.1, last 39.1 / 11.3 / 28.5 (chunk means -6.5 ... 46.4);
    10k updates: best 53.5 / 38.5 / 56.8, last -9.3 / -25.7 / 16.1. So the best score is asserted, the last
    is only printed."""
    cfg = algaedice.Config(**LEARN, total_env_steps=5_000)
    result = train("algaedice", pendulum_datasets["medium-replay"], cfg, seeds=3, **LEARN_RUN)
    last = np.asarray(result.summary["normalized_score_last"])
    best = np.asarray(result.summary["normalized_score_best"])
    print("algaedice medium-replay normalised score per seed: last", last, "best", best)
    assert best.mean() >= 30
