"""Losses as pure pairs: ``<name>_forward(scores, labels) -> (loss, cache)``, ``<name>_backward(cache, d_loss)``.

Every loss is a mean over the batch and is returned as a Python float; the gradient keeps the
dtype of the scores.
"""

from __future__ import annotations

import attrs
import numpy as np

from lenet_fn.arrays import FloatArray, IntArray, check_cache, check_float_array, check_labels, check_positive_float, readonly_view

MAP_LOSS_J = 0.1
"""Default of the positive constant ``j`` in LeNet-5's MAP loss (paper eq. 9 leaves it open)."""


def _check_scores(name: str, scores: object) -> FloatArray:
    scores = check_float_array(name, scores, layout="(N, K)")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {scores.shape}")
    return scores


def _probabilities_minus_onehot(probabilities: FloatArray, labels: IntArray, scale: float) -> FloatArray:
    """``scale * (probabilities - onehot(labels))``, the gradient shape both log-likelihood losses share."""
    gradient = probabilities * scale
    gradient[np.arange(labels.shape[0]), labels] -= scale
    return gradient


# --------------------------------------------------------------------------------------------
# softmax cross-entropy


@attrs.frozen
class SoftmaxCrossEntropyCache:
    """Saved by ``softmax_cross_entropy_forward``: softmax probabilities (N, K) and labels (N,)."""

    probabilities: FloatArray
    labels: IntArray


def softmax_cross_entropy_forward(
    scores: FloatArray, labels: IntArray
) -> tuple[float, SoftmaxCrossEntropyCache]:
    """Mean cross-entropy of the softmax of ``scores`` (logits) against integer labels.

    Args:
        scores: logits, shape (N, K).
        labels: class indices in [0, K), shape (N,).

    Returns:
        The mean loss, and the cache for ``softmax_cross_entropy_backward``.

    Example:
        >>> import numpy as np
        >>> loss, cache = softmax_cross_entropy_forward(np.zeros((2, 4)), np.array([0, 3]))
        >>> round(loss, 4)                                  # log 4: every class equally likely
        1.3863
        >>> softmax_cross_entropy_backward(cache)[0].tolist()
        [-0.375, 0.125, 0.125, 0.125]
    """
    scores = _check_scores("scores", scores)
    labels = check_labels("labels", labels, count=scores.shape[0], num_classes=scores.shape[1])
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(log_probabilities[np.arange(labels.shape[0]), labels].mean())
    probabilities = np.exp(log_probabilities)
    return loss, SoftmaxCrossEntropyCache(readonly_view(probabilities), readonly_view(labels))


def softmax_cross_entropy_backward(cache: SoftmaxCrossEntropyCache, d_loss: float = 1.0) -> FloatArray:
    """Gradient of the mean softmax cross-entropy with respect to the logits.

    Args:
        cache: from ``softmax_cross_entropy_forward``.
        d_loss: upstream gradient of the (scalar) loss.

    Returns:
        ``d_scores``, shape (N, K).
    """
    cache = check_cache(cache, SoftmaxCrossEntropyCache, "softmax_cross_entropy_forward")
    return _probabilities_minus_onehot(cache.probabilities, cache.labels, d_loss / cache.labels.shape[0])


# --------------------------------------------------------------------------------------------
# mean squared error


@attrs.frozen
class MseCache:
    """Saved by ``mse_forward``: ``scores - targets``, shape (N, K)."""

    difference: FloatArray


def mse_forward(scores: FloatArray, targets: FloatArray | IntArray) -> tuple[float, MseCache]:
    """Mean squared error over all N * K entries (PyTorch's ``MSELoss()``).

    Args:
        scores: predictions, shape (N, K).
        targets: real targets of shape (N, K) in the dtype of ``scores``, or integer class
            labels of shape (N,), which stand for one-hot targets.

    Returns:
        The mean loss, and the cache for ``mse_backward``.

    Example:
        >>> import numpy as np
        >>> loss, cache = mse_forward(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]))
        >>> loss, mse_backward(cache).tolist()
        (0.5, [[1.0, 0.0]])
    """
    scores = _check_scores("scores", scores)
    if isinstance(targets, np.ndarray) and targets.dtype.kind in "iu":
        labels = check_labels("targets", targets, count=scores.shape[0], num_classes=scores.shape[1])
        difference = scores.copy()
        difference[np.arange(labels.shape[0]), labels] -= 1.0
    else:
        real_targets = check_float_array("targets", targets, layout="(N, K)")
        if real_targets.shape != scores.shape:
            raise ValueError(
                f"targets: expected shape {scores.shape} (the shape of scores) or integer labels of shape "
                f"({scores.shape[0]},), got {real_targets.shape}"
            )
        if real_targets.dtype != scores.dtype:
            raise TypeError(f"targets: expected dtype {scores.dtype} (the dtype of scores), got {real_targets.dtype}")
        difference = scores - real_targets
    loss = float(np.mean(difference * difference))
    return loss, MseCache(readonly_view(difference))


def mse_backward(cache: MseCache, d_loss: float = 1.0) -> FloatArray:
    """Gradient of ``mse_forward`` with respect to the scores.

    Args:
        cache: from ``mse_forward``.
        d_loss: upstream gradient of the (scalar) loss.

    Returns:
        ``d_scores``, shape (N, K).
    """
    cache = check_cache(cache, MseCache, "mse_forward")
    return cache.difference * (2.0 * d_loss / cache.difference.size)


# --------------------------------------------------------------------------------------------
# LeNet-5 maximum a posteriori loss


@attrs.frozen
class MapLossCache:
    """Saved by ``map_loss_forward``: ``exp(-y) / (exp(-j) + sum_i exp(-y_i))`` (N, K) and labels (N,)."""

    probabilities: FloatArray
    labels: IntArray


def map_loss_forward(distances: FloatArray, labels: IntArray, *, j: float = MAP_LOSS_J) -> tuple[float, MapLossCache]:
    """LeNet-5's MAP criterion (LeCun et al. 1998, eq. 9), averaged over the batch.

    Per sample: ``y[label] + log(exp(-j) + sum_i exp(-y[i]))``: pull the correct RBF unit's
    distance down and push the others up, with ``exp(-j)`` standing for a "rubbish" class.
    Computed as a stable log-sum-exp.

    Args:
        distances: RBF outputs ``y``, shape (N, K).
        labels: class indices in [0, K), shape (N,).
        j: the positive constant of eq. 9.

    Returns:
        The mean loss, and the cache for ``map_loss_backward``.

    Example:
        >>> import numpy as np
        >>> distances = np.array([[0.0, 50.0, 50.0]])
        >>> loss, cache = map_loss_forward(distances, np.array([0]))
        >>> round(loss, 4)                                  # y_0 + log(exp(-j) + sum exp(-y))
        0.6444
        >>> np.round(map_loss_backward(cache), 4).tolist()
        [[0.475, -0.0, -0.0]]
    """
    distances = _check_scores("distances", distances)
    labels = check_labels("labels", labels, count=distances.shape[0], num_classes=distances.shape[1])
    j = check_positive_float("j", j)
    negatives = -distances
    shift = np.maximum(negatives.max(axis=1, keepdims=True), -j)
    exponentials = np.exp(negatives - shift)
    total = exponentials.sum(axis=1, keepdims=True) + np.exp(-j - shift)
    log_total = shift + np.log(total)
    rows = np.arange(labels.shape[0])
    loss = float(np.mean(distances[rows, labels] + log_total[:, 0]))
    probabilities = exponentials / total
    return loss, MapLossCache(readonly_view(probabilities), readonly_view(labels))


def map_loss_backward(cache: MapLossCache, d_loss: float = 1.0) -> FloatArray:
    """Gradient of ``map_loss_forward`` with respect to the distances: ``onehot - probabilities``.

    Args:
        cache: from ``map_loss_forward``.
        d_loss: upstream gradient of the (scalar) loss.

    Returns:
        ``d_distances``, shape (N, K).
    """
    cache = check_cache(cache, MapLossCache, "map_loss_forward")
    return _probabilities_minus_onehot(cache.probabilities, cache.labels, -d_loss / cache.labels.shape[0])
