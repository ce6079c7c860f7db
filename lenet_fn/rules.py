"""The per-op rules of a model's reverse walk, typed: the gradient (``BACKWARD``) and SDLM's curvature.

A model's backward visits its layers in reverse order and calls one rule per op. The same walk
with the curvature rules (``curvature_rules``) gives the Gauss-Newton diagonal; with rules of your
own (timed, logged, or computed another way) it computes what they compute.
Each rule kind is a ``Protocol`` (the gradient or curvature in, the cache: positional), so mypy
checks every call a model makes on a table.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol, TypeVar, overload

import attrs

from lenet_fn import curvature, ops
from lenet_fn.arrays import FloatArray


CacheT = TypeVar("CacheT", contravariant=True)


class WeightedRule(Protocol[CacheT]):
    """A layer with weights and biases: ``(d_x, d_w, d_b)``; ``input_grad=False`` gives ``None`` for ``d_x``."""

    @overload
    def __call__(
        self, d_out: FloatArray, cache: CacheT, /, *, input_grad: Literal[True] = True
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...
    @overload
    def __call__(self, d_out: FloatArray, cache: CacheT, /, *, input_grad: Literal[False]) -> tuple[None, FloatArray, FloatArray]: ...
    @overload
    def __call__(
        self, d_out: FloatArray, cache: CacheT, /, *, input_grad: bool
    ) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...


class SubsampleRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.SubsampleCache, /) -> tuple[FloatArray, FloatArray, FloatArray]: ...


class MaxPool2dRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.MaxPool2dCache, /) -> FloatArray: ...


class FlattenRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.FlattenCache, /) -> FloatArray: ...


class SquashRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.SquashCache, /) -> FloatArray: ...


class ReluRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.ReluCache, /) -> FloatArray: ...


class RbfRule(Protocol):
    def __call__(self, d_out: FloatArray, cache: ops.RbfCache, /) -> tuple[FloatArray, FloatArray]: ...


@attrs.frozen
class ReverseRules:
    """One rule per op kind that the built-in models use, for their reverse walks."""

    linear: WeightedRule[ops.LinearCache]
    conv2d: WeightedRule[ops.Conv2dCache]
    partial_conv2d: WeightedRule[ops.PartialConv2dCache]
    subsample: SubsampleRule
    max_pool2d: MaxPool2dRule
    flatten: FlattenRule
    squash: SquashRule
    relu: ReluRule
    rbf: RbfRule


BACKWARD = ReverseRules(
    linear=ops.linear_backward,
    conv2d=ops.conv2d_backward,
    partial_conv2d=ops.partial_conv2d_backward,
    subsample=ops.subsample_backward,
    max_pool2d=ops.max_pool2d_backward,
    flatten=ops.flatten_backward,
    squash=ops.squash_backward,
    relu=ops.relu_backward,
    rbf=ops.rbf_backward,
)
"""The gradient: every op's backward."""

CURVATURE = ReverseRules(
    linear=curvature.linear_curvature,
    conv2d=curvature.conv2d_curvature,
    partial_conv2d=curvature.partial_conv2d_curvature,
    subsample=curvature.subsample_curvature,
    max_pool2d=curvature.max_pool2d_curvature,
    flatten=curvature.flatten_curvature,
    squash=curvature.squash_curvature,
    relu=curvature.relu_curvature,
    rbf=curvature.rbf_curvature,
)
"""The Gauss-Newton curvature, without the RBF units' own term (see ``curvature_rules``)."""


def curvature_rules(*, d_out: FloatArray) -> ReverseRules:
    """The curvature rules with the RBF layer's own curvature taken from the gradient ``d_out`` of
    the loss in the distances (``curvature.rbf_curvature``)."""
    return attrs.evolve(CURVATURE, rbf=functools.partial(curvature.rbf_curvature, d_out=d_out))
