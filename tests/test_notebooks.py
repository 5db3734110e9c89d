"""The notebooks in ``experiments/notebooks/`` run top to bottom at their tiny settings (``JAXRL_NOTEBOOK_TINY=1``),
end in the state they promise, and are valid nbformat 4 files with their outputs cleared.

Each notebook's code cells are executed in order in one fresh namespace (``__name__ == "__main__"``), in this
process: that is what a Jupyter kernel does with "run all", it reuses the jax and jaxrl this process has already
imported (a subprocess per notebook would pay the imports again), and the namespace is right here for the
assertions. Isolation: a fresh namespace per notebook, the env var, the working directory and ``tempfile``'s
directory set per test (monkeypatch), matplotlib on Agg and every figure closed afterwards. No nbformat / nbclient
/ IPython is needed; cells with IPython magics are refused (a plain Python reader could not run them).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "experiments" / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
TINY_VAR = "JAXRL_NOTEBOOK_TINY"


def _load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text())


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _code_cells(name: str) -> list[str]:
    return [_source(c) for c in _load(name)["cells"] if c["cell_type"] == "code"]


def run_notebook(name: str, monkeypatch, tmp_path) -> dict:
    """Execute ``name``'s code cells in order in one namespace at the tiny settings; return the namespace. A cell
    that raises fails the test with a traceback naming the notebook and the cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv(TINY_VAR, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the notebooks' mkdtemp directories land here
    namespace: dict = {"__name__": "__main__"}
    try:
        for i, src in enumerate(_code_cells(name)):
            exec(compile(src, f"{name}.ipynb code cell {i}", "exec"), namespace)
    finally:
        plt.close("all")
    return namespace


# ------------------------------------------------------------------------------------------ the files themselves


def test_there_are_notebooks():
    assert {"custom_loss", "sweep_and_report", "offline_from_dataset", "maml_meta_gradient"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_nbformat4(name):
    """nbformat 4 JSON, outputs cleared, a markdown title first, no IPython magics, the tiny switch read."""
    nb = _load(name)
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 4
    assert isinstance(nb["metadata"], dict) and nb["metadata"]["kernelspec"]["language"] == "python"
    assert nb["cells"] and nb["cells"][0]["cell_type"] == "markdown" and _source(nb["cells"][0]).startswith("# ")
    ids = [c.get("id") for c in nb["cells"]]
    assert len(set(ids)) == len(ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], (str, list)) and _source(cell).strip()
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "outputs must be cleared"
            magics = [line for line in _source(cell).splitlines() if line.lstrip().startswith(("%", "!"))]
            assert not magics, f"IPython magics are not plain Python: {magics}"
    assert any(TINY_VAR in src for src in _code_cells(name))
    try:
        import nbformat
    except ImportError:
        return
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))


def test_readme_describes_every_notebook():
    text = (NOTEBOOK_DIR / "README.md").read_text()
    for name in NOTEBOOKS:
        assert f"{name}.ipynb" in text, name


def test_project_readme_links_the_notebooks():
    assert "experiments/notebooks" in (ROOT / "README.md").read_text()


# ----------------------------------------------------------------------------------------------- running them
# Tiny runs measured on 2 busy cores (CPU seconds of compiling and running, jax already imported): custom_loss ~24,
# sweep_and_report ~18, maml_meta_gradient ~30, offline_from_dataset ~60. All four are compile-heavy end-to-end runs
# of pieces the fast suite already tests one by one (tests/test_losses.py, test_run.py, test_report.py,
# test_maml.py, test_offline_algos.py), so they run in the integration stage: the fast suite stays within its 6
# minutes on 2 cores.


@pytest.mark.integration
def test_custom_loss(monkeypatch, tmp_path):
    ns = run_notebook("custom_loss", monkeypatch, tmp_path)
    assert ns["loss_matches_library"] and ns["grad_gap"] < 1e-5
    returns = ns["returns"]  # [seeds, (plain PPO, PPO + KL)]: greedy evaluation returns of every trained policy
    assert returns.shape == (ns["NUM_SEEDS"], 2) and np.isfinite(returns).all() and (returns >= 1).all()
    curves = np.asarray(ns["metrics"]["episode_return"])
    assert curves.shape == (ns["NUM_SEEDS"], 2, ns["config"].num_iterations)


@pytest.mark.integration
def test_sweep_and_report(monkeypatch, tmp_path):
    ns = run_notebook("sweep_and_report", monkeypatch, tmp_path)
    summary, lrs = ns["summary"], ns["GRID"]["learning_rate"]
    assert [g["group"] for g in summary["groups"]] == [f"learning_rate={lr:g}" for lr in sorted(lrs)]
    for g in summary["groups"]:
        assert g["runs"] == ns["SEEDS"] and g["iqm_ci"][0] <= g["iqm"] <= g["iqm_ci"][1]
        assert f"| {g['group']} | {ns['SEEDS']} |" in ns["table"]
    assert "IQM [95% CI]" in ns["table"] and len(summary["improvement"]) == len(lrs) - 1
    assert all(Path(f).is_file() for f in summary["files"]) and Path(summary["files"][0]).is_relative_to(tmp_path)


@pytest.mark.integration
def test_offline_from_dataset(monkeypatch, tmp_path):
    ns = run_notebook("offline_from_dataset", monkeypatch, tmp_path)
    for s in ns["scores"].values():  # [seeds, datasets] final normalised scores
        assert s.shape == (ns["SEEDS"], len(ns["KINDS"])) and np.isfinite(s).all()
    assert np.isfinite(ns["evaluation"]["normalized_score"])
    groups = {g["group"] for g in ns["summary"]["groups"]}
    assert groups == {f"{a}, Pendulum-v1-{k}" for a in ("iql", "td3_bc") for k in ns["KINDS"]}


@pytest.mark.integration
def test_maml_meta_gradient(monkeypatch, tmp_path):
    ns = run_notebook("maml_meta_gradient", monkeypatch, tmp_path)
    assert ns["quadratic_gradient_error"] < 1e-5
    np.testing.assert_allclose(ns["theta_learned"], ns["theta_star"], atol=1e-3)
    assert ns["nav_fused_error"] < 1e-3 and ns["norm"](ns["diff"]) > 0
    cfg = ns["cfg"]
    assert ns["before"].shape == ns["after"].shape == (cfg.eval_inner_steps + 1,)
    assert np.isfinite(ns["after"]).all() and np.asarray(ns["post_returns"]).shape == (ns["META_ITERATIONS"],)
