"""Weights & Biases logging, the optional ``wandb`` extra (``pip install -e ".[wandb]"``).

``jaxrl train ... --wandb [PROJECT]`` (``train(..., wandb="PROJECT")``) opens one W&B run for a run directory's
runs (every seed x grid point): its config is config.json's (algorithm, env, every config field, seeds, grid,
runs, versions); each chunk logs every metric per run (``eval_return/run_3``, in run-axis order as
metrics.jsonl) and its mean over the runs (``eval_return/mean``) against ``env_steps``; the end sets the summary
(summary.json's numbers) and logs ``curves.png`` as an image. metrics.jsonl and TensorBoard are written as
without it.

Without an API key (``WANDB_API_KEY`` or ``wandb login``) the run is logged offline, under
``RUN_DIR/wandb/offline-run-*`` (upload it later with ``wandb sync``); ``WANDB_MODE`` (``online``, ``offline``,
``disabled``) chooses explicitly. ``RUN_DIR/wandb.json`` keeps the W&B run's id and project: a resumed run
(``jaxrl train --resume RUN_DIR``) continues the same W&B run.

wandb is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import secrets
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

DEFAULT_PROJECT = "jaxrl"
STATE_FILE = "wandb.json"  # in the run directory: {"id", "project", "mode"}
INSTALL_HINT = 'needs the wandb extra: pip install -e ".[wandb]"'
# summary.json fields that the config already holds
_NOT_IN_SUMMARY = ("runs", "env_metadata", "algo", "env")

Setting = str | bool | None  # a project name; True: the default project; None / False: off


def project_of(setting: Setting) -> str | None:
    """The W&B project a ``wandb=`` setting names (None: no W&B logging)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return DEFAULT_PROJECT
    if not isinstance(setting, str) or not setting.strip():
        raise ValueError(f"wandb= takes a project name or True, got {setting!r}")
    return setting


def saved_state(run_dir: str | os.PathLike | None) -> dict | None:
    """The W&B run recorded in ``run_dir`` (its id and project), or None."""
    path = Path(run_dir) / STATE_FILE if run_dir is not None else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def require(option: str = "--wandb") -> None:
    """Raise a one-line ValueError (``OPTION needs the wandb extra: ...``) when wandb cannot be imported."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ValueError(f"{option} {INSTALL_HINT}") from None


def check(setting: Setting, run_dir: str | os.PathLike | None, resuming: bool) -> None:
    """Before anything compiles: the setting is valid, and wandb is importable when the run will log to W&B."""
    if project_of(setting) is not None:
        require("--wandb (wandb=)")
    elif setting is None and resuming and saved_state(run_dir) is not None:
        require(f"resuming {run_dir}, which logs to W&B ({STATE_FILE}),")


def _has_api_key() -> bool:
    """Whether W&B credentials are configured (``WANDB_API_KEY`` or a netrc entry from ``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _mode() -> str:
    """``WANDB_MODE`` if set, else online with credentials and offline without."""
    return os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")


def _values(value: Any) -> np.ndarray | None:
    """A record's per-run values as floats ``[runs, ...]``, or None for anything else."""
    if not isinstance(value, list) or not value:
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # ragged or not numbers
        return None


def _mean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else math.nan


def per_run_and_mean(name: str, values: np.ndarray) -> dict[str, float]:
    """``{name/run_i: run i's value (its mean over tasks for multi-task runs), name/mean: the mean over runs}``."""
    runs = values.reshape(len(values), -1)
    out = {f"{name}/run_{i}": _mean(run) for i, run in enumerate(runs)}
    out[f"{name}/mean"] = _mean(runs)
    return out


def chunk_row(record: Mapping[str, Any]) -> dict[str, float]:
    """One metrics.jsonl record as a W&B row: every metric per run and its mean, plus the chunk's counters."""
    row = {k: record[k] for k in ("env_steps", "iteration", "chunk") if k in record}
    for name, value in record.items():
        values = _values(value)
        if values is not None:
            row.update(per_run_and_mean(name, values))
    return row


def summary_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """summary.json as W&B summary fields: numbers, flags and strings as they are, per-run lists per run + mean."""
    out: dict[str, Any] = {}
    for name, value in summary.items():
        if name in _NOT_IN_SUMMARY or value is None:
            continue
        values = _values(value)
        if values is not None:
            out.update(per_run_and_mean(name, values))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[name] = ", ".join(value)
    return out


def new_run_id() -> str:
    """A fresh W&B run id (8 lowercase letters and digits, as wandb makes them)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbLog:
    """The W&B run of one run directory: :meth:`open` (or resume), :meth:`write` per chunk, :meth:`finish`."""

    def __init__(self, run: Any):
        self.run = run

    @classmethod
    def open(
        cls, setting: Setting, run_dir: Path | None, config: Mapping[str, Any] | None, resuming: bool
    ) -> WandbLog | None:
        """Start (or, resuming a run that logged to W&B, continue) the W&B run; None when W&B is off.

        ``config``: config.json's content (None: read it from ``run_dir``, as a resume does).
        """
        project = project_of(setting)
        state = saved_state(run_dir) if resuming else None
        if project is None and (setting is False or state is None):
            return None
        require("--wandb (wandb=)")
        import wandb

        if state is not None and setting in (None, True):  # resuming: the recorded project (--wandb names none)
            project = state.get("project", DEFAULT_PROJECT)
        same_run = state is not None and state.get("project") == project
        run_id = state["id"] if same_run and state is not None else new_run_id()
        if config is None and run_dir is not None and (run_dir / "config.json").exists():
            config = json.loads((run_dir / "config.json").read_text())
        mode = _mode()
        init: dict[str, Any] = dict(  # a dict: wandb's types take `mode` as a Literal, WANDB_MODE is a str
            project=project,
            id=run_id,
            name=run_dir.name if run_dir is not None else None,
            dir=str(run_dir) if run_dir is not None else None,
            config=dict(config or {}),
            mode=mode,
            resume="allow",
            reinit="finish_previous",
        )
        run = wandb.init(**init)
        # every metric is plotted against env steps per run: a chunk redone after a resume lands where it was
        run.define_metric("env_steps")
        run.define_metric("*", step_metric="env_steps")
        if run_dir is not None:
            (run_dir / STATE_FILE).write_text(json.dumps({"id": run_id, "project": project, "mode": mode}) + "\n")
        if mode == "offline" and not os.environ.get("WANDB_MODE"):
            print(
                "wandb: no API key (WANDB_API_KEY or `wandb login`), so the run is logged offline; upload it with "
                f"`wandb sync {Path(run.dir).parent}` (WANDB_MODE=online|offline|disabled chooses)",
                file=sys.stderr,
            )
        return cls(run)

    def write(self, record: Mapping[str, Any]) -> None:
        """Log one chunk's record (metrics.jsonl's)."""
        self.run.log(chunk_row(record))

    def finish(self, summary: Mapping[str, Any], curves: Path | None = None) -> None:
        """Set the summary, log the curves' PNG (when there is one) and close the W&B run."""
        if curves is not None and curves.exists():
            import wandb

            self.run.log({"curves": wandb.Image(str(curves)), "env_steps": summary.get("env_steps", 0)})
        self.run.summary.update(summary_fields(summary))
        self.run.finish(exit_code=1 if summary.get("stalled") else 0)
