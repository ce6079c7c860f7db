"""The files of a training run: ``last.npz``, ``best.npz``, ``metrics.json`` and ``error_rate.png``.

``last.npz`` holds the whole ``TrainState`` (parameters, velocity, the epoch's order and running
sums, the generator state, the history), so ``--resume`` continues bit-for-bit. ``best.npz``
holds the parameters with the lowest test error so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.atomic import write_atomically
from lenet_fn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lenet_fn.models import get_model
from lenet_fn.params import tree_flatten_with_paths
from lenet_fn.config import TrainConfig
from lenet_fn.state import EpochMetrics, EpochProgress, TrainState

LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.json"
PLOT = "error_rate.png"


def save_state(path: Path, config: TrainConfig, state: TrainState, *, kind: str) -> Path:
    """Writes a resumable checkpoint of ``state`` (atomically).

    Args:
        path: the ``.npz`` file.
        config: the run's settings.
        state: the state to save.
        kind: ``"last"`` (end of an epoch) or ``"interrupted"`` (mid-epoch), recorded in the metadata.

    Returns:
        ``path``.
    """
    extra: dict[str, dict[str, npt.NDArray[Any]]] = {"velocity": dict(tree_flatten_with_paths(state.velocity))}
    if state.order is not None:
        extra["resume"] = {"order": state.order}
    if state.curvature is not None:
        extra["curvature"] = dict(tree_flatten_with_paths(state.curvature))
    metadata = {
        "kind": kind,
        "config": config.to_dict(),
        "epoch": state.epoch,
        "metrics": attrs.asdict(state.history[-1]) if state.history else None,
        "history": [attrs.asdict(metrics) for metrics in state.history],
        "progress": attrs.asdict(state.progress),
        "rng_state": state.rng_state,
    }
    return save_checkpoint(path, state.params, model=config.model, metadata=metadata, extra=extra)


def save_best(path: Path, config: TrainConfig, state: TrainState) -> Path:
    """Writes the parameters of ``state`` with its latest metrics (no optimiser state)."""
    metadata = {
        "kind": "best",
        "config": config.to_dict(),
        "epoch": state.epoch,
        "metrics": attrs.asdict(state.history[-1]) if state.history else None,
    }
    return save_checkpoint(path, state.params, model=config.model, metadata=metadata)


def load_state(path: Path) -> tuple[TrainConfig, TrainState]:
    """Reads a checkpoint written by ``save_state``; every key and shape is checked against the model."""
    checkpoint = load_checkpoint(path)
    metadata = checkpoint.metadata
    if metadata.get("kind") not in ("last", "interrupted") or "rng_state" not in metadata:
        raise CheckpointError(
            f"{path}: a {metadata.get('kind', 'plain')} checkpoint holds no optimiser state; resume from a run's last.npz"
        )
    if not isinstance(metadata.get("config"), dict):
        raise CheckpointError(f"{path}: metadata config: expected a mapping of the run's settings, got {type(metadata.get('config')).__name__}")
    try:
        config = TrainConfig.from_dict(metadata["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: incomplete training state ({type(error).__name__}: {error})") from None
    try:
        model = get_model(config.model)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    try:
        template = model.init(np.random.default_rng(0), dtype=config.dtype)
        order = checkpoint.extra.get("resume", {}).get("order")
        if order is not None and (order.ndim != 1 or order.dtype.kind not in "iu"):
            raise CheckpointError(f"{path}: resume/order: expected a 1-D integer array, got {order.dtype} of shape {order.shape}")
        state = TrainState(
            params=checkpoint.params(template),
            velocity=checkpoint.extra_tree("velocity", template),
            epoch=int(metadata["epoch"]),
            order=None if order is None else order.astype(np.intp),
            progress=EpochProgress(**metadata["progress"]),
            rng_state=metadata["rng_state"],
            history=tuple(EpochMetrics(**entry) for entry in metadata["history"]),
            curvature=checkpoint.extra_tree("curvature", template) if "curvature" in checkpoint.extra else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: incomplete training state ({type(error).__name__}: {error})") from None
    _check_position(path, config, state)
    return config, state


def _check_position(path: Path, config: TrainConfig, state: TrainState) -> None:
    """The epoch, the history, the running sums and the generator state of a resumed run fit together."""
    if isinstance(state.epoch, bool) or not 0 <= state.epoch <= config.epochs:
        raise CheckpointError(f"{path}: epoch: expected a finished-epoch count in [0, {config.epochs}], got {state.epoch}")
    if len(state.history) != state.epoch:
        raise CheckpointError(f"{path}: history: expected {state.epoch} entries (one per finished epoch), got {len(state.history)}")
    progress = attrs.asdict(state.progress)
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 for value in progress.values()):
        raise CheckpointError(f"{path}: progress: expected non-negative running sums, got {progress}")
    try:
        np.random.default_rng().bit_generator.state = state.rng_state
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: rng_state: not the state of a PCG64 generator ({error})") from None


def check_resumable(path: Path, config: TrainConfig, state: TrainState, count: int) -> None:
    """A resumed epoch's order fits the ``count`` training images it runs on: every image
    ``config.repeat`` times, and the position inside it. A ``CheckpointError`` otherwise."""
    order = state.order
    if order is None:
        return
    expected = count * config.repeat
    if order.shape != (expected,) or (order.size and (order.min() < 0 or order.max() >= count)):
        low, high = (int(order.min()), int(order.max())) if order.size else (0, 0)
        raise CheckpointError(
            f"{path}: resume/order: expected {expected:,} indices in [0, {count:,}) (the training images, "
            f"{config.repeat} times each), got {order.size:,} from {low} to {high}"
        )
    if state.progress.batch * config.batch_size > expected:
        raise CheckpointError(f"{path}: progress.batch: {state.progress.batch} batches of {config.batch_size} are past the epoch's {expected:,} images")


def write_metrics(run_dir: Path, config: TrainConfig, history: tuple[EpochMetrics, ...]) -> Path:
    """Writes ``metrics.json``: the config, every epoch's figures and the best epoch (atomically)."""
    epochs = [attrs.asdict(metrics) for metrics in history]
    best = min(epochs, key=lambda entry: entry["test_error"]) if epochs else None
    document: dict[str, Any] = {"model": config.model, "config": config.to_dict(), "epochs": epochs, "best": best}
    path = run_dir / METRICS
    write_atomically(path, lambda stream: stream.write(json.dumps(document, indent=2).encode()))
    return path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The per-epoch figures of a ``metrics.json``."""
    try:
        document = json.loads(path.read_text())
        epochs: list[dict[str, Any]] = document["epochs"]
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a metrics.json written by lenet_fn.train ({error})") from None
    return epochs
