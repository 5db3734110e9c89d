"""Minimal reproducer of the XLA:CPU stall (jax and optax only, no jaxrl), for an upstream report.

Three vmapped IQL-shaped learners (three 256x256 MLPs, Adam, expectile and advantage-weighted losses on a
12,000-row random dataset) train in a scan of 100 updates per call, called 200 times, the way jaxrl's run loop
calls its compiled chunk. On jaxlib 0.10.2 (2-core x86_64 CPU) the process may stop for good inside a call: the
main thread waits in ``BlockUntilReady`` and every XLA/Eigen worker waits for work (0% CPU).

    python benchmarks/repro_xla_cpu_stall.py          # prints one line per 20 calls; exits 0 when done
    python benchmarks/stall_check.py --python PYTHON --program minimal --runs 10    # counts stalls
"""

import sys
import time

import jax
import jax.numpy as jnp
import optax

RUNS, UPDATES, CALLS, BATCH, ROWS, OBS, ACT, HIDDEN = 3, 100, 200, 256, 12_000, 3, 1, 256


def mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) / jnp.sqrt(m), jnp.zeros(n)) for k, m, n in zip(keys, sizes, sizes[1:])]


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


optimizer = optax.adam(3e-4)


def init(key):
    ka, kq, kv, kd = jax.random.split(key, 4)
    params = {"actor": mlp_init(ka, [OBS, HIDDEN, HIDDEN, ACT]),
              "q": mlp_init(kq, [OBS + ACT, HIDDEN, HIDDEN, 1]),
              "v": mlp_init(kv, [OBS, HIDDEN, HIDDEN, 1])}
    k1, k2, k3 = jax.random.split(kd, 3)
    data = {"obs": jax.random.normal(k1, (ROWS, OBS)), "act": jnp.tanh(jax.random.normal(k2, (ROWS, ACT))),
            "rew": jax.random.normal(k3, (ROWS,)), "next_obs": jax.random.normal(k1, (ROWS, OBS))}
    return params, optimizer.init(params), params["q"], data, key


def loss(params, target_q, batch):
    q = mlp(params["q"], jnp.concatenate([batch["obs"], batch["act"]], -1))[:, 0]
    v = mlp(params["v"], batch["obs"])[:, 0]
    tq = jax.lax.stop_gradient(mlp(target_q, jnp.concatenate([batch["obs"], batch["act"]], -1))[:, 0])
    diff = tq - v
    value_loss = jnp.mean(jnp.abs(0.7 - (diff < 0)) * diff ** 2)  # expectile 0.7
    next_v = jax.lax.stop_gradient(mlp(params["v"], batch["next_obs"])[:, 0])
    critic_loss = jnp.mean((q - (batch["rew"] + 0.99 * next_v)) ** 2)
    weight = jax.lax.stop_gradient(jnp.minimum(jnp.exp(3.0 * diff), 100.0))
    actor_loss = jnp.mean(weight * jnp.sum((mlp(params["actor"], batch["obs"]) - batch["act"]) ** 2, -1))
    return value_loss + critic_loss + actor_loss


def update(carry, _):
    params, opt_state, target_q, data, key = carry
    key, k = jax.random.split(key)
    idx = jax.random.randint(k, (BATCH,), 0, ROWS)
    batch = jax.tree.map(lambda x: x[idx], data)
    value, grads = jax.value_and_grad(loss)(params, target_q, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    target_q = jax.tree.map(lambda t, p: 0.995 * t + 0.005 * p, target_q, params["q"])
    return (params, opt_state, target_q, data, key), value


chunk = jax.jit(jax.vmap(lambda carry: jax.lax.scan(update, carry, None, length=UPDATES)), donate_argnums=0)

if __name__ == "__main__":
    t0 = time.time()
    state = jax.jit(jax.vmap(init))(jax.random.split(jax.random.PRNGKey(0), RUNS))
    for call in range(CALLS):
        state, losses = chunk(state)
        losses = jax.device_get(losses)
        if call % 20 == 0:
            print(f"call {call}: loss {losses.mean():.3f} ({time.time() - t0:.0f} s)", flush=True)
    print(f"done in {time.time() - t0:.0f} s (jax {jax.__version__}, Python {sys.version.split()[0]})")
