"""The math of one batch, split across worker threads: the loss and gradients, SDLM's curvature,
and the outputs of many inputs (evaluation).

A batch is cut into contiguous parts (``Workers.split``) that run in parallel; the results are the
size-weighted means of the parts', which is the mean over the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from lenet_fn.arrays import FloatArray, IntArray, check_int
from lenet_fn.parallel import SEQUENTIAL, Workers
from lenet_fn.params import tree_flatten, tree_unflatten
from lenet_fn.protocol import Model

P = TypeVar("P")
Result = TypeVar("Result")


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

    curvature, loss_curvature = model.curvature, model.loss_curvature
    if curvature is None or loss_curvature is None:
        raise ValueError(f"model {model.name}: has no curvature functions (Model.curvature and Model.loss_curvature), which SDLM needs")

    def part(rows: slice) -> P:
        outputs, cache = model.forward(params, x[rows])
        _, loss_cache = model.loss_forward(outputs, labels[rows])
        return curvature(loss_curvature(loss_cache), model.loss_backward(loss_cache), cache)

    return _weighted_sum(*_map_parts(workers, x.shape[0], part))


def predict_outputs(
    model: Model[P], params: P, x: FloatArray, *, batch_size: int = 128, workers: Workers = SEQUENTIAL
) -> FloatArray:
    """The model's outputs on many inputs, ``batch_size`` at a time, the batches shared out among
    the workers (``Model.outputs``: the model's cache-free ``infer`` when it has one).

    Args:
        model: the model.
        params: its parameters.
        x: prepared inputs, shape (N, ...).
        batch_size: inputs per call of the model (small enough for its intermediates to stay in
            the cache; see the docs' speed page).
        workers: the threads to use.

    Returns:
        Outputs, shape (N, 10).
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[0] < 1:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"x: expected a batch of at least one prepared input, shape (N, ...) with N >= 1, got {got}")
    chunks = [slice(start, min(start + batch_size, x.shape[0])) for start in range(0, x.shape[0], batch_size)]
    return np.concatenate(workers.map(lambda rows: model.outputs(params, x[rows]), chunks))
