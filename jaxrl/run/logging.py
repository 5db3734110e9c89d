"""Run-directory writers: ``metrics.jsonl`` (the contract) and TensorBoard events (for people)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jaxrl.run.checkpoint import write_atomic


class MetricsLog:
    """Appends one JSON object per chunk; per-run values are lists in run-axis order."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))

    def truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration`` (written after the checkpoint a resume starts from)."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line)["iteration"] <= iteration
        ]
        # atomic: a run killed during its resume keeps its history
        write_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = record["env_steps"]
            for name, value in record.items():
                if isinstance(value, list) and value and isinstance(value[0], (int, float)):
                    finite = [v for v in value if math.isfinite(v)]
                    if finite:
                        self._tb.add_scalar(name, sum(finite) / len(finite), step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
