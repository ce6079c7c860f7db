"""The model protocol: what training, checkpoints, evaluation and prediction need of a network.

A model is a frozen record of pure functions. Seven are required: ``init``, ``forward``,
``backward``, the loss pair, ``predict`` and ``prepare``. SDLM's two curvature functions are
optional: a model without them trains with momentum SGD only. The built-in models (``lenet5``,
``lenet5-relu``, ``mlp``) are ``Model`` records; so is a network of your own, found by the commands
through its import path (``--model my_package.my_module:MY_NET``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import ByteArray, FloatArray, IntArray

P = TypeVar("P")


@attrs.frozen(kw_only=True)
class Model(Generic[P]):
    """A model with everything training needs (every field is keyword-only).

    Attributes:
        init: ``init(rng, dtype=...)`` -> params, a parameter tree (attrs classes, tuples, lists,
            dicts or NamedTuples of float arrays).
        forward: ``forward(params, x)`` -> ``(outputs, cache)``, outputs of shape (N, classes).
        backward: ``backward(d_outputs, cache)`` -> grads (a tree like params).
        loss_forward: ``loss_forward(outputs, labels)`` -> ``(loss, cache)``, the mean over the batch.
        loss_backward: ``loss_backward(loss_cache)`` -> ``d_outputs``.
        predict: ``predict(outputs)`` -> class labels (N,).
        prepare: ``prepare(images, dtype)`` turns uint8 images (N, 28, 28) into the model's input.
        name: what messages and checkpoints call it (``lenet5``, or the import path of your own).
        summary: a one-line description.
        curvature: for SDLM, ``curvature(h_outputs, d_outputs, cache)`` -> the Gauss-Newton
            diagonal (a tree like params), from the loss's curvature and gradient in the outputs;
            ``None`` if the model has none.
        loss_curvature: for SDLM, ``loss_curvature(loss_cache)`` -> the loss Hessian's diagonal in
            the outputs; ``None`` if the model has none.
        infer: ``infer(params, x)`` -> the outputs of ``forward`` (to round-off) without a cache,
            for evaluation and prediction; ``None``: they use ``forward``.
    """

    init: Callable[..., P]
    forward: Callable[[P, FloatArray], tuple[FloatArray, Any]]
    backward: Callable[[FloatArray, Any], P]
    loss_forward: Callable[[FloatArray, IntArray], tuple[float, Any]]
    loss_backward: Callable[[Any], FloatArray]
    predict: Callable[[FloatArray], IntArray]
    prepare: Callable[[ByteArray, npt.DTypeLike], FloatArray]
    name: str = "custom"
    summary: str = ""
    curvature: Callable[[FloatArray, FloatArray, Any], P] | None = None
    loss_curvature: Callable[[Any], FloatArray] | None = None
    infer: Callable[[P, FloatArray], FloatArray] | None = None

    def outputs(self, params: P, x: FloatArray) -> FloatArray:
        """The outputs on ``x`` (N, ...), shape (N, classes): ``infer`` when the model has one."""
        return self.infer(params, x) if self.infer is not None else self.forward(params, x)[0]

    @property
    def has_curvature(self) -> bool:
        """True when the model can estimate SDLM's curvature (both curvature functions are given)."""
        return self.curvature is not None and self.loss_curvature is not None


def predict_smallest(outputs: FloatArray) -> IntArray:
    """The class of the smallest output (RBF distances), shape (N,)."""
    labels: IntArray = np.argmin(outputs, axis=1)
    return labels


def predict_largest(outputs: FloatArray) -> IntArray:
    """The class of the largest output (logits), shape (N,)."""
    labels: IntArray = np.argmax(outputs, axis=1)
    return labels


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_import_path(text: str) -> bool:
    """True when ``text`` has the form ``package.module:NAME`` (nothing is imported)."""
    return bool(_IMPORT_PATH.match(text))


class ModelImportError(ValueError):
    """An import path that does not import, or names something that is not a ``Model`` (one line)."""


def import_model(path: str) -> Model[Any]:
    """The ``Model`` at the import path ``package.module:NAME`` (``NAME`` may be dotted), named by the path.

    Importing a module runs its top-level code: a checkpoint that names a model of your own is
    loaded by importing that module, so load such checkpoints only from sources you trust (the
    built-in models' names import nothing).

    Args:
        path: where the model is, as ``module:attribute``.

    Returns:
        The model, with ``name`` set to ``path`` (what checkpoints record, to import it again).

    Raises:
        ModelImportError: the path is malformed, does not import, or is not a ``Model``.
    """
    if not isinstance(path, str) or not is_import_path(path):
        raise ModelImportError(f"model: expected an import path module:NAME (as in my_package.my_module:MY_NET), got {path!r}")
    module_name, attribute = path.split(":")
    try:
        found: object = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # a user's module may fail in any way while it runs, or exit
        raise ModelImportError(f"model {path}: cannot import {module_name} ({type(error).__name__}: {error})") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ModelImportError(f"model {path}: module {module_name} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not isinstance(found, Model):
        raise ModelImportError(f"model {path}: expected a lenet_fn Model, got {type(found).__name__}")
    return attrs.evolve(found, name=path)
