"""The epoch loop: ``fit`` trains from a ``TrainState`` to the end of the run, one named step at a time.

The state is rebound once per batch (``train_epoch`` yields it), so an interruption always leaves
the state after the last complete step, which resumes bit-for-bit.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

import attrs
import numpy as np

from lenet_fn.arrays import FloatArray, IntArray
from lenet_fn.batch import estimate_curvature, forward_backward, predict_outputs
from lenet_fn.config import TrainConfig
from lenet_fn.data import count_batches, epoch_order, minibatches
from lenet_fn.optim import momentum_step, sdlm_learning_rates
from lenet_fn.parallel import SEQUENTIAL, Workers, prefetched
from lenet_fn.params import tree_leaves
from lenet_fn.protocol import Model
from lenet_fn.state import EpochMetrics, EpochProgress, PreparedData, TrainingDiverged, TrainingInterrupted, TrainState
from lenet_fn.warps import WarpWorker, distorted_batch


WARP_PROCESS_MIN_STEPS = 500
"""The fewest steps a run must have left for its warps to go to a process of their own
(``warps.WarpWorker``), whose start costs as much as a few hundred steps save (the docs' speed
page has the measurements)."""


class ProgressLine:
    """A one-line progress indicator on a terminal, redrawn at most every ``interval`` seconds."""

    interval = 0.2

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.last = -math.inf

    def show(self, text: str) -> None:
        now = time.monotonic()
        if self.stream is not None and now - self.last >= self.interval:
            self.stream.write(f"\r{text}\033[K")
            self.stream.flush()
            self.last = now

    def clear(self) -> None:
        if self.stream is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()


class SdlmRates:
    """SDLM's per-parameter rates, recomputed only when the curvature or the scheduled rate changes."""

    def __init__(self, mu: float) -> None:
        self.mu = mu
        self.last: tuple[object, float, Any] | None = None  # (curvature, lr, rates)

    def at(self, curvature: object, lr: float) -> Any:
        if self.last is None or self.last[0] is not curvature or self.last[1] != lr:
            self.last = (curvature, lr, sdlm_learning_rates(curvature, eta=lr, mu=self.mu))
        return self.last[2]


@attrs.frozen(eq=False)
class Run:
    """What every step of a run reads: the model, the settings, the data, the threads.

    Attributes:
        model: the model.
        config: the run's settings.
        data: prepared training and test data.
        workers: the threads to use.
        rates: SDLM's rates of the last step (reused while they do not change).
    """

    model: Model[Any]
    config: TrainConfig
    data: PreparedData
    workers: Workers = SEQUENTIAL
    rates: SdlmRates = attrs.field(init=False, default=attrs.Factory(lambda self: SdlmRates(self.config.sdlm_mu), takes_self=True))

    @property
    def batches(self) -> int:
        """Steps per epoch."""
        return count_batches(self.data.train_y.shape[0] * self.config.repeat, self.config.batch_size)

    @property
    def background(self) -> float:
        """The value of a blank pixel in the model's input (what the warps fill in)."""
        blank = self.model.prepare(np.zeros((1, 28, 28), np.uint8), self.data.train_x.dtype)
        return float(blank.reshape(-1)[0])


def check_trainable(model: Model[Any], config: TrainConfig) -> None:
    """A one-line ``ValueError`` when ``config`` asks for SDLM and ``model`` has no curvature functions."""
    if config.optimizer == "sdlm" and not model.has_curvature:
        raise ValueError(
            f"optimizer: sdlm needs the model's curvature functions (Model.curvature and Model.loss_curvature); "
            f"{model.name} has none, so train it with momentum"
        )


def start_epoch(run: Run, state: TrainState) -> TrainState:
    """Draws the epoch's order (every image ``config.repeat`` times) unless a resumed epoch has one."""
    if state.order is not None:
        return state
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    count = run.data.train_y.shape[0]
    order = epoch_order(count * run.config.repeat, rng) % count
    return attrs.evolve(state, order=order, progress=EpochProgress(), rng_state=dict(rng.bit_generator.state), curvature=None)


def refresh_curvature(run: Run, state: TrainState) -> TrainState:
    """With SDLM, re-estimates the curvature when it is due, on the images about to be trained on."""
    config, order = run.config, state.order
    due = state.curvature is None or (config.sdlm_every and state.progress.batch % config.sdlm_every == 0)
    if config.optimizer != "sdlm" or not due or order is None:
        return state
    ahead = state.progress.batch * config.batch_size + np.arange(min(config.sdlm_samples, order.shape[0]))
    sample = order[ahead % order.shape[0]]  # wrapping round to the epoch's start
    x, labels = run.data.train_x[sample], run.data.train_y[sample]
    return attrs.evolve(state, curvature=estimate_curvature(run.model, state.params, x, labels, workers=run.workers))


def all_finite(tree: object) -> bool:
    """Whether every value of every leaf of ``tree`` is finite (a sum is finite only then)."""
    return all(math.isfinite(float(np.sum(leaf, dtype=np.float64))) for leaf in tree_leaves(tree))


def train_batch(run: Run, state: TrainState, rows: IntArray, x: FloatArray) -> TrainState:
    """One step on the training images ``rows`` (their inputs ``x``, warped if the run warps)."""
    started = time.perf_counter()
    state = refresh_curvature(run, state)
    lr = run.config.lr_at(state.epoch, state.epoch * run.batches + state.progress.batch)
    labels = run.data.train_y[rows]
    loss, grads, outputs = forward_backward(run.model, state.params, x, labels, workers=run.workers)
    if not math.isfinite(loss):
        where = f"epoch {state.epoch + 1}, batch {state.progress.batch + 1}"
        raise TrainingDiverged(f"the loss became {loss} at {where} (lr {lr:g})", state)
    rates: Any = lr if state.curvature is None else run.rates.at(state.curvature, lr)
    config = run.config
    params, velocity = momentum_step(state.params, grads, state.velocity, lr=rates, momentum=config.momentum, weight_decay=config.weight_decay)
    errors = int(np.count_nonzero(run.model.predict(outputs) != labels))
    done = state.progress
    progress = EpochProgress(
        batch=done.batch + 1,
        loss_sum=done.loss_sum + loss * labels.shape[0],
        errors=done.errors + errors,
        seen=done.seen + labels.shape[0],
        seconds=done.seconds + time.perf_counter() - started,
    )
    return attrs.evolve(state, params=params, velocity=velocity, progress=progress)


def train_epoch(run: Run, state: TrainState, warps: WarpWorker | None = None) -> Iterator[TrainState]:
    """The rest of the epoch in progress, one state per step. With distortions, the next batches
    are warped by ``warps`` (a process of their own) while this one trains, or without it, with
    more than one thread, on a thread of their own; the batches are the same either way."""
    order = state.order
    if order is None:
        raise ValueError("state: the epoch has no order yet (call start_epoch first)")
    epoch, background, config = state.epoch, run.background, run.config

    def batch_inputs(numbered: tuple[int, IntArray]) -> tuple[IntArray, FloatArray]:
        index, rows = numbered
        x = run.data.train_x[rows]
        return rows, (distorted_batch(x, config.distortion_ranges, (config.seed, epoch, index), background) if config.distort else x)

    start = state.progress.batch
    numbered = enumerate(minibatches(order, config.batch_size, start=start), start)
    if warps is not None and warps.running and config.distort:
        inputs = warps.batches(epoch, numbered)
    else:
        inputs = prefetched(batch_inputs, numbered, ahead=config.distort and run.workers.threads > 1)
    for rows, x in inputs:
        state = train_batch(run, state, rows, x)
        yield state


def warp_worker(run: Run, state: TrainState) -> AbstractContextManager[WarpWorker | None]:
    """A ``WarpWorker`` for the rest of the run when it warps, has a second thread and at least
    ``WARP_PROCESS_MIN_STEPS`` steps to go; otherwise ``None`` (``train_epoch`` warps here)."""
    config = run.config
    steps_left = (config.epochs - state.epoch) * run.batches - state.progress.batch
    if not config.distort or run.workers.threads < 2 or steps_left < WARP_PROCESS_MIN_STEPS:
        return contextlib.nullcontext(None)
    return WarpWorker(run.data.train_x, config.distortion_ranges, config.seed, run.background)


def check_weights(run: Run, state: TrainState, epoch_start: TrainState) -> None:
    """A ``TrainingDiverged`` carrying ``epoch_start`` when the epoch left weights that are NaN or
    infinite: saturated tanh units can keep the loss finite while the weights blow up (checked once
    an epoch, as a check after every step would cost more than 1% of the step)."""
    if not all_finite(state.params):
        lr = run.config.lr_at(state.epoch)
        raise TrainingDiverged(f"the weights became NaN or infinite during epoch {state.epoch + 1} (lr {lr:g})", epoch_start)


def end_epoch(run: Run, state: TrainState) -> tuple[TrainState, EpochMetrics]:
    """Evaluates on the test set, records the epoch's metrics and moves on to the next epoch."""
    started = time.perf_counter()
    test_outputs = predict_outputs(run.model, state.params, run.data.test_x, workers=run.workers)
    test_error = float(np.mean(run.model.predict(test_outputs) != run.data.test_y))
    done = state.progress
    metrics = EpochMetrics(
        epoch=state.epoch + 1,
        loss=done.loss_sum / max(done.seen, 1),
        train_error=done.errors / max(done.seen, 1),
        test_error=test_error,
        seconds=done.seconds,
        images_per_second=done.seen / done.seconds if done.seconds > 0 else 0.0,
        eval_seconds=time.perf_counter() - started,
        lr=run.config.lr_at(state.epoch),
    )
    history = (*state.history, metrics)
    return attrs.evolve(state, epoch=state.epoch + 1, order=None, progress=EpochProgress(), history=history, curvature=None), metrics


def progress_text(run: Run, state: TrainState) -> str:
    """The progress line of the epoch in progress."""
    done = state.progress
    return f"epoch {state.epoch + 1}/{run.config.epochs}  batch {done.batch}/{run.batches}  loss {done.loss_sum / max(done.seen, 1):.4f}"


def fit(
    model: Model[Any],
    config: TrainConfig,
    data: PreparedData,
    state: TrainState,
    *,
    workers: Workers = SEQUENTIAL,
    on_epoch_end: Callable[[TrainState, EpochMetrics], None] | None = None,
    on_batch_end: Callable[[TrainState], None] | None = None,
    progress: IO[str] | None = None,
) -> TrainState:
    """Trains from ``state`` until ``config.epochs`` epochs are done.

    Args:
        model: the model (a built-in or your own ``Model``).
        config: the run's settings.
        data: prepared training and test data.
        state: where to start (``initial_state`` or a resumed state).
        workers: the threads to use.
        on_epoch_end: called after each epoch with the new state and the epoch's metrics.
        on_batch_end: called after each step with the new state.
        progress: a stream for a progress line (only used when it is a terminal).

    Returns:
        The final state.

    Raises:
        TrainingInterrupted: on Ctrl-C, carrying the state after the last complete step.
        TrainingDiverged: when a batch's loss is NaN or infinite, carrying the state before that
            step, or when an epoch ends with weights that are, carrying the epoch's start.
        ValueError: SDLM asked of a model without curvature functions.
    """
    check_trainable(model, config)
    run = Run(model, config, data, workers)
    line = ProgressLine(progress)
    try:
        with warp_worker(run, state) as warps:
            while state.epoch < config.epochs:
                state = epoch_start = start_epoch(run, state)
                for state in train_epoch(run, state, warps):
                    line.show(progress_text(run, state))
                    if on_batch_end is not None:
                        on_batch_end(state)
                line.clear()
                check_weights(run, state, epoch_start)
                state, metrics = end_epoch(run, state)
                if on_epoch_end is not None:
                    on_epoch_end(state, metrics)
    except KeyboardInterrupt as interrupt:
        line.clear()
        raise TrainingInterrupted(state, interrupt) from None
    return state
