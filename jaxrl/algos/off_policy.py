"""The off-policy step skeleton: warm-up, env step, replay-buffer add, ``k`` updates under a phase condition.

SAC, MT-SAC, MH-SAC and Distral are each a ``Config`` (on :class:`jaxrl.algos.base_config.OffPolicyConfig`), their
networks (a record of :class:`~jaxrl.algos.train_state.TrainState` per network, ``nets``), the wiring of their
losses and one update function; this module owns the rest.

One iteration (:func:`make_step`)::

    key, act_key, env_key, update_key = split(state.key, 4)
    warm-up: the buffer holds fewer than `learning_starts` transitions -> uniform random actions in [-1, 1]
    env step (num_envs envs) -> Transition(obs, action, reward, final obs, terminated, truncated, extras(info))
    buffer = add(buffer, transition)
    if the buffer holds max(learning_starts, 1): updates_per_step x update(buffer, nets, key) (lax.scan)
    metrics = mean over the updates, plus track(tracker, info)'s episode metrics

The pieces, for an algorithm whose collection differs (a meta-learner's context phase, episodes per task, a host
loop) and that wants the same invariants:

* :func:`explore` ``(warmup, policy_action, key)``: uniform random actions during warm-up, else the policy's.
* :func:`run_updates` ``(ready, update, nets, buffer, key, num_updates) -> (nets, metrics)``: ``num_updates`` calls
  of ``update(buffer, nets, key) -> (nets, metrics)`` scanned under :func:`~jaxrl.algos.common.phase_cond`. The
  replay buffer is closed over, NEVER an operand or result of the cond: carrying it would copy it in both
  branches (and stalled XLA:CPU's scheduler on large vmapped programs). The skipped branch's metrics are zeros of
  the shapes ``jax.eval_shape`` reports for the updates (no hand-kept name list). Metrics are averaged over the
  updates. Anything else ``update`` reads (a meta-learner's context batches, task beliefs) is closed over too,
  or is part of ``nets`` if the update changes it.
* :class:`State` and :func:`make_init`: the state every skeleton user keeps; ``tracker`` is the algorithm's own
  pytree of per-step statistics (``()`` when none).
* Multi-task (MT-SAC, MH-SAC, Distral): :mod:`jaxrl.algos.multitask.off_policy` builds on these pieces.

A meta algorithm with a context phase (PEARL) calls :func:`run_updates` from its own step after collecting (its
per-task buffers and context closed over by its ``update``), and :func:`explore` for its warm-up iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.algos.common import phase_cond
from jaxrl.data import replay
from jaxrl.data.types import Transition


@struct.dataclass
class State:
    nets: Any  # the algorithm's networks: a record of TrainState per network
    buffer: replay.ReplayState
    env_state: Any
    obs: jax.Array  # [N, O]
    tracker: Any  # the algorithm's per-step statistics (multi-task: last return/success per task); () if none
    key: jax.Array
    iteration: jax.Array

    @property
    def params(self):
        """The networks (``nets``), under the name callers that snapshot ``state.params`` use."""
        return self.nets


class Hooks(NamedTuple):
    """What an algorithm plugs into :func:`make_step`.

    * ``policy(state, obs, key) -> actions [N, A]``: the training policy, sampled with the step's act key.
    * ``update(buffer, nets, key) -> (nets, metrics)``: one gradient update (the buffer is read, never returned).
    * ``add(buffer, transition) -> buffer``; ``fill(buffer) -> int32 []``: transitions stored (per-task buffers:
      one task's count, every task fills at the same rate).
    * ``extras(info)``: the transition's ``extras`` (multi-task: the task index); ``track(tracker, info) ->
      (tracker, metrics)``: per-step statistics of the env step (episode returns).
    """

    policy: Callable
    update: Callable
    add: Callable
    fill: Callable
    extras: Callable
    track: Callable


def explore(warmup: jax.Array, policy_action: jax.Array, key: jax.Array) -> jax.Array:
    """Uniform random actions in ``[-1, 1]`` while ``warmup``, else ``policy_action`` (``key``: the policy's)."""
    random_action = jax.random.uniform(key, policy_action.shape, minval=-1.0, maxval=1.0)
    return jnp.where(warmup, random_action, policy_action)


def run_updates(ready: jax.Array, update: Callable, nets: Any, buffer: Any, key: jax.Array, num_updates: int):
    """``num_updates`` x ``update(buffer, nets, key)`` when ``ready``, else ``nets`` unchanged and zero metrics;
    returns ``(nets, metrics averaged over the updates)``. The buffer stays out of the cond (module docstring)."""

    def do_updates(nets):
        return jax.lax.scan(lambda n, k: update(buffer, n, k), nets, jax.random.split(key, num_updates))

    shapes = jax.eval_shape(do_updates, nets)[1]

    def skip_updates(nets):
        return nets, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    nets, metrics = phase_cond(ready, do_updates, skip_updates, nets)
    return nets, jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)


def example_transition(obs_dim: int, action_dim: int, extras: Any = ()) -> Transition:
    """A zero transition of one env step: the replay buffer's example row."""
    o, a = jnp.zeros((obs_dim,), jnp.float32), jnp.zeros((action_dim,), jnp.float32)
    return Transition(o, a, jnp.zeros(()), o, jnp.zeros((), bool), jnp.zeros((), bool), extras)


def make_init(train_env, env_params, init_nets: Callable, num_net_keys: int, tracker: Any = ()) -> Callable:
    """``init(key) -> State``: ``key, *net_keys, env_key = split(key, num_net_keys + 2)``, then
    ``init_nets(*net_keys) -> (nets, buffer)`` and the env reset."""

    def init(key: jax.Array) -> State:
        key, *net_keys, env_key = jax.random.split(key, num_net_keys + 2)
        nets, buffer = init_nets(*net_keys)
        obs, env_state = train_env.reset(env_key, env_params)
        return State(nets, buffer, env_state, obs, tracker, key, jnp.zeros((), jnp.int32))

    return init


def make_step(train_env, env_params, hooks: Hooks, *, learning_starts: int, updates_per_step: int) -> Callable:
    """``step(state) -> (state, metrics)``: one env step in every env, then the updates (module docstring)."""

    def step(state: State):
        key, act_key, env_key, update_key = jax.random.split(state.key, 4)
        warmup = hooks.fill(state.buffer) < learning_starts
        action = explore(warmup, hooks.policy(state, state.obs, act_key), act_key)
        obs, env_state, reward, terminated, truncated, info = train_env.step(
            env_key, state.env_state, action, env_params
        )
        transition = Transition(
            state.obs, action, reward, info["final_observation"], terminated, truncated, hooks.extras(info)
        )
        buffer = hooks.add(state.buffer, transition)
        ready = hooks.fill(buffer) >= max(learning_starts, 1)
        nets, metrics = run_updates(ready, hooks.update, state.nets, buffer, update_key, updates_per_step)
        tracker, episode_metrics = hooks.track(state.tracker, info)
        metrics.update(episode_metrics)
        return State(nets, buffer, env_state, obs, tracker, key, state.iteration + 1), metrics

    return step
