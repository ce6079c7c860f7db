"""One run of a sweep as a task any process can run: its directory, named by a hash of its settings
and the library's version, and ``execute_run``, which trains the run there, resumes it from its
``last.npz``, or finds it finished.

A run's directory holds ``settings.json`` (its resolved settings and the version its name was
made from) beside the train command's files (``lenet_fn.rundir``), and the run is trained by the
train command's own code (``train_cli.train_run``): its files are the ones ``python -m
lenet_fn.train`` writes, and ``--resume`` continues it bit for bit. The task is idempotent: run
again, after it finished or after its process was killed, it ends with the files of one run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path
from typing import IO, Any

import attrs

from lenet_fn.atomic import remove_temporaries, write_atomically
from lenet_fn.checkpoint import CheckpointError
from lenet_fn.cli import UsageError
from lenet_fn.config import TrainConfig
from lenet_fn.data import DatasetError, Mnist, load_or_download_mnist
from lenet_fn.rundir import LAST, RunFiles, check_resumable, describe_position, existing_run_files, load_state
from lenet_fn.state import EpochMetrics, TrainState
from lenet_fn.train_cli import model_of, state_and_data, train_run
from lenet_fn.version import __version__

SETTINGS = "settings.json"
"""The file of a run's directory that holds the settings its name was made from."""
HASH_LENGTH = 12
"""Hex digits of the settings' SHA-256 in a run's name (48 bits: a collision is detected, not expected)."""
COMPLETE = ("trained", "finished")
"""The outcomes of a run that has all its epochs."""
DATASET_HINT = (
    "every process that trains needs the dataset: --dataset PATH naming a directory it can read, or, without --dataset, "
    "the repository's data/mnist or the download cache (~/.cache/lenet_fn/mnist, $LENET_FN_DATA)"
)


class RunRefused(Exception):
    """A run that cannot go ahead as asked (its directory holds another run, its checkpoint does
    not fit it, the dataset is missing): bad input, reported in one line."""


@attrs.frozen
class RunOutcome:
    """What became of one run of a sweep.

    Attributes:
        name: the run's directory name (``run_name``).
        config: its settings.
        status: ``trained`` (now, from its start or its ``last.npz``), ``finished`` (before: nothing
            done), ``failed`` (diverged, a write failed, a model of your own raised), ``refused``
            (bad input: nothing done), ``stopped`` (Ctrl-C or SIGTERM: ``last.npz`` saved), ``lost``
            (its process or worker died), ``not run`` (the sweep stopped first).
        history: its finished epochs.
        message: why, for every status but the complete ones (one line).
        where: the process or worker it ran in.
    """

    name: str
    config: TrainConfig
    status: str
    history: tuple[EpochMetrics, ...] = ()
    message: str = ""
    where: str = ""

    @property
    def complete(self) -> bool:
        """Whether the run has all its epochs (trained now or before)."""
        return self.status in COMPLETE


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a sweep: ``outcomes`` of the runs it had (the running ones
    ``stopped``, their ``last.npz`` saved), ``interrupt`` the signal's exception."""

    def __init__(self, outcomes: list[RunOutcome], interrupt: KeyboardInterrupt) -> None:
        super().__init__("sweep interrupted")
        self.outcomes = outcomes
        self.interrupt = interrupt


def settings_record(config: TrainConfig) -> dict[str, Any]:
    """What a run's name is made from, and its ``settings.json`` holds: its settings and the version."""
    return {"config": config.to_dict(), "version": __version__}


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_name(config: TrainConfig) -> str:
    """The run's directory name: model, seed, and the SHA-256 of the canonical JSON of
    ``settings_record`` (``mlp-s0-3f9c2a7be410``)."""
    digest = hashlib.sha256(_canonical(settings_record(config)).encode()).hexdigest()[:HASH_LENGTH]
    return f"{config.model.replace(':', '-')}-s{config.seed}-{digest}"


def _difference(held: object, expected: dict[str, Any]) -> str:
    """The first setting in which a ``settings.json`` differs from the run's."""
    if not isinstance(held, dict) or not isinstance(held.get("config"), dict):
        return "not a sweep's settings.json"
    if held.get("version") != expected["version"]:
        return f"version {held.get('version')!r} where this run has {expected['version']!r}"
    config = held["config"]
    for key, value in expected["config"].items():
        if config.get(key, "(none)") != value:
            return f"{key} {config.get(key, '(none)')!r} where this run has {value!r}"
    return f"settings {sorted(set(config) - set(expected['config']))} this run does not have"


def check_run_dir(run_dir: Path, config: TrainConfig) -> None:
    """A ``RunRefused`` when ``run_dir`` holds the files of other settings, or run files without
    the ``settings.json`` that says whose they are."""
    path = run_dir / SETTINGS
    if not path.exists():
        held = existing_run_files(run_dir) if run_dir.is_dir() else []
        if held:
            raise RunRefused(f"{run_dir}: holds run files ({', '.join(held)}) but no {SETTINGS}, so not a run of a sweep; move it away or give the sweep another --out")
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunRefused(f"{path}: unreadable ({type(error).__name__}: {error}); move {run_dir} away or give the sweep another --out") from None
    expected = json.loads(_canonical(settings_record(config)))
    if record != expected:
        raise RunRefused(
            f"{run_dir}: holds a run of other settings under this run's name ({_difference(record, expected)}); "
            "move it away or give the sweep another --out"
        )


def saved_state(run_dir: Path, config: TrainConfig) -> TrainState | None:
    """The state in the run's ``last.npz`` (None without one); a ``RunRefused`` when it cannot be
    read or holds other settings."""
    path = run_dir / LAST
    if not path.exists():
        return None
    try:
        held, state = load_state(path)
    except CheckpointError as error:
        raise RunRefused(str(error)) from None
    if held != config:
        different = next(key for key, value in config.to_dict().items() if held.to_dict()[key] != value)
        raise RunRefused(f"{path}: holds a run with {different} {getattr(held, different)!r} where this run has {getattr(config, different)!r}; "
                         f"move {run_dir} away or give the sweep another --out")  # fmt: skip
    return state


def look_up_run(sweep_dir: Path, config: TrainConfig) -> tuple[RunOutcome | None, str]:
    """Whether a run is done already: its outcome when its directory holds all its epochs (else
    None), and where it stands (``new``, ``resumes at epoch 3, batch 41``); ``RunRefused`` as
    ``check_run_dir`` and ``saved_state``."""
    name = run_name(config)
    check_run_dir(sweep_dir / name, config)
    state = saved_state(sweep_dir / name, config)
    if state is None:
        return None, "new"
    if state.epoch >= config.epochs:
        return RunOutcome(name, config, "finished", state.history), "finished"
    where = describe_position(state)
    return None, f"resumes at {'the ' if where.startswith('end') else ''}{where}"


@functools.lru_cache(maxsize=1)
def _dataset(path: str | None) -> Mnist:
    """MNIST for the runs of this process (loaded once per process and path)."""
    return load_or_download_mnist(path, progress=None)


class _PrefixedLines(io.StringIO):
    """A text stream writing each complete line to ``target`` after ``prefix``."""

    def __init__(self, target: IO[str] | None, prefix: str) -> None:
        super().__init__()
        self.target, self.prefix, self.pending = target, prefix, ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending and self.target is not None:
            line, self.pending = self.pending.split("\n", 1)
            self.target.write(f"{self.prefix}{line}\n")
            self.target.flush()
        return len(text)


def execute_run(config: TrainConfig, sweep_dir: str, dataset: str | None, *, name: str = "", progress: IO[str] | None = None,
                where: str = "") -> RunOutcome:  # fmt: skip
    """Brings one run of a sweep to its end in ``sweep_dir/run_name(config)``: finds it finished,
    resumes it from its ``last.npz``, or trains it from its start.

    Args:
        config: the run's settings.
        sweep_dir: the sweep's directory (a path as this process sees it).
        dataset: the MNIST directory as given to the sweep (None: the default one).
        name: the name the sweep expects (a process with another library version makes another
            name, and refuses the run).
        progress: where each epoch's line goes, after the run's name.
        where: the process or worker, for the outcome and its messages.

    Returns:
        The outcome; bad input and runs that fail are outcomes too, never exceptions.
    """
    actual = run_name(config)
    if name and name != actual:
        return RunOutcome(name, config, "refused", message=f"{where} has lenet_fn {__version__}, which names the run {actual}: install the sweep's version there", where=where)
    run_dir = Path(sweep_dir) / actual
    try:
        check_run_dir(run_dir, config)
        state = saved_state(run_dir, config)
        if state is not None and state.epoch >= config.epochs:
            return RunOutcome(actual, config, "finished", state.history, where=where)
        return _train(config, run_dir, dataset, state, progress, where)
    except (RunRefused, UsageError, CheckpointError) as error:
        return RunOutcome(actual, config, "refused", message=str(error), where=where)
    except DatasetError as error:
        return RunOutcome(actual, config, "refused", message=f"cannot read the dataset in {where}: {error}; {DATASET_HINT}", where=where)


def _train(config: TrainConfig, run_dir: Path, dataset: str | None, state: TrainState | None, progress: IO[str] | None,
           where: str) -> RunOutcome:  # fmt: skip
    """Trains the run with the train command's code, its epoch lines and notes on ``progress``."""
    model = model_of(config)
    start, data = state_and_data(model, config, _dataset(dataset), state)
    last = run_dir / LAST
    if state is not None:
        check_resumable(last, config, start, data.train_y.shape[0])
    try:
        files = RunFiles(run_dir, config, plots=False, resumed_from=last if state is not None else None, state=start)  # locks the directory
        remove_temporaries(run_dir, [SETTINGS])
        write_atomically(run_dir / SETTINGS, lambda stream: stream.write(_canonical(settings_record(config)).encode()))
        notes = files.reconcile(start)  # put right what a killed process left
    except OSError as error:
        return RunOutcome(run_dir.name, config, "refused", message=f"cannot write {error.filename}: {error.strerror}", where=where)
    lines, said = _PrefixedLines(progress, f"{run_dir.name}: "), io.StringIO()
    for note in notes:
        print(f"note: {note}", file=lines)
    final = train_run(model, config, data, start, files, lines, said)
    message = " ".join(said.getvalue().split())
    if isinstance(final, int):
        return RunOutcome(run_dir.name, config, "failed" if final == 1 else "stopped", message=message.removeprefix("error: "), where=where)
    if message:
        print(message, file=lines)
    return RunOutcome(run_dir.name, config, "trained", final.history, where=where)

