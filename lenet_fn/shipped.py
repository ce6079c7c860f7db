"""The weights shipped with the package: a paper-faithful LeNet-5 trained by ``python -m lenet_fn.train``.

``lenet_fn.pretrained()`` loads them (an ``.npz``, no pickle); the docs' pretrained page gives their test error and
the command that produced them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from lenet_fn.checkpoint import load_model
from lenet_fn.params import LeNet5Params

PRETRAINED_FILE = "lenet5.npz"


def pretrained_path() -> Path:
    """Where the shipped LeNet-5 weights are."""
    return Path(str(resources.files("lenet_fn") / "weights" / PRETRAINED_FILE))


def pretrained() -> tuple[LeNet5Params, dict[str, Any]]:
    """The shipped LeNet-5: its parameters (float32, read-only) and the training settings and metrics.

    Returns:
        ``(params, info)``: ``info`` holds ``config`` (the settings of the run that trained it),
        ``epoch`` and ``metrics`` (its test error among them).
    """
    _, params, metadata = load_model(pretrained_path())
    return params, {key: metadata.get(key) for key in ("config", "epoch", "metrics")}
