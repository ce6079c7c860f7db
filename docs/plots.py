"""Draws the experiments pages' plots from the data kept in ``docs/data/``.

    python docs/plots.py [--out docs/images]

- ``<set>_test_error.png`` for every set of runs ``docs/data/runs/<set>_s<seed>/metrics.json``:
  the test error per epoch of each seed (thin) and their mean (bold);
- ``speed.png`` from ``docs/data/speed.json``: the benchmark's ranges as bars.

Needs the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as pyplot  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def run_sets(runs: Path) -> dict[str, list[list[float]]]:
    """The test error per epoch (in %) of every run, grouped by set (``default_s0`` is in ``default``)."""
    sets: dict[str, list[list[float]]] = defaultdict(list)
    for metrics in sorted(runs.glob("*_s*/metrics.json")):
        epochs = json.loads(metrics.read_text())["epochs"]
        sets[metrics.parent.name.rsplit("_s", 1)[0]].append([100 * epoch["test_error"] for epoch in epochs])
    return dict(sets)


def plot_seeds(name: str, errors: list[list[float]], path: Path) -> Path:
    """Each seed's test error per epoch, thin, and the mean over the seeds, bold."""
    figure, axes = pyplot.subplots(figsize=(7, 4))
    epochs = range(1, len(errors[0]) + 1)
    for seed, curve in enumerate(errors):
        axes.plot(range(1, len(curve) + 1), curve, linewidth=0.8, alpha=0.6, label=f"seed {seed}")
    mean = [sum(values) / len(values) for values in zip(*errors)]
    axes.plot(epochs, mean, linewidth=2.5, color="black", label=f"mean (last epoch {mean[-1]:.2f}%)")
    axes.set(xlabel="epoch", ylabel="test error (%)", title=f"{name}: test error per epoch", ylim=(0.5, max(mean[1], 2.0)))
    axes.set_xticks(range(2, len(mean) + 1, 2))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def plot_speed(speed: dict[str, object], path: Path) -> Path:
    """The benchmark's ranges (images/s) as horizontal bars, training and evaluation side by side."""
    groups = [key for key in ("training step", "evaluation") if key in speed]
    figure, all_axes = pyplot.subplots(1, len(groups), figsize=(11, 3.5))
    for axes, group in zip(all_axes, groups):
        entries: dict[str, list[float]] = speed[group]  # type: ignore[assignment]
        names = list(entries)[::-1]
        low = [entries[name][0] for name in names]
        width = [entries[name][1] - entries[name][0] for name in names]
        axes.barh(names, low, color="lightgray")
        axes.barh(names, width, left=low, color="steelblue", label="range over the runs")
        axes.set(title=f"LeNet-5 {group}, batch 256", xlabel=str(speed.get("unit", "")))
        axes.grid(axis="x", alpha=0.3)
    all_axes[0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description="Draw the experiments pages' plots from docs/data.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images", help="where the PNGs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, errors in run_sets(DATA / "runs").items():
        print(f"wrote {plot_seeds(name, errors, args.out / f'{name}_test_error.png')}")
    print(f"wrote {plot_speed(json.loads((DATA / 'speed.json').read_text()), args.out / 'speed.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
