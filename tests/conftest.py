import fcntl
import os

import pytest

# Tests compile fresh programs (compile counts are asserted); the persistent cache stays off unless asked for.
os.environ.setdefault("JAXRL_COMPILATION_CACHE", "0")

# The fast suite (pyproject's default marker expression) compiles hundreds of small programs and runs each briefly:
# there LLVM's optimisation passes cost more than they save (on a 2-core AVX2-only EPYC, 2026-12-07: 8:07 and 8:58
# at XLA's default level, 5:41 and 5:43 at level 0, every test passing). The learning, integration and golden tests
# keep the default: their thresholds and fixtures were measured with it, and they run long enough for it to pay.
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    addopts = config.getini("addopts")  # the fast suite's marker expression is pyproject's default one
    fast_suite = "-m" in addopts and config.getoption("markexpr") == addopts[addopts.index("-m") + 1]
    flags = os.environ.get("XLA_FLAGS", "")
    if fast_suite and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}".strip()  # before JAX starts its CPU backend


# Two SAC behaviour runs on Pendulum-v1 give the offline learning tests their data, as D4RL's kinds come from
# different runs: expert and medium (5k rows each) from one env trained 20k steps; medium-replay from four envs
# trained 60k steps (one update per step of all four, so it learns 4x more slowly per step): its replay buffer up
# to the medium chunk holds 12k rows with episode returns from random to expert, where one env's buffer holds 3k
# rows of early, poor episodes only. Generated once per test session: the first xdist worker to need them writes
# HDF5 files into the session's shared temp directory under a file lock, the others read them.
OFFLINE_RECIPES = {
    ("expert", "medium"): dict(size=5_000, seed=0, total_env_steps=20_000, num_chunks=40),
    ("medium-replay",): dict(size=5_000, seed=0, total_env_steps=60_000, num_envs=4),
}
OFFLINE_KINDS = tuple(k for kinds in OFFLINE_RECIPES for k in kinds)


@pytest.fixture(scope="session")
def pendulum_datasets(tmp_path_factory):
    """``{kind: (OfflineEnv, env_params)}`` for :data:`OFFLINE_KINDS` of Pendulum-v1 (:data:`OFFLINE_RECIPES`)."""
    from jaxrl.algos.offline import common as oc
    from jaxrl.data import formats
    from jaxrl.run import generate

    # One directory for all xdist workers of this session (a worker's basetemp is inside the session's), and for
    # this session alone: a file left by another session was made by other code (a stale behaviour run made one
    # test's recorded figures unreproducible). The recipe is in the file names too.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    paths = {}
    for kinds, recipe in OFFLINE_RECIPES.items():
        tag = "-".join(f"{k}{v}" for k, v in sorted(recipe.items()))
        paths.update({k: shared / f"Pendulum-v1-{k}-{tag}.hdf5" for k in kinds})
    with open(shared / "offline-datasets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for kinds, recipe in OFFLINE_RECIPES.items():
            if all(paths[k].exists() for k in kinds):
                continue
            for kind, data in generate.make_datasets("Pendulum-v1", kinds, **recipe).items():
                tmp = paths[kind].with_suffix(".partial")
                formats.save(data, tmp, format="d4rl")
                tmp.rename(paths[kind])  # atomic: a reader never sees a half-written file
        fcntl.flock(lock, fcntl.LOCK_UN)
    return {k: oc.make_offline_env(formats.load(p)) for k, p in paths.items()}


# Reference returns of the tiny datasets (so normalised scores are defined).
TINY_REFS = dict(random_return=-1200.0, expert_return=-150.0)


@pytest.fixture(scope="session")
def tiny_data():
    """Two small random-policy Pendulum datasets of different sizes (no behaviour training: fast)."""
    import jax

    import jaxrl.envs
    from jaxrl.data import dataset as ds
    from jaxrl.run import generate

    env, params = jaxrl.envs.make("Pendulum-v1")
    info = lambda name: ds.DatasetInfo(name=name, kind="random", env_name="Pendulum-v1", **TINY_REFS)
    a = generate.rollout_dataset(env, params, None, jax.random.PRNGKey(0), 400, info=info("a"))
    b = generate.rollout_dataset(env, params, None, jax.random.PRNGKey(1), 300, info=info("b"))
    return a, b


@pytest.fixture(scope="session")
def tiny_env(tiny_data):
    """The two tiny datasets stacked into one offline env (``(OfflineEnv, env_params)``)."""
    from jaxrl.algos.offline import common as oc

    return oc.make_offline_env(list(tiny_data))
