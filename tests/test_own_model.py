"""A network of your own, defined in a module outside the package: fit, the CLI by import path,
its checkpoint through evaluate and predict, and one-line errors for what cannot work."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import evaluate, plots, predict, show, train
from lenet_fn.checkpoint import load_checkpoint, save_checkpoint
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.models import get_model

REPOSITORY = Path(__file__).resolve().parents[1]

MODULE = '''
import attrs
import numpy as np
from lenet_fn import losses, ops
from lenet_fn.data import prepare_images
from lenet_fn.params import LinearParams, init_linear
from lenet_fn.protocol import Model, predict_largest


@attrs.frozen
class TinyCache:
    hidden: ops.LinearCache
    relu: ops.ReluCache
    out: ops.LinearCache


def init(rng, *, dtype=np.float32):
    return {"hidden": init_linear(rng, 784, 32, dtype=dtype), "out": init_linear(rng, 32, 10, dtype=dtype)}


def forward(params, x):
    a, hidden = ops.linear_forward(x, params["hidden"].w, params["hidden"].b)
    a, relu = ops.relu_forward(a)
    logits, out = ops.linear_forward(a, params["out"].w, params["out"].b)
    return logits, TinyCache(hidden, relu, out)


def backward(d_logits, cache):
    d, d_out_w, d_out_b = ops.linear_backward(d_logits, cache.out)
    d = ops.relu_backward(d, cache.relu)
    _, d_w, d_b = ops.linear_backward(d, cache.hidden, input_grad=False)
    return {"hidden": LinearParams(w=d_w, b=d_b), "out": LinearParams(w=d_out_w, b=d_out_b)}


def prepare(images, dtype):
    return prepare_images(images, pad=0, low=0.0, high=1.0, dtype=dtype).reshape(images.shape[0], -1)


TINY = Model(init=init, forward=forward, backward=backward, loss_forward=losses.softmax_cross_entropy_forward,
             loss_backward=losses.softmax_cross_entropy_backward, predict=predict_largest, prepare=prepare)
NOT_A_MODEL = 42


def _broken_init(rng, *, dtype=np.float32):
    raise RuntimeError("no weights today")


def _broken_backward(d_logits, cache):
    raise KeyError("hidden")


BROKEN_INIT = attrs.evolve(TINY, init=_broken_init)
BROKEN_BACKWARD = attrs.evolve(TINY, backward=_broken_backward)
'''


@pytest.fixture
def tiny_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_nets").mkdir()
    (tmp_path / "my_nets" / "__init__.py").write_text("")
    (tmp_path / "my_nets" / "tiny.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_nets.tiny:TINY"


def _cli(command: Any, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = command.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_a_model_of_your_own_trains_through_fit(tiny_module: str) -> None:
    model = get_model(tiny_module)
    assert model.name == tiny_module and not model.has_curvature
    config = train.TrainConfig(model=tiny_module, epochs=1, batch_size=50, lr=0.05, warmup=0, distort=False, limit=500, threads=1)
    data = train.prepare_data(model, load_mnist(repository_dataset_dir()), limit=500)
    state = train.fit(model, config, data, train.initial_state(model, config))
    assert isinstance(state.params, dict) and state.history[0].test_error < 0.5


def test_the_cli_trains_it_by_import_path_and_evaluate_and_predict_load_it(tiny_module: str, tmp_path: Path) -> None:
    flags = ["--model", tiny_module, "--limit", "500", "--epochs", "1", "--batch-size", "50", "--warmup", "0", "--no-distort"]
    status, out, err = _cli(train, [*flags, "--out", str(tmp_path / "run")])
    assert status == 0, err
    assert out.startswith(f"{tiny_module}: 25,450 trainable parameters")
    best = tmp_path / "run" / "best.npz"
    assert load_checkpoint(best).model == tiny_module  # where to import it from
    status, out, err = _cli(evaluate, [str(best)])
    assert status == 0 and out.splitlines()[0] == f"{best}: {tiny_module} after epoch 1" and "test error" in out
    digit = tmp_path / "digit.npy"
    np.save(digit, load_mnist(repository_dataset_dir()).test_images[0])
    status, out, err = _cli(predict, ["--checkpoint", str(best), str(digit)])
    assert status == 0 and out.startswith(f"{digit}: ") and "(probabilities)" in out
    if plots.matplotlib_available():
        status, out, err = _cli(show, ["confusion", str(best), "--out", str(tmp_path / "confusion.png")])
        assert status == 0 and (tmp_path / "confusion.png").stat().st_size > 0, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "my_nets.tiny:TINY", "--optimizer", "sdlm"],
         "error: --optimizer: sdlm needs the model's curvature functions (Model.curvature and Model.loss_curvature); "
         "my_nets.tiny:TINY has none, so train it with momentum"),
        (["--model", "no_such_package.nets:NET"],
         "error: --model no_such_package.nets:NET: cannot import no_such_package.nets (ModuleNotFoundError: No module named 'no_such_package')"),
        (["--model", "my_nets.tiny:NOT_A_MODEL"], "error: --model my_nets.tiny:NOT_A_MODEL: expected a lenet_fn Model, got int"),
        (["--model", "my_nets.tiny:MISSING"], "error: --model my_nets.tiny:MISSING: module my_nets.tiny has no attribute 'MISSING'"),
        (["--model", "lenet6"], "error: --model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got 'lenet6'"),
        (["--model", ""], "error: --model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got ''"),
        (["--model", ":"], "error: --model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got ':'"),
        (["--model", "a:b:c"], "error: --model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got 'a:b:c'"),
        (["--model", "my_nets.tiny:BROKEN_INIT"],
         "error: --model my_nets.tiny:BROKEN_INIT: its init or prepare failed (RuntimeError: no weights today)"),
    ],
)  # fmt: skip
def test_what_cannot_work_is_one_line(tiny_module: str, tmp_path: Path, flags: list[str], message: str) -> None:
    status, out, err = _cli(train, [*flags, "--limit", "100", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert status == 2 and out == "" and err == message + "\n"


def test_a_model_failing_while_it_trains_is_one_line(tiny_module: str, tmp_path: Path) -> None:
    status, out, err = _cli(train, ["--model", "my_nets.tiny:BROKEN_BACKWARD", "--limit", "100", "--epochs", "1", "--out", str(tmp_path)])
    assert status == 1 and err == (
        "error: the model my_nets.tiny:BROKEN_BACKWARD failed while training (KeyError: 'hidden'). No checkpoint was written\n"
    )


def test_a_checkpoint_whose_model_no_longer_imports_is_one_line(tiny_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = ["--model", tiny_module, "--limit", "100", "--epochs", "1", "--batch-size", "50", "--out", str(tmp_path / "run")]
    assert _cli(train, flags)[0] == 0
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry != str(tmp_path)])
    for name in [name for name in sys.modules if name.startswith("my_nets")]:
        monkeypatch.delitem(sys.modules, name)
    last = tmp_path / "run" / "last.npz"
    cannot = f"model {tiny_module}: cannot import my_nets.tiny (ModuleNotFoundError: No module named 'my_nets')"
    assert _cli(train, ["--resume", str(last)]) == (2, "", f"error: {last}: {cannot}\n")
    assert _cli(evaluate, [str(last)]) == (2, "", f"error: {last}: {cannot}\n")


def test_a_tree_path_named_metadata_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^params: the path 'metadata' is where a checkpoint keeps its metadata; rename that entry of the tree$"):
        save_checkpoint(tmp_path / "x.npz", {"metadata": np.zeros(2)}, model="mine")
    assert not list(tmp_path.iterdir())


def test_fit_refuses_sdlm_without_curvature(tiny_module: str) -> None:
    model = get_model(tiny_module)
    config = train.TrainConfig(model=tiny_module, optimizer="sdlm", limit=100)
    data = train.prepare_data(model, load_mnist(repository_dataset_dir()), limit=100)
    with pytest.raises(ValueError, match=r"^optimizer: sdlm needs the model's curvature functions"):
        train.fit(model, config, data, train.initial_state(model, config))


def test_the_examples_run(tmp_path: Path) -> None:
    """examples/own_network.py end to end (a short run), and examples/test_own_op.py under pytest."""
    done = subprocess.run([sys.executable, str(REPOSITORY / "examples" / "own_network.py"), "--limit", "1000", "--epochs", "1",
                           "--out", str(tmp_path / "own")], capture_output=True, text=True, cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("test error after 1 epochs: ") and "(probabilities)" in lines[-2]
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPOSITORY / "examples" / "test_own_op.py")],
                            capture_output=True, text=True, cwd=tmp_path, check=False)  # fmt: skip
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout
