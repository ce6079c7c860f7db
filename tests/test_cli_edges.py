"""The commands at their edges: closed pipes, absurd flags, flags that do nothing, writes that
cannot happen, Ctrl-C before training, more threads than cores. One line and an exit status each."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from lenet_fn import evaluate, show, train, train_cli
from lenet_fn.cli import run_command
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.shipped import pretrained_path

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["lenet_fn.evaluate", str(pretrained_path())],
        ["lenet_fn.show", "bitmaps", "--ascii"],
        ["lenet_fn.predict", "SEVEN"],
    ],
    ids=["evaluate", "show-ascii", "predict"],
)
def test_a_closed_output_pipe_ends_the_command_quietly(command: list[str], tmp_path: Path) -> None:
    """As ``... | head -1`` does once it has its line: the reading end closes before the writes."""
    seven = tmp_path / "seven.pgm"
    seven.write_bytes(b"P5 28 28 255\n" + load_mnist(repository_dataset_dir()).test_images[0].tobytes())
    argv = [str(seven) if word == "SEVEN" else word for word in command]
    run = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPOSITORY)
    assert run.stdout is not None and run.stderr is not None
    run.stdout.close()
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 141 and err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--translate", "1e308"], "error: --translate: expected a number in [0.0, 28.0), got 1e+308"),
        (["--shear", "1e308"], "error: --shear: expected a number in [0.0, 2.0), got 1e+308"),
        (["--repeat", "1000000000000"], "error: --repeat: expected an integer in [1, 1000], got 1000000000000"),
        (["--no-distort", "--translate", "5"],
         "error: --translate: sets a range of the warps, and this run has none (--no-distort); add --distort to use it"),
        (["--model", "mlp", "--squeeze", "0.2"],
         "error: --squeeze: sets a range of the warps, and this run has none (mlp's default); add --distort to use it"),
    ],
)  # fmt: skip
def test_absurd_or_idle_flags_get_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert train.main([*argv, "--out", str(tmp_path)], stdout=out, stderr=err) == 2
    assert err.getvalue() == message + "\n" and out.getvalue() == ""


def test_resuming_with_zero_epochs_early_in_a_run_is_one_line(tmp_path: Path) -> None:
    quick = ["--model", "mlp", "--limit", "100", "--batch-size", "50", "--threads", "1", "--out", str(tmp_path)]
    assert train.main([*quick, "--epochs", "1"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    err = io.StringIO()
    assert train.main(["--resume", str(tmp_path / "last.npz"), "--epochs", "0"], stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue() == "error: --epochs: expected at least 1 (the run has finished 1), got 0\n"


def _config(argv: list[str]) -> train.TrainConfig:
    args: argparse.Namespace = train_cli._parser().parse_args(argv)
    return train_cli.config_from_flags(args)


def test_a_short_run_warms_up_for_a_tenth_of_its_steps_unless_told() -> None:
    assert _config([]).warmup == 500  # the default run: 20 epochs of 1,875 steps
    assert _config(["--epochs", "2", "--limit", "5000"]).warmup == 31  # 314 steps
    assert _config(["--epochs", "2", "--limit", "5000", "--warmup", "200"]).warmup == 200


@pytest.mark.parametrize(
    ("out", "message"),
    [("file/figure.png", "error: --out: cannot write {tmp}/file/figure.png: {tmp}/file is a file, not a directory"),
     ("directory", "error: --out: cannot write {tmp}/directory: is a directory")],
)  # fmt: skip
def test_show_cannot_write_its_figure_in_one_line(out: str, message: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("")
    (tmp_path / "directory").mkdir()
    err = io.StringIO()
    assert show.main(["bitmaps", "--out", str(tmp_path / out)], stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue() == message.format(tmp=tmp_path) + "\n"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not a metrics.json written by lenet_fn.train (JSONDecodeError: "),
        ('{"epochs": 3}', "not a metrics.json written by lenet_fn.train (expected an object with a list 'epochs')"),
        ('{"epochs": [{"epoch": 1.5, "train_error": 0.1, "test_error": 0.1}]}', "epochs[0]: epoch: expected an integer >= 1, got 1.5"),
        ('{"epochs": [{"epoch": 1, "train_error": "x", "test_error": 0.1}]}', "epochs[0]: train_error: expected an error rate in [0, 1], got 'x'"),
        ('{"epochs": [{"epoch": 1, "train_error": 0.1, "test_error": 7}]}', "epochs[0]: test_error: expected an error rate in [0, 1], got 7"),
        ("[" * 100_000, "not a metrics.json written by lenet_fn.train (RecursionError: "),
    ],
    ids=["not-json", "epochs-not-a-list", "fractional-epoch", "text-error", "error-above-1", "nested"],
)
def test_show_curve_on_a_malformed_metrics_json_is_one_line(document: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(document)
    err = io.StringIO()
    assert show.main(["curve", str(tmp_path), "--out", str(tmp_path / "curve.png")], stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue().startswith(f"error: {tmp_path / 'metrics.json'}: {message}") and err.getvalue().count("\n") == 1


def test_ctrl_c_while_the_data_loads_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def interrupted_load(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "load_or_download_mnist", interrupted_load)
    with pytest.raises(SystemExit) as done:
        run_command(lambda: train.main(["--out", str(tmp_path / "run")]))
    assert done.value.code == 130 and capsys.readouterr().err == "\nstopped by Ctrl-C\n"


def test_evaluate_with_more_threads_than_cores_says_so_and_uses_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "default_threads", lambda: 2)
    out, err = io.StringIO(), io.StringIO()
    status = evaluate.main([str(pretrained_path()), "--threads", "128", "--dataset", str(repository_dataset_dir())], stdout=out, stderr=err)
    assert status == 0 and err.getvalue() == "note: --threads 128 is more than the 2 cores here; using 2\n"
    assert "test error 0.95% (95 of 10000 misclassified)" in out.getvalue()
