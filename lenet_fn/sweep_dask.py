"""The runs of a sweep on an existing Dask cluster (``--scheduler tcp://HOST:PORT``): one task per
run, ``sweep_task.execute_run`` on a worker, retried by Dask.

Dask's ``distributed`` package is the optional ``cluster`` extra and is imported here only when a
sweep is sent to a cluster. A worker that dies mid-run has its task run again elsewhere (Dask
reschedules the tasks of a lost worker, up to its ``allowed-failures``; a task that raises is
retried ``RETRIES`` times); the task resumes the run from its ``last.npz`` when the sweep's
directory is shared, and trains it from its start otherwise, with the same result.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lenet_fn.cli import UsageError
from lenet_fn.sweep_grid import SweepRun
from lenet_fn.sweep_task import RunOutcome, SweepInterrupted, execute_run, run_name

CONNECT_SECONDS = 5
"""How long the sweep waits for the scheduler to answer."""
RETRIES = 2
"""Dask's retries of a task that raised (a run's own failures are outcomes, not retried)."""
INSTALL_HINT = "python -m pip install 'lenet-fn[cluster]' (or: pip install 'dask[distributed]')"
_ADDRESS = re.compile(r"(?:[a-z]+://)?[^\s/]+:\d+")


def _distributed() -> Any:
    """Dask's ``distributed`` module (its Client is not annotated: used through ``Any``)."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise UsageError(f"--scheduler: needs Dask's distributed package, which is not installed here: {INSTALL_HINT}") from None


def check_scheduler(address: str) -> None:
    """A ``UsageError`` unless ``address`` looks like a scheduler's address and Dask's distributed
    package is installed (found without importing it)."""
    if not _ADDRESS.fullmatch(address):
        raise UsageError(f"--scheduler: expected a Dask scheduler's address such as tcp://HOST:8786, got {address!r}")
    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"--scheduler: needs Dask's distributed package, which is not installed here: {INSTALL_HINT}")


def connect(address: str) -> Any:
    """A Dask ``Client`` of the scheduler at ``address``; a ``UsageError`` naming the address when no
    scheduler answers within ``CONNECT_SECONDS``."""
    check_scheduler(address)
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UsageError(f"--scheduler {address}: no Dask scheduler answered within {CONNECT_SECONDS} s ({reason})") from None


def train_on_worker(run: SweepRun, sweep_dir: str, dataset: str | None, name: str) -> RunOutcome:
    """The task of one run: ``execute_run`` on the worker it lands on, its epoch lines in the worker's log."""
    worker = _distributed().get_worker()
    print(f"lenet_fn sweep: {name}: started on worker {worker.address}", file=sys.stderr, flush=True)
    outcome = execute_run(run.config, sweep_dir, dataset, name=name, progress=sys.stderr, where=f"worker {worker.address}")
    print(f"lenet_fn sweep: {name}: {outcome.status} on worker {worker.address}", file=sys.stderr, flush=True)
    return outcome


def _outcome(future: Any, run: SweepRun, distributed: Any) -> RunOutcome:
    """A finished task's outcome; a task that raised, or whose workers kept dying, as ``lost``."""
    try:
        outcome: RunOutcome = future.result()
        return outcome
    except distributed.KilledWorker as error:
        message = f"the cluster lost every worker that ran it ({' '.join(str(error).split())}); run the sweep again to resume it"
    except Exception as error:
        message = f"its task raised {type(error).__name__}: {error} (after {RETRIES} retries)"
    return RunOutcome(run_name(run.config), run.config, "lost", message=message, where="the cluster")


class DaskCluster:
    """The Dask cluster whose scheduler is at ``address``, connected (a context manager).

    Args:
        address: the scheduler's address, ``tcp://HOST:PORT``.

    Raises:
        UsageError: no scheduler answers at ``address``, or the ``cluster`` extra is not installed.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.client = connect(address)

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exception: object) -> None:
        self.client.close()

    @property
    def description(self) -> str:
        return f"on the Dask cluster at {self.address}"

    def run(self, runs: Sequence[SweepRun], sweep_dir: Path, dataset: str | None, report: Callable[[RunOutcome], None]) -> list[RunOutcome]:
        """Trains ``runs``, one task each.

        Args:
            runs: the runs to train (or resume).
            sweep_dir: the sweep's directory (made absolute here), a path every worker can write:
                shared, for a run to resume on another worker and for the sweep to find it done.
            dataset: the MNIST directory as every worker sees it (None: each worker's default).
            report: called with each run's outcome as it comes.

        Returns:
            The outcomes, in the order they came. A refused run (bad input: a worker without
            the dataset) cancels the tasks not yet done.

        Raises:
            SweepInterrupted: Ctrl-C or SIGTERM (the tasks are cancelled; a running one finishes).
        """
        distributed, outcomes = _distributed(), list[RunOutcome]()
        where = str(sweep_dir.resolve())  # the one directory every worker writes, not one per working directory
        sweep_key = hashlib.sha256(where.encode()).hexdigest()[:8]
        futures = {
            self.client.submit(train_on_worker, run, where, dataset, run_name(run.config), key=f"lenet_fn-sweep-{sweep_key}-{run_name(run.config)}",
                               retries=RETRIES, pure=False): run
            for run in runs
        }  # fmt: skip
        try:
            for future in distributed.as_completed(list(futures), loop=self.client.loop):
                outcomes.append(_outcome(future, futures[future], distributed))
                report(outcomes[-1])
                if outcomes[-1].status == "refused":
                    self.client.cancel(list(futures))
                    break
        except KeyboardInterrupt as interrupt:
            self.client.cancel(list(futures))
            raise SweepInterrupted(outcomes, interrupt) from None
        return outcomes
