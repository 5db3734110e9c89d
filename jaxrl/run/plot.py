"""Learning curves from run directories: mean and a 95% percentile-bootstrap band over seeds, one line per grid
point (the band of ``jaxrl report``: :func:`jaxrl.run.report.bootstrap_band`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrl.run.logging import read_metrics
from jaxrl.run.report import draw_band


def curves(run_dir: str | Path, metric: str = "eval_return") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (env_steps [C], values [seeds, C])}`` per grid point of one run directory."""
    run_dir = Path(run_dir)
    spec = json.loads((run_dir / "config.json").read_text())
    records = read_metrics(run_dir)
    steps = np.asarray([r["env_steps"] for r in records])
    values = np.asarray([r[metric] for r in records], dtype=float)  # [C, runs, ...]: per-task values averaged
    values = values.reshape(values.shape[0], values.shape[1], -1).mean(-1).T  # [runs, C]
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(spec["runs"]):
        label = ", ".join(f"{k}={v:g}" for k, v in run["point"].items()) or spec["algo"]
        groups.setdefault(label, []).append(i)
    return {label: (steps, values[idx]) for label, idx in groups.items()}


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "eval_return") -> Path:
    """Draw ``metric`` against environment steps for each run directory (and grid point) into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run_dir in run_dirs:
        spec = json.loads((Path(run_dir) / "config.json").read_text())
        for label, (steps, values) in curves(run_dir, metric).items():
            if len(run_dirs) > 1:
                label = f"{Path(run_dir).name}: {label}"
            draw_band(ax, steps, values, label)
        ax.set_title(f"{spec['env']}")
    ax.set_xlabel("environment steps (per run)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    if any("adaptation" in _summary(d) for d in run_dirs):  # meta-RL runs: also the adaptation curve
        plot_adaptation(run_dirs, out.with_name(out.stem + "_adaptation" + out.suffix))
    return out


def _summary(run_dir) -> dict:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def plot_adaptation(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Meta-test return after k = 0, 1, ... adaptation episodes / gradient steps (``summary.json``'s final
    ``adaptation [runs, k]``): mean and 95% band over runs, one line per run directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run_dir in run_dirs:
        values = _summary(run_dir).get("adaptation")
        if values is None:
            continue
        values = np.asarray(values, dtype=float).reshape(-1, np.shape(values)[-1])  # [runs, k]
        draw_band(ax, np.arange(values.shape[-1]), values, Path(run_dir).name, marker="o")
    ax.set_xlabel("adaptation episodes / gradient steps k")
    ax.set_ylabel("meta-test return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
