"""A run's files never lost or contradicting what was printed: another run's directory is refused,
a run killed at any file write is put right when it resumes, Ctrl-C and SIGTERM wait for the
epoch's files, a full disk and a diverging run end in one line that names a checkpoint that is
there and good."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import loop, rundir, train, train_cli
from lenet_fn.checkpoint import load_checkpoint, load_model
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.models import get_model
from lenet_fn.optim import SCHEDULES, momentum_step
from lenet_fn.params import tree_flatten_with_paths, tree_unflatten_with_paths
from lenet_fn.state import prepare_data

REPOSITORY = Path(__file__).resolve().parent.parent
QUICK = ["--model", "mlp", "--limit", "300", "--batch-size", "50", "--threads", "1"]  # learns in 6 steps an epoch
ENVIRONMENT = {**os.environ, "PYTHONUNBUFFERED": "1"}

KILL_AT_THE_NTH_RENAME = """
import os, signal, sys
from lenet_fn import atomic
from lenet_fn.cli import run_command
from lenet_fn.train_cli import main

kill_at, renames = int(sys.argv[1]), []
real_replace = os.replace

def replace_or_die(source, destination):
    renames.append(destination)
    if len(renames) == kill_at:  # as kill -9 would, with the new file written but not yet in place
        print(f"killed writing {destination}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, destination)

atomic.os.replace = replace_or_die
run_command(lambda: main(sys.argv[2:]))
"""


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = train.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _assert_consistent(run_dir: Path, printed: str, epochs: int) -> None:
    """What was printed last, best.npz, last.npz and metrics.json tell one story; no temp file is left."""
    best_line = re.search(r"^best test error (\d+\.\d\d)% after epoch (\d+)", printed, re.M)
    assert best_line, printed
    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert [entry["epoch"] for entry in metrics["epochs"]] == list(range(1, epochs + 1))
    assert (f"{100 * metrics['best']['test_error']:.2f}", metrics["best"]["epoch"]) == (best_line[1], int(best_line[2]))
    best, last = load_checkpoint(run_dir / rundir.BEST), load_checkpoint(run_dir / rundir.LAST)
    assert best.metadata["epoch"] == metrics["best"]["epoch"] and best.metadata["metrics"] == metrics["best"]
    assert last.metadata["epoch"] == epochs and [entry["epoch"] for entry in last.metadata["history"]] == list(range(1, epochs + 1))
    if best.metadata["epoch"] == epochs:
        for key, array in last.arrays.items():
            np.testing.assert_array_equal(best.arrays[key], array)
    assert not list(run_dir.glob(".*.tmp"))


def test_a_new_run_never_overwrites_another_runs_files(tmp_path: Path) -> None:
    assert _run_cli([*QUICK, "--epochs", "1", "--out", str(tmp_path)])[0] == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    status, out, err = _run_cli([*QUICK, "--model", "lenet5", "--epochs", "1", "--out", str(tmp_path)])
    assert status == 2 and out == "" and err == (
        f"error: --out {tmp_path}: holds another run (last.npz, best.npz, metrics.json, error_rate.png), which this one "
        f"would overwrite; continue it with --resume {tmp_path / 'last.npz'} or choose another --out\n"
    )
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    (tmp_path / "file").write_text("")
    status, _, err = _run_cli([*QUICK, "--out", str(tmp_path / "file")])
    assert status == 2 and err == f"error: --out: expected a directory for the run's files, got the file {tmp_path / 'file'}\n"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The metrics.json of a two-epoch run that nothing stopped."""
    run_dir = tmp_path_factory.mktemp("straight")
    assert _run_cli([*QUICK, "--epochs", "2", "--out", str(run_dir)])[0] == 0
    return dict(json.loads((run_dir / rundir.METRICS).read_text()))


@pytest.mark.parametrize(("kill_at", "writing"), [(2, "best.npz"), (5, "last.npz"), (6, "best.npz"), (7, "metrics.json"), (8, "error_rate.png")])
def test_a_run_killed_at_a_file_write_is_put_right_when_it_resumes(
    tmp_path: Path, kill_at: int, writing: str, uninterrupted: dict[str, Any]
) -> None:
    pytest.importorskip("matplotlib")  # the plot is the fourth file an epoch writes
    command = [sys.executable, "-c", KILL_AT_THE_NTH_RENAME, str(kill_at), *QUICK, "--epochs", "2", "--out", str(tmp_path)]
    killed = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, cwd=REPOSITORY, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stderr.splitlines()[-1] == f"killed writing {tmp_path / writing}"
    printed = [line for line in killed.stdout.splitlines() if line.startswith("epoch ")]
    written = json.loads((tmp_path / rundir.METRICS).read_text())["epochs"] if (tmp_path / rundir.METRICS).exists() else []
    assert len(printed) <= len(written)  # an epoch's line comes after its files
    assert list(tmp_path.glob(".*.tmp")), "the kill should leave the write's temp file"

    status, out, err = _run_cli(["--resume", str(tmp_path / rundir.LAST)])
    assert status == 0, err
    _assert_consistent(tmp_path, out, epochs=2)
    resumed = json.loads((tmp_path / rundir.METRICS).read_text())
    assert [entry["test_error"] for entry in resumed["epochs"]] == [entry["test_error"] for entry in uninterrupted["epochs"]]


def test_ctrl_c_while_the_last_epochs_files_are_written_waits_for_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_metrics = rundir.write_metrics
    calls: list[int] = []

    def write_metrics_with_ctrl_c(*args: Any) -> Path:
        calls.append(1)
        if len(calls) == 2:  # the second epoch's: after last.npz and best.npz, before metrics.json
            os.kill(os.getpid(), signal.SIGINT)
        return real_write_metrics(*args)

    monkeypatch.setattr(rundir, "write_metrics", write_metrics_with_ctrl_c)
    status, out, err = _run_cli([*QUICK, "--epochs", "2", "--out", str(tmp_path)])
    assert status == 130
    assert err == (
        f"\nstopped by Ctrl-C at the end of epoch 2; saved {tmp_path / 'last.npz'}\n"
        f"continue with: python -m lenet_fn.train --resume {tmp_path / 'last.npz'}\n"
    )
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    status, out, _ = _run_cli(["--resume", str(tmp_path / rundir.LAST)])
    assert status == 0 and not [line for line in out.splitlines() if line.startswith("epoch ")]
    _assert_consistent(tmp_path, out, epochs=2)


def test_sigterm_saves_a_resumable_checkpoint_like_ctrl_c(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "lenet_fn.train", *QUICK, "--limit", "20000", "--epochs", "3", "--out", str(tmp_path)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENVIRONMENT, cwd=REPOSITORY)
    assert run.stdout is not None
    while not (line := run.stdout.readline()).startswith("epoch"):
        assert line, "the run ended before its first epoch"
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert re.fullmatch(rf"\nstopped by SIGTERM at (epoch 2, batch \d+|the end of epoch [12]); saved {re.escape(str(tmp_path / 'last.npz'))}\n"
                        r"continue with: python -m lenet_fn.train --resume \S+\n", err)  # fmt: skip
    assert load_checkpoint(tmp_path / rundir.LAST).metadata["kind"] == "interrupted"
    status, out, err = _run_cli(["--resume", str(tmp_path / rundir.LAST)])
    assert status == 0, err
    _assert_consistent(tmp_path, out, epochs=3)


def _fail_the_nth_fsync(monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    """The ``failing``-th file written (and every later one) finds the disk full."""
    real_fsync, calls = os.fsync, []

    def fsync_on_a_full_disk(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) >= failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync_on_a_full_disk)  # the os module lenet_fn.atomic calls


@pytest.mark.parametrize(
    ("failing", "kept"),
    [(1, "No checkpoint was written"), (5, "The last complete checkpoint is {dir}/last.npz (end of epoch 1)")],
    ids=["first-epoch", "second-epoch"],
)
def test_a_full_disk_stops_the_run_in_one_line_keeping_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int, kept: str
) -> None:
    _fail_the_nth_fsync(monkeypatch, failing)
    status, _, err = _run_cli([*QUICK, "--epochs", "2", "--out", str(tmp_path)])
    assert status == 1
    assert err == f"error: cannot write {tmp_path / 'last.npz'}: No space left on device; training stopped. {kept.format(dir=tmp_path)}\n"
    assert not list(tmp_path.glob(".*.tmp"))
    if failing > 1:
        assert load_checkpoint(tmp_path / rundir.LAST).metadata["epoch"] == 1


def test_ctrl_c_on_a_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_train_batch = loop.train_batch

    def train_batch_then_ctrl_c(run: Any, state: Any, rows: Any, x: Any) -> Any:
        if state.progress.batch == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_train_batch(run, state, rows, x)

    monkeypatch.setattr(loop, "train_batch", train_batch_then_ctrl_c)
    _fail_the_nth_fsync(monkeypatch, 1)
    status, _, err = _run_cli([*QUICK, "--epochs", "2", "--out", str(tmp_path)])
    assert status == 130
    assert err == (
        f"\nerror: stopped by Ctrl-C at epoch 1, batch 3, and cannot write {tmp_path / 'last.npz'}: No space left on device. "
        "No checkpoint was written\n"
    )


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_size_limit_of_the_system_is_one_line_too(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "lenet_fn.train", *QUICK, "--epochs", "1", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, cwd=REPOSITORY, preexec_fn=lambda: _limit_file_size(100_000), timeout=300)
    assert done.returncode == 1 and done.stderr == (
        f"error: cannot write {tmp_path / 'last.npz'}: File too large; training stopped. No checkpoint was written\n"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_divergence_names_a_checkpoint_that_is_there_and_its_advice_can_be_followed(tmp_path: Path) -> None:
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    assert _run_cli([*QUICK, "--epochs", "1", "--out", str(first)])[0] == 0
    status, _, err = _run_cli(["--resume", str(first / "last.npz"), "--epochs", "2", "--lr", "1e30", "--out", str(second)])
    assert status == 1
    last = re.escape(str(first / "last.npz"))
    assert re.fullmatch(
        r"note: --lr 1e\+30 replaces the run's 0.05 from here on \(recorded in its files\)\n"
        r"error: the (loss became (nan|inf) at epoch 2, batch \d+|weights became NaN or infinite during epoch 2) \(lr \de\+\d\d\); training stopped. "
        rf"The last complete checkpoint is {last} \(end of epoch 1\); resume it with a smaller rate: --resume {last} --lr 1e\+29\n",
        err,
    )
    assert not second.exists() or not rundir.existing_run_files(second)
    load_model(first / "last.npz")  # the checkpoint named holds finite weights
    status, out, err = _run_cli(["--resume", str(first / "last.npz"), "--epochs", "2", "--lr", "0.001", "--out", str(third)])
    assert status == 0, err
    assert load_checkpoint(third / "last.npz").metadata["config"]["lr"] == 0.001
    rates = [entry["lr"] for entry in json.loads((third / rundir.METRICS).read_text())["epochs"]]
    assert rates == [0.05, 0.001 * SCHEDULES["cosine"](1, 2)]  # each epoch's rate is kept
    _assert_consistent(third, out, epochs=2)


def test_a_diverged_run_from_scratch_says_no_checkpoint_was_written(tmp_path: Path) -> None:
    status, _, err = _run_cli([*QUICK, "--epochs", "1", "--lr", "1e30", "--warmup", "0", "--out", str(tmp_path)])
    assert status == 1
    assert err.endswith("training stopped. No checkpoint was written; start again with a smaller --lr\n") and err.count("\n") == 1


def test_a_stopped_finished_run_is_not_said_to_be_in_an_epoch_after_its_last(tmp_path: Path) -> None:
    state = train.TrainState(params=None, velocity=None, epoch=2, order=None, progress=train.EpochProgress(), rng_state={}, history=())
    assert rundir.describe_position(state) == "end of epoch 2"


def test_best_npz_keeps_the_first_of_equal_test_errors() -> None:
    history = tuple(train.EpochMetrics(epoch=e, loss=1.0, train_error=0.1, test_error=t, seconds=1.0, images_per_second=1.0,
                                       eval_seconds=1.0, lr=0.1) for e, t in [(1, 0.05), (2, 0.03), (3, 0.03)])  # fmt: skip
    assert rundir.best_epoch(history).epoch == 2


def test_weights_that_blow_up_behind_a_finite_loss_are_caught_at_the_epochs_end(mnist_mlp_data: Any) -> None:
    model, data = mnist_mlp_data
    config = train.TrainConfig(model="mlp", epochs=2, batch_size=50, lr=0.05, limit=100, threads=1, warmup=0, schedule="constant")
    state = train.initial_state(model, config)
    blown = {"calls": 0}
    real_momentum_step = momentum_step  # what loop.train_batch calls

    def momentum_step_that_overflows(params: Any, *args: Any, **kwargs: Any) -> Any:
        new_params, velocity = real_momentum_step(params, *args, **kwargs)
        blown["calls"] += 1
        if blown["calls"] == 3:  # in the second epoch: one weight infinite, the loss of later steps still finite
            leaves = dict(tree_flatten_with_paths(new_params))
            first = next(iter(leaves))
            broken = leaves[first].copy()
            broken.flat[0] = np.inf
            new_params = tree_unflatten_with_paths(new_params, {**leaves, first: broken})
        return new_params, velocity

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "momentum_step", momentum_step_that_overflows)
        with pytest.raises(train.TrainingDiverged, match=r"^the weights became NaN or infinite during epoch 2 \(lr 0.05\)$") as stop:
            with np.errstate(all="ignore"):
                train.fit(model, config, data, state)
    assert stop.value.state.epoch == 1 and loop.all_finite(stop.value.state.params)


@pytest.fixture(scope="module")
def mnist_mlp_data() -> Any:
    model = get_model("mlp")
    return model, prepare_data(model, load_mnist(repository_dataset_dir()), limit=100)


def test_two_runs_never_write_one_directory_at_once(tmp_path: Path) -> None:
    held = rundir.claim_run_dir(tmp_path / "run")
    try:
        status, out, err = _run_cli([*QUICK, "--epochs", "1", "--out", str(tmp_path / "run")])
        assert status == 2 and out == "" and err == (
            f"error: {tmp_path / 'run'}: another run is writing there; wait for it to end or choose another --out\n"
        )
    finally:
        assert held is not None
        held.close()
    assert _run_cli([*QUICK, "--epochs", "1", "--out", str(tmp_path / "run")])[0] == 0


def test_runs_started_in_the_same_second_take_directories_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    taken = [train_cli._new_directory(Path("runs") / "mlp-20261201-120000") for _ in range(3)]
    assert [path.name for path in taken] == ["mlp-20261201-120000", "mlp-20261201-120000-2", "mlp-20261201-120000-3"]
    assert all(path.is_dir() for path in taken)
