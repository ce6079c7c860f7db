"""Training: ``train_step`` (one pure step), and ``python -m lenet_fn.train``.

``python -m lenet_fn.train`` trains the paper's LeNet-5 on MNIST (or any model, ``--model
package.module:NAME``); ``--help`` lists the flags. The pieces live in modules of their own and are
gathered here as the training API:

- ``lenet_fn.config``: ``TrainConfig`` and the defaults per model;
- ``lenet_fn.batch``: one batch's loss, gradients and curvature, and evaluation;
- ``lenet_fn.state``: ``TrainState``, the data, and the two early stops;
- ``lenet_fn.loop``: ``fit``, the epoch loop, one named step at a time;
- ``lenet_fn.train_cli``: the command line;
- ``lenet_fn.rundir``: a run's files (``last.npz``, ``best.npz``, ``metrics.json``).
"""

from __future__ import annotations

from typing import TypeVar

from lenet_fn.arrays import FloatArray, IntArray
from lenet_fn.batch import estimate_curvature, forward_backward, predict_outputs
from lenet_fn.cli import UsageError, run_command
from lenet_fn.config import DEFAULTS, OPTIMIZERS, ModelDefaults, TrainConfig, defaults_for
from lenet_fn.loop import ProgressLine, fit
from lenet_fn.optim import SCHEDULES, momentum_step
from lenet_fn.parallel import SEQUENTIAL, Workers
from lenet_fn.protocol import Model
from lenet_fn.state import (
    EpochMetrics,
    EpochProgress,
    PreparedData,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    initial_state,
    prepare_data,
)
from lenet_fn.train_cli import main

P = TypeVar("P")

__all__ = [
    "DEFAULTS",
    "OPTIMIZERS",
    "SCHEDULES",
    "EpochMetrics",
    "EpochProgress",
    "ModelDefaults",
    "PreparedData",
    "ProgressLine",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "UsageError",
    "defaults_for",
    "estimate_curvature",
    "fit",
    "forward_backward",
    "initial_state",
    "main",
    "predict_outputs",
    "prepare_data",
    "train_step",
]


def train_step(
    params: P,
    velocity: P,
    x: FloatArray,
    labels: IntArray,
    *,
    model: Model[P],
    lr: float | P,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    workers: Workers = SEQUENTIAL,
) -> tuple[P, P, float]:
    """One step of training: forward, loss, backward, momentum update. Pure.

    Args:
        params: the parameters.
        velocity: the momentum state (``momentum_init(params)`` at first).
        x: prepared inputs, shape (N, ...).
        labels: classes, shape (N,).
        model: the model.
        lr: the learning rate, a number or a tree of per-parameter rates.
        momentum: heavy-ball momentum.
        weight_decay: L2 coefficient.
        workers: the threads to use.

    Returns:
        ``(params, velocity, loss)`` after the step, with the batch's mean loss before it.
    """
    loss, grads, _ = forward_backward(model, params, x, labels, workers=workers)
    params, velocity = momentum_step(params, grads, velocity, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return params, velocity, loss


if __name__ == "__main__":
    run_command(main)
