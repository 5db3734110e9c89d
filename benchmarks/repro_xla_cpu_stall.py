"""Minimal reproducer of the XLA:CPU stall on jaxlib 0.10.2 (jax only, no jaxrl), for an upstream report.

Four independent orthogonal initialisations of a 256x256 matrix, each vmapped over 3 runs (what initialising two
networks of three vmapped training runs does), in one jitted program, called 20 times. On jaxlib 0.10.2 with a
2-core CPU the process stops for good, usually in the first or second call: both threads of XLA's intra-op pool
run a LAPACK FFI kernel (``QrFactorization`` / ``OrthogonalQr``) that splits its batch with
``jax::ParallelBatchMap`` onto that same pool and waits on a ``BlockingCounter`` for pieces that no free thread
is left to run; the main thread waits in ``BlockUntilReady``; CPU use is 0%. On jaxlib 0.11.2 it completes.

    python benchmarks/repro_xla_cpu_stall.py                                         # exits 0 when done
    python benchmarks/stall_check.py --python PYTHON --program minimal --runs 10      # counts stalls
"""

import sys
import time

import jax

CALLS, RUNS, MATRICES, SIZE = 20, 3, 4, 256

orthogonal = jax.nn.initializers.orthogonal()


@jax.jit
def init(key):
    return [
        jax.vmap(lambda k: orthogonal(k, (SIZE, SIZE)))(jax.random.split(k, RUNS))
        for k in jax.random.split(key, MATRICES)
    ]


if __name__ == "__main__":
    t0 = time.time()
    for call in range(CALLS):
        jax.block_until_ready(init(jax.random.PRNGKey(call)))
    print(f"done: {CALLS} calls in {time.time() - t0:.1f} s (jax {jax.__version__}, Python {sys.version.split()[0]})")
