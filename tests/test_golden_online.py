"""Golden metrics of the online algorithms (single-task, multi-task, meta-RL): each tiny case (tests/golden/cases.py)
reproduces its recorded fixture, bit for bit on the recording's platform (tests/golden/harness.py).

Record: ``python tests/golden/record.py [NAME ...]``. Run: ``python -m pytest -m slow -n 2 --dist loadfile
tests/test_golden_*.py``.
"""

import numpy as np
from golden import cases, harness

from jaxrl import algos


def test_every_registered_algorithm_has_a_golden_case_in_one_file():
    """Cheap (fast suite): a newly registered algorithm needs a golden case (and then a recorded fixture)."""
    covered = {name: cases.group(name) for name in algos.names()}
    assert set(covered.values()) <= {"online", "offline_a", "offline_b"}
    assert sorted(cases.names("online") + cases.names("offline_a") + cases.names("offline_b")) == algos.names()
    for name in algos.names():
        case = cases.case(name)  # raises for an algorithm without a case
        algos.get(name).Config(**case.config)  # the overrides are valid fields and values


@harness.golden_cases("online")
def test_golden_run_reproduces_fixture(name):
    problems = harness.differences(name)
    assert not problems, "\n".join(problems)


def test_a_state_leaf_that_only_moved_is_the_same_leaf_and_a_changed_one_is_reported():
    leaf = np.arange(6, dtype=np.float32).reshape(2, 3)
    other = leaf + 1
    recorded = harness.fingerprint({"params": leaf, "opt": other})
    # a refactor put params and optimiser state into one record: the same values under new paths
    moved = harness.fingerprint({"actor": {"params": leaf, "opt_state": other}})
    assert harness.compare("x", recorded, moved, exact=True) == []
    assert harness.compare("x", recorded, moved, exact=False) == []
    changed = harness.fingerprint({"actor": {"params": leaf, "opt_state": other + 1e-3}})
    problems = harness.compare("x", recorded, changed, exact=True)
    assert len(problems) == 1 and "missing [\"['opt']\"]" in problems[0], problems
