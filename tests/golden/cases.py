"""One tiny case per registered algorithm: the env (the registry's default env unless noted) and the config
overrides that make it small and quick to compile (the tiny configs the other tests use), with a few iterations
so that updates happen in both chunks.

``group`` splits the algorithms over the golden test files (xdist ``--dist loadfile`` puts one file on one
worker, so several files let two workers share the work): online, offline_a, offline_b, of about equal time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrl import algos


@dataclasses.dataclass(frozen=True)
class Case:
    env: str  # env name for jaxrl.envs.make (offline: the dataset's env, for evaluation)
    config: dict[str, Any]  # overrides of the algorithm's Config defaults
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra jaxrl.envs.make arguments
    dataset: bool = False  # offline: train on the golden dataset (harness.DATASET_FILE), evaluate on `env`

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (stored in the MANIFEST: a changed case needs a new recording)."""
        return {
            "env": self.env,
            "env_kwargs": _jsonable(self.env_kwargs),
            "config": _jsonable(self.config),
            "dataset": self.dataset,
        }


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(d.items())}


# -------------------------------------------------------------------------------- online: single task
# PPO: tests/test_run.py's TINY (4 envs x 16 steps, 2 epochs x 2 minibatches); 256 steps = 4 iterations.
PPO = dict(num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, hidden=(16, 16), total_env_steps=256)
# SAC: one iteration = one step of every env; updates from the 3rd of 6 iterations.
SAC = dict(num_envs=4, batch_size=16, buffer_size=256, learning_starts=8, hidden=(16, 16), total_env_steps=24)

# ----------------------------------------------------------------------------------- online: multi-task
# MT-SAC / MH-SAC / Distral: tests/test_multitask_a.py's TINY, learning_starts per task lowered so that 6
# iterations (one step of each of the 4 tasks' envs) update from the 3rd on.
MT_SAC = dict(num_envs=4, batch_size=16, learning_starts=2, hidden=(8,), buffer_size=256, total_env_steps=24)
# MT-PPO / MT-TRPO / TE-PPO: tests/test_multitask_b.py's TINY on the 4-task default suite; 4 iterations.
MT_PG = dict(num_envs=4, num_steps=8, total_env_steps=128, hidden=(16,), num_minibatches=2)

# -------------------------------------------------------------------------------------------- meta-RL
# RL^2: tests/test_rl2.py's TINY (8 bandit trials of 5 pulls per iteration); 4 iterations.
RL2 = dict(num_tasks=8, hidden_size=8, num_epochs=1, num_minibatches=2, episodes_per_trial=5, total_env_steps=160)
# MAML: tests/test_maml.py's TINY (2 tasks x 2 trajectories of 5 steps, one inner step); 4 iterations; 2 ProMP outer
# epochs (the first starts at the old policy, where the surrogate is 0 and the clip inactive).
MAML = dict(
    num_tasks=2, num_trajectories=2, hidden=(8,), horizon=5, total_env_steps=160, num_outer_epochs=2, eval_inner_steps=1
)
# VariBAD: tests/test_varibad.py's TINY (2 gridworld trials of 60 steps per iteration); 4 iterations.
VARIBAD = dict(
    num_tasks=2,
    num_minibatches=2,
    num_epochs=1,
    vae_epochs=1,
    latent_dim=2,
    encoder_hidden=8,
    encoder_embed=(),
    decoder_hidden=(8,),
    hidden=(8,),
    total_env_steps=480,
)
# PEARL: tests/test_pearl.py's TINY; 80 steps per iteration, 4 iterations (updates from the 2nd).
PEARL = dict(
    num_train_tasks=4,
    tasks_per_iteration=2,
    prior_episodes=1,
    posterior_episodes=1,
    meta_batch=2,
    batch_size=8,
    context_batch_size=8,
    hidden=(16, 16),
    encoder_hidden=(16,),
    updates_per_iteration=2,
    buffer_size=100,
    latent_dim=3,
    adaptation_episodes=3,
    total_env_steps=320,
)

# -------------------------------------------------------------------------------------------- offline
# tests/test_offline_*.py's TINY: 5 updates of 32 rows per iteration; 4 iterations.
OFFLINE = dict(hidden=(16, 16), batch_size=32, updates_per_iteration=5, total_env_steps=20)
OFFLINE_EXTRA = {
    "brac_p": dict(behaviour_pretrain_updates=5, behaviour_components=2),  # tests/test_offline_constraints.py
    "brac_v": dict(behaviour_pretrain_updates=5, behaviour_components=2),
    "bear": dict(behaviour_pretrain_updates=5, behaviour_components=2),
    "mopo": dict(
        model_hidden=(16, 16),
        num_members=3,
        num_elites=2,
        model_train_updates=10,  # ..._model_based.py
        rollout_batch_size=8,
        rollout_horizon=3,
        model_retain_iterations=2,
    ),
    "morel": dict(
        model_hidden=(16, 16),
        num_members=3,
        num_elites=2,
        model_train_updates=10,
        rollout_batch_size=8,
        rollout_horizon=3,
        model_retain_iterations=2,
        holdout_fraction=0.0,
    ),
    "sac_n": dict(num_critics=3),  # tests/test_offline_more.py
    "edac": dict(num_critics=3),
    "bcq": dict(vae_hidden=(16, 16), num_samples=3, num_act_samples=4),  # tests/test_offline_bcq_algaedice.py
}


def case(name: str) -> Case:
    """``name``'s golden case."""
    env = algos.default_env(name)
    if group(name).startswith("offline"):
        return Case(env, {**OFFLINE, **OFFLINE_EXTRA.get(name, {})}, dataset=True)
    if name == "ppo":
        return Case(env, PPO)
    if name == "sac":
        return Case(env, SAC)
    if name == "mt_sac":  # gradient surgery on (as tests/test_multitask_a.py's run-loop test)
        return Case(env, {**MT_SAC, "aggregator": "pcgrad"})
    if name in ("mh_sac", "distral"):
        return Case(env, MT_SAC)
    if name == "mt_trpo":
        return Case(env, {**MT_PG, "cg_iters": 5})
    if name == "te_ppo":
        return Case(env, {**MT_PG, "latent_dim": 2, "window": 3, "embedding_hidden": (8,), "inference_hidden": (16,)})
    if name == "mt_ppo":
        return Case(env, MT_PG)
    if name == "rl2":  # 4 held-out bandit tasks for evaluation instead of the default
        return Case(env, RL2, env_kwargs=dict(num_test_tasks=4))
    if name == "maml":  # nav2d with 5-step episodes (MAML's horizon must match) and 2 held-out tasks
        return Case(env, MAML, env_kwargs=dict(num_test_tasks=2, horizon=5))
    if name == "cavia":  # MAML's tiny case with 2 context parameters
        return Case(env, {**MAML, "num_context_params": 2}, env_kwargs=dict(num_test_tasks=2, horizon=5))
    if name == "pearl":
        return Case(env, PEARL, env_kwargs=dict(num_test_tasks=3))
    if name == "varibad":  # 3 held-out goals
        return Case(env, VARIBAD, env_kwargs=dict(num_test_tasks=3))
    raise KeyError(f"no golden case for algorithm {name!r}: add one to tests/golden/cases.py")


# The offline algorithms in tests/test_golden_offline_a.py (behaviour cloning, weighted regression, generative);
# the others (actor-critic with a penalty, a constraint or an ensemble; model-based) and any new offline algorithm
# are in tests/test_golden_offline_b.py. The two offline files take about equal time, so xdist workers share them.
OFFLINE_A = ("bc", "awr", "awac", "crr", "iql", "bcq", "algaedice")


def group(name: str) -> str:
    """Which golden test file covers ``name``: 'online' (tests/test_golden_online.py: single-task, multi-task and
    meta-RL), 'offline_a' or 'offline_b' (tests/test_golden_offline_a.py, ..._b.py)."""
    module = algos.ALGORITHMS[name].module
    if ".offline." not in module:
        return "online"
    return "offline_a" if name in OFFLINE_A else "offline_b"


def names(family: str | None = None) -> list[str]:
    """The registered algorithms (of one group)."""
    return [n for n in algos.names() if family is None or group(n) == family]
