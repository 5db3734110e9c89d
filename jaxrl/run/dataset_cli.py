"""``jaxrl dataset`` subcommands: generate an offline dataset from a jaxrl env, and describe a dataset file.

jaxrl dataset make ENV --kind {random,medium,expert,medium-replay,medium-expert} --out FILE
                   [--size N] [--seed S] [--behaviour-steps N] [--behaviour-envs N]
jaxrl dataset info FILE
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _make(argv: list[str]) -> int:
    from jaxrl.data import formats
    from jaxrl.run import generate

    parser = argparse.ArgumentParser(
        prog="jaxrl dataset make", description="generate an offline dataset with a SAC behaviour run (D4RL-style kinds)"
    )
    parser.add_argument("env", help="env name (`jaxrl list`), e.g. Pendulum-v1")
    parser.add_argument("--kind", required=True, help=f"one of {list(generate.KINDS)}")
    parser.add_argument("--out", required=True, help="output file: .hdf5/.h5 (D4RL), .npz, or a directory (Minari)")
    parser.add_argument("--size", type=int, default=10_000, help="transitions (random/medium/expert)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--behaviour-steps", type=int, default=60_000, help="env steps of the SAC behaviour run")
    parser.add_argument(
        "--behaviour-envs",
        type=int,
        default=4,
        help="parallel envs of the SAC behaviour run (one "
        "update per step: more envs learn more slowly per step, so medium-replay holds more data)",
    )
    parser.add_argument("--hidden", default="64,64", help="behaviour SAC hidden widths")
    args = parser.parse_args(argv)
    generate.check_kind(args.kind)  # before any training
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    data = generate.make_dataset_kind(
        args.env,
        args.kind,
        size=args.size,
        seed=args.seed,
        total_env_steps=args.behaviour_steps,
        hidden=hidden,
        num_envs=args.behaviour_envs,
    )
    formats.save(data, args.out)
    print(
        f"wrote {args.out}: {data.size} transitions of {args.env} ({args.kind}); reference returns random "
        f"{data.info.random_return:.1f}, expert {data.info.expert_return:.1f}"
    )
    return 0


def describe(path: str) -> dict:
    """What ``jaxrl dataset info`` prints: sizes, episode returns, reference scores, validation result."""
    from jaxrl.data import dataset as ds
    from jaxrl.data import formats
    from jaxrl.envs.offline import array_sha256, file_sha256

    out: dict = {"path": path}
    try:
        data = formats.load(path)
    except ds.DatasetError as e:
        out["validation"] = f"FAILED: {e}"
        return out
    out["validation"] = "ok"
    ends = np.asarray(ds.episode_ends(data)) > 0
    ep_ret = np.asarray(ds.episode_returns(data))[ends]
    info = data.info
    out.update(
        {
            "name": info.name,
            "kind": info.kind,
            "env_name": info.env_name,
            "transitions": int(data.size),
            "valid_transitions": int(ds.num_valid(data)),
            "observation_shape": list(np.shape(data.observations)[1:]),
            "action_shape": list(np.shape(data.actions)[1:]),
            "episodes": int(ends.sum()),
            "terminals": int(np.sum(np.asarray(data.terminals) > 0)),
            "timeouts": int(np.sum(np.asarray(data.timeouts) > 0)),
            "episode_return": {
                "mean": float(ep_ret.mean()),
                "std": float(ep_ret.std()),
                "min": float(ep_ret.min()),
                "max": float(ep_ret.max()),
            },
            "random_return": info.random_return,
            "expert_return": info.expert_return,
            "sha256": file_sha256(path),
            "arrays_sha256": array_sha256(data),
        }
    )
    if info.random_return is not None and info.expert_return is not None and info.expert_return != info.random_return:
        out["normalized_score_of_data"] = float(
            ds.normalized_score(ep_ret.mean(), info.random_return, info.expert_return)
        )
    extra = {k: v for k, v in dict(info.extra).items()}
    if extra:
        out["metadata"] = {
            k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in extra.items()
        }
    return out


def _info(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jaxrl dataset info", description="describe a dataset file")
    parser.add_argument("path")
    args = parser.parse_args(argv)
    from pathlib import Path

    if not Path(args.path).exists():
        raise FileNotFoundError(f"dataset file {args.path!r} does not exist")
    d = describe(args.path)
    print(json.dumps(d, indent=2))
    return 0 if d["validation"] == "ok" else 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "make":
        return _make(rest)
    if command == "info":
        return _info(rest)
    print(f"unknown dataset command {command!r}\n{__doc__}", file=sys.stderr)
    return 2
