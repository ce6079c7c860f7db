"""A run's state: ``TrainState`` (everything a run needs to continue exactly), its per-epoch
history, the data it trains on, and the two ways a run stops early.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, IntArray, check_float_dtype
from lenet_fn.config import TrainConfig
from lenet_fn.data import Mnist, subset
from lenet_fn.optim import momentum_init
from lenet_fn.protocol import Model


@attrs.frozen
class EpochMetrics:
    """One line of training history.

    Attributes:
        epoch: 1-based.
        loss: the mean training loss over the epoch's batches.
        train_error: the error on the training batches as they were seen during the epoch.
        test_error: the error on the test set (or the held-out training images) after the epoch.
        seconds: training time of the epoch (without the test evaluation).
        images_per_second: training images per second.
        eval_seconds: time of the test evaluation.
        lr: the epoch's scheduled learning rate (before any warm-up factor).
    """

    epoch: int
    loss: float
    train_error: float
    test_error: float
    seconds: float
    images_per_second: float
    eval_seconds: float
    lr: float


@attrs.frozen
class EpochProgress:
    """The running sums of the epoch in progress (zero at its start)."""

    batch: int = 0
    loss_sum: float = 0.0
    errors: int = 0
    seen: int = 0
    seconds: float = 0.0


@attrs.frozen(eq=False)
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    Attributes:
        params: the parameters.
        velocity: the momentum state.
        epoch: the 0-based epoch in progress (or next to start).
        order: the sample order of the epoch in progress; ``None`` between epochs.
        progress: the running sums of the epoch in progress.
        rng_state: the state of the generator that draws epoch orders.
        history: the metrics of the finished epochs.
        curvature: with SDLM, the curvature last estimated in the epoch in progress.
    """

    params: Any
    velocity: Any
    epoch: int
    order: IntArray | None
    progress: EpochProgress
    rng_state: dict[str, Any]
    history: tuple[EpochMetrics, ...]
    curvature: Any = None


def initial_state(model: Model[Any], config: TrainConfig) -> TrainState:
    """A fresh run: weights drawn from ``config.seed``, zero velocity, epoch 0."""
    rng = np.random.default_rng(config.seed)
    params = model.init(rng, dtype=config.dtype)
    return TrainState(
        params=params,
        velocity=momentum_init(params),
        epoch=0,
        order=None,
        progress=EpochProgress(),
        rng_state=dict(rng.bit_generator.state),
        history=(),
    )


class TrainingInterrupted(Exception):
    """Ctrl-C (or SIGTERM, raised as a ``KeyboardInterrupt``) during ``fit``; ``state`` is the last
    complete step, ready to save and resume; ``interrupt`` is what stopped it."""

    def __init__(self, state: TrainState, interrupt: KeyboardInterrupt | None = None) -> None:
        super().__init__("training interrupted")
        self.state = state
        self.interrupt = interrupt if interrupt is not None else KeyboardInterrupt()


class TrainingDiverged(Exception):
    """The loss or the weights became NaN or infinite; ``state`` is a state before it whose weights
    are finite (the one before the step whose loss was not, or the start of the epoch)."""

    def __init__(self, message: str, state: TrainState) -> None:
        super().__init__(message)
        self.state = state


@attrs.frozen(eq=False)
class PreparedData:
    """Model inputs and labels for training and testing (``test_x`` and ``test_y`` hold the
    held-out training images of a run with ``holdout``)."""

    train_x: FloatArray
    train_y: IntArray
    test_x: FloatArray
    test_y: IntArray


def prepare_data(
    model: Model[Any], dataset: Mnist, *, limit: int | None = None, holdout: int | None = None, dtype: npt.DTypeLike = np.float32
) -> PreparedData:
    """The dataset in the model's input format: the first ``limit`` training images only, and
    with ``holdout`` the last ``holdout`` training images in place of the test set (the images
    trained on are then the first ``limit`` of the ones before them)."""
    dtype = check_float_dtype("dtype", dtype)
    train_images, train_labels = dataset.train_images, dataset.train_labels
    test_images, test_labels = dataset.test_images, dataset.test_labels
    if holdout is not None:
        count = train_images.shape[0]
        if isinstance(holdout, bool) or not isinstance(holdout, int) or not 1 <= holdout < count:
            raise ValueError(f"holdout: expected an integer in [1, {count - 1}] (training images to hold out), got {holdout!r}")
        test_images, test_labels = train_images[count - holdout :], train_labels[count - holdout :]
        train_images, train_labels = train_images[: count - holdout], train_labels[: count - holdout]
    train_images, train_labels = subset(train_images, train_labels, limit)
    return PreparedData(
        train_x=model.prepare(train_images, dtype),
        train_y=train_labels.astype(np.intp),
        test_x=model.prepare(test_images, dtype),
        test_y=test_labels.astype(np.intp),
    )
