"""The command line of ``python -m lenet_fn.train``: flags to a ``TrainConfig``, then ``fit`` with the
run's files written after every epoch (``lenet_fn.rundir``).

Bad flags, data or checkpoints end in one line on stderr and exit status 2; a diverging run, or
one that cannot write its files (a full disk), in exit status 1; Ctrl-C and SIGTERM save a
resumable ``last.npz`` and exit with 130 and 143.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import attrs
import numpy as np

from lenet_fn import rundir
from lenet_fn.augment import DistortionRanges
from lenet_fn.checkpoint import CheckpointError
from lenet_fn.cli import UsageError, exit_status, signal_name, signals_held
from lenet_fn.config import BUILTIN_MODELS, CUSTOM_DEFAULTS, DEFAULTS, OPTIMIZERS, WARMUP_FRACTION, TrainConfig, defaults_for
from lenet_fn.data import TRAIN_IMAGES, DatasetError, Mnist, count_batches, load_or_download_mnist
from lenet_fn.loop import all_finite, check_trainable, fit
from lenet_fn.models import get_model
from lenet_fn.optim import SCHEDULES, SDLM_MU
from lenet_fn.parallel import Workers, default_threads
from lenet_fn.params import tree_size
from lenet_fn.plots import PLOT_HINT, matplotlib_available
from lenet_fn.protocol import Model, is_import_path
from lenet_fn.runtime import reuse_freed_memory
from lenet_fn.rundir import RunFiles, best_epoch, describe_position
from lenet_fn.state import EpochMetrics, PreparedData, TrainingDiverged, TrainingInterrupted, TrainState, initial_state, prepare_data


def _parser() -> argparse.ArgumentParser:
    defaults = "; ".join(
        f"{name}: lr {d.lr:g}, batch {d.batch_size}, {d.schedule} schedule, warm-up {d.warmup} steps, momentum {d.momentum:g}, "
        f"weight decay {d.weight_decay:g}, distortions {'on' if d.distort else 'off'}"
        + (f", curvature every {d.sdlm_every} steps" if d.sdlm_every else "")
        for name, d in {**DEFAULTS, "your own model": CUSTOM_DEFAULTS}.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m lenet_fn.train",
        description="Train LeNet-5, a variant, or a model of your own on MNIST with momentum SGD or SDLM. Prints one line per epoch and "
        "writes best.npz, last.npz, metrics.json and error_rate.png to the run directory.",
        epilog=f"Defaults per model ({defaults}). Schedules multiply the learning rate per epoch: 'paper' = "
        "LeCun et al. 1998's steps (x1 for 2 epochs, x0.4 for 3, x0.2 for 3, x0.1 for 4, then x0.02); "
        "'cosine' = half a cosine from x1 to x0 over the run; 'constant' = x1.",
    )
    add_train_flags(parser)
    return parser


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Adds every flag of ``python -m lenet_fn.train`` to ``parser`` (``python -m lenet_fn.sweep``
    reads the settings of each of its runs with them)."""
    _add_run_flags(parser)
    _add_optimizer_flags(parser)
    _add_distortion_flags(parser)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """What to train on what, for how long, where the files go, and how it computes."""
    parser.add_argument("--dataset", type=Path, metavar="PATH",
                        help="directory with the four MNIST files (.gz or raw); default: the repository's data/mnist, "
                        "else a download to ~/.cache/lenet_fn/mnist ($LENET_FN_DATA overrides)")
    parser.add_argument("--model", metavar="MODEL", help=f"network to train: {', '.join(BUILTIN_MODELS)}, or the import path "
                        "package.module:NAME of a Model of your own (default: lenet5, the paper's)")
    parser.add_argument("--epochs", type=int, metavar="N", help="passes over the training set (default: 20)")
    parser.add_argument("--repeat", type=int, metavar="K", help="every training image appears K times per epoch, "
                        "each time warped afresh with --distort (the paper's 60,000 + 540,000 images per pass: 10; default 1)")
    parser.add_argument("--seed", type=int, help="seeds the initial weights and the batch order (default: 0)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<model>-<date>-<time>; "
                        "with --resume, the checkpoint's directory)")
    parser.add_argument("--resume", type=Path, metavar="CKPT", help="continue a run from its last.npz (its settings are kept; "
                        "--epochs may extend it)")
    parser.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only (quick tries)")
    parser.add_argument("--holdout", type=int, metavar="N", help="measure on the last N training images instead of the test set, "
                        "and train on the ones before them: to choose settings without the test set (10000: train on 50,000)")
    parser.add_argument("--threads", type=int, metavar="N", help=f"worker threads, each batch split into N parts (default: the cores, {default_threads()} here)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="floating-point type (default: float32)")


def _add_optimizer_flags(parser: argparse.ArgumentParser) -> None:
    """The optimiser and its settings (each defaults per model, see the epilog)."""
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, metavar="N", help="images per step")
    parser.add_argument("--lr", type=float, help="base learning rate")
    parser.add_argument("--schedule", choices=list(SCHEDULES), help="learning-rate schedule over the epochs")
    parser.add_argument("--warmup", type=int, metavar="STEPS", help="steps of linear learning-rate warm-up at the start")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), help="momentum SGD, or SDLM: per-parameter rates "
                        "lr / (mu + h_kk) from the Gauss-Newton curvature, re-estimated before every epoch "
                        "(LeCun et al. 1998) and every --sdlm-every steps, used as the steps of momentum SGD (by "
                        "default with momentum 0, the paper's steps); with sdlm, --lr is eta")
    parser.add_argument("--sdlm-mu", "--sdlm_mu", dest="sdlm_mu", type=float, metavar="MU", help=f"SDLM's damping (default {SDLM_MU})")
    parser.add_argument("--sdlm-samples", "--sdlm_samples", dest="sdlm_samples", type=int, metavar="N",
                        help="training images used to estimate the curvature (default 500)")
    parser.add_argument("--sdlm-every", "--sdlm_every", dest="sdlm_every", type=int, metavar="STEPS",
                        help="SDLM: re-estimate the curvature every STEPS steps as well, on the images about to be "
                        "trained on (0: once per epoch, the paper's; default: per model, below)")
    parser.add_argument("--momentum", type=float, help="momentum in [0, 1)")
    parser.add_argument("--weight-decay", "--weight_decay", dest="weight_decay", type=float, metavar="WD", help="L2 weight decay")


def _add_distortion_flags(parser: argparse.ArgumentParser) -> None:
    """The paper's affine warps of the training images."""
    parser.add_argument("--distort", action=argparse.BooleanOptionalAction, help="warp every training image by a random "
                        "affine map (translation, scaling, squeezing, horizontal shear), as in the paper (default: on for lenet5)")
    ranges = DistortionRanges()
    parser.add_argument("--translate", type=float, metavar="PIXELS", help=f"--distort: shift range per axis (default {ranges.translate:g})")
    parser.add_argument("--scale", type=float, metavar="FRACTION", help=f"--distort: zoom in 1 +- FRACTION (default {ranges.scale:g})")
    parser.add_argument("--squeeze", type=float, metavar="FRACTION", help=f"--distort: width x q, height / q, q in 1 +- FRACTION (default {ranges.squeeze:g})")
    parser.add_argument("--shear", type=float, metavar="FACTOR", help=f"--distort: horizontal shear in +-FACTOR (default {ranges.shear:g})")


_CONFIG_FLAGS = (
    "model", "repeat", "batch_size", "lr", "schedule", "warmup", "momentum", "weight_decay", "seed", "limit", "holdout", "threads", "dtype",
    "optimizer", "sdlm_mu", "sdlm_samples", "sdlm_every", "distort", "translate", "scale", "squeeze", "shear",
)  # fmt: skip


_DISTORTION_FLAGS = ("translate", "scale", "squeeze", "shear")
RESUME_CHANGES = ("lr", "warmup")
"""What a resumed run may change: the cures for a diverging run (noted, and kept in its files)."""


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The settings of a new run from the train command's parsed flags (``add_train_flags``): each
    flag not given takes its model's default, the threads the cores; a ``UsageError`` for bad ones."""
    model = "lenet5" if args.model is None else args.model
    optimizer = args.optimizer or "momentum"
    defaults = defaults_for(model, optimizer)
    values: dict[str, Any] = {
        "model": model,
        "epochs": 20 if args.epochs is None else args.epochs,
        "batch_size": defaults.batch_size,
        "lr": defaults.lr,
        "schedule": defaults.schedule,
        "momentum": defaults.momentum,
        "weight_decay": defaults.weight_decay,
        "warmup": defaults.warmup,
        "distort": defaults.distort,
        "sdlm_every": defaults.sdlm_every,
        "optimizer": optimizer,
        "threads": default_threads(),
    }
    values.update({flag: getattr(args, flag) for flag in _CONFIG_FLAGS if getattr(args, flag) is not None})
    try:
        config = TrainConfig(**values)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--{str(error).replace('_', '-')}") from None
    unused = [f"--{flag}" for flag in _DISTORTION_FLAGS if getattr(args, flag) is not None]
    if unused and not config.distort:
        off = "--no-distort" if args.distort is False else f"{model}'s default"
        raise UsageError(f"{unused[0]}: sets a range of the warps, and this run has none ({off}); add --distort to use it")
    if args.warmup is None:  # a quick try (--epochs 2 --limit 5000) should not spend itself warming up
        return attrs.evolve(config, warmup=min(config.warmup, int(WARMUP_FRACTION * _run_steps(config))))
    return config


def _run_steps(config: TrainConfig) -> int:
    """The steps of a run on MNIST's training images (or the first ``limit``, before any held out)."""
    available = TRAIN_IMAGES.shape[0] - (config.holdout or 0)
    count = min(config.limit or available, available)
    return config.epochs * count_batches(count * config.repeat, config.batch_size)


def _resumed_config(args: argparse.Namespace, config: TrainConfig, state: TrainState, stderr: IO[str]) -> TrainConfig:
    changes: dict[str, Any] = {}
    for flag in _CONFIG_FLAGS:
        given = getattr(args, flag)
        if given is None or given == getattr(config, flag):
            continue
        if flag not in RESUME_CHANGES:
            raise UsageError(
                f"--{flag.replace('_', '-')}: the resumed run used {getattr(config, flag)!r}, got {given!r} (a resumed run "
                f"keeps its settings so that it continues exactly; only {', '.join('--' + name for name in RESUME_CHANGES)} may change)"
            )
        print(f"note: --{flag} {given:g} replaces the run's {getattr(config, flag):g} from here on (recorded in its files)", file=stderr)
        changes[flag] = given
    if args.epochs is not None:
        if args.epochs < max(state.epoch, 1):
            raise UsageError(f"--epochs: expected at least {max(state.epoch, 1)} (the run has finished {state.epoch}), got {args.epochs}")
        changes["epochs"] = args.epochs
    try:
        return attrs.evolve(config, **changes)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--{str(error).replace('_', '-')}") from None


def format_epoch(metrics: EpochMetrics, epochs: int, *, evaluated: str = "test") -> str:
    """An epoch's line: loss, training and test (or ``evaluated``) error, seconds and images/s."""
    return (
        f"epoch {metrics.epoch:>3}/{epochs}  loss {metrics.loss:.4f}  train error {100 * metrics.train_error:5.2f}%  "
        f"{evaluated} error {100 * metrics.test_error:5.2f}%  {metrics.seconds:6.1f} s  {metrics.images_per_second:7.0f} images/s"
    )


def _start(args: argparse.Namespace, stderr: IO[str]) -> tuple[TrainConfig, TrainState, Path, Model[Any], PreparedData]:
    """The run's settings, its state (fresh or resumed), directory, model and data; ``UsageError``,
    ``DatasetError``, ``CheckpointError`` or ``OSError`` for bad input."""
    resumed: TrainState | None = None
    if args.resume is not None:
        config, resumed = rundir.load_state(args.resume)
        config = _resumed_config(args, config, resumed, stderr)
    else:
        config = config_from_flags(args)
    run_dir = _run_dir(args, config)
    model = model_of(config)
    dataset = load_or_download_mnist(args.dataset, progress=stderr)
    state, data = state_and_data(model, config, dataset, resumed)
    if args.resume is not None:
        rundir.check_resumable(args.resume, config, state, data.train_y.shape[0])
    run_dir.mkdir(parents=True, exist_ok=True)
    return config, state, run_dir, model, data


def model_of(config: TrainConfig) -> Model[Any]:
    """The run's model, checked to train with the run's optimiser; a ``UsageError`` naming the flag."""
    try:
        model = get_model(config.model)
        check_trainable(model, config)
    except ValueError as error:
        raise UsageError(f"--{error}") from None
    return model


def state_and_data(model: Model[Any], config: TrainConfig, dataset: Mnist, state: TrainState | None) -> tuple[TrainState, PreparedData]:
    """The state a run starts from (``state``, or a fresh one when None) and the data it trains and
    is measured on; a ``UsageError`` naming the model when a model of your own fails to make them."""
    try:  # a model of your own may raise anything: one line, naming it
        start = initial_state(model, config) if state is None else state
        return start, prepare_data(model, dataset, limit=config.limit, holdout=config.holdout, dtype=config.dtype)
    except Exception as error:
        raise UsageError(f"--model {config.model}: its init or prepare failed ({type(error).__name__}: {error})") from None


def _run_dir(args: argparse.Namespace, config: TrainConfig) -> Path:
    """Where the run's files go: ``--out``, the resumed checkpoint's directory, or a new
    ``runs/<model>-<date>-<time>``; a ``UsageError`` when that directory holds another run."""
    if args.out is None and args.resume is not None:
        return Path(args.resume.parent)
    if args.out is None:
        stem = Path("runs") / f"{config.model.replace(':', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
        return _new_directory(stem)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: expected a directory for the run's files, got the file {args.out}")
    held = rundir.existing_run_files(args.out)
    if held and (args.resume is None or args.out.resolve() != args.resume.parent.resolve()):
        hint = f"continue it with --resume {args.out / rundir.LAST} or choose" if rundir.LAST in held else "choose"
        raise UsageError(f"--out {args.out}: holds another run ({', '.join(held)}), which this one would overwrite; {hint} another --out")
    return Path(args.out)


def _new_directory(stem: Path) -> Path:
    """``stem``, or ``stem-2``, ``stem-3``, ... for runs started in the same second: the first that
    this process creates itself (so two runs never take the same one)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    path, count = stem, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            count += 1
            path = stem.with_name(f"{stem.name}-{count}")


def _describe(config: TrainConfig, state: TrainState, data: PreparedData, resumed: bool) -> str:
    """The run's first line: the model, the data, the optimiser and its settings."""
    optimizer = (
        f"momentum SGD, batch {config.batch_size}, lr {config.lr:g}" if config.optimizer == "momentum"
        else f"SDLM (mu {config.sdlm_mu:g}, curvature every {f'{config.sdlm_every} steps' if config.sdlm_every else 'epoch'}), "
        f"batch {config.batch_size}, eta {config.lr:g}"
    )  # fmt: skip
    return (
        f"{config.model}: {tree_size(state.params):,} trainable parameters; {data.train_y.shape[0]:,} training"
        + (f" (each {config.repeat} times per epoch)" if config.repeat > 1 else "")
        + f" and {data.test_y.shape[0]:,} {'test' if config.holdout is None else 'held-out training'} images; {optimizer} ({config.schedule}, warm-up {config.warmup} steps), "
        f"momentum {config.momentum:g}, weight decay {config.weight_decay:g}, {config.threads} thread(s), seed {config.seed}"
        + (f", distortions {attrs.asdict(config.distortion_ranges)}" if config.distort else "")
        + (f"; resuming at epoch {state.epoch + 1}, batch {state.progress.batch + 1}" if resumed else "")
    )


def _epoch_printer(files: RunFiles, epochs: int, stdout: IO[str]) -> Callable[[TrainState, EpochMetrics], None]:
    """What happens after each epoch: the run's files (``RunFiles.end_of_epoch``), then its line."""

    def on_epoch_end(new_state: TrainState, metrics: EpochMetrics) -> None:
        with signals_held():  # a Ctrl-C waits until the files are written and the line printed
            files.end_of_epoch(new_state)
            print(format_epoch(metrics, epochs, evaluated=files.config.evaluated_on), file=stdout)
            stdout.flush()

    return on_epoch_end


def train_run(model: Model[Any], config: TrainConfig, data: PreparedData, state: TrainState, files: RunFiles,
              stdout: IO[str], stderr: IO[str]) -> TrainState | int:
    """Runs ``fit``, an epoch's line on ``stdout`` after its files; returns the final state, or the
    exit status of a run that stopped early (1 diverged or could not write, 130 Ctrl-C, 143
    SIGTERM: saved), having said why on ``stderr`` in one line."""
    try:
        # a diverging run is reported below in one line; numpy's overflow warnings would only add noise
        with Workers(config.threads) as workers, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if workers.threads != config.threads:
                print(f"note: BLAS threads cannot be controlled here, so training runs on 1 thread instead of {config.threads}", file=stderr)
            on_epoch_end = _epoch_printer(files, config.epochs, stdout)
            return fit(model, config, data, state, workers=workers, on_epoch_end=on_epoch_end, progress=stderr)
    except TrainingInterrupted as stop:
        return _save_interrupted(files, stop, stderr)
    except TrainingDiverged as error:
        retry = f"resume it with a smaller rate: --resume {files.last_good_path} --lr {config.lr / 10:g}" if files.last_good_path else "start again with a smaller --lr"
        print(f"error: {error}; training stopped. {_last_good(files)}; {retry}", file=stderr)
        return 1
    except BrokenPipeError:
        raise  # stdout closed (... | head): the command ends quietly (lenet_fn.cli)
    except OSError as error:
        print(f"error: cannot write {error.filename}: {error.strerror}; training stopped. {_last_good(files)}", file=stderr)
        return 1
    except Exception as error:
        if not is_import_path(config.model):
            raise  # the library's own models: a bug, whose traceback says where
        print(f"error: the model {config.model} failed while training ({type(error).__name__}: {error}). {_last_good(files)}", file=stderr)
        return 1


def _last_good(files: RunFiles) -> str:
    if files.last_good_path is None:
        return "No checkpoint was written"
    return f"The last complete checkpoint is {files.last_good_path} ({files.last_good_at})"


def _at(state: TrainState) -> str:
    where = describe_position(state)
    return f"at the {where}" if where.startswith(("end", "start")) else f"at {where}"


def _save_interrupted(files: RunFiles, stop: TrainingInterrupted, stderr: IO[str]) -> int:
    """Saves the stopped run's state (a one-line error when the disk will not take it); the exit status."""
    where = _at(stop.state)
    if not all_finite(stop.state.params):
        print(f"\nerror: stopped by {signal_name(stop.interrupt)} {where}, with weights that had become NaN or infinite: "
              f"nothing saved. {_last_good(files)}", file=stderr)  # fmt: skip
        return exit_status(stop.interrupt)
    try:
        path = files.interrupted(stop.state)
    except OSError as error:
        print(f"\nerror: stopped by {signal_name(stop.interrupt)} {where}, and cannot write {error.filename}: "
              f"{error.strerror}. {_last_good(files)}", file=stderr)  # fmt: skip
        return exit_status(stop.interrupt)
    print(f"\nstopped by {signal_name(stop.interrupt)} {where}; saved {path}\n"
          f"continue with: python -m lenet_fn.train --resume {path}", file=stderr)  # fmt: skip
    return exit_status(stop.interrupt)


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.train``; returns the exit status (0 done, 1 diverged or could not
    write its files, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
    args = _parser().parse_args(argv)
    try:
        config, state, run_dir, model, data = _start(args, stderr)
        files = RunFiles(run_dir, config, plots=matplotlib_available(), resumed_from=args.resume, state=state)
        fresh_or_in_place = args.resume is None or run_dir.resolve() == args.resume.parent.resolve()
        notes = files.reconcile(state) if fresh_or_in_place else []  # put right after a kill -9
    except (UsageError, DatasetError, CheckpointError) as error:
        print(f"error: {error}", file=stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write {error.filename}: {error.strerror}", file=stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=stderr)
    if config.threads > default_threads():
        print(f"note: {config.threads} threads on {default_threads()} cores: more threads than cores only slows training", file=stderr)
    reuse_freed_memory()
    print(_describe(config, state, data, args.resume is not None), file=stdout)
    print(f"run directory: {run_dir}", file=stdout)
    stdout.flush()
    final = train_run(model, config, data, state, files, stdout, stderr)
    if isinstance(final, int):
        return final
    best = best_epoch(final.history)
    print(f"best {config.evaluated_on} error {100 * best.test_error:.2f}% after epoch {best.epoch}; files in {run_dir}", file=stdout)
    if not matplotlib_available():
        print(f"no {rundir.PLOT}: {PLOT_HINT}", file=stdout)
    return 0
