"""Reproducer (kept for an upstream report): on jax/jaxlib 0.10.2, 2-core CPU, this program stalled in
block_until_ready with every XLA thread idle, about 20 s of CPU in, with or without async dispatch and
multi-threaded Eigen. XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false cures it, so importing
jaxrl sets that flag; run with JAXRL_KEEP_XLA_FLAGS=1 to see the stall (this SAC version carried the replay buffer
through a lax.cond, which sac.py no longer does)."""
import time, jax, jax.numpy as jnp
from jaxrl import envs
from jaxrl.algos.single import sac
env, p = envs.make("Pendulum-v1")
cfg = sac.Config()
def train(key):
    algo = sac.make(cfg, env, p)
    s = algo.init(key)
    s, m = jax.lax.scan(lambda s, _: algo.step(s), s, None, length=cfg.num_iterations)
    return algo.evaluate(s, key, 10), m["episode_return"]
t=time.time()
f = jax.jit(jax.vmap(train))
ev, ret = f(jax.random.split(jax.random.PRNGKey(0), 4)); ev.block_until_ready()
print(time.time()-t, ev, ev.mean())
