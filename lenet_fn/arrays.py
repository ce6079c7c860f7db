"""Array type aliases and the argument checks shared by every public function.

Every check raises a one-line ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape
or value) that names the argument, says what was expected and what was received.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
IntArray: TypeAlias = npt.NDArray[np.integer[Any]]
FloatDType: TypeAlias = np.dtype[np.floating[Any]]
ByteArray: TypeAlias = npt.NDArray[np.uint8]

ArrayT = TypeVar("ArrayT", bound=npt.NDArray[Any])
CacheT = TypeVar("CacheT")

FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (np.dtype(np.float32), np.dtype(np.float64))


def layout_rank(layout: str) -> int:
    """The number of axes a layout string such as ``"(N, C, H, W)"`` or ``"(F,)"`` names."""
    return len([axis for axis in layout.strip("()").split(",") if axis.strip()])


def check_float_array(name: str, value: object, *, layout: str | None = None) -> FloatArray:
    """Checks that ``value`` is a float32/float64 ndarray, and of the rank ``layout`` names.

    Args:
        name: the argument's name, used in the error message.
        value: the object received.
        layout: the expected axes, e.g. ``"(N, C, H, W)"``; the number of axes it names is the rank.
            ``None`` accepts any rank.

    Returns:
        ``value``, typed as a float array.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}: expected a numpy.ndarray of float32 or float64, got {type(value).__name__}"
        )
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {value.dtype}")
    if layout is not None:
        ndim = layout_rank(layout)
        if value.ndim != ndim:
            raise ValueError(
                f"{name}: expected a {ndim}-D array of shape {layout}, got shape {value.shape}"
            )
    return value


def check_same_dtype(name: str, value: FloatArray, reference_name: str, dtype: np.dtype[Any]) -> None:
    """Checks that ``value`` has the dtype of another argument (ops do not mix precisions)."""
    if value.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of {reference_name}), got {value.dtype}")


def check_shape(name: str, value: npt.NDArray[Any], expected: tuple[int, ...], meaning: str = "") -> None:
    """Checks an exact shape; ``meaning`` says where the expected shape comes from."""
    if value.shape != expected:
        detail = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: expected shape {expected}{detail}, got {value.shape}")


def check_labels(name: str, value: object, *, count: int, num_classes: int) -> IntArray:
    """Checks integer class labels: shape ``(count,)``, every value in ``[0, num_classes)``.

    Args:
        name: the argument's name, used in the error message.
        value: the object received.
        count: the batch size the labels must match.
        num_classes: the number of classes.

    Returns:
        ``value``, typed as an integer array.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of integer labels, got {type(value).__name__}")
    if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer array of class labels, got dtype {value.dtype}")
    if value.shape != (count,):
        raise ValueError(f"{name}: expected shape ({count},), one label per row, got {value.shape}")
    if count:
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name}: expected values in [0, {num_classes}), got values from {low} to {high}"
            )
    return value


def check_cache(value: object, expected: type[CacheT], forward: str) -> CacheT:
    """Checks that a backward was handed the cache of its own forward (``forward`` names it).

    A number where the cache should be gets a reminder of the two orders: an op's backward takes
    ``(d_out, cache)``, a loss's ``(cache, d_loss)``.
    """
    if isinstance(value, expected):
        return value
    hint = " (an op's backward takes (d_out, cache), a loss's takes (cache, d_loss))" if isinstance(value, (int, float, np.ndarray)) else ""
    raise TypeError(f"cache: expected the {expected.__name__} that {forward} returns, got {type(value).__name__}{hint}")


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Checks a Python or NumPy integer (not a bool) of at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_int_pair(name: str, value: object, *, minimum: int) -> tuple[int, int]:
    """Checks an integer or a pair ``(height, width)`` of integers, each at least ``minimum``."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an integer or a pair (height, width), got {value!r}")
        return check_int(name, value[0], minimum=minimum), check_int(name, value[1], minimum=minimum)
    single = check_int(name, value, minimum=minimum)
    return single, single


def check_positive_float(name: str, value: object) -> float:
    """Checks a finite real number greater than zero."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {number}")
    return number


def check_float_dtype(name: str, value: npt.DTypeLike) -> FloatDType:
    """Checks that ``value`` names float32 or float64 and returns it as a dtype."""
    try:
        dtype = np.dtype(value)
    except TypeError as error:
        raise TypeError(f"{name}: expected float32 or float64, got {value!r}") from error
    if dtype == np.float32:
        return np.dtype(np.float32)
    if dtype == np.float64:
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected float32 or float64, got {dtype}")


def check_rng(value: object) -> np.random.Generator:
    """Checks that ``rng`` is a ``numpy.random.Generator`` (the library keeps no global random state)."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(
            f"rng: expected a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got {type(value).__name__}"
        )
    return value


# --------------------------------------------------------------------------------------------
# attrs validators built from the checks above (for settings classes)

Validator: TypeAlias = Callable[[object, Any, Any], None]


def positive_number(name: str) -> Validator:
    """An attrs validator: a finite real number > 0."""

    def check(_: object, __: object, value: object) -> None:
        check_positive_float(name, value)

    return check


def number_in_range(name: str, low: float, high: float) -> Validator:
    """An attrs validator: a real number in ``[low, high)`` (``high`` may be ``inf``)."""

    def check(_: object, __: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
            raise ValueError(f"{name}: expected a number in [{low}, {high}), got {value!r}")

    return check


def one_of(name: str, choices: Sequence[str]) -> Validator:
    """An attrs validator: one of ``choices``."""

    def check(_: object, __: object, value: object) -> None:
        if value not in choices:
            raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")

    return check


def integer_at_least(name: str, minimum: int) -> Validator:
    """An attrs validator: an integer >= ``minimum``."""

    def check(_: object, __: object, value: object) -> None:
        check_int(name, value, minimum=minimum)

    return check


def integer_in_range(name: str, minimum: int, maximum: int) -> Validator:
    """An attrs validator: an integer in ``[minimum, maximum]``."""

    def check(_: object, __: object, value: object) -> None:
        if check_int(name, value, minimum=minimum) > maximum:
            raise ValueError(f"{name}: expected an integer in [{minimum}, {maximum}], got {value}")

    return check


def optional_integer_at_least(name: str, minimum: int) -> Validator:
    """An attrs validator: ``None`` or an integer >= ``minimum``."""

    def check(_: object, __: object, value: object) -> None:
        if value is not None:
            check_int(name, value, minimum=minimum)

    return check


def readonly_view(array: ArrayT) -> ArrayT:
    """A view of ``array`` that cannot be written through (for caches); the argument is untouched."""
    view = array.view()
    view.flags.writeable = False
    return view
