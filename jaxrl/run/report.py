"""``jaxrl report``: run directories as a paper's table, with stratified bootstrap confidence intervals.

Every run (a seed x grid point of a run directory) has, per task, a final score (``metric`` at the last logged
chunk) and a best score (its best over chunks), as in ``summary.json``. Runs are grouped by ``by`` fields
(``algo``, ``env``, ``dataset``, ``seed``, ``point``, ``run_dir`` or any config field). Within a group the tasks are
strata: the env and dataset (unless grouped by) and each task of a multi-task run. Per group: IQM, mean, median
and optimality gap of the final scores with 95% stratified bootstrap CIs, runs resampled with replacement within
each task (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", through ``rliable``); between
groups: the probability of improvement with its CI and performance profiles. Learning curves carry the same
percentile-bootstrap band as ``jaxrl plot`` (:func:`bootstrap_band`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from jaxrl.algos.multitask.monitor import PREFIXES as GRADIENT_PREFIXES
from jaxrl.algos.multitask.monitor import STATS as GRADIENT_STATS
from jaxrl.config import close_matches
from jaxrl.run.logging import read_metrics

LEVEL = 0.95  # confidence level of every interval and band
ADAPTATION = "adaptation"  # meta-RL's per-run curve: meta-test return after k = 0, 1, ... inner steps
SUCCESS = "eval_success"  # multi-task runs' per-task evaluation success
TASK_FIELDS = ("env", "dataset")  # strata within a group unless grouped by
STATISTICS = ("iqm", "mean", "median", "optimality_gap")
_NOT_METRICS = ("chunk", "iteration", "env_steps")
_NAMED_VALUES = ("algo", "env", "dataset", "point", "run_dir")  # shown as the value alone in group labels


@dataclasses.dataclass(frozen=True)
class Run:
    """One run: its fields (``algo``, ``env``, ``dataset``, ``seed``, ``point``, ``run_dir`` and every config field
    at its grid point) and ``metric`` per logged chunk, ``values [C, tasks]`` at ``env_steps [C]``; ``tasks`` names
    the tasks (``("",)``: one)."""

    fields: dict[str, Any]
    tasks: tuple[str, ...]
    env_steps: np.ndarray
    values: np.ndarray

    @property
    def final(self) -> np.ndarray:
        return self.values[-1]

    @property
    def best(self) -> np.ndarray:
        """The best over chunks, leaving out a model-based offline run's chunks that ended inside its model phase
        (``model_train_updates`` updates, rounded up to whole iterations: they evaluate the untrained actor, which is
        not a result)."""
        per_iteration = self.fields.get("updates_per_iteration", 1)
        model_phase = -(-self.fields.get("model_train_updates", 0) // per_iteration) * per_iteration
        trained = self.env_steps > model_phase
        return (self.values[trained] if trained.any() else self.values).max(axis=0)


# ---------------------------------------------------------------------------------------------- statistics


def aggregates(scores: np.ndarray, target: float) -> np.ndarray:
    """:data:`STATISTICS` of a ``[runs, tasks]`` score matrix, all run x task scores pooled: IQM = mean of the
    middle 50% (25% trimmed at each end), mean, median, optimality gap = target - mean(min(score, target))."""
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_mean(scores),
            np.median(scores),
            metrics.aggregate_optimality_gap(scores, target),
        ]
    )


@contextlib.contextmanager
def _numpy_seed(seed: int):
    """rliable draws its bootstrap indices from numpy's global generator: seed it, then put it back."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def interval_estimates(
    scores: np.ndarray, target: float, reps: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`aggregates` of ``scores [runs, tasks]`` and their percentile CIs ``[2, 4]`` (low, high) from
    ``reps`` stratified bootstrap resamples: each task's runs drawn with replacement (rliable)."""
    from rliable import library

    with _numpy_seed(seed):
        point, ci = library.get_interval_estimates(
            {"": scores}, lambda s: aggregates(s, target), reps=reps, confidence_interval_size=LEVEL
        )
    return point[""], ci[""]


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) = mean over tasks m of P(x_m > y_m) + P(x_m = y_m) / 2, runs of ``x [n, tasks]`` and
    ``y [k, tasks]`` paired every way: the Mann-Whitney U / (n k) of rliable's ``probability_of_improvement``,
    without scipy's per-call cost (it runs once per bootstrap resample)."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + ties / 2))


def improvement_interval(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """:func:`probability_of_improvement` and its CI ``[low, high]``: ``x`` and ``y`` resampled independently,
    each stratified by task (rliable's ``StratifiedIndependentBootstrap``)."""
    from rliable import library

    with _numpy_seed(seed):
        point, ci = library.get_interval_estimates(
            {"": [x, y]}, probability_of_improvement, reps=reps, confidence_interval_size=LEVEL
        )
    return float(point[""]), np.ravel(ci[""])


def performance_profiles(
    score_dict: dict[str, np.ndarray], taus: np.ndarray, reps: int = 2000, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per group the fraction of run x task scores above each tau, and its stratified bootstrap band
    ``[2, len(taus)]`` (rliable's score distributions)."""
    from rliable import library

    with _numpy_seed(seed):
        return library.create_performance_profile(score_dict, taus, reps=reps, confidence_interval_size=LEVEL)


def bootstrap_band(values: np.ndarray | Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Mean over runs of ``values [runs, ...]`` and its percentile-bootstrap band at every point: runs resampled
    with replacement (multinomial counts), the band the 2.5% and 97.5% quantiles of the resampled means. A mean
    of observed values never leaves their [min, max]; the band is clipped to it against round-off, so it never
    passes e.g. CartPole's 500 ceiling."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=reps) / n  # [reps, runs]
    means = np.tensordot(weights, values, axes=1)  # [reps, ...]
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    lo, hi = values.min(axis=0), values.max(axis=0)
    return values.mean(axis=0), np.clip(low, lo, hi), np.clip(high, lo, hi)


def draw_band(ax, x: np.ndarray, values: np.ndarray, label: str, **plot_kw) -> None:
    """A line at the mean over runs of ``values [runs, len(x)]`` and its :func:`bootstrap_band` (``jaxrl plot``
    and ``jaxrl report`` both draw curves with this)."""
    mean, low, high = bootstrap_band(values)
    (line,) = ax.plot(x, mean, label=f"{label} (n={values.shape[0]})", **plot_kw)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)


# ----------------------------------------------------------------------------------------- run directories


def read_run_dir(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """``config.json`` and the ``metrics.jsonl`` records of a run directory; a ValueError says what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is not a directory")
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    spec = json.loads((run_dir / "config.json").read_text())
    missing = [k for k in ("algo", "env", "config", "runs") if k not in spec]
    if missing:
        raise ValueError(f"{run_dir} is not a jaxrl run directory (config.json has no {', '.join(missing)})")
    records = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    if not records:
        raise ValueError(f"{run_dir} has no logged chunks yet (metrics.jsonl is missing or empty)")
    return spec, records


def metric_names(records: list[dict]) -> list[str]:
    """The per-run metrics a run directory logs (evaluation outputs and training metrics)."""
    return [k for k, v in records[-1].items() if k not in _NOT_METRICS and isinstance(v, list)]


def choose_metric(records_per_dir: Sequence[list[dict]], metric: str | None) -> str:
    """``metric``, checked to be logged by every run directory; by default the normalised score of offline runs,
    else ``eval_return``."""
    shared: set[str] = functools.reduce(set.intersection, (set(metric_names(r)) for r in records_per_dir))
    common = sorted(shared)
    if metric is None:
        metric = "normalized_score" if "normalized_score" in common else "eval_return"
    if metric not in common:
        hint = close_matches(metric, common)
        raise ValueError(
            f"unknown metric {metric!r}; " + (f"did you mean {hint}?" if hint else f"every run directory logs {common}")
        )
    return metric


def _task_names(env_metadata: dict, width: int) -> tuple[str, ...] | None:
    """The tasks of a metric with ``width`` values per run, if the env is a multi-task suite (else None)."""
    names = env_metadata.get("task_names") or env_metadata.get("tasks")
    if width > 1 and names and len(names) == width:
        return tuple(names)
    if width > 1 and env_metadata.get("num_tasks") == width:
        return tuple(f"task {k}" for k in range(width))
    return None


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _point_label(point: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in point.items()) or "no grid"


def load_runs(run_dir: str | Path, spec: dict, records: list[dict], metric: str, curve: bool = False) -> list[Run]:
    """The runs of one run directory; per-run lists that are not per task (e.g. meta-RL's ``adaptation``
    curve) are averaged to one score, or with ``curve`` kept (``tasks`` then names the points ``k=0, k=1, ...``)."""
    meta = spec.get("env_metadata", {})
    records = [r for r in records if metric in r]
    steps = np.asarray([r["env_steps"] for r in records])
    values = np.asarray([r[metric] for r in records], dtype=float)
    values = values.reshape(*values.shape[:2], -1)  # [C, runs, width]
    tasks = tuple(f"k={k}" for k in range(values.shape[-1])) if curve else _task_names(meta, values.shape[-1])
    if tasks is None:
        values, tasks = values.mean(axis=-1, keepdims=True), ("",)
    env = meta.get("env_name", spec["env"]) if meta.get("offline") else spec["env"]
    runs = []
    for i, run in enumerate(spec["runs"]):
        fields = {k: _hashable(v) for k, v in {**spec["config"], **run["point"]}.items()}
        names = meta.get("dataset_names")
        dataset = names[int(fields.get("dataset_index", 0))] if names else None
        fields.update(
            algo=spec["algo"],
            env=env,
            dataset=dataset,
            seed=run["seed"],
            point=_point_label(run["point"]),
            run_dir=str(run_dir),
        )
        runs.append(Run(fields, tasks, steps, values[:, i]))
    return runs


# -------------------------------------------------------------------------------------------------- groups


def resolve_by(runs: Sequence[Run], by: Sequence[str] | None) -> list[str]:
    """The grouping fields: ``by`` (each checked to exist), or by default every field that differs between runs
    except ``seed`` (runs of one configuration are pooled) and the run directory; different algorithms need an
    explicit ``by``."""
    fields = sorted(set().union(*(r.fields for r in runs)))
    for name in by or ():
        if name not in fields:
            hint = close_matches(name, fields)
            raise ValueError(
                f"cannot group by {name!r}: no such field; "
                + (f"did you mean {hint}?" if hint else f"fields: {fields}")
            )
    if by:
        return list(by)
    algos = sorted({r.fields["algo"] for r in runs})
    if len(algos) > 1:
        raise ValueError(
            f"the run directories hold different algorithms ({', '.join(algos)}): say how to group "
            f"them, e.g. --by algo (by=['algo'])"
        )
    skip = ("seed", "point", "run_dir", "dataset_index")  # dataset_index varies with dataset
    return [f for f in fields if f not in skip and len({r.fields.get(f) for r in runs}) > 1]


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def group_label(fields: dict, by: Sequence[str]) -> str:
    parts = [
        str(Path(cast(str, v)).name if f == "run_dir" else v)  # load_runs always sets run_dir
        if f in _NAMED_VALUES
        else f"{f}={v:g}"
        if isinstance(v, float)
        else f"{f}={v}"
        for f, v in ((f, fields.get(f)) for f in by)
    ]
    return ", ".join(parts) or str(fields["algo"])


def group_runs(runs: Sequence[Run], by: Sequence[str]) -> dict[tuple, list[Run]]:
    """Runs by their values of the ``by`` fields, groups sorted by those values (numbers ascending)."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.fields.get(f) for f in by), []).append(run)
    return dict(sorted(groups.items(), key=lambda item: [_sort_key(v) for v in item[0]]))


def score_matrix(runs: Sequence[Run], by: Sequence[str], which: str = "final") -> tuple[np.ndarray, list[tuple]]:
    """The ``[runs, tasks]`` scores of one group and each column's task: the env and dataset not grouped by, and
    the task of a multi-task run. Stratified resampling needs the same number of runs on every task."""
    strata: dict[tuple, list[float]] = {}
    for run in runs:
        for task, score in zip(run.tasks, getattr(run, which)):
            strata.setdefault((*(run.fields[f] for f in TASK_FIELDS if f not in by), task), []).append(score)
    counts = {key: len(v) for key, v in strata.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"a group has different numbers of runs per task ({counts}); stratified bootstrap needs "
            f"the same number on each: group by the fields that tell them apart (--by)"
        )
    return np.asarray(list(strata.values()), dtype=float).T, list(strata)


def default_target(metric: str, scores: Sequence[np.ndarray]) -> float:
    """What the optimality gap measures against: 100 for normalised scores (expert = 100), 1 for success rates,
    else the best final score of any run."""
    if metric.startswith("normalized_score"):
        return 100.0
    if "success" in metric:
        return 1.0
    return float(max(np.max(s) for s in scores))


# -------------------------------------------------------------------------------------------------- report


def report(
    run_dirs: Sequence[str | Path],
    by: Sequence[str] | None = None,
    metric: str | None = None,
    out_dir: str | Path | None = None,
    *,
    target: float | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> dict:
    """Aggregate the runs of ``run_dirs`` by ``by`` (see the module docstring) and, with ``out_dir``, write
    ``report.md``, ``report.csv`` and PNGs there.

    Returns a plain dict: ``metric``, ``by``, ``target``, ``reps``, ``groups`` (per group ``group``, ``fields``,
    ``runs``, ``tasks``, each of :data:`STATISTICS` with its ``*_ci`` [low, high], ``final`` and ``best``: means
    over runs), ``improvement`` (P(best group > each other group) with its ``ci``; best = highest IQM) and, with
    ``out_dir``, ``files``."""
    if not run_dirs:
        raise ValueError("no run directories given")
    loaded = [(Path(d), *read_run_dir(d)) for d in run_dirs]
    metric = choose_metric([records for _, _, records in loaded], metric)
    runs = [run for d, spec, records in loaded for run in load_runs(d, spec, records, metric)]
    by = resolve_by(runs, [by] if isinstance(by, str) else by)
    groups = group_runs(runs, by)
    finals = {key: score_matrix(g, by, "final") for key, g in groups.items()}
    target = default_target(metric, [s for s, _ in finals.values()]) if target is None else float(target)
    rows = [_group_row(key, g, finals[key][0], by, target, reps, seed) for key, g in groups.items()]
    result = {
        "metric": metric,
        "by": by,
        "target": target,
        "reps": reps,
        "run_dirs": [str(d) for d, *_ in loaded],
        "groups": rows,
        "improvement": _improvements(rows, list(finals.values()), reps, seed),
        "adaptation": adaptation_curves(loaded, by, reps, seed),
        "task_success": task_success(loaded, by, reps, seed),
        "gradients": gradient_monitor(loaded, by, reps, seed),
    }
    if out_dir is not None:
        result["files"] = _write(result, groups, finals, Path(out_dir), reps, seed)
    return result


def adaptation_curves(loaded: Sequence[tuple[Path, dict, list[dict]]], by: Sequence[str], reps: int, seed: int):
    """Meta-RL runs (every run directory logs ``adaptation``: the meta-test return after k = 0, 1, ... inner
    steps): per group, the mean over runs of the final curve and its percentile-bootstrap 95% CI at each k;
    ``[]`` otherwise."""
    if not all(any(ADAPTATION in r for r in records) for _, _, records in loaded):
        return []
    runs = [run for d, spec, records in loaded for run in load_runs(d, spec, records, ADAPTATION, curve=True)]
    out = []
    for group in group_runs(runs, by).values():
        finals = np.stack([r.final for r in group])  # [runs, k]
        mean, low, high = bootstrap_band(finals, reps, seed)
        out.append(
            {
                "group": group_label(group[0].fields, by),
                "runs": len(group),
                "k": list(range(finals.shape[1])),
                "mean": mean.tolist(),
                "ci": np.stack([low, high], axis=1).tolist(),
            }
        )
    return out


def task_success(loaded: Sequence[tuple[Path, dict, list[dict]]], by: Sequence[str], reps: int, seed: int):
    """Multi-task runs (every run directory logs a per-task ``eval_success``): per group, each task's final
    success, the mean over runs with its percentile-bootstrap 95% CI; ``[]`` otherwise."""
    groups = _groups_of(loaded, by, SUCCESS)
    if not groups or any(len(r.tasks) < 2 for g in groups.values() for r in g):
        return []
    out = []
    for group in groups.values():
        mean, low, high = bootstrap_band(np.stack([r.final for r in group]), reps, seed)  # [tasks]
        out.append(
            {
                "group": group_label(group[0].fields, by),
                "runs": len(group),
                "tasks": list(group[0].tasks),
                "mean": mean.tolist(),
                "ci": np.stack([low, high], axis=1).tolist(),
            }
        )
    return out


def gradient_metrics(records_per_dir: Sequence[list[dict]]) -> list[str]:
    """The gradient-monitoring metrics (:mod:`jaxrl.algos.multitask.monitor`, every prefix) any run dir logs."""
    logged: set[str] = set().union(*(metric_names(r) for r in records_per_dir))
    return [p + s for p in GRADIENT_PREFIXES for s in GRADIENT_STATS if p + s in logged]


def gradient_monitor(loaded: Sequence[tuple[Path, dict, list[dict]]], by: Sequence[str], reps: int, seed: int):
    """Multi-task runs' gradient conflict and gradient-norm spread per chunk: per logged metric (e.g.
    ``critic_grad_cos_mean``; algorithms log different networks' metrics) and group of the run directories that log
    it, the mean over runs at every chunk its runs share, with its percentile-bootstrap 95% CI; ``[]`` when the
    runs log none."""
    out = []
    for name in gradient_metrics([records for _, _, records in loaded]):
        logging_it = [entry for entry in loaded if name in metric_names(entry[2])]
        for group in _groups_of(logging_it, by, name).values():
            steps = functools.reduce(np.intersect1d, [r.env_steps for r in group])
            values = np.stack([r.values.mean(axis=-1)[np.isin(r.env_steps, steps)] for r in group])  # [runs, C]
            mean, low, high = bootstrap_band(values, reps, seed)
            out.append(
                {
                    "group": group_label(group[0].fields, by),
                    "metric": name,
                    "runs": len(group),
                    "env_steps": steps.tolist(),
                    "mean": mean.tolist(),
                    "ci": np.stack([low, high], axis=1).tolist(),
                }
            )
    return out


def _groups_of(loaded: Sequence[tuple[Path, dict, list[dict]]], by: Sequence[str], metric: str):
    """The runs' ``metric`` by group (``{}`` unless every run directory logs it)."""
    if not all(metric in metric_names(records) for _, _, records in loaded):
        return {}
    return group_runs([run for d, spec, records in loaded for run in load_runs(d, spec, records, metric)], by)


def _group_row(
    key: tuple, runs: list[Run], scores: np.ndarray, by: list[str], target: float, reps: int, seed: int
) -> dict:
    point, ci = interval_estimates(scores, target, reps, seed)
    row = {
        "group": group_label(runs[0].fields, by),
        "fields": dict(zip(by, key)),
        "runs": len(runs),
        "tasks": scores.shape[1],
    }
    for name, value, low, high in zip(STATISTICS, point, *ci):
        row.update({name: float(value), f"{name}_ci": [float(low), float(high)]})
    row.update(final=float(np.mean([r.final for r in runs])), best=float(np.mean([r.best for r in runs])))
    return row


def _improvements(rows: list[dict], finals: list[tuple[np.ndarray, list]], reps: int, seed: int) -> list[dict]:
    """P(best > other) for every other group scored on the same tasks. Groups that differ in a task field (env or
    dataset, when grouped by it) are not compared: the best group is taken among those of one env and dataset."""
    out = []
    for members in _by_task_fields(rows).values():
        if len(members) < 2:
            continue
        best = max(members, key=lambda i: rows[i]["iqm"])
        x, x_tasks = finals[best]
        for i in members:
            y, y_tasks = finals[i]
            if i == best or sorted(y_tasks, key=str) != sorted(x_tasks, key=str):
                continue
            y = y[:, [y_tasks.index(t) for t in x_tasks]]
            p, ci = improvement_interval(x, y, reps, seed)
            out.append(
                {"x": rows[best]["group"], "y": rows[i]["group"], "probability": p, "ci": [float(c) for c in ci]}
            )
    return out


def _by_task_fields(rows: list[dict]) -> dict[tuple, list[int]]:
    """Row indices by their values of the task fields they are grouped by (one bucket when none is)."""
    buckets: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        key = tuple(_hashable(row["fields"][f]) for f in TASK_FIELDS if f in row["fields"])
        buckets.setdefault(key, []).append(i)
    return buckets


# ------------------------------------------------------------------------------------------------- writing


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _ci(row: dict, name: str) -> str:
    low, high = row[f"{name}_ci"]
    return f"{_fmt(row[name])} [{_fmt(low)}, {_fmt(high)}]"


def markdown(result: dict, figures: Sequence[str | Path] = ()) -> str:
    """``report.md``: the table (a row per group), the probabilities of improvement and the figures."""
    by = ", ".join(result["by"]) or "algo"
    runs, dirs = sum(r["runs"] for r in result["groups"]), len(result["run_dirs"])
    lines = [
        f"# {result['metric']}",
        "",
        f"{runs} run{'s' * (runs > 1)} from {dirs} run director{'ies' if dirs > 1 else 'y'}, "
        f"grouped by {by}. Final = `{result['metric']}` at the last logged chunk, best = its best over chunks "
        f"(means over runs). IQM, mean, median and optimality gap (target {_fmt(result['target'])}) of the "
        f"final scores; [95% CI]: stratified bootstrap over runs within each task (rliable, "
        f"{result['reps']} resamples).",
        "",
        "| group | runs | IQM [95% CI] | mean [95% CI] | median | optimality gap | final / best |",
        "| --- | ---: | --- | --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['group']} | {r['runs']} | {_ci(r, 'iqm')} | {_ci(r, 'mean')} | {_fmt(r['median'])} | "
        f"{_fmt(r['optimality_gap'])} | {_fmt(r['final'])} / {_fmt(r['best'])} |"
        for r in result["groups"]
    ]
    if result["improvement"]:
        lines += ["", "## Probability of improvement", "", "| X | Y | P(X > Y) [95% CI] |", "| --- | --- | --- |"]
        lines += [
            f"| {p['x']} | {p['y']} | {_fmt(p['probability'])} [{_fmt(p['ci'][0])}, {_fmt(p['ci'][1])}] |"
            for p in result["improvement"]
        ]
    if result.get("adaptation"):
        lines += _adaptation_table(result["adaptation"])
    if result.get("task_success"):
        lines += _task_success_table(result["task_success"])
    if result.get("gradients"):
        lines += _gradient_table(result["gradients"])
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    lines += ["", "## Run directories", ""] + [f"- `{d}`" for d in result["run_dirs"]]
    return "\n".join(lines) + "\n"


def _adaptation_table(curves: list[dict]) -> list[str]:
    width = max(len(c["k"]) for c in curves)
    lines = [
        "",
        "## Adaptation",
        "",
        "Meta-test return after k adaptation steps at the last logged chunk (MAML, CAVIA: k inner gradient steps; "
        "RL², VariBAD, PEARL: column k is episode k + 1 of a trial): mean over runs [95% percentile-bootstrap CI].",
        "",
        "| group | runs | " + " | ".join(f"k={k}" for k in range(width)) + " |",
        "| --- | ---: |" + " --- |" * width,
    ]
    for c in curves:
        cells = [f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for m, (lo, hi) in zip(c["mean"], c["ci"])]
        lines.append(f"| {c['group']} | {c['runs']} | " + " | ".join(cells) + " |")
    return lines


def _task_success_table(rows: list[dict]) -> list[str]:
    tasks = list(dict.fromkeys(t for r in rows for t in r["tasks"]))
    lines = [
        "",
        "## Per-task success",
        "",
        "`eval_success` per task at the last logged chunk: mean over runs [95% percentile-bootstrap CI].",
        "",
        "| group | runs | " + " | ".join(tasks) + " |",
        "| --- | ---: |" + " --- |" * len(tasks),
    ]
    for r in rows:
        by_task = {t: f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for t, m, (lo, hi) in zip(r["tasks"], r["mean"], r["ci"])}
        lines.append(f"| {r['group']} | {r['runs']} | " + " | ".join(by_task.get(t, "-") for t in tasks) + " |")
    return lines


def _gradient_table(curves: list[dict]) -> list[str]:
    """A row per group and network (metric prefix): each statistic at the first and last logged chunk."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for c in curves:
        prefix, stat = c["metric"].split("grad_", 1)
        first, last = c["mean"][0], c["mean"][-1]
        lo, hi = c["ci"][-1]
        cells.setdefault((c["group"], prefix.rstrip("_") or "all"), {})["grad_" + stat] = (
            f"{_fmt(first)} → {_fmt(last)} [{_fmt(lo)}, {_fmt(hi)}]"
        )
    stats = [s for s in GRADIENT_STATS if any(s in row for row in cells.values())]
    lines = [
        "",
        "## Gradient conflict and gradient-norm spread",
        "",
        "Per-task gradients of each shared network (`jaxrl.algos.multitask.monitor`): mean / min pairwise cosine, "
        "fraction of conflicting pairs (g_i . g_j < 0), max/min ratio and coefficient of variation of the task "
        "gradient norms (the winner-take-all symptom). First → last logged chunk, mean over runs [95% CI at the "
        "last chunk].",
        "",
        "| group | network | " + " | ".join(stats) + " |",
        "| --- | --- |" + " --- |" * len(stats),
    ]
    for (group, net), row in cells.items():
        lines.append(f"| {group} | {net} | " + " | ".join(row.get(s, "-") for s in stats) + " |")
    return lines


def write_csv(result: dict, path: Path) -> None:
    """``report.csv``: a row per group, each statistic with its CI bounds."""
    stat_columns = [f"{s}{end}" for s in STATISTICS for end in ("", "_low", "_high")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", *result["by"], "runs", "tasks", *stat_columns, "final", "best"])
        for r in result["groups"]:
            stats = [v for s in STATISTICS for v in (r[s], *r[f"{s}_ci"])]
            writer.writerow([r["group"], *r["fields"].values(), r["runs"], r["tasks"], *stats, r["final"], r["best"]])


def _write(
    result: dict, groups: dict[tuple, list[Run]], finals: dict[tuple, tuple], out_dir: Path, reps: int, seed: int
) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [row["group"] for row in result["groups"]]
    metric = result["metric"]
    figures = [
        plot_curves(dict(zip(labels, groups.values())), metric, out_dir / "curves.png"),
        plot_profiles(
            {label: s for label, (s, _) in zip(labels, finals.values())}, metric, out_dir / "profiles.png", reps, seed
        ),
    ]
    if any(len(r.tasks) > 1 for g in groups.values() for r in g):
        figures.append(plot_task_bars(dict(zip(labels, groups.values())), metric, out_dir / "tasks.png"))
    if len(result["by"]) == 2:
        figures.append(plot_heatmap(result, out_dir / "heatmap.png"))
    if result.get("adaptation"):
        figures.append(plot_adaptation(result["adaptation"], out_dir / "adaptation.png"))
    if result.get("task_success") and metric != SUCCESS:  # (with eval_success, tasks.png shows these bars)
        figures.append(plot_task_success(result["task_success"], out_dir / "task_success.png"))
    if result.get("gradients"):
        figures.append(plot_gradients(result["gradients"], out_dir / "gradients.png"))
    (out_dir / "report.md").write_text(markdown(result, figures))
    write_csv(result, out_dir / "report.csv")
    return [str(out_dir / "report.md"), str(out_dir / "report.csv"), *map(str, figures)]


# ------------------------------------------------------------------------------------------------- figures


def _axes(width: float = 6.4, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _save(fig, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_curves(groups: dict[str, list[Run]], metric: str, out: Path) -> Path:
    """Learning curves per group (each run's mean over tasks), at the env steps all its runs logged."""
    fig, ax = _axes()
    for label, runs in groups.items():
        steps = functools.reduce(np.intersect1d, [r.env_steps for r in runs])
        if steps.size:
            values = np.stack([r.values.mean(axis=-1)[np.isin(r.env_steps, steps)] for r in runs])
            draw_band(ax, steps, values, label)
    ax.set(xlabel="environment steps (per run)", ylabel=metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out)


def plot_profiles(scores: dict[str, np.ndarray], metric: str, out: Path, reps: int, seed: int) -> Path:
    """Performance profiles: the fraction of run x task final scores above tau, with bootstrap bands."""
    pooled = np.concatenate([s.ravel() for s in scores.values()])
    taus = np.linspace(pooled.min(), pooled.max(), 51)
    profiles, bands = performance_profiles(scores, taus, reps, seed)
    fig, ax = _axes()
    for label in scores:
        (line,) = ax.plot(taus, profiles[label], label=label)
        ax.fill_between(taus, *bands[label], color=line.get_color(), alpha=0.2)
    ax.set(xlabel=f"final {metric.replace('_', ' ')} (tau)", ylabel="fraction of runs with score > tau")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out)


def plot_adaptation(curves: list[dict], out: Path) -> Path:
    """Meta-RL adaptation curves: return after k inner steps per group, with the 95% bootstrap band."""
    fig, ax = _axes()
    for c in curves:
        ci = np.asarray(c["ci"])
        (line,) = ax.plot(c["k"], c["mean"], marker="o", label=f"{c['group']} (n={c['runs']})")
        ax.fill_between(c["k"], ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="adaptation steps k (inner steps, or episodes of a trial - 1)", ylabel="meta-test return")
    ax.set_xticks(range(max(len(c["k"]) for c in curves)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out)


def plot_task_bars(groups: dict[str, list[Run]], metric: str, out: Path) -> Path:
    """Per-task final scores of multi-task runs: a bar per group and task at the mean over runs, with its
    :func:`bootstrap_band` as error bar."""
    per_group: dict[str, dict[str, list[float]]] = {label: {} for label in groups}
    for label, runs in groups.items():
        for run in runs:
            for task, score in zip(run.tasks, run.final):
                per_group[label].setdefault(task, []).append(score)
    bands = {label: {t: bootstrap_band(v) for t, v in scores.items() if t} for label, scores in per_group.items()}
    return _task_bars(bands, f"final {metric.replace('_', ' ')}", out)


def plot_task_success(rows: list[dict], out: Path) -> Path:
    """:func:`task_success`'s rows as bars: final success per group and task, its 95% CI as error bar."""
    bands = {r["group"]: {t: (m, lo, hi) for t, m, (lo, hi) in zip(r["tasks"], r["mean"], r["ci"])} for r in rows}
    return _task_bars(bands, "final eval success", out)


def _task_bars(bands: dict[str, dict[str, tuple]], ylabel: str, out: Path) -> Path:
    """Grouped bars: ``bands[group][task] = (mean, low, high)``."""
    tasks = list(dict.fromkeys(t for per_task in bands.values() for t in per_task))
    fig, ax = _axes(max(6.4, 0.6 * len(tasks) * max(1, len(bands)) ** 0.5), 4.2)
    width = 0.8 / len(bands)
    for g, (label, per_task) in enumerate(bands.items()):
        x = [i for i, t in enumerate(tasks) if t in per_task]
        if not x:
            continue
        mean, low, high = (np.array(v, dtype=float) for v in zip(*(per_task[tasks[i]] for i in x)))
        ax.bar(
            np.array(x) + (g - (len(bands) - 1) / 2) * width,
            mean,
            width,
            label=label,
            yerr=[mean - low, high - mean],
            capsize=2,
        )
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return _save(fig, out)


def plot_gradients(curves: list[dict], out: Path) -> Path:
    """Gradient conflict (mean pairwise cosine of the task gradients) and gradient-norm spread (coefficient of
    variation of their norms) per chunk: a line per group and network with its 95% bootstrap band."""
    import matplotlib.pyplot as plt

    panels = [s for s in ("grad_cos_mean", "grad_norm_cv") if any(c["metric"].endswith(s) for c in curves)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.2), squeeze=False)
    for ax, stat in zip(axes[0], panels):
        for c in (c for c in curves if c["metric"].endswith(stat)):
            ci = np.asarray(c["ci"])
            net = c["metric"][: -len(stat)].rstrip("_")
            label = f"{c['group']}" + (f" ({net})" if net else "") + f" n={c['runs']}"
            (line,) = ax.plot(c["env_steps"], c["mean"], marker=".", label=label)
            ax.fill_between(c["env_steps"], ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.2)
        ylabel = "mean pairwise cosine of task gradients" if stat == "grad_cos_mean" else "CV of task gradient norms"
        ax.set(xlabel="environment steps (per run)", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _save(fig, out)


def plot_heatmap(result: dict, out: Path) -> Path:
    """IQM of the final scores over a two-field grouping (e.g. a 2-D grid), a cell per group."""
    rows_field, cols_field = result["by"]
    row_values = sorted({r["fields"][rows_field] for r in result["groups"]}, key=_sort_key)
    col_values = sorted({r["fields"][cols_field] for r in result["groups"]}, key=_sort_key)
    iqm = np.full((len(row_values), len(col_values)), np.nan)
    for r in result["groups"]:
        iqm[row_values.index(r["fields"][rows_field]), col_values.index(r["fields"][cols_field])] = r["iqm"]
    fig, ax = _axes(1.5 + 1.1 * len(col_values), 1.2 + 0.6 * len(row_values))
    image = ax.imshow(iqm, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(iqm):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                _fmt(value),
                ha="center",
                va="center",
                fontsize="small",
                color="w" if image.norm(value) < 0.5 else "k",
            )
    ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
    ax.set_yticks(range(len(row_values)), [str(v) for v in row_values])
    ax.set(xlabel=cols_field, ylabel=rows_field, title=f"IQM of final {result['metric'].replace('_', ' ')}")
    fig.colorbar(image, ax=ax)
    return _save(fig, out)
