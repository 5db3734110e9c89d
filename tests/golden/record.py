"""Record golden fixtures: ``python tests/golden/record.py [NAME ...]`` (default: every registered algorithm).

Writes ``tests/golden/<name>.npz`` per algorithm (metrics and a fingerprint of the final state, see harness.py)
and updates ``tests/golden/MANIFEST.json`` (per fixture: the case, the date, the platform: jax/jaxlib/numpy and
Python versions, CPU model and ISA flags, XLA flags). The golden offline dataset (``offline_dataset.npz``) is
written first if it is missing; a new dataset invalidates every offline fixture, so record them all again then.

Record only from code that computes what the algorithms should compute (before a refactor, or after a change of
results that is intended). ``--check`` runs each case twice and refuses to write if the two runs differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: `golden` is a package there
os.environ.setdefault("JAXRL_COMPILATION_CACHE", "0")  # as the tests run (tests/conftest.py)

from golden import cases, harness  # noqa: E402


def _source() -> dict:
    """The commit the fixtures were recorded from, and whether jaxrl/ had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, check=True).stdout
        return {
            "commit": git("rev-parse", "HEAD").strip(),
            "jaxrl_modified": bool(git("status", "--porcelain", "jaxrl").strip()),
        }
    except (OSError, subprocess.CalledProcessError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="algorithms to record (default: all registered)")
    parser.add_argument("--check", action="store_true", help="run each case twice; write only if both are identical")
    args = parser.parse_args(argv)
    names = args.names or cases.names()
    unknown = [n for n in names if n not in cases.names()]
    if unknown:
        parser.error(f"unknown algorithm(s) {unknown}; registered: {cases.names()}")

    if any(cases.case(n).dataset for n in names) and not harness.DATASET_FILE.exists():
        harness.write_dataset()
        print(f"wrote {harness.DATASET_FILE} (a new dataset: record every offline fixture again)", flush=True)
    current = harness.platform()
    failed = []
    for name in names:
        t0 = time.perf_counter()
        arrays = harness.golden_run(name)
        if args.check:
            problems = harness.compare(name, arrays, harness.golden_run(name), exact=True)
            if problems:
                print(
                    f"{name}: NOT DETERMINISTIC, two runs differ; not written:\n  " + "\n  ".join(problems[:20]),
                    flush=True,
                )
                failed.append(name)
                continue
        harness.save_fixture(name, arrays)
        manifest = harness.read_manifest()  # re-read: a partial re-record keeps the other entries
        case = cases.case(name)
        entry = {
            "file": harness.fixture_path(name).name,
            "recorded": harness.now(),
            "case": case.describe(),
            "platform": current,
            "source": _source(),
            "seeds": harness.SEEDS,
            "run": {k: v for k, v in harness.RUN.items() if k != "seeds"},
        }
        if case.dataset:
            entry["dataset_sha256"] = harness.file_sha256(harness.DATASET_FILE)
        manifest.setdefault("fixtures", {})[name] = entry
        manifest.update(
            {
                "about": "golden metrics of every algorithm (tests/golden/__init__.py); per fixture the case, date and "
                "platform it was recorded on; the test compares exactly when the platform's "
                f"{list(harness.EXACT_KEYS)} equal the current ones, else with rtol={harness.RTOL}, "
                f"atol={harness.ATOL}",
                "record_command": f"{harness.RECORD_COMMAND} [NAME ...]",
                "platform": current,
                "recorded": entry["recorded"],
            }
        )
        if harness.DATASET_FILE.exists():
            manifest["dataset"] = {
                "file": harness.DATASET_FILE.name,
                "rows": harness.DATASET_ROWS,
                "sha256": harness.file_sha256(harness.DATASET_FILE),
                "recipe": "jaxrl.run.generate.rollout_dataset(Pendulum-v1, random policy, PRNGKey(0), 400 rows)",
            }
        harness.write_manifest(manifest)
        n_metrics = sum(k.startswith("metric/") for k in arrays)
        n_leaves = sum(k.startswith("state/") for k in arrays)
        print(
            f"{name}: {n_metrics} metrics, {n_leaves} state leaves, {time.perf_counter() - t0:.0f} s"
            + (" (checked: two runs identical)" if args.check else ""),
            flush=True,
        )
    if failed:
        print(f"not deterministic (not written): {failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
