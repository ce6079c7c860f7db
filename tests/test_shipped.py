"""The LeNet-5 shipped with the package: loads without pickle and makes at most 1.0% test error."""

from __future__ import annotations

import numpy as np

from lenet_fn import pretrained
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.evaluate import evaluate
from lenet_fn.models import LENET5
from lenet_fn.parallel import Workers
from lenet_fn.params import LeNet5Params, tree_leaves


def test_the_shipped_lenet5_makes_at_most_1_percent_test_error() -> None:
    params, info = pretrained()
    assert isinstance(params, LeNet5Params) and all(not leaf.flags.writeable for leaf in tree_leaves(params))
    assert info["config"]["model"] == "lenet5"
    dataset = load_mnist(repository_dataset_dir())
    with Workers(2) as workers:
        report = evaluate(LENET5, params, dataset.test_images, dataset.test_labels, workers=workers)
    assert report.error_rate <= 0.010
    assert report.error_rate == np.float64(info["metrics"]["test_error"])  # the figure recorded when it was trained
