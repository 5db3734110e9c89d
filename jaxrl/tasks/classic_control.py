"""Parametrised classic-control suites: gymnax CartPole and Pendulum with per-task physics.

A task is a set of gymnax ``EnvParams`` (every leaf stacked ``[K]``); the agent sees it only through the suite's
context omega (one-hot task IDs by default, or the normalised physical parameters with ``contexts="params"``).

* ``make_cartpole_suite(pole_lengths, pole_masses)``: CartPole-v1 (500-step episodes, reward 1 per step) whose
  task ``k`` has half pole length ``pole_lengths[k]`` and pole mass ``pole_masses[k]`` (the derived fields
  ``total_mass`` and ``polemass_length`` are kept consistent).
* ``make_pendulum_suite(masses, lengths, gravities)``: Pendulum-v1 (200-step episodes) with mass ``m``, length
  ``l`` and gravity ``g`` per task.

Registered names (``jaxrl.envs.make(name) -> (TaskSuite, params)``): ``cartpole-params-K`` and
``pendulum-params-K`` for K in 2, 4, 8 (the K tasks spread evenly over the default ranges below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import jax.numpy as jnp
import numpy as np
from gymnax.environments.classic_control import cartpole, pendulum

from jaxrl.envs.registry import register
from jaxrl.tasks.base import TaskSuite, one_hot_contexts

__all__ = ["make_cartpole_suite", "make_pendulum_suite", "cartpole_grid", "pendulum_grid", "SUITE_SIZES"]

SUITE_SIZES = (2, 4, 8)
CARTPOLE_LENGTH_RANGE = (0.25, 1.0)  # half pole length (gymnax default 0.5)
CARTPOLE_MASS_RANGE = (0.05, 0.5)  # pole mass (default 0.1)
PENDULUM_MASS_RANGE = (0.6, 1.4)  # default 1.0
PENDULUM_LENGTH_RANGE = (0.7, 1.3)  # default 1.0
PENDULUM_GRAVITY_RANGE = (8.0, 12.0)  # default 10.0


def _as_tasks(name: str, values: Sequence[float] | np.ndarray, k: int | None = None) -> np.ndarray:
    arr = np.asarray(values, np.float32).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value")
    if k is not None and arr.size not in (1, k):
        raise ValueError(f"{name} has {arr.size} values for {k} tasks (give 1 or {k})")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {arr.tolist()}")
    return arr if k is None or arr.size == k else np.full((k,), arr[0], np.float32)


def _contexts(contexts, k: int, physical: np.ndarray) -> jnp.ndarray:
    """One-hot IDs (``None``/"one_hot"), standardised physical parameters ("params"), or a given ``[K, D]``."""
    if contexts is None or (isinstance(contexts, str) and contexts == "one_hot"):
        return one_hot_contexts(k)
    if isinstance(contexts, str) and contexts == "params":
        std = physical.std(axis=0)
        return jnp.asarray((physical - physical.mean(axis=0)) / np.where(std > 0, std, 1.0), jnp.float32)
    if isinstance(contexts, str):
        raise ValueError(f"contexts={contexts!r}: use 'one_hot', 'params' or a [K, D] array")
    return jnp.asarray(contexts, jnp.float32)


def _grid(k: int, *ranges: tuple[float, float]) -> list[np.ndarray]:
    """``k`` tasks spread evenly: parameter ``i`` of task ``j`` walks its range, each parameter with its own phase
    (so tasks differ in every parameter, not along one line only)."""
    if k < 1:
        raise ValueError(f"number of tasks must be >= 1, got {k}")
    out = []
    for i, (lo, hi) in enumerate(ranges):
        if k == 1:
            out.append(np.asarray([(lo + hi) / 2], np.float32))
            continue
        t = np.linspace(0.0, 1.0, k)
        if i % 2 == 1:  # second parameter in reversed order, third shifted by half the grid
            t = t[::-1]
        elif i >= 2:
            t = np.roll(t, k // 2)
        out.append((lo + t * (hi - lo)).astype(np.float32))
    return out


def cartpole_grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Default ``(pole_lengths, pole_masses)`` of ``cartpole-params-K``."""
    lengths, masses = _grid(k, CARTPOLE_LENGTH_RANGE, CARTPOLE_MASS_RANGE)
    return lengths, masses


def pendulum_grid(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Default ``(masses, lengths, gravities)`` of ``pendulum-params-K``."""
    grids = tuple(_grid(k, PENDULUM_MASS_RANGE, PENDULUM_LENGTH_RANGE, PENDULUM_GRAVITY_RANGE))
    return cast(tuple[np.ndarray, np.ndarray, np.ndarray], grids)  # _grid returns one array per range


def make_cartpole_suite(
    pole_lengths: Sequence[float] | np.ndarray = (0.25, 0.5, 0.75, 1.0),
    pole_masses: Sequence[float] | np.ndarray = (0.1,),
    *,
    contexts=None,
    name: str | None = None,
    max_steps_in_episode: int = 500,
) -> TaskSuite:
    """CartPole tasks with (half) pole length ``pole_lengths[k]`` and pole mass ``pole_masses[k]``.

    A single value of either is shared by every task. ``contexts``: ``None``/``"one_hot"``, ``"params"``
    (standardised ``(length, mass)``) or a ``[K, D]`` array.
    """
    lengths = _as_tasks("pole_lengths", pole_lengths)
    k = max(lengths.size, np.asarray(pole_masses).size)
    lengths = _as_tasks("pole_lengths", pole_lengths, k)
    masses = _as_tasks("pole_masses", pole_masses, k)
    if max_steps_in_episode < 1:
        raise ValueError(f"max_steps_in_episode={max_steps_in_episode} must be >= 1")
    base = cartpole.EnvParams()
    full = lambda v, dtype=jnp.float32: jnp.full((k,), v, dtype)
    params = cartpole.EnvParams(
        gravity=full(base.gravity),
        masscart=full(base.masscart),
        masspole=jnp.asarray(masses),
        total_mass=jnp.asarray(base.masscart + masses, jnp.float32),
        length=jnp.asarray(lengths),
        polemass_length=jnp.asarray(masses * lengths, jnp.float32),
        force_mag=full(base.force_mag),
        tau=full(base.tau),
        theta_threshold_radians=full(base.theta_threshold_radians),
        x_threshold=full(base.x_threshold),
        max_steps_in_episode=full(max_steps_in_episode, jnp.int32),
    )
    physical = np.stack([lengths, masses], axis=-1)
    return TaskSuite(
        name=name or f"cartpole-params-{k}",
        env=cartpole.CartPole(),
        params=params,
        contexts=_contexts(contexts, k, physical),
        task_names=tuple(f"len{l:.2f}-mass{m:.2f}" for l, m in zip(lengths, masses)),
        extra_metadata=(
            ("pole_lengths", lengths.tolist()),
            ("pole_masses", masses.tolist()),
            ("max_steps_in_episode", int(max_steps_in_episode)),
        ),
    )


def make_pendulum_suite(
    masses: Sequence[float] | np.ndarray = (0.6, 1.0, 1.2, 1.4),
    lengths: Sequence[float] | np.ndarray = (1.0,),
    gravities: Sequence[float] | np.ndarray = (10.0,),
    *,
    contexts=None,
    name: str | None = None,
    max_steps_in_episode: int = 200,
) -> TaskSuite:
    """Pendulum tasks with mass ``masses[k]``, length ``lengths[k]`` and gravity ``gravities[k]`` (a single
    value is shared by every task). ``contexts`` as in :func:`make_cartpole_suite` (``"params"``: standardised
    ``(m, l, g)``)."""
    k = max(np.asarray(masses).size, np.asarray(lengths).size, np.asarray(gravities).size)
    m = _as_tasks("masses", masses, k)
    l = _as_tasks("lengths", lengths, k)
    g = _as_tasks("gravities", gravities, k)
    if max_steps_in_episode < 1:
        raise ValueError(f"max_steps_in_episode={max_steps_in_episode} must be >= 1")
    base = pendulum.EnvParams()
    full = lambda v, dtype=jnp.float32: jnp.full((k,), v, dtype)
    params = pendulum.EnvParams(
        max_speed=full(base.max_speed),
        max_torque=full(base.max_torque),
        dt=full(base.dt),
        g=jnp.asarray(g),
        m=jnp.asarray(m),
        l=jnp.asarray(l),
        max_steps_in_episode=full(max_steps_in_episode, jnp.int32),
    )
    physical = np.stack([m, l, g], axis=-1)
    return TaskSuite(
        name=name or f"pendulum-params-{k}",
        env=pendulum.Pendulum(),
        params=params,
        contexts=_contexts(contexts, k, physical),
        task_names=tuple(f"m{a:.2f}-l{b:.2f}-g{c:.1f}" for a, b, c in zip(m, l, g)),
        extra_metadata=(
            ("masses", m.tolist()),
            ("lengths", l.tolist()),
            ("gravities", g.tolist()),
            ("max_steps_in_episode", int(max_steps_in_episode)),
        ),
    )


def _cartpole_factory(k: int):
    def make(**kwargs):
        lengths, masses = cartpole_grid(k)
        suite = make_cartpole_suite(lengths, masses, **kwargs)
        return suite, suite.params

    return make


def _pendulum_factory(k: int):
    def make(**kwargs):
        suite = make_pendulum_suite(*pendulum_grid(k), **kwargs)
        return suite, suite.params

    return make


def _register() -> None:
    for k in SUITE_SIZES:
        register(f"cartpole-params-{k}", _cartpole_factory(k))
        register(f"pendulum-params-{k}", _pendulum_factory(k))


_register()
