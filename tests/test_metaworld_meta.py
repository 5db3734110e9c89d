"""Meta-World ML1 / ML10 through the host adapter (jaxrl.envs.metaworld_meta) and host meta-training (RL², PEARL,
MAML: jaxrl.run.host_meta).

The fast tests run everywhere on a numpy stand-in with Meta-World's vector-env protocol: point-robot tasks whose
goal is hidden from the observation (as Meta-World zeroes it in ML benchmarks), train and test goals disjoint on
one circle. Tests using the ``metaworld`` fixture skip without the optional extra.
"""

from __future__ import annotations

import json
import types
from typing import NamedTuple

import numpy as np
import pytest

from jaxrl.algos.meta import maml, pearl, rl2
from jaxrl.config import ConfigError
from jaxrl.envs import metaworld_meta as mwm
from jaxrl.run import host_meta
from jaxrl.run.host_meta import train_meta


@pytest.fixture(scope="module")
def metaworld():
    return pytest.importorskip("metaworld")


class FakeTask(NamedTuple):
    env_name: str
    goal: np.ndarray


def fake_tasks(n: int, test: bool, classes=("point",)) -> list[FakeTask]:
    """``n`` goals at radius 0.5, classes in turn: train goals at angles ``2 pi i / n``, test goals at
    ``2 pi (i + 1/3) / n`` (one distribution, as ML1's goals; for n = 8 train and 6 test no angle is shared)."""
    angles = 2 * np.pi * (np.arange(n) + (1 / 3 if test else 0.0)) / n
    goals = 0.5 * np.stack([np.cos(angles), np.sin(angles)], -1)
    return [FakeTask(classes[i % len(classes)], g) for i, g in enumerate(goals)]


class FakeMetaVectorEnv:
    """Meta-World's vector-env protocol in numpy for meta-RL: ``num_envs`` point-robot slots, each running the task
    (goal) ``set_attr("task", tasks)`` gave it; observation ``(position, 0, 0)`` (the goal hidden, as Meta-World's
    ML tasks zero it), reward ``-|p - g|``, ``success`` within 0.15 of the goal; episodes truncate after
    ``horizon`` steps or end at the first success when ``terminate_on_success``; same-step autoreset."""

    def __init__(self, num_envs=2, horizon=5, scripted_success=None):
        self.num_envs = num_envs
        self.goals = np.zeros((num_envs, 2))
        self.horizon = horizon
        self.scripted = scripted_success  # [T, N] success flags to report instead of the geometry
        self.single_observation_space = types.SimpleNamespace(shape=(4,))
        self.single_action_space = types.SimpleNamespace(shape=(2,), low=-np.ones(2), high=np.ones(2))
        self.terminate_on_success = False
        self.global_t = 0
        self.resets = 0

    def set_attr(self, name, values):
        assert name == "task" and len(values) == self.num_envs
        self.goals = np.stack([np.asarray(t.goal) for t in values])

    def _obs(self):
        return np.concatenate([self.pos, np.zeros_like(self.pos)], -1)

    def reset(self, seed=None):
        self.pos = np.zeros((self.num_envs, 2))
        self.t = np.zeros(self.num_envs, int)
        self.resets += 1
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.2 * np.asarray(action), -1, 1)
        self.t += 1
        dist = np.linalg.norm(self.pos - self.goals, axis=-1)
        if self.scripted is not None:
            success = np.asarray(self.scripted[self.global_t], float)
        else:
            success = (dist < 0.15).astype(float)
        self.global_t += 1
        truncated = self.t >= self.horizon
        terminated = (success >= 1) if self.terminate_on_success else np.zeros(self.num_envs, bool)
        done = truncated | terminated
        obs = self._obs()
        info = {"success": success}
        if done.any():
            final = np.empty(self.num_envs, object)
            for i in range(self.num_envs):
                final[i] = obs[i].copy() if done[i] else None
            info.update(final_obs=final, _final_obs=done.copy(), final_info={"success": success})
            self.pos[done] = 0.0
            self.t[done] = 0
            obs = self._obs()
        return obs, -dist, terminated, truncated, info

    def get_attr(self, name):
        if name == "max_path_length":
            return (self.horizon,) * self.num_envs
        raise AttributeError(name)

    def call(self, name, *args):
        assert name == "toggle_terminate_on_success"
        self.terminate_on_success = bool(args[0])

    def close(self):
        pass


def fake_meta_env(seed=0, num_envs=2, horizon=5, classes=("point",), test_classes=None, **kw):
    return mwm.MetaWorldMetaEnv(
        "fake-ML1",
        num_envs=num_envs,
        seed=seed,
        vector_env=FakeMetaVectorEnv(num_envs, horizon, **kw),
        train_tasks=fake_tasks(8, test=False, classes=classes),
        test_tasks=fake_tasks(6, test=True, classes=test_classes or classes),
    )


def fake_factory(horizon=5, **kw):
    return lambda seed, num_envs: fake_meta_env(seed, num_envs, horizon, **kw)


# --------------------------------------------------------------------------------------- without Meta-World


def test_bad_ml_name_is_a_clear_error_before_anything_is_built():
    with pytest.raises(ValueError, match=r"unknown Meta-World meta-RL benchmark 'metaworld:ML11'.*did you mean ML10"):
        mwm.parse_ml("metaworld:ML11")
    # through the training entry point: the name is checked before an env is built or a program compiled
    with pytest.raises(ValueError, match=r"'metaworld:ML-10'.*did you mean ML10"):
        train_meta("rl2", "metaworld:ML-10", rl2.Config(horizon=5, num_tasks=2, num_minibatches=1))
    assert mwm.parse_ml("metaworld:ML10") == ("ML10", None)
    assert mwm.is_ml_name("metaworld:ML1-reach-v3") and not mwm.is_ml_name("metaworld:MT10")


def test_train_and_test_tasks_must_be_disjoint():
    tasks = fake_tasks(4, test=False)
    with pytest.raises(ValueError, match=r"1 task\(s\) are both train and test tasks"):
        mwm.MetaWorldMetaEnv(
            "fake", num_envs=1, vector_env=FakeMetaVectorEnv(1), train_tasks=tasks, test_tasks=tasks[2:3]
        )
    env = fake_meta_env()
    train = {mwm.task_key(t) for t in env.tasks["train"]}
    assert not train & {mwm.task_key(t) for t in env.tasks["test"]}


def test_set_tasks_gives_each_slot_its_goal_and_hides_it():
    env = fake_meta_env(num_envs=2, horizon=3)
    obs = env.set_tasks("test", [1, 4])
    assert obs.shape == (2, 4) and not obs[:, 2:].any()  # the goal is not in the observation
    np.testing.assert_allclose(env.env.envs.goals, [env.tasks["test"][1].goal, env.tasks["test"][4].goal])
    with pytest.raises(ValueError, match=r"set_tasks needs 2 indices in \[0, 8\)"):
        env.set_tasks("train", [0, 8])
    with pytest.raises(ValueError, match="split='val'"):
        env.set_tasks("val", [0, 1])


def test_pool_spreads_tasks_over_classes():
    env = fake_meta_env(classes=("a", "b"), test_classes=("c", "d", "e"))
    np.testing.assert_array_equal(env.pool("train", 4), [0, 1, 2, 3])  # a, b, a, b
    assert [env.classes["test"][i] for i in env.pool("test", 3)] == ["c", "d", "e"]
    assert env.metadata()["tasks"] == ["c", "d", "e"] and env.metadata()["train_classes"] == ["a", "b"]
    with pytest.raises(ValueError, match="has 6 test tasks; asked for 7"):
        env.pool("test", 7)


def test_evaluation_episodes_count_success_at_any_step_and_end_at_success():
    # env 0 succeeds at step 1 of its first evaluation episode (which then ends), env 1 only at the last step of
    # its second; adaptation is not part of this: Meta-World's `evaluation` on the adapted agent
    script = np.zeros((20, 2))
    script[1, 0] = 1
    script[5, 1] = 1
    env = fake_meta_env(num_envs=2, horizon=3, scripted_success=script)
    obs = env.set_tasks("test", [0, 1])
    rate, ret = host_meta.evaluation_episodes(env, obs, lambda o: np.zeros((2, 2)), num_episodes=2)
    np.testing.assert_allclose(rate, [0.5, 0.5])  # env 0: success then failure; env 1: failure then success
    assert not env.env.envs.terminate_on_success  # switched back off
    assert ret.shape == (2,)


def _check_run_dir(result, k: int, run_dir, algo: str):
    s = result.summary
    assert s["algo"] == algo and np.asarray(s["eval_success"]).shape == (1, 1)
    spec = json.loads((run_dir / "config.json").read_text())
    assert spec["meta_test"]["adaptation_episodes"] == k and spec["env_metadata"]["host_adapter"].endswith("meta")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and "train_success" in records[-1]
    assert np.asarray(records[-1]["adaptation_success"]).shape[-1] >= 2
    assert 0.0 <= np.min(records[-1]["eval_success"]) <= np.max(records[-1]["eval_success"]) <= 1.0


@pytest.mark.integration
def test_rl2_pearl_maml_run_end_to_end_on_the_stand_in(tmp_path):
    """Each learner's host loop, updates, meta-test and run directory on tiny budgets (2 evaluations)."""
    cfg = rl2.Config(horizon=5, num_tasks=2, episodes_per_trial=2, num_minibatches=1, num_epochs=1, total_env_steps=40)
    r = train_meta("rl2", fake_factory(), cfg, out_dir=tmp_path / "rl2", num_evals=2, eval_tasks=2, eval_episodes=1)
    _check_run_dir(r, 1, tmp_path / "rl2", "rl2")
    cfg = pearl.Config(
        horizon=5, num_train_tasks=4, tasks_per_iteration=2, meta_batch=2, batch_size=8, context_batch_size=4,
        buffer_size=40, updates_per_iteration=2, hidden=(16,), encoder_hidden=(16,), total_env_steps=80,
        adaptation_episodes=3,
    )  # fmt: skip
    r = train_meta("pearl", fake_factory(), cfg, out_dir=tmp_path / "pearl", num_evals=2, eval_tasks=2)
    _check_run_dir(r, 2, tmp_path / "pearl", "pearl")
    cfg = maml.Config(
        horizon=5, num_tasks=2, num_trajectories=2, hidden=(16,), num_outer_epochs=1, eval_inner_steps=1,
        total_env_steps=80,
    )  # fmt: skip
    r = train_meta("maml", fake_factory(), cfg, out_dir=tmp_path / "maml", num_evals=2, eval_tasks=2)
    _check_run_dir(r, 2, tmp_path / "maml", "maml")


def test_horizon_must_match_the_env():
    cfg = pearl.Config(horizon=7, num_train_tasks=4, tasks_per_iteration=2, total_env_steps=100)
    with pytest.raises(ConfigError, match="horizon=7 but the env's episodes last 5 steps"):
        train_meta("pearl", fake_factory(horizon=5), cfg)
    with pytest.raises(ConfigError, match="host meta-training runs"):
        train_meta("mt_sac", fake_factory(), None)


# ------------------------------------------------------------------------------------------- with Meta-World


def test_unknown_ml1_task_names_close_matches(metaworld):
    with pytest.raises(
        ValueError, match=r"unknown Meta-World task 'reach-v2' in 'metaworld:ML1-reach-v2'.*ML1-reach-v3"
    ):
        mwm.parse_ml("metaworld:ML1-reach-v2")


def test_ml1_reach_protocol(metaworld):
    """ML1 reach: 50 train and 50 test goals, disjoint; the goal is zero in the observation; a slot keeps its task
    over resets; success is Meta-World's info['success']."""
    env = mwm.MetaWorldMetaEnv("ML1-reach-v3", num_envs=2, seed=0, max_episode_steps=60)
    assert env.num_tasks("train") == env.num_tasks("test") == 50
    train = {mwm.task_key(t) for t in env.tasks["train"]}
    assert not train & {mwm.task_key(t) for t in env.tasks["test"]}
    obs = env.set_tasks("test", [0, 1])
    assert obs.shape == (2, 39) and not obs[:, -3:].any()
    goals = [np.asarray(s.unwrapped._active.unwrapped._target_pos) for s in env.env.envs.envs]
    assert not np.allclose(goals[0], goals[1])
    for _ in range(60):
        out = env.step(np.zeros((2, 4)))
    assert out.episode_done.all() and out.truncated.all()
    again = [np.asarray(s.unwrapped._active.unwrapped._target_pos) for s in env.env.envs.envs]
    np.testing.assert_allclose(goals, again)  # the autoreset kept each slot's goal
    # Meta-World's success: an oracle that moves the hand to the (hidden) goal succeeds in every evaluation
    # episode, and those episodes end at the first success; standing still never succeeds
    oracle = lambda o: np.concatenate([np.clip((np.asarray(goals) - o[:, :3]) * 10, -1, 1), np.zeros((2, 1))], -1)
    obs = env.set_tasks("test", [0, 1])
    rate, ret = host_meta.evaluation_episodes(env, obs, oracle, num_episodes=2)
    np.testing.assert_array_equal(rate, [1.0, 1.0])
    rate, _ = host_meta.evaluation_episodes(env, env.set_tasks("test", [0, 1]), lambda o: np.zeros((2, 4)), 1)
    np.testing.assert_array_equal(rate, [0.0, 0.0])
    env.close()


@pytest.mark.integration
def test_rl2_pearl_maml_run_end_to_end_on_ml1_reach(metaworld, tmp_path):
    """Each learner for a couple of iterations on real ML1 reach (episodes of 20 steps), with the meta-test."""
    kw = dict(num_evals=1, eval_tasks=2, eval_episodes=1, adaptation_episodes=1, progress=False, tensorboard=False)
    cfg = rl2.Config(horizon=20, num_tasks=2, episodes_per_trial=2, num_minibatches=1, num_epochs=1, total_env_steps=80)
    r = train_meta("rl2", "metaworld:ML1-reach-v3", cfg, out_dir=tmp_path / "rl2", **kw)
    assert r.summary["env_metadata"]["tasks"] == ["reach-v3"] and r.summary["iterations"] == 1
    cfg = pearl.Config(
        horizon=20, num_train_tasks=2, tasks_per_iteration=2, meta_batch=2, batch_size=8, context_batch_size=4,
        buffer_size=60, updates_per_iteration=2, hidden=(16,), encoder_hidden=(16,), total_env_steps=120,
    )  # fmt: skip
    r = train_meta("pearl", "metaworld:ML1-reach-v3", cfg, out_dir=tmp_path / "pearl", **kw)
    assert np.asarray(r.summary["eval_success"]).shape == (1, 1)
    cfg = maml.Config(horizon=20, num_tasks=2, num_trajectories=1, hidden=(16,), num_outer_epochs=1, total_env_steps=80)
    r = train_meta("maml", "metaworld:ML1-reach-v3", cfg, out_dir=tmp_path / "maml", **kw)
    assert r.summary["env_metadata"]["test_classes"] == ["reach-v3"]


def semicircle_factory(seed, num_envs):
    """PEARL's point-robot shape on the stand-in: train and test goals interleaved on the upper half circle."""

    def tasks(n, offset):
        angles = np.pi * (np.arange(n) + offset) / n
        return [FakeTask("point", 0.5 * np.array([np.cos(a), np.sin(a)])) for a in angles]

    vec = FakeMetaVectorEnv(num_envs, horizon=20)
    return mwm.MetaWorldMetaEnv(
        "semicircle",
        num_envs=num_envs,
        seed=seed,
        vector_env=vec,
        train_tasks=tasks(20, 0.0),
        test_tasks=tasks(10, 0.25),
    )


@pytest.mark.learning
def test_host_pearl_posterior_beats_prior_on_the_stand_in():
    """Host-collected PEARL adapts: at 60k env steps (pearl's defaults, 2 seeds) its posterior-z episodes return more
    than its prior-z episodes on the training goals (measured over a run's last quarter: by 2.2 and 1.2 per episode)."""
    cfg = pearl.Config(horizon=20, total_env_steps=60_000)
    r = train_meta(
        "pearl", semicircle_factory, cfg, seeds=2, num_evals=2, eval_tasks=2, eval_episodes=1, progress=False,
        tensorboard=False, checkpoint=False,
    )  # fmt: skip
    gain = np.asarray(r.metrics["posterior_return"])[:, -1] - np.asarray(r.metrics["prior_return"])[:, -1]
    assert np.all(gain > 0.5), gain
