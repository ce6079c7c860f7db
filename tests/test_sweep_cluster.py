"""Sweeps on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1, started with
Dask's own commands. The tiny sweep of tests/test_sweep_local.py gives bit for bit the results of
local processes; killing a worker mid-sweep still completes it with the same results, and a second
invocation does no work; an unreachable scheduler and a worker without the dataset are one line.
Skipped without the cluster extra (CI installs it with the dev extra)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lenet_fn import sweep_cli, sweep_dask
from lenet_fn.data import repository_dataset_dir
from lenet_fn.sweep_task import run_name
from tests.test_sweep_local import TINY, TINY_RUNS, fingerprint, sweep

pytest.importorskip("distributed")

START_SECONDS = 60


class Cluster:
    """A Dask scheduler and two single-threaded workers (``dask worker --nthreads 1 --no-nanny``),
    each a process of its own with its log in ``directory``; the workers' working directory holds
    no dataset."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        scheduler_file = directory / "scheduler.json"
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)])
        self.address = str(json.loads(self._wait_for(scheduler_file))["address"])
        self.workers = [self._start(f"w{number}", ["worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{number}"])
                        for number in (1, 2)]  # fmt: skip
        for number in (1, 2):
            self._wait_for(directory / f"w{number}.log", "Registered to:")

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        return subprocess.Popen([sys.executable, "-m", "dask", *arguments], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip

    def _wait_for(self, path: Path, text: str = "") -> str:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            content = path.read_text(errors="replace") if path.exists() else ""
            if content and text in content:
                return content
            time.sleep(0.05)
        raise AssertionError(f"{path} has no {text or 'content'} after {START_SECONDS} s")

    def log(self, worker: int) -> str:
        return (self.directory / f"w{worker + 1}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "sweep"
    assert sweep([*TINY, "--out", str(out)])[0] == 0
    return out


def _same_runs(first: Path, second: Path) -> None:
    for run in TINY_RUNS:
        assert fingerprint(first / run_name(run.config)) == fingerprint(second / run_name(run.config)), run.setting
    settings = [json.loads((directory / "results.json").read_text())["settings"] for directory in (first, second)]
    for measure in ("final_error", "best_error", "best_epoch"):
        assert [entry[measure] for entry in settings[0]] == [entry[measure] for entry in settings[1]]


def test_a_sweep_on_the_cluster_gives_the_results_of_local_processes(cluster: Cluster, local: Path, tmp_path: Path) -> None:
    status, stdout, stderr = sweep([*TINY, "--out", str(tmp_path / "sweep"), "--scheduler", cluster.address])
    assert status == 0, stderr
    assert f"4 to start, on the Dask cluster at {cluster.address}, 1 thread each" in stderr
    assert sum(" in worker tcp://127.0.0.1:" in line for line in stderr.splitlines()) == 4
    _same_runs(local, tmp_path / "sweep")
    tables = [text.splitlines()[:4] for text in (stdout, sweep([*TINY, "--out", str(local)])[1])]
    assert [[line.rsplit("|", 2)[0] for line in table] for table in tables] == [[line.rsplit("|", 2)[0] for line in tables[1]]] * 2  # but the times


def test_a_worker_without_the_dataset_is_one_line_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "mnist").symlink_to(repository_dataset_dir())  # here, not in the workers' directory
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        status = sweep_cli.main([*TINY, "--dataset", "mnist", "--out", "sweep", "--scheduler", cluster.address], stdout=out, stderr=err)
    finally:
        os.chdir(previous)
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
    assert status == 2 and len(errors) == 1, err.getvalue()
    assert errors[0].startswith("error: run mlp-s") and ": cannot read the dataset in worker tcp://127.0.0.1:" in errors[0]
    assert ": mnist: no such directory (expected a directory holding the four MNIST files); every process that trains needs the dataset: " in errors[0]
    assert out.getvalue() == "0 of 4 runs complete; no results\n" and not list((tmp_path / "sweep").glob("*/*"))


def test_an_unreachable_scheduler_is_one_line_naming_it_within_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sweep_dask.CONNECT_SECONDS <= 5
    monkeypatch.setattr(sweep_dask, "CONNECT_SECONDS", 1)  # the wait is Dask's timeout: a second here
    started = time.monotonic()
    status, stdout, stderr = sweep([*TINY, "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"])
    assert time.monotonic() - started < 5
    assert (status, stdout) == (2, "") and stderr.startswith(
        "error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s (Timed out trying to connect to tcp://127.0.0.1:9 after 1 s"
    ) and stderr.count("\n") == 1, stderr


def test_killing_a_worker_mid_sweep_still_completes_it_with_the_same_results(cluster: Cluster, local: Path, tmp_path: Path) -> None:
    """Runs last: it leaves the cluster one worker."""
    out = tmp_path / "sweep"
    seen = len(cluster.log(0))  # the log of this sweep starts there
    command = [sys.executable, "-m", "lenet_fn.sweep", *TINY, "--out", str(out), "--scheduler", cluster.address]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_SECONDS
    while ": started on worker " not in cluster.log(0)[seen:]:
        assert time.monotonic() < deadline and client.poll() is None, "worker 1 started no run"
        time.sleep(0.01)
    cluster.workers[0].send_signal(signal.SIGKILL)
    _, err = client.communicate(timeout=120)
    log = cluster.log(0)[seen:]
    killed = log.split(": started on worker ")[-2].rsplit("lenet_fn sweep: ", 1)[-1]
    assert client.returncode == 0 and "Traceback" not in err, err
    assert f"lenet_fn sweep: {killed}: trained" not in log  # it was killed mid-run ...
    assert any(f"] {killed} (" in line and "): trained: " in line for line in err.splitlines()), err  # ... and trained again, elsewhere
    _same_runs(local, out)

    status, _, stderr = sweep([*TINY, "--out", str(out), "--scheduler", cluster.address])
    assert (status, stderr) == (0, f"sweep: 4 runs (2 settings x 2 seeds) in {out}: 4 finished before, 0 to resume, 0 to start\n")
