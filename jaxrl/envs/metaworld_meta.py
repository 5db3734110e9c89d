"""Meta-World ML1 / ML10 (meta-RL) through the host adapter, with the train and test task sets built by hand.

A meta-RL benchmark of Meta-World is a set of *train tasks* and a disjoint set of *test tasks*; a task is one env
class with one goal (Meta-World's ``Task``: the class name and a pickled ``rand_vec`` that fixes the goal and the
initial object positions). ``ML1-<env>`` (e.g. ``ML1-reach-v3``) has one class, 50 train goals drawn with the
benchmark's ``seed`` and 50 test goals drawn with ``seed + 1``; ``ML10`` has 10 train classes and 5 held-out test
classes, 50 goals each (``ML25`` and ``ML45`` likewise). In every ML benchmark Meta-World builds its tasks with
``partially_observable=True``, and then (metaworld 3.1.1, ``SawyerXYZEnv._get_obs``) the last 3 entries of the
39-d observation, the goal position, are zero: the policy must infer the goal from rewards.

Meta-World's own vector envs for ML (``gymnasium.make_vec("Meta-World/ML1-train", ...)``) are not used: with
metaworld 3.1.1's defaults ML1-train fails its own assertion on how tasks divide over envs (``meta_batch_size=20``
envs over 50 goals: "Invalid division of subtasks, expected 2 got 3", checked), and they sample tasks on reset.
:class:`MetaWorldMetaEnv` instead builds ``num_envs`` env *slots* by hand (a gymnasium Sync/AsyncVectorEnv,
same-step autoreset, as the MT adapter), and the meta-learner says which task each slot runs:
``env.set_tasks("train", [3, 17, ...])`` (or ``"test"``) sets each slot's task and resets it; episodes then repeat
that task (its goal is frozen) until the next ``set_tasks``. A slot holds one Meta-World env per class it was given
(an env runs one class), built on first use. Stepping, success and episode bookkeeping are
:class:`jaxrl.envs.metaworld.MetaWorldEnv`'s (Meta-World's success: ``info["success"]`` at any step of an episode;
evaluation episodes end at the first success).

The train and test task sets are checked to be disjoint at construction (no task, class and goal, in both).

    env = MetaWorldMetaEnv("ML1-reach-v3", num_envs=4, seed=0, max_episode_steps=100)
    obs = env.set_tasks("train", [0, 1, 2, 3])     # [4, 39] float32, goal entries zero
    out = env.step(np.zeros((4, 4)))               # HostStep (jaxrl.envs.metaworld)
    env.pool("test", 10)                           # 10 test-task indices spread over the test classes

As env names: ``metaworld:ML1-reach-v3``, ``metaworld:ML10`` (``jaxrl train rl2 --env metaworld:ML1-reach-v3``).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrl.config import close_matches
from jaxrl.envs.metaworld import HostStep, MetaWorldEnv, import_metaworld, package_versions

__all__ = ["MetaWorldMetaEnv", "ML_BENCHMARKS", "parse_ml", "is_ml_name", "make_metaworld_meta", "task_key"]

# Meta-World's meta-RL benchmarks besides ML1-<env> (one class); their classes and goals come from metaworld.
ML_BENCHMARKS = ("ML10", "ML25", "ML45")
SPLITS = ("train", "test")


def _strip(name: str) -> str:
    prefix, _, rest = name.partition(":")
    return rest if prefix == "metaworld" else name


def is_ml_name(name: Any) -> bool:
    """Whether ``name`` names a Meta-World meta-RL benchmark (``metaworld:ML1-reach-v3``, ``ML10``; checked later)."""
    return isinstance(name, str) and _strip(name).upper().startswith("ML")


def _task_names() -> list[str] | None:
    """Meta-World's v3 env names, or None when Meta-World is not installed."""
    try:
        metaworld, _ = import_metaworld()
    except ImportError:
        return None
    return list(metaworld.ALL_V3_ENVIRONMENTS)


def parse_ml(name: str) -> tuple[str, str | None]:
    """``"metaworld:ML1-reach-v3"`` -> ``("ML1", "reach-v3")``; ``"ML10"`` -> ``("ML10", None)``. An unknown name
    raises ``ValueError`` naming close matches (before anything is built or compiled)."""
    bare = _strip(name)
    if bare in ML_BENCHMARKS:
        return bare, None
    if bare.startswith("ML1-"):
        task = bare[len("ML1-") :]
        known = _task_names()
        if known is None:
            import_metaworld()  # raises the ImportError naming the extra
        if task not in (known or []):
            hint = close_matches(task, known or [], 3)
            raise ValueError(
                f"unknown Meta-World task {task!r} in {name!r}"
                + (f": did you mean {', '.join(f'ML1-{h}' for h in hint)}?" if hint else "")
            )
        return "ML1", task
    known = _task_names() or ["reach-v3", "push-v3", "pick-place-v3"]
    options = [*ML_BENCHMARKS, *(f"ML1-{t}" for t in known)]
    hint = close_matches(bare, options, 4)
    raise ValueError(
        f"unknown Meta-World meta-RL benchmark {name!r}: choose ML1-<task> (e.g. ML1-reach-v3) or one of "
        f"{list(ML_BENCHMARKS)}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
    )


def task_key(task: Any) -> tuple:
    """What identifies a task: a Meta-World ``Task``'s class and goal vector (``rand_vec``), or (a stand-in's task)
    its ``env_name`` and ``goal`` (or its own values)."""
    data = getattr(task, "data", None)
    if data is not None:
        vec = np.asarray(pickle.loads(data)["rand_vec"], np.float64)
        return (task.env_name, vec.tobytes())
    return (_class_of(task), np.asarray(getattr(task, "goal", task), np.float64).tobytes())


def _class_of(task: Any) -> str:
    return getattr(task, "env_name", "task")


class _TaskSlot:
    """One env slot: whichever Meta-World task it was given last (``slot.task = task``, through the vector env's
    ``set_attr``), one env per class built on first use (``TimeLimit`` and Meta-World's terminate-on-success wrapper,
    as ``metaworld._init_each_env`` wraps them)."""

    metadata: dict = {"render_modes": []}
    render_mode = None
    spec = None

    def __init__(self, classes: dict, first_task: Any, seed: int | None, max_episode_steps: int | None, rfv: str):
        self._classes, self._seed, self._steps, self._rfv = classes, seed, max_episode_steps, rfv
        self._envs: dict[str, Any] = {}
        self._terminate_on_success = False
        self.task = first_task
        self.observation_space = self._active.observation_space
        self.action_space = self._active.action_space

    def _build(self, name: str):
        import gymnasium as gym
        from metaworld.wrappers import AutoTerminateOnSuccessWrapper

        env = self._classes[name](reward_function_version=self._rfv)
        if self._seed is not None:
            env.seed(self._seed)
        env = gym.wrappers.TimeLimit(env, self._steps or env.max_path_length)
        env = AutoTerminateOnSuccessWrapper(env)
        env.toggle_terminate_on_success(self._terminate_on_success)
        return env

    @property
    def task(self):
        return self._task

    @task.setter
    def task(self, task) -> None:
        name = _class_of(task)
        if name not in self._envs:
            self._envs[name] = self._build(name)
        self._active = self._envs[name]
        self._active.unwrapped.set_task(task)
        self._task = task
        self.task_name = type(self._active.unwrapped).__name__

    @property
    def max_path_length(self) -> int:
        return int(self._steps or self._active.unwrapped.max_path_length)

    @property
    def reward_function_version(self) -> str:
        return self._rfv

    @property
    def np_random(self):
        return self._active.np_random

    @property
    def unwrapped(self):
        return self

    def reset(self, *, seed=None, options=None):
        return self._active.reset(seed=seed, options=options)

    def step(self, action):
        return self._active.step(action)

    def toggle_terminate_on_success(self, on: bool) -> None:
        self._terminate_on_success = bool(on)
        for env in self._envs.values():
            env.toggle_terminate_on_success(bool(on))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()

    def get_wrapper_attr(self, name: str):
        return getattr(self, name)

    def has_wrapper_attr(self, name: str) -> bool:
        return hasattr(self, name)

    def set_wrapper_attr(self, name: str, value, *, force: bool = True) -> bool:
        setattr(self, name, value)
        return True


class MetaWorldMetaEnv:
    """``num_envs`` host env slots over a meta-RL benchmark's train and test tasks (see the module docstring).

    Args:
      benchmark: ``"ML1-<env>"`` (``"ML1-reach-v3"``), ``"ML10"``, ``"ML25"`` or ``"ML45"`` (``metaworld:`` prefix
        allowed).
      num_envs: env slots stepped together (each runs the task ``set_tasks`` gave it).
      seed: the benchmark's seed (it draws the goals: ML1's test goals use ``seed + 1``, as Meta-World) and the
        slots' env seeds (``seed + i``).
      reward_function_version: ``"v2"`` (Meta-World's default) or ``"v1"``.
      max_episode_steps: episode length (None: Meta-World's 500).
      vector_strategy: ``"sync"`` or ``"async"`` (a process per slot).
      vector_env / train_tasks / test_tasks: a stand-in (tests): a vector env whose ``set_attr("task", tasks)`` sets
        each slot's task, and the two task lists (any values; :func:`task_key` compares them).
    """

    def __init__(
        self,
        benchmark: str = "ML1-reach-v3",
        *,
        num_envs: int = 1,
        seed: int | None = 0,
        reward_function_version: str = "v2",
        max_episode_steps: int | None = None,
        vector_strategy: str = "sync",
        vector_env: Any = None,
        train_tasks: Sequence[Any] | None = None,
        test_tasks: Sequence[Any] | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        if reward_function_version not in ("v1", "v2"):
            raise ValueError(f"reward_function_version={reward_function_version!r}: choose 'v1' or 'v2'")
        if max_episode_steps is not None and not 1 <= max_episode_steps <= 500:
            raise ValueError(
                f"max_episode_steps={max_episode_steps} must be in [1, 500] (Meta-World's episodes end at 500)"
            )
        if vector_strategy not in ("sync", "async"):
            raise ValueError(f"vector_strategy={vector_strategy!r}: choose 'sync' or 'async'")
        self.benchmark = _strip(benchmark)
        self.seed = seed
        if vector_env is None:
            kind, task = parse_ml(benchmark)
            metaworld, gymnasium = import_metaworld()
            bench = metaworld.ML1(task, seed=seed) if kind == "ML1" else getattr(metaworld, kind)(seed=seed)
            train_tasks, test_tasks = list(bench.train_tasks), list(bench.test_tasks)
            classes = {**bench.train_classes, **bench.test_classes}
            make = lambda i: functools.partial(
                _TaskSlot, classes, train_tasks[0], None if seed is None else seed + i, max_episode_steps,
                reward_function_version,
            )  # fmt: skip
            vectorizer = getattr(gymnasium.vector, f"{vector_strategy.capitalize()}VectorEnv")
            vector_env = vectorizer(
                [make(i) for i in range(num_envs)], autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
            )
        elif train_tasks is None or test_tasks is None:
            raise ValueError("MetaWorldMetaEnv(vector_env=...) needs train_tasks and test_tasks")
        self.tasks = {"train": list(train_tasks), "test": list(test_tasks)}
        for split in SPLITS:
            if not self.tasks[split]:
                raise ValueError(f"{self.benchmark}: no {split} tasks")
        overlap = {task_key(t) for t in self.tasks["train"]} & {task_key(t) for t in self.tasks["test"]}
        if overlap:
            raise ValueError(f"{self.benchmark}: {len(overlap)} task(s) are both train and test tasks")
        self.classes = {s: [_class_of(t) for t in self.tasks[s]] for s in SPLITS}  # per task
        self.class_names = {s: list(dict.fromkeys(self.classes[s])) for s in SPLITS}  # in order of appearance
        self.env = MetaWorldEnv(
            self.benchmark, seed=seed, vector_env=vector_env, task_names=[self.benchmark] * int(vector_env.num_envs),
            append_task_id=False, max_episode_steps=max_episode_steps,
        )  # fmt: skip
        self.num_envs = self.env.num_envs
        self.obs_dim, self.action_dim = self.env.obs_dim, self.env.action_dim
        self.max_episode_steps = int(self.env.max_episode_steps)
        self.reward_function_version = reward_function_version
        self.env_tasks: tuple[str, np.ndarray] = ("train", np.zeros(self.num_envs, np.int64))

    def num_tasks(self, split: str) -> int:
        return len(self.tasks[_split(split)])

    def pool(self, split: str, n: int) -> np.ndarray:
        """``n`` task indices of ``split`` spread over its classes: round robin over the classes, each class's tasks
        in Meta-World's order (ML1: the first ``n`` goals). A clear error when ``n`` exceeds the tasks there are."""
        classes = self.classes[_split(split)]
        if not 1 <= n <= len(classes):
            raise ValueError(f"{self.benchmark} has {len(classes)} {split} tasks; asked for {n}")
        per_class = [[i for i, c in enumerate(classes) if c == name] for name in self.class_names[split]]
        order = [ids[j] for j in range(max(map(len, per_class))) for ids in per_class if j < len(ids)]
        return np.asarray(order[:n], np.int64)

    def set_tasks(self, split: str, indices: Sequence[int]) -> np.ndarray:
        """Give slot ``i`` the task ``indices[i]`` of ``split`` and reset every slot; returns the observations
        ``[num_envs, obs_dim]``. Episodes repeat each slot's task until the next call."""
        split = _split(split)
        idx = np.asarray(indices, np.int64).reshape(-1)
        if idx.shape[0] != self.num_envs or idx.min() < 0 or idx.max() >= len(self.tasks[split]):
            raise ValueError(
                f"set_tasks needs {self.num_envs} indices in [0, {len(self.tasks[split])}), got {idx.tolist()}"
            )
        self.env.envs.set_attr("task", [self.tasks[split][i] for i in idx])
        self.env_tasks = (split, idx)
        return self.env.reset()

    def env_classes(self) -> list[str]:
        """The class of each slot's current task."""
        split, idx = self.env_tasks
        return [self.classes[split][i] for i in idx]

    def step(self, action: np.ndarray) -> HostStep:
        return self.env.step(action)

    def set_terminate_on_success(self, on: bool) -> None:
        self.env.set_terminate_on_success(on)

    def metadata(self) -> dict:
        """What goes into ``config.json``: versions, the benchmark, its train and test classes and task counts."""
        out = {
            "suite": "metaworld",
            "benchmark": self.benchmark,
            "host_adapter": "jaxrl.envs.metaworld_meta",
            "reward_function_version": self.reward_function_version,
            "max_episode_steps": self.max_episode_steps,
            "tasks": self.class_names["test"],  # the meta-test scores are per test class
            "train_classes": self.class_names["train"],
            "test_classes": self.class_names["test"],
            "num_train_tasks": self.num_tasks("train"),
            "num_test_tasks": self.num_tasks("test"),
            "observation": "Meta-World's 39-d observation; ML tasks are partially observable (goal entries zero)",
            "success": "episode success = info['success'] at any step; meta-test episodes after the adaptation "
            "episodes end at the first success (as metaworld.evaluation)",
            "seed": self.seed,
        }
        return {**out, **package_versions()}

    def close(self) -> None:
        self.env.close()


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose 'train' or 'test'")
    return split


def make_metaworld_meta(name: str, **kwargs) -> MetaWorldMetaEnv:
    """``"metaworld:ML1-reach-v3"`` / ``"ML10"`` -> :class:`MetaWorldMetaEnv`."""
    return MetaWorldMetaEnv(name, **kwargs)
