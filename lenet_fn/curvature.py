"""Curvature passes: the Gauss-Newton diagonal of second derivatives, backwards through every op.

For an op ``out = f(in, params)`` and the diagonal ``h_out`` of the (Gauss-Newton) Hessian of the
loss with respect to ``out``, each pass returns, for the input and for every parameter,

    h[k] = sum_o (d out_o / d k)**2 * h_out[o]

which is the exact diagonal of ``J^T diag(h_out) J`` for that op (``J`` its Jacobian). Weights
shared by many connections (a conv kernel, a subsampling coefficient) sum over them.
Chained through a network, the Hessian is kept diagonal between layers: the approximation of
LeCun et al. 1998 (App. C) and LeCun, Bottou, Orr, Mueller, "Efficient BackProp" (1998), on which
the stochastic diagonal Levenberg-Marquardt method (SDLM, ``lenet_fn.optim``) rests.

Most passes are the op's own backward applied to squared quantities: the Jacobian entries of a
linear map are its weights (or inputs), so squaring them in the cache gives the squared Jacobian.
The loss passes return the diagonal of the loss Hessian itself, which is exact and non-negative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar, overload

import attrs
import numpy as np

from lenet_fn import losses, ops
from lenet_fn.arrays import FloatArray, check_cache

Cache = TypeVar("Cache")


# --------------------------------------------------------------------------------------------
# layers with parameters


@overload
def linear_curvature(
    h_out: FloatArray, cache: ops.LinearCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def linear_curvature(
    h_out: FloatArray, cache: ops.LinearCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def linear_curvature(
    h_out: FloatArray, cache: ops.LinearCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def linear_curvature(
    h_out: FloatArray, cache: ops.LinearCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Curvature of ``linear_forward``: ``h_x = h_out @ w**2``, ``h_w = h_out.T @ x**2``, ``h_b = sum h_out``.

    Args:
        h_out: the curvature of the output, shape (N, out).
        cache: from ``linear_forward``.
        input_grad: compute ``h_x`` (``False`` returns ``None``).

    Returns:
        ``(h_x, h_w, h_b)`` of shapes (N, in), (out, in), (out,).
    """
    cache = check_cache(cache, ops.LinearCache, "linear_forward")
    squared = ops.LinearCache(x=cache.x * cache.x, w=cache.w * cache.w)
    return ops.linear_backward(h_out, squared, input_grad=input_grad)


@overload
def conv2d_curvature(
    h_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def conv2d_curvature(
    h_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def conv2d_curvature(
    h_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def conv2d_curvature(
    h_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Curvature of ``conv2d_forward``: its backward with squared inputs and squared weights.

    Args:
        h_out: the curvature of the output, shape (N, F, Ho, Wo).
        cache: from ``conv2d_forward``.
        input_grad: compute ``h_x`` (``False`` returns ``None``).

    Returns:
        ``(h_x, h_w, h_b)`` of shapes (N, C, H, W), (F, C, kh, kw), (F,).
    """
    cache = check_cache(cache, ops.Conv2dCache, "conv2d_forward")
    squared = attrs.evolve(cache, columns=cache.columns * cache.columns, w=cache.w * cache.w)
    return ops.conv2d_backward(h_out, squared, input_grad=input_grad)


@overload
def partial_conv2d_curvature(
    h_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def partial_conv2d_curvature(
    h_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def partial_conv2d_curvature(
    h_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def partial_conv2d_curvature(
    h_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Curvature of ``partial_conv2d_forward``: ``(h_x, h_w, h_b)``, ``h_w`` of shape (connections, kh, kw)."""
    cache = check_cache(cache, ops.PartialConv2dCache, "partial_conv2d_forward")
    h_x, h_dense, h_b = conv2d_curvature(h_out, cache.conv, input_grad=input_grad)
    return h_x, h_dense[cache.table], h_b


def subsample_curvature(h_out: FloatArray, cache: ops.SubsampleCache) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Curvature of ``subsample_forward``: each input weighs ``coeff**2``, the coefficient ``sum(window)**2``.

    Args:
        h_out: the curvature of the output, shape (N, C, H // size, W // size).
        cache: from ``subsample_forward``.

    Returns:
        ``(h_x, h_coeff, h_bias)`` of shapes (N, C, H, W), (C,), (C,).
    """
    cache = check_cache(cache, ops.SubsampleCache, "subsample_forward")
    squared = attrs.evolve(cache, window_sums=cache.window_sums * cache.window_sums, coeff=cache.coeff * cache.coeff)
    return ops.subsample_backward(h_out, squared)


def rbf_curvature(
    h_out: FloatArray, cache: ops.RbfCache, *, d_out: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Curvature of ``rbf_forward`` (``d y_i / d x_j = 2 (x_j - c_ij)``, ``d2 y_i / d x_j2 = 2``).

    An RBF unit is a sum of squared residuals ``x - c_i``. Given the upstream gradient ``d_out``,
    the pass also keeps the units' own curvature ``2 * sum_i d_out[n, i]`` (clipped at 0): the
    Gauss-Newton split made on the residuals rather than on the distances, as for a least-squares
    loss. Without it the MAP loss would look flat while every distance is far from its minimum (its
    Hessian in the distances is ``p (1 - p)``, about ``exp(-84)`` at initialisation).

    Args:
        h_out: the curvature of the distances, shape (N, K).
        cache: from ``rbf_forward``.
        d_out: the gradient of the loss with respect to the distances, shape (N, K), or ``None``
            for the plain Gauss-Newton term.

    Returns:
        ``(h_x, h_centers)`` of shapes (N, D) and (K, D).
    """
    cache = check_cache(cache, ops.RbfCache, "rbf_forward")
    x, centers = cache.x, cache.centers
    squared = 4.0 * (x[:, None, :] - centers[None, :, :]) ** 2  # (N, K, D)
    h_x: FloatArray = np.einsum("nk,nkd->nd", h_out, squared)
    h_centers: FloatArray = np.einsum("nk,nkd->kd", h_out, squared)
    if d_out is not None:
        h_x += np.maximum(2.0 * d_out.sum(axis=1, keepdims=True), 0.0)
        h_centers += np.maximum(2.0 * d_out.sum(axis=0)[:, None], 0.0)
    return h_x, h_centers


# --------------------------------------------------------------------------------------------
# layers without parameters


def avg_pool2d_curvature(h_out: FloatArray, cache: ops.AvgPool2dCache) -> FloatArray:
    """Curvature of ``avg_pool2d_forward``: every input of a window weighs ``1 / size**4``."""
    cache = check_cache(cache, ops.AvgPool2dCache, "avg_pool2d_forward")
    return ops.avg_pool2d_backward(h_out * (1.0 / (cache.size * cache.size)), cache)


def max_pool2d_curvature(h_out: FloatArray, cache: ops.MaxPool2dCache) -> FloatArray:
    """Curvature of ``max_pool2d_forward``: the window's curvature goes to its maximum."""
    cache = check_cache(cache, ops.MaxPool2dCache, "max_pool2d_forward")
    return ops.max_pool2d_backward(h_out, cache)


def flatten_curvature(h_out: FloatArray, cache: ops.FlattenCache) -> FloatArray:
    """Curvature of ``flatten_forward``: reshaped back."""
    cache = check_cache(cache, ops.FlattenCache, "flatten_forward")
    return ops.flatten_backward(h_out, cache)


def _elementwise(backward: Callable[[FloatArray, Cache], FloatArray], h_out: FloatArray, cache: Cache) -> FloatArray:
    """``h_out * f'(x)**2`` for an elementwise activation, ``f'`` read off its backward."""
    derivative = backward(np.ones_like(h_out), cache)
    return h_out * derivative * derivative


def relu_curvature(h_out: FloatArray, cache: ops.ReluCache) -> FloatArray:
    """Curvature of ``relu_forward``."""
    cache = check_cache(cache, ops.ReluCache, "relu_forward")
    return _elementwise(ops.relu_backward, h_out, cache)


def leaky_relu_curvature(h_out: FloatArray, cache: ops.LeakyReluCache) -> FloatArray:
    """Curvature of ``leaky_relu_forward``."""
    cache = check_cache(cache, ops.LeakyReluCache, "leaky_relu_forward")
    return _elementwise(ops.leaky_relu_backward, h_out, cache)


def sigmoid_curvature(h_out: FloatArray, cache: ops.SigmoidCache) -> FloatArray:
    """Curvature of ``sigmoid_forward``."""
    cache = check_cache(cache, ops.SigmoidCache, "sigmoid_forward")
    return _elementwise(ops.sigmoid_backward, h_out, cache)


def tanh_curvature(h_out: FloatArray, cache: ops.TanhCache) -> FloatArray:
    """Curvature of ``tanh_forward``."""
    cache = check_cache(cache, ops.TanhCache, "tanh_forward")
    return _elementwise(ops.tanh_backward, h_out, cache)


def squash_curvature(h_out: FloatArray, cache: ops.SquashCache) -> FloatArray:
    """Curvature of ``squash_forward``."""
    cache = check_cache(cache, ops.SquashCache, "squash_forward")
    return _elementwise(ops.squash_backward, h_out, cache)


def elu_curvature(h_out: FloatArray, cache: ops.EluCache) -> FloatArray:
    """Curvature of ``elu_forward``."""
    cache = check_cache(cache, ops.EluCache, "elu_forward")
    return _elementwise(ops.elu_backward, h_out, cache)


# --------------------------------------------------------------------------------------------
# losses: the diagonal of the Hessian of the mean loss with respect to its input


def _softmax_diagonal(probabilities: FloatArray) -> FloatArray:
    """``p (1 - p) / N``: the Hessian diagonal of a mean log-sum-exp loss, row by row."""
    diagonal: FloatArray = probabilities * (1.0 - probabilities)
    diagonal *= 1.0 / probabilities.shape[0]
    return diagonal


def softmax_cross_entropy_curvature(cache: losses.SoftmaxCrossEntropyCache) -> FloatArray:
    """Diagonal of the Hessian of the mean softmax cross-entropy in the logits: ``p (1 - p) / N``, (N, K)."""
    cache = check_cache(cache, losses.SoftmaxCrossEntropyCache, "softmax_cross_entropy_forward")
    return _softmax_diagonal(cache.probabilities)


def map_loss_curvature(cache: losses.MapLossCache) -> FloatArray:
    """Diagonal of the Hessian of the mean MAP loss in the distances: ``p (1 - p) / N``, (N, K).

    ``p_i = exp(-y_i) / (exp(-j) + sum_k exp(-y_k))``; the ``y[label]`` term is linear.
    """
    cache = check_cache(cache, losses.MapLossCache, "map_loss_forward")
    return _softmax_diagonal(cache.probabilities)


def mse_curvature(cache: losses.MseCache) -> FloatArray:
    """Diagonal of the Hessian of the mean squared error: ``2 / (N K)`` everywhere, (N, K)."""
    cache = check_cache(cache, losses.MseCache, "mse_forward")
    curvature: FloatArray = np.full_like(cache.difference, 2.0 / cache.difference.size)
    return curvature
