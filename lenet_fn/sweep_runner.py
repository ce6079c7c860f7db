"""A sweep from its runs to its results: which runs are done already, the others trained in local
processes (``sweep_local``) or on a Dask cluster (``sweep_dask``), then the results table, files
and figure (``sweep_results``, ``sweep_plot``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import attrs

from lenet_fn.parallel import default_threads
from lenet_fn.plots import matplotlib_available
from lenet_fn.rundir import best_epoch
from lenet_fn.sweep_dask import DaskCluster, check_scheduler
from lenet_fn.sweep_grid import SweepRun, seeds_of, settings_of
from lenet_fn.sweep_local import LocalProcesses
from lenet_fn.sweep_plot import RESULTS_PLOT, plot_sweep
from lenet_fn.sweep_results import SettingSummary, summarize, write_results
from lenet_fn.sweep_task import RunOutcome, SweepInterrupted, look_up_run, run_name


@attrs.frozen
class SweepResult:
    """What a sweep did.

    Attributes:
        runs: its runs.
        outcomes: ``outcomes[i]`` is what became of ``runs[i]``.
        summaries: the figures of each setting with a complete run.
        files: the results written (``results.csv``, ``results.json``, ``results.png``; none
            when no run is complete).
    """

    runs: tuple[SweepRun, ...]
    outcomes: tuple[RunOutcome, ...]
    summaries: tuple[SettingSummary, ...]
    files: tuple[Path, ...]


def survey(runs: Sequence[SweepRun], out: Path) -> list[tuple[RunOutcome | None, str]]:
    """Each run's outcome when it is finished already (else None) and where it stands; a
    ``RunRefused`` for the first run whose directory holds another run."""
    return [look_up_run(out, run.config) for run in runs]


def default_processes(runs: Sequence[SweepRun]) -> int:
    """One process per core, or fewer when the runs have more threads than one each."""
    return max(1, default_threads() // max((run.config.threads for run in runs), default=1))


def _summary_text(outcome: RunOutcome) -> str:
    if not outcome.complete:
        return f"{outcome.status}: {outcome.message}"
    last, best = outcome.history[-1], best_epoch(outcome.history)
    measured = outcome.config.evaluated_on
    seconds = sum(entry.seconds + entry.eval_seconds for entry in outcome.history)
    return (f"{outcome.status}: {measured} error {100 * last.test_error:.2f}% after {last.epoch} epoch(s), best {100 * best.test_error:.2f}% "
            f"(epoch {best.epoch}), {seconds:.1f} s in {outcome.where}")  # fmt: skip


def _reporter(runs: Sequence[SweepRun], total: int, progress: IO[str] | None) -> Callable[[RunOutcome], None]:
    """Writes one line per outcome on ``progress``: ``[3/8] name (setting, seed 1): trained: ...``;
    a refused run is left to the caller's error line."""
    settings = {run_name(run.config): run for run in runs}
    reported: list[RunOutcome] = []

    def report(outcome: RunOutcome) -> None:
        reported.append(outcome)
        run = settings[outcome.name] if outcome.name in settings else None
        if progress is None or outcome.status == "refused" or run is None:
            return
        print(f"[{len(reported)}/{total}] {outcome.name} ({run.setting}, seed {run.config.seed}): {_summary_text(outcome)}", file=progress)
        progress.flush()

    return report


def _plan_text(runs: Sequence[SweepRun], states: Sequence[tuple[RunOutcome | None, str]], out: Path, where: str) -> str:
    finished = sum(done is not None for done, _ in states)
    resumed = sum(stand.startswith("resumes") for _, stand in states)
    new = len(runs) - finished - resumed
    return (f"sweep: {_count(len(runs), 'run')} ({_count(len(settings_of(runs)), 'setting')} x {_count(len(seeds_of(runs)), 'seed')}) "
            f"in {out}: {finished} finished before, {resumed} to resume, {new} to start" + (f", {where}" if where else ""))  # fmt: skip


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _in_order(runs: Sequence[SweepRun], states: Sequence[tuple[RunOutcome | None, str]], ran: Sequence[RunOutcome]) -> tuple[RunOutcome, ...]:
    """One outcome per run, in the runs' order (``not run`` for those the sweep did not reach)."""
    by_name = {outcome.name: outcome for outcome in ran}
    return tuple(
        done or by_name.get(run_name(run.config)) or RunOutcome(run_name(run.config), run.config, "not run", message="the sweep stopped before it")
        for run, (done, _) in zip(runs, states)
    )  # fmt: skip


def executor(scheduler: str | None, processes: int, dataset: str | None, progress: IO[str] | None) -> DaskCluster | LocalProcesses:
    """Where the runs train: the Dask cluster at ``scheduler`` (connected), or local processes
    (the dataset checked); bad input raised here, before anything starts."""
    if scheduler is not None:  # Dask's distributed (the cluster extra) is imported there, and only then
        return DaskCluster(scheduler)
    return LocalProcesses(processes, dataset, progress)


def run_sweep(runs: Sequence[SweepRun], out: Path, *, dataset: str | None = None, processes: int | None = None,
              scheduler: str | None = None, progress: IO[str] | None = sys.stderr) -> SweepResult:  # fmt: skip
    """Brings every run of a sweep to its end, then writes its results.

    Args:
        runs: the sweep's runs (``sweep_grid.plan_sweep``).
        out: the sweep's directory: one directory per run, named by ``run_name``, and the results.
        dataset: the MNIST directory as the processes that train see it (None: the default one).
        processes: local runs at a time (default: one per core); ignored with ``scheduler``.
        scheduler: a Dask scheduler's address (``tcp://HOST:PORT``) to train on instead.
        progress: where the plan and each run's outcome (and, locally, each epoch) are reported.

    Returns:
        The outcomes and the results.

    Raises:
        RunRefused: a run's directory holds another run (nothing is trained).
        DatasetError: no dataset (local processes).
        UsageError: no scheduler at ``scheduler``, or no ``cluster`` extra.
        SweepInterrupted: Ctrl-C or SIGTERM; the running runs saved their ``last.npz``.
    """
    out, runs = Path(out), tuple(runs)
    if scheduler is not None:
        check_scheduler(scheduler)
    states = survey(runs, out)
    todo = [run for run, (done, _) in zip(runs, states) if done is None]
    ran: list[RunOutcome] = []
    if not todo and progress is not None:
        print(_plan_text(runs, states, out, ""), file=progress)
    if todo:
        with executor(scheduler, processes or default_processes(todo), dataset, progress) as engine:
            if progress is not None:
                threads = max(run.config.threads for run in todo)
                print(_plan_text(runs, states, out, f"{engine.description}, {threads} thread{'s' if threads > 1 else ''} each"), file=progress)
            try:
                ran = engine.run(todo, out, dataset, _reporter(runs, len(todo), progress))
            except SweepInterrupted as stop:
                raise SweepInterrupted(list(_in_order(runs, states, stop.outcomes)), stop.interrupt) from None
    outcomes = _in_order(runs, states, ran)
    summaries = tuple(summarize(runs, outcomes))
    files = write_results(out, summaries, outcomes) if summaries else []
    if summaries and matplotlib_available():
        files.append(plot_sweep(summaries, outcomes, out / RESULTS_PLOT))
    return SweepResult(runs, outcomes, summaries, tuple(files))
