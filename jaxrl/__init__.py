"""jaxrl: a JAX-first functional training framework for multi-task, meta- and offline RL."""

import os as _os

__version__ = "0.1.0"

# XLA:CPU's concurrency-optimised scheduler made large vmapped programs more prone to stall for good on jaxlib 0.10.2
# (every thread idle in block_until_ready: benchmarks/results/stall_report.md); with it off fewer programs stalled.
# It only takes effect if jaxrl is imported before JAX starts its CPU backend; JAXRL_KEEP_XLA_FLAGS=1 leaves
# XLA_FLAGS as is.
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if _os.environ.get("JAXRL_KEEP_XLA_FLAGS") != "1" and "concurrency_optimized_scheduler" not in _os.environ.get(
    "XLA_FLAGS", ""
):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
