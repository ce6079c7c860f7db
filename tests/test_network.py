"""Networks from layer objects: the built-in models rebuilt as sequentials compute exactly what
the hand-written ones compute; every layer kind passes the gradient check; bad layers and shapes
that do not chain are one-line errors naming the layer; Net and fit take any sequential."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn.bitmaps import rbf_centers
from lenet_fn.gradcheck import check_model_gradients
from lenet_fn.layers import (
    ELU,
    RBF,
    AvgPool2D,
    Conv2D,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2D,
    PartialConv2D,
    ReLU,
    Sigmoid,
    Squash,
    Subsampling,
    Tanh,
)
from lenet_fn.models import C3_TABLE, LENET5, LENET5_RELU, MLP, get_model
from lenet_fn.net import Net
from lenet_fn.optim import momentum_init
from lenet_fn.params import tree_flatten_with_paths
from lenet_fn.protocol import Model
from lenet_fn.network import sequential
from lenet_fn.train import train_step
from tests.op_cases import SMALL_TABLE

REPOSITORY = Path(__file__).resolve().parents[1]

SEQUENTIAL_LENET5 = sequential(
    Conv2D(1, 6, 5, scheme="lecun98", name="c1"), Squash(),
    Subsampling(6, name="s2"), Squash(),
    PartialConv2D(C3_TABLE, 5, name="c3"), Squash(),
    Subsampling(16, name="s4"), Squash(),
    Conv2D(16, 120, 5, scheme="lecun98", name="c5"), Squash(), Flatten(),
    Linear(120, 84, scheme="lecun98", name="f6"), Squash(),
    RBF(rbf_centers(np.float64)),
    loss="map", prepare=LENET5.prepare, input_shape=(1, 32, 32),
)  # fmt: skip
SEQUENTIAL_LENET5_RELU = sequential(
    Conv2D(1, 6, 5, name="c1"), ReLU(), MaxPool2D(),
    Conv2D(6, 16, 5, name="c3"), ReLU(), MaxPool2D(),
    Conv2D(16, 120, 5, name="c5"), ReLU(), Flatten(),
    Linear(120, 84, name="f6"), ReLU(), Linear(84, 10, name="output"),
    prepare=LENET5_RELU.prepare, input_shape=(1, 32, 32),
)  # fmt: skip
SEQUENTIAL_MLP = sequential(
    Linear(784, 300), ReLU(), Linear(300, 100), ReLU(), Linear(100, 10), prepare=MLP.prepare, input_shape=(784,)
)
PAIRS = [("lenet5", SEQUENTIAL_LENET5), ("lenet5-relu", SEQUENTIAL_LENET5_RELU), ("mlp", SEQUENTIAL_MLP)]
MLP_PATHS = {"0": "layers.0", "2": "layers.1", "4": "layers.2"}  # the sequential's layer keys -> MLPParams' paths


def _by_built_in_path(tree: Any) -> dict[str, np.ndarray[Any, Any]]:
    """A tree's leaves by path, a sequential MLP's renamed to the paths of the built-in one."""
    flat = tree_flatten_with_paths(tree)
    return {".".join([MLP_PATHS.get(path.split(".")[0], path.split(".")[0]), *path.split(".")[1:]]): leaf for path, leaf in flat.items()}


def _assert_same_leaves(one: Any, other: Any) -> None:
    mine, theirs = _by_built_in_path(one), _by_built_in_path(other)
    assert sorted(mine) == sorted(theirs)
    for path, leaf in mine.items():
        assert leaf.dtype == theirs[path].dtype, path
        np.testing.assert_array_equal(leaf, theirs[path], err_msg=path)


@pytest.mark.parametrize(("name", "network"), PAIRS, ids=[name for name, _ in PAIRS])
def test_the_built_in_models_as_sequentials_compute_the_same_bit_for_bit(name: str, network: Model[Any], rng: np.random.Generator) -> None:
    built_in = get_model(name)
    params, seq_params = built_in.init(np.random.default_rng(7)), network.init(np.random.default_rng(7))
    _assert_same_leaves(seq_params, params)
    images, labels = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=6)
    x = built_in.prepare(images, np.float32)
    np.testing.assert_array_equal(network.prepare(images, np.float32), x)
    outputs, cache = built_in.forward(params, x)
    seq_outputs, seq_cache = network.forward(seq_params, x)
    np.testing.assert_array_equal(seq_outputs, outputs)
    loss, loss_cache = built_in.loss_forward(outputs, labels)
    seq_loss, seq_loss_cache = network.loss_forward(seq_outputs, labels)
    assert seq_loss == loss
    d_outputs = built_in.loss_backward(loss_cache)
    _assert_same_leaves(network.backward(network.loss_backward(seq_loss_cache), seq_cache), built_in.backward(d_outputs, cache))
    assert built_in.curvature is not None and built_in.loss_curvature is not None
    assert network.curvature is not None and network.loss_curvature is not None
    _assert_same_leaves(
        network.curvature(network.loss_curvature(seq_loss_cache), network.loss_backward(seq_loss_cache), seq_cache),
        built_in.curvature(built_in.loss_curvature(loss_cache), d_outputs, cache),
    )
    stepped, velocity, step_loss = train_step(params, momentum_init(params), x, labels, model=built_in, lr=0.01)
    seq_stepped, seq_velocity, seq_step_loss = train_step(seq_params, momentum_init(seq_params), x, labels, model=network, lr=0.01)
    assert seq_step_loss == step_loss
    _assert_same_leaves(seq_stepped, stepped)
    _assert_same_leaves(seq_velocity, velocity)
    np.testing.assert_array_equal(network.predict(seq_outputs), built_in.predict(outputs))


def test_the_parameter_paths_say_which_layer() -> None:
    params = SEQUENTIAL_LENET5.init(np.random.default_rng(0))
    assert sorted(tree_flatten_with_paths(params)) == sorted(tree_flatten_with_paths(LENET5.init(np.random.default_rng(0))))
    assert list(tree_flatten_with_paths(SEQUENTIAL_MLP.init(np.random.default_rng(0)))) == ["0.w", "0.b", "2.w", "2.b", "4.w", "4.b"]
    assert params["1"] == () and SEQUENTIAL_LENET5.summary.startswith("Conv2D(1, 6, kernel_size=5, scheme='lecun98', name='c1') - Squash()")


EVERY_LAYER = sequential(
    Conv2D(1, 3, 3, padding=1), LeakyReLU(slope=0.2),
    MaxPool2D(), PartialConv2D(SMALL_TABLE, 3, padding=1, name="partial"), ELU(),
    AvgPool2D(), Subsampling(4, size=2), Sigmoid(),
    Flatten(), Linear(16, 12), Tanh(), Linear(12, 6), Squash(), ReLU(),
    RBF(np.random.default_rng(3).standard_normal((5, 6))),
    loss="map", input_shape=(1, 16, 16), prepare=lambda images, dtype: images[:, None, 6:22, 6:22].astype(dtype) / 255,
)  # fmt: skip


def test_a_network_of_every_layer_kind_passes_the_whole_model_gradient_check(rng: np.random.Generator) -> None:
    params = EVERY_LAYER.init(rng, dtype=np.float64)
    x = rng.standard_normal((3, 1, 16, 16))
    report = check_model_gradients(EVERY_LAYER, params, x, rng.integers(0, 5, size=3), rng=rng)
    assert sorted(entry.name for entry in report.inputs[1:]) == sorted(
        ["0.w", "0.b", "partial.w", "partial.b", "6.coeff", "6.bias", "9.w", "9.b", "11.w", "11.b"]
    )


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Linear(0, 10), ValueError, "Linear: in_features: expected an integer >= 1, got 0"),
        (lambda: Linear(10, 2.5), TypeError, "Linear: out_features: expected an integer >= 1, got float 2.5"),  # type: ignore[arg-type]
        (lambda: Linear(10, 2, scheme="xavier"), ValueError, "Linear: scheme: expected 'lecun98' or 'he', got 'xavier'"),  # type: ignore[arg-type]
        (lambda: Conv2D(1, 6, 0), ValueError, "Conv2D: kernel_size: expected an integer >= 1, got 0"),
        (lambda: Conv2D(1, 6, padding=-1), ValueError, "Conv2D: padding: expected an integer >= 0, got -1"),
        (lambda: Conv2D(1, 6, stride=0), ValueError, "Conv2D: stride: expected an integer >= 1, got 0"),
        (lambda: Conv2D(0, 6), ValueError, "Conv2D: in_channels: expected an integer >= 1, got 0"),
        (lambda: PartialConv2D(np.ones((2, 3))), TypeError, "PartialConv2D: table: expected a boolean numpy.ndarray of shape (F, C), got float64"),
        (lambda: PartialConv2D(np.array([[True, False], [False, False]])), ValueError,
         "PartialConv2D: table: expected every output map to have an input, rows [1] are empty"),
        (lambda: PartialConv2D(SMALL_TABLE, 0), ValueError, "PartialConv2D: kernel_size: expected an integer >= 1, got 0"),
        (lambda: Subsampling(0), ValueError, "Subsampling: channels: expected an integer >= 1, got 0"),
        (lambda: Subsampling(6, size=0), ValueError, "Subsampling: size: expected an integer >= 1, got 0"),
        (lambda: AvgPool2D(size=0), ValueError, "AvgPool2D: size: expected an integer >= 1, got 0"),
        (lambda: MaxPool2D(size=-2), ValueError, "MaxPool2D: size: expected an integer >= 1, got -2"),
        (lambda: LeakyReLU(slope=0.0), ValueError, "LeakyReLU: slope: expected a finite number > 0, got 0.0"),
        (lambda: ELU(alpha=float("inf")), ValueError, "ELU: alpha: expected a finite number > 0, got inf"),
        (lambda: RBF(np.ones(84)), ValueError, "RBF: centers: expected a 2-D array of shape (K, D), got shape (84,)"),
        (lambda: RBF(np.ones((10, 84), np.int64)), TypeError, "RBF: centers: expected dtype float32 or float64, got int64"),
        (lambda: RBF(np.ones((0, 84))), ValueError, "RBF: centers: expected finite values in a (K, D) array with K, D >= 1, got shape (0, 84)"),
        (lambda: RBF(np.full((2, 3), np.nan)), ValueError, "RBF: centers: expected finite values in a (K, D) array with K, D >= 1, got shape (2, 3)"),
        (lambda: PartialConv2D(np.ones(3, bool)), ValueError, "PartialConv2D: table: expected a 2-D array (output maps, input maps), got shape (3,)"),
        (lambda: Linear(4, 2, name="x.y"), ValueError, "Linear: name: expected a non-empty string without '.' or '/', got 'x.y'"),
        (lambda: ReLU(name=""), ValueError, "ReLU: name: expected a non-empty string without '.' or '/', got ''"),
        (lambda: Conv2D(1, 2, name=5), TypeError, "Conv2D: name: expected a string, got int 5"),  # type: ignore[arg-type]
        (lambda: Squash(name="1"), ValueError, "Squash: name: expected a name that is not a number (numbers key unnamed layers), got '1'"),
        (lambda: Conv2D(True, 6), TypeError, "Conv2D: in_channels: expected an integer >= 1, got bool True"),
        (lambda: Linear(3, 2, scheme="lecun98").init(np.random.default_rng(0), np.dtype("int64")), TypeError,  # type: ignore[arg-type]
         "dtype: expected float32 or float64, got int64"),
    ],
)  # fmt: skip
def test_bad_hyperparameters_are_one_line_naming_the_layer(make: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()


@pytest.mark.parametrize(
    ("layers", "options", "message"),
    [
        ((Conv2D(1, 6, 5), ReLU(), MaxPool2D(), Conv2D(6, 16, 5), ReLU(), MaxPool2D(), Flatten(), Linear(400, 120)), {},
         "layer 7 Linear(400, 120): expected 400 input features, got 256"),
        ((Conv2D(1, 6, 5), MaxPool2D(), Conv2D(8, 16, 5)), {}, "layer 2 Conv2D(8, 16, kernel_size=5): expected 8 input channels, got 6 (input shape (6, 12, 12))"),
        ((Conv2D(1, 6, 5), Linear(10, 3)), {}, "layer 1 Linear(10, 3): expected a flat input of 10 features, got shape (6, 24, 24) (put a Flatten before it)"),
        ((Flatten(), Linear(784, 10)), {"input_shape": (1, 32, 32)}, "layer 1 Linear(784, 10): expected 784 input features, got 1024"),
        ((Conv2D(1, 6, 29),), {}, "layer 0 Conv2D(1, 6, kernel_size=29): expected an input of at least 29x29 (padded), got 28x28"),
        ((MaxPool2D(size=30),), {}, "layer 0 MaxPool2D(size=30): expected an input of at least 30x30, got 28x28"),
        ((Subsampling(3),), {}, "layer 0 Subsampling(3): expected 3 input maps, got 1 (input shape (1, 28, 28))"),
        ((PartialConv2D(SMALL_TABLE, 3),), {}, "layer 0 PartialConv2D(table 4x3, kernel_size=3): expected 3 input channels, got 1 (input shape (1, 28, 28))"),
        ((Flatten(), RBF(np.ones((10, 84)))), {}, "layer 1 RBF(10x84 centers): expected a flat input of 84 features (the centers' width), got shape (784,)"),
        ((Linear(784, 10),), {}, "layer 0 Linear(784, 10): expected a flat input of 784 features, got shape (1, 28, 28) (put a Flatten before it)"),
        ((Conv2D(1, 6, 5),), {}, "the last layer Conv2D(1, 6, kernel_size=5): expected one output per class, shape (K,), got (6, 24, 24) (end with a Linear or an RBF)"),
        ((Linear(4, 2, name="a"), ReLU(name="a")), {"input_shape": (4,), "prepare": lambda i, d: i}, "layer 1 ReLU(name='a'): name: 'a' is already the key of layer 0"),
        ((Flatten(), Linear(784, 10)), {"loss": "hinge"}, "loss: expected one of cross_entropy, mse, map or a Loss, got 'hinge'"),
        ((Flatten(), Linear(784, 10)), {"predict": "middle"}, "predict: expected one of largest, smallest or a function, got 'middle'"),
        ((Flatten(), Linear(300, 10)), {"input_shape": (300,)},
         "prepare: MNIST digits are prepared as (1, 28 + 2 pad, 28 + 2 pad) or (784,); for input_shape (300,) give prepare="),
        ((Flatten(),), {"input_shape": (0, 3)}, "input_shape: expected a tuple of positive integers, the shape of one input (C, H, W) or (D,), got (0, 3)"),
        ((), {}, "layers: expected at least one layer, got none"),
    ],
)  # fmt: skip
def test_shapes_that_do_not_chain_are_one_line_naming_the_layer(layers: tuple[Any, ...], options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        sequential(*layers, **options)


def test_net_takes_a_sequential_and_equals_train_step(rng: np.random.Generator) -> None:
    images, labels = rng.integers(0, 256, size=(2, 8, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=(2, 8))
    net = Net(SEQUENTIAL_LENET5_RELU, rng=np.random.default_rng(2))
    params = SEQUENTIAL_LENET5_RELU.init(np.random.default_rng(2))
    velocity = momentum_init(params)
    for step in range(2):
        x = SEQUENTIAL_LENET5_RELU.prepare(images[step], np.float32)
        loss = net.loss(net(x), labels[step])
        net.backward()
        net.update_weights(0.01)
        params, velocity, functional_loss = train_step(params, velocity, x, labels[step], model=SEQUENTIAL_LENET5_RELU, lr=0.01)
        assert loss == functional_loss
    _assert_same_leaves(net.params, params)
    with pytest.raises(TypeError, match="^model: expected a lenet_fn Model or a model's name, got int$"):
        Net(3)  # type: ignore[arg-type]


def test_sdlm_trains_a_sequential(rng: np.random.Generator) -> None:
    from lenet_fn import train
    from lenet_fn.data import load_mnist, repository_dataset_dir

    config = train.TrainConfig(epochs=1, batch_size=20, lr=5e-4, optimizer="sdlm", sdlm_samples=40, momentum=0.0, warmup=0,
                               distort=False, limit=200, threads=1)  # fmt: skip
    data = train.prepare_data(SEQUENTIAL_LENET5, load_mnist(repository_dataset_dir()), limit=200)
    state = train.fit(SEQUENTIAL_LENET5, config, data, train.initial_state(SEQUENTIAL_LENET5, config))
    same = train.fit(LENET5, config, train.prepare_data(LENET5, load_mnist(repository_dataset_dir()), limit=200), train.initial_state(LENET5, config))
    assert state.history[0].test_error == same.history[0].test_error  # the curvature passes agree too
    _assert_same_leaves(state.params, same.params)


def test_the_layers_example_trains_below_3_percent_and_as_the_command_does(tmp_path: Path) -> None:
    """examples/lenet5_from_layers.py, one epoch with Net on all of MNIST, against the same network
    and settings through ``python -m lenet_fn.train --model lenet5_from_layers:LENET5``."""
    examples = REPOSITORY / "examples"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(examples), os.environ.get("PYTHONPATH", "")])}
    example = subprocess.run([sys.executable, str(examples / "lenet5_from_layers.py")], capture_output=True, text=True, check=False)
    assert example.returncode == 0, example.stderr
    flags = ["--model", "lenet5_from_layers:LENET5", "--batch-size", "32", "--lr", "0.002", "--momentum", "0.9", "--warmup", "500",
             "--schedule", "paper", "--weight-decay", "0", "--no-distort", "--threads", "1", "--epochs", "1", "--out", str(tmp_path)]  # fmt: skip
    command = subprocess.run([sys.executable, "-m", "lenet_fn.train", *flags], capture_output=True, text=True, env=environment, cwd=tmp_path, check=False)
    assert command.returncode == 0, command.stderr
    epoch = json.loads((tmp_path / "metrics.json").read_text())["epochs"][0]
    expected = (f"epoch 1: loss {epoch['loss']:.6f}  train error {100 * epoch['train_error']:.2f}%  "
                f"test error {100 * epoch['test_error']:.2f}%")  # fmt: skip
    assert example.stdout.strip() == expected and epoch["test_error"] < 0.03


@pytest.mark.parametrize("stride", [1, 2, 3, (1, 2), (3, 1)])
@pytest.mark.parametrize("padding", [0, 1, (0, 2)])
def test_the_shapes_checked_at_construction_are_those_the_forward_makes(stride: Any, padding: Any, rng: np.random.Generator) -> None:
    layers: list[Any] = [Conv2D(1, 3, 3, stride=stride, padding=padding), MaxPool2D(), PartialConv2D(SMALL_TABLE[:, :3], 2, stride=stride, padding=padding),
              Subsampling(4, size=1), AvgPool2D(size=1), Flatten()]  # fmt: skip
    shape: tuple[int, ...] = (1, 17, 13)
    x = rng.standard_normal((2, *shape))
    for layer in layers:
        shape = layer.output_shape(shape)
        x = layer.forward(layer.init(rng, np.dtype(np.float64)), x)[0]
        assert x.shape[1:] == shape, repr(layer)


def test_hyperparameters_are_stored_normalised_and_arrays_copied() -> None:
    numpy_stride: Any = (1, np.int64(2))
    assert Conv2D(1, 6, stride=numpy_stride) == Conv2D(1, 6, stride=(1, 2)) and repr(Conv2D(1, 6, stride=numpy_stride)) == "Conv2D(1, 6, stride=(1, 2))"
    assert Conv2D(1, 6, 5, stride=(1, 1), padding=2) == Conv2D(1, 6, 5, padding=(2, 2)) and repr(Conv2D(1, 6, 5, padding=(2, 2))) == "Conv2D(1, 6, kernel_size=5, padding=2)"
    assert repr(LeakyReLU(0.2, name="leak")) == "LeakyReLU(slope=0.2, name='leak')"
    table, centers = SMALL_TABLE.copy(), np.ones((3, 4))
    partial, rbf = PartialConv2D(table), RBF(centers)
    assert table.flags.writeable and centers.flags.writeable
    assert not partial.table.flags.writeable and not rbf.centers.flags.writeable
    table[0, 0], centers[0, 0] = False, 5.0
    assert partial.table[0, 0] and rbf.centers[0, 0] == 1.0


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((Flatten, Linear(784, 10)), "layer 0: expected a layer, got the class Flatten (make one: Flatten(...))"),
        ((Flatten(), 3), "layer 1: expected a layer (lenet_fn.layers, or an object with a name and the methods init, output_shape, forward, backward, curvature), got int"),
    ],
)
def test_what_is_not_a_layer_is_one_line(layers: tuple[Any, ...], message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        sequential(*layers)


def test_the_forward_names_the_layer_and_checks_the_params(rng: np.random.Generator) -> None:
    params = SEQUENTIAL_MLP.init(rng)
    x = SEQUENTIAL_MLP.prepare(rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8), np.float64)
    with pytest.raises(TypeError, match=re.escape("layer 0 Linear(784, 300): w: expected dtype float64 (the dtype of x), got float32")):
        SEQUENTIAL_MLP.forward(params, x)
    with pytest.raises(ValueError, match=re.escape("params: expected a dict with the keys ['0', '1', '2', '3', '4'] (one per layer), got ['0', '1', '2', '3']")):
        SEQUENTIAL_MLP.forward({key: value for key, value in params.items() if key != "4"}, x.astype(np.float32))
    with pytest.raises(ValueError, match=re.escape("x: expected shape (N, 784), got (2, 1, 28, 28)")):
        SEQUENTIAL_MLP.forward(params, np.zeros((2, 1, 28, 28), np.float32))


def test_the_curvature_pass_of_every_layer_kind(rng: np.random.Generator) -> None:
    params = EVERY_LAYER.init(rng, dtype=np.float64)
    outputs, cache = EVERY_LAYER.forward(params, rng.standard_normal((3, 1, 16, 16)))
    _, loss_cache = EVERY_LAYER.loss_forward(outputs, rng.integers(0, 5, size=3))
    assert EVERY_LAYER.curvature is not None and EVERY_LAYER.loss_curvature is not None
    curvatures = EVERY_LAYER.curvature(EVERY_LAYER.loss_curvature(loss_cache), EVERY_LAYER.loss_backward(loss_cache), cache)
    for path, leaf in tree_flatten_with_paths(curvatures).items():
        assert leaf.shape == tree_flatten_with_paths(params)[path].shape and (leaf >= 0).all() and leaf.any(), path
