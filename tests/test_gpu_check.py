"""benchmarks/gpu.sh end to end in its dry-run mode (tiny sizes, CPU): every section measures and the table names
them; on an accelerator the same script makes benchmarks/results/gpu_<device>.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "JAXRL_COMPILATION_CACHE": "0"}
    out = tmp_path / "gpu"
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--no-install", "--dry-run", "--work-dir", str(tmp_path),
         "--out", str(out), "--peer-python", sys.executable],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    sections = {r["section"] for r in report["rows"]}
    assert sections == {"PPO", "offline", "MT-SAC", "MAML"}, (sections, report["skipped"])
    assert not [s for s in report["skipped"] if "failed" in s], report["skipped"]
    assert all(r["rate"] > 0 for r in report["rows"])
    table = out.with_suffix(".md").read_text()
    assert "dry run" in table and "| PPO | 4 runs one after another" in table
