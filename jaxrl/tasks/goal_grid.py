"""VariBAD's gridworld with an unknown goal (Zintgraf et al. 2020, "VariBAD: A Very Good Method for Bayes-Adaptive
Deep RL via Meta-Learning", section 5.1), and its exact Bayes-optimal return.

A ``size x size`` grid (5); every episode starts in the corner cell (0, 0); five actions: 0 stay, 1 up, 2 right,
3 down, 4 left (a move into a wall stays put). The task is a goal cell, hidden from the agent (the observation is
the position scaled to ``[-1, 1]^2``), drawn uniformly from the *candidate* cells: every cell except the start
and its three neighbours (0, 1), (1, 0), (1, 1) (VariBAD's released code; 21 of the 25 cells). The reward of a
step is ``+1`` if the agent is on the goal after it and ``-0.1`` otherwise; the episode never terminates early
(an agent that found the goal stays on it and collects +1 per step) and is truncated after ``horizon = 15`` steps.
A BAMDP rollout is ``4`` episodes on one task: the agent is reset to the start between them, the goal stays.

Registered (meta-RL): ``varibad-grid`` -> ``(GoalGridFamily, held-out test tasks [K_test])``: by default the 21
candidate goals once each (an exact average over the prior).

Bayes-optimal return (:func:`bayes_optimal_return`). The only information an agent gets is whether its current
cell is the goal, so the posterior after a history that has not found the goal is uniform over the candidate cells
``U`` not yet visited, and once the goal is found the rest is known (stay, then walk straight back to it in later
episodes). Summing returns over goals instead of averaging them (``W = N x expected return`` for ``N`` candidates)
gives an exact dynamic programme over ``(episode k, step t, position p, unvisited set U)``:

    W_{k,t}(p, U) = -c |U| + max_a [ W_{k,t+1}(p', U \\ {p'}) + [p' in U] (F_{k,t+1}(p') + c) ]

with ``p' = move(p, a)``, step cost ``c = 0.1``, ``W_{k,H}(p, U) = W_{k+1,0}(start, U)``, ``W_{K+1,0} = 0``, and
``F_{k,t}(g) = (H - t + 1) R + (K - k) R*(g)`` the return from step t on when the goal ``g`` is reached at step
``t`` of episode ``k``: ``R = +1`` per step on the goal for the rest of the episode, and ``R*(g) = (H - d + 1) R -
c (d - 1)`` in every later episode (``d`` the Manhattan distance from the start, ``d <= H``). The expected return
is ``W_{1,0}(start, U_0) / N``. It is computed for every ``U`` at once (arrays over the ``2^N`` subsets), exact up
to float64 rounding, no approximation; for the 5x5 grid it takes about a minute and ~2 GB. For ``num_episodes = k``
it is the best return any agent can have over the first ``k`` episodes, so it also bounds each prefix of a
4-episode rollout from above.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register

__all__ = [
    "GoalGrid",
    "GoalGridParams",
    "GoalGridState",
    "GoalGridFamily",
    "candidate_goals",
    "bayes_optimal_return",
    "BAYES_OPTIMAL_5X5",
]

# stay, up, right, down, left as (dx, dy)
MOVES = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], np.int32)
STEP_COST = 0.1
GOAL_REWARD = 1.0
HORIZON = 15
EPISODES = 4


@struct.dataclass
class GoalGridState(environment.EnvState):
    pos: jax.Array  # int32 [2]
    time: jax.Array


@struct.dataclass
class GoalGridParams:
    goal: jax.Array  # int32 [2], the hidden task
    size: int = struct.field(pytree_node=False, default=5)
    step_cost: jax.Array | float = STEP_COST
    goal_reward: jax.Array | float = GOAL_REWARD
    max_steps_in_episode: jax.Array | int = HORIZON


class GoalGrid(environment.Environment[GoalGridState, GoalGridParams]):
    """One task of the VariBAD gridworld (the goal in the params); see the module docstring."""

    @property
    def default_params(self) -> GoalGridParams:
        return GoalGridParams(goal=jnp.array([4, 4], jnp.int32))

    def step_env(self, key, state, action, params):
        move = jnp.asarray(MOVES)[jnp.asarray(action, jnp.int32)]
        pos = jnp.clip(state.pos + move, 0, params.size - 1)
        at_goal = jnp.all(pos == params.goal)
        reward = jnp.where(at_goal, params.goal_reward, -params.step_cost).astype(jnp.float32)
        new_state = GoalGridState(pos=pos, time=state.time + 1)
        return self.get_obs(new_state, params), new_state, reward, jnp.zeros((), jnp.bool_), {"success": at_goal}

    def reset_env(self, key, params):
        state = GoalGridState(pos=jnp.zeros((2,), jnp.int32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        size = 5 if params is None else params.size
        return (2.0 * state.pos.astype(jnp.float32) / (size - 1) - 1.0).astype(jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.zeros((), jnp.bool_)

    @property
    def name(self) -> str:
        return "GoalGrid"

    @property
    def num_actions(self) -> int:
        return 5

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(5)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)


def candidate_goals(size: int = 5) -> np.ndarray:
    """The goal cells ``[N, 2]`` (x, y): every cell but the start (0, 0) and its neighbours (0,1), (1,0), (1,1)."""
    cells = [(x, y) for y in range(size) for x in range(size) if not (x <= 1 and y <= 1)]
    return np.asarray(cells, np.int32).reshape(-1, 2)


class GoalGridFamily:
    """Goals uniform over :func:`candidate_goals`; ``sample(key, n) -> GoalGridParams`` with leading ``[n]``."""

    def __init__(self, size: int = 5, horizon: int = HORIZON, episodes_per_trial: int = EPISODES):
        if size < 3:
            raise ValueError(f"varibad-grid: size={size} must be >= 3 (goals exclude the start's 2x2 corner)")
        self.size = int(size)
        self.horizon = int(horizon)
        self.episodes_per_trial = int(episodes_per_trial)
        self.goals = candidate_goals(self.size)
        self.env = GoalGrid()

    def params(self, goals) -> GoalGridParams:
        goals = jnp.asarray(goals, jnp.int32)
        n = goals.shape[0]
        return GoalGridParams(
            goal=goals,
            size=self.size,
            step_cost=jnp.full((n,), STEP_COST, jnp.float32),
            goal_reward=jnp.full((n,), GOAL_REWARD, jnp.float32),
            max_steps_in_episode=jnp.full((n,), self.horizon, jnp.int32),
        )

    def sample(self, key: jax.Array, n: int) -> GoalGridParams:
        index = jax.random.randint(key, (n,), 0, self.goals.shape[0])
        return self.params(jnp.asarray(self.goals)[index])

    def bayes_optimal_return(self, num_episodes: int | None = None) -> float:
        """:func:`bayes_optimal_return` of this family (``num_episodes``: the BAMDP's, 4, by default)."""
        return bayes_optimal_return(
            (self.size, self.size),
            [tuple(g) for g in self.goals],
            self.horizon,
            num_episodes or self.episodes_per_trial,
        )


def bayes_optimal_return(
    shape: tuple[int, int],
    goals: list[tuple[int, int]],
    horizon: int,
    num_episodes: int,
    *,
    start: tuple[int, int] = (0, 0),
    step_cost: float = STEP_COST,
    goal_reward: float = GOAL_REWARD,
) -> float:
    """The exact Bayes-optimal expected return of ``num_episodes`` episodes of ``horizon`` steps on a ``shape = (W,
    H)`` grid (the five moves of :data:`MOVES`), the goal uniform over ``goals`` and unknown (the DP of the module
    docstring, vectorised over the ``2^N`` sets of unvisited goals). ``start`` must not be a goal."""
    width, height = shape
    goals = [(int(g[0]), int(g[1])) for g in goals]
    if start in goals or not goals or len(set(goals)) != len(goals):
        raise ValueError("bayes_optimal_return: goals must be distinct, non-empty and exclude the start")
    n = len(goals)
    bit = {g: i for i, g in enumerate(goals)}
    cells = [(x, y) for x in range(width) for y in range(height)]
    index = {c: i for i, c in enumerate(cells)}
    move = lambda c, m: (min(max(c[0] + m[0], 0), width - 1), min(max(c[1] + m[1], 0), height - 1))
    nxt = [[index[move(c, m)] for m in MOVES] for c in cells]
    subsets = np.arange(2**n, dtype=np.int64)
    size_u = np.zeros(2**n, np.float64)
    for i in range(n):
        size_u += (subsets >> i) & 1

    def known(g):  # the return of an episode in which the goal g is known
        d = abs(g[0] - start[0]) + abs(g[1] - start[1])
        return (horizon - d + 1) * goal_reward - step_cost * (d - 1) if d <= horizon else -step_cost * horizon

    w = np.zeros((len(cells), 2**n), np.float64)  # W_{K+1,0}, broadcast over positions
    for k in range(num_episodes, 0, -1):
        w = np.broadcast_to(w[index[start]], w.shape).copy()  # W_{k,H}(p, U) = W_{k+1,0}(start, U)
        for t in range(horizon - 1, -1, -1):
            new = np.empty_like(w)
            for p in range(len(cells)):
                best = np.full(2**n, -np.inf)
                for q in set(nxt[p]):
                    c = cells[q]
                    if c in bit:
                        b = bit[c]
                        view = w[q].reshape(-1, 2, 2**b)  # axis 1: whether goal b is still in U
                        found = (horizon - t) * goal_reward + (num_episodes - k) * known(c) + step_cost
                        q_val = view[:, :1, :] + np.array([0.0, found])[None, :, None]
                        q_val = q_val.reshape(-1)
                    else:
                        q_val = w[q]
                    best = np.maximum(best, q_val)
                new[p] = best - step_cost * size_u
            w = new
    return float(w[index[start], -1] / n)


# bayes_optimal_return of the 5x5 grid (horizon 15, 21 goals) over the first k = 1..4 episodes, computed by this module
# (`python experiments/varibad_gridworld.py --bayes-optimal` recomputes and checks them, ~10 min); per episode of the
# 4-episode optimum: 4.0, then 11.0714 (= the mean return of an episode with a known goal) in each later episode.
BAYES_OPTIMAL_5X5: dict[int, float] = {1: 4.0, 2: 15.071428571428571, 3: 26.14285714285715, 4: 37.21428571428572}


HELD_OUT_SEED = 2**20 + 17


def _varibad_grid(size: int = 5, horizon: int = HORIZON, episodes_per_trial: int = EPISODES, num_test_tasks: int = 0):
    """``(family, test tasks)``: ``num_test_tasks = 0`` gives every candidate goal once, else that many draws."""
    family = GoalGridFamily(int(size), int(horizon), int(episodes_per_trial))
    if int(num_test_tasks) <= 0:
        return family, family.params(family.goals)
    return family, family.sample(jax.random.PRNGKey(HELD_OUT_SEED), int(num_test_tasks))


def _register() -> None:
    register("varibad-grid", _varibad_grid)


_register()
