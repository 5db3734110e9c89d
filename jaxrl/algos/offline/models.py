"""Ensembles of probabilistic dynamics models for offline model-based RL (MOPO, MOReL).

An ensemble of ``E`` Gaussian models ``p_e(s' - s, r | s, a) = N(mu_e(s, a), diag(sigma^2_e(s, a)))`` (PETS, MBPO,
MOPO), as one parameter pytree with a leading ``[E]`` axis (``jax.vmap`` of ``init``, like
:func:`jaxrl.nets.core.make_ensemble` does for Q). Each member is an MLP on the normalised input ``(s, a)`` whose
last layer gives the normalised mean and a raw log-variance, bounded softly as in PETS / MBPO:

    log var = max_lv - softplus(max_lv - raw);  log var = min_lv + softplus(log var - min_lv)

with ``max_lv`` / ``min_lv`` learned per output dimension (initialised to 0.5 and -10) and pulled together by
``logvar_bound_coef * (sum max_lv - sum min_lv)`` in the fitting loss. Inputs are normalised with the dataset's
mean and standard deviation, and targets ``x = [s' - s, r]`` likewise (:class:`Normalizer`, fitted once from the
data). :meth:`DynamicsEnsemble.predict` returns mean and log-variance in the data's own units; the Gaussian
NLL (:func:`jaxrl.losses.offline.gaussian_ensemble_dynamics_loss`) in those units differs from the normalised one
by the constant ``sum_d log std_d`` only, so its gradients are those of the normalised loss.

Elites (optional, ``num_elites < E``): the members with the lowest held-out mean squared error (in normalised
units) are the ones model rollouts sample from; :func:`select_elites`.

Model rollouts (:func:`rollout`) run under ``lax.scan``: at each step a member is drawn per row among the elites
and the next state and reward are sampled from its Gaussian (:func:`sample_step`). **Terminal function:** the
models do not predict episode ends; :mod:`jaxrl.algos.offline.model_based` ends a model trajectory where the env's
known rule (:mod:`jaxrl.envs.termination`: a hopper, walker or ant that falls) or a penalty's halting rule (MOReL's
unknown-state HALT) says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.algos import train_state as ts
from jaxrl.algos.offline.rollouts import Prediction, Rollout, rollout, sample_step  # noqa: F401 (re-exported)
from jaxrl.losses.offline import ensemble_disagreement, gaussian_ensemble_dynamics_loss
from jaxrl.nets.core import MLP

INIT_MAX_LOG_VAR = 0.5
INIT_MIN_LOG_VAR = -10.0


@struct.dataclass
class Normalizer:
    """Mean and standard deviation of the model's inputs ``[s, a]`` (``[O + A]``) and targets ``[s' - s, r]``
    (``[O + 1]``), from the dataset."""

    in_mean: jax.Array
    in_std: jax.Array
    out_mean: jax.Array
    out_std: jax.Array


def _masked_moments(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    w = mask[:, None]
    n = jnp.maximum(jnp.sum(mask), 1.0)
    mean = jnp.sum(x * w, axis=0) / n
    std = jnp.sqrt(jnp.sum(jnp.square(x - mean) * w, axis=0) / n)
    return mean, jnp.where(std < 1e-6, 1.0, std)  # a constant dimension is left unscaled


def fit_normalizer(
    observations: jax.Array,
    actions: jax.Array,
    rewards: jax.Array,
    next_observations: jax.Array,
    mask: jax.Array | None = None,
) -> Normalizer:
    """Statistics over the rows with ``mask > 0`` (all rows if None); a dimension with std < 1e-6 keeps scale 1."""
    mask = jnp.ones(rewards.shape, jnp.float32) if mask is None else (mask > 0).astype(jnp.float32)
    in_mean, in_std = _masked_moments(jnp.concatenate([observations, actions], -1), mask)
    out_mean, out_std = _masked_moments(jnp.concatenate([next_observations - observations, rewards[:, None]], -1), mask)
    return Normalizer(in_mean, in_std, out_mean, out_std)


class _GaussianMember(nn.Module):
    hidden: Sequence[int]
    activation: str
    out_dim: int

    @nn.compact
    def __call__(self, x):
        h = MLP(tuple(self.hidden), self.activation)(x)
        out = nn.Dense(2 * self.out_dim)(h)
        mean, raw = out[..., : self.out_dim], out[..., self.out_dim :]
        max_lv = self.param("max_log_var", nn.initializers.constant(INIT_MAX_LOG_VAR), (self.out_dim,))
        min_lv = self.param("min_log_var", nn.initializers.constant(INIT_MIN_LOG_VAR), (self.out_dim,))
        log_var = max_lv - jax.nn.softplus(max_lv - raw)
        log_var = min_lv + jax.nn.softplus(log_var - min_lv)
        return mean, log_var


class DynamicsEnsemble(NamedTuple):
    """Pure functions of an ensemble of ``num_members`` Gaussian dynamics models (params with a leading ``[E]``).

    * ``init(key) -> params``
    * ``predict(params, norm, obs [B, O], actions [B, A]) -> (mean, log_var)``, each ``[E, B, O + 1]``: the
      Gaussian over ``[s' - s, r]`` in the data's units
    * ``predict_member(params_e, norm, obs, actions)``: the same for one member's params (no ``[E]`` axis)
    * ``normalized_mean(params, norm, obs, actions) -> [E, B, O + 1]``: the mean in normalised target units
    """

    init: Callable
    predict: Callable
    predict_member: Callable
    normalized_mean: Callable
    num_members: int
    obs_dim: int
    action_dim: int


def make_dynamics(
    obs_dim: int,
    action_dim: int,
    *,
    hidden: Sequence[int] = (200, 200, 200),
    num_members: int = 7,
    activation: str = "silu",
) -> DynamicsEnsemble:
    """An ensemble of ``num_members`` Gaussian MLPs predicting ``[s' - s, r]`` (``obs_dim + 1`` outputs)."""
    module = _GaussianMember(tuple(hidden), activation, obs_dim + 1)

    def init(key):
        x = jnp.zeros((obs_dim + action_dim,), jnp.float32)
        return jax.vmap(lambda k: module.init(k, x)["params"])(jax.random.split(key, num_members))

    def raw(params_e, norm, obs, actions):
        x = (jnp.concatenate([obs, actions], -1) - norm.in_mean) / norm.in_std
        return module.apply({"params": params_e}, x)

    def predict_member(params_e, norm, obs, actions):
        mean_n, log_var_n = raw(params_e, norm, obs, actions)
        return mean_n * norm.out_std + norm.out_mean, log_var_n + 2.0 * jnp.log(norm.out_std)

    def predict(params, norm, obs, actions):
        return jax.vmap(lambda p: predict_member(p, norm, obs, actions))(params)

    def normalized_mean(params, norm, obs, actions):
        return jax.vmap(lambda p: raw(p, norm, obs, actions)[0])(params)

    return DynamicsEnsemble(init, predict, predict_member, normalized_mean, num_members, obs_dim, action_dim)


@struct.dataclass
class ModelState:
    """What the model phase learns: the ensemble's params and optimiser state, the data's normalisation, the
    held-out error of each member (``val_mse [E]``), the elites (``[K]`` member indices) and the largest
    next-state disagreement the ensemble shows on the dataset (MOReL's threshold scale)."""

    params: Any
    opt_state: Any
    norm: Normalizer
    val_mse: jax.Array
    elites: jax.Array
    max_disagreement: jax.Array


def init_model(
    ensemble: DynamicsEnsemble, tx: optax.GradientTransformation, key: jax.Array, norm: Normalizer, num_elites: int
) -> ModelState:
    params = ensemble.init(key)
    return ModelState(
        params,
        tx.init(params),
        norm,
        jnp.zeros((ensemble.num_members,), jnp.float32),
        jnp.arange(num_elites, dtype=jnp.int32),
        jnp.zeros((), jnp.float32),
    )


def _bound_penalty(params) -> jax.Array:
    return jnp.sum(params["max_log_var"]) - jnp.sum(params["min_log_var"])


def model_loss(
    params, norm: Normalizer, batch, *, ensemble: DynamicsEnsemble, logvar_bound_coef
) -> tuple[jax.Array, dict]:
    """``sum_e mean_b NLL_e([s' - s, r])`` (:func:`~jaxrl.losses.offline.gaussian_ensemble_dynamics_loss`) plus
    ``logvar_bound_coef * sum_e (sum max_lv_e - sum min_lv_e)`` (PETS / MBPO's log-variance bound term)."""
    nll, metrics = gaussian_ensemble_dynamics_loss(
        params, batch, dynamics_apply=lambda p, o, a: ensemble.predict_member(p, norm, o, a)
    )
    loss = nll + logvar_bound_coef * _bound_penalty(params)
    return loss, dict(metrics, model_loss=loss)


def fit_step(
    ensemble: DynamicsEnsemble, tx: optax.GradientTransformation, model: ModelState, batch, *, logvar_bound_coef
) -> tuple[ModelState, dict]:
    """One gradient step of :func:`model_loss` on ``batch`` (a :class:`~jaxrl.data.types.Transition` ``[B, ...]``:
    ``obs``, ``action``, ``reward``, ``next_obs``)."""
    grads, metrics = jax.grad(model_loss, has_aux=True)(
        model.params, model.norm, batch, ensemble=ensemble, logvar_bound_coef=logvar_bound_coef
    )
    record = ts.apply_gradient(tx, ts.TrainState(model.params, model.opt_state), grads)
    return dataclasses.replace(model, params=record.params, opt_state=record.opt_state), metrics


def member_mse(
    ensemble: DynamicsEnsemble,
    params,
    norm: Normalizer,
    obs,
    actions,
    rewards,
    next_obs,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Each member's mean squared error of its mean ``[s' - s, r]`` in normalised units, ``[E]`` (rows weighted
    by ``weights [B]``, e.g. a held-out mask)."""
    target = (jnp.concatenate([next_obs - obs, rewards[:, None]], -1) - norm.out_mean) / norm.out_std
    err = jnp.mean(jnp.square(ensemble.normalized_mean(params, norm, obs, actions) - target), axis=-1)  # [E, B]
    if weights is None:
        return jnp.mean(err, axis=-1)
    return jnp.sum(err * weights, axis=-1) / jnp.maximum(jnp.sum(weights), 1.0)


def select_elites(val_mse: jax.Array, num_elites: int) -> jax.Array:
    """Indices ``[K]`` of the ``num_elites`` members with the lowest validation error (best first)."""
    return jax.lax.top_k(-val_mse, num_elites)[1].astype(jnp.int32)


def max_disagreement(
    ensemble: DynamicsEnsemble, params, norm: Normalizer, obs, actions, weights: jax.Array, chunk: int = 4096
) -> jax.Array:
    """``max`` over rows with ``weights > 0`` of MOReL's ``max_{i,j} ||f_i(s, a) - f_j(s, a)||`` on the predicted
    next states (means), in chunks of ``chunk`` rows."""

    def per_row(o, a):
        mean, _ = ensemble.predict(params, norm, o[None], a[None])
        return ensemble_disagreement(mean[..., :-1])[0]

    d = jax.lax.map(lambda xs: per_row(*xs), (obs, actions), batch_size=min(chunk, obs.shape[0]))
    return jnp.max(jnp.where(weights > 0, d, 0.0))
