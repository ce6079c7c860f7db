"""A sweep's results: per setting, the mean, standard deviation, minimum and maximum over its seeds
of the final and best test (or held-out) error, the best epoch and the wall time; written as
``results.csv`` (one row per setting) and ``results.json`` (the settings and every run), and
printed as a Markdown table.

A run's wall time is the sum of its epochs' training and evaluation seconds (what its
``metrics.json`` records, across any resumes; loading the data is not counted). The standard
deviation is the sample one (n - 1), left empty for a single seed. Only complete runs count.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from lenet_fn.atomic import write_atomically
from lenet_fn.rundir import best_epoch
from lenet_fn.sweep_grid import SweepRun, describe_config
from lenet_fn.sweep_task import RunOutcome
from lenet_fn.version import __version__

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
MEASURES = ("final_error", "best_error", "best_epoch", "seconds")
"""The figures summarised per setting (errors as fractions, as in ``metrics.json``)."""


@attrs.frozen
class Spread:
    """Mean, standard deviation (None for one value), minimum and maximum of some values."""

    mean: float
    std: float | None
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        array = np.asarray(values, dtype=np.float64)
        std = float(np.std(array, ddof=1)) if array.size > 1 else None
        return cls(mean=float(np.mean(array)), std=std, min=float(np.min(array)), max=float(np.max(array)))


@attrs.frozen
class RunFigures:
    """The figures of one complete run."""

    name: str
    setting: str
    seed: int
    evaluated: str
    epochs: int
    final_error: float
    best_error: float
    best_epoch: int
    seconds: float
    train_command: str

    @classmethod
    def of(cls, run: SweepRun, outcome: RunOutcome) -> RunFigures:
        best = best_epoch(outcome.history)
        return cls(
            name=outcome.name, setting=run.setting, seed=run.config.seed,
            evaluated=run.config.evaluated_on, epochs=len(outcome.history),
            final_error=outcome.history[-1].test_error, best_error=best.test_error, best_epoch=best.epoch,
            seconds=sum(entry.seconds + entry.eval_seconds for entry in outcome.history), train_command=run.train_command,
        )  # fmt: skip


@attrs.frozen
class SettingSummary:
    """One setting's figures over its complete runs.

    Attributes:
        setting: the flags that set it apart (``SweepRun.setting``).
        config: its settings, without the seed.
        planned: how many runs (seeds) the sweep has of it.
        runs: the figures of its complete runs.
        spreads: ``Spread`` of each of ``MEASURES`` over them.
    """

    setting: str
    config: dict[str, Any]
    planned: int
    runs: tuple[RunFigures, ...]
    spreads: dict[str, Spread]

    @property
    def evaluated(self) -> str:
        """``test`` or ``held-out``: what its errors were measured on."""
        return "test" if self.config.get("holdout") is None else "held-out"


def summarize(runs: Sequence[SweepRun], outcomes: Sequence[RunOutcome]) -> list[SettingSummary]:
    """The settings' figures, in the sweep's order, from each run's outcome (``outcomes[i]`` is
    ``runs[i]``'s); a setting with no complete run has no summary."""
    grouped: dict[str, list[tuple[SweepRun, RunOutcome]]] = {}
    for run, outcome in zip(runs, outcomes):
        grouped.setdefault(run.setting, []).append((run, outcome))
    summaries = []
    for setting, members in grouped.items():
        figures = tuple(RunFigures.of(run, outcome) for run, outcome in members if outcome.complete)
        if not figures:
            continue
        spreads = {measure: Spread.of([getattr(entry, measure) for entry in figures]) for measure in MEASURES}
        summaries.append(SettingSummary(setting, describe_config(members[0][0].config), len(members), figures, spreads))
    return summaries


def _csv_text(summaries: Sequence[SettingSummary]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["setting", "evaluated", "runs", "planned", "seeds", *(f"{measure}_{part}" for measure in MEASURES for part in ("mean", "std", "min", "max"))])
    for summary in summaries:
        numbers = [getattr(summary.spreads[measure], part) for measure in MEASURES for part in ("mean", "std", "min", "max")]
        seeds = " ".join(str(entry.seed) for entry in summary.runs)
        writer.writerow([summary.setting, summary.evaluated, len(summary.runs), summary.planned, seeds, *("" if value is None else repr(value) for value in numbers)])
    return stream.getvalue()


def results_document(summaries: Sequence[SettingSummary], outcomes: Sequence[RunOutcome]) -> dict[str, Any]:
    """``results.json``: the version, each setting's spreads and runs, and every run's outcome."""
    return {
        "version": __version__,
        "settings": [
            {"setting": summary.setting, "evaluated": summary.evaluated, "config": summary.config, "planned": summary.planned,
             **{measure: attrs.asdict(summary.spreads[measure]) for measure in MEASURES},
             "runs": [attrs.asdict(entry) for entry in summary.runs]}
            for summary in summaries
        ],
        "runs": [{"name": outcome.name, "seed": outcome.config.seed, "status": outcome.status, "message": outcome.message} for outcome in outcomes],
    }  # fmt: skip


def write_results(directory: Path, summaries: Sequence[SettingSummary], outcomes: Sequence[RunOutcome]) -> list[Path]:
    """Writes ``results.csv`` and ``results.json`` into ``directory`` (atomically); returns them."""
    document = json.dumps(results_document(summaries, outcomes), indent=2, allow_nan=False)
    return [_write_text(directory / RESULTS_CSV, _csv_text(summaries)), _write_text(directory / RESULTS_JSON, document + "\n")]


def _write_text(path: Path, text: str) -> Path:
    write_atomically(path, lambda stream: stream.write(text.encode()))
    return path


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``5 min 48 s`` or ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _percent_cell(spread: Spread) -> str:
    if spread.std is None:
        return f"{100 * spread.mean:.2f}%"
    return f"{100 * spread.mean:.2f}% ± {100 * spread.std:.2f} ({100 * spread.min:.2f}-{100 * spread.max:.2f})"


def _plain_cell(spread: Spread, shown: str) -> str:
    text = shown.format(spread.mean)
    return text if spread.min == spread.max else f"{text} ({shown.format(spread.min)}-{shown.format(spread.max)})"


def format_table(summaries: Sequence[SettingSummary]) -> str:
    """The results as a Markdown table: per setting the errors' mean ± standard deviation (min-max),
    in percent and percentage points, the best epoch and the wall time per run."""
    kinds = {summary.evaluated for summary in summaries}
    measured = kinds.pop() if len(kinds) == 1 else "test or held-out"
    lines = [
        f"| setting | seeds | final {measured} error | best {measured} error | best epoch | wall time per run |",
        "|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        seconds = summary.spreads["seconds"]
        low, high = format_duration(seconds.min), format_duration(seconds.max)
        wall = format_duration(seconds.mean) + ("" if low == high else f" ({low} to {high})")
        seeds = ", ".join(str(entry.seed) for entry in summary.runs) + ("" if len(summary.runs) == summary.planned else f" (of {summary.planned})")
        lines.append(
            f"| {summary.setting}{'' if summary.evaluated == measured else f' ({summary.evaluated})'} | {seeds} | {_percent_cell(summary.spreads['final_error'])} "
            f"| {_percent_cell(summary.spreads['best_error'])} | {_plain_cell(summary.spreads['best_epoch'], '{:.3g}')} | {wall} |"
        )
    return "\n".join(lines)

