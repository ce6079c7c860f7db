"""Every field read from a checkpoint is validated: bad weights, a config that is not one, a bad
dtype and tampered resume state are one line and exit status 2, never used silently."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import evaluate, predict, train

RUN = ["--model", "mlp", "--limit", "200", "--epochs", "1", "--batch-size", "50", "--threads", "1"]


def _cli(command: Any, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return command.main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("run")
    assert _cli(train, [*RUN, "--out", str(directory)])[0] == 0
    return directory


def _tampered(source: Path, target: Path, change: Callable[[dict[str, np.ndarray[Any, Any]], dict[str, Any]], None]) -> Path:
    """A copy of ``source`` with its arrays and metadata changed by ``change``."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    metadata = json.loads(str(arrays.pop("metadata")[()]))
    change(arrays, metadata)
    np.savez(target, **arrays, metadata=np.array(json.dumps(metadata)))
    return target


def _nan_weight(arrays: dict[str, Any], metadata: dict[str, Any]) -> None:
    weights = arrays["layers.1.w"].copy()
    weights[3, 4], weights[0, 0] = np.nan, np.inf
    arrays["layers.1.w"] = weights


def _float64_leaf(arrays: dict[str, Any], metadata: dict[str, Any]) -> None:
    arrays["layers.0.b"] = arrays["layers.0.b"].astype(np.float64)


BAD_WEIGHTS = [
    (_nan_weight, "checkpoint layers.1.w: 2 of 30,000 values are NaN or infinite (the weights of a diverged run?)"),
    (_float64_leaf, "checkpoint layers.0.b: expected dtype float32 (the checkpoint's config.dtype), got float64"),
    (lambda arrays, metadata: metadata.update(config=[1, 2]), "{path}: metadata config: expected a mapping of the run's settings, got list"),
    (lambda arrays, metadata: metadata["config"].update(dtype="int8"), "{path}: metadata config.dtype: expected 'float32' or 'float64', got 'int8'"),
]


@pytest.mark.parametrize(("change", "message"), BAD_WEIGHTS, ids=["nan", "mixed-dtypes", "config-not-a-mapping", "bad-dtype"])
def test_bad_weights_and_metadata_are_refused_by_evaluate_and_predict(
    run: Path, tmp_path: Path, change: Any, message: str
) -> None:
    path = _tampered(run / "best.npz", tmp_path / "bad.npz", change)
    assert _cli(evaluate, [str(path)]) == (2, "", f"error: {message.format(path=path)}\n")
    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), np.uint8))
    assert _cli(predict, ["--checkpoint", str(path), str(digit)]) == (2, "", f"error: {message.format(path=path)}\n")


def _interrupted(order: np.ndarray[Any, Any]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def change(arrays: dict[str, Any], metadata: dict[str, Any]) -> None:
        arrays["resume/order"] = order
        metadata.update(kind="interrupted", epoch=0, history=[], progress={**metadata["progress"], "batch": 1})

    return change


TAMPERED_STATE = [
    (_interrupted(np.arange(5)), "{path}: resume/order: expected 200 indices in [0, 200) (the training images, 1 times each), got 5 from 0 to 4"),
    (_interrupted(np.arange(200) + 1), "{path}: resume/order: expected 200 indices in [0, 200) (the training images, 1 times each), got 200 from 1 to 200"),
    (_interrupted(np.linspace(0, 1, 200)), "{path}: resume/order: expected a 1-D integer array, got float64 of shape (200,)"),
    (lambda arrays, metadata: metadata.update(rng_state="seed 0"), "{path}: rng_state: not the state of a PCG64 generator"),
    (lambda arrays, metadata: metadata.update(epoch=7), "{path}: epoch: expected a finished-epoch count in [0, 1], got 7"),
    (lambda arrays, metadata: metadata.update(history=[]), "{path}: history: expected 1 entries (one per finished epoch), got 0"),
    (lambda arrays, metadata: metadata["progress"].update(seen=-3), "{path}: progress: expected non-negative running sums, got"),
    (lambda arrays, metadata: metadata.update(config="lenet5"), "{path}: metadata config: expected a mapping of the run's settings, got str"),
    (_nan_weight, "checkpoint layers.1.w: 2 of 30,000 values are NaN or infinite (the weights of a diverged run?)"),
    (lambda arrays, metadata: metadata.update(epoch=float("inf")), "{path}: epoch: expected a whole number, got inf"),
    (lambda arrays, metadata: metadata["progress"].update(batch=1.5), "{path}: progress.batch: expected a whole number, got 1.5"),
]


@pytest.mark.parametrize(("change", "message"), TAMPERED_STATE,
                         ids=["short-order", "order-out-of-range", "float-order", "rng", "epoch", "history", "progress", "config", "nan",
                              "infinite-epoch", "fractional-batch"])  # fmt: skip
def test_tampered_resume_state_is_one_line(run: Path, tmp_path: Path, change: Any, message: str) -> None:
    path = _tampered(run / "last.npz", tmp_path / "last.npz", change)
    status, out, err = _cli(train, ["--resume", str(path), "--epochs", "2"])
    assert status == 2 and out == "" and err.startswith(f"error: {message.format(path=path)}") and err.count("\n") == 1, err
