"""Pieces the meta-RL algorithms share: task-family checks, the trial horizon, memory estimates, env registration.

Meta-RL algorithms take a *task family* where other algorithms take an env: an object with ``env`` (the
single-task env, gymnax protocol) and ``sample(key, n)`` (env params with a leading task axis ``[n]``). The
``env_params`` handed to ``make`` are the **held-out meta-test tasks** (leading axis ``[K_test]``): training
always samples fresh tasks from the family, evaluation adapts to each held-out task from scratch.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxrl.config import ConfigError

# Refuse MAML-style unrolled graphs above this estimated size (bytes); see `estimate_unrolled_bytes`.
DEFAULT_MEMORY_LIMIT_BYTES = 4 * 2**30


def check_family(algo: str, env: Any, env_params: Any) -> None:
    """Raise a clear ``ValueError`` unless ``env`` is a task family and ``env_params`` a batch of tasks."""
    if not (hasattr(env, "sample") and hasattr(env, "env")):
        raise ValueError(
            f"{algo} is a meta-RL algorithm: env must be a task family with `.env` and "
            f"`.sample(key, n)` (e.g. jaxrl.envs.make('bandit')), got {type(env).__name__}"
        )
    leaves = jax.tree.leaves(env_params)
    if not leaves or np.ndim(leaves[0]) == 0:
        raise ValueError(
            f"{algo}: env_params must be held-out tasks with a leading task axis [K], as returned by "
            f"family.sample(key, K)"
        )
    if np.shape(leaves[0])[0] < 1:
        raise ConfigError(f"{algo}: the held-out task batch is empty (0 tasks); sample at least one task")


def num_tasks(env_params: Any) -> int:
    return int(np.shape(jax.tree.leaves(env_params)[0])[0])


def episode_horizon(env_params: Any, default: int = 100) -> int:
    """The (static) episode length of a batch of tasks, read from ``max_steps_in_episode`` (concrete)."""
    value = getattr(env_params, "max_steps_in_episode", None)
    if value is None:
        return default
    return int(np.max(np.asarray(value)))


def estimate_unrolled_bytes(
    num_params: int, task_batch: int, inner_steps: int, trajectory_floats: int, order: int = 2
) -> int:
    """A rough upper estimate of the memory an unrolled MAML meta-gradient keeps alive (float32).

    Each of ``inner_steps`` adapted parameter copies per task is kept for the backward pass, with (second order)
    its gradient and the Hessian-vector intermediates (``order`` copies), plus the activations of the inner
    trajectories (``trajectory_floats`` floats per task per step, times the network depth absorbed in a factor 4).
    """
    per_task_step = num_params * (1 + order) + 4 * trajectory_floats
    return int(4 * task_batch * max(inner_steps, 1) * per_task_step)


def check_memory(algo: str, estimate: int, limit: int) -> None:
    if estimate > limit:
        raise ConfigError(
            f"{algo}: the unrolled inner loop needs about {estimate / 2**30:.2f} GiB (params x task "
            f"batch x inner steps), over the limit of {limit / 2**30:.2f} GiB "
            f"(Config.memory_limit_gb); use fewer num_inner_steps / num_tasks / "
            f"trajectories, first_order=True, or raise the limit"
        )
