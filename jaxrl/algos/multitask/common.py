"""Pieces the multi-task algorithms share: task-conditioned networks, aggregators, per-task metrics.

Networks here take the observation with its context ``(s, omega)`` and a task index ``task_id`` (int, ``[B]``
or scalar). With ``num_heads == 1`` the index is ignored (one shared output layer: MT-SAC); with
``num_heads == K`` a shared trunk feeds one output head per task (multi-head MT-SAC) and sample ``b`` uses
head ``task_id[b]``. Heads are one ``[K, H, out]`` kernel, so a batch with mixed tasks is one gather.

Architectures (:mod:`jaxrl.nets.multitask`, ``--network``): given a ``spec`` (:func:`arch_spec`) the builders use
Soft Modularization, CARE, MOORE or PaCo; without one (``network="mlp"``) exactly the networks they always built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl import grads as grads_lib
from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.multitask import architecture
from jaxrl.config import ConfigError
from jaxrl.envs.multitask import infer_task_id
from jaxrl.envs.wrappers import action_dim as env_action_dim
from jaxrl.envs.wrappers import is_discrete
from jaxrl.losses.sac import sac_temperature_loss
from jaxrl.nets import multitask as mtnets
from jaxrl.nets.core import MLP, Network

AGGREGATORS = ("sum", "mean", "pcgrad", "gradvac", "mgda", "cagrad", "upgrad", "imtl_g")


def make_aggregator(name: str, num_tasks: int) -> grads_lib.Aggregator:
    """The ``jaxrl.grads`` aggregator called ``name`` (one of :data:`AGGREGATORS`)."""
    factories = {
        "sum": grads_lib.sum,
        "mean": grads_lib.mean,
        "pcgrad": grads_lib.pcgrad,
        "gradvac": lambda: grads_lib.gradvac(num_tasks),
        "mgda": grads_lib.mgda,
        "cagrad": grads_lib.cagrad,
        "upgrad": grads_lib.upgrad,
        "imtl_g": grads_lib.imtl_g,
    }
    if name not in factories:
        raise ConfigError(f"aggregator={name!r} is not allowed: choose one of {list(AGGREGATORS)}")
    return factories[name]()


def task_optimizer(aggregator: str, num_tasks: int, tx, per_task: bool):
    """``optax.chain(aggregator, tx)`` when the update takes per-task gradients ``[K, *params]``, else ``tx``."""
    return optax.chain(make_aggregator(aggregator, num_tasks), tx) if per_task else tx


def task_grads(loss_k: Callable, params: Any, mapped: tuple, fixed: tuple, per_task: bool):
    """Per-task gradients ``[K, *params]`` and metrics ``[K]`` of ``loss_k(params, *mapped_k, *fixed) -> (L_k,
    metrics)`` (``mapped``: arguments with a leading task axis), or, without ``per_task``, the gradient of
    ``sum_k L_k`` (cheapest: no per-task gradients are formed)."""
    in_axes = (None,) + (0,) * len(mapped) + (None,) * len(fixed)
    if per_task:
        return jax.vmap(jax.grad(loss_k, has_aux=True), in_axes=in_axes)(params, *mapped, *fixed)

    def total(p):
        losses, metrics = jax.vmap(loss_k, in_axes=in_axes)(p, *mapped, *fixed)
        return jnp.sum(losses), metrics

    return jax.grad(total, has_aux=True)(params)


def apply_task_gradient(tx, state: ts.TrainState, grads: Any, key: jax.Array, per_task: bool, prefix: str):
    """One step of :func:`task_optimizer`'s ``tx`` on ``state``; with per-task gradients also the conflict
    metrics of the aggregator's state: ``{prefix}num_conflicts`` (pairs with ``g_i . g_j < 0``) and
    ``{prefix}mean_cosine``."""
    if not per_task:
        return ts.apply_gradient(tx, state, grads), {}
    state = ts.apply_gradient(tx, state, grads, key=key)
    agg = state.opt_state[0]
    return state, {
        f"{prefix}num_conflicts": agg.num_conflicts.astype(jnp.float32),
        f"{prefix}mean_cosine": agg.mean_cosine,
    }


class _Heads(mtnets.TaskHeads):
    """``num_heads`` dense output layers; sample ``b`` uses head ``task_id[b]``. (This name is kept: flax derives
    the parameter path, and with it the initial draws, from the class name.)"""


def _head(num_heads: int, features: int, scale: float):
    return lambda h, task_id: mtnets.task_output(h, task_id, num_heads, features, scale, heads=_Heads)


class _TanhGaussianHeads(nn.Module):
    hidden: Sequence[int]
    activation: str
    action_dim: int
    num_heads: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs, task_id):
        h = MLP(tuple(self.hidden), self.activation)(obs)
        out = _head(self.num_heads, 2 * self.action_dim, 0.01)(h, task_id)
        mean, log_std = out[..., : self.action_dim], out[..., self.action_dim :]
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class _QHeads(nn.Module):
    hidden: Sequence[int]
    activation: str
    num_heads: int

    @nn.compact
    def __call__(self, obs, action, task_id):
        h = MLP(tuple(self.hidden), self.activation)(jnp.concatenate([obs, action], axis=-1))
        return _head(self.num_heads, 1, 1.0)(h, task_id)[..., 0]


class _CategoricalHeads(nn.Module):
    hidden: Sequence[int]
    activation: str
    num_actions: int
    num_heads: int

    @nn.compact
    def __call__(self, obs, task_id):
        h = MLP(tuple(self.hidden), self.activation)(obs)
        return _head(self.num_heads, self.num_actions, 0.01)(h, task_id)


def _network(module) -> Network:
    return Network(
        lambda key, *inputs: module.init(key, *inputs)["params"],
        lambda params, *inputs: module.apply({"params": params}, *inputs),
    )


def tanh_gaussian(mean, log_std) -> distrax.Transformed:
    return distrax.Transformed(
        distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), ndims=1)
    )


def make_task_tanh_gaussian_policy(
    action_dim: int, hidden=(256, 256), activation="relu", num_heads: int = 1, spec: mtnets.ArchSpec | None = None
) -> Network:
    """``apply(params, obs, task_id) -> tanh-Gaussian`` on ``(-1, 1)^d`` (one head, or one per task)."""
    net = _network(_TanhGaussianHeads(tuple(hidden), activation, action_dim, num_heads))
    net = net if spec is None else mtnets.make_task_tanh_gaussian(spec, action_dim, num_heads)
    return Network(net.init, lambda params, obs, task_id: tanh_gaussian(*net.apply(params, obs, task_id)))


def make_task_q_ensemble(
    hidden=(256, 256), activation="relu", num_heads: int = 1, num_members: int = 2, spec=None
) -> Network:
    """``apply(params, obs, action, task_id) -> Q [E, ...]`` (twin Q by default)."""
    net = (
        _network(_QHeads(tuple(hidden), activation, num_heads)) if spec is None else mtnets.make_task_q(spec, num_heads)
    )
    return nets.make_ensemble(net, num_members)


def make_task_categorical_policy(
    num_actions: int, hidden=(64, 64), activation="tanh", num_heads: int = 1, spec: mtnets.ArchSpec | None = None
) -> Network:
    """``apply(params, obs, task_id) -> distrax.Categorical``."""
    net = _network(_CategoricalHeads(tuple(hidden), activation, num_actions, num_heads))
    net = net if spec is None else mtnets.make_task_network(spec, num_actions, 0.01, num_heads)
    return Network(net.init, lambda params, obs, task_id: distrax.Categorical(logits=net.apply(params, obs, task_id)))


def arch_spec(config, num_tasks: int, env=None) -> mtnets.ArchSpec | None:
    """:func:`jaxrl.algos.multitask.architecture.arch_spec` with CARE's ``suite`` / ``descriptor`` contexts read
    off ``env``."""
    descriptors = getattr(env, "descriptors", None)
    if descriptors is None:
        descriptors = dict(getattr(env, "extra_metadata", ())).get("descriptors")
    return architecture.arch_spec(config, num_tasks, getattr(env, "contexts", None), descriptors)


def make_task_actor_critic(spec: mtnets.ArchSpec, env, env_params, contexts) -> tuple[Network, Network]:
    """MT-PPO's policy and value on architecture ``spec``, ``apply(params, obs)``: the task index is read off the
    observation's context (:func:`jaxrl.envs.multitask.infer_task_id`, exact for distinct contexts)."""
    nets_ = mtnets.make_task_actor_critic(spec, env_action_dim(env, env_params), is_discrete(env, env_params))
    task = lambda obs: infer_task_id(obs, jnp.asarray(contexts, jnp.float32))
    by_obs = lambda n: Network(lambda k, obs: n.init(k, obs, task(obs)), lambda p, obs: n.apply(p, obs, task(obs)))
    return by_obs(nets_[0]), by_obs(nets_[1])


def task_temperature_grad(log_alpha, entropy, target_entropy):
    """One temperature per task: the gradient of ``sum_k`` of the SAC temperature loss on task ``k``'s entropy."""

    def total(la):
        losses, metrics = jax.vmap(sac_temperature_loss, in_axes=(0, 0, None))(la, -entropy, target_entropy)
        return jnp.sum(losses), metrics

    return jax.grad(total, has_aux=True)(log_alpha)


def task_index(num_tasks: int) -> jax.Array:
    return jnp.arange(num_tasks, dtype=jnp.int32)


def update_last_episode(last: jax.Array, values_kn: jax.Array, done_kn: jax.Array) -> jax.Array:
    """Per task ``[K]``: the mean of ``values`` over that task's envs whose episode just ended, else ``last``."""
    done = done_kn.astype(jnp.float32)
    n = done.sum(axis=1)
    mean = (values_kn * done).sum(axis=1) / jnp.maximum(n, 1.0)
    return jnp.where(n > 0, mean, last)


def task_metrics(last_return: jax.Array | np.ndarray, last_success: jax.Array | np.ndarray) -> dict:
    """Per-task training return and success ``[K]``, their means, and the best-minus-worst task spread."""
    return {
        "train_return_per_task": last_return,
        "train_success_per_task": last_success,
        "train_return": jnp.mean(last_return),
        "train_success": jnp.mean(last_success),
        "return_spread": jnp.max(last_return) - jnp.min(last_return),
        "success_spread": jnp.max(last_success) - jnp.min(last_success),
    }


def split_tasks(tree, num_tasks: int):
    """``[N, ...] -> [K, N // K, ...]`` on every leaf (blocked task assignment)."""
    return jax.tree.map(lambda x: x.reshape(num_tasks, x.shape[0] // num_tasks, *x.shape[1:]), tree)


def check_num_tasks(env, what: str) -> int:
    k = getattr(env, "num_tasks", None)
    if k is None or getattr(env, "contexts", None) is None:
        raise ConfigError(
            f"{what} needs a multi-task suite (a TaskSuite with contexts), e.g. "
            f"jaxrl.envs.make('point-goal-4'); got {type(env).__name__}"
        )
    return int(np.asarray(k))
