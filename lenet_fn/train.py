"""Training: ``forward_backward``, ``train_step``, evaluation, a resumable ``fit``, and the CLI.

``python -m lenet_fn.train`` trains the paper's LeNet-5 on MNIST; ``--help`` lists the flags.
Everything a run needs to continue lives in one immutable ``TrainState``; ``fit`` rebinds it once
per batch, so an interruption leaves a state that resumes bit-for-bit.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import (
    FloatArray,
    IntArray,
    check_float_dtype,
    check_int,
    integer_at_least,
    number_in_range,
    one_of,
    optional_integer_at_least,
    positive_number,
)
from lenet_fn.augment import DistortionRanges, distort
from lenet_fn.data import Mnist, count_batches, epoch_order, load_or_download_mnist, minibatches, subset
from lenet_fn.models import MODELS, Model, get_model
from lenet_fn.optim import SDLM_MU, momentum_init, momentum_step, sdlm_learning_rates
from lenet_fn.parallel import SEQUENTIAL, Workers, default_threads, prefetched
from lenet_fn.params import tree_flatten, tree_unflatten

P = TypeVar("P")
Result = TypeVar("Result")

# --------------------------------------------------------------------------------------------
# configuration

SCHEDULES: dict[str, Callable[[int, int], float]] = {
    # LeCun et al. 1998's global rate for SDLM, as multiples of its first value:
    # 5e-4 for 2 passes, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4, then 1e-5.
    "paper": lambda epoch, epochs: 1.0 if epoch < 2 else 0.4 if epoch < 5 else 0.2 if epoch < 8 else 0.1 if epoch < 12 else 0.02,
    "constant": lambda epoch, epochs: 1.0,
    "cosine": lambda epoch, epochs: 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)),
}
"""Learning-rate multipliers by epoch (0-based): ``lr_epoch = lr * SCHEDULES[name](epoch, epochs)``."""


@attrs.frozen
class ModelDefaults:
    """The default optimiser settings of one model (what ``python -m lenet_fn.train`` uses)."""

    lr: float
    batch_size: int
    schedule: str
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup: int = 0
    distort: bool = False
    sdlm_every: int = 0


OPTIMIZERS = ("momentum", "sdlm")

# SDLM as in the paper: one step of eta / (mu + h_kk) per batch, eta 5e-4, no momentum. Batches of
# 16, the curvature re-estimated every 50 steps (without the re-estimates whole feature maps died in
# the first epoch), the cosine schedule: chosen on held-out images (README), where momentum 0.9 with
# eta 5e-5 came second. Measured on LeNet-5 only; the other models share them.
_SDLM_DEFAULTS = ModelDefaults(lr=5e-4, batch_size=16, schedule="cosine", momentum=0.0, warmup=500, sdlm_every=50)

DEFAULTS: dict[str, ModelDefaults] = {
    "lenet5": ModelDefaults(lr=0.003, batch_size=32, schedule="paper", warmup=500, distort=True),
    "lenet5+sdlm": _SDLM_DEFAULTS,
    "lenet5-relu+sdlm": _SDLM_DEFAULTS,
    "mlp+sdlm": _SDLM_DEFAULTS,
    "lenet5-relu": ModelDefaults(lr=0.02, batch_size=64, schedule="cosine", weight_decay=5e-4),
    "mlp": ModelDefaults(lr=0.05, batch_size=64, schedule="cosine", weight_decay=5e-4),
}


@attrs.frozen
class TrainConfig:
    """Everything that decides what a run computes (stored in its checkpoints; a resumed run keeps it).

    Attributes:
        model: ``lenet5``, ``lenet5-relu`` or ``mlp``.
        epochs: passes over the training set.
        repeat: times every training image appears in one epoch (in one shuffled order; with
            ``distort`` each appearance is warped afresh). The paper's distortion runs passed over
            60,000 originals + 540,000 distortions per epoch: ``repeat=10``.
        batch_size: images per step.
        lr: the base learning rate.
        schedule: its per-epoch multipliers, a key of ``SCHEDULES``.
        warmup: steps over which the rate rises linearly from ``lr / warmup`` to its scheduled value.
        optimizer: ``momentum`` (one rate for every parameter) or ``sdlm`` (per-parameter rates
            ``lr / (sdlm_mu + h_kk)`` from the Gauss-Newton curvature ``h_kk``, estimated on
            ``sdlm_samples`` training images at the start of every epoch and every ``sdlm_every``
            steps within it).
        sdlm_mu: SDLM's damping.
        sdlm_samples: images used to estimate the curvature.
        sdlm_every: with SDLM, steps between re-estimates of the curvature within an epoch, each on
            the next ``sdlm_samples`` images of the epoch's order (0: only at the epoch's start,
            as in the paper).
        distort: warp every training image by a random affine map (``lenet_fn.augment``), drawn
            from a generator seeded by (seed, epoch, batch).
        translate, scale, squeeze, shear: the ranges of the warps (``DistortionRanges``).
        momentum: heavy-ball momentum.
        weight_decay: L2 coefficient.
        seed: seeds the initial weights and the order of every epoch.
        limit: train on the first ``limit`` training images only (None: all 60,000).
        threads: worker threads; each batch is split into this many parts (this changes the
            rounding of the sums, so it is part of what a run computes).
        dtype: ``float32`` or ``float64``.
    """

    model: str = attrs.field(default="lenet5", validator=one_of("model", list(MODELS)))
    epochs: int = attrs.field(default=20, validator=integer_at_least("epochs", 1))
    repeat: int = attrs.field(default=1, validator=integer_at_least("repeat", 1))
    batch_size: int = attrs.field(default=DEFAULTS["lenet5"].batch_size, validator=integer_at_least("batch_size", 1))
    lr: float = attrs.field(default=DEFAULTS["lenet5"].lr, validator=positive_number("lr"))
    schedule: str = attrs.field(default=DEFAULTS["lenet5"].schedule, validator=one_of("schedule", list(SCHEDULES)))
    momentum: float = attrs.field(default=DEFAULTS["lenet5"].momentum, validator=number_in_range("momentum", 0.0, 1.0))
    weight_decay: float = attrs.field(
        default=DEFAULTS["lenet5"].weight_decay, validator=number_in_range("weight_decay", 0.0, math.inf)
    )
    warmup: int = attrs.field(default=DEFAULTS["lenet5"].warmup, validator=integer_at_least("warmup", 0))
    optimizer: str = attrs.field(default="momentum", validator=one_of("optimizer", OPTIMIZERS))
    sdlm_mu: float = attrs.field(default=SDLM_MU, validator=positive_number("sdlm_mu"))
    sdlm_samples: int = attrs.field(default=500, validator=integer_at_least("sdlm_samples", 1))
    sdlm_every: int = attrs.field(default=0, validator=integer_at_least("sdlm_every", 0))
    distort: bool = attrs.field(default=DEFAULTS["lenet5"].distort, validator=attrs.validators.instance_of(bool))
    translate: float = attrs.field(default=DistortionRanges().translate, validator=number_in_range("translate", 0.0, math.inf))
    scale: float = attrs.field(default=DistortionRanges().scale, validator=number_in_range("scale", 0.0, 1.0))
    squeeze: float = attrs.field(default=DistortionRanges().squeeze, validator=number_in_range("squeeze", 0.0, 1.0))
    shear: float = attrs.field(default=DistortionRanges().shear, validator=number_in_range("shear", 0.0, math.inf))
    seed: int = attrs.field(default=0, validator=integer_at_least("seed", 0))
    limit: int | None = attrs.field(default=None, validator=optional_integer_at_least("limit", 1))
    threads: int = attrs.field(default=1, validator=integer_at_least("threads", 1))
    dtype: str = attrs.field(default="float32", validator=one_of("dtype", ["float32", "float64"]))

    @property
    def distortion_ranges(self) -> DistortionRanges:
        """The ranges of the warps, as ``augment.distort`` takes them."""
        return DistortionRanges(translate=self.translate, scale=self.scale, squeeze=self.squeeze, shear=self.shear)

    def lr_at(self, epoch: int, step: int | None = None) -> float:
        """The learning rate of epoch ``epoch`` (0-based) at global step ``step`` (0-based).

        ``step=None`` gives the epoch's scheduled rate without the warm-up factor.
        """
        rate = self.lr * SCHEDULES[self.schedule](epoch, self.epochs)
        if step is not None and step < self.warmup:
            rate *= (step + 1) / self.warmup
        return rate

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# --------------------------------------------------------------------------------------------
# one batch


def _weighted_sum(trees: list[P], weights: list[float]) -> P:
    """``sum(weight * tree)`` leaf by leaf (the mean over parts, weighted by their sizes)."""
    if len(trees) == 1:
        return trees[0]
    leaves = [tree_flatten(tree)[0] for tree in trees]
    treedef = tree_flatten(trees[0])[1]
    combined = [
        sum((part[index] * weight for part, weight in zip(leaves[1:], weights[1:])), leaves[0][index] * weights[0])
        for index in range(len(leaves[0]))
    ]
    result: P = tree_unflatten(treedef, combined)
    return result


def _map_parts(workers: Workers, count: int, job: Callable[[slice], Result]) -> tuple[list[Result], list[float]]:
    """``job`` on each part of ``count`` rows (``workers.split``), and each part's share of the rows."""
    parts = workers.split(count)
    return workers.map(job, parts), [(rows.stop - rows.start) / count for rows in parts]


def forward_backward(
    model: Model[P], params: P, x: FloatArray, labels: IntArray, *, workers: Workers = SEQUENTIAL
) -> tuple[float, P, FloatArray]:
    """The loss, the gradients and the outputs of ``model`` on one batch.

    The batch is cut into contiguous parts (``Workers.split``) that run in parallel; the loss and
    the gradients are their size-weighted means, which is the mean over the whole batch.

    Args:
        model: the model.
        params: its parameters.
        x: prepared inputs, shape (N, ...) as the model expects.
        labels: classes, shape (N,).
        workers: the threads to use.

    Returns:
        ``(loss, grads, outputs)``: the mean loss, a tree like ``params``, and outputs (N, 10).
    """

    def part(rows: slice) -> tuple[float, P, FloatArray]:
        outputs, cache = model.forward(params, x[rows])
        loss, loss_cache = model.loss_forward(outputs, labels[rows])
        return loss, model.backward(model.loss_backward(loss_cache), cache), outputs

    results, weights = _map_parts(workers, x.shape[0], part)
    loss = sum(weight * result[0] for weight, result in zip(weights, results))
    grads = _weighted_sum([result[1] for result in results], weights)
    outputs = results[0][2] if len(results) == 1 else np.concatenate([result[2] for result in results])
    return float(loss), grads, outputs


def estimate_curvature(
    model: Model[P], params: P, x: FloatArray, labels: IntArray, *, workers: Workers = SEQUENTIAL
) -> P:
    """The Gauss-Newton curvature of every parameter, averaged over the samples ``x`` (for SDLM).

    Args:
        model: the model.
        params: its parameters.
        x: prepared inputs, shape (N, ...).
        labels: classes, shape (N,).
        workers: the threads to use.

    Returns:
        A tree like ``params`` of non-negative curvatures ``h_kk``.
    """

    def part(rows: slice) -> P:
        outputs, cache = model.forward(params, x[rows])
        _, loss_cache = model.loss_forward(outputs, labels[rows])
        return model.curvature(model.loss_curvature(loss_cache), model.loss_backward(loss_cache), cache)

    return _weighted_sum(*_map_parts(workers, x.shape[0], part))


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


def predict_outputs(
    model: Model[P], params: P, x: FloatArray, *, batch_size: int = 256, workers: Workers = SEQUENTIAL
) -> FloatArray:
    """The model's outputs on many inputs, ``batch_size`` at a time, split across the workers.

    Args:
        model: the model.
        params: its parameters.
        x: prepared inputs, shape (N, ...).
        batch_size: inputs per round of the workers (small chunks stay in cache: 256 evaluates
            LeNet-5 30% faster than 2,000 on 2 cores).
        workers: the threads to use.

    Returns:
        Outputs, shape (N, 10).
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    step = max(1, -(-batch_size // workers.threads))
    chunks = [slice(start, min(start + step, x.shape[0])) for start in range(0, x.shape[0], step)]
    outputs = workers.map(lambda rows: model.forward(params, x[rows])[0], chunks)
    return np.concatenate(outputs)


# --------------------------------------------------------------------------------------------
# a run


@attrs.frozen
class EpochMetrics:
    """One line of training history.

    Attributes:
        epoch: 1-based.
        loss: the mean training loss over the epoch's batches.
        train_error: the error on the training batches as they were seen during the epoch.
        test_error: the error on the test set after the epoch.
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
    """Ctrl-C during ``fit``; ``state`` is the last complete step, ready to save and resume."""

    def __init__(self, state: TrainState) -> None:
        super().__init__("training interrupted")
        self.state = state


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; ``state`` is the last state before the diverging step."""

    def __init__(self, message: str, state: TrainState) -> None:
        super().__init__(message)
        self.state = state


@attrs.frozen(eq=False)
class PreparedData:
    """Model inputs and labels for training and testing."""

    train_x: FloatArray
    train_y: IntArray
    test_x: FloatArray
    test_y: IntArray


def prepare_data(model: Model[Any], dataset: Mnist, *, limit: int | None = None, dtype: npt.DTypeLike = np.float32) -> PreparedData:
    """The dataset in the model's input format (and only the first ``limit`` training images)."""
    dtype = check_float_dtype("dtype", dtype)
    train_images, train_labels = subset(dataset.train_images, dataset.train_labels, limit)
    return PreparedData(
        train_x=model.prepare(train_images, dtype),
        train_y=train_labels.astype(np.intp),
        test_x=model.prepare(dataset.test_images, dtype),
        test_y=dataset.test_labels.astype(np.intp),
    )


def _distorted(x: FloatArray, config: TrainConfig, seed: tuple[int, int, int], background: float) -> FloatArray:
    """The batch ``x`` warped by ``augment.distort``, its warps drawn from a generator seeded by
    ``seed`` = (run seed, epoch, batch): a resumed run draws the same warps, whatever the threads."""
    images = x.reshape(x.shape[0], 1, 28, 28) if x.ndim == 2 else x  # the MLP's flat inputs
    rng = np.random.default_rng(seed)
    return distort(images, rng, fill=background, ranges=config.distortion_ranges).reshape(x.shape)


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
        model: the model.
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
        TrainingDiverged: when a batch's loss is NaN or infinite, carrying the state before it.
    """
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    background = float(model.prepare(np.zeros((1, 28, 28), np.uint8), data.train_x.dtype).reshape(-1)[0])
    count = data.train_y.shape[0]
    batches = count_batches(count * config.repeat, config.batch_size)
    line = ProgressLine(progress)
    sdlm_rates: tuple[object, float, Any] | None = None  # (curvature, lr, rates) of the last step
    try:
        while state.epoch < config.epochs:
            if state.order is None:
                new_order = epoch_order(count * config.repeat, rng) % count  # every image `repeat` times
                state = attrs.evolve(state, order=new_order, progress=EpochProgress(), rng_state=dict(rng.bit_generator.state), curvature=None)
            order = state.order
            assert order is not None  # set just above, or restored by a resume
            epoch = state.epoch

            def batch_inputs(numbered: tuple[int, IntArray]) -> tuple[IntArray, FloatArray]:
                index, rows = numbered
                x = data.train_x[rows]
                return rows, (_distorted(x, config, (config.seed, epoch, index), background) if config.distort else x)

            # With more than one thread, the next batch is warped on a thread of its own while this
            # one trains (the warps cost a third of a LeNet-5 step at batch 32).
            numbered_batches = enumerate(minibatches(order, config.batch_size, start=state.progress.batch), state.progress.batch)
            for rows, x in prefetched(batch_inputs, numbered_batches, ahead=config.distort and workers.threads > 1):
                started = time.perf_counter()
                if config.optimizer == "sdlm" and (state.curvature is None or (config.sdlm_every and state.progress.batch % config.sdlm_every == 0)):
                    # on the images about to be trained on (wrapping round to the epoch's start)
                    ahead = state.progress.batch * config.batch_size + np.arange(min(config.sdlm_samples, order.shape[0]))
                    sample = order[ahead % order.shape[0]]
                    curvature = estimate_curvature(model, state.params, data.train_x[sample], data.train_y[sample], workers=workers)
                    state = attrs.evolve(state, curvature=curvature)
                lr = config.lr_at(state.epoch, state.epoch * batches + state.progress.batch)
                labels = data.train_y[rows]
                loss, grads, outputs = forward_backward(model, state.params, x, labels, workers=workers)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} at epoch {state.epoch + 1}, batch {state.progress.batch + 1} (lr {lr:g})",
                        state,
                    )
                rates: Any = lr
                if state.curvature is not None:  # the rates change only with the curvature and the scheduled rate
                    if sdlm_rates is None or sdlm_rates[0] is not state.curvature or sdlm_rates[1] != lr:
                        sdlm_rates = (state.curvature, lr, sdlm_learning_rates(state.curvature, eta=lr, mu=config.sdlm_mu))
                    rates = sdlm_rates[2]
                params, velocity = momentum_step(
                    state.params, grads, state.velocity, lr=rates, momentum=config.momentum, weight_decay=config.weight_decay
                )
                done = state.progress
                errors = int(np.count_nonzero(model.predict(outputs) != labels))
                state = attrs.evolve(
                    state,
                    params=params,
                    velocity=velocity,
                    progress=EpochProgress(
                        batch=done.batch + 1,
                        loss_sum=done.loss_sum + loss * labels.shape[0],
                        errors=done.errors + errors,
                        seen=done.seen + labels.shape[0],
                        seconds=done.seconds + time.perf_counter() - started,
                    ),
                )
                line.show(
                    f"epoch {state.epoch + 1}/{config.epochs}  batch {state.progress.batch}/{batches}  "
                    f"loss {state.progress.loss_sum / state.progress.seen:.4f}"
                )
                if on_batch_end is not None:
                    on_batch_end(state)
            line.clear()
            evaluation_started = time.perf_counter()
            test_outputs = predict_outputs(model, state.params, data.test_x, workers=workers)
            test_error = float(np.mean(model.predict(test_outputs) != data.test_y))
            done = state.progress
            metrics = EpochMetrics(
                epoch=state.epoch + 1,
                loss=done.loss_sum / max(done.seen, 1),
                train_error=done.errors / max(done.seen, 1),
                test_error=test_error,
                seconds=done.seconds,
                images_per_second=done.seen / done.seconds if done.seconds > 0 else 0.0,
                eval_seconds=time.perf_counter() - evaluation_started,
                lr=config.lr_at(state.epoch),
            )
            state = attrs.evolve(
                state, epoch=state.epoch + 1, order=None, progress=EpochProgress(), history=(*state.history, metrics), curvature=None
            )
            if on_epoch_end is not None:
                on_epoch_end(state, metrics)
    except KeyboardInterrupt:
        line.clear()
        raise TrainingInterrupted(state) from None
    return state


# --------------------------------------------------------------------------------------------
# the command line


class UsageError(Exception):
    """A bad flag or combination of flags (reported as one line, exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    defaults = "; ".join(
        f"{name}: lr {d.lr:g}, batch {d.batch_size}, {d.schedule} schedule, warm-up {d.warmup} steps, momentum {d.momentum:g}, "
        f"weight decay {d.weight_decay:g}, distortions {'on' if d.distort else 'off'}"
        + (f", curvature every {d.sdlm_every} steps" if d.sdlm_every else "")
        for name, d in DEFAULTS.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m lenet_fn.train",
        description="Train LeNet-5 (or a variant) on MNIST with momentum SGD. Prints one line per epoch and "
        "writes best.npz, last.npz, metrics.json and error_rate.png to the run directory.",
        epilog=f"Defaults per model ({defaults}). Schedules multiply the learning rate per epoch: 'paper' = "
        "LeCun et al. 1998's steps (x1 for 2 epochs, x0.4 for 3, x0.2 for 3, x0.1 for 4, then x0.02); "
        "'cosine' = half a cosine from x1 to x0 over the run; 'constant' = x1.",
    )
    parser.add_argument("--dataset", type=Path, metavar="PATH",
                        help="directory with the four MNIST files (.gz or raw); default: the repository's data/mnist, "
                        "else a download to ~/.cache/lenet_fn/mnist ($LENET_FN_DATA overrides)")
    parser.add_argument("--model", choices=list(MODELS), help="network to train (default: lenet5, the paper's)")
    parser.add_argument("--epochs", type=int, metavar="N", help="passes over the training set (default: 20)")
    parser.add_argument("--repeat", type=int, metavar="K", help="every training image appears K times per epoch, "
                        "each time warped afresh with --distort (the paper's 60,000 + 540,000 images per pass: 10; default 1)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, metavar="N", help="images per step")
    parser.add_argument("--lr", type=float, help="base learning rate")
    parser.add_argument("--schedule", choices=list(SCHEDULES), help="learning-rate schedule over the epochs")
    parser.add_argument("--warmup", type=int, metavar="STEPS", help="steps of linear learning-rate warm-up at the start")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), help="momentum SGD, or SDLM: per-parameter rates "
                        "lr / (mu + h_kk) from the Gauss-Newton curvature, re-estimated before every epoch "
                        "(LeCun et al. 1998) and every --sdlm-every steps, used as the steps of momentum SGD (by "
                        "default with momentum 0, the paper's steps); with sdlm, --lr is eta")
    parser.add_argument("--sdlm-mu", "--sdlm_mu", dest="sdlm_mu", type=float, metavar="MU", help=f"SDLM's damping (default {SDLM_MU})")
    parser.add_argument("--sdlm-samples", "--sdlm_samples", dest="sdlm_samples", type=int, metavar="N",
                        help="training images used to estimate the curvature (default 500)")
    parser.add_argument("--sdlm-every", "--sdlm_every", dest="sdlm_every", type=int, metavar="STEPS",
                        help="SDLM: re-estimate the curvature every STEPS steps as well, on the images about to be "
                        "trained on (0: once per epoch, the paper's; default: per model, below)")
    parser.add_argument("--momentum", type=float, help="momentum in [0, 1)")
    parser.add_argument("--weight-decay", "--weight_decay", dest="weight_decay", type=float, metavar="WD", help="L2 weight decay")
    parser.add_argument("--seed", type=int, help="seeds the initial weights and the batch order (default: 0)")
    parser.add_argument("--distort", action=argparse.BooleanOptionalAction, help="warp every training image by a random "
                        "affine map (translation, scaling, squeezing, horizontal shear), as in the paper (default: on for lenet5)")
    ranges = DistortionRanges()
    parser.add_argument("--translate", type=float, metavar="PIXELS", help=f"--distort: shift range per axis (default {ranges.translate:g})")
    parser.add_argument("--scale", type=float, metavar="FRACTION", help=f"--distort: zoom in 1 +- FRACTION (default {ranges.scale:g})")
    parser.add_argument("--squeeze", type=float, metavar="FRACTION", help=f"--distort: width x q, height / q, q in 1 +- FRACTION (default {ranges.squeeze:g})")
    parser.add_argument("--shear", type=float, metavar="FACTOR", help=f"--distort: horizontal shear in +-FACTOR (default {ranges.shear:g})")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<model>-<date>-<time>; "
                        "with --resume, the checkpoint's directory)")
    parser.add_argument("--resume", type=Path, metavar="CKPT", help="continue a run from its last.npz (its settings are kept; "
                        "--epochs may extend it)")
    parser.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only (quick tries)")
    parser.add_argument("--threads", type=int, metavar="N", help=f"worker threads, each batch split into N parts (default: the cores, {default_threads()} here)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="floating-point type (default: float32)")
    return parser


_CONFIG_FLAGS = (
    "model", "repeat", "batch_size", "lr", "schedule", "warmup", "momentum", "weight_decay", "seed", "limit", "threads", "dtype",
    "optimizer", "sdlm_mu", "sdlm_samples", "sdlm_every", "distort", "translate", "scale", "squeeze", "shear",
)  # fmt: skip


def _config_from_flags(args: argparse.Namespace) -> TrainConfig:
    model = args.model or "lenet5"
    optimizer = args.optimizer or "momentum"
    defaults = DEFAULTS[model if optimizer == "momentum" else f"{model}+{optimizer}"]
    values: dict[str, Any] = {
        "model": model,
        "epochs": 20 if args.epochs is None else args.epochs,
        "batch_size": defaults.batch_size,
        "lr": defaults.lr,
        "schedule": defaults.schedule,
        "momentum": defaults.momentum,
        "weight_decay": defaults.weight_decay,
        "warmup": defaults.warmup,
        "distort": defaults.distort,
        "sdlm_every": defaults.sdlm_every,
        "optimizer": optimizer,
        "threads": default_threads(),
    }
    values.update({flag: getattr(args, flag) for flag in _CONFIG_FLAGS if getattr(args, flag) is not None})
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--{str(error).replace('_', '-')}") from None


def _resumed_config(args: argparse.Namespace, config: TrainConfig, state: TrainState) -> TrainConfig:
    for flag in _CONFIG_FLAGS:
        given = getattr(args, flag)
        if given is not None and given != getattr(config, flag):
            raise UsageError(
                f"--{flag.replace('_', '-')}: the resumed run used {getattr(config, flag)!r}, got {given!r} "
                "(a resumed run keeps its settings so that it continues exactly)"
            )
    if args.epochs is not None:
        if args.epochs < state.epoch:
            raise UsageError(f"--epochs: the run has already finished {state.epoch} epochs, got {args.epochs}")
        config = attrs.evolve(config, epochs=args.epochs)
    return config


def _format_epoch(metrics: EpochMetrics, epochs: int) -> str:
    return (
        f"epoch {metrics.epoch:>3}/{epochs}  loss {metrics.loss:.4f}  train error {100 * metrics.train_error:5.2f}%  "
        f"test error {100 * metrics.test_error:5.2f}%  {metrics.seconds:6.1f} s  {metrics.images_per_second:7.0f} images/s"
    )


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.train``; returns the exit status (0 done, 1 diverged, 2 bad input, 130 Ctrl-C)."""
    from lenet_fn import rundir
    from lenet_fn.checkpoint import CheckpointError
    from lenet_fn.data import DatasetError
    from lenet_fn.plots import PLOT_HINT, matplotlib_available, plot_error_rates
    from lenet_fn.runtime import reuse_freed_memory

    args = _parser().parse_args(argv)
    try:
        if args.resume is not None:
            config, state = rundir.load_state(args.resume)
            config = _resumed_config(args, config, state)
            run_dir = args.out or args.resume.parent
        else:
            config = _config_from_flags(args)
            state = initial_state(get_model(config.model), config)
            run_dir = args.out or Path("runs") / f"{config.model}-{datetime.now():%Y%m%d-%H%M%S}"
        model = get_model(config.model)
        data = prepare_data(model, load_or_download_mnist(args.dataset, progress=stderr), limit=config.limit, dtype=config.dtype)
        run_dir.mkdir(parents=True, exist_ok=True)
    except (UsageError, DatasetError, CheckpointError, OSError) as error:
        print(f"error: {error}", file=stderr)
        return 2

    reuse_freed_memory()
    from lenet_fn.params import tree_size

    print(
        f"{config.model}: {tree_size(state.params):,} trainable parameters; {data.train_y.shape[0]:,} training"
        + (f" (each {config.repeat} times per epoch)" if config.repeat > 1 else "")
        + f" and {data.test_y.shape[0]:,} test images; "
        + (f"momentum SGD, batch {config.batch_size}, lr {config.lr:g}" if config.optimizer == "momentum"
           else f"SDLM (mu {config.sdlm_mu:g}, curvature every {f'{config.sdlm_every} steps' if config.sdlm_every else 'epoch'}), "
           f"batch {config.batch_size}, eta {config.lr:g}")
        + f" ({config.schedule}, warm-up {config.warmup} steps), "
        f"momentum {config.momentum:g}, weight decay {config.weight_decay:g}, {config.threads} thread(s), seed {config.seed}"
        + (f", distortions {attrs.asdict(config.distortion_ranges)}" if config.distort else "")
        + (f"; resuming at epoch {state.epoch + 1}, batch {state.progress.batch + 1}" if args.resume else ""),
        file=stdout,
    )
    print(f"run directory: {run_dir}", file=stdout)
    stdout.flush()
    plots = matplotlib_available()

    def on_epoch_end(new_state: TrainState, metrics: EpochMetrics) -> None:
        print(_format_epoch(metrics, config.epochs), file=stdout)
        stdout.flush()
        rundir.save_state(run_dir / rundir.LAST, config, new_state, kind="last")
        if metrics.test_error <= min(entry.test_error for entry in new_state.history):
            rundir.save_best(run_dir / rundir.BEST, config, new_state)
        rundir.write_metrics(run_dir, config, new_state.history)
        if plots:
            plot_error_rates([attrs.asdict(entry) for entry in new_state.history], run_dir / rundir.PLOT, title=config.model)

    try:
        # a diverging run is reported below in one line; numpy's overflow warnings would only add noise
        with Workers(config.threads) as workers, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if workers.threads != config.threads:
                print(f"note: BLAS threads cannot be controlled here, so training runs on 1 thread instead of {config.threads}", file=stderr)
            state = fit(model, config, data, state, workers=workers, on_epoch_end=on_epoch_end, progress=stderr)
    except TrainingInterrupted as stop:
        path = rundir.save_state(run_dir / rundir.LAST, config, stop.state, kind="interrupted")
        print(
            f"\ninterrupted at epoch {stop.state.epoch + 1}, batch {stop.state.progress.batch}; saved {path}\n"
            f"continue with: python -m lenet_fn.train --resume {path}",
            file=stderr,
        )
        return 130
    except TrainingDiverged as error:
        last = run_dir / rundir.LAST
        finished = len(error.state.history)
        kept = f"{last} (end of epoch {finished}) is the last good checkpoint" if finished else "no checkpoint was written"
        print(f"error: {error}; training stopped, {kept}. Try a smaller --lr.", file=stderr)
        return 1

    best = min(state.history, key=lambda entry: entry.test_error)
    print(f"best test error {100 * best.test_error:.2f}% after epoch {best.epoch}; files in {run_dir}", file=stdout)
    if not plots:
        print(f"no {rundir.PLOT}: {PLOT_HINT}", file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
