"""Offline datasets: pure views (known answers), jit/vmap, and file round trips / malformed files."""

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.data import dataset as ds
from jaxrl.data import formats
from jaxrl.data.dataset import DatasetError


def _toy(n_eps=(3, 2), obs_dim=2, act_dim=1, discrete=False, last_timeout=True):
    """Episodes of the given lengths; observations are consistent (s_{t+1} = next row's s)."""
    obs, nxt, act, rew, term, tout = [], [], [], [], [], []
    k = 0
    for e, length in enumerate(n_eps):
        states = np.arange(k, k + length + 1, dtype=np.float32)[:, None] * np.ones((1, obs_dim), np.float32)
        k += length + 1
        obs.append(states[:-1])
        nxt.append(states[1:])
        if discrete:
            act.append(np.arange(length) % 3)
        else:
            act.append(np.linspace(-1, 1, length * act_dim, dtype=np.float32).reshape(length, act_dim))
        rew.append(np.arange(1, length + 1, dtype=np.float32) * (e + 1))
        t = np.zeros(length, np.float32)
        o = np.zeros(length, np.float32)
        if e == len(n_eps) - 1 and last_timeout:
            o[-1] = 1
        else:
            t[-1] = 1
        term.append(t)
        tout.append(o)
    cat = lambda xs: np.concatenate(xs, 0)
    return ds.make_dataset(
        cat(obs),
        cat(act),
        cat(rew),
        cat(nxt),
        cat(term),
        cat(tout),
        info=dict(name="toy", kind="medium", env_name="Toy-v0", random_return=-1.0, expert_return=9.0, seed=3),
    )


# ----------------------------------------------------------------------------------------------- views


def test_dtypes_and_info():
    d = _toy()
    assert d.observations.dtype == np.float32 and d.terminals.dtype == np.float32
    assert d.size == 5 and not d.discrete
    assert d.metadata["env_name"] == "Toy-v0" and d.metadata["seed"] == 3
    assert _toy(discrete=True).actions.dtype == np.int32
    tr = ds.to_transition(d)
    np.testing.assert_array_equal(tr.terminated, d.terminals)


def test_returns_known_answer():
    d = _toy()  # rewards [1, 2, 3 | 2, 4]; ep0 terminal, ep1 timeout
    np.testing.assert_allclose(ds.returns_to_go(d), [6, 5, 3, 6, 4])
    # gamma = 0.5: ep0: 1 + .5*2 + .25*3 = 2.75, 2 + .5*3 = 3.5, 3; ep1: 2 + .5*4 = 4, 4
    np.testing.assert_allclose(ds.monte_carlo_returns(d, 0.5), [2.75, 3.5, 3, 4, 4])
    np.testing.assert_array_equal(ds.episode_ids(d), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(ds.episode_returns(d), [6, 6, 6, 6, 6])
    np.testing.assert_allclose(ds.normalized_score(4.0, -1.0, 9.0), 50.0)


def test_padding_and_mask_views():
    d = ds.pad_to(_toy(last_timeout=False), 8)
    np.testing.assert_allclose(d.mask, [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(ds.returns_to_go(d), [6, 5, 3, 6, 4, 0, 0, 0])
    assert int(ds.num_valid(d)) == 5
    assert ds.episode_ends(d)[4] == 1  # the next row is padding


def test_sample_only_valid_rows_jit():
    d = ds.pad_to(_toy(), 64)
    batch = jax.jit(ds.sample, static_argnums=2)(jax.random.key(0), d, 512)
    assert batch.observations.shape == (512, 2) and batch.mask is None
    assert float(batch.observations.max()) <= 6.0  # padding rows are zeros with reward 0, never drawn:
    assert float(jnp.min(batch.rewards)) >= 1.0
    counts = np.bincount(np.asarray(batch.rewards).astype(int), minlength=5)
    assert counts[1] > 50 and counts[2] > 150  # reward 2 appears on two rows


def test_top_episodes_and_next_actions():
    d = _toy(n_eps=(2, 2, 2))  # returns 3, 6, 9
    np.testing.assert_allclose(ds.top_episodes_mask(d, 0.3), [0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(jax.jit(ds.top_episodes_mask)(d, 0.5), [0, 0, 1, 1, 1, 1])
    na = ds.with_next_actions(d).next_actions
    np.testing.assert_allclose(na[:, 0], np.asarray(d.actions)[[1, 1, 3, 3, 5, 5], 0])


def test_subsample_stack_vmap():
    a, b = _toy(), _toy(n_eps=(2,))
    s = ds.subsample(a, 3, jax.random.key(1))
    assert s.size == 3 and s.mask is None
    assert set(np.asarray(s.rewards).tolist()) <= {1.0, 2.0, 3.0, 4.0}
    st = ds.stack([a, b])
    assert st.observations.shape == (2, 5, 2) and st.mask.shape == (2, 5)
    assert ds.index(st, 1).info.name == "toy"
    rtg = jax.vmap(ds.returns_to_go)(st)
    np.testing.assert_allclose(rtg[1], [3, 2, 0, 0, 0])
    keys = jax.random.split(jax.random.key(2), 2)
    batches = jax.vmap(ds.sample, in_axes=(0, 0, None))(keys, st, 16)
    assert batches.rewards.shape == (2, 16) and float(batches.rewards[1].min()) >= 1.0


# --------------------------------------------------------------------------------------------- validate


@pytest.mark.parametrize(
    "field,mutate,match",
    [
        ("rewards", lambda f: f["rewards"].__setitem__(2, np.nan), r"rewards: contains NaN \(first at index 2\)"),
        ("observations", lambda f: f["observations"].__setitem__((1, 0), np.inf), r"observations: contains inf"),
        ("terminals", lambda f: f["terminals"].__setitem__(1, 0.5), r"terminals: not boolean-valued"),
        ("actions", lambda f: f.__setitem__("actions", f["actions"][:-1]), r"actions: has 4 rows.*mismatched"),
    ],
)
def test_validate_errors(field, mutate, match):
    f = ds.to_numpy(_toy())
    mutate(f)
    with pytest.raises(DatasetError, match=match):
        ds.validate(f)


def test_validate_dims_and_empty():
    d = _toy()
    with pytest.raises(DatasetError, match="actions: action dim 1 does not match.* 3"):
        ds.validate(d, action_dim=3)
    with pytest.raises(DatasetError, match="observations: dimension"):
        ds.validate(d, obs_dim=5)
    with pytest.raises(DatasetError, match="actions: discrete action 2"):
        ds.validate(_toy(discrete=True), action_dim=2)
    f = {k: v[:0] for k, v in ds.to_numpy(d).items()}
    with pytest.raises(DatasetError, match="observations: dataset is empty"):
        ds.validate(f)
    both = ds.to_numpy(d)
    both["timeouts"][2] = 1  # terminal and timeout on the same step: allowed
    ds.validate(both)


# ------------------------------------------------------------------------------------------ round trips


def _assert_same(a, b):
    na, nb = ds.to_numpy(a), ds.to_numpy(b)
    assert na.keys() == nb.keys()
    for k in na:
        assert na[k].dtype == nb[k].dtype, k
        np.testing.assert_array_equal(na[k], nb[k], err_msg=k)
    assert a.info == b.info


@pytest.mark.parametrize("fmt,name", [("d4rl", "x.hdf5"), ("minari", "toy-medium-v0"), ("npz", "x.npz")])
def test_round_trip(tmp_path, fmt, name):
    for d in (_toy(), _toy(discrete=True, last_timeout=False)):
        path = tmp_path / (("disc_" if d.discrete else "") + name)
        formats.save(d, path)
        back = formats.load(path)
        _assert_same(d, back)


def test_minari_layout(tmp_path):
    formats.save(_toy(), tmp_path / "toy-v0", format="minari")
    meta = json.loads((tmp_path / "toy-v0" / "data" / "metadata.json").read_text())
    assert meta["total_episodes"] == 2 and meta["total_steps"] == 5 and meta["data_format"] == "hdf5"
    assert meta["ref_min_score"] == -1.0 and json.loads(meta["action_space"])["shape"] == [1]
    with h5py.File(tmp_path / "toy-v0" / "data" / "main_data.hdf5") as f:
        assert sorted(f.keys()) == ["episode_0", "episode_1"]
        g = f["episode_0"]
        assert g["observations"].shape == (4, 2) and g["actions"].shape == (3, 1)
        assert g.attrs["total_steps"] == 3 and g["terminations"].dtype == bool
        np.testing.assert_array_equal(f["episode_1/truncations"][()], [False, True])


def test_d4rl_without_next_observations(tmp_path):
    d = _toy()
    path = tmp_path / "old.hdf5"
    with h5py.File(path, "w") as f:
        for k in ("observations", "actions", "rewards", "terminals"):
            f.create_dataset(k, data=ds.to_numpy(d)[k])
    back = formats.load(path)
    np.testing.assert_array_equal(back.next_observations[:2], d.next_observations[:2])
    np.testing.assert_array_equal(back.mask, [1, 1, 1, 1, 0])  # last successor unknown


def _write_d4rl_raw(path, **over):
    f = ds.to_numpy(_toy())
    f.update(over)
    with h5py.File(path, "w") as h:
        for k, v in f.items():
            if v is not None:
                h.create_dataset(k, data=v)


@pytest.mark.parametrize(
    "over,match",
    [
        (dict(rewards=np.array([1, np.nan, 3, 2, 4], np.float32)), r"rewards: contains NaN \(first at index 1\)"),
        (dict(actions=np.zeros((4, 1), np.float32)), r"actions: has 4 rows but observations has 5"),
        (dict(terminals=np.array([0, 0, 2, 0, 0], np.int64)), r"terminals: not boolean-valued: 2 at index 2"),
        (dict(rewards=None), r"rewards: missing key"),
        (
            {k: np.zeros((0,) + v.shape[1:], v.dtype) for k, v in ds.to_numpy(_toy()).items()},
            r"observations: dataset is empty",
        ),
    ],
)
def test_malformed_d4rl(tmp_path, over, match):
    path = tmp_path / "bad.hdf5"
    _write_d4rl_raw(path, **over)
    with pytest.raises(DatasetError, match=match):
        formats.load(path)


def test_malformed_action_dim_and_minari(tmp_path):
    path = tmp_path / "ok.hdf5"
    _write_d4rl_raw(path)
    with pytest.raises(DatasetError, match="actions: action dim 1 does not match the env's action dim 2"):
        formats.load(path, action_dim=2)
    mdir = tmp_path / "m-v0"
    formats.save(_toy(), mdir, format="minari")
    meta_path = mdir / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["action_space"] = json.dumps(dict(type="Box", dtype="float32", shape=[3], low=[-1] * 3, high=[1] * 3))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="actions: action dim 1 does not match the env's action dim 3"):
        formats.load(mdir)
    with h5py.File(mdir / "data" / "main_data.hdf5", "a") as f:
        del f["episode_1/observations"]
        f["episode_1"].create_dataset("observations", data=np.zeros((2, 2), np.float32))
    with pytest.raises(DatasetError, match=r"episode_1/observations: \(2,\) rows, expected total_steps \+ 1 = 3"):
        formats.load(mdir)
    with h5py.File(mdir / "data" / "main_data.hdf5", "a") as f:
        del f["episode_0/rewards"]
    with pytest.raises(DatasetError, match="episode_0/rewards: missing key"):
        formats.load(mdir)
    npz = tmp_path / "bad.npz"
    f = ds.to_numpy(_toy())
    f["terminals"] = np.array([0, 0.5, 1, 0, 0], np.float32)
    np.savez(npz, **f)
    with pytest.raises(DatasetError, match="terminals: not boolean-valued"):
        formats.load(npz)


def test_d4rl_metadata_datasets(tmp_path):
    """D4RL-style ``metadata/...`` datasets: scalars/strings are read, large arrays (policy weights) skipped."""
    path = tmp_path / "hopper-medium-v2.hdf5"
    _write_d4rl_raw(path)
    with h5py.File(path, "a") as f:
        f["metadata/algorithm"] = "SAC"
        f["metadata/ref_max_score"] = 3234.3
        f["metadata/policy/fc0/weight"] = np.zeros((64, 64), np.float32)
    d = formats.load(path)
    assert d.metadata["algorithm"] == "SAC" and d.info.expert_return == pytest.approx(3234.3)
    assert "policy/fc0/weight" not in d.metadata and d.info.name == "hopper-medium-v2"
