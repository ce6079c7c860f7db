"""Checkpoints: round trip, atomic writes, no pickle, and one-line errors for files that do not fit."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lenet_fn import __version__
from lenet_fn.atomic import write_atomically
from lenet_fn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lenet_fn.models import init_lenet5, init_mlp
from lenet_fn.params import LeNet5Params, tree_flatten_with_paths


def test_round_trip_with_metadata_and_extra_arrays(tmp_path: Path) -> None:
    params = init_lenet5(np.random.default_rng(0))
    velocity = init_lenet5(np.random.default_rng(1))
    path = save_checkpoint(
        tmp_path / "run" / "ckpt.npz", params, model="lenet5", metadata={"epoch": 3, "metrics": {"test_error": 0.01}},
        extra={"velocity": dict(tree_flatten_with_paths(velocity)), "resume": {"order": np.arange(5)}},
    )  # fmt: skip
    checkpoint = load_checkpoint(path)
    assert checkpoint.model == "lenet5"
    assert checkpoint.metadata["epoch"] == 3 and checkpoint.metadata["library_version"] == __version__
    assert "c1.w" in checkpoint.arrays and "velocity" not in checkpoint.arrays
    restored = checkpoint.params(init_lenet5(np.random.default_rng(9)))
    assert isinstance(restored, LeNet5Params)
    for (key, original), loaded in zip(tree_flatten_with_paths(params).items(), tree_flatten_with_paths(restored).values(), strict=True):
        np.testing.assert_array_equal(original, loaded, err_msg=key)
        assert loaded.dtype == original.dtype
    np.testing.assert_array_equal(checkpoint.extra_tree("velocity", params).c5.w, velocity.c5.w)
    np.testing.assert_array_equal(checkpoint.extra["resume"]["order"], np.arange(5))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o666 & ~_umask()  # the usual permissions, not mkstemp's 0600


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_keys_and_shapes_are_checked_against_the_model(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "mlp.npz", init_mlp(np.random.default_rng(0)), model="mlp")
    checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"checkpoint does not fit the model mlp: parameters: expected the keys .*missing \['c1.w', 'c1.b'"):
        checkpoint.params(init_lenet5(np.random.default_rng(0)))
    smaller = init_mlp(np.random.default_rng(0), sizes=(784, 30, 10))
    with pytest.raises(CheckpointError, match=r"layers.0.w: expected shape \(30, 784\), got \(300, 784\)"):
        load_checkpoint(save_checkpoint(tmp_path / "m.npz", init_mlp(np.random.default_rng(0), sizes=(784, 300, 10)), model="mlp")).params(smaller)


def test_unreadable_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing.npz: no such file"):
        load_checkpoint(tmp_path / "nothing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match=r"text.npz: not a lenet_fn .npz checkpoint: expected a .npz \(zip\) archive written by lenet_fn, got a file starting with b'hello'"):
        load_checkpoint(tmp_path / "text.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(CheckpointError, match="plain.npz: not a lenet_fn checkpoint .no 'metadata' entry."):
        load_checkpoint(tmp_path / "plain.npz")
    np.savez(tmp_path / "other.npz", metadata=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(CheckpointError, match="other.npz: not a lenet_fn checkpoint .metadata format is 'something else'."):
        load_checkpoint(tmp_path / "other.npz")
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:
        archive.writestr("c1.w.npy", b"\x93NUMPY broken")
    with pytest.raises(CheckpointError, match="cut.npz: not a readable .npz checkpoint: member 'c1.w.npy': .npy format version 32.98, expected 1.0 or 2.0"):
        load_checkpoint(tmp_path / "cut.npz")


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    np.savez(tmp_path / "pickle.npz", metadata=np.array(json.dumps({"format": "lenet_fn.checkpoint", "model": "mlp"})),
             evil=np.array([{"a": 1}], dtype=object))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"pickle.npz: not a readable .npz checkpoint: member 'evil.npy' holds Python objects \(dtype object\), which are never unpickled; expected numbers$"):
        load_checkpoint(tmp_path / "pickle.npz")


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old")

    def failing(stream: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.bin"]  # no temp file left behind
