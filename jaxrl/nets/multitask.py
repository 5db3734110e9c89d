"""Multi-task network architectures: Soft Modularization, CARE, MOORE and PaCo, as ``(init, apply)`` pairs.

Every architecture is a :class:`TaskNetwork`: ``apply(params, x, task_id) -> y [..., features]`` for an input
``x [..., I]`` (an observation with its context, or ``concat(obs, action)`` for a critic) and a task index
``task_id`` (int, scalar or ``[...]``). :func:`make_task_network` wraps it into a :class:`~jaxrl.nets.core.Network`;
``probe=True`` also returns what the tests and monitoring look at (routing weights, attention, orthonormal expert
representations, compositional vectors). ``"mlp"`` is the plain shared MLP (MT-SAC's network), for comparison.

The four architectures share one building block, :class:`Stacked`: ``n`` dense layers of the same shape held as one
``[n, I, O]`` kernel (the modules of a Soft Modularization layer, the experts of CARE and MOORE, PaCo's parameter
sets), so ``n`` small networks run as one batched matmul.

* **Soft Modularization** (Yang et al. 2020): a base network of ``L = len(hidden)`` layers of ``m`` modules and a
  routing network that decides, per sample, how much each module of layer ``l`` feeds each module of layer ``l+1``.
  With the state embedding ``f(s)`` and the task embedding ``h(z_tau)`` (a learned row per task)::

      u^1 = f(s) * h(z_tau),          p^l = W_d^l relu(u^l),        u^{l+1} = (W_u^l p^l) * f(s) * h(z_tau)
      P^l[j, i] = softmax_i(p^l[j, i])                           (a distribution over sources i, per target j)
      g^1_j = act(W^1_j f(s)),        g^{l+1}_j = act(W^{l+1}_j sum_i P^l[j, i] g^l_i),        out = mean_j g^L_j

  Why: tasks share modules but each task (and state) picks its own soft path through them, so conflicting tasks
  can use different modules without a network per task.
* **CARE** (Sodhani et al. 2021): ``k`` encoders ``E_j(x)`` mixed by attention computed from the task's context
  embedding ``c_tau`` (a row of a given ``[K, C]`` matrix: one-hot, a hand-written descriptor, or a user's vectors;
  the paper embeds task descriptions with a pretrained language model)::

      z_tau = act(W_c c_tau + b_c),   alpha = softmax(W_a z_tau + b_a) in Delta^k,
      h = MLP(concat(sum_j alpha_j E_j(x), z_tau))

  Why: the metadata says which shared skills (encoders) a task needs; tasks with similar contexts share encoders.
* **MOORE** (Hendawy et al. 2024): ``k`` experts ``h_j(x) in R^d`` whose representations are made orthonormal per
  sample by Gram-Schmidt, then combined by task-specific weights ``w_tau in R^k``::

      u_1 = h_1 / ||h_1||,   u_j = (h_j - sum_{i<j} <h_j, u_i> u_i) / ||...||,     v = sum_j w_tau,j u_j = U^T w_tau

  (``d >= k``; the projection is applied twice, "twice is enough", so orthonormality holds to float tolerance.)
  Why: orthogonal experts span ``k`` distinct directions of the representation space, so the shared
  representation stays diverse instead of collapsing to what the dominant tasks need.
* **PaCo** (Sun et al. 2022): a parameter set ``Phi = [phi_1 .. phi_k]`` of ``k`` whole networks and a compositional
  vector ``w_tau in R^k`` per task; task ``tau`` runs the network with parameters ``theta_tau = Phi w_tau``. Every
  layer is linear in its parameters, so ``x (sum_j w_j W_j) + sum_j w_j b_j = sum_j w_j (x W_j + b_j)`` and the
  network never forms ``theta_tau`` (:func:`paco_task_params` does, for checks). Diverging tasks are handled by
  loss maskout (a task whose loss exceeds a threshold is left out of the update) and by :func:`paco_reset`:
  the diverged task's ``w_tau`` becomes a random convex combination of the healthy tasks' vectors, the others are
  untouched. Why: tasks share ``Phi`` but move only their own ``w_tau``, and one diverging task can be restarted
  without disturbing the others.

Choices made here (sizes from ``hidden``): Soft Modularization's state embedding is one layer of ``hidden[0]``
and its base layer ``l`` has ``m`` modules of width ``hidden[l]``; CARE's encoders are one layer of ``hidden[0]``
and its trunk is ``hidden[1:]``; MOORE's experts are MLPs of ``hidden`` (``d = hidden[-1]``); PaCo's ``k`` networks
are MLPs of ``hidden`` plus the output layer, ``w_tau`` initialised as a random convex combination. Every network
sees the whole input, including the context omega the multi-task env appends (the papers feed the state alone
to the shared parts); the task enters through ``task_id`` as the papers describe.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.config import ConfigError, close_matches
from jaxrl.nets.core import ACTIVATIONS, MLP, Network, orthogonal_dense

__all__ = [
    "NETWORKS",
    "ArchSpec",
    "check_arch",
    "check_contexts",
    "Stacked",
    "fan_out",
    "TaskHeads",
    "TaskNetwork",
    "make_task_network",
    "context_rows",
    "gram_schmidt",
    "make_task_tanh_gaussian",
    "make_task_q",
    "make_task_actor_critic",
    "maskout",
    "paco_maskout",
    "paco_task_params",
    "paco_reset",
]

NETWORKS = ("mlp", "soft_modularization", "care", "moore", "paco")
_SQRT2 = float(np.sqrt(2.0))


class ArchSpec(NamedTuple):
    """What a :class:`TaskNetwork` is built from (hashable: ``contexts`` is a tuple of rows)."""

    name: str  # one of NETWORKS
    hidden: tuple[int, ...]
    activation: str
    num_tasks: int
    num_experts: int = 4  # CARE encoders, MOORE experts, PaCo parameter sets
    num_modules: int = 2  # Soft Modularization: modules per base layer
    contexts: tuple[tuple[float, ...], ...] | None = None  # CARE: [K, C]


def check_arch(spec: ArchSpec, where: str = "network") -> None:
    """A clear error for an unknown name or sizes the architecture cannot use (before anything compiles)."""
    if spec.name not in NETWORKS:
        hint = close_matches(spec.name, NETWORKS)
        raise ConfigError(
            f"{where}={spec.name!r} is not a network: choose one of {list(NETWORKS)}"
            + (f"; did you mean {', '.join(map(repr, hint))}?" if hint else "")
        )
    for field in ("num_experts", "num_modules", "num_tasks"):
        if getattr(spec, field) < 1:
            raise ConfigError(f"{where}: {field}={getattr(spec, field)} must be >= 1")
    if not spec.hidden and spec.name != "mlp":
        raise ConfigError(f"{where}={spec.name!r} needs at least one hidden layer (hidden=())")
    if spec.name == "soft_modularization" and len(spec.hidden) < 2:
        raise ConfigError(
            f"{where}='soft_modularization' routes between base layers: hidden={spec.hidden} needs >= 2 layers"
        )
    if spec.name == "moore" and spec.hidden[-1] < spec.num_experts:
        raise ConfigError(
            f"{where}='moore' orthonormalises num_experts={spec.num_experts} vectors of width hidden[-1]="
            f"{spec.hidden[-1]}: needs hidden[-1] >= num_experts"
        )
    if spec.name == "care" and spec.contexts is not None:
        check_contexts(spec.contexts, spec.num_tasks, f"{where}: CARE's context embedding")


def check_contexts(contexts: Any, num_tasks: int, what: str) -> np.ndarray:
    """``contexts`` as a float32 ``[K, C]`` array (``C >= 1``, finite), else a ``ConfigError`` naming the shape."""
    if contexts is None:
        raise ConfigError(f"{what} is missing: give a [K={num_tasks}, C] matrix, one row per task")
    arr = np.asarray(contexts, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != num_tasks or arr.shape[1] < 1:
        raise ConfigError(
            f"{what} has shape {list(arr.shape)}: it must be [K={num_tasks}, C] with C >= 1 (one row per task)"
        )
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{what} has non-finite entries")
    return arr


def fan_out(x: jax.Array, n: int) -> jax.Array:
    """``[..., I] -> [..., n, I]``: one input shared by the ``n`` layers of a :class:`Stacked`."""
    return jnp.broadcast_to(x[..., None, :], (*x.shape[:-1], n, x.shape[-1]))


def stacked_orthogonal(scale: float):
    """An initializer of ``[n, I, O]`` kernels: each of the ``n`` layers orthogonal on its own (gain ``scale``)."""
    init = nn.initializers.orthogonal(scale)
    return lambda key, shape: jax.vmap(lambda k: init(k, shape[1:]))(jax.random.split(key, shape[0]))


class Stacked(nn.Module):
    """``n`` dense layers ``[n, I, O]``: ``x [..., n, I] -> [..., n, O]`` (slice ``j`` through layer ``j``; a shared
    input goes through :func:`fan_out` first). Each layer's kernel is orthogonal-initialised on its own."""

    n: int
    features: int
    scale: float = _SQRT2

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", stacked_orthogonal(self.scale), (self.n, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.n, self.features))
        return jnp.einsum("...ni,nio->...no", x, kernel) + bias


class TaskHeads(nn.Module):
    """``num_heads`` dense output layers ``[K, H, out]``; sample ``b`` uses head ``task_id[b]`` (one gather)."""

    num_heads: int
    features: int
    scale: float

    @nn.compact
    def __call__(self, h, task_id):
        kernel = self.param("kernel", stacked_orthogonal(self.scale), (self.num_heads, h.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.num_heads, self.features))
        task_id = jnp.broadcast_to(jnp.asarray(task_id, jnp.int32), h.shape[:-1])
        return jnp.einsum("...h,...hf->...f", h, kernel[task_id]) + bias[task_id]


def task_output(h, task_id, num_heads: int, features: int, scale: float, heads: type[TaskHeads] = TaskHeads):
    """The output layer: one dense layer, or with ``num_heads > 1`` one per task (``heads``: the class, whose name
    flax puts in the parameter path)."""
    if num_heads == 1:
        return orthogonal_dense(features, scale)(h)
    return heads(num_heads, features, scale)(h, task_id)


class _SoftModular(nn.Module):
    spec: ArchSpec

    @nn.compact
    def __call__(self, x, task_id):
        s, act = self.spec, ACTIVATIONS[self.spec.activation]
        m, width = s.num_modules, s.hidden[0]
        f = act(orthogonal_dense(width)(x))  # state embedding f(s)
        z = nn.Embed(s.num_tasks, width, embedding_init=nn.initializers.normal(1.0))(task_id)  # h(z_tau)
        g = f * z
        routes: list[jax.Array] = []
        u, logits = g, None
        for _ in range(len(s.hidden) - 1):
            if logits is not None:  # u^{l+1} = (W_u^l p^l) * f(s) * h(z_tau)
                u = orthogonal_dense(width, 1.0)(logits.reshape(*u.shape[:-1], m * m)) * g
            logits = orthogonal_dense(m * m, 1.0)(nn.relu(u)).reshape(*u.shape[:-1], m, m)  # p^l[j, i]
            routes.append(jax.nn.softmax(logits, axis=-1))
        self.sow("intermediates", "routing", jnp.stack(routes, axis=-3))  # [..., L-1, m, m]
        h = act(Stacked(m, s.hidden[0])(fan_out(f, m)))  # [..., m, d_1]
        for probs, w in zip(routes, s.hidden[1:]):
            h = act(Stacked(m, w)(jnp.einsum("...ji,...id->...jd", probs, h)))
        return jnp.mean(h, axis=-2)


class _CARE(nn.Module):
    spec: ArchSpec

    @nn.compact
    def __call__(self, x, task_id):
        s, act = self.spec, ACTIVATIONS[self.spec.activation]
        context = jnp.asarray(s.contexts, jnp.float32)[task_id]  # c_tau [..., C]
        z = act(orthogonal_dense(s.hidden[0])(context))  # context encoder z_tau
        alpha = jax.nn.softmax(orthogonal_dense(s.num_experts, 1.0)(z), axis=-1)  # [..., k]
        self.sow("intermediates", "attention", alpha)
        encoders = act(Stacked(s.num_experts, s.hidden[0])(fan_out(x, s.num_experts)))  # E_j(x) [..., k, d]
        mixed = jnp.einsum("...k,...kd->...d", alpha, encoders)
        return MLP(tuple(s.hidden[1:]), s.activation)(jnp.concatenate([mixed, z], axis=-1))


def gram_schmidt(v: jax.Array) -> jax.Array:
    """Rows of ``v [..., k, d]`` made orthonormal in order (Gram-Schmidt with the projection applied twice, so the
    result is orthonormal to float tolerance even for nearly dependent rows; ``d >= k``). A row whose remainder has
    norm below ``1e-6`` (e.g. an expert of dead ReLUs, exactly zero) is scaled by ``1e6`` instead of ``1 / norm``:
    it stays finite, and so does its gradient."""
    out: list[jax.Array] = []
    for j in range(v.shape[-2]):
        u = v[..., j, :]
        for _ in range(2):
            for q in out:
                u = u - jnp.sum(u * q, axis=-1, keepdims=True) * q
        u = u * jax.lax.rsqrt(jnp.maximum(jnp.sum(u * u, axis=-1, keepdims=True), 1e-12))
        out.append(u)
    return jnp.stack(out, axis=-2)


class _MOORE(nn.Module):
    spec: ArchSpec

    @nn.compact
    def __call__(self, x, task_id):
        s, act = self.spec, ACTIVATIONS[self.spec.activation]
        h = fan_out(x, s.num_experts)
        for width in s.hidden[:-1]:
            h = act(Stacked(s.num_experts, width)(h))
        experts = Stacked(s.num_experts, s.hidden[-1])(h)  # h_j(x) [..., k, d]
        basis = gram_schmidt(experts)  # U [..., k, d], orthonormal rows
        weights = nn.Embed(s.num_tasks, s.num_experts)(task_id)  # w_tau [..., k]
        self.sow("intermediates", "experts", basis)
        self.sow("intermediates", "weights", weights)
        return jnp.einsum("...k,...kd->...d", weights, basis)


def _paco_w_init(key, shape, dtype=jnp.float32):
    """``w_tau``: a random convex combination of the ``k`` parameter sets per task (rows sum to 1)."""
    w = jax.random.uniform(key, shape, dtype, 0.05, 1.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)


class _PaCo(nn.Module):
    spec: ArchSpec
    features: int
    scale: float
    num_heads: int

    @nn.compact
    def __call__(self, x, task_id):
        s, act = self.spec, ACTIVATIONS[self.spec.activation]
        w = self.param("paco_w", _paco_w_init, (s.num_tasks, s.num_experts))[task_id]  # w_tau [..., k]
        self.sow("intermediates", "weights", w)
        compose = lambda y: jnp.einsum("...k,...ko->...o", w, y)  # sum_j w_j (x W_j + b_j)
        h = x
        for i, width in enumerate(s.hidden):
            h = act(compose(Stacked(s.num_experts, width, name=f"layer_{i}")(fan_out(h, s.num_experts))))
        if self.num_heads > 1:
            return TaskHeads(self.num_heads, self.features, self.scale)(h, task_id)
        last = Stacked(s.num_experts, self.features, self.scale, name=f"layer_{len(s.hidden)}")
        return compose(last(fan_out(h, s.num_experts)))


_TORSOS = {"soft_modularization": _SoftModular, "care": _CARE, "moore": _MOORE}


class TaskNetwork(nn.Module):
    """The architecture ``spec.name`` with a linear output of ``features`` (orthogonal init of ``scale``; one head,
    or ``num_heads`` heads indexed by ``task_id``): ``(x [..., I], task_id) -> [..., features]``."""

    spec: ArchSpec
    features: int
    scale: float = 1.0
    num_heads: int = 1

    @nn.compact
    def __call__(self, x, task_id):
        task_id = jnp.broadcast_to(jnp.asarray(task_id, jnp.int32), x.shape[:-1])
        if self.spec.name == "paco":
            return _PaCo(self.spec, self.features, self.scale, self.num_heads)(x, task_id)
        if self.spec.name == "mlp":
            h = MLP(tuple(self.spec.hidden), self.spec.activation)(x)
        else:
            h = _TORSOS[self.spec.name](self.spec)(x, task_id)
        return task_output(h, task_id, self.num_heads, self.features, self.scale)


def make_task_network(
    spec: ArchSpec, features: int, scale: float = 1.0, num_heads: int = 1, *, probe: bool = False
) -> Network:
    """``init(key, x, task_id) -> params``; ``apply(params, x, task_id) -> y [..., features]``, or with ``probe``
    ``(y, inside)``: ``inside`` holds ``routing [..., L-1, m, m]`` (Soft Modularization), ``attention [..., k]``
    (CARE), ``experts [..., k, d]`` (orthonormalised) and ``weights [..., k]`` (MOORE), ``weights`` (PaCo's
    ``w_tau``)."""
    check_arch(spec)
    if spec.name == "care":
        check_contexts(spec.contexts, spec.num_tasks, "CARE's context embedding")
    module = TaskNetwork(spec, features, scale, num_heads)

    def init(key, x, task_id):
        return module.init(key, x, task_id)["params"]

    def apply(params, x, task_id):
        if not probe:
            return module.apply({"params": params}, x, task_id)
        y, state = module.apply({"params": params}, x, task_id, mutable=["intermediates"])
        inside = jax.tree_util.tree_leaves_with_path(state["intermediates"], is_leaf=lambda v: isinstance(v, tuple))
        return y, {path[-1].key: value[0] for path, value in inside}

    return Network(init, apply)


class _TaskGaussian(nn.Module):
    """PPO's diagonal Gaussian on an architecture: the network gives the mean, ``log_std`` is one free vector."""

    spec: ArchSpec
    action_dim: int

    @nn.compact
    def __call__(self, x, task_id):
        mean = TaskNetwork(self.spec, self.action_dim, 0.01)(x, task_id)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.clip(jnp.broadcast_to(log_std, mean.shape), -20.0, 2.0)


def make_task_tanh_gaussian(spec: ArchSpec, action_dim: int, num_heads: int = 1) -> Network:
    """SAC's actor torso: ``apply(params, obs, task_id) -> (mean, log_std)`` (pre-tanh; ``log_std`` in [-5, 2])."""
    net = make_task_network(spec, 2 * action_dim, 0.01, num_heads)
    split = lambda y: (y[..., :action_dim], jnp.clip(y[..., action_dim:], -5.0, 2.0))
    return Network(net.init, lambda params, obs, task_id: split(net.apply(params, obs, task_id)))


def make_task_q(spec: ArchSpec, num_heads: int = 1) -> Network:
    """``apply(params, obs, action, task_id) -> Q [...]``: the architecture on ``concat(obs, action)``."""
    net = make_task_network(spec, 1, 1.0, num_heads)
    joint = lambda obs, action: jnp.concatenate([obs, action], axis=-1)
    return Network(
        lambda key, obs, action, task_id: net.init(key, joint(obs, action), task_id),
        lambda params, obs, action, task_id: net.apply(params, joint(obs, action), task_id)[..., 0],
    )


def make_task_actor_critic(spec: ArchSpec, num_actions: int, discrete: bool) -> tuple[Network, Network]:
    """PPO's pair: ``policy.apply(params, x, task_id)`` -> ``distrax.Categorical`` or a diagonal Gaussian (free
    ``log_std``), ``value.apply(params, x, task_id) -> V [...]``."""
    if discrete:
        logits = make_task_network(spec, num_actions, 0.01)
        policy = Network(logits.init, lambda p, x, t: distrax.Categorical(logits=logits.apply(p, x, t)))
    else:
        module = _TaskGaussian(spec, num_actions)
        gauss = lambda ms: distrax.MultivariateNormalDiag(ms[0], jnp.exp(ms[1]))
        policy = Network(
            lambda key, x, t: module.init(key, x, t)["params"],
            lambda p, x, t: gauss(module.apply({"params": p}, x, t)),
        )
    value = make_task_network(spec, 1, 1.0)
    return policy, Network(value.init, lambda p, x, t: value.apply(p, x, t)[..., 0])


def maskout(loss: jax.Array, keep: jax.Array) -> jax.Array:
    """PaCo's loss maskout: ``keep * loss`` with ``keep`` (bool or {0, 1}) not differentiated."""
    return jax.lax.stop_gradient(jnp.asarray(keep, loss.dtype)) * loss


def paco_maskout(critic_loss, actor_loss, threshold):
    """PaCo's loss maskout (Sun et al. 2022) for per-task losses ``loss(params, *args) -> (L_k, metrics)``: the
    critic's ``L_k`` counts while ``L_k <= threshold`` (a diverging task leaves the update); the actor's takes that
    mask first, ``actor(params, keep, *args)``. Masks are not differentiated; metrics keep the unmasked losses."""

    def critic(params, *args):
        loss, metrics = critic_loss(params, *args)
        return maskout(loss, loss <= threshold), metrics

    def actor(params, keep, *args):
        loss, metrics = actor_loss(params, *args)
        return maskout(loss, keep), metrics

    return critic, actor


def _is_paco_w(path) -> bool:
    return bool(path) and getattr(path[-1], "key", None) == "paco_w"


def _find_paco(params: Any) -> Any:
    """The sub-dict of ``params`` that holds ``paco_w`` (a PaCo network nested in other modules)."""
    if "paco_w" in params:
        return params
    for value in params.values():
        if isinstance(value, dict) or hasattr(value, "items"):
            found = _find_paco(value)
            if found is not None:
                return found
    return None


def paco_task_params(params: Any, task_id: int) -> dict[str, dict[str, jax.Array]]:
    """``theta_tau = Phi w_tau`` per layer of a PaCo network's ``params`` (unbatched): ``{layer: {"kernel": sum_j
    w_tau,j W_j, "bias": sum_j w_tau,j b_j}}`` for every compositional layer."""
    paco = _find_paco(params)
    if paco is None:
        raise ValueError("paco_task_params: these params hold no PaCo network (no 'paco_w' entry)")
    w = paco["paco_w"][task_id]
    return {
        name: {leaf: jnp.tensordot(w, value, axes=1) for leaf, value in layer.items()}
        for name, layer in paco.items()
        if name.startswith("layer_")
    }


def paco_reset(params: Any, diverged: jax.Array, key: jax.Array) -> Any:
    """PaCo's reset of diverged tasks: every ``paco_w`` leaf ``[..., K, k]`` in ``params`` (an ensemble adds leading
    axes) gets, for each task with ``diverged[tau]`` (bool ``[K]``), a fresh ``w_tau = sum_j c_j w_j`` over the
    healthy tasks ``j`` with random convex weights ``c`` (uniform, normalised); if every task diverged, fresh
    draws of the initialiser. Healthy tasks' vectors and every other parameter are returned untouched. Pure and
    jittable."""
    diverged = jnp.asarray(diverged, bool)
    healthy = ~diverged
    leaves = jax.tree_util.tree_leaves_with_path(params)
    keys = dict(zip((jax.tree_util.keystr(p) for p, _ in leaves), jax.random.split(key, max(len(leaves), 1))))

    def reset(path, w):
        if not _is_paco_w(path):
            return w
        k_mix, k_init = jax.random.split(keys[jax.tree_util.keystr(path)])
        mix = jax.random.uniform(k_mix, (*w.shape[:-1], w.shape[-2]), w.dtype) * healthy  # [..., K, K]
        mix = mix / jnp.maximum(jnp.sum(mix, axis=-1, keepdims=True), 1e-12)
        fresh = jnp.where(jnp.any(healthy), jnp.einsum("...tj,...jk->...tk", mix, w), _paco_w_init(k_init, w.shape))
        return jnp.where(diverged[:, None], fresh, w)

    return jax.tree_util.tree_map_with_path(reset, params)


def context_rows(contexts: Any) -> tuple[tuple[float, ...], ...]:
    """A ``[K, C]`` array as a hashable tuple of rows (for :class:`ArchSpec`)."""
    return tuple(tuple(float(v) for v in row) for row in np.asarray(contexts, np.float32))
