"""brax locomotion task families (meta-RL, task hidden) and suites (multi-task, task shown as omega).

The four standard meta-RL locomotion benchmarks of MAML (Finn et al. 2017), ProMP (Rothfuss et al. 2019) and
PEARL (Rakelly et al. 2019), on brax's ``halfcheetah`` and ``ant`` (the ``generalized`` pipeline by default).
The task lives in the env params (``LocomotionParams.task``); the reward is recomputed after every brax step
from the stepped brax state's ``metrics`` (``x_velocity``, ``y_velocity``, ``x_position``, ``y_position``,
``reward_survive``, ``reward_contact``) and the action:

==============  ============================================================  ==============================
kind            reward r_t                                                    task (``params.task``), sampling
==============  ============================================================  ==============================
``cheetah-vel`` ``-|v_x - v_goal| - 0.05 ||a||^2``                            ``[v_goal]``, ``v_goal ~ U[0, 3]``
``cheetah-dir`` ``d v_x - 0.05 ||a||^2``                                      ``[d]``, ``d ~ U{-1, +1}``
``ant-dir``     ``v_xy . (cos th, sin th) + r_survive - 0.5 ||a||^2 + r_cont``  ``[th]``, ``th ~ U[0, 2 pi]``
``ant-goal``    ``-||xy - g||_2 + r_survive - 0.5 ||a||^2 + r_cont``            ``[g_x, g_y]``, ``g ~ U(disc r=3)``
==============  ============================================================  ==============================

``v`` is the torso's (ant) / root's (cheetah) velocity over the step (``(x' - x) / dt``, ``dt = 0.05``), ``a`` the
action clipped to ``[-1, 1]^d``, ``r_survive`` and ``r_cont`` brax's ``reward_survive`` and ``reward_contact``
metrics (brax's ant has no contact forces: ``r_cont = 0``; with ``terminate_when_unhealthy=False``, the default
here, ``r_survive = 1`` while the torso height is in ``[0.2, 1.0]`` and 0 otherwise).

Choices (all documented, all options):

* **ant-dir**: the full circle ``th ~ U[0, 2 pi]`` (ProMP's 2-D direction task). PEARL's and MAML's ant direction
  tasks are forward/backward: ``AntDir(forward_backward=True)`` samples ``th`` in ``{0, pi}``.
* **ant-goal**: L2 distance as written above; ``distance="l1"`` gives ``-|x - g_x| - |y - g_y|`` (some released
  implementations use it). Goals are uniform in the disc: angle ``~ U[0, 2 pi]``, radius ``3 sqrt(u)``.
* **observations**: brax's (joint positions without the root's x (cheetah: 17-d) or x, y (ant-dir: 27-d), and
  velocities); ant-goal keeps the torso's x, y (29-d) since the agent has to know where it is. The task is never
  in the observation of a family; a suite appends its context omega (``MultiTaskEnv``).
* **episodes** last ``horizon`` steps, 200 by default (PEARL, ProMP); the ant does not terminate early by default
  (fixed-length episodes as in PEARL; ``terminate_when_unhealthy=True`` gives brax's rule).

Meta-RL (hidden task): ``jaxrl.envs.make("cheetah-vel") -> (family, held-out test tasks [30])``, also
``cheetah-dir``, ``ant-dir``, ``ant-goal``; ``family.sample(key, n)`` -> params with a task axis ``[n]``;
``jaxrl train rl2|maml|pearl --env cheetah-vel`` (set the algorithm's ``horizon`` to the family's 200).

Multi-task (known task): ``jaxrl.envs.make("cheetah-vel-4") -> (TaskSuite, params [4])``; registered suites
``cheetah-vel-K`` (velocities ``3 (k + 1/2) / K``), ``ant-dir-K`` (angles ``2 pi k / K``; K = 2 is
forward/backward), ``ant-goal-K`` (goals at radius 2, angles ``2 pi k / K``) for K in 2, 4, 8 and
``cheetah-dir-2``; contexts are one-hot task IDs, or the task vector with ``contexts="task"`` (``[v_goal]``,
``[d]``, ``[cos th, sin th]``, ``[g_x, g_y]``).

brax is imported only when an env is built (it is slow to import); registering the names imports nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from jaxrl.config import ConfigError
from jaxrl.envs.brax_adapter import BraxAdapter, BraxEnvState
from jaxrl.envs.registry import register
from jaxrl.tasks.base import TaskSuite, one_hot_contexts

__all__ = [
    "KINDS",
    "LocomotionParams",
    "LocomotionEnv",
    "LocomotionFamily",
    "CheetahVel",
    "CheetahDir",
    "AntDir",
    "AntGoal",
    "make_family",
    "make_locomotion_suite",
    "suite_tasks",
    "task_contexts",
    "cheetah_velocity_reward",
    "cheetah_direction_reward",
    "ant_direction_reward",
    "ant_goal_reward",
    "DEFAULT_HORIZON",
    "SUITE_SIZES",
    "HELD_OUT_SEED",
]

KINDS = ("cheetah-vel", "cheetah-dir", "ant-dir", "ant-goal")
_ROBOT = {"cheetah-vel": "halfcheetah", "cheetah-dir": "halfcheetah", "ant-dir": "ant", "ant-goal": "ant"}
_TASK_DIM = {"cheetah-vel": 1, "cheetah-dir": 1, "ant-dir": 1, "ant-goal": 2}
_CTRL_COST = {"halfcheetah": 0.05, "ant": 0.5}
DEFAULT_HORIZON = 200
SUITE_SIZES = (2, 4, 8)
HELD_OUT_SEED = 2**20 + 13


# ---------------------------------------------------------------- rewards (pure, the task is an argument)


def _ctrl_cost(action: jax.Array, weight) -> jax.Array:
    return weight * jnp.sum(jnp.square(action), axis=-1)


def cheetah_velocity_reward(
    x_velocity: jax.Array, action: jax.Array, goal_velocity: jax.Array, ctrl_cost_weight=0.05
) -> jax.Array:
    """Cheetah-vel (MAML): ``r = -|v_x - v_goal| - c ||a||^2`` with ``c = 0.05``. ``action [..., d]``."""
    return -jnp.abs(x_velocity - goal_velocity) - _ctrl_cost(action, ctrl_cost_weight)


def cheetah_direction_reward(
    x_velocity: jax.Array, action: jax.Array, direction: jax.Array, ctrl_cost_weight=0.05
) -> jax.Array:
    """Cheetah-dir (MAML): ``r = d v_x - c ||a||^2``, ``d in {-1, +1}``, ``c = 0.05``."""
    return direction * x_velocity - _ctrl_cost(action, ctrl_cost_weight)


def ant_direction_reward(
    velocity_xy: jax.Array,
    action: jax.Array,
    angle: jax.Array,
    survive: jax.Array,
    contact: jax.Array,
    ctrl_cost_weight=0.5,
) -> jax.Array:
    """Ant-dir: ``r = v . (cos th, sin th) + r_survive - c ||a||^2 + r_contact`` with ``c = 0.5``.

    ``velocity_xy [..., 2]``; ``survive`` and ``contact`` are brax's signed reward terms (``r_contact`` is minus the
    contact cost, so <= 0)."""
    direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    forward = jnp.sum(velocity_xy * direction, axis=-1)
    return forward + survive - _ctrl_cost(action, ctrl_cost_weight) + contact


def ant_goal_reward(
    position_xy: jax.Array,
    action: jax.Array,
    goal: jax.Array,
    survive: jax.Array | float,
    contact: jax.Array | float,
    ctrl_cost_weight=0.5,
    distance: str = "l2",
) -> jax.Array:
    """Ant-goal: ``r = -||xy - g|| + r_survive - c ||a||^2 + r_contact`` with ``c = 0.5``; the norm is L2
    (``distance="l2"``) or L1 (``"l1"``: ``|x - g_x| + |y - g_y|``). ``position_xy``, ``goal``: ``[..., 2]``."""
    delta = position_xy - goal
    if distance == "l2":
        dist = jnp.sqrt(jnp.sum(jnp.square(delta), axis=-1))
    elif distance == "l1":
        dist = jnp.sum(jnp.abs(delta), axis=-1)
    else:
        raise ConfigError(f"distance={distance!r} is not allowed: use 'l2' or 'l1'")
    return -dist + survive - _ctrl_cost(action, ctrl_cost_weight) + contact


# ---------------------------------------------------------------- the env


@struct.dataclass
class LocomotionParams:
    task: jax.Array  # [D] the task: [v_goal] | [d] | [theta] | [g_x, g_y]
    ctrl_cost_weight: jax.Array | float = 0.05
    max_steps_in_episode: jax.Array | int = DEFAULT_HORIZON


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is not a locomotion task: use one of {', '.join(KINDS)}")
    return kind


def _check_horizon(horizon) -> int:
    if int(horizon) != horizon or horizon < 1:
        raise ConfigError(f"horizon={horizon} is out of range: must be an integer >= 1")
    return int(horizon)


class LocomotionEnv:
    """A brax robot (gymnax protocol, through :class:`~jaxrl.envs.brax_adapter.BraxAdapter`) whose reward is the
    task's, recomputed from the brax state after each step; the task is ``params.task`` (see the module doc).

    ``step`` clips the action to ``[-1, 1]^d``, steps brax, computes the reward, adds the time limit
    ``params.max_steps_in_episode`` and auto-resets (the pre-reset observation in ``info["final_observation"]``).
    ``info`` also carries ``task_reward`` (the task term: ``-|v_x - v_goal|``, ``d v_x``, ``v . u`` or
    ``-||xy - g||``), ``ctrl_cost``, brax's metrics ``x_velocity``, ``y_velocity``, ``x_position``,
    ``y_position``, ``reward_survive``, ``reward_contact`` of the stepped state (0 where the cheetah has none) and
    ``brax_reward`` (brax's own reward for the same step); ``task_reward(info, action, params)`` recomputes the
    reward from them.
    """

    def __init__(
        self,
        kind: str,
        *,
        horizon: int = DEFAULT_HORIZON,
        backend: str = "generalized",
        terminate_when_unhealthy: bool = False,
        distance: str = "l2",
        ctrl_cost_weight: float | None = None,
    ):
        self.kind = _check_kind(kind)
        self.robot = _ROBOT[kind]
        self.horizon = _check_horizon(horizon)
        if distance not in ("l2", "l1"):
            raise ConfigError(f"distance={distance!r} is not allowed: use 'l2' or 'l1'")
        self.distance = distance
        self.ctrl_cost_weight = float(_CTRL_COST[self.robot] if ctrl_cost_weight is None else ctrl_cost_weight)
        if self.ctrl_cost_weight < 0:
            raise ConfigError(f"ctrl_cost_weight={ctrl_cost_weight} is out of range: must be >= 0")
        self.backend = backend
        self.terminate_when_unhealthy = bool(terminate_when_unhealthy)
        import brax.envs  # lazily: slow to import

        kwargs: dict[str, Any] = {"backend": backend}
        if self.robot == "ant":
            kwargs["terminate_when_unhealthy"] = self.terminate_when_unhealthy
            kwargs["exclude_current_positions_from_observation"] = kind != "ant-goal"
        self._brax = brax.envs.get_environment(self.robot, **kwargs)
        self._adapter = BraxAdapter(self._brax, name=f"brax:{self.robot}", max_steps_in_episode=self.horizon)
        self._obs_space = None

    @property
    def name(self) -> str:
        return self.kind

    @property
    def task_dim(self) -> int:
        return _TASK_DIM[self.kind]

    @property
    def default_params(self) -> LocomotionParams:
        task = {"cheetah-vel": [1.0], "cheetah-dir": [1.0], "ant-dir": [0.0], "ant-goal": [2.0, 0.0]}[self.kind]
        return LocomotionParams(
            task=jnp.asarray(task, jnp.float32),
            ctrl_cost_weight=self.ctrl_cost_weight,
            max_steps_in_episode=self.horizon,
        )

    def observation_space(self, params=None):
        # brax's ``observation_size`` runs a reset op by op (20 s on a CPU); the shape of a traced one is enough
        if self._obs_space is None:
            obs = jax.eval_shape(self._brax.reset, jax.random.PRNGKey(0)).obs
            self._obs_space = spaces.Box(-jnp.inf, jnp.inf, (int(obs.shape[-1]),), jnp.float32)
        return self._obs_space

    def action_space(self, params=None):
        return self._adapter.action_space(params)

    def reset(self, key: jax.Array, params: LocomotionParams | None = None):
        return self._adapter.reset(key, params)

    def task_reward(self, metrics: dict, action: jax.Array, params: LocomotionParams) -> tuple[jax.Array, jax.Array]:
        """``(reward, task term)`` of one step from brax's stepped ``metrics`` and the (clipped) action."""
        c, task = params.ctrl_cost_weight, params.task
        vx = metrics["x_velocity"]
        if self.kind == "cheetah-vel":
            return cheetah_velocity_reward(vx, action, task[0], c), -jnp.abs(vx - task[0])
        if self.kind == "cheetah-dir":
            return cheetah_direction_reward(vx, action, task[0], c), task[0] * vx
        survive, contact = metrics["reward_survive"], metrics["reward_contact"]
        if self.kind == "ant-dir":
            v = jnp.stack([vx, metrics["y_velocity"]])
            reward = ant_direction_reward(v, action, task[0], survive, contact, c)
            return reward, vx * jnp.cos(task[0]) + metrics["y_velocity"] * jnp.sin(task[0])
        xy = jnp.stack([metrics["x_position"], metrics["y_position"]])
        reward = ant_goal_reward(xy, action, task, survive, contact, c, self.distance)
        return reward, ant_goal_reward(xy, jnp.zeros_like(action), task, 0.0, 0.0, c, self.distance)

    def step(self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: LocomotionParams | None = None):
        params = self.default_params if params is None else params
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        inner = self._brax.step(state.inner, action)
        reward, task_term = self.task_reward(inner.metrics, action, params)
        time = state.time + 1
        terminated = jnp.asarray(inner.done).astype(bool)  # a Python 0.0 where brax never terminates
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        done = terminated | truncated
        final_obs = inner.obs
        reset_obs, reset_state = self.reset(key, params)
        stepped = BraxEnvState(inner=inner, time=time)
        new_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, stepped)
        obs = jnp.where(done, reset_obs, final_obs)
        m = inner.metrics
        zero = jnp.zeros((), jnp.float32)
        info = {
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": final_obs,
            "task_reward": task_term.astype(jnp.float32),
            "ctrl_cost": _ctrl_cost(action, params.ctrl_cost_weight).astype(jnp.float32),
            "x_velocity": m["x_velocity"],
            "y_velocity": m.get("y_velocity", zero),
            "x_position": m["x_position"],
            "y_position": m.get("y_position", zero),
            "reward_survive": m.get("reward_survive", zero),
            "reward_contact": m.get("reward_contact", zero),
            "brax_reward": inner.reward.astype(jnp.float32),
        }
        return obs, new_state, reward.astype(jnp.float32), terminated, truncated, info


# ---------------------------------------------------------------- families (meta-RL: the task is hidden)


def _full(n: int, value, dtype=jnp.float32) -> jax.Array:
    return jnp.full((n,), value, dtype)


class LocomotionFamily:
    """A distribution over the tasks of one ``kind`` (``.env``, ``.sample(key, n)``, ``.horizon``).

    ``sample(key, n)`` returns :class:`LocomotionParams` with every leaf ``[n, ...]`` (``task [n, D]``). Options:
    ``velocity_range`` (cheetah-vel, default ``(0, 3)``), ``forward_backward`` (ant-dir: ``th`` in ``{0, pi}``
    instead of ``U[0, 2 pi]``), ``goal_radius`` (ant-goal, default 3), and the env's ``horizon``, ``backend``,
    ``terminate_when_unhealthy``, ``distance``, ``ctrl_cost_weight``.
    """

    def __init__(
        self,
        kind: str,
        *,
        horizon: int = DEFAULT_HORIZON,
        velocity_range: Sequence[float] = (0.0, 3.0),
        forward_backward: bool = False,
        goal_radius: float = 3.0,
        backend: str = "generalized",
        terminate_when_unhealthy: bool = False,
        distance: str = "l2",
        ctrl_cost_weight: float | None = None,
    ):
        self.kind = _check_kind(kind)
        self.horizon = _check_horizon(horizon)
        lo, hi = (float(v) for v in velocity_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ConfigError(f"velocity_range={tuple(velocity_range)} is out of range: need finite low < high")
        if not goal_radius > 0:
            raise ConfigError(f"goal_radius={goal_radius} is out of range: must be > 0")
        self.velocity_range = (lo, hi)
        self.forward_backward = bool(forward_backward)
        self.goal_radius = float(goal_radius)
        self.env = LocomotionEnv(
            kind,
            horizon=self.horizon,
            backend=backend,
            terminate_when_unhealthy=terminate_when_unhealthy,
            distance=distance,
            ctrl_cost_weight=ctrl_cost_weight,
        )

    @property
    def name(self) -> str:
        return self.kind

    def metadata(self) -> dict:
        """For a run's ``config.json``: what the tasks are."""
        env = self.env
        return {
            "family": self.kind,
            "horizon": self.horizon,
            "backend": env.backend,
            "velocity_range": list(self.velocity_range),
            "forward_backward": self.forward_backward,
            "goal_radius": self.goal_radius,
            "distance": env.distance,
            "ctrl_cost_weight": env.ctrl_cost_weight,
            "terminate_when_unhealthy": env.terminate_when_unhealthy,
        }

    def sample_tasks(self, key: jax.Array, n: int) -> jax.Array:
        """``[n, D]`` task vectors drawn from the family's distribution."""
        if self.kind == "cheetah-vel":
            return jax.random.uniform(key, (n, 1), jnp.float32, *self.velocity_range)
        if self.kind == "cheetah-dir":
            return jnp.where(jax.random.bernoulli(key, 0.5, (n, 1)), 1.0, -1.0).astype(jnp.float32)
        if self.kind == "ant-dir":
            if self.forward_backward:
                return jnp.pi * jax.random.bernoulli(key, 0.5, (n, 1)).astype(jnp.float32)
            return jax.random.uniform(key, (n, 1), jnp.float32, 0.0, 2.0 * jnp.pi)
        angle_key, radius_key = jax.random.split(key)
        angle = jax.random.uniform(angle_key, (n,), jnp.float32, 0.0, 2.0 * jnp.pi)
        radius = self.goal_radius * jnp.sqrt(jax.random.uniform(radius_key, (n,), jnp.float32))
        return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)

    def params_for(self, tasks: jax.Array) -> LocomotionParams:
        """Stacked params of given ``[n, D]`` task vectors."""
        tasks = jnp.asarray(tasks, jnp.float32)
        n = tasks.shape[0]
        return LocomotionParams(
            task=tasks,
            ctrl_cost_weight=_full(n, self.env.ctrl_cost_weight),
            max_steps_in_episode=_full(n, self.horizon, jnp.int32),
        )

    def sample(self, key: jax.Array, n: int) -> LocomotionParams:
        return self.params_for(self.sample_tasks(key, n))


class CheetahVel(LocomotionFamily):
    """Cheetah-vel: target velocity ``v_goal ~ U[0, 3]``."""

    def __init__(self, **kwargs):
        super().__init__("cheetah-vel", **kwargs)


class CheetahDir(LocomotionFamily):
    """Cheetah-dir: run forward (``d = +1``) or backward (``d = -1``)."""

    def __init__(self, **kwargs):
        super().__init__("cheetah-dir", **kwargs)


class AntDir(LocomotionFamily):
    """Ant-dir: direction ``th ~ U[0, 2 pi]`` (``forward_backward=True``: ``th`` in ``{0, pi}``)."""

    def __init__(self, **kwargs):
        super().__init__("ant-dir", **kwargs)


class AntGoal(LocomotionFamily):
    """Ant-goal: goal uniform in the disc of radius 3."""

    def __init__(self, **kwargs):
        super().__init__("ant-goal", **kwargs)


def make_family(kind: str, **kwargs) -> LocomotionFamily:
    return LocomotionFamily(kind, **kwargs)


# ---------------------------------------------------------------- suites (multi-task: omega is shown)


def suite_tasks(kind: str, k: int) -> np.ndarray:
    """The ``[k, D]`` tasks of the registered suite ``<kind>-<k>`` (see the module doc)."""
    _check_kind(kind)
    if k < 1:
        raise ConfigError(f"number of tasks k={k} is out of range: must be >= 1")
    if kind == "cheetah-vel":
        return (3.0 * (np.arange(k) + 0.5) / k).reshape(k, 1).astype(np.float32)
    if kind == "cheetah-dir":
        return np.where(np.arange(k) % 2 == 0, 1.0, -1.0).reshape(k, 1).astype(np.float32)
    angles = 2.0 * np.pi * np.arange(k) / k
    if kind == "ant-dir":
        return angles.reshape(k, 1).astype(np.float32)
    return (2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)).astype(np.float32)


def task_contexts(kind: str, tasks: np.ndarray) -> np.ndarray:
    """The task as a context vector: ``[v_goal]``, ``[d]``, ``[cos th, sin th]`` or ``[g_x, g_y]``."""
    tasks = np.asarray(tasks, np.float32)
    if kind == "ant-dir":
        return np.concatenate([np.cos(tasks), np.sin(tasks)], axis=-1).astype(np.float32)
    return tasks


def _task_name(kind: str, t: np.ndarray) -> str:
    if kind == "cheetah-vel":
        return f"vel{t[0]:.2f}"
    if kind == "cheetah-dir":
        return "forward" if t[0] > 0 else "backward"
    if kind == "ant-dir":
        return f"dir{int(round(np.degrees(t[0]))) % 360}deg"
    return f"goal({t[0]:.2f},{t[1]:.2f})"


def make_locomotion_suite(
    kind: str, tasks=None, *, num_tasks: int = 4, contexts=None, name: str | None = None, **env_kwargs
) -> TaskSuite:
    """``K`` fixed tasks of ``kind`` with known contexts (multi-task RL).

    ``tasks``: ``[K, D]`` (or ``[K]`` for the 1-d tasks) task vectors; ``None`` takes :func:`suite_tasks`
    ``(kind, num_tasks)``. ``contexts``: ``None`` / ``"one_hot"`` (task IDs), ``"task"`` (:func:`task_contexts`)
    or a ``[K, D']`` array. ``env_kwargs`` go to :class:`LocomotionEnv` (``horizon``, ``backend``, ...).
    """
    _check_kind(kind)
    tasks = suite_tasks(kind, num_tasks) if tasks is None else np.asarray(tasks, np.float32)
    d = _TASK_DIM[kind]
    if tasks.ndim == 1 and d == 1:
        tasks = tasks[:, None]
    if tasks.ndim != 2 or tasks.shape[1] != d or tasks.shape[0] < 1:
        raise ConfigError(f"tasks for {kind} must have shape [K >= 1, {d}], got {tasks.shape}")
    if not np.all(np.isfinite(tasks)):
        raise ConfigError(f"tasks for {kind} must be finite, got {tasks.tolist()}")
    if kind == "cheetah-dir" and not np.all(np.abs(tasks) == 1.0):
        raise ConfigError(f"cheetah-dir tasks are directions d in {{-1, +1}}, got {tasks.reshape(-1).tolist()}")
    k = tasks.shape[0]
    env = LocomotionEnv(kind, **env_kwargs)
    params = LocomotionParams(
        task=jnp.asarray(tasks),
        ctrl_cost_weight=_full(k, env.ctrl_cost_weight),
        max_steps_in_episode=_full(k, env.horizon, jnp.int32),
    )
    if contexts is None or (isinstance(contexts, str) and contexts == "one_hot"):
        omega = one_hot_contexts(k)
    elif isinstance(contexts, str) and contexts == "task":
        omega = jnp.asarray(task_contexts(kind, tasks))
    elif isinstance(contexts, str):
        raise ConfigError(f"contexts={contexts!r} is not allowed: use 'one_hot', 'task' or a [K, D] array")
    else:
        omega = jnp.asarray(contexts, jnp.float32)
    return TaskSuite(
        name=name or f"{kind}-{k}",
        env=env,
        params=params,
        contexts=omega,
        task_names=tuple(_task_name(kind, t) for t in tasks),
        extra_metadata=(("kind", kind), ("tasks", tasks.tolist()), ("horizon", env.horizon), ("backend", env.backend)),
    )


# ---------------------------------------------------------------- registered names


def _family_factory(kind: str):
    def make(num_test_tasks: int = 30, seed: int = HELD_OUT_SEED, **kwargs):
        if num_test_tasks < 1:
            raise ConfigError(f"num_test_tasks={num_test_tasks} is out of range: must be >= 1")
        family = LocomotionFamily(kind, **kwargs)
        return family, family.sample(jax.random.PRNGKey(seed), int(num_test_tasks))

    return make


def _suite_factory(kind: str, k: int):
    def make(**kwargs):
        suite = make_locomotion_suite(kind, num_tasks=k, **kwargs)
        return suite, suite.params

    return make


def _register() -> None:
    for kind in KINDS:
        register(kind, _family_factory(kind))
    for kind in ("cheetah-vel", "ant-dir", "ant-goal"):
        for k in SUITE_SIZES:
            register(f"{kind}-{k}", _suite_factory(kind, k))
    register("cheetah-dir-2", _suite_factory("cheetah-dir", 2))


_register()
