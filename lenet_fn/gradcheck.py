"""Gradient checks: central differences, and one-call checks of an op's or a model's backward.

``check_backward(forward, backward, inputs)`` tests an op written in the library's style (a forward
returning ``(out, cache)`` and a backward taking ``(d_out, cache)``) against central differences,
every input at once; ``check_model_gradients(model, params, x, labels)`` does the same for every
leaf of a model's parameter tree. Both pass where, elementwise,
``|analytic - numeric| <= atol + rtol * |numeric|`` (the rule of ``torch.autograd.gradcheck``), and
raise ``GradientCheckError`` (an ``AssertionError``, so pytest reports it as a failed assertion)
naming the input, the worst element, both values and the tolerance.

Float64 only: in float32 the round-off of a difference quotient swamps the comparison.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, IntArray, check_float_array, check_int
from lenet_fn.params import TreeDef, tree_flatten, tree_flatten_like, tree_paths, tree_unflatten
from lenet_fn.protocol import Model

T = TypeVar("T")

EPS = 1e-5
"""The default central-difference step: its truncation error (``eps**2`` times a third derivative)
and its round-off (``ulp(out) / eps``) both stay two orders below ``ATOL`` for every op of the
library, outputs up to ~100 (LeNet-5's RBF distances) included."""
ATOL = 1e-7
"""The default absolute tolerance: a gradient entry near 0 (a swish at its minimum, ~1e-4) passes
on it, while every wrong backward of the test suite misses it by orders of magnitude."""
RTOL = 1e-5
"""The default relative tolerance (of ``|numeric|``)."""
DEFAULT_SEED = 19981101
"""Seeds the generator of a check called without ``rng`` (the paper's month), so a check repeats;
not 0, which would draw ``d_out`` equal to inputs drawn by ``default_rng(0)``."""
MAX_ELEMENTS = 2048
"""Inputs with more elements are checked at this many elements drawn from ``rng`` (``samples``)."""


def _check_float64(name: str, value: object) -> FloatArray:
    array = check_float_array(name, value)
    if array.dtype != np.float64:
        raise TypeError(f"{name}: gradient checks run in float64, got {array.dtype}")
    return array


def _central_differences(
    f: Callable[[FloatArray], T],
    x: FloatArray,
    eps: float,
    quotient: Callable[[T, T], float],
    indices: IntArray | None = None,
) -> FloatArray:
    """``quotient(f(x + eps e_i), f(x - eps e_i))`` for the flat ``indices`` of ``x`` (all by default).

    ``f`` is called on a private contiguous copy of ``x`` perturbed one element at a time.
    """
    x = _check_float64("x", x)
    if not eps > 0:
        raise ValueError(f"eps: expected a step > 0, got {eps}")
    point = np.array(x, dtype=np.float64, order="C", copy=True)
    flat_point = point.reshape(-1)
    positions = np.arange(point.size) if indices is None else np.asarray(indices).reshape(-1)
    if positions.size and (positions.min() < 0 or positions.max() >= point.size):
        raise ValueError(f"indices: expected flat indices in [0, {point.size}), got values from {positions.min()} to {positions.max()}")
    gradient = np.empty(positions.size, dtype=np.float64)
    for slot, index in enumerate(positions):
        original = flat_point[index]
        flat_point[index] = original + eps
        above = f(point)
        flat_point[index] = original - eps
        below = f(point)
        flat_point[index] = original
        gradient[slot] = quotient(above, below)
    return gradient.reshape(x.shape) if indices is None else gradient


def numerical_gradient(
    f: Callable[[FloatArray], float], x: FloatArray, *, eps: float = 1e-6, indices: IntArray | None = None
) -> FloatArray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` of a scalar ``f``.

    ``x`` itself is never modified.

    Args:
        f: a scalar function of one array (a loss).
        x: the point, float64, any shape.
        eps: the step.
        indices: flat indices of the elements to differentiate, shape (K,); ``None`` for all.

    Returns:
        The gradient, float64: the shape of ``x``, or (K,) at ``indices``.
    """
    return _central_differences(f, x, eps, lambda above, below: (above - below) / (2.0 * eps), indices)


def numerical_vjp(
    f: Callable[[FloatArray], FloatArray],
    x: FloatArray,
    d_out: FloatArray,
    *,
    eps: float = 1e-6,
    indices: IntArray | None = None,
) -> FloatArray:
    """Central differences of ``sum(f(x) * d_out)``: what ``<op>_backward(d_out, cache)`` returns.

    The outputs are subtracted elementwise before they are weighted and summed, so outputs that
    do not move contribute exactly nothing: the round-off is that of the changed outputs, not of
    the whole sum (far more precise than differencing the scalar ``sum(f(x) * d_out)``).

    Args:
        f: an array function of one array (an op's or a model's forward).
        x: the point, float64, any shape.
        d_out: the upstream gradient, float64, the shape of ``f(x)``.
        eps: the step.
        indices: flat indices of the elements to differentiate, shape (K,); ``None`` for all.

    Returns:
        The vector-Jacobian product, float64: the shape of ``x``, or (K,) at ``indices``.
    """
    d_out = _check_float64("d_out", d_out)

    def quotient(above: FloatArray, below: FloatArray) -> float:
        return float(np.sum((above - below) * d_out)) / (2.0 * eps)

    # copy each output: a forward may return a view of its input (flatten), which the next step moves
    return _central_differences(lambda point: np.array(f(point), copy=True), x, eps, quotient, indices)


def relative_error(analytic: FloatArray, numeric: FloatArray) -> float:
    """The largest elementwise relative error ``|a - n| / (|a| + |n|)`` (0 where both are 0).

    Args:
        analytic: the gradient a backward returned, float64, any shape.
        numeric: the central-difference gradient, float64, the same shape.

    Returns:
        The maximum over elements; 0.0 for empty arrays.
    """
    analytic = _check_float64("analytic", analytic)
    numeric = _check_float64("numeric", numeric)
    if analytic.shape != numeric.shape:
        raise ValueError(f"numeric: expected shape {analytic.shape} (the shape of analytic), got {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    scale = np.abs(analytic) + np.abs(numeric)
    difference = np.abs(analytic - numeric)
    ratios = np.divide(difference, scale, out=np.zeros_like(scale), where=scale > 0)
    return float(ratios.max())


# --------------------------------------------------------------------------------------------
# one-call checks


class GradientCheckError(AssertionError):
    """A gradient check failed: the message names the input, the worst element and the tolerance."""


@attrs.frozen
class Tolerance:
    """Where an analytic gradient passes: ``|analytic - numeric| <= atol + rtol * |numeric|``.

    Attributes:
        atol: the absolute tolerance.
        rtol: the relative tolerance.
        eps: the central-difference step.
    """

    atol: float = ATOL
    rtol: float = RTOL
    eps: float = EPS

    def __attrs_post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.atol + self.rtol == 0:
            raise ValueError("atol, rtol: expected at least one of them > 0, got both 0 (no difference would pass)")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps: expected a step > 0, got {self.eps!r}")


@attrs.frozen
class InputReport:
    """How one input's gradient compared (one row of a ``GradientReport``).

    Attributes:
        name: the input's name (``w``, ``c3.w``).
        checked: how many elements (or, in directional mode, directions) were compared.
        max_difference: the largest ``|analytic - numeric|``.
        worst_ratio: the largest ``|analytic - numeric| / (atol + rtol * |numeric|)``; <= 1 passes.
    """

    name: str
    checked: int
    max_difference: float
    worst_ratio: float


@attrs.frozen
class GradientReport:
    """What a check compared: one ``InputReport`` per differentiated input, and the skipped ones."""

    inputs: tuple[InputReport, ...]
    skipped: tuple[str, ...] = ()

    @property
    def worst_ratio(self) -> float:
        """The largest error-to-tolerance ratio over every input (0.0 when nothing was compared)."""
        return max((entry.worst_ratio for entry in self.inputs), default=0.0)


def _format_index(index: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def compare_gradients(
    name: str,
    analytic: FloatArray,
    numeric: FloatArray,
    positions: IntArray,
    shape: tuple[int, ...],
    tolerance: Tolerance,
    *,
    where: str = "",
    element_named: bool = True,
) -> InputReport:
    """Compares ``analytic`` and ``numeric`` (both (K,), at the flat ``positions`` of an input of
    ``shape``) under ``tolerance``; raises ``GradientCheckError`` naming the worst element.
    ``where`` says more of the input in the message (``input 1``); ``element_named=False`` leaves
    the element's index out (a comparison along a direction has none)."""
    difference = np.abs(analytic - numeric)
    allowed = tolerance.atol + tolerance.rtol * np.abs(numeric)
    if difference.size == 0:
        return InputReport(name, 0, 0.0, 0.0)
    failing = ~(difference <= allowed)  # NaN fails too
    ratios = np.where(allowed > 0, difference / np.where(allowed > 0, allowed, 1.0), np.where(difference > 0, np.inf, 0.0))
    ratios[np.isnan(difference)] = np.inf
    worst = int(np.argmax(ratios))
    if failing.any():
        element = _format_index(np.unravel_index(int(positions[worst]), shape)) if element_named else ""
        outside = int(np.count_nonzero(failing))
        raise GradientCheckError(
            f"gradient of {name} ({where}shape {shape}) does not match central differences: "
            f"worst {'element ' + name + element if element_named else 'comparison'}: analytic {analytic[worst]:.6g}, numeric {numeric[worst]:.6g}, "
            f"|difference| {difference[worst]:.3g} > tolerance {allowed[worst]:.3g} "
            f"(atol {tolerance.atol:g} + rtol {tolerance.rtol:g} * |numeric|); "
            f"{outside} of {ratios.size} checked elements outside"
        )
    return InputReport(name, int(difference.size), float(difference.max()), float(ratios[worst]))


def sample_positions(size: int, samples: int, rng: np.random.Generator) -> IntArray:
    """Every flat position of an array of ``size`` elements, or ``samples`` of them drawn from ``rng``."""
    samples = check_int("samples", samples, minimum=1)
    if size <= samples:
        return np.arange(size)
    positions: IntArray = np.sort(rng.choice(size, size=samples, replace=False))
    return positions


def _input_names(forward: Callable[..., Any], count: int, names: Sequence[str] | None) -> list[str]:
    """The inputs' names: ``names``, else the forward's positional parameter names, else ``input i``."""
    if names is not None:
        if len(names) != count:
            raise ValueError(f"names: expected {count} names (one per input), got {len(names)}")
        return [str(name) for name in names]
    try:
        parameters = [
            p.name for p in inspect.signature(forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]  # fmt: skip
    except (TypeError, ValueError):
        parameters = []
    return [parameters[i] if i < len(parameters) else f"input {i}" for i in range(count)]


def _as_inputs(inputs: FloatArray | Sequence[FloatArray]) -> list[FloatArray]:
    listed = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    if not listed:
        raise ValueError("inputs: expected at least one float64 array, got none")
    for index, value in enumerate(listed):
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            kind = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(
                f"inputs[{index}]: expected a float64 array, got {kind} "
                "(pass labels and other arrays without a gradient through options=)"
            )
        _check_float64(f"inputs[{index}]", value)
    return listed


_SNAPSHOT_DEPTH = 32
"""How deep the purity check follows a cache's containers (a cache nests a few levels at most)."""


def _members(value: object) -> list[tuple[str, object]] | None:
    """The (path suffix, member) pairs of a container a cache may be made of, else ``None``."""
    if attrs.has(type(value)):
        return [(f".{field.name}", getattr(value, field.name)) for field in attrs.fields(type(value))]  # type: ignore[arg-type]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{field.name}", getattr(value, field.name)) for field in dataclasses.fields(value)]
    if isinstance(value, (tuple, list)):
        return [(f"[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return [(f"[{key!r}]", item) for key, item in value.items()]
    if hasattr(value, "__dict__") and not callable(value) and not isinstance(value, type):
        return [(f".{name}", item) for name, item in vars(value).items()]
    return None


def _snapshot(value: object, path: str, found: dict[str, npt.NDArray[Any]], depth: int = 0) -> None:
    """Copies of every array reachable from ``value`` (attrs classes, dataclasses, plain objects,
    tuples, lists, dicts), by path."""
    if isinstance(value, np.ndarray):
        found[path] = value.copy()
        return
    members = _members(value) if depth < _SNAPSHOT_DEPTH else None
    for suffix, member in members or []:
        _snapshot(member, path + suffix, found, depth + 1)


def _changed(before: Mapping[str, npt.NDArray[Any]], after: Mapping[str, npt.NDArray[Any]]) -> list[str]:
    return [path for path, array in before.items() if path not in after or not np.array_equal(array, after[path], equal_nan=True)]


def _output_array(result: object) -> FloatArray:
    """The first element of a forward's ``(out, cache)``, as a float64 array."""
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise TypeError(f"forward: expected it to return (out, cache), got {got}")
    out = np.asarray(result[0])
    if out.dtype != np.float64:
        raise TypeError(f"forward: expected a float64 output, got {out.dtype}")
    return out


def _gradients(backward: Callable[[Any, Any], Any], d_out: Any, cache: Any, inputs: list[FloatArray], names: list[str]) -> list[FloatArray | None]:
    """The backward's gradients, one per input (``None``: not differentiated), shapes checked."""
    result = backward(d_out, cache)
    grads = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(grads) != len(inputs):
        raise ValueError(f"backward: expected {len(inputs)} gradients (one per input, None for none), got {len(grads)}")
    for index, (name, grad, value) in enumerate(zip(names, grads, inputs)):
        if grad is None:
            continue
        if not isinstance(grad, np.ndarray) or grad.shape != value.shape:
            got = f"shape {grad.shape}" if isinstance(grad, np.ndarray) else type(grad).__name__
            raise ValueError(f"backward: the gradient of {name} (input {index}) should have its shape {value.shape}, got {got}")
    return grads


def _check_unchanged(what: str, before: Mapping[str, npt.NDArray[Any]], after: Mapping[str, npt.NDArray[Any]]) -> None:
    changed = _changed(before, after)
    if changed:
        raise GradientCheckError(f"{what}: {', '.join(changed[:3])}" + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""))


def _check_purity(
    backward: Callable[[Any, Any], Any],
    d_out: Any,
    d_out_before: FloatArray,
    cache: Any,
    grads: list[FloatArray | None],
    cache_before: Mapping[str, npt.NDArray[Any]],
) -> None:
    """The first backward left the cache and ``d_out`` as they were, and a second one gives the same gradients."""
    after: dict[str, npt.NDArray[Any]] = {}
    _snapshot(cache, "cache", after)
    _check_unchanged("backward changed its cache (a second backward from it would differ)", cache_before, after)
    if isinstance(d_out, np.ndarray) and not np.array_equal(d_out, d_out_before, equal_nan=True):
        raise GradientCheckError("backward changed d_out, the upstream gradient it was given (a backward never writes to its arguments)")
    again = backward(d_out, cache)
    again_list = list(again) if isinstance(again, (tuple, list)) else [again]
    for index, (first, second) in enumerate(zip(grads, again_list)):
        if first is not None and not np.array_equal(first, second, equal_nan=True):
            raise GradientCheckError(f"backward: a second call from the same cache gave a different gradient {index}")


@attrs.frozen(eq=False)
class _Point:
    """An op's forward at its inputs: what the central differences move one element at a time."""

    forward: Callable[..., Any]
    inputs: list[FloatArray]
    options: dict[str, Any]
    names: list[str]

    def output_with(self, index: int, value: FloatArray) -> FloatArray:
        """The forward's output with input ``index`` replaced by ``value``."""
        arguments = list(self.inputs)
        arguments[index] = value
        return _output_array(self.forward(*arguments, **self.options))


def _analytic(point: _Point, backward: Callable[[Any, Any], Any], rng: np.random.Generator, purity: bool) -> tuple[FloatArray, list[FloatArray | None]]:
    """``d_out`` drawn from ``rng`` and the backward's gradients, with the purity checks."""
    before = [value.copy() for value in point.inputs]
    result = point.forward(*point.inputs, **point.options)
    out, cache = _output_array(result), result[1]
    d_out = rng.standard_normal(out.shape)
    cache_before: dict[str, npt.NDArray[Any]] = {}
    _snapshot(cache, "cache", cache_before)
    d_argument: Any = float(d_out) if out.ndim == 0 else d_out.copy()
    grads = _gradients(backward, d_argument, cache, point.inputs, point.names)
    if purity:
        _check_purity(backward, d_argument, d_out, cache, grads, cache_before)
        for index, (name, value, original) in enumerate(zip(point.names, point.inputs, before)):
            if not np.array_equal(value, original, equal_nan=True):
                raise GradientCheckError(f"{name} (input {index}) was changed by the forward or the backward (ops never mutate their inputs)")
    return d_out, grads


def _check_input(
    point: _Point, index: int, d_out: FloatArray, grad: FloatArray, rng: np.random.Generator, tolerance: Tolerance, samples: int, directional: bool
) -> InputReport:
    """Input ``index``'s gradient against central differences: at sampled elements, or along a
    random unit direction ``v`` (``<grad, v>`` against the difference quotient of ``<out, d_out>``)."""
    name, value = point.names[index], point.inputs[index]
    if not directional:
        positions = sample_positions(grad.size, samples, rng)
        numeric = numerical_vjp(lambda moved: point.output_with(index, moved), value, d_out, eps=tolerance.eps, indices=positions)
        return compare_gradients(name, grad.reshape(-1)[positions], numeric, positions, grad.shape, tolerance, where=f"input {index}, ")
    direction = rng.standard_normal(value.shape)
    direction /= max(float(np.linalg.norm(direction)), 1e-300)
    numeric = numerical_vjp(lambda step: point.output_with(index, value + step[0] * direction), np.zeros(1), d_out, eps=tolerance.eps)
    analytic = np.array([float(np.sum(grad * direction))])
    where = f"input {index}, along a random direction, "
    return compare_gradients(name, analytic, numeric, np.zeros(1, np.intp), value.shape, tolerance, where=where, element_named=False)


def check_backward(
    forward: Callable[..., Any],
    backward: Callable[[Any, Any], Any],
    inputs: FloatArray | Sequence[FloatArray],
    *,
    options: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
    names: Sequence[str] | None = None,
    atol: float = ATOL,
    rtol: float = RTOL,
    eps: float = EPS,
    samples: int = MAX_ELEMENTS,
    directional: bool = False,
    purity: bool = True,
) -> GradientReport:
    """Checks ``backward`` against central differences of ``forward``, for every input, in one call.

    ``forward(*inputs, **options)`` returns ``(out, cache)``; ``backward(d_out, cache)`` returns the
    gradient of ``sum(out * d_out)`` in each input: one array for one input, else a tuple with one
    entry per input, ``None`` for an input it does not differentiate. Arrays without a gradient
    (labels, hyperparameters) go in ``options``, not in ``inputs``. ``d_out`` is drawn from ``rng``
    (a float for a scalar output, such as a loss). With ``purity`` it also checks that neither call
    changed its inputs, that the backward left its cache as it was, and that a second backward
    gives the same gradients.

    Args:
        forward: the op's forward.
        backward: the op's backward.
        inputs: the point, float64 arrays (one, or a sequence).
        options: keyword arguments of ``forward`` (``stride=2``, ``labels=...``).
        rng: draws ``d_out`` and the sampled elements (seeded with ``DEFAULT_SEED`` if omitted).
        names: the inputs' names for messages (default: the forward's parameter names).
        atol: the absolute tolerance.
        rtol: the relative tolerance.
        eps: the central-difference step.
        samples: inputs with more elements are checked at this many random elements.
        directional: compare one random direction per input instead of elements (2 forwards per
            input, for large inputs).
        purity: also check that the inputs and the cache are left as they were.

    Returns:
        A ``GradientReport`` of what was compared.

    Raises:
        GradientCheckError: a gradient is off, or an input or the cache was changed.
        TypeError, ValueError: wrong use (a forward without a cache, a gradient of the wrong shape,
            a non-float input).
    """
    listed = _as_inputs(inputs)
    point = _Point(forward, listed, dict(options or {}), _input_names(forward, len(listed), names))
    rng = np.random.default_rng(DEFAULT_SEED) if rng is None else rng
    tolerance = Tolerance(atol=atol, rtol=rtol, eps=eps)
    d_out, grads = _analytic(point, backward, rng, purity)
    reports, skipped = [], []
    for index, grad in enumerate(grads):
        if grad is None:
            skipped.append(point.names[index])
        else:
            reports.append(_check_input(point, index, d_out, grad, rng, tolerance, samples, directional))
    return GradientReport(inputs=tuple(reports), skipped=tuple(skipped))


def _leaf_checks(
    model: Model[Any], leaves: list[FloatArray], treedef: TreeDef, x: FloatArray, d_outputs: FloatArray, grads: Any,
    rng: np.random.Generator, tolerance: Tolerance, samples: int,
) -> list[InputReport]:  # fmt: skip
    """Every parameter leaf's gradient against central differences of the model's outputs."""
    grad_leaves = tree_flatten_like(grads, treedef, name="grads")
    reports = []
    for index, (path, leaf, grad) in enumerate(zip(tree_paths(treedef), leaves, grad_leaves)):
        _check_float64(path, leaf)
        if grad.shape != leaf.shape:
            raise ValueError(f"grads.{path}: expected shape {leaf.shape} (as params), got {grad.shape}")

        def outputs_of(point: FloatArray, index: int = index) -> FloatArray:
            replaced = list(leaves)
            replaced[index] = point
            return np.asarray(model.forward(tree_unflatten(treedef, replaced), x)[0])

        positions = sample_positions(leaf.size, samples, rng)
        numeric = numerical_vjp(outputs_of, leaf, d_outputs, eps=tolerance.eps, indices=positions)
        reports.append(compare_gradients(path, grad.reshape(-1)[positions], numeric, positions, leaf.shape, tolerance))
    return reports


def check_model_gradients(
    model: Model[Any],
    params: Any,
    x: FloatArray,
    labels: npt.NDArray[Any],
    *,
    rng: np.random.Generator | None = None,
    atol: float = ATOL,
    rtol: float = RTOL,
    eps: float = EPS,
    samples: int = 16,
) -> GradientReport:
    """Checks a model's gradients, loss included, against central differences, leaf by leaf.

    The loss's gradient in the outputs is checked against differences of the loss; it is then the
    upstream gradient of the check of every parameter leaf (differences of the outputs, which are
    far more precise than differences of the scalar loss). A failure names the leaf by its path and
    the element by its index (``c3.w[4, 0, 2]``).

    Args:
        model: the model.
        params: its parameters, float64 leaves.
        x: prepared inputs, float64, shape (N, ...) as the model expects.
        labels: the classes, shape (N,).
        rng: draws the checked elements (seeded with ``DEFAULT_SEED`` if omitted).
        atol: the absolute tolerance.
        rtol: the relative tolerance.
        eps: the central-difference step.
        samples: elements checked per leaf (every element of a smaller leaf).

    Returns:
        A ``GradientReport`` with one entry for the outputs and one per leaf.

    Raises:
        GradientCheckError: a gradient is off, or the forward changed ``params`` or ``x``.
    """
    x = _check_float64("x", x)
    rng = np.random.default_rng(DEFAULT_SEED) if rng is None else rng
    tolerance = Tolerance(atol=atol, rtol=rtol, eps=eps)
    x_before = x.copy()
    leaves, treedef = tree_flatten(params)
    leaves_before = [leaf.copy() for leaf in leaves]
    outputs, cache = model.forward(params, x)
    _, loss_cache = model.loss_forward(outputs, labels)
    d_outputs = model.loss_backward(loss_cache)
    grads = model.backward(d_outputs, cache)
    loss_numeric = numerical_gradient(lambda point: float(model.loss_forward(point, labels)[0]), np.asarray(outputs, np.float64), eps=eps)
    positions = np.arange(d_outputs.size)
    loss_report = compare_gradients("outputs (the loss's gradient)", d_outputs.reshape(-1), loss_numeric.reshape(-1), positions, d_outputs.shape, tolerance)
    reports = [loss_report, *_leaf_checks(model, leaves, treedef, x, d_outputs, grads, rng, tolerance, samples)]
    if not np.array_equal(x, x_before, equal_nan=True):
        raise GradientCheckError("x was changed by the model's forward or backward (a forward never mutates its input)")
    for path, leaf, before in zip(tree_paths(treedef), leaves, leaves_before):
        if not np.array_equal(leaf, before, equal_nan=True):
            raise GradientCheckError(f"params.{path} was changed by the model's forward or backward (parameters are read-only)")
    return GradientReport(inputs=tuple(reports))
