"""The runs of a sweep in local processes: one fresh process per run (``spawn``), at most
``processes`` at a time, each run training on its own threads (one by default, with one BLAS
thread: ``parallel.Workers``).

Ctrl-C or SIGTERM stops the sweep: every running process is sent SIGTERM, saves its run's
``last.npz`` at the last complete step (as the train command does), and reports; the same sweep
run again continues those runs bit for bit. The processes ignore a terminal's Ctrl-C themselves,
so that each is stopped once, by the sweep.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO

from lenet_fn.cli import raise_terminated
from lenet_fn.data import default_dataset_dir, has_mnist, load_or_download_mnist
from lenet_fn.rundir import LAST
from lenet_fn.runtime import reuse_freed_memory
from lenet_fn.sweep_grid import SweepRun
from lenet_fn.sweep_task import RunOutcome, SweepInterrupted, execute_run, run_name

Connection = multiprocessing.connection.Connection


def _train_in_child(run: SweepRun, sweep_dir: str, dataset: str | None, sender: Connection) -> None:
    """A child process's job: one run, its outcome sent back on ``sender``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep stops its processes itself (SIGTERM)
    signal.signal(signal.SIGTERM, raise_terminated)
    reuse_freed_memory()
    where = f"process {os.getpid()}"
    try:
        outcome = execute_run(run.config, sweep_dir, dataset, progress=sys.stderr, where=where)
    except KeyboardInterrupt:  # a SIGTERM outside the training loop (as the data loaded, or held while files were written)
        saved = (Path(sweep_dir) / run_name(run.config) / LAST).exists()
        message = "stopped; its last.npz saved" if saved else "stopped before its first checkpoint; the sweep run again starts it"
        outcome = RunOutcome(run_name(run.config), run.config, "stopped", message=message, where=where)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sender.send(outcome)
    sender.close()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


class _Child:
    """One run's process and the end of the pipe its outcome comes back on."""

    def __init__(self, context: multiprocessing.context.SpawnContext, run: SweepRun, sweep_dir: Path, dataset: str | None) -> None:
        self.run = run
        self.receiver, sender = context.Pipe(duplex=False)
        self.process: BaseProcess = context.Process(target=_train_in_child, args=(run, str(sweep_dir), dataset, sender),
                                                    name=f"lenet_fn sweep {run_name(run.config)}", daemon=True)  # fmt: skip
        if threading.current_thread() is not threading.main_thread():
            self.process.start()
        else:  # the child inherits the ignored SIGINT: a Ctrl-C while it imports is not its traceback
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.process.start()
            finally:
                signal.signal(signal.SIGINT, previous)
        sender.close()  # the child holds the other copy: the pipe ends when the child does

    def outcome(self) -> RunOutcome:
        """The run's outcome (``lost`` when its process died without sending one)."""
        try:
            outcome: RunOutcome = self.receiver.recv()
        except (EOFError, OSError):
            self.process.join()
            name = run_name(self.run.config)
            outcome = RunOutcome(name, self.run.config, "lost", message=f"its process ended with {_exit_text(self.process.exitcode)} "
                                 "before it reported; run the sweep again to resume it", where=f"process {self.process.pid}")  # fmt: skip
        self.process.join()
        self.receiver.close()
        return outcome


class LocalProcesses:
    """Local processes for a sweep's runs, at most ``processes`` at a time (a context manager).

    Args:
        processes: how many runs train at once.
        dataset: the MNIST directory (None: the default one), looked for here so that a missing
            one is reported before any process starts (and downloaded once, not by each).
        progress: where a download reports.

    Raises:
        DatasetError: the dataset cannot be read.
    """

    def __init__(self, processes: int, dataset: str | None, progress: IO[str] | None) -> None:
        self.processes, self.dataset = processes, dataset
        if not has_mnist(default_dataset_dir() if dataset is None else Path(dataset)):
            load_or_download_mnist(dataset, progress=progress)  # downloads it, or says in one line why it cannot be read

    def __enter__(self) -> LocalProcesses:
        return self

    def __exit__(self, *exception: object) -> None:
        pass

    @property
    def description(self) -> str:
        return f"on {self.processes} local process{'es' if self.processes > 1 else ''}"

    def run(self, runs: Sequence[SweepRun], sweep_dir: Path, dataset: str | None, report: Callable[[RunOutcome], None]) -> list[RunOutcome]:
        """Trains ``runs``, one fresh process each.

        Args:
            runs: the runs to train (or resume).
            sweep_dir: the sweep's directory.
            dataset: the MNIST directory (None: the default one).
            report: called with each run's outcome as it comes.

        Returns:
            The outcomes, in the order they came. A refused run (bad input) stops the sweep from
            starting more; the running ones finish.

        Raises:
            SweepInterrupted: Ctrl-C or SIGTERM, after the running processes saved their runs.
        """
        context = multiprocessing.get_context("spawn")
        waiting, running, outcomes = list(runs), dict[Connection, _Child](), list[RunOutcome]()
        try:
            while waiting or running:
                while waiting and len(running) < self.processes:
                    child = _Child(context, waiting.pop(0), sweep_dir, dataset)
                    running[child.receiver] = child
                ready = multiprocessing.connection.wait(list(running))
                for child in [child for receiver, child in running.items() if receiver in ready]:
                    del running[child.receiver]
                    outcomes.append(child.outcome())
                    report(outcomes[-1])
                    if outcomes[-1].status == "refused":
                        waiting.clear()
        except KeyboardInterrupt as interrupt:
            raise SweepInterrupted(outcomes + _stop(list(running.values()), report), interrupt) from None
        return outcomes


def _stop(children: list[_Child], report: Callable[[RunOutcome], None]) -> list[RunOutcome]:
    """Sends SIGTERM to every running child and collects what they report once they saved."""
    for child in children:
        if child.process.is_alive():
            child.process.terminate()
    stopped = []
    for child in children:
        outcome = child.outcome()
        stopped.append(outcome)
        report(outcome)
    return stopped
