"""CI's static checks (ruff, mypy, import-linter: `.ci/run`) fail on a violation.

Each check runs on a tiny deliberately broken package in a temporary directory, with the project's own
configuration, and must exit non-zero naming the problem; the same check on the fixed package passes. (CI runs
the checks themselves over the real tree.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    if shutil.which(name, path=str(Path(sys.executable).parent)) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return [str(Path(sys.executable).parent / name)]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_fails_on_an_unused_import_and_on_unformatted_code(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    _write(tmp_path, {"pkg/mod.py": "import os\n\n\ndef f(x):\n    return x\n"})
    lint = _run([*_tool("ruff"), "check", "pkg"], tmp_path)
    assert lint.returncode != 0 and "F401" in lint.stdout, lint.stdout
    _write(tmp_path, {"pkg/mod.py": "def f( x ):\n    return x\n"})
    fmt = _run([*_tool("ruff"), "format", "--check", "pkg"], tmp_path)
    assert fmt.returncode != 0 and "would be reformatted" in fmt.stdout, fmt.stdout
    _write(tmp_path, {"pkg/mod.py": "def f(x):\n    return x\n"})
    assert _run([*_tool("ruff"), "check", "pkg"], tmp_path).returncode == 0
    assert _run([*_tool("ruff"), "format", "--check", "pkg"], tmp_path).returncode == 0


def test_mypy_fails_on_a_type_error(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": "def f(x: int) -> int:\n    return x\n\n\nf('a')\n"})
    bad = _run([sys.executable, "-m", "mypy", "pkg"], tmp_path)
    assert bad.returncode != 0 and "arg-type" in bad.stdout, bad.stdout
    _write(tmp_path, {"pkg/mod.py": "def f(x: int) -> int:\n    return x\n\n\nf(1)\n"})
    good = _run([sys.executable, "-m", "mypy", "pkg"], tmp_path)
    assert good.returncode == 0, good.stdout


def test_import_linter_fails_when_a_lower_layer_imports_a_higher_one(tmp_path):
    """The project's layer contract, on a miniature package: losses must not import run."""
    config = (ROOT / ".importlinter").read_text().replace("jaxrl", "minirl")
    _write(
        tmp_path,
        {
            ".importlinter": config,
            **{f"minirl/{layer}/__init__.py": "" for layer in ("run", "algos", "losses", "nets", "grads", "data")},
            **{f"minirl/{layer}/__init__.py": "" for layer in ("envs", "tasks")},
            "minirl/__init__.py": "",
            "minirl/config.py": "",
            "minirl/distributed.py": "",
            "minirl/algos/ppo.py": "from minirl.losses import ppo_loss\n",
            "minirl/losses/ppo_loss.py": "from minirl.run import train\n",  # the violation
            "minirl/run/train.py": "from minirl.algos import ppo\n",
        },
    )
    env_cmd = [*_tool("lint-imports"), "--config", ".importlinter"]
    bad = subprocess.run(
        env_cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path)}
    )
    assert bad.returncode != 0 and "BROKEN" in bad.stdout and "minirl.losses" in bad.stdout, bad.stdout
    (tmp_path / "minirl/losses/ppo_loss.py").write_text("")
    good = subprocess.run(
        env_cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path)}
    )
    assert good.returncode == 0, good.stdout
