"""Golden metrics of the online algorithms (single-task, multi-task, meta-RL): each tiny case (tests/golden/cases.py)
reproduces its recorded fixture, bit for bit on the recording's platform (tests/golden/harness.py).

Record: ``python tests/golden/record.py [NAME ...]``. Run: ``python -m pytest -m slow -n 2 --dist loadfile tests/test_golden_*.py``.
"""

import pytest
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


# slow too: ~12 min on 2 cores; run by hand around every refactor step until the fixtures are known to hold
# on CI's CPU as well (the comparison is exact only on the recording's platform)
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("name", cases.names("online"))
def test_golden_run_reproduces_fixture(name):
    harness.check(name)
