"""The files of a training run: ``last.npz``, ``best.npz``, ``metrics.json`` and ``error_rate.png``.

``last.npz`` holds the whole ``TrainState`` (parameters, velocity, the epoch's order and running
sums, the generator state, the history), so ``--resume`` continues bit-for-bit. ``best.npz``
holds the parameters with the lowest test error so far (the first epoch that reached it).

``last.npz`` is the run's record: ``RunFiles`` writes it first after an epoch, then ``best.npz``,
``metrics.json`` and the plot, with Ctrl-C and SIGTERM held back until all are written. A run
killed outright (``kill -9``, a power cut) between two of those writes is put right when it
resumes: ``RunFiles.reconcile`` rewrites whichever of the others disagree with ``last.npz``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: run directories are not locked
    fcntl = None  # type: ignore[assignment]

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.atomic import remove_temporaries, write_atomically
from lenet_fn.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, save_checkpoint
from lenet_fn.cli import signals_held
from lenet_fn.models import get_model
from lenet_fn.params import tree_flatten_with_paths
from lenet_fn.plots import plot_error_rates, run_title
from lenet_fn.config import TrainConfig
from lenet_fn.state import EpochMetrics, EpochProgress, TrainState

LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.json"
PLOT = "error_rate.png"
RUN_FILES = (LAST, BEST, METRICS, PLOT)
METRICS_LIMIT = 16 << 20
"""The largest ``metrics.json`` read (bytes): one epoch's entry takes about 300."""


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
    settings = checkpoint_config(path, metadata, required=True)
    try:
        config = TrainConfig.from_dict(settings or {})
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
            epoch=_whole_number(path, "epoch", metadata["epoch"]),
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
    if not 0 <= state.epoch <= config.epochs:  # a whole number already (load_state)
        raise CheckpointError(f"{path}: epoch: expected a finished-epoch count in [0, {config.epochs}], got {state.epoch}")
    if len(state.history) != state.epoch:
        raise CheckpointError(f"{path}: history: expected {state.epoch} entries (one per finished epoch), got {len(state.history)}")
    progress = attrs.asdict(state.progress)
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 for value in progress.values()):
        raise CheckpointError(f"{path}: progress: expected non-negative running sums, got {progress}")
    for counter in ("batch", "errors", "seen"):
        _whole_number(path, f"progress.{counter}", progress[counter])
    try:
        np.random.default_rng().bit_generator.state = state.rng_state
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: rng_state: not the state of a PCG64 generator ({error})") from None


def _whole_number(path: Path, name: str, value: object) -> int:
    """``value`` when it is an integer (not a bool, not a float such as 1e999); else a ``CheckpointError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{path}: {name}: expected a whole number, got {value!r}")
    return value


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
    best = attrs.asdict(best_epoch(history)) if history else None
    document: dict[str, Any] = {"model": config.model, "config": config.to_dict(), "epochs": epochs, "best": best}
    path = run_dir / METRICS
    write_atomically(path, lambda stream: stream.write(json.dumps(document, indent=2).encode()))
    return path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The per-epoch figures of a ``metrics.json``: a ``CheckpointError`` naming the first entry
    that is not an epoch number with error rates in [0, 1]."""
    try:
        size = path.stat().st_size
        if size > METRICS_LIMIT:
            raise CheckpointError(f"{path}: {size:,} bytes, more than a metrics.json holds (at most {METRICS_LIMIT:,})")
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a metrics.json") from None
    except (OSError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: not a metrics.json written by lenet_fn.train ({type(error).__name__}: {error})") from None
    epochs = document.get("epochs") if isinstance(document, dict) else None
    if not isinstance(epochs, list):
        raise CheckpointError(f"{path}: not a metrics.json written by lenet_fn.train (expected an object with a list 'epochs')")
    for index, entry in enumerate(epochs):
        problem = _epoch_entry_problem(entry)
        if problem:
            raise CheckpointError(f"{path}: epochs[{index}]: {problem}")
    return epochs


def _epoch_entry_problem(entry: object) -> str:
    """What is wrong with one entry of a metrics.json's epochs ("" when nothing is)."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    epoch = entry.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f"epoch: expected an integer >= 1, got {epoch!r}"
    for key in ("train_error", "test_error"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            return f"{key}: expected an error rate in [0, 1], got {value!r}"
    return ""


def best_epoch(history: tuple[EpochMetrics, ...]) -> EpochMetrics:
    """The epoch with the lowest test error; of equals, the first (a later one only replaces it
    by doing better)."""
    return min(history, key=lambda metrics: metrics.test_error)


def at_epoch_end(state: TrainState) -> bool:
    """Whether ``state`` holds the weights of its last finished epoch (no step of the next taken)."""
    return state.order is None or state.progress.batch == 0


def describe_position(state: TrainState) -> str:
    """Where a state is in its run: ``end of epoch 2`` or ``epoch 3, batch 41``."""
    if at_epoch_end(state):
        return f"end of epoch {state.epoch}" if state.epoch else "start of the run"
    return f"epoch {state.epoch + 1}, batch {state.progress.batch}"


def _saved_epoch(path: Path) -> int | None:
    """The epoch a ``best.npz`` records (None when it is missing or unreadable)."""
    try:
        epoch = load_checkpoint(path).metadata.get("epoch")
    except CheckpointError:
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


class RunFiles:
    """The files of one run directory, kept in agreement with its ``last.npz``.

    Args:
        run_dir: the directory.
        config: the run's settings.
        plots: whether to draw ``error_rate.png`` (matplotlib is installed).
        resumed_from: the checkpoint the run continues, if any.
        state: the state it continues from (with ``resumed_from``).

    Attributes:
        last_good_path: the newest complete checkpoint this run can be resumed from (None before
            there is one).
        last_good_at: where in the run it is (``end of epoch 2``, ``epoch 3, batch 41``).
    """

    def __init__(self, run_dir: Path, config: TrainConfig, *, plots: bool, resumed_from: Path | None = None,
                 state: TrainState | None = None) -> None:  # fmt: skip
        self.run_dir, self.config, self.plots = run_dir, config, plots
        self._lock = claim_run_dir(run_dir)
        self.resumed_from = resumed_from
        self.last_good_path: Path | None = None
        self.last_good_at = ""
        self._best_on_disk: int | None = None  # the epoch best.npz holds, once read or written
        if resumed_from is not None and state is not None:
            self.last_good_path, self.last_good_at = resumed_from, describe_position(state)

    def end_of_epoch(self, state: TrainState) -> None:
        """Writes ``last.npz``, then brings ``best.npz``, ``metrics.json`` and the plot up to it."""
        with signals_held():
            self.last_good_path = save_state(self.run_dir / LAST, self.config, state, kind="last")
            self.last_good_at = describe_position(state)
            self.reconcile(state)

    def interrupted(self, state: TrainState) -> Path:
        """Writes a resumable ``last.npz`` of a stopped run (mid-epoch, or between epochs) and
        brings the other files up to its history."""
        with signals_held():
            path = save_state(self.run_dir / LAST, self.config, state, kind="interrupted")
            self.last_good_path, self.last_good_at = path, describe_position(state)
            self.reconcile(state)
        return path

    def reconcile(self, state: TrainState) -> list[str]:
        """Puts the directory in agreement with ``state`` (the run's ``last.npz``): removes the
        temp files of writes that were cut short, rewrites ``metrics.json`` and the plot, and
        writes ``best.npz`` when it does not hold the best epoch and ``state`` (or, for a run
        resumed into a new directory, the old directory's ``best.npz``) does. Returns notes on
        what could not be put right."""
        remove_temporaries(self.run_dir, RUN_FILES)
        if not state.history:
            return []
        notes = []
        best = best_epoch(state.history)
        target = self.run_dir / BEST
        if self._best_on_disk is None:
            self._best_on_disk = _saved_epoch(target)
        if self._best_on_disk != best.epoch:
            source = None if self.resumed_from is None else self.resumed_from.parent / BEST
            if best.epoch == state.epoch and at_epoch_end(state):
                save_best(target, self.config, state)
                self._best_on_disk = best.epoch
            elif source is not None and source != target and _saved_epoch(source) == best.epoch:
                write_atomically(target, lambda stream: stream.write(source.read_bytes()))
                self._best_on_disk = best.epoch
            else:
                notes.append(f"{target} does not hold epoch {best.epoch}, the best one, and no file left holds its weights")
        self._write_summaries(state)
        return notes

    def _write_summaries(self, state: TrainState) -> None:
        write_metrics(self.run_dir, self.config, state.history)
        if self.plots:
            plot_error_rates([attrs.asdict(entry) for entry in state.history], self.run_dir / PLOT, title=run_title(self.config.model, self.run_dir))


class RunDirLock:
    """An exclusive ``flock`` on a run directory itself (no file of its own), released when this
    object is closed or collected, or the process ends."""

    def __init__(self, run_dir: Path) -> None:
        self.descriptor: int | None = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise CheckpointError(f"{run_dir}: another run is writing there; wait for it to end or choose another --out") from None

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None

    def __del__(self) -> None:
        self.close()


def claim_run_dir(run_dir: Path) -> RunDirLock | None:
    """Makes ``run_dir`` this process's while the returned lock lives (to be kept): a
    ``CheckpointError`` when another run holds it. Without ``fcntl`` (Windows) nothing is locked."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunDirLock(run_dir) if fcntl is not None else None


def existing_run_files(run_dir: Path) -> list[str]:
    """The names of the run files ``run_dir`` already holds."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]
