"""``Net``: a thin stateful wrapper over the pure functions, for code written against the seed's API.

    net = Net("lenet5", rng=np.random.default_rng(0))   # or Net(sequential(...)), or any Model
    out = net(x)                 # forward, remembers the caches
    loss = net.loss(out, y)      # the model's loss, remembers its cache
    net.backward()               # gradients into net.grads
    net.update_weights(lr)       # one momentum step on net.params and net.velocity

Each call is one of the library's pure functions; the object only holds their inputs and results
between calls, so the numbers equal ``train.train_step`` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, IntArray
from lenet_fn.models import get_model
from lenet_fn.optim import momentum_init, momentum_step
from lenet_fn.protocol import Model


class Net:
    """A model with its parameters, momentum state and the caches of the last forward pass.

    Args:
        model: a ``Model`` (built-in, ``sequential(...)``, or your own), or the name of a built-in
            one or the import path of yours (``lenet5``, ``my_package.my_module:MY_NET``).
        params: initial parameters (a tree of the model's class); drawn from ``rng`` when omitted.
        rng: the generator for the initial parameters (``numpy.random.default_rng(0)`` when both
            ``params`` and ``rng`` are omitted).
        momentum: heavy-ball momentum of ``update_weights``.
        weight_decay: L2 coefficient of ``update_weights``.
        dtype: float32 or float64 for drawn parameters.
    """

    def __init__(
        self,
        model: str | Model[Any] = "lenet5",
        *,
        params: Any = None,
        rng: np.random.Generator | None = None,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        if not isinstance(model, (str, Model)):
            raise TypeError(f"model: expected a lenet_fn Model or a model's name, got {type(model).__name__}")
        self.model: Model[Any] = get_model(model) if isinstance(model, str) else model
        self.params: Any = params if params is not None else self.model.init(rng or np.random.default_rng(0), dtype=dtype)
        self.velocity: Any = momentum_init(self.params)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.grads: Any = None
        self._cache: Any = None
        self._loss_cache: Any = None

    def __call__(self, x: FloatArray) -> FloatArray:
        """The forward pass on prepared inputs ``x`` (``self.model.prepare``); returns outputs (N, K)."""
        outputs, self._cache = self.model.forward(self.params, x)
        self._loss_cache = None
        return outputs

    def loss(self, outputs: FloatArray, labels: IntArray) -> float:
        """The model's mean loss of the last forward pass's ``outputs`` against ``labels`` (N,)."""
        loss, self._loss_cache = self.model.loss_forward(outputs, labels)
        return loss

    def backward(self) -> Any:
        """Gradients of the last loss with respect to the parameters; kept in ``self.grads`` and returned."""
        if self._cache is None or self._loss_cache is None:
            raise RuntimeError("Net.backward: call net(x) and then net.loss(outputs, labels) first")
        self.grads = self.model.backward(self.model.loss_backward(self._loss_cache), self._cache)
        return self.grads

    def update_weights(self, lr: float) -> None:
        """One momentum step with the last gradients: ``params`` and ``velocity`` are replaced."""
        if self.grads is None:
            raise RuntimeError("Net.update_weights: call net.backward() first")
        self.params, self.velocity = momentum_step(
            self.params, self.grads, self.velocity, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay
        )

    def predict(self, x: FloatArray) -> IntArray:
        """The predicted class of every prepared input, shape (N,) (does not touch the caches)."""
        return self.model.predict(self.model.forward(self.params, x)[0])
