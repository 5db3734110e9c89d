"""Classic Bernoulli-bandit strategies, the reference rows of RL^2's bandit table (Duan et al. 2016, table 1).

Each strategy is a pure ``*_trial(key, arm_means, num_pulls, ...) -> total_reward`` (``num_pulls`` static):
one trial of ``num_pulls`` pulls on one task, vmappable over tasks and keys. Statistics kept per arm are
successes ``s_i`` and failures ``f_i``; the Bayesian strategies use a Beta(1, 1) prior. Ties are broken
uniformly at random.

- random: a uniformly random arm each pull.
- greedy: the arm with the largest posterior mean ``(s_i + 1) / (s_i + f_i + 2)``.
- epsilon-greedy: greedy, but a uniformly random arm with probability ``epsilon``.
- UCB1 (Auer et al. 2002): every arm once, then ``argmax_i mean_i + c sqrt(2 ln t / n_i)`` on empirical
  means, ``t`` the number of pulls so far.
- Thompson sampling: ``argmax_i theta_i`` with ``theta_i ~ Beta(s_i + 1, f_i + 1)`` (exact integer-count
  sampler from uniform order statistics).
- win-stay lose-shift (Robbins 1952; not in RL^2's table): pull the last arm again after a success, a uniformly
  random other arm after a failure. It needs no memory beyond the last pull, and its long-run reward per pull,
  ``E[sum_i p_i / (1 - p_i) / sum_i 1 / (1 - p_i)]``, is 0.687 for 5 arms and 0.741 for 10 (arm means U[0, 1]):
  the level a recurrent policy reaches before it learns to use its memory.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

TrialFn = Callable[..., jax.Array]


def _argmax_random_ties(key: jax.Array, scores: jax.Array) -> jax.Array:
    """Index of a maximum of ``scores`` chosen uniformly among ties (exact ties, ``inf`` included)."""
    is_max = scores >= jnp.max(scores)
    noise = jax.random.uniform(key, scores.shape)
    return jnp.argmax(jnp.where(is_max, noise, -1.0))


class History(NamedTuple):
    """What a strategy sees before pull ``t``: per-arm successes and failures, the pull count, the last arm
    pulled and its reward (both -1 before the first pull)."""

    successes: jax.Array
    failures: jax.Array
    t: jax.Array
    last_arm: jax.Array
    last_reward: jax.Array


def _run_trial(select: Callable, key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    """Scan ``num_pulls`` pulls; ``select(key, history: History) -> arm``; returns the total reward."""
    arm_means = jnp.asarray(arm_means, jnp.float32)
    num_arms = arm_means.shape[-1]

    def body(h, key_t):
        key_a, key_r = jax.random.split(key_t)
        arm = select(key_a, h)
        reward = jax.random.bernoulli(key_r, arm_means[arm]).astype(jnp.float32)
        onehot = jax.nn.one_hot(arm, num_arms, dtype=jnp.float32)
        return History(
            h.successes + onehot * reward,
            h.failures + onehot * (1.0 - reward),
            h.t + 1.0,
            jnp.asarray(arm, jnp.int32),
            reward,
        ), reward

    zeros = jnp.zeros((num_arms,), jnp.float32)
    init = History(zeros, zeros, jnp.float32(0.0), jnp.int32(-1), jnp.float32(-1.0))
    _, rewards = jax.lax.scan(body, init, jax.random.split(key, num_pulls))
    return jnp.sum(rewards)


def _posterior_mean(successes, failures):
    return (successes + 1.0) / (successes + failures + 2.0)


@partial(jax.jit, static_argnames=("num_pulls",))
def random_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    def select(k, h):
        return jax.random.randint(k, (), 0, h.successes.shape[-1])

    return _run_trial(select, key, arm_means, num_pulls)


@partial(jax.jit, static_argnames=("num_pulls",))
def greedy_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    def select(k, h):
        return _argmax_random_ties(k, _posterior_mean(h.successes, h.failures))

    return _run_trial(select, key, arm_means, num_pulls)


@partial(jax.jit, static_argnames=("num_pulls",))
def epsilon_greedy_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int, epsilon=0.1) -> jax.Array:
    def select(k, h):
        k_explore, k_rand, k_greedy = jax.random.split(k, 3)
        greedy = _argmax_random_ties(k_greedy, _posterior_mean(h.successes, h.failures))
        rand = jax.random.randint(k_rand, (), 0, h.successes.shape[-1])
        return jnp.where(jax.random.uniform(k_explore) < epsilon, rand, greedy)

    return _run_trial(select, key, arm_means, num_pulls)


@partial(jax.jit, static_argnames=("num_pulls",))
def ucb1_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int, c=1.0) -> jax.Array:
    def select(k, h):
        n = h.successes + h.failures
        bonus = c * jnp.sqrt(2.0 * jnp.log(jnp.maximum(h.t, 1.0)) / jnp.maximum(n, 1.0))
        scores = jnp.where(n > 0, h.successes / jnp.maximum(n, 1.0) + bonus, jnp.inf)
        return _argmax_random_ties(k, scores)

    return _run_trial(select, key, arm_means, num_pulls)


def _beta_integer(key: jax.Array, successes: jax.Array, failures: jax.Array, max_count: int) -> jax.Array:
    """Exact ``Beta(s + 1, f + 1)`` samples for integer counts ``s + f <= max_count`` (per arm), as the
    ``(s + 1)``-th smallest of ``s + f + 1`` i.i.d. uniforms (order statistics). Faster than
    ``jax.random.beta`` under ``vmap`` (no rejection loop)."""
    n = successes + failures  # [K]
    u = jax.random.uniform(key, successes.shape + (max_count + 1,))
    used = jnp.arange(max_count + 1) < (n[..., None] + 1.0)
    u = jnp.sort(jnp.where(used, u, 2.0), axis=-1)
    idx = successes.astype(jnp.int32)[..., None]
    return jnp.take_along_axis(u, idx, axis=-1)[..., 0]


@partial(jax.jit, static_argnames=("num_pulls",))
def thompson_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    def select(k, h):
        k_beta, k_tie = jax.random.split(k)
        samples = _beta_integer(k_beta, h.successes, h.failures, num_pulls)
        return _argmax_random_ties(k_tie, samples)

    return _run_trial(select, key, arm_means, num_pulls)


@partial(jax.jit, static_argnames=("num_pulls",))
def win_stay_lose_shift_trial(key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    def select(k, h):
        num_arms = h.successes.shape[-1]
        other = (h.last_arm + 1 + jax.random.randint(k, (), 0, num_arms - 1)) % num_arms  # any arm but the last
        first = jax.random.randint(k, (), 0, num_arms)
        return jnp.where(h.last_arm < 0, first, jnp.where(h.last_reward > 0, h.last_arm, other))

    return _run_trial(select, key, arm_means, num_pulls)


BASELINES: dict[str, TrialFn] = {
    "random": random_trial,
    "greedy": greedy_trial,
    "epsilon-greedy": epsilon_greedy_trial,
    "UCB1": ucb1_trial,
    "Thompson": thompson_trial,
    "win-stay lose-shift": win_stay_lose_shift_trial,
}


@partial(jax.jit, static_argnames=("trial_fn", "num_pulls"))
def total_rewards(trial_fn: TrialFn, key: jax.Array, arm_means: jax.Array, num_pulls: int) -> jax.Array:
    """Total reward of one trial of ``trial_fn`` on each task of ``arm_means [num_tasks, K]``."""
    keys = jax.random.split(key, arm_means.shape[0])
    return jax.vmap(lambda k, m: trial_fn(k, m, num_pulls))(keys, arm_means)


def _sample_tasks(key: jax.Array, num_tasks: int, num_arms: int) -> tuple[jax.Array, jax.Array]:
    """Arm means i.i.d. U[0, 1] (the RL^2 bandit distribution) ``[num_tasks, num_arms]``, and a key for the trials."""
    key_tasks, key_trials = jax.random.split(key)
    return jax.random.uniform(key_tasks, (num_tasks, num_arms), jnp.float32), key_trials


@partial(jax.jit, static_argnames=("trial_fn", "num_arms", "num_pulls", "num_tasks"))
def mean_total_reward(
    trial_fn: TrialFn, key: jax.Array, *, num_arms: int, num_pulls: int, num_tasks: int
) -> tuple[jax.Array, jax.Array]:
    """Mean (and standard error) of the total reward of ``trial_fn`` over ``num_tasks`` tasks with arm means
    i.i.d. U[0, 1], one trial per task."""
    arm_means, key_trials = _sample_tasks(key, num_tasks, num_arms)
    totals = total_rewards(trial_fn, key_trials, arm_means, num_pulls)
    return jnp.mean(totals), jnp.std(totals) / jnp.sqrt(jnp.float32(num_tasks))


# The RL^2 paper tuned these two strategies' parameter per cell; the grids span what is worth trying for
# rewards in [0, 1] (epsilon = 0 is greedy).
TUNABLE: dict[str, tuple[str, tuple[float, ...]]] = {
    "epsilon-greedy": ("epsilon", (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)),
    "UCB1": ("c", (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)),
}


@partial(jax.jit, static_argnames=("name", "num_arms", "num_pulls", "num_tasks"))
def _grid_means(name: str, key: jax.Array, *, num_arms: int, num_pulls: int, num_tasks: int) -> jax.Array:
    """Mean total reward at every value of ``TUNABLE[name]``'s grid, all on the same tasks and trial keys (one
    compiled program: the grid is a vmap axis)."""
    param, grid = TUNABLE[name]
    arm_means, key_trials = _sample_tasks(key, num_tasks, num_arms)
    keys = jax.random.split(key_trials, num_tasks)

    def mean_at(value):
        trial = lambda k, m: BASELINES[name](k, m, num_pulls, **{param: value})
        return jnp.mean(jax.vmap(trial)(keys, arm_means))

    return jax.vmap(mean_at)(jnp.asarray(grid, jnp.float32))


def tune(name: str, key: jax.Array, *, num_arms: int, num_pulls: int, num_tasks: int) -> float:
    """The value of strategy ``name``'s parameter (from ``TUNABLE``) with the largest mean total reward over
    ``num_tasks`` tasks drawn with ``key``. Report the tuned strategy on tasks drawn with another key."""
    means = _grid_means(name, key, num_arms=num_arms, num_pulls=num_pulls, num_tasks=num_tasks)
    return TUNABLE[name][1][int(jnp.argmax(means))]


def table(key: jax.Array, cells, *, num_tasks: int, tuned: bool = False) -> dict[str, dict]:
    """Every strategy on every ``(num_pulls, num_arms)`` cell, ``num_tasks`` tasks each:
    ``{name: {cell: (mean, standard error, parameter value or None)}}``. With ``tuned``, the ``TUNABLE`` strategies
    first choose their parameter per cell on other tasks, as the RL^2 paper did."""
    out: dict[str, dict] = {}
    for row, (name, fn) in enumerate(BASELINES.items()):
        out[name] = {}
        for col, (n, k) in enumerate(cells):
            cell_key, tune_key = jax.random.split(jax.random.fold_in(key, 100 * row + col))
            value, trial = None, fn
            if tuned and name in TUNABLE:
                value = tune(name, tune_key, num_arms=k, num_pulls=n, num_tasks=num_tasks)
                trial = partial(fn, **{TUNABLE[name][0]: value})
            mean, stderr = mean_total_reward(trial, cell_key, num_arms=k, num_pulls=n, num_tasks=num_tasks)
            out[name][(n, k)] = (float(mean), float(stderr), value)
    return out
