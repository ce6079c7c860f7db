"""Models composed from the ops: the paper's LeNet-5, its common ReLU variant, and an MLP.

Each model is a set of pure functions: ``init_<model>(rng)`` -> params,
``<model>_forward(params, x)`` -> ``(outputs, cache)``, ``<model>_backward(d_outputs, cache)`` ->
grads (a tree of the params' class), and a prediction rule. ``MODELS`` binds each to its input
preprocessing and its loss, for training code that works with any of them.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn import curvature, losses, ops
from lenet_fn.arrays import ByteArray, FloatArray, FloatDType, check_float_array, check_float_dtype, check_rng
from lenet_fn.bitmaps import rbf_centers
from lenet_fn.data import prepare_images, standard_prepare
from lenet_fn.inference import lenet5_infer
from lenet_fn.params import (
    Conv2dParams,
    LeNet5Params,
    LeNet5ReluParams,
    LinearParams,
    MLPParams,
    PartialConv2dParams,
    SubsampleParams,
    init_conv2d,
    init_linear,
    init_partial_conv2d,
    init_subsample,
)
from lenet_fn.protocol import Model, import_model, predict_largest, predict_smallest
from lenet_fn.rules import BACKWARD, CURVATURE, ReverseRules, curvature_rules

# LeNet-5's C3 connection table (LeCun et al. 1998, Table I): row k lists the S2 maps feeding C3 map k.
_C3_INPUTS = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip
C3_TABLE: npt.NDArray[np.bool_] = np.zeros((16, 6), dtype=bool)
for _map, _inputs in enumerate(_C3_INPUTS):
    C3_TABLE[_map, list(_inputs)] = True
C3_TABLE.flags.writeable = False


@functools.cache
def _centers(dtype: FloatDType) -> FloatArray:
    return rbf_centers(dtype)


def _check_images(x: object, shape: tuple[int, ...], layout: str) -> FloatArray:
    x = check_float_array("x", x, layout=layout)
    if x.shape[1:] != shape:
        raise ValueError(f"x: expected shape (N, {', '.join(map(str, shape))}), got {x.shape}")
    return x


def _required(value: FloatArray | None) -> FloatArray:
    """An input gradient that was asked for (``input_grad=True`` never returns ``None``)."""
    if value is None:
        raise RuntimeError("an input gradient requested with input_grad=True was not computed")
    return value


# --------------------------------------------------------------------------------------------
# LeNet-5, paper-faithful


def init_lenet5(rng: np.random.Generator, *, dtype: npt.DTypeLike = np.float32) -> LeNet5Params:
    """LeNet-5's parameters, every one uniform in +-2.4 / fan-in of its unit (paper, App. A).

    The fan-in of a C3 map counts only its connected S2 maps (75, 100 or 150 inputs).

    Args:
        rng: the random generator.
        dtype: float32 or float64.

    Returns:
        ``LeNet5Params`` with 60,000 trainable values (C1 156, S2 12, C3 1,516, S4 32, C5 48,120,
        F6 10,164).
    """
    rng = check_rng(rng)
    dtype = check_float_dtype("dtype", dtype)
    c1 = init_conv2d(rng, 1, 6, 5, scheme="lecun98", dtype=dtype)
    s2 = init_subsample(rng, 6, dtype=dtype)
    c3 = init_partial_conv2d(rng, C3_TABLE, 5, dtype=dtype)
    s4 = init_subsample(rng, 16, dtype=dtype)
    c5 = init_conv2d(rng, 16, 120, 5, scheme="lecun98", dtype=dtype)
    f6 = init_linear(rng, 120, 84, scheme="lecun98", dtype=dtype)
    return LeNet5Params(c1=c1, s2=s2, c3=c3, s4=s4, c5=c5, f6=f6)


@attrs.frozen
class LeNet5Cache:
    """Every layer's cache from ``lenet5_forward``, input side first."""

    c1: ops.Conv2dCache
    c1_squash: ops.SquashCache
    s2: ops.SubsampleCache
    s2_squash: ops.SquashCache
    c3: ops.PartialConv2dCache
    c3_squash: ops.SquashCache
    s4: ops.SubsampleCache
    s4_squash: ops.SquashCache
    c5: ops.Conv2dCache
    c5_squash: ops.SquashCache
    flatten: ops.FlattenCache
    f6: ops.LinearCache
    f6_squash: ops.SquashCache
    rbf: ops.RbfCache


def lenet5_forward(params: LeNet5Params, x: FloatArray) -> tuple[FloatArray, LeNet5Cache]:
    """LeNet-5 up to the RBF layer: C1-S2-C3-S4-C5-F6, squashed after each, then RBF distances.

    Args:
        params: the parameters, in the dtype of ``x``.
        x: images prepared by ``prepare_images`` (32x32, background -0.1), shape (N, 1, 32, 32).

    Returns:
        The squared distances of F6's output to the 10 digit bitmaps, shape (N, 10), and the cache.
    """
    x = _check_images(x, (1, 32, 32), "(N, 1, 32, 32)")
    a, c1 = ops.conv2d_forward(x, params.c1.w, params.c1.b)
    a, c1_squash = ops.squash_forward(a)
    a, s2 = ops.subsample_forward(a, params.s2.coeff, params.s2.bias)
    a, s2_squash = ops.squash_forward(a)
    a, c3 = ops.partial_conv2d_forward(a, params.c3.w, params.c3.b, table=C3_TABLE)
    a, c3_squash = ops.squash_forward(a)
    a, s4 = ops.subsample_forward(a, params.s4.coeff, params.s4.bias)
    a, s4_squash = ops.squash_forward(a)
    a, c5 = ops.conv2d_forward(a, params.c5.w, params.c5.b)
    a, c5_squash = ops.squash_forward(a)
    a, flatten = ops.flatten_forward(a)
    a, f6 = ops.linear_forward(a, params.f6.w, params.f6.b)
    a, f6_squash = ops.squash_forward(a)
    distances, rbf = ops.rbf_forward(a, _centers(a.dtype))
    cache = LeNet5Cache(c1, c1_squash, s2, s2_squash, c3, c3_squash, s4, s4_squash, c5, c5_squash, flatten, f6, f6_squash, rbf)
    return distances, cache


def lenet5_backward(d_distances: FloatArray, cache: LeNet5Cache, *, rules: ReverseRules = BACKWARD) -> LeNet5Params:
    """Gradients of every LeNet-5 parameter from the gradient of the RBF distances.

    Args:
        d_distances: upstream gradient, shape (N, 10).
        cache: from ``lenet5_forward``.
        rules: the per-op rules of the walk (``rules.BACKWARD``: the gradient).

    Returns:
        The gradients, a ``LeNet5Params`` tree.
    """
    d, _ = rules.rbf(d_distances, cache.rbf)
    d = rules.squash(d, cache.f6_squash)
    d_x, d_f6_w, d_f6_b = rules.linear(d, cache.f6)
    d = rules.flatten(d_x, cache.flatten)
    d = rules.squash(d, cache.c5_squash)
    d_x, d_c5_w, d_c5_b = rules.conv2d(d, cache.c5)
    d = rules.squash(d_x, cache.s4_squash)
    d, d_s4_coeff, d_s4_bias = rules.subsample(d, cache.s4)
    d = rules.squash(d, cache.c3_squash)
    d_x, d_c3_w, d_c3_b = rules.partial_conv2d(d, cache.c3)
    d = rules.squash(d_x, cache.s2_squash)
    d, d_s2_coeff, d_s2_bias = rules.subsample(d, cache.s2)
    d = rules.squash(d, cache.c1_squash)
    _, d_c1_w, d_c1_b = rules.conv2d(d, cache.c1, input_grad=False)
    return LeNet5Params(
        c1=Conv2dParams(w=d_c1_w, b=d_c1_b),
        s2=SubsampleParams(coeff=d_s2_coeff, bias=d_s2_bias),
        c3=PartialConv2dParams(w=d_c3_w, b=d_c3_b),
        s4=SubsampleParams(coeff=d_s4_coeff, bias=d_s4_bias),
        c5=Conv2dParams(w=d_c5_w, b=d_c5_b),
        f6=LinearParams(w=d_f6_w, b=d_f6_b),
    )


def lenet5_curvature(h_distances: FloatArray, d_distances: FloatArray, cache: LeNet5Cache) -> LeNet5Params:
    """The Gauss-Newton curvature (diagonal) of every LeNet-5 parameter, summed over the batch.

    Args:
        h_distances: the curvature of the loss in the RBF distances, shape (N, 10).
        d_distances: the gradient of the loss in the distances, shape (N, 10) (the RBF units'
            own curvature, ``curvature.rbf_curvature``).
        cache: from ``lenet5_forward``.

    Returns:
        The curvatures, a ``LeNet5Params`` tree.
    """
    return lenet5_backward(h_distances, cache, rules=curvature_rules(d_out=d_distances))


# --------------------------------------------------------------------------------------------
# LeNet-5 with ReLU, max pooling, full C3 and a softmax output


def init_lenet5_relu(rng: np.random.Generator, *, dtype: npt.DTypeLike = np.float32) -> LeNet5ReluParams:
    """The modern variant's parameters, He-uniform weights and zero biases (61,706 values).

    Args:
        rng: the random generator.
        dtype: float32 or float64.

    Returns:
        ``LeNet5ReluParams``.
    """
    return LeNet5ReluParams(
        c1=init_conv2d(rng, 1, 6, 5, dtype=dtype),
        c3=init_conv2d(rng, 6, 16, 5, dtype=dtype),
        c5=init_conv2d(rng, 16, 120, 5, dtype=dtype),
        f6=init_linear(rng, 120, 84, dtype=dtype),
        output=init_linear(rng, 84, 10, dtype=dtype),
    )


@attrs.frozen
class LeNet5ReluCache:
    """Every layer's cache from ``lenet5_relu_forward``, input side first."""

    c1: ops.Conv2dCache
    c1_relu: ops.ReluCache
    s2: ops.MaxPool2dCache
    c3: ops.Conv2dCache
    c3_relu: ops.ReluCache
    s4: ops.MaxPool2dCache
    c5: ops.Conv2dCache
    c5_relu: ops.ReluCache
    flatten: ops.FlattenCache
    f6: ops.LinearCache
    f6_relu: ops.ReluCache
    output: ops.LinearCache


def lenet5_relu_forward(params: LeNet5ReluParams, x: FloatArray) -> tuple[FloatArray, LeNet5ReluCache]:
    """C1-pool-C3-pool-C5-F6-output with ReLU after each hidden layer and 2x2 max pooling.

    Args:
        params: the parameters, in the dtype of ``x``.
        x: standardised images padded to 32x32, shape (N, 1, 32, 32).

    Returns:
        Logits, shape (N, 10), and the cache.
    """
    x = _check_images(x, (1, 32, 32), "(N, 1, 32, 32)")
    a, c1 = ops.conv2d_forward(x, params.c1.w, params.c1.b)
    a, c1_relu = ops.relu_forward(a)
    a, s2 = ops.max_pool2d_forward(a)
    a, c3 = ops.conv2d_forward(a, params.c3.w, params.c3.b)
    a, c3_relu = ops.relu_forward(a)
    a, s4 = ops.max_pool2d_forward(a)
    a, c5 = ops.conv2d_forward(a, params.c5.w, params.c5.b)
    a, c5_relu = ops.relu_forward(a)
    a, flatten = ops.flatten_forward(a)
    a, f6 = ops.linear_forward(a, params.f6.w, params.f6.b)
    a, f6_relu = ops.relu_forward(a)
    logits, output = ops.linear_forward(a, params.output.w, params.output.b)
    return logits, LeNet5ReluCache(c1, c1_relu, s2, c3, c3_relu, s4, c5, c5_relu, flatten, f6, f6_relu, output)


def lenet5_relu_backward(d_logits: FloatArray, cache: LeNet5ReluCache, *, rules: ReverseRules = BACKWARD) -> LeNet5ReluParams:
    """Gradients of every parameter of the ReLU variant from the gradient of its logits.

    Args:
        d_logits: upstream gradient, shape (N, 10).
        cache: from ``lenet5_relu_forward``.
        rules: the per-op rules of the walk (``rules.BACKWARD``: the gradient).

    Returns:
        The gradients, a ``LeNet5ReluParams`` tree.
    """
    d_x, d_out_w, d_out_b = rules.linear(d_logits, cache.output)
    d = rules.relu(d_x, cache.f6_relu)
    d_x, d_f6_w, d_f6_b = rules.linear(d, cache.f6)
    d = rules.flatten(d_x, cache.flatten)
    d = rules.relu(d, cache.c5_relu)
    d_x, d_c5_w, d_c5_b = rules.conv2d(d, cache.c5)
    d = rules.max_pool2d(d_x, cache.s4)
    d = rules.relu(d, cache.c3_relu)
    d_x, d_c3_w, d_c3_b = rules.conv2d(d, cache.c3)
    d = rules.max_pool2d(d_x, cache.s2)
    d = rules.relu(d, cache.c1_relu)
    _, d_c1_w, d_c1_b = rules.conv2d(d, cache.c1, input_grad=False)
    return LeNet5ReluParams(
        c1=Conv2dParams(w=d_c1_w, b=d_c1_b),
        c3=Conv2dParams(w=d_c3_w, b=d_c3_b),
        c5=Conv2dParams(w=d_c5_w, b=d_c5_b),
        f6=LinearParams(w=d_f6_w, b=d_f6_b),
        output=LinearParams(w=d_out_w, b=d_out_b),
    )


def lenet5_relu_curvature(h_logits: FloatArray, d_logits: FloatArray, cache: LeNet5ReluCache) -> LeNet5ReluParams:
    """The Gauss-Newton curvature (diagonal) of every parameter of the ReLU variant, summed over the batch.

    ``d_logits`` is unused: the output layer is linear, with no curvature of its own.
    """
    return lenet5_relu_backward(h_logits, cache, rules=CURVATURE)


# --------------------------------------------------------------------------------------------
# multilayer perceptron

MLP_SIZES = (784, 300, 100, 10)
"""Layer widths of the ``mlp`` model, input first (LeCun et al. 1998's 300-100 network)."""


def init_mlp(
    rng: np.random.Generator, *, sizes: tuple[int, ...] = MLP_SIZES, dtype: npt.DTypeLike = np.float32
) -> MLPParams:
    """A dense ReLU network, He-uniform weights and zero biases.

    Args:
        rng: the random generator.
        sizes: layer widths, input first, at least two.
        dtype: float32 or float64.

    Returns:
        ``MLPParams`` with ``len(sizes) - 1`` layers.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least an input and an output width, got {sizes}")
    return MLPParams(layers=tuple(init_linear(rng, n_in, n_out, dtype=dtype) for n_in, n_out in zip(sizes, sizes[1:])))


@attrs.frozen
class MLPCache:
    """The caches of ``mlp_forward``: one linear cache per layer, one ReLU cache per hidden layer."""

    linear: tuple[ops.LinearCache, ...]
    relu: tuple[ops.ReluCache, ...]


def mlp_forward(params: MLPParams, x: FloatArray) -> tuple[FloatArray, MLPCache]:
    """Dense layers with ReLU between them; the last layer's output is the logits.

    Args:
        params: the parameters, in the dtype of ``x``.
        x: flattened images, shape (N, in) with ``in`` the first layer's width.

    Returns:
        Logits, shape (N, out), and the cache.
    """
    a = check_float_array("x", x, layout="(N, in)")
    linear_caches, relu_caches = [], []
    for index, layer in enumerate(params.layers):
        a, linear_cache = ops.linear_forward(a, layer.w, layer.b)
        linear_caches.append(linear_cache)
        if index < len(params.layers) - 1:
            a, relu_cache = ops.relu_forward(a)
            relu_caches.append(relu_cache)
    return a, MLPCache(linear=tuple(linear_caches), relu=tuple(relu_caches))


def mlp_backward(d_logits: FloatArray, cache: MLPCache, *, rules: ReverseRules = BACKWARD) -> MLPParams:
    """Gradients of every MLP parameter from the gradient of its logits.

    Args:
        d_logits: upstream gradient, shape (N, out).
        cache: from ``mlp_forward``.
        rules: the per-op rules of the walk (``rules.BACKWARD``: the gradient).

    Returns:
        The gradients, an ``MLPParams`` tree.
    """
    d = d_logits
    layers: list[LinearParams] = []
    for index in reversed(range(len(cache.linear))):
        d_x, d_w, d_b = rules.linear(d, cache.linear[index], input_grad=index > 0)
        layers.append(LinearParams(w=d_w, b=d_b))
        if index > 0:
            d = rules.relu(_required(d_x), cache.relu[index - 1])
    return MLPParams(layers=tuple(reversed(layers)))


def mlp_curvature(h_logits: FloatArray, d_logits: FloatArray, cache: MLPCache) -> MLPParams:
    """The Gauss-Newton curvature (diagonal) of every MLP parameter, summed over the batch.

    ``d_logits`` is unused: the output layer is linear, with no curvature of its own.
    """
    return mlp_backward(h_logits, cache, rules=CURVATURE)


# --------------------------------------------------------------------------------------------
# the registry


def _prepare_lenet5(images: ByteArray, dtype: npt.DTypeLike) -> FloatArray:
    return prepare_images(images, pad=2, low=-0.1, high=1.175, dtype=dtype)


def lenet5_outputs(params: LeNet5Params, x: FloatArray) -> FloatArray:
    """LeNet-5's RBF distances (N, 10) on images (N, 1, 32, 32) without a cache: ``lenet5_forward``'s
    numbers to round-off, faster (``lenet_fn.inference``)."""
    return lenet5_infer(params, x, C3_TABLE)


LENET5: Model[LeNet5Params] = Model(
    name="lenet5",
    summary="paper-faithful LeNet-5: squash, trainable subsampling, C3 table, RBF bitmaps, MAP loss",
    init=init_lenet5,
    forward=lenet5_forward,
    backward=lenet5_backward,
    loss_forward=losses.map_loss_forward,
    loss_backward=losses.map_loss_backward,
    curvature=lenet5_curvature,
    loss_curvature=curvature.map_loss_curvature,
    predict=predict_smallest,
    prepare=_prepare_lenet5,
    infer=lenet5_outputs,
)
LENET5_RELU: Model[LeNet5ReluParams] = Model(
    name="lenet5-relu",
    summary="modern LeNet-5: ReLU, max pooling, full C3, 84->10 linear, softmax cross-entropy",
    init=init_lenet5_relu,
    forward=lenet5_relu_forward,
    backward=lenet5_relu_backward,
    loss_forward=losses.softmax_cross_entropy_forward,
    loss_backward=losses.softmax_cross_entropy_backward,
    curvature=lenet5_relu_curvature,
    loss_curvature=curvature.softmax_cross_entropy_curvature,
    predict=predict_largest,
    prepare=standard_prepare((1, 32, 32)),
)
MLP: Model[MLPParams] = Model(
    name="mlp",
    summary="784-300-100-10 ReLU network on the flattened image, softmax cross-entropy",
    init=init_mlp,
    forward=mlp_forward,
    backward=mlp_backward,
    loss_forward=losses.softmax_cross_entropy_forward,
    loss_backward=losses.softmax_cross_entropy_backward,
    curvature=mlp_curvature,
    loss_curvature=curvature.softmax_cross_entropy_curvature,
    predict=predict_largest,
    prepare=standard_prepare((784,)),
)
MODELS: dict[str, Model[Any]] = {model.name: model for model in (LENET5, LENET5_RELU, MLP)}


def get_model(name: str) -> Model[Any]:
    """The model called ``name``: a built-in (``lenet5``, ``lenet5-relu``, ``mlp``) or the import path
    of a ``Model`` of your own, ``package.module:NAME`` (imported; its ``name`` becomes the path)."""
    if name in MODELS:
        return MODELS[name]
    if isinstance(name, str) and ":" in name:
        return import_model(name)
    raise ValueError(f"model: expected one of {', '.join(MODELS)} or an import path module:NAME, got {name!r}")
