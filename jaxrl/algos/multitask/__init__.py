"""Multi-task RL algorithms: a known task context omega appended to the state, one agent for K tasks.

- ``mt_sac``: MT-SAC (shared actor and critic on ``(s, omega)``, one learned temperature per task) with an
  optional gradient aggregator (``aggregator="pcgrad" | "mgda" | "cagrad" | ...``) and ``multi_head=True``
  (shared trunk, one output head per task);
- ``mh_sac``: multi-head MT-SAC (``mt_sac`` with ``multi_head=True`` by default);
- ``distral``: Distral, per-task policies regularised towards a distilled shared policy;
- ``common``: task-conditioned (multi-head) networks, aggregator choice, per-task return/success metrics;
- ``monitor``: per-task gradient monitoring every multi-task algorithm logs (cosines, conflicting pairs, spread of
  the task gradient norms);
- ``architecture``: the ``--network`` config fields (Soft Modularization, CARE, MOORE, PaCo) and their spec.

Environments come from :mod:`jaxrl.envs.multitask` (``make_multitask_env(suite, envs_per_task)``).
"""
