"""Where an epoch of the default ``python -m lenet_fn.train`` goes, and how fast its step computes.

``epoch_phases`` runs part of an epoch with the default settings phase by phase (each timed on its
own, nothing overlapping), then the same steps as ``train_epoch`` runs them, with the warps made
in a worker process and on a thread, and scales them to the 60,000 images of an epoch.
``step_flops`` counts the multiply-adds of one LeNet-5 training step; ``sgemm_peak`` measures what
BLAS reaches on large matrices, the practical peak the step's rate is set against.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from lenet_fn.config import TrainConfig
from lenet_fn.data import Mnist, minibatches
from lenet_fn.loop import Run, end_epoch, start_epoch, train_batch, train_epoch
from lenet_fn.models import LENET5
from lenet_fn.parallel import Workers, default_threads
from lenet_fn.rundir import RunFiles
from lenet_fn.state import initial_state, prepare_data
from lenet_fn.warps import WarpWorker, distorted_batch

EPOCH_IMAGES = 60000


def _timed(seconds: dict[str, float], phase: str, job: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = job()
    seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started
    return result


def epoch_phases(dataset: Mnist, images: int = 16000) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per 60,000-image epoch of each phase of the default run (measured on ``images``
    training images; the test evaluation and the files once, as an epoch has them once), and of
    the whole epoch as ``train_epoch`` runs it, its warps made in a worker process (as the default
    run makes them) or on a thread (as a run of fewer than ``loop.WARP_PROCESS_MIN_STEPS`` steps
    does): the same steps, scaled the same way, plus the evaluation and the files."""
    config = TrainConfig(epochs=1, limit=images, threads=default_threads(), warmup=500)
    data = prepare_data(LENET5, dataset, limit=images)
    scale = EPOCH_IMAGES / images
    seconds: dict[str, float] = {}
    with Workers(config.threads) as workers, tempfile.TemporaryDirectory() as folder:
        run = Run(LENET5, config, data, workers)
        state = _timed(seconds, "order", lambda: start_epoch(run, initial_state(LENET5, config)))
        for index, rows in enumerate(minibatches(state.order, config.batch_size)):
            x = _timed(seconds, "batch gathering", lambda: data.train_x[rows])
            x = _timed(seconds, "distortions", lambda: distorted_batch(x, config.distortion_ranges, (config.seed, 0, index), run.background))
            state = _timed(seconds, "training steps", lambda: train_batch(run, state, rows, x))
        phases = {phase: value * scale for phase, value in seconds.items()}
        state, _ = _timed(phases, "test evaluation", lambda: end_epoch(run, state))
        files = RunFiles(Path(folder), config, plots=True)
        _timed(phases, "run files", lambda: files.end_of_epoch(state))
        outside = phases["test evaluation"] + phases["run files"]
        with WarpWorker(data.train_x, config.distortion_ranges, config.seed, run.background) as warps:
            in_process = _epoch_seconds(run, config, warps)
        on_thread = _epoch_seconds(run, config, None)
    whole = {"warps in a worker process": in_process * scale + outside, "warps on a thread": on_thread * scale + outside}
    return phases, whole


def _epoch_seconds(run: Run, config: TrainConfig, warps: WarpWorker | None) -> float:
    """Seconds of one epoch's steps as ``train_epoch`` runs them (from a fresh start)."""
    state = start_epoch(run, initial_state(LENET5, config))
    started = time.perf_counter()
    for state in train_epoch(run, state, warps):
        pass
    return time.perf_counter() - started


def step_flops(batch: int) -> float:
    """Floating-point operations (a multiply-add counts 2) of one LeNet-5 training step on
    ``batch`` images as lenet_fn computes it: the matrix products of the forward pass (C3 dense,
    its missing kernels zero, as computed), twice that backward (weight and input gradients; C1
    needs none for its input), and the RBF layer's differences."""
    products = {  # (rows, inner, columns) per image
        "c1": (6, 25, 28 * 28), "c3": (16, 150, 10 * 10), "c5": (120, 400, 1), "f6": (84, 120, 1),
    }  # fmt: skip
    forward = sum(2 * m * k * n for m, k, n in products.values())
    c1 = 2 * 6 * 25 * 28 * 28
    backward = 2 * forward - c1
    rbf = 3 * 10 * 84 * 3  # differences, squares and sums, forward and backward
    return float(batch * (forward + backward + rbf))


def sgemm_peak(threads: int, size: int = 2048) -> float:
    """GFLOP/s of float32 BLAS multiplying two ``size`` x ``size`` matrices on ``threads`` threads."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        a @ b
        started = time.perf_counter()
        for _ in range(3):
            a @ b
        seconds = (time.perf_counter() - started) / 3
    return 2 * size**3 / seconds / 1e9
