"""The golden run of an algorithm, its fingerprint, the platform it ran on, and the comparison with a fixture.

:func:`golden_run` returns (all keys are strings):

- ``metric/<name>``: every array of ``TrainResult.metrics`` (``[seeds, chunks, ...]``) and ``run/env_steps``;
- per leaf of the final state, keyed by its tree path (``jax.tree_util.keystr``):
  ``state/<path>`` float64 ``[sum, sum of squares, sum of |x|]`` (each an exactly rounded ``math.fsum``, so it
  does not depend on numpy's summation order), ``spec/<path>`` the dtype and shape (``float32[2,16]``) and
  ``digest/<path>`` the SHA-256 of the leaf's bytes.

A fixture ``tests/golden/<name>.npz`` stores them (nothing needs pickle), the per-leaf entries packed into one
array each (:func:`save_fixture`); no parameters are stored, only their fingerprints.

``MANIFEST.json`` records, per fixture, the case it ran, the date and the platform (versions, CPU, ISA flags,
XLA flags). The comparison is exact (every array equal, every digest equal) when the fixture's platform
signature (:data:`EXACT_KEYS`) equals the current one; otherwise it is tolerant (``rtol=1e-5, atol=1e-6``; for
a state leaf's sum the ``atol`` scales with its sum of ``|x|``; digests are not compared): XLA:CPU picks kernels by
CPU and ISA, and another jax/jaxlib compiles differently, so there the last bits may differ.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform as platform_lib
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parent
MANIFEST = GOLDEN_DIR / "MANIFEST.json"
DATASET_FILE = GOLDEN_DIR / "offline_dataset.npz"  # the tiny random-policy Pendulum-v1 dataset of offline cases
RECORD_COMMAND = "python tests/golden/record.py"
RTOL, ATOL = 1e-5, 1e-6
SEEDS = [0, 1]
RUN = dict(
    seeds=SEEDS,
    num_chunks=2,
    eval_episodes=1,
    progress=False,
    run_block=2,
    out_dir=None,
    checkpoint=False,
    tensorboard=False,
)
# The platform facts that must all be equal for an exact comparison.
EXACT_KEYS = ("backend", "jax", "jaxlib", "cpu_vendor", "cpu_family", "cpu_model_number", "isa_flags", "xla_flags")

# Reference returns of the golden dataset (as tests/conftest.py's TINY_REFS), so normalised scores are defined.
DATASET_REFS = dict(random_return=-1200.0, expert_return=-150.0)
DATASET_ROWS = 400


# ------------------------------------------------------------------------------------------------ platform


def platform() -> dict[str, Any]:
    """What decides the bits of a compiled program: versions, CPU, its ISA flags, XLA's flags."""
    import importlib.metadata as md

    import jax
    import jaxlib

    import jaxrl  # noqa: F401  (importing jaxrl sets its XLA_FLAGS default)
    from jaxrl.run.recorder import host_cpu

    cpu = host_cpu()  # what a run's config.json records as "host"
    versions = {}
    for pkg in ("flax", "optax", "distrax", "gymnax"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        **versions,
        "machine": platform_lib.machine(),
        "cpu_model": cpu["model"],
        "cpu_vendor": cpu["vendor"],
        "cpu_family": cpu["family"],
        "cpu_model_number": cpu["model_number"],
        "isa_flags": cpu["isa"],
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "backend": jax.default_backend(),  # the goldens are recorded on CPU; a GPU run is compared tolerantly
        "devices": [str(d) for d in jax.local_devices()],
    }


def exact_mismatch(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The platform facts of :data:`EXACT_KEYS` that differ (empty: the comparison is exact)."""
    return {k: (recorded.get(k), current.get(k)) for k in EXACT_KEYS if recorded.get(k) != current.get(k)}


# ------------------------------------------------------------------------------------------------- dataset


def make_dataset():
    """The golden offline dataset: DATASET_ROWS random-policy Pendulum-v1 transitions (no training)."""
    import jax

    import jaxrl.envs
    from jaxrl.data import dataset as ds
    from jaxrl.run import generate

    env, params = jaxrl.envs.make("Pendulum-v1")
    info = ds.DatasetInfo(name="golden", kind="random", env_name="Pendulum-v1", **DATASET_REFS)
    return generate.rollout_dataset(env, params, None, jax.random.PRNGKey(0), DATASET_ROWS, info=info)


def write_dataset(path: Path = DATASET_FILE) -> None:
    from jaxrl.data import formats

    tmp = path.with_name(path.stem + ".partial.npz")
    formats.save(make_dataset(), tmp, format="npz")
    tmp.replace(path)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def offline_env():
    """``(OfflineEnv, env_params)`` of the stored golden dataset (read from the file: a refactor of the dataset
    generation code cannot change the offline goldens' input)."""
    from jaxrl.algos.offline import common as oc
    from jaxrl.data import formats

    if not DATASET_FILE.exists():
        raise FileNotFoundError(
            f"the golden offline dataset {DATASET_FILE} is missing: `{RECORD_COMMAND}` writes it "
            f"(and then every offline fixture must be recorded again)"
        )
    return oc.make_offline_env(formats.load(DATASET_FILE, format="npz"))


# ------------------------------------------------------------------------------------------------ the run


def build(name: str):
    """``(env, config)`` of ``name``'s golden case, as :func:`jaxrl.run.train` takes them."""
    from golden import cases
    from jaxrl import algos, envs

    case = cases.case(name)
    module = algos.get(name)
    config = module.Config(**case.config)
    if case.dataset:
        env = offline_env()
    elif case.env_kwargs:
        env = envs.make(case.env, **case.env_kwargs)
    else:
        env = case.env
    return env, config


def _leaf_array(x) -> np.ndarray:
    import jax

    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _spec(a: np.ndarray) -> str:
    return f"{a.dtype}[{','.join(map(str, a.shape))}]"


def fingerprint(state) -> dict[str, np.ndarray]:
    """Per leaf of ``state`` (keyed by its tree path): ``state/`` [sum, sum of squares, sum of |x|] in float64
    (exactly rounded), ``spec/`` dtype and shape, ``digest/`` SHA-256 of the bytes."""
    import jax

    out: dict[str, np.ndarray] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        key = jax.tree_util.keystr(path)
        a = _leaf_array(leaf)
        values = np.asarray(a, np.float64).ravel().tolist()  # exact for every float32/int32/bool value
        out[f"state/{key}"] = np.array(
            [math.fsum(values), math.fsum(v * v for v in values), math.fsum(abs(v) for v in values)], np.float64
        )
        out[f"spec/{key}"] = np.asarray(_spec(a))
        out[f"digest/{key}"] = np.asarray(hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())
    return out


def golden_run(name: str) -> dict[str, np.ndarray]:
    """Run ``name``'s golden case (2 seeds, 2 chunks, run_block=2, nothing written) and return every metric array
    (``metric/<name>``), the env steps per chunk (``run/env_steps``) and the final state's fingerprint."""
    from jaxrl.run import train

    env, config = build(name)
    result = train(name, env, config, **RUN)
    out = {f"metric/{k}": np.asarray(v) for k, v in result.metrics.items()}
    out["run/env_steps"] = np.asarray(result.env_steps)
    out.update(fingerprint(result.state))
    return out


# ------------------------------------------------------------------------------------------------ fixtures


def fixture_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.npz"


def save_fixture(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` compactly: metrics as they are; the per-leaf entries packed into one array each
    (``leaves/path``, ``leaves/fingerprint`` [n, 3], ``leaves/spec``, ``leaves/digest`` [n, 32] bytes)."""
    paths = [k[len("state/") :] for k in arrays if k.startswith("state/")]
    packed = {k: v for k, v in arrays.items() if not k.startswith(("state/", "spec/", "digest/"))}
    packed["leaves/path"] = np.asarray(paths, dtype=str)
    packed["leaves/fingerprint"] = np.stack([arrays[f"state/{p}"] for p in paths]) if paths else np.zeros((0, 3))
    packed["leaves/spec"] = np.asarray([str(arrays[f"spec/{p}"]) for p in paths], dtype=str)
    packed["leaves/digest"] = np.asarray(
        [np.frombuffer(bytes.fromhex(str(arrays[f"digest/{p}"])), np.uint8) for p in paths], np.uint8
    ).reshape(len(paths), 32)
    path = fixture_path(name)
    tmp = path.with_name(path.stem + ".partial.npz")
    np.savez_compressed(tmp, **packed)
    tmp.replace(path)


def load_fixture(name: str) -> dict[str, np.ndarray]:
    """The arrays :func:`golden_run` returned when the fixture was recorded (as :func:`save_fixture` wrote them)."""
    with np.load(fixture_path(name), allow_pickle=False) as z:
        packed = {k: z[k] for k in z.files}
    out = {k: v for k, v in packed.items() if not k.startswith("leaves/")}
    for i, p in enumerate(packed["leaves/path"].tolist()):
        out[f"state/{p}"] = packed["leaves/fingerprint"][i]
        out[f"spec/{p}"] = np.asarray(str(packed["leaves/spec"][i]))
        out[f"digest/{p}"] = np.asarray(packed["leaves/digest"][i].tobytes().hex())
    return out


def read_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def write_manifest(manifest: dict[str, Any]) -> None:
    tmp = MANIFEST.with_suffix(".partial")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(MANIFEST)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------- comparison


def _same_leaf(expected, actual, old: str, new: str, exact: bool) -> bool:
    if str(expected[f"spec/{old}"]) != str(actual[f"spec/{new}"]):
        return False
    if exact:
        return str(expected[f"digest/{old}"]) == str(actual[f"digest/{new}"])
    want, got = expected[f"state/{old}"], actual[f"state/{new}"]
    return bool(
        np.allclose(got[1:], want[1:], rtol=RTOL, atol=ATOL) and abs(got[0] - want[0]) <= ATOL + RTOL * abs(want[2])
    )


def _rename_moved_leaves(expected, actual, exact: bool):
    """``actual`` with state leaves that only moved (a refactor renamed a state field, or put params and optimiser
    state into one record) filed under their recorded paths: each recorded path missing from the new state is
    paired with an unpaired new path whose leaf has the same dtype, shape and value (the same bytes when exact).
    Leaves with equal values are interchangeable, so a greedy pairing is as good as any; an unpaired leaf stays
    and is reported as missing or new."""
    old_paths = [k[len("state/") :] for k in expected if k.startswith("state/")]
    new_paths = [k[len("state/") :] for k in actual if k.startswith("state/")]
    missing = [p for p in old_paths if p not in set(new_paths)]
    unpaired = [p for p in new_paths if p not in set(old_paths)]
    if not missing or not unpaired:
        return actual
    out = dict(actual)
    for old in missing:
        match = next((new for new in unpaired if _same_leaf(expected, actual, old, new, exact)), None)
        if match is None:
            continue
        unpaired.remove(match)
        for kind in ("state", "spec", "digest"):
            out[f"{kind}/{old}"] = out.pop(f"{kind}/{match}")
    return out


def compare(
    name: str, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], exact: bool, note: str = ""
) -> list[str]:
    """Every difference between a fixture and a new run, as messages (empty: equal)."""
    problems: list[str] = []
    actual = _rename_moved_leaves(expected, actual, exact)
    for prefix, what in (("metric/", "metric names"), ("state/", "state leaf paths")):
        old = {k[len(prefix) :] for k in expected if k.startswith(prefix)}
        new = {k[len(prefix) :] for k in actual if k.startswith(prefix)}
        if old != new:
            problems.append(f"{name}: the {what} changed: missing {sorted(old - new)}, new {sorted(new - old)}")
    for key in sorted(set(expected) & set(actual)):
        want, got = expected[key], actual[key]
        try:
            if key.startswith("digest/"):
                if exact and str(want) != str(got):
                    leaf = key[len("digest/") :]
                    problems.append(
                        f"{name}: {leaf}: the leaf's bytes changed (sum, sum of squares, sum |x|: "
                        f"{expected['state/' + leaf].tolist()} -> {actual['state/' + leaf].tolist()})"
                    )
            elif key.startswith("spec/"):
                if str(want) != str(got):
                    problems.append(f"{name}: {key[5:]}: dtype/shape {want} -> {got}")
            elif exact:
                np.testing.assert_array_equal(got, want, err_msg=f"{name}: {key} (exact comparison)", strict=True)
            elif key.startswith("state/"):
                # sum: |delta| <= atol + rtol * sum|x| (the terms' scale, not the possibly cancelled sum)
                np.testing.assert_allclose(got[1:], want[1:], rtol=RTOL, atol=ATOL, err_msg=f"{name}: {key} {note}")
                np.testing.assert_allclose(
                    got[0], want[0], rtol=0, atol=ATOL + RTOL * abs(want[2]), err_msg=f"{name}: {key} (sum) {note}"
                )
            else:
                np.testing.assert_equal(got.shape, want.shape, err_msg=f"{name}: {key} shape")
                np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{name}: {key} {note}")
        except AssertionError as e:
            problems.append(str(e).strip())
    return problems


def golden_cases(group: str):
    """``parametrize`` over the algorithms of one test file's ``group``, marked integration and slow: ~12 min on
    2 cores in all, run by hand around every refactor step until the fixtures are known to hold on CI's CPU too
    (the comparison is exact only on the recording's platform)."""
    import pytest

    from golden import cases

    return pytest.mark.parametrize(
        "name", [pytest.param(n, marks=(pytest.mark.integration, pytest.mark.slow)) for n in cases.names(group)]
    )


def without_new_monitor_metrics(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> dict:
    """``actual`` less the per-task monitoring metrics (:mod:`jaxrl.algos.multitask.monitor`) its fixture predates:
    monitoring was added after the multi-task fixtures were recorded and changes nothing they hold, so the
    comparison selects the metrics the fixture has (a monitoring metric it does record is still compared)."""
    from jaxrl.algos.multitask.monitor import is_monitor_metric

    new = lambda key: key.startswith("metric/") and key not in expected and is_monitor_metric(key[len("metric/") :])
    return {k: v for k, v in actual.items() if not new(k)}


def differences(name: str) -> list[str]:
    """Rerun ``name``'s golden case: how it differs from the fixture (exactly on the recording's platform); empty
    when it reproduces it. A missing or stale fixture raises, naming the record command."""
    from golden import cases

    cmd = f"{RECORD_COMMAND} {name}"
    manifest = read_manifest()
    entry = manifest.get("fixtures", {}).get(name)
    if not fixture_path(name).exists() or entry is None:
        raise AssertionError(
            f"no golden fixture for {name!r} ({fixture_path(name)} or its MANIFEST.json entry is "
            f"missing): record it with `{cmd}` (before changing what the algorithm computes)"
        )
    case = cases.case(name).describe()
    if entry.get("case") != case:
        raise AssertionError(
            f"{name}: the golden case changed since it was recorded ({entry.get('case')} -> {case}); "
            f"record it again with `{cmd}` from code that computes what the fixture's did"
        )
    dataset_sha = file_sha256(DATASET_FILE) if DATASET_FILE.exists() else None
    if case["dataset"] and entry.get("dataset_sha256") != dataset_sha:
        raise AssertionError(
            f"{name}: the golden dataset {DATASET_FILE.name} is missing or not the one the fixture "
            f"was recorded on; restore it (git) or record every offline fixture again with "
            f"`{RECORD_COMMAND}`"
        )
    mismatch = exact_mismatch(entry["platform"], platform())
    exact = not mismatch
    note = (
        ""
        if exact
        else (
            f"[tolerant comparison rtol={RTOL}, atol={ATOL}: this platform differs from the recording's in "
            f"{mismatch} (recorded, current); XLA:CPU picks kernels by CPU/ISA and version, so the last bits may "
            f"differ here; a bit-exact check needs the recording's platform]"
        )
    )
    if not exact:
        warnings.warn(f"{name}: golden comparison is tolerant, not bit-exact {note}", stacklevel=2)
    expected = load_fixture(name)
    problems = compare(name, expected, without_new_monitor_metrics(expected, golden_run(name)), exact, note)
    if not problems:
        return []
    head = (
        f"{name}: the golden run differs from tests/golden/{name}.npz ({'exact' if exact else 'tolerant'} "
        f"comparison, {len(problems)} difference(s)). If the change is intended, record it again with `{cmd}`."
    )
    shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
    return [head, *shown] + ([note] if note else [])
