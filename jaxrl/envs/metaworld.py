"""Meta-World (MT10 / MT25 / MT50) through a HOST adapter around its gymnasium vector envs.

Meta-World runs MuJoCo on the host (numpy in, numpy out), so it cannot live inside a jitted step the way the
JAX suites do. :class:`MetaWorldEnv` is the host side of a multi-task env: one gymnasium vector env holding one
env per task (Meta-World's own ``gymnasium.make_vec("Meta-World/MT10")``, autoreset in the same step), stepped
with numpy actions in ``[-1, 1]``. Like :class:`jaxrl.envs.multitask.MultiTaskEnv` it appends the task's context
omega (a one-hot task id, ``[K]``) to the 39-d observation, so a policy trained on ``(s, omega)`` is the same
network as on the JAX suites; :mod:`jaxrl.run.host_train` keeps every update jitted.

Success follows Meta-World's evaluation (``metaworld.evaluation.evaluation``): evaluation episodes end at the
first success (``terminate_on_success``), an episode counts as a success if ``info["success"]`` was 1 at any
step, and a task's success rate is its number of successful episodes over ``num_episodes``.

Meta-World is an optional extra: ``pip install -e ".[metaworld]"`` (metaworld 3.1.1, which pins mujoco 3.3.0,
and ``packaging``, which metaworld imports without declaring it).

    env = MetaWorldEnv("MT10", seed=0)          # 10 envs, one per task
    obs = env.reset()                           # [10, 39 + 10] float32
    out = env.step(np.zeros((10, 4)))           # HostStep: obs, reward, terminated, truncated, success, ...
    env.metadata()                              # metaworld version, reward-function version, tasks, ...
    MetaWorldEnv("reach-v3,drawer-close-v3")    # a task subset (Meta-World's custom-mt-envs), one env per task
    MetaWorldEnv("MT10", tasks=range(5, 10))    # only tasks 5..9 of MT10 built (one process's share of a run)

As env names: ``metaworld:MT10`` / ``MT25`` / ``MT50``, or ``metaworld:reach-v3,drawer-close-v3`` for a subset
(``jaxrl train mt_sac --env metaworld:reach-v3,drawer-close-v3 --num-envs 2``).

``tasks=``: build only some of a benchmark's tasks (global indices; a run over several processes gives each process
a block of tasks, :mod:`jaxrl.run.host_train`). Those envs are built exactly as in the whole benchmark's vector env
(same task data, seeds and reset seeds) and their context is still the one-hot over ALL the benchmark's tasks, so a
process's observations are the rows of the whole env's.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxrl.config import close_matches

__all__ = [
    "MetaWorldEnv",
    "HostStep",
    "BENCHMARKS",
    "evaluate",
    "episode_success_rate",
    "import_metaworld",
    "make_metaworld",
    "benchmark_num_tasks",
    "package_versions",
]

# Benchmark names (Meta-World's gymnasium ids without the "Meta-World/" prefix). The ML (meta-RL) vector envs
# are not offered: with metaworld 3.1.1's defaults, building ML10-train and ML1-train failed its own assertions
# on how tasks divide over envs (checked); a gymnasium vector env built by hand can still be passed in.
BENCHMARKS = ("MT10", "MT25", "MT50")

INSTALL_HINT = (
    'Meta-World is an optional extra of jaxrl: install it with `pip install -e ".[metaworld]"` '
    "(metaworld==3.1.1, mujoco==3.3.0, packaging)"
)


def import_metaworld():
    """``(metaworld, gymnasium)``; a clear ImportError naming the extra when Meta-World is missing."""
    try:
        import gymnasium
        import metaworld
    except ImportError as e:  # metaworld itself, or its undeclared `packaging`, or mujoco
        raise ImportError(f"{INSTALL_HINT}; importing it failed with: {e}") from e
    return metaworld, gymnasium


class HostStep(NamedTuple):
    """One step of the ``N`` envs (numpy arrays with a leading ``[N]``).

    ``obs`` is the observation to act on next (already reset where an episode ended); ``next_obs`` is the true
    successor of the step (the pre-reset final observation where an episode ended), as a replay buffer wants.
    ``episode_success`` is success at any step of the episode so far and ``episode_return`` its summed reward;
    both are final values where ``episode_done``.
    """

    obs: np.ndarray  # [N, O + D] float32
    reward: np.ndarray  # [N] float32
    terminated: np.ndarray  # [N] bool
    truncated: np.ndarray  # [N] bool
    success: np.ndarray  # [N] bool, this step
    next_obs: np.ndarray  # [N, O + D] float32
    episode_done: np.ndarray  # [N] bool
    episode_success: np.ndarray  # [N] bool
    episode_return: np.ndarray  # [N] float32


def _parse(benchmark: str) -> tuple[str, dict]:
    """A benchmark (``MT10``) or a comma-separated list of Meta-World task names (``reach-v3,push-v3``, one env
    per task through Meta-World's ``custom-mt-envs``) -> ``(gymnasium id, its keywords)``."""
    if benchmark in BENCHMARKS:
        return f"Meta-World/{benchmark}", {}
    names = [n.strip() for n in benchmark.split(",")]
    if "-v" not in benchmark or not all(names):
        raise ValueError(
            f"unknown Meta-World benchmark {benchmark!r}: choose one of {list(BENCHMARKS)}, or comma-separated "
            "task names (reach-v3,push-v3)"
        )
    metaworld, _ = import_metaworld()
    known = list(metaworld.ALL_V3_ENVIRONMENTS)
    for name in names:
        if name not in known:
            hint = close_matches(name, known, 3)
            raise ValueError(
                f"unknown Meta-World task {name!r}" + (f": did you mean {', '.join(hint)}?" if hint else "")
            )
    if len(set(names)) != len(names):
        raise ValueError(f"Meta-World task list {benchmark!r} names a task twice")
    return "Meta-World/custom-mt-envs", {"envs_list": names}


def benchmark_num_tasks(benchmark: str) -> int:
    """The number of tasks of ``"MT10"`` / ``"metaworld:MT10"`` or a task list, without importing Meta-World."""
    prefix, _, rest = benchmark.partition(":")
    name = rest if prefix == "metaworld" else benchmark
    if name in BENCHMARKS:
        return int(name[2:])
    return len(name.split(","))


def _subset_vector_env(benchmark: str, tasks: Sequence[int], seed, strategy: str, kwargs: dict):
    """A vector env of only ``tasks`` (global indices, one env each) of ``benchmark``, each env built as
    Meta-World's whole vector env builds it (``metaworld.make_mt_envs`` / its custom-mt-envs entry point); returns
    it and the names of ALL the benchmark's tasks."""
    metaworld, gymnasium = import_metaworld()
    _, extra = _parse(benchmark)
    if extra:  # a task list: env i is make_mt_envs(name_i, seed=seed + i), as custom-mt-envs makes it
        names = extra["envs_list"]
        make = lambda i: functools.partial(
            metaworld.make_mt_envs, names[i], num_tasks=len(names), env_id=i,
            seed=None if not seed else seed + i, use_one_hot=False, **kwargs,
        )  # fmt: skip
    else:  # MT10 / MT25 / MT50: env i is the benchmark's i-th class with its tasks, as make_mt_envs makes it
        bench = getattr(metaworld, benchmark)(seed=seed)
        classes = list(bench.train_classes.items())
        names = [name for name, _ in classes]
        make = lambda i: functools.partial(
            metaworld._init_each_env, env_cls=classes[i][1],
            tasks=[t for t in bench.train_tasks if t.env_name == classes[i][0]], seed=seed, env_id=i,
            num_tasks=len(classes), **kwargs,
        )  # fmt: skip
    bad = [t for t in tasks if not 0 <= t < len(names)]
    if bad or not tasks:
        raise ValueError(f"tasks={list(tasks)}: {benchmark} has tasks 0..{len(names) - 1}")
    vectorizer = getattr(gymnasium.vector, f"{strategy.capitalize()}VectorEnv")
    vec = vectorizer([make(i) for i in tasks], autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP)
    return vec, names


class MetaWorldEnv:
    """``num_envs`` Meta-World envs on the host, ``envs_per_task`` per task (blocked: env ``i`` runs task
    ``i // envs_per_task``), observations ``concat(s [39], omega [K])``.

    Args:
      benchmark: one of :data:`BENCHMARKS` (``"MT10"``, ``"MT25"``, ``"MT50"``), or a comma-separated list of
        Meta-World task names (``"reach-v3,push-v3"``: a multi-task env of those tasks, one env each).
      seed: seeds the envs' goal sampling and the first reset.
      reward_function_version: Meta-World's reward version (``"v2"`` is its default; ``"v1"`` the original).
      max_episode_steps: episode length (Meta-World's default 500 when None).
      append_task_id: append the one-hot task id (default True; False hides the task, as meta-RL would).
      vector_strategy: ``"sync"`` (one process) or ``"async"`` (a process per env).
      vector_kwargs: more keywords for ``gymnasium.make_vec`` (Meta-World's ``_init_each_env`` options).
      vector_env / task_names: an already built gymnasium vector env with the task name of each env (tests,
        custom task sets); then ``benchmark`` is only a label.
      tasks: build only these tasks of the benchmark (global indices, one env each); the context stays the one-hot
        over all its tasks. ``num_tasks`` / ``task_names`` / ``env_task_ids`` are then this env's own tasks,
        ``total_tasks`` / ``all_task_names`` the benchmark's and ``global_task_ids`` maps the first to the second.
      all_task_names: with ``vector_env``, the names of all the tasks when ``task_names`` are a subset of them.
    """

    def __init__(
        self,
        benchmark: str = "MT10",
        *,
        seed: int | None = 0,
        reward_function_version: str = "v2",
        max_episode_steps: int | None = None,
        append_task_id: bool | None = None,
        vector_strategy: str = "sync",
        vector_kwargs: dict | None = None,
        vector_env: Any = None,
        task_names: list[str] | None = None,
        tasks: Sequence[int] | None = None,
        all_task_names: list[str] | None = None,
    ):
        if reward_function_version not in ("v1", "v2"):
            raise ValueError(f"reward_function_version={reward_function_version!r}: choose 'v1' or 'v2'")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={max_episode_steps} must be >= 1 (or None for Meta-World's 500)")
        if vector_strategy not in ("sync", "async"):
            raise ValueError(f"vector_strategy={vector_strategy!r}: choose 'sync' or 'async'")
        self.benchmark = benchmark
        self.seed = seed
        if vector_env is None:
            gym_id, extra = _parse(benchmark)
            _, gymnasium = import_metaworld()
            kwargs = dict(
                vector_strategy=vector_strategy,
                seed=seed,
                reward_function_version=reward_function_version,
                **extra,
                **dict(vector_kwargs or {}),
            )
            if max_episode_steps is not None:
                kwargs["max_episode_steps"] = max_episode_steps
            if tasks is None:
                vector_env = gymnasium.make_vec(gym_id, **kwargs)
            else:
                kwargs = {k: v for k, v in kwargs.items() if k not in ("vector_strategy", "seed", "envs_list")}
                vector_env, all_task_names = _subset_vector_env(benchmark, list(tasks), seed, vector_strategy, kwargs)
            from metaworld.evaluation import _get_task_names

            task_names = _get_task_names(vector_env)
        elif task_names is None:
            raise ValueError("MetaWorldEnv(vector_env=...) needs task_names (the task of each env)")
        self.envs = vector_env
        self.env_task_names = list(task_names)
        self.num_envs = int(vector_env.num_envs)
        if len(self.env_task_names) != self.num_envs:
            raise ValueError(f"task_names has {len(self.env_task_names)} names for {self.num_envs} envs")
        self.task_names = list(dict.fromkeys(self.env_task_names))  # tasks in order of first appearance
        self.num_tasks = len(self.task_names)
        self.env_task_ids = np.asarray([self.task_names.index(n) for n in self.env_task_names], np.int32)
        if self.num_envs % self.num_tasks or not np.array_equal(
            self.env_task_ids, np.repeat(np.arange(self.num_tasks), self.num_envs // self.num_tasks)
        ):
            raise ValueError(f"expected the same number of envs per task, grouped by task; got {self.env_task_names}")
        self.envs_per_task = self.num_envs // self.num_tasks
        self.all_task_names = list(all_task_names) if all_task_names is not None else list(self.task_names)
        self.total_tasks = len(self.all_task_names)
        unknown = [n for n in self.task_names if n not in self.all_task_names]
        if unknown:
            raise ValueError(f"tasks {unknown} are not among all_task_names {self.all_task_names}")
        self.global_task_ids = np.asarray([self.all_task_names.index(n) for n in self.task_names], np.int32)
        if append_task_id is None:
            append_task_id = True
        self.append_task_id = bool(append_task_id)
        self.contexts = (  # [num_tasks, D]: one-hot over all the benchmark's tasks
            np.eye(self.total_tasks, dtype=np.float32)[self.global_task_ids]
            if self.append_task_id
            else np.zeros((self.num_tasks, 0), np.float32)
        )
        self.context_dim = int(self.contexts.shape[1])
        self._omega = self.contexts[self.env_task_ids]  # [N, D]
        self.raw_obs_dim = int(np.prod(vector_env.single_observation_space.shape))
        self.obs_dim = self.raw_obs_dim + self.context_dim
        space = vector_env.single_action_space
        self.action_dim = int(np.prod(space.shape))
        self.action_low = np.asarray(space.low, np.float32)
        self.action_high = np.asarray(space.high, np.float32)
        self.max_episode_steps = max_episode_steps or self._attr("max_path_length", 500)
        self.reward_function_version = self._attr("reward_function_version", reward_function_version)
        self._ep_success = np.zeros(self.num_envs, bool)
        self._ep_return = np.zeros(self.num_envs, np.float64)
        self._reset_seed = seed

    def _attr(self, name: str, default):
        try:
            values = self.envs.get_attr(name)
        except AttributeError:
            return default
        values = [v for v in values if v is not None]
        return values[0] if values else default

    def _obs(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, np.float32).reshape(self.num_envs, self.raw_obs_dim)
        return np.concatenate([raw, self._omega], axis=-1) if self.context_dim else raw

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env; observations ``[N, O + D]`` float32. The first reset uses the constructor's seed."""
        if seed is None:
            seed, self._reset_seed = self._reset_seed, None
        seeds: int | list[int] | None = seed
        if seed is not None and self.total_tasks != self.num_tasks:  # a subset: each env's seed in the whole env
            first = self.global_task_ids[self.env_task_ids] * self.envs_per_task
            seeds = [int(seed + f + i % self.envs_per_task) for i, f in enumerate(first)]
        raw, _ = self.envs.reset(seed=seeds)
        self._ep_success[:] = False
        self._ep_return[:] = 0.0
        return self._obs(raw)

    def step(self, action: np.ndarray) -> HostStep:
        """Step every env with ``action [N, A]`` in ``[-1, 1]`` (clipped); finished episodes reset in the same step."""
        action = np.asarray(action, np.float32).reshape(self.num_envs, self.action_dim)
        if not np.all(np.isfinite(action)):
            raise FloatingPointError(f"non-finite action for Meta-World: {action}")
        action = np.clip(action, -1.0, 1.0)
        action = self.action_low + (action + 1.0) * 0.5 * (self.action_high - self.action_low)
        raw, reward, terminated, truncated, info = self.envs.step(action)
        obs = self._obs(raw)
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        done = terminated | truncated
        next_obs = obs.copy()
        success = np.zeros(self.num_envs, bool)
        step_info = info.get("success")
        if step_info is not None:
            success = np.asarray(step_info) >= 1.0
        if done.any():  # same-step autoreset: the finished episodes' last step lives in final_info / final_obs
            final_info = info.get("final_info", {})
            if "success" in final_info:
                fin = np.asarray(final_info["success"]) >= 1.0
                success = np.where(done, fin, success)
            mask = np.asarray(info.get("_final_obs", done), bool)
            for i in np.flatnonzero(mask):  # the context part of next_obs is the env's omega already
                next_obs[i, : self.raw_obs_dim] = np.asarray(info["final_obs"][i], np.float32).reshape(-1)
        reward = np.asarray(reward, np.float64)
        self._ep_return += reward
        self._ep_success |= success
        ep_success, ep_return = self._ep_success.copy(), self._ep_return.astype(np.float32)
        self._ep_success[done] = False
        self._ep_return[done] = 0.0
        return HostStep(
            obs, reward.astype(np.float32), terminated, truncated, success, next_obs, done, ep_success, ep_return
        )

    def set_terminate_on_success(self, on: bool) -> None:
        """Meta-World's evaluation switch: episodes end at the first success."""
        self.envs.call("toggle_terminate_on_success", bool(on))

    def per_task(self, x: np.ndarray) -> np.ndarray:
        """``[N, ...] -> [K, envs_per_task, ...]``."""
        x = np.asarray(x)
        return x.reshape(self.num_tasks, self.envs_per_task, *x.shape[1:])

    def metadata(self) -> dict:
        """What goes into ``config.json``: versions, reward-function version, episode length, the tasks."""
        out = {
            "suite": "metaworld",
            "benchmark": self.benchmark,
            "host_adapter": "jaxrl.envs.metaworld",
            "reward_function_version": self.reward_function_version,
            "max_episode_steps": int(self.max_episode_steps),
            "tasks": self.all_task_names,
            "envs_per_task": self.envs_per_task,
            "context": "one-hot task id" if self.append_task_id else "none",
            "success": "episode success = info['success'] at any step; per task over the evaluation episodes "
            "(terminate on success during evaluation, as metaworld.evaluation)",
            "seed": self.seed,
        }
        return {**out, **package_versions()}

    def close(self) -> None:
        self.envs.close()


def package_versions() -> dict:
    """The Meta-World, MuJoCo and gymnasium versions a run directory records (``None`` / absent when missing)."""
    out: dict[str, Any] = {}
    try:
        import metaworld

        out["metaworld_version"] = getattr(metaworld, "__version__", None) or md.version("metaworld")
    except (ImportError, md.PackageNotFoundError):
        out["metaworld_version"] = None
    for pkg in ("mujoco", "gymnasium"):
        try:
            out[f"{pkg}_version"] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def make_metaworld(name: str, **kwargs) -> MetaWorldEnv:
    """``"metaworld:MT10"``, ``"MT10"`` or ``"metaworld:reach-v3,push-v3"`` (a task subset) -> :class:`MetaWorldEnv`."""
    prefix, _, rest = name.partition(":")
    return MetaWorldEnv(rest if prefix == "metaworld" else name, **kwargs)


def episode_success_rate(episode_success: np.ndarray, num_episodes: int) -> np.ndarray:
    """Per task: successful episodes over ``num_episodes``. ``episode_success [K, E]`` (E >= num_episodes)
    holds each finished episode's any-step success in order; only the first ``num_episodes`` count."""
    s = np.asarray(episode_success, np.float64)
    if s.ndim != 2 or s.shape[1] < num_episodes:
        raise ValueError(f"episode_success must be [K, E >= {num_episodes}], got shape {s.shape}")
    return s[:, :num_episodes].sum(axis=1) / num_episodes


def evaluate(
    env: MetaWorldEnv, policy: Callable[[np.ndarray], np.ndarray], num_episodes: int = 10, *, seed: int | None = None
) -> dict[str, np.ndarray]:
    """Meta-World's success rate of ``policy(obs [N, O + D]) -> actions [N, A]`` per task.

    As ``metaworld.evaluation.evaluation``: terminate on success during the evaluation, reset every env, step
    until every task has ``num_episodes`` finished episodes; an episode is a success if ``success`` was 1 at any
    step; success rate per task = successes in its first ``num_episodes`` episodes / ``num_episodes``. Returns
    ``{"eval_success": [K], "eval_return": [K]}`` (return: mean over those episodes). The env's
    ``terminate_on_success`` is switched back off afterwards (training envs never terminate on success).
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes} must be >= 1")
    successes: list[list[bool]] = [[] for _ in range(env.num_tasks)]
    returns: list[list[float]] = [[] for _ in range(env.num_tasks)]
    env.set_terminate_on_success(True)
    try:
        obs = env.reset(seed=seed)
        while min(len(s) for s in successes) < num_episodes:
            out = env.step(np.asarray(policy(obs)))
            for i in np.flatnonzero(out.episode_done):
                t = env.env_task_ids[i]
                successes[t].append(bool(out.episode_success[i]))
                returns[t].append(float(out.episode_return[i]))
            obs = out.obs
    finally:
        env.set_terminate_on_success(False)
    rate = episode_success_rate(np.asarray([s[:num_episodes] for s in successes]), num_episodes)
    ret = np.asarray([np.mean(r[:num_episodes]) for r in returns])
    return {"eval_success": rate.astype(np.float32), "eval_return": ret.astype(np.float32)}
