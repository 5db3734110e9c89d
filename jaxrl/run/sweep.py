"""``jaxrl sweep SPEC``: algorithms x envs (or datasets) x grids x seeds from one spec file, resumable, with a report.

A spec is a TOML file (or YAML, with ``pyyaml`` installed) with a ``[sweep]`` table of options for every
program and one ``[[runs]]`` entry per algorithm (or group of algorithms) to train::

    [sweep]
    out = "runs/ppo-cartpole-sweep"   # the sweep's directory (`--out` overrides it)
    seeds = 5                         # seeds 0..4, or a list: [0, 1, 7]
    num_chunks = 10                   # run options, each also settable per [[runs]] entry
    eval_episodes = 10
    total_env_steps = 100_000         # a default for every entry's config

    [sweep.report]                    # optional: passed to `jaxrl report`
    by = ["hidden", "learning_rate"]  # default: the fields that differ between runs (plus algo, for several)
    metric = "eval_return"

    [[runs]]
    algo = "ppo"                      # or algos = ["ppo", ...]: the entry applies to each
    envs = ["CartPole-v1", "Acrobot-v1"]   # default: the algorithm's default env
    config = { num_envs = 8 }         # fixed config fields of this entry

    [runs.grid]                       # every combination of these values
    learning_rate = [1e-4, 3e-4, 1e-3]     # numeric (traced) field: an axis of ONE program
    hidden = [[64, 64], [128, 128]]        # shape-changing (static) field: one program per value

    [[runs]]
    algo = "iql"                      # offline algorithms train on datasets instead of envs
    datasets = ["data/medium.hdf5", ["data/a.hdf5", "data/b.hdf5"]]  # a list: files stacked in one program
    env = "Pendulum-v1"               # optional: the env of dataset files that do not name theirs
    grid = { expectile = [0.7, 0.9] }

``[sweep]`` keys: ``out``, ``seeds``, ``num_chunks``, ``eval_episodes``, ``run_block``, ``keep_checkpoints``,
``total_env_steps``, ``tensorboard`` (default true), ``compilation_cache`` (a directory, or false; default: the
``JAXRL_COMPILATION_CACHE`` setting), ``wandb`` (a W&B project name or true: every program logs there, as
``jaxrl train --wandb``) and ``report`` (``by``, ``metric``, ``target``, ``reps``). ``[[runs]]`` keys:
``algo``/``algos``, ``env``/``envs``, ``datasets``, ``config``, ``grid``, ``name`` (the run directories' prefix,
default the algorithm) and the run options ``seeds``, ``num_chunks``, ``eval_episodes``, ``run_block``,
``keep_checkpoints``, ``total_env_steps``. Relative paths are relative to the current directory.

A *program* is one algorithm on one env (or dataset) at one value of each static grid field: all its seeds and
numeric grid points run vmapped in one compiled program (:func:`jaxrl.run.train`). Programs run one after
another, sharing the persistent compilation cache, each in its own run directory ``<out>/<name>`` named
``<algo>-<env>[-<static field>=<value>...]`` (e.g. ``ppo-CartPole-v1-hidden=64x64``).

The whole spec (every program's config, grid and env) is checked before the first program compiles. ``<out>/
sweep.json`` records the spec and its programs; running the sweep again continues it: complete programs are
skipped, a stopped one resumes from its last checkpoint, the rest run. A different spec into the same ``out`` is
refused. SIGINT/SIGTERM stop the sweep at the next chunk boundary (with a checkpoint). When every program is
complete, :func:`jaxrl.run.report.report` writes ``<out>/report/`` (``report.md``, ``report.csv``, PNGs).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import numbers
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from jaxrl import algos as algo_registry
from jaxrl import envs as env_registry
from jaxrl.config import ConfigError, close_matches, config_name, hyper_fields, renamed_fields, replace
from jaxrl.run import checkpoint as ckpt
from jaxrl.run import recorder as rec_lib

__all__ = ["Program", "Sweep", "SweepResult", "load_spec", "plan", "run", "write_report", "main"]

# run options: train()'s keyword arguments a spec may set (in [sweep] or per [[runs]] entry) and their defaults
RUN_OPTIONS: dict[str, Any] = {"num_chunks": 10, "eval_episodes": 10, "run_block": None, "keep_checkpoints": 3}
SWEEP_KEYS = ("out", "seeds", *RUN_OPTIONS, "total_env_steps", "tensorboard", "compilation_cache", "wandb", "report")
ENTRY_KEYS = ("algo", "algos", "env", "envs", "datasets", "name", "config", "grid", "seeds", *RUN_OPTIONS)
ENTRY_KEYS += ("total_env_steps",)
REPORT_KEYS = ("by", "metric", "target", "reps")
RECORD = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled program of a sweep: ``algo`` on ``env`` (a registry or ``dataset:`` name) with ``config``
    (field -> value: the entry's fixed fields and this program's static values) for ``seeds`` x ``grid`` (numeric
    fields -> values), run with ``options`` (train()'s run options), in ``<out>/<name>``."""

    name: str
    algo: str
    env: str
    config: dict[str, Any]
    grid: dict[str, list]
    seeds: list[int]
    options: dict[str, Any]

    def record(self) -> dict:
        """The JSON form that sweep.json keeps (lists for tuples)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def make_config(self) -> Any:
        module = algo_registry.get(self.algo)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.items()}
        return replace(module.Config(), **values)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A checked spec: its programs, where they go and the options shared by all of them."""

    out: Path
    programs: list[Program]
    spec: dict
    tensorboard: bool = True
    compilation_cache: str | bool | None = None
    report: dict = dataclasses.field(default_factory=dict)
    wandb: str | bool | None = None


@dataclasses.dataclass
class SweepResult:
    """What a sweep did: per program (by name) ``status`` (``"complete"`` already, ``"ran"``, ``"resumed"``,
    ``"interrupted"`` or ``"not run"``) and ``summaries`` (summary.json); ``report`` is
    :func:`jaxrl.run.report.report`'s result once every program is complete (else None)."""

    sweep: Sweep
    status: dict[str, str]
    summaries: dict[str, dict]
    report: dict | None
    interrupted: bool

    def run_dir(self, name: str) -> Path:
        return self.sweep.out / name


# ------------------------------------------------------------------------------------------------- the spec


def load_spec(path: str | Path) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) spec file into a dict (checked by :func:`plan`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} does not exist" if not path.exists() else f"{path} is not a file")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path} is YAML, which needs pyyaml: pip install pyyaml (or write it in TOML)") from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: malformed YAML: {' '.join(str(e).split())}") from None
    elif path.suffix == ".toml":
        import tomllib

        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: malformed TOML: {e}") from None
    else:
        raise ValueError(f"sweep spec {path}: name it .toml, .yaml or .yml (TOML, or YAML with pyyaml)")
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a sweep spec is a table with [sweep] and [[runs]], got {type(spec).__name__}")
    return spec


def _check_keys(table: Any, allowed: Sequence[str], where: str) -> dict:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    for key in table:
        if key not in allowed:
            hint = close_matches(str(key), allowed)
            raise ConfigError(
                f"{where}: unknown key {key!r}; " + (f"did you mean {_quoted(hint)}?" if hint else f"keys: {allowed}")
            )
    return dict(table)


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(map(repr, names))


def _integer(value: Any, key: str, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{where}: {key} = {value!r} must be an integer >= {low}")
    return int(value)


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: seeds = [] names no seed")
        return [_integer(s, "seeds", where, low=0) for s in value]
    return list(range(_integer(value, "seeds", where)))


def _run_options(table: Mapping, defaults: Mapping, where: str) -> dict:
    options = dict(defaults)
    for key in RUN_OPTIONS:
        if key in table:
            options[key] = None if table[key] is None else _integer(table[key], key, where)
    return options


def _names(entry: Mapping, one: str, many: str, where: str) -> list[str] | None:
    """``entry[one]`` (a string) or ``entry[many]`` (a non-empty list of strings), or None if neither."""
    if one in entry and many in entry:
        raise ConfigError(f"{where}: give {one} or {many}, not both")
    values = [entry[one]] if one in entry else entry.get(many)
    if values is None:
        return None
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: {many} must be a non-empty list of names, got {values!r}")
    return values


# -------------------------------------------------------------------------------------------- static values


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _static_type(field: dataclasses.Field) -> tuple[str, Callable[[Any], bool]]:
    """What a static field takes (read from its default): a description and a check."""
    factory = cast(Callable[[], Any], field.default_factory)
    default = field.default if field.default is not dataclasses.MISSING else factory()
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if _is_integer(default):
        return "an integer", _is_integer
    if _is_real(default):
        return "a number", _is_real
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, tuple):
        floats = "float" in str(field.type)
        element = _is_real if floats else _is_integer
        text = f"a list of {'numbers' if floats else 'integers'} (e.g. [64, 64])"
        return text, lambda v: isinstance(v, list | tuple) and all(element(x) for x in v)
    return "a value", lambda v: True


def _check_value(cls: type, name: str, value: Any, where: str) -> None:
    """Refuse a config value of the wrong type, naming the field and what it takes (ranges: the config's own
    checks, in :func:`plan`)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if name in hyper_fields(cls):
        integer = field.metadata.get("integer")
        text, ok = ("an integer >= 0", _is_integer(value)) if integer else ("a real number", _is_real(value))
    else:
        text, check = _static_type(field)
        ok = check(value)
    if not ok:
        hint = " (YAML reads 1e-4 as a string: write 1.0e-4)" if _number_text(value) and "number" in text else ""
        raise ConfigError(f"{where}: {config_name(cls)}.{name} = {value!r} must be {text}{hint}")


def _number_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and bool(float(value) == float(value))
    except ValueError:
        return False


def _field_name(cls: type, name: str, where: str) -> str:
    """``name`` as a field of ``cls`` (old names mapped to new ones); an unknown one names close matches."""
    name = renamed_fields(cls).get(name, name)
    fields = [f.name for f in dataclasses.fields(cls)]
    if name not in fields:
        hint = close_matches(name, fields)
        raise ConfigError(
            f"{where}: {config_name(cls)} has no field {name!r}; "
            + (f"did you mean {_quoted(hint)}?" if hint else "`jaxrl train ALGO --help` lists them")
        )
    return name


def _fixed_config(cls: type, entry: Mapping, total_env_steps: Any, where: str) -> dict:
    """The entry's fixed config fields (``config`` over the sweep's ``total_env_steps``), type-checked."""
    table = entry.get("config", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: config must be a table of field = value, got {table!r}")
    steps = entry.get("total_env_steps", total_env_steps)
    merged = ({} if steps is None else {"total_env_steps": steps}) | dict(table)
    out = {}
    for key, value in merged.items():
        name = _field_name(cls, key, where)
        _check_value(cls, name, value, where)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _split_grid(cls: type, grid: Any, where: str) -> tuple[dict[str, list], dict[str, list]]:
    """The entry's grid as (static fields -> values: one program each, numeric fields -> values: grid axes)."""
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{where}: grid must be a table of field = [values], got {grid!r}")
    statics: dict[str, list] = {}
    hypers: dict[str, list] = {}
    for key, values in grid.items():
        name = _field_name(cls, key, where)
        if not isinstance(values, list):
            raise ConfigError(f"{where}: grid {config_name(cls)}.{name} = {values!r} must be a list of values")
        if not values:
            raise ConfigError(f"{where}: grid {config_name(cls)}.{name} is empty: give at least one value")
        for value in values:
            _check_value(cls, name, value, f"{where}: grid")
        (hypers if name in hyper_fields(cls) else statics)[name] = list(values)
    return statics, hypers


# ------------------------------------------------------------------------------------------------- programs


def _targets(entry: Mapping, algo: str, where: str) -> list[tuple[str, str]]:
    """The entry's envs for ``algo`` as (env name for train, label for run directory names)."""
    if not algo_registry.is_offline(algo):
        if "datasets" in entry:
            offline = [n for n in algo_registry.names() if algo_registry.is_offline(n)]
            raise ConfigError(f"{where}: {algo} is not an offline algorithm; datasets are for: {', '.join(offline)}")
        envs = _names(entry, "env", "envs", where) or [algo_registry.default_env(algo)]
        for env in envs:
            if env_registry.is_host(env):
                raise ConfigError(f"{where}: {env} is a host env, which does not resume; train it with `jaxrl train`")
        return [(env, env) for env in envs]
    datasets, dataset_env = entry.get("datasets"), entry.get("env")
    if not isinstance(datasets, list) or not datasets:
        raise ConfigError(f'{where}: {algo} is an offline algorithm: give datasets = ["FILE", ...]')
    if "envs" in entry or not isinstance(dataset_env, str | None):
        raise ConfigError(f"{where}: offline entries take one env (the env of dataset files that do not name it)")
    out = []
    for item in datasets:
        files = [item] if isinstance(item, str) else item
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise ConfigError(f"{where}: each dataset is a file name or a list of file names, got {files!r}")
        out.append((env_registry.dataset_name(files, dataset_env), "+".join(Path(f).stem for f in files)))
    return out


def _label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(_label(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _dir_name(*parts: str) -> str:
    text = "-".join(p for p in parts if p)
    return "".join(c if c.isalnum() or c in "._=+-" else "_" for c in text)


def _entry_programs(entry: Mapping, defaults: Mapping, where: str) -> list[Program]:
    """The programs of one [[runs]] entry: algorithms x envs x combinations of its static grid values."""
    names = _names(entry, "algo", "algos", where)
    if names is None:
        raise ConfigError(f'{where}: name the algorithm: algo = "ppo" (`jaxrl list` shows them)')
    seeds = _seeds(entry["seeds"], where) if "seeds" in entry else defaults["seeds"]
    options = _run_options(entry, defaults["options"], where)
    prefix = entry.get("name")
    if prefix is not None and not isinstance(prefix, str):
        raise ConfigError(f"{where}: name must be a string, got {prefix!r}")
    programs = []
    for algo in names:
        try:
            cls = algo_registry.get(algo).Config
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        fixed = _fixed_config(cls, entry, defaults["total_env_steps"], where)
        statics, hypers = _split_grid(cls, entry.get("grid", {}), where)
        for env, label in _targets(entry, algo, where):
            for combo in itertools.product(*statics.values()):
                values = dict(zip(statics, combo))
                name = _dir_name(prefix or algo, label, *(f"{k}={_label(v)}" for k, v in values.items()))
                config = fixed | {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
                programs.append(Program(name, algo, env, config, hypers, seeds, options))
    return programs


def _check_program(program: Program) -> None:
    """Everything :func:`jaxrl.run.train` checks before it compiles: the config, env, grid and run options."""
    from jaxrl.run.train import _plan  # train's own checks, before anything compiles

    where = f"program {program.name}"
    try:
        config = program.make_config()
        opts = program.options
        _plan(
            program.algo, program.env, config, program.seeds, program.grid, opts["num_chunks"],
            opts["eval_episodes"], opts["run_block"], None,
        )  # fmt: skip
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{where}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_report(report: dict) -> dict:
    """[sweep.report]'s options, checked now: the report is written only after every program has run."""
    by = report.get("by")
    if isinstance(by, str):
        report["by"] = by = [by]
    if by is not None and (not isinstance(by, list) or not all(isinstance(b, str) for b in by)):
        raise ConfigError(f"[sweep.report]: by = {by!r} must be a field name or a list of them")
    if not isinstance(report.get("metric", ""), str):
        raise ConfigError(f"[sweep.report]: metric = {report['metric']!r} must be a metric's name")
    if "target" in report and not _is_real(report["target"]):
        raise ConfigError(f"[sweep.report]: target = {report['target']!r} must be a number")
    if "reps" in report:
        _integer(report["reps"], "reps", "[sweep.report]")
    return report


def plan(spec: Mapping, out: str | Path | None = None) -> Sweep:
    """Check a whole spec (:func:`load_spec`'s dict) and list its programs; nothing compiles, nothing is written.

    ``out`` replaces the spec's ``[sweep] out``. Raises ``ValueError`` (a ``ConfigError``) or ``FileNotFoundError``
    with a one-line message naming the problem."""
    spec = _check_keys(spec, ("sweep", "runs"), "the spec")
    head = _check_keys(spec.get("sweep", {}), SWEEP_KEYS, "[sweep]")
    report = _check_report(_check_keys(head.get("report", {}), REPORT_KEYS, "[sweep.report]"))
    out = out if out is not None else head.get("out")
    if not isinstance(out, str | Path) or not str(out):
        raise ConfigError('the sweep has no output directory: set [sweep] out = "runs/NAME" or pass --out DIR')
    defaults = {
        "seeds": _seeds(head.get("seeds", 1), "[sweep]"),
        "options": _run_options(head, RUN_OPTIONS, "[sweep]"),
        "total_env_steps": head.get("total_env_steps"),
    }
    entries = spec.get("runs")
    if not isinstance(entries, list) or not entries:
        raise ConfigError('the spec has no [[runs]] entries: add one, e.g. [[runs]] algo = "ppo"')
    programs: list[Program] = []
    for i, entry in enumerate(entries):
        where = f"[[runs]] #{i + 1}" + (f" ({entry.get('algo')})" if isinstance(entry, Mapping) else "")
        programs += _entry_programs(_check_keys(entry, ENTRY_KEYS, where), defaults, where)
    seen: dict[str, Program] = {}
    for program in programs:
        if program.name in seen:
            raise ConfigError(
                f"two programs would share the run directory {program.name!r}: give their [[runs]] entries "
                f'different names (name = "...")'
            )
        seen[program.name] = program
    for program in programs:
        _check_program(program)
    cache, wandb = head.get("compilation_cache"), head.get("wandb")
    if not isinstance(head.get("tensorboard", True), bool) or not all(
        isinstance(v, str | bool | None) for v in (cache, wandb)
    ):
        raise ConfigError(
            "[sweep]: tensorboard must be true or false, compilation_cache a directory or false, wandb a W&B "
            "project name or true/false"
        )
    if wandb is not None:
        from jaxrl.run import wandb_log

        if wandb_log.project_of(wandb) is not None:
            wandb_log.require("[sweep] wandb")  # the extra is installed
    return Sweep(Path(out), programs, dict(spec), head.get("tensorboard", True), cache, report, wandb)


# ---------------------------------------------------------------------------------------------- the record


def _claim(sweep: Sweep) -> None:
    """Write ``<out>/sweep.json`` (the spec and its programs), or check that the one there is this sweep's."""
    out = sweep.out
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"sweep out {out}: {existing} is an existing file, not a directory")
    record: dict[str, Any] = {"spec": sweep.spec, "programs": [p.record() for p in sweep.programs]}
    path = out / RECORD
    if path.is_file():
        _check_same(json.loads(path.read_text()).get("programs", []), record["programs"], out)
        return
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not a sweep directory (no {RECORD}): choose a new out directory")
    ckpt.write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")


def _check_same(old: list[dict], new: list[dict], out: Path) -> None:
    if old == new:
        return
    if len(old) != len(new):
        what = f"it has {len(old)} programs, this spec {len(new)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        keys = [k for k in new[i] if old[i].get(k) != new[i][k]]
        what = f"program {i + 1} ({new[i]['name']}) differs in {', '.join(keys)}"
    raise ValueError(
        f"{out} holds a sweep of a different spec ({out / RECORD}: {what}): run this spec into another out "
        f"directory, or remove {out}"
    )


def _state(run_dir: Path, num_chunks: int) -> str:
    """``"complete"``, ``"resume"`` (a checkpoint to continue from) or ``"new"`` for a program's run directory."""
    if rec_lib.is_finished(run_dir):
        return "complete"
    checkpoints = ckpt.list_checkpoints(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else []
    # the last chunk's checkpoint without a summary needs the one before it (train's resume redoes that chunk)
    if checkpoints and (ckpt.meta(checkpoints[-1])["chunk"] + 1 < num_chunks or len(checkpoints) > 1):
        return "resume"
    return "new"


# ----------------------------------------------------------------------------------------------- running


def _run_program(sweep: Sweep, program: Program, progress: bool, say: Callable[[str], None]) -> str:
    """Run, resume or skip one program; its status afterwards."""
    from jaxrl.run.train import resume, train

    run_dir = sweep.out / program.name
    state = _state(run_dir, program.options["num_chunks"])
    say(f"{program.name}: " + {"complete": "complete, skipped", "resume": "resuming", "new": "running"}[state])
    if state == "complete":
        return "complete"
    common: dict[str, Any] = dict(
        progress=progress, tensorboard=sweep.tensorboard, compilation_cache=sweep.compilation_cache
    )
    if sweep.wandb is not None:
        common["wandb"] = sweep.wandb
    if state == "resume":
        result = resume(run_dir, **common)
    else:
        if run_dir.exists():  # stopped before its first checkpoint: start it again
            shutil.rmtree(run_dir)
        result = train(
            program.algo, program.env, program.make_config(), seeds=program.seeds, grid=program.grid,
            out_dir=run_dir, **program.options, **common,
        )  # fmt: skip
    if result.interrupted:
        return "interrupted"
    return "resumed" if state == "resume" else "ran"


def _default_by(programs: Sequence[Program]) -> list[str] | None:
    """Several algorithms: group by algorithm and every field the sweep varies; one: the report's default."""
    if len({p.algo for p in programs}) == 1:
        return None
    by = ["algo"] + (["env"] if len({p.env for p in programs}) > 1 else [])
    varied = {k for p in programs for k, v in p.grid.items() if len(v) > 1}
    for p in programs:  # config fields that differ between programs of one algorithm (static grid fields)
        same_algo = [q for q in programs if q.algo == p.algo]
        varied |= {k for k in p.config if len({json.dumps(q.config.get(k)) for q in same_algo}) > 1}
    return by + sorted(varied)


def write_report(sweep: Sweep) -> dict:
    """:func:`jaxrl.run.report.report` over every program's run directory, written to ``<out>/report``."""
    from jaxrl.run.report import report

    options = dict(sweep.report)
    by = options.pop("by", None) or _default_by(sweep.programs)
    run_dirs = [sweep.out / p.name for p in sweep.programs]
    return report(run_dirs, by=by, out_dir=sweep.out / "report", **options)


def run(
    spec: str | Path | Mapping,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or continue) the sweep of ``spec`` (a spec file or :func:`load_spec`'s dict) into ``out`` (default:
    the spec's ``[sweep] out``): each program not yet complete in turn, then the report.

    The whole spec is checked first (:func:`plan`). ``progress``: train's progress bars and messages; ``say``
    receives one line per program (default: printed to stderr)."""
    sweep = plan(spec if isinstance(spec, Mapping) else load_spec(spec), out)
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    _claim(sweep)
    status = {p.name: "not run" for p in sweep.programs}
    interrupted = False
    with rec_lib.StopRequest() as stop:
        for i, program in enumerate(sweep.programs):
            if stop.signal_name is not None:
                interrupted = True
                break
            numbered = lambda line, i=i: say(f"sweep [{i + 1}/{len(sweep.programs)}] {line}")
            status[program.name] = _run_program(sweep, program, progress, numbered)
            if status[program.name] == "interrupted":
                interrupted = True
                break
    interrupted = interrupted or stop.signal_name is not None and "not run" in status.values()
    summaries = {
        name: json.loads((sweep.out / name / "summary.json").read_text())
        for name in status
        if (sweep.out / name / "summary.json").is_file()
    }
    report = None if interrupted else write_report(sweep)
    return SweepResult(sweep, status, summaries, report, interrupted)


# ------------------------------------------------------------------------------------------------- the CLI


def main(argv: Sequence[str]) -> int:
    """``jaxrl sweep SPEC [--out DIR] [--dry-run] [--no-progress]``."""
    from jaxrl.run.report import markdown

    parser = argparse.ArgumentParser(
        prog="jaxrl sweep",
        description="algorithms x envs/datasets x grids x seeds from a TOML or YAML spec; run it again to resume",
    )
    parser.add_argument("spec", help="the spec file (.toml, or .yaml/.yml with pyyaml); schema: jaxrl.run.sweep")
    parser.add_argument("--out", default=None, help="the sweep's directory (default: the spec's [sweep] out)")
    parser.add_argument("--dry-run", action="store_true", help="check the spec and list its programs; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(list(argv))
    if args.dry_run:
        sweep = plan(load_spec(args.spec), args.out)
        for p in sweep.programs:
            state = _state(sweep.out / p.name, p.options["num_chunks"])
            axes = " x ".join(f"{k}[{len(v)}]" for k, v in p.grid.items())
            print(
                f"{p.name}: {p.algo} on {p.env}, seeds[{len(p.seeds)}]" + (f" x {axes}" if axes else "") + f" ({state})"
            )
        print(f"{len(sweep.programs)} programs into {sweep.out}")
        return 0
    result = run(args.spec, args.out, progress=not args.no_progress)
    counts = {s: list(result.status.values()).count(s) for s in dict.fromkeys(result.status.values())}
    print(f"sweep {result.sweep.out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if result.interrupted:
        print(f"interrupted: run `jaxrl sweep {args.spec}` again to continue where it stopped", file=sys.stderr)
        return 0
    assert result.report is not None
    print(markdown(result.report).split("\n## Run directories")[0].rstrip())
    print(f"wrote {', '.join(result.report['files'])}")
    return 0
