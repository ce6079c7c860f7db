"""The warp worker process: the batches it gives are ``distorted_batch``'s, whatever happens to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lenet_fn import warps
from lenet_fn.augment import DistortionRanges
from lenet_fn.warps import AHEAD, WarpWorker, distorted_batch

RANGES = DistortionRanges(translate=3.0, scale=0.2, squeeze=0.1, shear=0.3)


def numbered_rows(rng: np.random.Generator, count: int, batches: int, size: int = 16) -> list[tuple[int, np.ndarray]]:
    return [(index, rng.permutation(count)[:size]) for index in range(batches)]


def expected(x: np.ndarray, epoch: int, numbered: list[tuple[int, np.ndarray]], seed: int = 5) -> list[np.ndarray]:
    return [distorted_batch(x[rows], RANGES, (seed, epoch, index), -0.1) for index, rows in numbered]


@pytest.mark.parametrize("shape", [(1, 32, 32), (784,)], ids=["images", "flat-mlp-inputs"])
def test_the_worker_gives_the_batches_warped_here(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    x = rng.random((300, *shape)).astype(np.float32)
    numbered = numbered_rows(rng, 300, 3 * AHEAD + 1)
    with WarpWorker(x, RANGES, 5, -0.1) as worker:
        for epoch in (0, 4):
            batches = list(worker.batches(epoch, numbered))
            assert [rows.tolist() for rows, _ in batches] == [rows.tolist() for _, rows in numbered]
            for (_, got), want in zip(batches, expected(x, epoch, numbered), strict=True):
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
        assert list(worker.batches(1, [])) == []
        assert worker.running


def test_large_batches_through_small_pipes_do_not_lock_the_two_up(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    # one page per pipe: the requests in flight (AHEAD of 1,500 rows) outgrow the worker's input
    # while it waits for its first answer (4.7 MB) to be read
    monkeypatch.setattr(warps, "_PIPE_BYTES", 4096)
    x = rng.random((3000, 784)).astype(np.float32)
    numbered = numbered_rows(rng, 3000, AHEAD + 2, size=1500)
    batches: list[tuple[np.ndarray, np.ndarray]] = []
    with WarpWorker(x, RANGES, 5, -0.1) as worker:
        reader = threading.Thread(target=lambda: batches.extend(worker.batches(0, numbered)), daemon=True)
        reader.start()
        reader.join(timeout=60)
        locked = reader.is_alive()
        if locked and worker.pid is not None:
            os.kill(worker.pid, signal.SIGKILL)  # frees the training side, which then warps the rest itself
            reader.join()
        assert not locked, "the training process and the worker waited for each other"
        assert worker.running
    for (_, got), want in zip(batches, expected(x, 0, numbered), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_batch_the_worker_cannot_warp_raises_here_and_the_rest_are_right(rng: np.random.Generator) -> None:
    x = rng.random((100, 1, 28, 28)).astype(np.float32)
    good = numbered_rows(rng, 100, 2)
    with WarpWorker(x, RANGES, 5, -0.1) as worker:
        with pytest.raises(IndexError):  # what warping here raises, not a message from the worker
            list(worker.batches(0, [*good, (2, np.array([3, 100]))]))
        assert worker.running  # nothing was left unread
        with pytest.raises(IndexError):
            list(worker.batches(0, [good[0], (2, np.array([3, 100])), good[1]]))
        assert not worker.running  # its answer to the batch after would be read as the next one's: stopped
        assert [batch.tolist() for _, batch in worker.batches(0, good)] == [batch.tolist() for batch in expected(x, 0, good)]


def test_a_worker_that_dies_leaves_the_batches_unchanged(rng: np.random.Generator) -> None:
    x = rng.random((200, 1, 32, 32)).astype(np.float32)
    numbered = numbered_rows(rng, 200, 2 * AHEAD + 2)
    with WarpWorker(x, RANGES, 5, -0.1) as worker:
        batches = worker.batches(2, numbered)
        first = [next(batches)[1] for _ in range(3)]
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        rest = [x for _, x in batches]
        assert not worker.running
    for got, want in zip(first + rest, expected(x, 2, numbered), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_ctrl_c_in_the_middle_of_an_answer_stops_the_worker_and_the_rest_are_right(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = rng.random((100, 1, 28, 28)).astype(np.float32)
    numbered = numbered_rows(rng, 100, 3)
    real_read = warps._read_exactly
    with WarpWorker(x, RANGES, 5, -0.1) as worker:
        def interrupted_read(stream: object, buffer: memoryview) -> bool:
            monkeypatch.setattr(warps, "_read_exactly", real_read)
            real_read(stream, buffer[:1])  # type: ignore[arg-type]
            raise KeyboardInterrupt  # its status byte read, the batch not

        monkeypatch.setattr(warps, "_read_exactly", interrupted_read)
        with pytest.raises(KeyboardInterrupt):
            list(worker.batches(0, numbered[-1:]))  # the last request: none is left unanswered
        assert not worker.running  # the rest of the answer would be read as the next one's
        batches = list(worker.batches(0, numbered))
    for (_, got), want in zip(batches, expected(x, 0, numbered), strict=True):
        np.testing.assert_array_equal(got, want)


def test_without_a_worker_process_the_batches_are_warped_here(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_process)  # (the module warps starts its worker with)
    x = rng.random((50, 784)).astype(np.float32)
    numbered = numbered_rows(rng, 50, 2)
    with WarpWorker(x, RANGES, np.int64(5), np.float32(-0.1)) as worker:  # type: ignore[arg-type]
        assert not worker.running
        batches = list(worker.batches(0, numbered))
    for (_, got), want in zip(batches, expected(x, 0, numbered), strict=True):
        np.testing.assert_array_equal(got, want)


def test_numpy_numbers_for_the_seed_and_background_reach_the_worker(rng: np.random.Generator) -> None:
    x = rng.random((50, 1, 28, 28)).astype(np.float32)
    numbered = numbered_rows(rng, 50, 2)
    with WarpWorker(x, RANGES, np.int64(5), np.float32(-0.1)) as worker:  # type: ignore[arg-type]
        batches = list(worker.batches(0, numbered))
        assert worker.running and worker.answered == 2
    for (_, got), want in zip(batches, expected(x, 0, numbered), strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_worker_ignores_ctrl_c_on_the_terminal_and_ends_with_the_run(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        import numpy as np
        from lenet_fn.augment import DistortionRanges
        from lenet_fn.warps import WarpWorker
        with WarpWorker(np.zeros((10, 1, 28, 28), np.float32), DistortionRanges(), 0, 0.0) as worker:
            print(worker.pid, os.getsid(worker.pid), os.getsid(0), flush=True)
            time.sleep(60)
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        pid, worker_session, run_session = map(int, run.stdout.readline().split())
        assert worker_session != run_session  # a Ctrl-C on the terminal goes to the run's group only
        run.kill()  # no chance to stop the worker: it ends when its input closes
        run.wait()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        run.kill()
        run.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_ctrl_c_on_the_terminal_stops_a_run_and_its_worker_with_one_line(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group: here a real SIGINT to the group
    of ``python -m lenet_fn.train`` while its worker warps (500 steps: the run has one)."""
    command = [sys.executable, "-m", "lenet_fn.train", "--limit", "16000", "--epochs", "2", "--threads", "2", "--out", str(tmp_path / "run")]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=environment)
    try:
        assert run.stdout is not None
        while not (line := run.stdout.readline()).startswith("epoch"):
            assert line, "the run ended before its first epoch"
        workers = _children_running(run.pid, "lenet_fn.warps")
        assert workers, "the run has no worker"
        time.sleep(1)  # into the second epoch's 500 steps
        os.killpg(run.pid, signal.SIGINT)  # while the worker warps its batches
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 130, err
    assert err.lstrip().startswith("stopped by Ctrl-C at epoch 2") and "Traceback" not in err, err
    assert not any(_alive(pid) for pid in workers)


def _children_running(parent: int, module: str) -> list[int]:
    """The processes whose parent is ``parent`` and whose command line names ``module``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and module.encode() in command:
            found.append(int(entry.name))
    return found
