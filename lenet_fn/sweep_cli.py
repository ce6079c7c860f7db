"""The command line of ``python -m lenet_fn.sweep``: the sweep's own flags, the train command's flags
with lists for the axes (``lenet_fn.sweep_grid``), then ``sweep_runner.run_sweep`` and the results
table on stdout.

Exit statuses: 0 every run complete, 1 some run failed or was lost (the others are complete), 2
bad input (one line on stderr, never a traceback), 130 and 143 for Ctrl-C and SIGTERM (the
running runs saved: the same command continues them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lenet_fn.cli import UsageError, exit_status, signal_name
from lenet_fn.data import DatasetError
from lenet_fn.plots import PLOT_HINT, matplotlib_available
from lenet_fn.sweep_grid import SWEEP_THREADS, OneLineParser, SweepRun, plan_sweep
from lenet_fn.sweep_results import format_table
from lenet_fn.sweep_runner import SweepResult, run_sweep, survey
from lenet_fn.sweep_task import RunRefused, SweepInterrupted, run_name

DEFAULT_OUT = Path("runs") / "sweep"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m lenet_fn.sweep",
        allow_abbrev=False,  # --schedule (a train flag) is not --scheduler
        description="Train every combination of settings for every seed, on local processes or a Dask cluster, then print the "
        "mean, standard deviation, minimum and maximum over the seeds of each setting's final and best error, best epoch and wall "
        "time, and write them to results.csv, results.json and results.png in --out.",
        epilog="Every other flag is a flag of python -m lenet_fn.train (its --help lists them), written out in full, with a "
        "comma-separated list of values for an axis to sweep: --lr 0.001,0.003 --batch-size 16,32. The seed is --seeds here; "
        f"--threads is {SWEEP_THREADS} unless given. A run finished before is not run again; one stopped part way resumes.",
    )
    parser.add_argument("--seeds", metavar="SEEDS", help="seeds of every setting: 0-2, 0,3,5 or 0-2,7 (default: the file's, else 0)")
    parser.add_argument("--file", type=Path, metavar="PATH", help="a TOML or JSON file of settings ([[settings]] tables of train flags; "
                        "a list is an axis), sharing the command line's train flags")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=f"the sweep's directory: a directory per run, "
                        f"named by its settings, and the results (default: {DEFAULT_OUT})")  # fmt: skip
    parser.add_argument("--dataset", metavar="PATH", help="directory with the four MNIST files, as every process that trains sees it "
                        "(default: the repository's data/mnist, else the download cache)")  # fmt: skip
    parser.add_argument("--processes", type=int, metavar="N", help="local runs at a time (default: one per core)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="train on the Dask cluster whose scheduler is at ADDRESS "
                        "(tcp://HOST:8786) instead of local processes: needs the cluster extra")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the runs, each with where it stands and its train command, and stop")
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.processes is not None and args.processes < 1:
        raise UsageError(f"--processes: expected an integer >= 1, got {args.processes}")
    if args.processes is not None and args.scheduler is not None:
        raise UsageError("--processes: sets local processes; a cluster's workers are set where they start (dask worker --nworkers N)")


def _print_plan(runs: Sequence[SweepRun], out: Path, stdout: IO[str]) -> None:
    for run, (_, stands) in zip(runs, survey(runs, out)):
        print(f"{out / run_name(run.config)}  {stands}  {run.train_command}", file=stdout)


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.sweep``; returns the exit status (module docstring)."""
    try:
        args, flags = _parser().parse_known_args(argv)
        _check(args)
        runs = plan_sweep(flags, seeds=args.seeds, settings_file=args.file)
        if args.dry_run:
            _print_plan(runs, args.out, stdout)
            return 0
        result = run_sweep(runs, args.out, dataset=args.dataset, processes=args.processes, scheduler=args.scheduler, progress=stderr)
    except (UsageError, RunRefused, DatasetError) as error:
        print(f"error: {error}", file=stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write {error.filename}: {error.strerror}", file=stderr)
        return 2
    except SweepInterrupted as stop:
        saved = sum(outcome.status == "stopped" for outcome in stop.outcomes)
        print(f"\nstopped by {signal_name(stop.interrupt)}: {saved} run(s) saved part way; the same command continues them", file=stderr)
        return exit_status(stop.interrupt)
    return _report(result, stdout, stderr)


def _report(result: SweepResult, stdout: IO[str], stderr: IO[str]) -> int:
    """Prints the table and the files, and any refused run's error; returns the exit status."""
    refused = [outcome for outcome in result.outcomes if outcome.status == "refused"]
    for outcome in refused:
        print(f"error: run {outcome.name}: {outcome.message}", file=stderr)
    if result.summaries:
        print(format_table(result.summaries), file=stdout)
    complete = sum(outcome.complete for outcome in result.outcomes)
    written = f"results in {', '.join(str(path) for path in result.files)}" if result.files else "no results"
    print(f"{complete} of {len(result.outcomes)} runs complete; {written}", file=stdout)
    if result.summaries and not matplotlib_available():
        print(f"no results.png: {PLOT_HINT}", file=stdout)
    if refused:
        return 2
    return 0 if complete == len(result.outcomes) else 1
