"""Your own op and its gradient test: swish, ``x * sigmoid(x)``, in the library's style.

    python -m pytest examples/test_own_op.py
"""

import attrs
import numpy as np

from lenet_fn.gradcheck import check_backward


@attrs.frozen
class SwishCache:
    x: np.ndarray
    sigmoid: np.ndarray


def swish_forward(x):
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    return x * sigmoid, SwishCache(x, sigmoid)


def swish_backward(d_out, cache):
    s = cache.sigmoid
    return d_out * (s + cache.x * s * (1.0 - s))


def test_swish_gradient():
    x = np.random.default_rng(0).standard_normal((4, 5))
    check_backward(swish_forward, swish_backward, x)  # raises, naming the worst element, if the backward is wrong
