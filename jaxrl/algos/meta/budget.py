"""The memory budget of MAML's unrolled inner loop: the meta-gradient keeps every adapted parameter copy (and, to
second order, the Hessian-vector intermediates) alive for the backward pass, so a config that would need more than
``Config.memory_limit_gb`` is refused at ``make`` rather than failing inside XLA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.algos.meta.common import FamilySpec
from jaxrl.config import ConfigError
from jaxrl.nets.recurrent import param_count


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


def check_inner_loop_memory(algo: str, cfg: Any, spec: FamilySpec, policy_init: Callable) -> None:
    """:func:`check_memory` of an unrolled inner loop of ``cfg.num_inner_steps`` policy-gradient steps on
    ``cfg.num_tasks`` tasks x ``cfg.num_trajectories`` trajectories of ``cfg.horizon`` steps."""
    example = jnp.zeros((spec.obs_dim,))
    num_params = param_count(jax.eval_shape(policy_init, jax.random.PRNGKey(0), example))
    trajectory_floats = cfg.num_trajectories * cfg.horizon * (spec.obs_dim + spec.action_dim + 2 * 64)
    order = 1 if cfg.first_order else 2
    estimate = estimate_unrolled_bytes(num_params, cfg.num_tasks, cfg.num_inner_steps, trajectory_floats, order)
    check_memory(algo, estimate, int(cfg.memory_limit_gb * 2**30))


def check_memory(algo: str, estimate: int, limit: int) -> None:
    if estimate > limit:
        raise ConfigError(
            f"{algo}: the unrolled inner loop needs about {estimate / 2**30:.2f} GiB (params x task "
            f"batch x inner steps), over the limit of {limit / 2**30:.2f} GiB "
            f"(Config.memory_limit_gb); use fewer num_inner_steps / num_tasks / "
            f"trajectories, first_order=True, or raise the limit"
        )
