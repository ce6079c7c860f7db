"""Sweeps on local processes (python -m lenet_fn.sweep without --scheduler), with Dask's
distributed package hidden as if the cluster extra were not installed: a tiny sweep (2 settings x
2 seeds of the MLP, 300 images, 2 epochs) computes bit for bit what the train command computes
with the same flags, a second invocation does no work, a directory holding other settings is
refused, a stopped run resumes bit for bit, SIGTERM stops the sweep and the same command
continues it."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lenet_fn import sweep_cli, train
from lenet_fn.checkpoint import load_checkpoint
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.loop import fit
from lenet_fn.models import get_model
from lenet_fn.params import tree_leaves
from lenet_fn.parallel import Workers
from lenet_fn.rundir import LAST, RunFiles, load_state, read_metrics
from lenet_fn.state import TrainingInterrupted, TrainState, initial_state, prepare_data
from lenet_fn.sweep_dask import INSTALL_HINT
from lenet_fn.sweep_grid import SweepRun, plan_sweep
from lenet_fn.sweep_task import SETTINGS, run_name, settings_record

TINY = ["--model", "mlp", "--lr", "0.01,0.05", "--seeds", "0-1", "--epochs", "2", "--limit", "300", "--batch-size", "50"]
TINY_RUNS = plan_sweep(["--model", "mlp", "--lr", "0.01,0.05", "--epochs", "2", "--limit", "300", "--batch-size", "50"], seeds="0-1")


def sweep(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = sweep_cli.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def fingerprint(run_dir: Path) -> tuple[list[bytes], list[tuple[float, ...]]]:
    """A run's final weights and velocity (their bytes) and its epochs' figures, without the times."""
    _, state = load_state(run_dir / LAST)
    leaves = [np.ascontiguousarray(leaf).tobytes() for tree in (state.params, state.velocity) for leaf in tree_leaves(tree)]
    return leaves, [(entry.epoch, entry.loss, entry.train_error, entry.test_error, entry.lr) for entry in state.history]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """The tiny sweep on 2 local processes, run with ``import distributed`` failing; (its directory, stdout, stderr)."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "distributed", None)  # what the import system reads as "not installed"
        status, stdout, stderr = sweep([*TINY, "--out", str(out), "--processes", "2"])
        assert status == 0, stderr
        scheduled = sweep([*TINY, "--out", str(out), "--scheduler", "tcp://127.0.0.1:8786"])
    assert scheduled == (2, "", f"error: --scheduler: needs Dask's distributed package, which is not installed here: {INSTALL_HINT}\n")
    yield out, stdout, stderr


def test_a_local_sweep_computes_what_the_train_command_computes_with_the_same_flags(tiny: tuple[Path, str, str], tmp_path: Path) -> None:
    out, stdout, stderr = tiny
    assert "sweep: 4 runs (2 settings x 2 seeds) in " in stderr and "0 finished before, 0 to resume, 4 to start, on 2 local processes, 1 thread each" in stderr
    assert sum(line.startswith("[") and ": trained: test error " in line for line in stderr.splitlines()) == 4
    for run in (TINY_RUNS[0], TINY_RUNS[3]):  # one of each setting, and of each seed
        alone = tmp_path / run_name(run.config)
        assert train.main([*run.flags, "--out", str(alone)], stdout=io.StringIO(), stderr=io.StringIO()) == 0
        assert fingerprint(out / run_name(run.config)) == fingerprint(alone), run.setting
    for run in TINY_RUNS:
        assert json.loads((out / run_name(run.config) / SETTINGS).read_text()) == settings_record(run.config)


def test_the_results_are_each_settings_mean_spread_and_range_over_its_seeds(tiny: tuple[Path, str, str]) -> None:
    out, stdout, _ = tiny
    document = json.loads((out / "results.json").read_text())
    assert [entry["setting"] for entry in document["settings"]] == ["--lr 0.01", "--lr 0.05"]
    for entry, runs in zip(document["settings"], (TINY_RUNS[:2], TINY_RUNS[2:])):
        final = [read_metrics(out / run_name(run.config) / "metrics.json")[-1]["test_error"] for run in runs]
        assert entry["final_error"] == {"mean": np.mean(final), "std": np.std(final, ddof=1), "min": min(final), "max": max(final)}
        assert [run["seed"] for run in entry["runs"]] == [0, 1] and entry["planned"] == 2 and entry["evaluated"] == "test"
        row = f"| {entry['setting']} | 0, 1 | {100 * np.mean(final):.2f}% ± {100 * np.std(final, ddof=1):.2f} ({100 * min(final):.2f}-{100 * max(final):.2f}) |"
        assert row in stdout
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("setting,evaluated,runs,planned,seeds,final_error_mean,final_error_std,") and len(csv_lines) == 3
    assert stdout.splitlines()[0] == "| setting | seeds | final test error | best test error | best epoch | wall time per run |"
    assert (out / "results.png").stat().st_size > 10_000


def test_a_second_invocation_does_no_work(tiny: tuple[Path, str, str]) -> None:
    out, first, _ = tiny
    times = {path: path.stat().st_mtime_ns for path in out.glob("*/*")}
    status, stdout, stderr = sweep([*TINY, "--out", str(out)])
    assert (status, stderr) == (0, f"sweep: 4 runs (2 settings x 2 seeds) in {out}: 4 finished before, 0 to resume, 0 to start\n")
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/*")} == times
    assert stdout.splitlines()[:4] == first.splitlines()[:4]


def test_a_directory_holding_other_settings_under_the_runs_name_is_refused(tiny: tuple[Path, str, str], tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    shutil.copytree(tiny[0], out)
    first, second = (out / run_name(run.config) for run in TINY_RUNS[:2])
    record = json.loads((first / SETTINGS).read_text())
    (first / SETTINGS).write_text(json.dumps({**record, "config": {**record["config"], "lr": 0.02}}))
    status, stdout, stderr = sweep([*TINY, "--out", str(out)])
    assert (status, stdout) == (2, "") and stderr == (
        f"error: {first}: holds a run of other settings under this run's name (lr 0.02 where this run has 0.01); move it away or give the sweep another --out\n"
    )
    (first / SETTINGS).write_text(json.dumps(record))
    shutil.copy(second / LAST, first / LAST)  # a checkpoint of seed 1 in seed 0's directory
    assert sweep([*TINY, "--out", str(out)])[2] == (
        f"error: {first / LAST}: holds a run with seed 1 where this run has 0; move {first} away or give the sweep another --out\n"
    )


def _stopped_state(run: SweepRun, run_dir: Path, *, batch: int) -> TrainState:
    """Trains ``run`` in ``run_dir`` as a sweep's process would, stopped at ``batch`` of its second epoch."""
    model, config = get_model(run.config.model), run.config
    data = prepare_data(model, load_mnist(repository_dataset_dir()), limit=config.limit, dtype=config.dtype)
    files = RunFiles(run_dir, config, plots=False)

    def stop(state: TrainState) -> None:
        if (state.epoch, state.progress.batch) == (1, batch):
            raise KeyboardInterrupt

    with Workers(config.threads) as workers:
        try:
            fit(model, config, data, initial_state(model, config), workers=workers, on_batch_end=stop, on_epoch_end=lambda state, _: files.end_of_epoch(state))
        except TrainingInterrupted as stopped:
            files.interrupted(stopped.state)
            return stopped.state
    raise AssertionError("the run was not stopped")


def test_a_run_stopped_part_way_resumes_bit_for_bit(tiny: tuple[Path, str, str], tmp_path: Path) -> None:
    out, run = tmp_path / "sweep", TINY_RUNS[3]
    (out / run_name(run.config)).mkdir(parents=True)
    (out / run_name(run.config) / SETTINGS).write_text(json.dumps(settings_record(run.config)))
    _stopped_state(run, out / run_name(run.config), batch=3)
    assert sweep([*TINY, "--out", str(out), "--dry-run"])[1].count("  resumes at epoch 2, batch 3  ") == 1
    status, _, stderr = sweep([*run.flags[:-2], "--seeds", str(run.config.seed), "--out", str(out)])  # that run alone
    assert status == 0 and "0 finished before, 1 to resume, 0 to start" in stderr, stderr
    assert fingerprint(out / run_name(run.config)) == fingerprint(tiny[0] / run_name(run.config))


def test_sigterm_stops_the_sweep_and_the_same_command_continues_its_runs(tmp_path: Path) -> None:
    """A real SIGTERM to ``python -m lenet_fn.sweep``: its process saves its run part way, and the
    command run again ends it with the weights of a run never stopped."""
    flags = ["--model", "mlp", "--limit", "3000", "--holdout", "500", "--epochs", "3", "--batch-size", "50", "--seeds", "0"]
    command = [sys.executable, "-m", "lenet_fn.sweep", *flags, "--out", str(tmp_path / "sweep")]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    assert running.stderr is not None
    while ": epoch   1/3 " not in (line := running.stderr.readline()):
        assert line, "the sweep ended before a first epoch"
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=120)
    assert running.returncode == 143 and "stopped by SIGTERM: " in err and "Traceback" not in err, err
    kinds = [load_checkpoint(path).metadata["kind"] for path in (tmp_path / "sweep").glob("*/last.npz")]
    assert kinds == ["interrupted"] and "stopped by SIGTERM: 1 run(s) saved part way; the same command continues them" in err, kinds

    again = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    assert again.returncode == 0 and "0 finished before, 1 to resume, 0 to start" in again.stderr, again.stderr
    run = plan_sweep(flags[:-2], seeds="0")[0]
    assert train.main([*run.flags, "--out", str(tmp_path / "alone")], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert fingerprint(tmp_path / "sweep" / run_name(run.config)) == fingerprint(tmp_path / "alone")

