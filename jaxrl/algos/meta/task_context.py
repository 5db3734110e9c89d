"""Task data of a context-based meta-learner (PEARL): per-task replay buffers, the tasks' contexts (rows
``c = (s, a, r, s')`` of their latest prior-policy episodes), the context phase that refills both, meta-batches,
and the meta-test trial whose context grows episode by episode.

The buffers of all training tasks are one buffer state whose every leaf has a leading task axis
``[num_tasks, ...]``, so adding to and sampling from several tasks is one vmapped call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.algos.meta.common import num_tasks
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.losses.pearl import sample_latent


def context_features(tr: Transition) -> jax.Array:
    """The context row ``c = (s, a, r, s')`` of each transition (raw reward, the policy's action)."""
    return jnp.concatenate([tr.obs, tr.action, tr.reward[..., None], tr.next_obs], axis=-1)


def init_buffers(example: Any, capacity: int, num_tasks: int) -> replay.ReplayState:
    """``num_tasks`` empty buffers of ``capacity`` transitions shaped like ``example``."""
    buffer = replay.init(example, capacity)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_tasks, *x.shape)), buffer)


def add_to_tasks(buffers: replay.ReplayState, idx: jax.Array, episodes: Any) -> replay.ReplayState:
    """Add ``episodes`` (leaves ``[len(idx), episodes, horizon, ...]``) to the buffers of the distinct tasks
    ``idx``."""
    flat = jax.tree.map(lambda x: x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]), episodes)
    chosen = jax.vmap(replay.add)(jax.tree.map(lambda x: x[idx], buffers), flat)
    return jax.tree.map(lambda full, part: full.at[idx].set(part), buffers, chosen)


def sample_rows(key: jax.Array, data: Any, tasks: jax.Array, shape: tuple[int, ...], sizes: Any) -> Any:
    """``data[t, r]`` for each task ``t`` of ``tasks [T]``: rows ``r [T, *shape]`` uniform below ``sizes`` (the
    number of valid rows: an int, or ``[T, 1, ...]`` per task)."""
    rows = jax.random.randint(key, (tasks.shape[0], *shape), 0, sizes)
    at = tasks.reshape(-1, *(1,) * len(shape))
    return jax.tree.map(lambda x: x[at, rows], data)


def meta_batch(cfg: Any, buffers: replay.ReplayState, context: jax.Array, *keys: jax.Array):
    """``cfg.meta_batch`` tasks drawn with replacement: per task ``cfg.batch_size`` replay transitions
    ``[M, B, ...]`` and ``cfg.context_batch_size`` rows of its context ``[M, C, ctx_dim]``; ``keys``: for the
    tasks, the transitions and the context rows."""
    task_key, row_key, ctx_key = keys
    task_idx = jax.random.randint(task_key, (cfg.meta_batch,), 0, buffers.size.shape[0])
    filled = jnp.maximum(buffers.size[task_idx], 1)[:, None]
    batch = sample_rows(row_key, buffers.data, task_idx, (cfg.batch_size,), filled)
    return batch, sample_rows(ctx_key, context, task_idx, (cfg.context_batch_size,), context.shape[1])


def context_phase(cfg: Any, run: Callable, infer: Callable, key: jax.Array, n: int):
    """Collection on ``n`` tasks: ``cfg.prior_episodes`` episodes each with ``z ~ N(0, I)`` -- their transitions
    are the tasks' new context ``[n, prior_episodes * horizon, ctx_dim]`` -- then ``cfg.posterior_episodes`` with
    ``z ~ q(z | c)``, ``c`` = ``cfg.context_batch_size`` rows of that context. ``run(z [n, e, latent_dim], keys
    [n, e]) -> (Transition, alive)`` (leaves ``[n, e, horizon, ...]``), ``infer(c) -> (mu, var)``. Returns the
    episodes ``[n, prior_episodes + posterior_episodes, horizon, ...]``, the context and the mean returns."""
    n_prior, n_post = cfg.prior_episodes, cfg.posterior_episodes
    prior_key, post_key, z_key, ctx_key, post_z_key = jax.random.split(key, 5)
    z_prior = jax.random.normal(z_key, (n, n_prior, cfg.latent_dim))
    prior, prior_alive = run(z_prior, jax.random.split(prior_key, (n, n_prior)))
    features = context_features(prior)
    context = features.reshape(n, -1, features.shape[-1])
    data, metrics = prior, {"prior_return": jnp.mean(jnp.sum(prior.reward * prior_alive, -1))}
    if n_post:
        c = sample_rows(ctx_key, context, jnp.arange(n), (n_post, cfg.context_batch_size), context.shape[1])
        z_post = sample_latent(post_z_key, *infer(c))
        post, post_alive = run(z_post, jax.random.split(post_key, (n, n_post)))
        data = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), prior, post)
        metrics["posterior_return"] = jnp.mean(jnp.sum(post.reward * post_alive, -1))
    return data, context, metrics


def growing_context_trials(
    episode: Callable, tasks: Any, key: jax.Array, num_trials: int, num_episodes: int, horizon: int, context_dim: int
) -> jax.Array:
    """Meta-test of a context-based learner: on every task of ``tasks [K]``, ``num_trials`` independent trials of
    ``num_episodes`` episodes ``episode(task, context, mask, key) -> (Transition, alive)``, each reading the context
    rows of the trial's earlier episodes (``mask`` keeps them: none for the first). Returns the episode returns
    ``[K, num_trials, num_episodes]``."""
    n = num_episodes * horizon

    def trial(task, key):
        def body(carry, xs):
            (ctx, mask), (e, k) = carry, xs
            tr, alive = episode(task, ctx, mask, k)
            ctx = jax.lax.dynamic_update_slice(ctx, context_features(tr), (e * horizon, 0))
            mask = jax.lax.dynamic_update_slice(mask, alive, (e * horizon,))
            return (ctx, mask), jnp.sum(tr.reward * alive)

        carry0 = (jnp.zeros((n, context_dim), jnp.float32), jnp.zeros((n,), jnp.float32))
        return jax.lax.scan(body, carry0, (jnp.arange(num_episodes), jax.random.split(key, num_episodes)))[1]

    keys = jax.random.split(key, (num_tasks(tasks), num_trials))
    return jax.vmap(lambda task, ks: jax.vmap(trial, in_axes=(None, 0))(task, ks))(tasks, keys)
