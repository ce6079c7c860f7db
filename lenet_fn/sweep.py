"""Sweeps: ``python -m lenet_fn.sweep``, and the Python API beneath it.

``python -m lenet_fn.sweep --model mlp --lr 0.01,0.05 --seeds 0-2`` trains every combination of
the settings given (the train command's flags, a comma-separated list for each axis) for every
seed, one run per core by default or on a Dask cluster with ``--scheduler tcp://HOST:PORT``, then
prints per setting the mean, standard deviation, minimum and maximum over the seeds of the final
and best error, best epoch and wall time, and writes them to ``results.csv``, ``results.json`` and
``results.png``. Each run's directory is named by a hash of its settings and the library's
version: a sweep run again skips the runs it finished and resumes the ones it stopped. In Python::

    from pathlib import Path
    from lenet_fn.sweep import format_table, plan_sweep, run_sweep
    runs = plan_sweep(["--model", "mlp", "--lr", "0.01,0.05", "--epochs", "1"], seeds="0-1")
    result = run_sweep(runs, Path("runs/my-sweep"))
    print(format_table(result.summaries))

The pieces live in modules of their own: ``lenet_fn.sweep_grid`` (the runs), ``sweep_task`` (one
run, in any process), ``sweep_local`` and ``sweep_dask`` (where they train), ``sweep_runner`` (a
whole sweep), ``sweep_results`` and ``sweep_plot`` (its results), ``sweep_cli`` (the command).
"""

from __future__ import annotations

from lenet_fn.cli import run_command
from lenet_fn.sweep_cli import main
from lenet_fn.sweep_grid import SweepRun, parse_seeds, plan_sweep
from lenet_fn.sweep_results import SettingSummary, Spread, format_table, summarize
from lenet_fn.sweep_runner import SweepResult, run_sweep
from lenet_fn.sweep_task import RunOutcome, RunRefused, SweepInterrupted, execute_run, run_name

__all__ = [
    "RunOutcome",
    "RunRefused",
    "SettingSummary",
    "Spread",
    "SweepInterrupted",
    "SweepResult",
    "SweepRun",
    "execute_run",
    "format_table",
    "main",
    "parse_seeds",
    "plan_sweep",
    "run_name",
    "run_sweep",
    "summarize",
]

if __name__ == "__main__":
    run_command(main)
