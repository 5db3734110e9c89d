"""jaxrl: a JAX-first functional training framework for multi-task, meta- and offline RL."""

import os as _os

__version__ = "0.1.0"

# XLA:CPU's multi-threaded Eigen pool can deadlock on large vmapped programs (seen here: a run stuck at 0% CPU in
# block_until_ready). Single-threaded Eigen avoids it at a small cost; set JAXRL_CPU_MULTI_THREAD_EIGEN=1 to keep
# the multi-threaded pool. Takes effect only if jaxrl is imported before JAX initialises its CPU backend.
if (_os.environ.get("JAXRL_CPU_MULTI_THREAD_EIGEN") != "1"
        and "xla_cpu_multi_thread_eigen" not in _os.environ.get("XLA_FLAGS", "")):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
