"""Golden metrics of the offline algorithms in ``cases.OFFLINE_A`` (behaviour cloning, weighted regression,
generative): each tiny case (tests/golden/cases.py) on the stored golden dataset
(tests/golden/offline_dataset.npz) reproduces its recorded fixture, bit for bit on the recording's platform
(tests/golden/harness.py).

Record: ``python tests/golden/record.py [NAME ...]``. Run: ``python -m pytest -m slow -n 2 --dist loadfile
tests/test_golden_*.py``.
"""

from golden import harness


@harness.golden_cases("offline_a")
def test_golden_run_reproduces_fixture(name):
    problems = harness.differences(name)
    assert not problems, "\n".join(problems)
