"""Offline dataset generation from any jaxrl env with the library's own agents (D4RL-style kinds).

One behaviour run of SAC (``jaxrl.algos.single.sac``) gives every kind:

* ``random``: the untrained behaviour policy (SAC at its initial weights, stochastic), as D4RL's random
  datasets come from a randomly initialised policy;
* ``medium``: the policy of the chunk whose evaluation return is closest to one third of the way from the
  random to the expert return (normalised score ~33), among the chunks after SAC's random warm-up (an untrained
  policy is not "medium"), rolled out with its stochastic policy;
* ``expert``: the final policy, rolled out with its stochastic policy;
* ``medium-replay``: the replay buffer of the behaviour run up to the medium chunk (everything the agent saw
  on its way to "medium");
* ``medium-expert``: the medium and expert datasets concatenated (D4RL's mix).

Every dataset's :class:`~jaxrl.data.dataset.DatasetInfo` carries the env name, the kind and the reference returns
(``random_return``: mean return of a uniformly random policy, the normalisation's 0; ``expert_return``: mean
deterministic return of the final policy), so :func:`jaxrl.data.dataset.normalized_score` works on any file written
from it. Actions are stored in the env's own action range (like D4RL); episodes are contiguous; a cut episode ends
with ``timeouts = 1``.

It trains behaviour agents with the run loop, so it lives in ``run/`` (arrows point ``run -> algos -> data``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl.data.dataset import Dataset, DatasetError, DatasetInfo, make_dataset

__all__ = [
    "KINDS",
    "BehaviourRun",
    "train_behaviour",
    "rollout_dataset",
    "make_datasets",
    "make_dataset_kind",
    "zero_action_return",
    "check_kind",
]

KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")


def check_kind(kind: str) -> None:
    """Raise a :class:`DatasetError` naming the known kinds when ``kind`` is not one of them."""
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}: choose one of {list(KINDS)}")


@dataclasses.dataclass
class BehaviourRun:
    """What one SAC behaviour run leaves for dataset generation (host arrays)."""

    env_name: str
    env: Any
    env_params: Any
    act: Callable  # act(state, obs, key, deterministic) of the SAC agent
    states: list  # SAC state (params only matter) after each chunk
    eval_returns: np.ndarray  # [chunks] deterministic evaluation return after each chunk
    buffer_sizes: np.ndarray  # [chunks] replay rows filled after each chunk
    buffer: Any  # final replay buffer data (Transition of [capacity, ...] host arrays)
    random_return: float
    expert_return: float
    medium_chunk: int
    num_envs: int = 1  # the SAC run's parallel envs: the buffer interleaves their streams row by row
    init_params: Any = None  # SAC params before any update (the ``random`` kind's policy); None: uniform


def _box(env, env_params):
    from jaxrl.envs.wrappers import is_discrete

    space = env.action_space(env_params)
    if is_discrete(env, env_params):
        raise DatasetError("actions: dataset generation needs a continuous (Box) action space")
    low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape)
    return low, high


def _policy_return(env, env_params, key, episodes: int, policy) -> float:
    """Mean return of ``policy(obs [E, n_obs], key) -> actions [E, n_act]`` (in the [-1, 1] box the stack rescales
    to the env's range) over ``episodes`` full episodes."""
    from jaxrl.algos.common import _base_stack, max_episode_steps
    from jaxrl.data import rollout as rollout_lib
    from jaxrl.envs.wrappers import VmapEnv

    rets = jax.jit(
        lambda k: rollout_lib.evaluate(
            VmapEnv(_base_stack(env, env_params), episodes),
            env_params,
            policy,
            k,
            episodes,
            max_episode_steps(env_params),
        )
    )(key)
    return float(np.mean(np.asarray(rets)))


def _random_return(env, env_params, key, episodes: int) -> float:
    from jaxrl.envs.wrappers import action_dim

    n_act = action_dim(env, env_params)
    policy = lambda obs, k: jax.random.uniform(k, (obs.shape[0], n_act), minval=-1.0, maxval=1.0)
    return _policy_return(env, env_params, key, episodes, policy)


def zero_action_return(env_name: str, seed: int = 0, episodes: int = 10) -> float:
    """Mean return of doing nothing: the centre of the action box every step (zero torque on brax's
    locomotion envs). A reference beside the random and expert returns: where standing still is rewarded (brax
    hopper's alive bonus, and its zero action never falls), part of the normalised scale is reached by not moving.
    """
    from jaxrl import envs
    from jaxrl.envs.wrappers import action_dim

    env, env_params = envs.make(env_name)
    _box(env, env_params)
    n_act = action_dim(env, env_params)
    policy = lambda obs, k: jax.numpy.zeros((obs.shape[0], n_act))
    return _policy_return(env, env_params, jax.random.PRNGKey(seed), episodes, policy)


def train_behaviour(
    env_name: str = "Pendulum-v1",
    *,
    total_env_steps: int = 20_000,
    hidden=(64, 64),
    num_chunks: int | None = None,
    seed: int = 0,
    eval_episodes: int = 10,
    num_envs: int = 1,
    sac_config: Any = None,
    env: tuple[Any, Any] | None = None,
    log: Callable[[str], None] | None = None,
    snapshot: dict | None = None,
) -> BehaviourRun:
    """Train SAC on ``env_name`` in ``num_chunks`` compiled chunks, evaluating after each (one program).

    ``num_envs`` parallel envs with one update per step collect ``num_envs`` times more data per update: the
    run learns more slowly per env step, so its replay buffer up to the medium chunk (medium-replay) is larger
    and spans a wider range of returns (on Pendulum-v1 SAC reaches the medium level within ~3k steps of one env).
    ``num_chunks`` (default: one per 500 steps of each env) sets how finely the medium policy, and so the end of
    medium-replay, is picked. ``log`` (e.g. ``print``) gets a line per evaluation.

    ``snapshot`` (:func:`behaviour_snapshot` of an earlier run of the same recipe) rebuilds that run retraining
    only the chunks up to its medium one (:func:`_from_snapshot`).
    """
    from jaxrl import envs
    from jaxrl.algos.single import sac

    env_obj, env_params = env if env is not None else envs.make(env_name)
    _box(env_obj, env_params)
    cfg = sac_config or sac.Config(
        hidden=tuple(hidden),
        total_env_steps=total_env_steps,
        num_envs=num_envs,
        buffer_size=total_env_steps,
        learning_starts=min(1000, total_env_steps // 4),
    )
    algo = sac.make(cfg, env_obj, env_params)
    if num_chunks is None:
        num_chunks = max(1, cfg.num_iterations // 500)
    chunk_len = max(1, cfg.num_iterations // num_chunks)
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    state = jax.jit(algo.init)(init_key)
    init_params = jax.tree.map(np.asarray, state.params)
    run_chunk = jax.jit(lambda s: jax.lax.scan(lambda c, _: (algo.step(c)[0], None), s, None, length=chunk_len)[0])
    evaluate = jax.jit(algo.evaluate, static_argnums=2)
    states, evals, sizes = [], [], []
    for chunk in range(cfg.num_iterations // chunk_len if snapshot is None else snapshot["medium_chunk"] + 1):
        state = run_chunk(state)
        key, ek = jax.random.split(key)
        evals.append(float(evaluate(state, ek, eval_episodes)))
        sizes.append(int(state.buffer.size))
        if log is not None:
            log(f"behaviour {env_name}: {sizes[-1]} rows, evaluation return {evals[-1]:.1f}")
        if snapshot is not None:  # at the first chunk that differs, not after the whole rerun
            _check_reproduced(env_name, chunk, evals[-1], snapshot)
        states.append(jax.tree.map(np.asarray, state.params))
    if snapshot is None:
        key, rk, xk = jax.random.split(key, 3)
        random_return = _random_return(env_obj, env_params, rk, max(eval_episodes, 20))
        expert_return = float(evaluate(state, xk, max(eval_episodes, 20)))
        medium_chunk = _medium_chunk(evals, sizes, random_return, expert_return, cfg.learning_starts)
    else:
        states, evals, sizes, random_return, expert_return, medium_chunk = _from_snapshot(states, snapshot)
    return BehaviourRun(
        env_name,
        env_obj,
        env_params,
        algo.act,
        states,
        np.asarray(evals),
        np.asarray(sizes),
        jax.tree.map(np.asarray, state.buffer.data),
        random_return,
        expert_return,
        medium_chunk,
        cfg.num_envs,
        init_params,
    )


def _medium_chunk(evals, sizes, random_return: float, expert_return: float, learning_starts: int) -> int:
    """The chunk whose evaluation is closest to a third of the way from the random to the expert return; only
    chunks where learning has begun count (a warm-up policy is untrained, not "medium")."""
    target = random_return + (expert_return - random_return) / 3.0
    learned = np.asarray(sizes) > learning_starts
    error = np.where(learned, np.abs(np.asarray(evals) - target), np.inf)
    return int(np.argmin(error)) if learned.any() else len(evals) - 1


def behaviour_snapshot(run: BehaviourRun) -> dict:
    """What :func:`train_behaviour` needs besides a rerun of the first ``medium_chunk + 1`` chunks to rebuild
    ``run``: its evaluations, reference returns and final actor (a few hundred kB where the full run costs an
    hour of CPU). Save it with :func:`save_snapshot`."""
    from flax import serialization

    from jaxrl.run.recorder import cpu_line, host_cpu

    return {
        "medium_chunk": run.medium_chunk,
        "eval_returns": np.asarray(run.eval_returns, np.float64),
        "buffer_sizes": np.asarray(run.buffer_sizes, np.int64),
        "random_return": run.random_return,
        "expert_return": run.expert_return,
        "final_actor": serialization.to_state_dict(run.states[-1].actor.params),
        "host": cpu_line(host_cpu()),  # where it reproduces: a CPU with the same instruction-set extensions
    }


def save_snapshot(snapshot: dict, path: str | Path) -> None:
    """Write a :func:`behaviour_snapshot` (msgpack) atomically."""
    from flax import serialization

    from jaxrl.run.checkpoint import write_atomic

    write_atomic(path, serialization.msgpack_serialize(snapshot))


def load_snapshot(path: str | Path) -> dict:
    from flax import serialization

    return serialization.msgpack_restore(Path(path).read_bytes())


def _check_reproduced(env_name: str, chunk: int, value: float, snapshot: dict) -> None:
    """Raise unless the retrained ``chunk`` evaluates to exactly what the saved run's did."""
    from jaxrl.run.recorder import cpu_line, host_cpu

    saved = float(np.asarray(snapshot["eval_returns"], np.float64)[chunk])
    if value == saved:
        return
    made_on = snapshot.get("host") or "not recorded in the snapshot"
    raise RuntimeError(
        f"behaviour {env_name}: retrained chunk {chunk} evaluates to {value!r}, the saved run's to {saved!r}: this "
        "machine does not reproduce the run bit for bit. XLA:CPU compiles for the host's instruction set, so the "
        f"run reproduces only on a CPU with the same extensions (this one: {cpu_line(host_cpu())}; the run's: "
        f"{made_on}). Rebuild the datasets on such a machine, or delete the snapshot to retrain in full: that makes "
        "other datasets, whose checksums differ from the recorded ones (results on the two do not pool)."
    )


def _from_snapshot(states: list, snapshot: dict) -> tuple:
    """``(states, evals, sizes, random_return, expert_return, medium_chunk)`` of the run ``snapshot`` saved: the
    retrained chunks up to the medium one (``states``: the random and medium policies and the medium-replay buffer,
    each chunk checked against the saved evaluation as it ran), then the saved final actor, evaluations and
    reference returns."""
    from flax import serialization

    saved = np.asarray(snapshot["eval_returns"])
    last = states[-1]
    final_actor = serialization.from_state_dict(last.actor.params, snapshot["final_actor"])
    final = last._replace(actor=last.actor._replace(params=final_actor))
    return (
        [*states, final],
        saved,
        np.asarray(snapshot["buffer_sizes"]),
        float(snapshot["random_return"]),
        float(snapshot["expert_return"]),
        int(snapshot["medium_chunk"]),
    )


def _to_native(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] agent actions -> the env's own range (what RescaleAction does)."""
    return (low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)).astype(np.float32)


def rollout_dataset(
    env,
    env_params,
    policy: Callable | None,
    key: jax.Array,
    size: int,
    *,
    num_envs: int = 10,
    info: DatasetInfo | None = None,
) -> Dataset:
    """``size`` transitions of ``policy(obs [n, O], key) -> action [n, A] in [-1, 1]`` (None: uniform random)
    in ``num_envs`` parallel envs; each env's stream is stored contiguously, and its last row is a timeout
    unless that step ended an episode."""
    from jaxrl.algos.common import _base_stack
    from jaxrl.data import rollout as rollout_lib
    from jaxrl.envs.wrappers import VmapEnv, action_dim

    n_act = action_dim(env, env_params)
    low, high = _box(env, env_params)
    if policy is None:
        policy = lambda obs, k: jax.random.uniform(k, (obs.shape[0], n_act), minval=-1.0, maxval=1.0)
    steps = -(-size // num_envs)
    venv = VmapEnv(_base_stack(env, env_params), num_envs)

    @jax.jit
    def collect(key):
        rk, sk = jax.random.split(key)
        obs, env_state = venv.reset(rk, env_params)
        _, _, tr, _ = rollout_lib.rollout(venv, env_params, lambda o, k: (policy(o, k), ()), env_state, obs, sk, steps)
        return tr

    tr = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), collect(key))  # [num_envs, T, ...]
    terminals = tr.terminated.astype(np.float32)
    timeouts = tr.truncated.astype(np.float32)
    timeouts[:, -1] = np.where(terminals[:, -1] > 0, timeouts[:, -1], 1.0)
    flat = lambda x: x.reshape(num_envs * steps, *x.shape[2:])[:size]
    timeouts = flat(timeouts)
    terminals = flat(terminals)
    if terminals[-1] == 0:
        timeouts[-1] = 1.0
    return make_dataset(
        flat(tr.obs),
        _to_native(flat(tr.action), low, high),
        flat(tr.reward),
        flat(tr.next_obs),
        terminals,
        timeouts,
        info=info,
    )


def _policy(run: BehaviourRun, chunk: int | None, deterministic: bool = False):
    """The behaviour policy after ``chunk`` (``None``: before training; uniform when the run kept no
    initial weights)."""
    params = run.init_params if chunk is None else run.states[chunk]
    if params is None:
        return None

    def policy(obs, key):
        from types import SimpleNamespace

        state = SimpleNamespace(params=params, env_state=None)
        return run.act(state, obs, key, deterministic)

    return policy


def _replay_dataset(run: BehaviourRun, rows: int, info: DatasetInfo) -> Dataset:
    """The first ``rows`` replay rows, each env's stream stored contiguously (the buffer interleaves the
    ``num_envs`` streams step by step), the last row of each stream a timeout unless it ended an episode."""
    low, high = _box(run.env, run.env_params)
    n = run.num_envs
    steps = rows // n
    b = jax.tree.map(
        lambda x: (
            np.asarray(x)[: steps * n].reshape(steps, n, *x.shape[1:]).swapaxes(0, 1).reshape(steps * n, *x.shape[1:])
        ),
        run.buffer,
    )
    terminals = b.terminated.astype(np.float32)
    timeouts = b.truncated.astype(np.float32)
    last = np.arange(1, n + 1) * steps - 1
    timeouts[last] = np.where(terminals[last] == 0, 1.0, timeouts[last])
    return make_dataset(b.obs, _to_native(b.action, low, high), b.reward, b.next_obs, terminals, timeouts, info=info)


def _concat(a: Dataset, b: Dataset, info: DatasetInfo) -> Dataset:
    cat = lambda x, y: np.concatenate([np.asarray(x), np.asarray(y)])
    return make_dataset(
        cat(a.observations, b.observations),
        cat(a.actions, b.actions),
        cat(a.rewards, b.rewards),
        cat(a.next_observations, b.next_observations),
        cat(a.terminals, b.terminals),
        cat(a.timeouts, b.timeouts),
        info=info,
    )


def make_datasets(
    env_name: str = "Pendulum-v1",
    kinds: Sequence[str] = KINDS,
    *,
    size: int = 10_000,
    seed: int = 0,
    run: BehaviourRun | None = None,
    **behaviour_kwargs,
) -> dict[str, Dataset]:
    """Every requested kind from ONE behaviour run (trained here unless ``run`` is given).

    ``size`` rows for random / medium / expert; medium-expert has ``2 * size``; medium-replay has as many rows
    as the behaviour run had collected by the medium chunk.
    """
    for k in kinds:
        check_kind(k)
    if size < 1:
        raise DatasetError(f"observations: size must be >= 1, got {size}")
    if run is None:
        run = train_behaviour(env_name, seed=seed, **behaviour_kwargs)
    extra = (
        ("behaviour", "sac"),
        ("medium_chunk", run.medium_chunk),
        ("medium_return", float(run.eval_returns[run.medium_chunk])),
        ("seed", seed),
    )
    info = lambda kind: DatasetInfo(
        name=f"{env_name}-{kind}",
        kind=kind,
        env_name=env_name,
        random_return=run.random_return,
        expert_return=run.expert_return,
        extra=extra,
    )
    key = jax.random.PRNGKey(seed + 1)
    k_rand, k_med, k_exp = jax.random.split(key, 3)
    out: dict[str, Dataset] = {}
    cache: dict[str, Dataset] = {}

    def get(kind):
        if kind not in cache:
            if kind == "random":
                cache[kind] = rollout_dataset(
                    run.env, run.env_params, _policy(run, None), k_rand, size, info=info(kind)
                )
            elif kind == "medium":
                cache[kind] = rollout_dataset(
                    run.env, run.env_params, _policy(run, run.medium_chunk), k_med, size, info=info(kind)
                )
            elif kind == "expert":
                cache[kind] = rollout_dataset(
                    run.env, run.env_params, _policy(run, len(run.states) - 1), k_exp, size, info=info(kind)
                )
            elif kind == "medium-replay":
                cache[kind] = _replay_dataset(run, int(run.buffer_sizes[run.medium_chunk]), info(kind))
            elif kind == "medium-expert":
                cache[kind] = _concat(get("medium"), get("expert"), info(kind))
        return cache[kind]

    for kind in kinds:
        out[kind] = get(kind)
    return out


def make_dataset_kind(env_name: str, kind: str, **kwargs) -> Dataset:
    """One dataset of ``kind`` (see :func:`make_datasets`)."""
    check_kind(kind)
    return make_datasets(env_name, (kind,), **kwargs)[kind]
