"""Net, the stateful wrapper, computes exactly what the functional train_step computes."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_fn.models import get_model
from lenet_fn.net import Net
from lenet_fn.optim import momentum_init
from lenet_fn.params import tree_leaves
from lenet_fn.train import train_step


@pytest.mark.parametrize("name", ["lenet5", "mlp"])
def test_net_equals_train_step(name: str, rng: np.random.Generator) -> None:
    model = get_model(name)
    images = rng.integers(0, 256, size=(3, 16, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(3, 16))
    net = Net(name, rng=np.random.default_rng(4), momentum=0.9, weight_decay=1e-3)
    params, velocity = model.init(np.random.default_rng(4)), None
    velocity = momentum_init(params)
    for step in range(3):
        x = model.prepare(images[step], np.float32)
        out = net(x)
        loss = net.loss(out, labels[step])
        net.backward()
        net.update_weights(0.002)
        params, velocity, functional_loss = train_step(params, velocity, x, labels[step], model=model, lr=0.002, momentum=0.9, weight_decay=1e-3)
        assert loss == functional_loss
    for mine, theirs in zip(tree_leaves(net.params) + tree_leaves(net.velocity), tree_leaves(params) + tree_leaves(velocity), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(net.predict(x), model.predict(model.forward(params, x)[0]))


def test_net_says_what_to_call_first() -> None:
    net = Net("mlp")
    with pytest.raises(RuntimeError, match=r"call net\(x\) and then net.loss\(outputs, labels\) first"):
        net.backward()
    with pytest.raises(RuntimeError, match=r"call net.backward\(\) first"):
        net.update_weights(0.1)
