"""Golden metrics: a tiny deterministic run of every registered algorithm, recorded before a refactor that must not
change what any algorithm computes (project issue 13), and asserted bit-identical after it.

- ``cases.py``: the tiny case of each algorithm (env and config overrides).
- ``harness.py``: :func:`golden_run` (the run and the fingerprint of its final state), the platform signature,
  fixture reading/writing and the comparison the tests make.
- ``record.py``: ``python tests/golden/record.py [NAME ...]`` writes ``<name>.npz`` and ``MANIFEST.json``.
- ``tests/test_golden_online.py``, ``tests/test_golden_offline_a.py``, ``..._b.py``: the tests (marked
  ``integration``; one file per group of ``cases.group``, so xdist workers share them).
"""
